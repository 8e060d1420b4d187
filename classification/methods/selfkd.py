"""Self-KD (PS-KD), the paper's method: targets (1 - alpha_t) onehot + alpha_t p_{t-1} (Eq. 6), with
alpha_t growing to alpha_T over training (Eq. 5, core.schedules.alpha_at).

p_{t-1} has two sources (Sec. 2.2, `method.selfkd.teacher`): the prediction bank (core.bank, the
official code's way: each sample's row written by its train-mode forward in epoch t-1) or the
snapshot teacher (core.teacher.SnapshotTeacher: the model as it ended epoch t-1, in eval mode, on
this same augmented batch, one extra forward; the paper's way on ImageNet). In epoch 1 there is
no p_0: unwritten bank rows and the absent snapshot are the one-hot label.

Combined with Cutout or CutMix (Sec. 3.1), the half-batch rule: a random half of the batch
(exactly B // 2 samples) is trained with Self-KD targets and writes its bank rows; the other half
gets the regulariser with one-hot targets. Whether a regularised sample writes its row is the
regulariser's `writes_bank` (Cutout: yes, an occluded sample is still that sample; CutMix: no,
a mixed image is not p(x) of either sample).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from core.bank import PredictionBank, TopKPredictionBank, bank_checksum
from core.config import ConfigError
from core.dist import update_bank
from core.schedules import KINDS, alpha_at
from core.targets import self_kd_targets
from core.teacher import SnapshotTeacher

from .base import Method


@dataclass
class BankConfig:
    # Self-KD's prediction bank (core.bank; used with method.selfkd.teacher=bank).
    dtype: str = "float32"  # float32 (official) | float16
    device: str = "auto"  # auto = the training device; "cpu" = the official per-step host copy
    storage: str = "memory"  # memory | mmap (a memory-mapped file in the run folder)
    topk: int = 0  # >0: a sparse bank of the k largest probabilities per sample (core.bank.TopKPredictionBank)


@dataclass
class SelfKDConfig:
    # alpha at the last epoch: 0.8 is the official code's CIFAR default (main.py); the paper chose
    # 0.7 for CIFAR-100 (Sec. 3.1), which the Table 1 / Fig. 2 Self-KD rows set.
    alpha_T: float = 0.8
    alpha_kind: str = "linear"  # Eq. 5; fixed/step/exp/cosine for the Fig. 2 ablation
    # Where p_{t-1} comes from (Sec. 2.2): bank = the prediction bank (the official code; `bank`
    # below); snapshot = the model as it ended the previous epoch, in eval mode on the same
    # augmented batch (one extra forward, a model copy in memory, no bank; the paper's way on ImageNet).
    teacher: str = "bank"
    bank: BankConfig = field(default_factory=BankConfig)


def build_bank(cfg: BankConfig, num_samples: int, num_classes: int, device, run_dir):
    """The prediction bank `cfg` describes (dense, memory-mapped or top-k)."""
    bank_device = device if cfg.device == "auto" else torch.device(cfg.device)
    dtype = getattr(torch, cfg.dtype)
    if cfg.topk > 0:
        if cfg.storage != "memory" or not cfg.topk < num_classes:
            raise ConfigError(f"method.selfkd.bank.topk must be < {num_classes} classes and use "
                              f"method.selfkd.bank.storage=memory, got {cfg.topk}, {cfg.storage}")
        return TopKPredictionBank(num_samples, num_classes, cfg.topk, bank_device, dtype)
    path = run_dir / "bank.npy" if cfg.storage == "mmap" else None
    return PredictionBank(num_samples, num_classes, bank_device, dtype, path)


class SelfKD(Method):
    Config = SelfKDConfig

    def __init__(self, cfg, ctx, regularizer=None):
        super().__init__(cfg, ctx, regularizer)
        self.alpha = 0.0
        self.snapshot = SnapshotTeacher() if cfg.teacher == "snapshot" else None
        self.bank = None if self.snapshot else build_bank(cfg.bank, len(ctx.train_set), ctx.num_classes,
                                                          ctx.dist.device, ctx.run_dir)
        self.writes = None  # the rows the last batch writes: True (all), a (B,) bool mask, or None

    @staticmethod
    def check(cfg) -> None:
        if not 0.0 <= cfg.alpha_T <= 1.0:
            raise ConfigError(f"method.selfkd.alpha_T must be in [0, 1], got {cfg.alpha_T}")
        if cfg.alpha_kind not in KINDS:
            raise ConfigError(f"unknown method.selfkd.alpha_kind {cfg.alpha_kind!r}; expected one of {', '.join(KINDS)}")
        choices = {"method.selfkd.bank.dtype": (cfg.bank.dtype, ("float32", "float16")),
                   "method.selfkd.bank.storage": (cfg.bank.storage, ("memory", "mmap")),
                   "method.selfkd.teacher": (cfg.teacher, ("bank", "snapshot"))}
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")

    def start_epoch(self, model, epoch):
        self.alpha = alpha_at(epoch, self.ctx.epochs, self.cfg.alpha_T, self.cfg.alpha_kind)
        if self.snapshot is not None:
            # the model as it ended epoch - 1, on every rank rank 0's (the checkpoint's) buffers;
            # after a resume: as restored from that epoch's checkpoint, the same weights
            self.ctx.dist.broadcast_buffers(model)
            self.snapshot.refresh(model, epoch)
        else:
            self.bank.epoch = epoch  # this epoch's writes carry it (row ages)
        # alpha in force: at epoch 1 there is no p_0, so the targets are one-hot whatever Eq. 5 gives
        in_force = self.alpha if epoch > 1 else 0.0
        return {"alpha": in_force, **({"alpha_schedule": self.alpha} if in_force != self.alpha else {})}

    def end_epoch(self):
        """The bank's row ages (core.bank.row_age_stats: with CutMix, rows go stale), or the epoch
        whose end the snapshot holds (0 in epoch 1: no teacher)."""
        if self.snapshot is not None:
            return {"teacher_epoch": self.snapshot.epoch or 0}
        return self.bank.row_age()

    def past_predictions(self, x, y, idx, rows=None) -> torch.Tensor:
        """p_{t-1} of Eq. 6, (B, K) float32 on x's device: the bank rows of idx (one-hot where never
        written) or the snapshot's prediction on x (under the training forward's autocast; one-hot
        in epoch 1). rows: (B,) bool, the samples whose p_{t-1} is used; the snapshot's forward
        skips the others (they get one-hot)."""
        if self.snapshot is None:
            return self.bank.teacher(idx, y).to(x.device)
        out = F.one_hot(y, self.ctx.num_classes).float()
        if self.snapshot.model is not None:
            with self.autocast(x):
                if rows is None:
                    out = self.snapshot.probs(x).float()
                else:
                    out[rows] = self.snapshot.probs(x[rows]).float()
        return out

    def batch(self, x, y, idx):
        """(inputs, targets) of one batch, and which bank rows its forward writes (self.writes)."""
        writes = self.bank is not None
        if self.regularizer is None:
            self.writes = True if writes else None  # True: every row (core.dist.update_bank)
            return x, self_kd_targets(y, self.past_predictions(x, y, idx), self.alpha)
        b = x.shape[0]
        kd = torch.zeros(b, dtype=torch.bool, device=x.device)
        kd[torch.randperm(b, device=x.device)[: b // 2]] = True
        other = ~kd
        targets = self_kd_targets(y, self.past_predictions(x, y, idx, kd), self.alpha)
        x = x.clone()
        x[other], targets[other] = self.regularizer(x[other], F.one_hot(y, self.ctx.num_classes).float()[other])
        update = torch.ones_like(kd) if self.regularizer.writes_bank else kd
        self.writes = update if writes else None
        return x, targets

    def after_step(self, idx, logits):
        if self.writes is not None:
            # p_{t-1} for the next epoch: this train-mode forward pass's prediction (official code)
            update_bank(self.bank, self.ctx.dist, idx, logits, self.writes)

    def state_dict(self):
        return None if self.bank is None else self.bank.state_dict()

    def load_state_dict(self, state):
        if self.bank is None:
            return
        if state is None:
            raise ConfigError("the checkpoint holds no prediction bank (written with method.selfkd.teacher=snapshot "
                              "or without Self-KD?); resume it with those settings")
        self.bank.load_state_dict(state)

    def checksum(self):
        return bank_checksum(self.bank) if isinstance(self.bank, PredictionBank) else None


METHOD = SelfKD
