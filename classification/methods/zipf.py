"""Zipf's label smoothing -- Liang, Li, Zhou, Xu, Zhang, Liu, "Efficient One Pass Self-distillation
with Zipf's Label Smoothing", ECCV 2022 (code: megvii-research/zipfls, pytorch_zipfls/losses.py
and train.py), the non-dense variant (its --dense off: the ranking comes from the model's output
itself, not from votes of per-location predictions).

Each sample's non-target classes are ranked by the model's own (detached) logits, r = 1 for the
largest (ties share the smallest rank, scipy's rankdata 'min'), and given the Zipf distribution
p_c proportional to r_c^-power over the K - 1 non-target classes. The loss is

    CE(z, y) + weight * KL(p || softmax(z restricted to the non-target classes)),

the KL summed over classes and averaged over the batch (its kl_loss, without the correct-only
mask). Its CIFAR-100 setting (README): weight (--loss_lambda) 0.1, power 1 (rank_zipf).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.config import ConfigError

from .base import Method


@dataclass
class ZipfConfig:
    weight: float = 0.1  # the KL term's weight (its --loss_lambda; README CIFAR-100 setting)
    power: float = 1.0  # the Zipf exponent (its --power)


def zipf_non_target(logits: torch.Tensor, labels: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """(B, K - 1) Zipf distribution over each row's non-target classes (in class order), ranked
    by the detached logits."""
    z = logits.detach().double()
    ranked = (-z).sort(dim=1).values
    rank = torch.searchsorted(ranked, (-z).contiguous(), side="left") + 1  # 1 + the number of larger logits
    dist = rank.double().reciprocal() ** power
    keep = torch.ones_like(z, dtype=torch.bool).scatter_(1, labels[:, None], False)
    dist = dist[keep].view(len(z), -1)
    return (dist / dist.sum(dim=1, keepdim=True)).float()


def zipf_loss(logits: torch.Tensor, labels: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """KL(Zipf || softmax of the non-target logits), batch mean (module docstring)."""
    pdf = zipf_non_target(logits, labels, power)
    keep = torch.ones_like(logits, dtype=torch.bool).scatter_(1, labels[:, None], False)
    log_q = F.log_softmax(logits[keep].view(len(logits), -1), dim=1)
    return F.kl_div(log_q, pdf, reduction="none").sum(dim=1).mean()


class ZipfLS(Method):
    Config = ZipfConfig

    @staticmethod
    def check(cfg) -> None:
        if cfg.weight < 0 or cfg.power <= 0:
            raise ConfigError(f"method.zipf.weight must be >= 0 and method.zipf.power > 0, got {cfg.weight}, {cfg.power}")

    def loss(self, model, x, y, idx):
        with self.autocast(x):
            logits = model(x)
        z = logits.float()
        return F.cross_entropy(z, y) + self.cfg.weight * zipf_loss(z, y, self.cfg.power), logits


METHOD = ZipfLS
