"""Batch regularisers, Cutout and CutMix (Sec. 3.1, Appendix B.1), each a callable built once from
its own config (method.cutout.*, method.cutmix.*) and composed with a method's rule
(classification/methods/base.py; Self-KD's half-batch rule in classification/methods/selfkd.py).

All functions work on a normalised (B, C, H, W) batch on any device and draw their randomness
from torch's generator of that device, so the DataLoader path and the GPU-resident fast path use
the same code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.config import ConfigError


def cutout(x: torch.Tensor, size: int = 8) -> torch.Tensor:
    """Zero a size x size square per image, centred uniformly in the image and clipped at its
    border (DeVries & Taylor 2017, applied after normalisation as in their code). Returns a copy."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), device=x.device)
    cx = torch.randint(0, w, (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    # the official mask covers [c - size//2, c + size//2) clipped to the image
    hole = (ys >= cy - size // 2) & (ys < cy + size // 2) & (xs >= cx - size // 2) & (xs < cx + size // 2)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def cutmix(x: torch.Tensor, targets: torch.Tensor, beta: float = 1.0):
    """CutMix (Yun et al. 2019, Appendix B.1): paste a box of a shuffled partner into each image.

    lam ~ Beta(beta, beta); box side sqrt(1 - lam) of the image, centre uniform, clipped; lam is
    then corrected to the pasted area, and the target is lam * t_a + (1 - lam) * t_b.
    targets: (B, K) (one-hot rows for CutMix's own rule). Returns (mixed x, mixed targets).
    """
    b, _, h, w = x.shape
    lam = float(torch.distributions.Beta(beta, beta).sample())
    perm = torch.randperm(b, device=x.device)
    cut = (1.0 - lam) ** 0.5
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
    y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    lam = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    return out, lam * targets + (1.0 - lam) * targets[perm]


@dataclass
class CutoutConfig:
    size: int = 8  # the hole, pixels (Sec. 3.1)
    updates_bank: bool = True  # with Self-KD (cutout_selfkd): a Cutout'd sample writes its bank row


@dataclass
class CutMixConfig:
    beta: float = 1.0  # Beta(beta, beta) (Sec. 3.1)
    prob: float = 0.5  # CutMix alone: probability a batch is mixed (CutMix's CIFAR setting)


class Cutout:
    """(x, targets) -> (x with one hole per image, targets): a Cutout'd sample is still that
    sample (occluded, like a crop), so with Self-KD it writes its bank row unless
    method.cutout.updates_bank=false."""

    def __init__(self, cfg):
        self.size, self.writes_bank = cfg.size, cfg.updates_bank

    @staticmethod
    def check(cfg) -> None:
        if cfg.size < 1:
            raise ConfigError(f"method.cutout.size must be >= 1, got {cfg.size}")

    def applies(self) -> bool:
        """Whether a whole batch is regularised when the method's rule is alone: always."""
        return True

    def __call__(self, x, targets):
        return cutout(x, self.size), targets


class CutMix:
    """(x, targets) -> CutMix'd (x, targets). A CutMix'd image mixes two samples, so its
    prediction is not p(x) for either: with Self-KD it never writes a bank row."""
    writes_bank = False

    def __init__(self, cfg):
        self.beta, self.prob = cfg.beta, cfg.prob

    @staticmethod
    def check(cfg) -> None:
        if cfg.beta <= 0 or not 0.0 <= cfg.prob <= 1.0:
            raise ConfigError(f"method.cutmix.beta must be > 0 and method.cutmix.prob in [0, 1], got "
                              f"{cfg.beta}, {cfg.prob}")

    def applies(self) -> bool:
        """Alone, CutMix mixes a batch with probability prob (one draw per batch, as its code)."""
        return float(torch.rand(())) < self.prob

    def __call__(self, x, targets):
        return cutmix(x, targets, self.beta)


# regulariser name (core.methods.MethodSpec.regularizer) -> (its config section, its callable)
REGULARIZERS = {"cutout": (CutoutConfig, Cutout), "cutmix": (CutMixConfig, CutMix)}
