"""Label smoothing (Szegedy et al. 2016; Sec. 2.1): (1 - eps) onehot + eps / K, i.e. Self-KD with a
uniform teacher (core.targets.label_smoothing_targets)."""
from __future__ import annotations

from dataclasses import dataclass

from core.config import ConfigError
from core.targets import label_smoothing_targets

from .base import Method


@dataclass
class LSConfig:
    eps: float = 0.1  # label smoothing epsilon (Sec. 3.1)


class LabelSmoothing(Method):
    Config = LSConfig

    @staticmethod
    def check(cfg) -> None:
        if not 0.0 <= cfg.eps <= 1.0:
            raise ConfigError(f"method.ls.eps must be in [0, 1], got {cfg.eps}")

    def targets(self, y):
        return label_smoothing_targets(y, self.ctx.num_classes, self.cfg.eps)


METHOD = LabelSmoothing
