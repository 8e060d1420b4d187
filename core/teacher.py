"""Snapshot teacher (Sec. 2.2, first implementation): at the start of epoch t a frozen copy of the
model as it ended epoch t-1 gives p_{t-1} on the fly. No teacher at epoch 1."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class SnapshotTeacher:
    """probs_fn(model, output) -> probabilities turns the model's output into p_{t-1}; the default
    is a softmax over the last dimension of logits (fairseq models return a tuple and have
    get_normalized_probs)."""

    def __init__(self, probs_fn=None):
        self.probs_fn = probs_fn or (lambda model, out: torch.softmax(out.float(), dim=-1))
        self.model: nn.Module | None = None
        self.epoch: int | None = None  # the epoch whose end the snapshot holds

    def refresh(self, model: nn.Module, epoch: int) -> None:
        """Call at the start of epoch `epoch` (1-based) with the live model."""
        if epoch <= 1:
            self.model, self.epoch = None, None
            return
        snap = copy.deepcopy(model)
        snap.eval()
        for p in snap.parameters():
            p.requires_grad_(False)
        self.model, self.epoch = snap, epoch - 1

    @torch.no_grad()
    def probs(self, *args, **kwargs) -> torch.Tensor | None:
        """The snapshot's probabilities for this input (no autograd graph), or None when there is
        no teacher yet (epoch 1)."""
        if self.model is None:
            return None
        return self.probs_fn(self.model, self.model(*args, **kwargs))
