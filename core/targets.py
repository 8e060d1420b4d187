"""Soft targets for Self-KD (Eq. 6) and label smoothing (Sec. 2.1: LS == a uniform teacher)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {alpha}")


def self_kd_targets(labels: torch.Tensor, teacher_probs: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 6: ``(1 - alpha) * onehot(labels) + alpha * teacher_probs``.

    labels: (B,) int64 class indices; teacher_probs: (B, K) rows summing to 1.
    Returns (B, K) in teacher_probs' dtype. alpha=0 gives one-hot targets (plain cross entropy).
    """
    _check_alpha(alpha)
    if teacher_probs.dim() != 2 or labels.shape[0] != teacher_probs.shape[0]:
        raise ValueError(
            f"expected labels (B,) and teacher_probs (B, K), got {tuple(labels.shape)} and "
            f"{tuple(teacher_probs.shape)}"
        )
    onehot = F.one_hot(labels.long(), teacher_probs.shape[1]).to(teacher_probs.dtype)
    return torch.lerp(onehot, teacher_probs, float(alpha))


def uniform_teacher(batch_size: int, num_classes: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The 'teacher' of label smoothing: 1/K for every class (Sec. 2.1)."""
    return torch.full((batch_size, num_classes), 1.0 / num_classes, dtype=dtype, device=device)


def label_smoothing_targets(labels: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:
    """``(1 - eps) * onehot + eps / K`` (Appendix B.1), written as Self-KD with a uniform teacher."""
    _check_alpha(eps, "eps")
    teacher = uniform_teacher(labels.shape[0], num_classes, device=labels.device)
    return self_kd_targets(labels, teacher, eps)
