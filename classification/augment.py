"""Batch regularisers, Cutout and CutMix (Sec. 3.1, Appendix B.1); their combination with Self-KD
is in classification/selfkd.py.

All functions work on a normalised (B, C, H, W) batch on any device and draw their randomness
from torch's generator of that device, so the DataLoader path and the GPU-resident fast path use
the same code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F



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
