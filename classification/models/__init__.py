"""Model registry: ``build_model(name, num_classes)``. Each model module registers its
constructors with ``@register("name")``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def deco(fn):
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn
    return deco


def available_models() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    return _MODELS[name](num_classes=num_classes, **kwargs)


# Import the modules so their @register calls run.
from . import preact_resnet, resnet, small  # noqa: E402,F401
