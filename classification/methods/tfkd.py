"""TF-KD-reg -- Yuan, Tay, Li, Wang, Feng, "Revisiting Knowledge Distillation via Label Smoothing
Regularization", CVPR 2020 (code: yuanli2333/Teacher-free-Knowledge-Distillation).

A hand-made teacher p^d: 0.99 on the true class, the rest uniform; its code then takes
softmax(p^d / T) as the teacher distribution and minimises (1 - alpha) CE + alpha * m *
KL_mean(teacher || model), where KL_mean is torch's default element mean (over B x K) and m its
"multiplier". With m = K (its CIFAR-100 ResNet-18 setting: m = 100) that is (1 - alpha) CE +
alpha * KL averaged over the batch, i.e. soft-target cross entropy with targets
(1 - alpha) onehot + alpha softmax(p^d / T) plus a constant (the teacher's entropy): what
`tfkd_targets` builds. Its CIFAR-100 ResNet-18 defaults: alpha = 0.1, T = 20.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.config import ConfigError

from .base import Method


@dataclass
class TFKDConfig:
    alpha: float = 0.1  # weight of the hand-made teacher
    temperature: float = 20.0  # T applied to the hand-made teacher
    correct_prob: float = 0.99  # the hand-made teacher's probability of the true class


def tfkd_targets(labels: torch.Tensor, num_classes: int, alpha: float, temperature: float,
                 correct_prob: float = 0.99) -> torch.Tensor:
    """(B, K) targets (1 - alpha) onehot + alpha softmax(p^d / T) of TF-KD-reg (module docstring)."""
    onehot = F.one_hot(labels.long(), num_classes).float()
    designed = onehot * correct_prob + (1 - onehot) * (1 - correct_prob) / (num_classes - 1)
    return (1 - alpha) * onehot + alpha * torch.softmax(designed / temperature, dim=1)


class TFKD(Method):
    Config = TFKDConfig

    @staticmethod
    def check(cfg) -> None:
        if not 0.0 <= cfg.alpha <= 1.0 or not 0.0 < cfg.correct_prob < 1.0:
            raise ConfigError(f"method.tfkd.alpha must be in [0, 1] and method.tfkd.correct_prob in (0, 1), got "
                              f"{cfg.alpha}, {cfg.correct_prob}")
        if cfg.temperature <= 0:
            raise ConfigError(f"method.tfkd.temperature must be > 0, got {cfg.temperature}")

    def targets(self, y):
        return tfkd_targets(y, self.ctx.num_classes, self.cfg.alpha, self.cfg.temperature, self.cfg.correct_prob)


METHOD = TFKD
