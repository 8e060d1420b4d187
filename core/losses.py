"""Cross entropy against soft targets (the H(., P^S) of Eqs. 3-6)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``-sum_k targets[:, k] * log_softmax(logits)[:, k]`` per row.

    logits, targets: (B, K). reduction: "mean" (over the batch), "sum" or "none" -> (B,).
    Computed in float32 at least, so bf16/fp16 logits under autocast stay accurate.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    loss = -(targets.to(dtype) * F.log_softmax(logits.to(dtype), dim=-1)).sum(dim=-1)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
