"""Batch regularisers and their combination with Self-KD (Sec. 3.1, Appendix B.1).

All functions work on a normalised (B, C, H, W) batch on any device and draw their randomness
from torch's generator of that device, so the DataLoader path and the GPU-resident fast path use
the same code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.targets import label_smoothing_targets


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


def cutmix(x: torch.Tensor, labels: torch.Tensor, num_classes: int, beta: float = 1.0):
    """CutMix (Yun et al. 2019, Appendix B.1): paste a box of a shuffled partner into each image.

    lam ~ Beta(beta, beta); box side sqrt(1 - lam) of the image, centre uniform, clipped; lam is
    then corrected to the pasted area, and the target is lam * y_a + (1 - lam) * y_b.
    Returns (mixed x, (B, K) targets).
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
    onehot = F.one_hot(labels, num_classes).float()
    return out, lam * onehot + (1.0 - lam) * onehot[perm]


METHODS = ("baseline", "ls", "selfkd", "cutout", "cutout_selfkd", "cutmix", "cutmix_selfkd",
           "cutmix_sd", "cutmix_sd_selfkd")


def method_parts(name: str) -> set[str]:
    """'cutmix_sd_selfkd' -> {'cutmix', 'sd', 'selfkd'}; ShakeDrop ('sd') is a model option."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    return set(name.split("_")) - {"baseline"}


def prepare_batch(parts: set[str], x, labels, idx, bank, alpha: float, num_classes: int, *,
                  ls_eps: float = 0.1, cutout_size: int = 8, cutmix_beta: float = 1.0,
                  cutmix_prob: float = 0.5, cutout_updates_bank: bool = True):
    """Inputs and (B, K) soft targets for one training batch, and which bank rows to overwrite
    with this forward pass's predictions (None when nothing is written).

    Self-KD combined with Cutout or CutMix (Sec. 3.1): a random half of the batch is trained with
    Self-KD targets (and writes its bank rows); the other half gets the other regulariser with
    hard targets. A CutMix'd sample does NOT overwrite its bank row: its image is a mix of two
    samples, so its prediction is not p(x) for that x. A Cutout'd sample is still that sample
    (occluded, like a crop), so it does write its row (cutout_updates_bank=False turns that off).
    """
    b = x.shape[0]
    onehot = F.one_hot(labels, num_classes).float()
    if "selfkd" not in parts:
        if "ls" in parts:
            return x, label_smoothing_targets(labels, num_classes, ls_eps), None
        if "cutout" in parts:
            return cutout(x, cutout_size), onehot, None
        if "cutmix" in parts and float(torch.rand(())) < cutmix_prob:  # per batch, as CutMix's code
            return (*cutmix(x, labels, num_classes, cutmix_beta), None)
        return x, onehot, None
    targets = bank.targets(idx, labels, alpha).to(x.device)
    if not parts & {"cutout", "cutmix"}:
        return x, targets, torch.ones(b, dtype=torch.bool, device=x.device)
    # the half-batch rule: exactly b // 2 samples (a random subset) go to Self-KD
    kd = torch.zeros(b, dtype=torch.bool, device=x.device)
    kd[torch.randperm(b, device=x.device)[: b // 2]] = True
    other = ~kd
    x = x.clone()
    if "cutout" in parts:
        x[other] = cutout(x[other], cutout_size)
        targets[other] = onehot[other]
        update = torch.ones_like(kd) if cutout_updates_bank else kd
    else:
        if other.sum() > 0:
            x[other], targets[other] = cutmix(x[other], labels[other], num_classes, cutmix_beta)
        update = kd
    return x, targets, update
