"""DLB -- Shen, Xu, Yang, Li, Guo, "Self-Distillation from the Last Mini-Batch for Consistency
Regularization", CVPR 2022 (code: Meta-knowledge-Lab/DLB, dlb.py: train_one_epoch).

Each step trains on the previous step's samples (a fresh augmentation) and a new chunk of the
shuffle; the previous samples are pulled towards the predictions the previous step made for
them, detached, at temperature T:

    CE over both parts + alpha * T^2 * KL(softmax(z_{t-1} / T) || softmax(z_t / T)) on the previous part,

the KL summed over classes and averaged over the previous part's samples (batchmean). As in its
code, the two parts go through the model separately (the new part first), so BatchNorm sees
each part as a batch of its own; the first step of training has no previous part; the chain runs
on across epochs (the last chunk of an epoch is the previous part of the next epoch's first
step), so the method's state (the last chunk's indices and logits) goes into the checkpoint.
Its script takes T and alpha on the command line with no default and its README gives no command;
T = 3, alpha = 1 here, as we read the paper's implementation details (the script's default
experiment name, "TP3_0.5", hints at T = 3 with another value for one of its knobs: unverified).

`optim.batch_size` is the whole step's batch: chunks of B // 2 new samples (its --batch_size).
One process only: every rank would hold a different last chunk, and the checkpoint holds rank 0's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.config import ConfigError

from .base import Method


@dataclass
class DLBConfig:
    alpha: float = 1.0  # weight of the KL term
    temperature: float = 3.0  # T


def dlb_loss(logits, labels, last_logits, alpha: float, temperature: float) -> torch.Tensor:
    """CE over the batch + alpha T^2 KL(last || now) over its first len(last_logits) rows (None: CE alone)."""
    ce = F.cross_entropy(logits, labels)
    if last_logits is None:
        return ce
    t, h = temperature, len(last_logits)
    q = F.softmax(last_logits.detach() / t, dim=1)
    kl = F.kl_div(F.log_softmax(logits[:h] / t, dim=1), q, reduction="sum") / h
    return ce + alpha * t ** 2 * kl


class DLB(Method):
    Config = DLBConfig
    single_process = True

    def __init__(self, cfg, ctx, regularizer=None):
        super().__init__(cfg, ctx, regularizer)
        self.prev: list[int] = []  # the last chunk of the batches handed out so far
        self.last = None  # the logits the last step gave its new chunk (None before the first step)

    @staticmethod
    def check(cfg) -> None:
        if cfg.alpha < 0 or cfg.temperature <= 0:
            raise ConfigError(f"method.dlb.alpha must be >= 0 and method.dlb.temperature > 0, got "
                              f"{cfg.alpha}, {cfg.temperature}")

    def batches(self, order, batch_size, epoch):
        """Chunks of batch_size // 2 new samples, each step's batch = the previous chunk + the new one."""
        half = max(1, batch_size // 2)
        out, prev = [], self.prev
        for s in range(0, len(order), half):
            chunk = order[s:s + half]
            out.append(prev + chunk)
            prev = chunk
        self.prev = prev
        return out

    def loss(self, model, x, y, idx):
        h = 0 if self.last is None else len(self.last)
        with self.autocast(x):
            new = model(x[h:])  # the new chunk first, then the repeated one, as its code
            logits = torch.cat([model(x[:h]), new]) if h else new
        z = logits.float()
        loss = dlb_loss(z, y, self.last, self.cfg.alpha, self.cfg.temperature)
        self.last = z[h:].detach()
        return loss, logits

    def state_dict(self):
        if self.last is None:
            return None
        return {"prev": torch.tensor(self.prev, dtype=torch.long), "last": self.last.cpu()}

    def load_state_dict(self, state):
        if state is None:
            return  # a checkpoint written before DLB's first step
        if not isinstance(state, dict) or "last" not in state:
            raise ConfigError("holds no DLB state (written by another method?)")
        self.prev = state["prev"].tolist()
        self.last = state["last"].to(self.ctx.dist.device)


METHOD = DLB
