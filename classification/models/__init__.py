"""Model registry: ``build_model(name, num_classes)``. Each model module registers its
constructors with ``@register("name")``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from core.cli import did_you_mean

_MODELS: dict[str, Callable[..., nn.Module]] = {}
TIMM_PREFIX = "timm/"  # "timm/resnet152": any timm architecture, built untrained (Table 2)


def register(name: str):
    def deco(fn):
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn
    return deco


def available_models() -> list[str]:
    return sorted(_MODELS)


def check_model_name(name: str) -> None:
    """Raise ValueError (one line naming it) unless `name` is registered or a timm architecture.
    Cheap: trainers call it to reject a bad name before they write anything."""
    if name.startswith(TIMM_PREFIX):
        import timm  # imported here: only the ImageNet path needs it
        arch = name[len(TIMM_PREFIX):]
        if not timm.is_model(arch):
            raise ValueError(f"unknown model {name!r}: {arch!r} is not a timm architecture")
    elif name not in _MODELS:
        raise ValueError(f"unknown model {name!r}{did_you_mean(name, available_models())}; "
                         f"available: {', '.join(available_models())}, "
                         f"or {TIMM_PREFIX}<timm architecture>")


def check_model_kwargs(name: str, kwargs: dict) -> None:
    """Raise ValueError (one line) when the model's constructor does not take one of `kwargs`
    (model_kwargs), before anything is written: the model is built on the meta device (no
    memory, no weights), so arguments a builder passes on through **kw are checked too."""
    if not kwargs:
        return
    import torch
    try:
        with torch.device("meta"):
            build_model(name, 10, **kwargs)
    except TypeError as e:
        if "argument" not in str(e):  # not about the arguments: a bug, a traceback
            raise
        raise ValueError(f"model_kwargs: model {name!r} does not take these arguments ({e})") from None


def run_model_kwargs(model_kwargs, dataset: str | None, method: str) -> dict:
    """Every build_model keyword a classification run builds its network with, from its config:
    its model_kwargs, its dataset's input channels, and ShakeDrop where its method uses it
    (eval-mode ShakeDrop scales its branch, so it changes the outputs). Training, re-evaluation,
    export and the qualitative figures rebuild a run's network through this one rule."""
    from core.methods import get_method

    from ..data import IN_CHANNELS
    kwargs = dict(model_kwargs or {})
    if dataset in IN_CHANNELS:
        kwargs["in_channels"] = IN_CHANNELS[dataset]
    if get_method(method, "classification").shakedrop:
        kwargs["shakedrop"] = True
    return kwargs


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """A registered model, or ``timm/<arch>``: ``timm.create_model(arch)``, untrained (ImageNet)."""
    check_model_name(name)
    if name.startswith(TIMM_PREFIX):
        return _build_timm(name, num_classes, **kwargs)
    return _MODELS[name](num_classes=num_classes, **kwargs)


def _build_timm(name: str, num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    import timm
    return timm.create_model(name[len(TIMM_PREFIX):], pretrained=False, num_classes=num_classes,
                             in_chans=in_channels, **kwargs)


# Import the modules so their @register calls run.
from . import densenet, preact_resnet, pyramidnet, resnet, resnet_cifar, resnext, small  # noqa: E402,F401
