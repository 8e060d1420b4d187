"""Alpha schedules: pure functions of the epoch t in 1..T (Eq. 5 and the Fig. 2 ablation).

The official code writes ``alpha_T * (epoch + 1) / end_epoch`` with 0-based epochs: the same
numbers as ``alpha_T * t / T`` with t counted from 1.
"""
from __future__ import annotations

import math

KINDS = ("linear", "fixed", "step", "exp", "cosine")


def alpha_at(t: int, total_epochs: int, alpha_T: float, kind: str = "linear") -> float:
    """alpha_t for epoch t (1-based) of total_epochs.

    linear: alpha_T * t / T (Eq. 5)
    fixed:  alpha_T at every epoch (Fig. 2 'fixed alpha')
    step:   three equal steps, alpha_T * ceil(3 t / T) / 3
    exp:    alpha_T * exp(-5 (1 - t/T)^2) (the sigmoid ramp-up of Laine & Aila's temporal ensembling)
    cosine: alpha_T * (1 - cos(pi t / T)) / 2
    All reach alpha_T at t = T.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown alpha schedule {kind!r}; expected one of {', '.join(KINDS)}")
    if int(total_epochs) != total_epochs or total_epochs < 1:
        raise ValueError(f"total_epochs must be a positive integer, got {total_epochs}")
    if int(t) != t or not 1 <= t <= total_epochs:
        raise ValueError(f"epoch t must be an integer in 1..{total_epochs}, got {t}")
    if not 0.0 <= float(alpha_T) <= 1.0:
        raise ValueError(f"alpha_T must be in [0, 1], got {alpha_T}")
    frac = t / total_epochs
    if kind == "linear":
        return alpha_T * frac
    if kind == "fixed":
        return float(alpha_T)
    if kind == "step":
        return alpha_T * math.ceil(3 * t / total_epochs) / 3
    if kind == "exp":
        return alpha_T * math.exp(-5.0 * (1.0 - frac) ** 2)
    return alpha_T * (1.0 - math.cos(math.pi * frac)) / 2.0


def step_lr(t: int, base_lr: float, milestones, gamma: float = 0.1) -> float:
    """Learning rate for epoch t (1-based) with a x gamma drop after each milestone epoch.

    milestones=[150, 225]: epochs 1..150 use base_lr, 151..225 base_lr*gamma, 226.. base_lr*gamma^2
    (torch's MultiStepLR stepped once per epoch with 0-based milestones 150, 225 -- the official
    PS-KD code).
    """
    if int(t) != t or t < 1:
        raise ValueError(f"epoch t must be a positive integer, got {t}")
    return base_lr * gamma ** sum(1 for m in milestones if t > m)
