"""TF-KD-reg -- Yuan, Tay, Li, Wang, Feng, "Revisiting Knowledge Distillation via Label Smoothing
Regularization", CVPR 2020 (code: yuanli2333/Teacher-free-Knowledge-Distillation).

A hand-made teacher p^d: 0.99 on the true class, the rest uniform; its code then takes
softmax(p^d / T) as the teacher distribution and minimises (1 - alpha) CE + alpha * m *
KL_mean(teacher || model), where KL_mean is torch's default element mean (over B x K) and m its
"multiplier". With m = K (its CIFAR-100 ResNet-18 setting: m = 100) that is (1 - alpha) CE +
alpha * KL averaged over the batch, i.e. soft-target cross entropy with targets
(1 - alpha) onehot + alpha softmax(p^d / T) plus a constant (the teacher's entropy): what
`tfkd_targets` builds. Its CIFAR-100 ResNet-18 defaults: alpha = 0.1, T = 20.

``multiplier`` > 0 computes the authors' loss itself, term for term (``tfkd_authors_loss``): any
m, and the KL's value (the soft-target form carries the teacher's entropy as a constant). With
m = 1 -- their DenseNet-121 and ResNeXt-29 params.json set no multiplier, i.e. the loss without
one -- the KL term is 1/K of the soft-target form's: the gradient on the logits is
(1 - alpha)(q - onehot) / B + alpha m / K (q - p_T) / B, which no choice of alpha in the targets
reproduces (the weights do not sum to one), so it needs its own loss. 0 (the default) keeps the
soft targets.
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
    # > 0: the authors' loss with this multiplier m (module docstring); 0: soft targets, the same
    # gradient as m = K
    multiplier: float = 0.0


def designed_teacher(labels: torch.Tensor, num_classes: int, temperature: float,
                     correct_prob: float = 0.99) -> torch.Tensor:
    """(B, K) softmax(p^d / T): the hand-made teacher after the temperature."""
    onehot = F.one_hot(labels.long(), num_classes).float()
    designed = onehot * correct_prob + (1 - onehot) * (1 - correct_prob) / (num_classes - 1)
    return torch.softmax(designed / temperature, dim=1)


def tfkd_authors_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float, temperature: float,
                      multiplier: float, correct_prob: float = 0.99) -> torch.Tensor:
    """(1 - alpha) CE + alpha * m * KL(softmax(p^d / T) || softmax(logits)) averaged over all B x K
    elements (torch's KLDivLoss default), as the authors' loss_kd_regularization."""
    teacher = designed_teacher(labels, logits.shape[1], temperature, correct_prob)
    # the element mean KLDivLoss() takes (its "mean"; written out, without its deprecation warning)
    kl = F.kl_div(F.log_softmax(logits, dim=1), teacher, reduction="none").mean()
    return (1 - alpha) * F.cross_entropy(logits, labels) + alpha * multiplier * kl


def tfkd_targets(labels: torch.Tensor, num_classes: int, alpha: float, temperature: float,
                 correct_prob: float = 0.99) -> torch.Tensor:
    """(B, K) targets (1 - alpha) onehot + alpha softmax(p^d / T) of TF-KD-reg (module docstring)."""
    onehot = F.one_hot(labels.long(), num_classes).float()
    return (1 - alpha) * onehot + alpha * designed_teacher(labels, num_classes, temperature, correct_prob)


class TFKD(Method):
    Config = TFKDConfig

    @staticmethod
    def check(cfg) -> None:
        if not 0.0 <= cfg.alpha <= 1.0 or not 0.0 < cfg.correct_prob < 1.0:
            raise ConfigError(f"method.tfkd.alpha must be in [0, 1] and method.tfkd.correct_prob in (0, 1), got "
                              f"{cfg.alpha}, {cfg.correct_prob}")
        if cfg.temperature <= 0:
            raise ConfigError(f"method.tfkd.temperature must be > 0, got {cfg.temperature}")
        if not cfg.multiplier >= 0:
            raise ConfigError(f"method.tfkd.multiplier must be >= 0 (0: soft targets), got {cfg.multiplier}")

    def targets(self, y):
        return tfkd_targets(y, self.ctx.num_classes, self.cfg.alpha, self.cfg.temperature, self.cfg.correct_prob)

    def loss(self, model, x, y, idx):
        if not self.cfg.multiplier:
            return super().loss(model, x, y, idx)
        with self.autocast(x):
            logits = model(x)
        c = self.cfg
        return tfkd_authors_loss(logits.float(), y, c.alpha, c.temperature, c.multiplier, c.correct_prob), logits


METHOD = TFKD
