"""The interface every classification training method implements, and its plain form: one-hot
targets (or the rule's own targets) with soft-target cross entropy, optionally composed with a
batch regulariser (classification/augment.py). The training loop (classification/train.py) calls,
per epoch, start_epoch -> [loss -> optimiser step -> after_step] per batch -> end_epoch, and
saves state_dict() in every checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.dist import Dist
from core.losses import soft_cross_entropy


@dataclass
class Context:
    """What a method may need besides its own config, fixed for the run."""
    num_classes: int
    train_set: Any          # the training Dataset (len; .base.targets and .indices for samplers)
    epochs: int             # the schedule length (alpha_t of Eq. 5, LWR's weights)
    dist: Dist              # rank, world and device; bank writes gather across ranks
    seed: int = 0
    run_dir: Path | None = None  # where a memory-mapped bank lives
    amp_dtype: torch.dtype | None = None  # autocast dtype of the training forward (None: fp32)


class Method:
    """One training method, built once per run from its own config section (`Config`, the
    dataclass of method.<rule>.*; None when it has no settings) and a regulariser (None, or a
    callable of classification/augment.py)."""
    Config = None
    single_process = False  # True: refuses DDP (its batches are not split over ranks)

    def __init__(self, cfg, ctx: Context, regularizer=None):
        self.cfg, self.ctx, self.regularizer = cfg, ctx, regularizer

    @staticmethod
    def check(cfg) -> None:
        """One-line ConfigError for a value of its config section out of range."""

    # -- per epoch
    def start_epoch(self, model, epoch: int) -> dict:
        """Called before epoch `epoch`'s first batch with the unwrapped model; returns the epoch
        line's fields known now (alpha: the Self-KD weight in force, 0 for a method without one)."""
        return {"alpha": 0.0}

    def end_epoch(self) -> dict:
        """Epoch-line fields known after the epoch's last step (e.g. the bank's row ages)."""
        return {}

    def batches(self, order: list[int], batch_size: int, epoch: int):
        """The epoch's batches as lists of dataset indices, or None for `order` cut into chunks of
        batch_size (the default). A function of (seed, epoch) only, so a resume replays it."""
        return None

    # -- per batch
    def autocast(self, x):
        amp = self.ctx.amp_dtype
        return torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """(B, K) targets of the rule alone (one-hot here)."""
        return F.one_hot(y, self.ctx.num_classes).float()

    def batch(self, x, y, idx):
        """(inputs, (B, K) targets) of one batch: the rule's targets; with a regulariser, the whole
        batch regularised when it applies."""
        targets = self.targets(y)
        if self.regularizer is not None and self.regularizer.applies():
            x, targets = self.regularizer(x, targets)
        return x, targets

    def loss(self, model, x, y, idx):
        """(loss, logits) of one batch: soft-target cross entropy against batch()'s targets.
        logits are those of y[:len(logits)] (the rows of the training metrics)."""
        x, targets = self.batch(x, y, idx)
        with self.autocast(x):
            logits = model(x)
        return soft_cross_entropy(logits, targets), logits

    def after_step(self, idx, logits) -> None:
        """After the optimiser step, with the batch's indices and detached logits."""

    # -- checkpoint
    def state_dict(self):
        """What a checkpoint must hold besides model and optimiser to resume (None: nothing)."""
        return None

    def load_state_dict(self, state) -> None:
        pass

    def checksum(self):
        """A float64 scalar tensor every DDP rank must agree on at the end (None: nothing to compare)."""
        return None
