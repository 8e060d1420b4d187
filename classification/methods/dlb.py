"""DLB -- Shen, Xu, Yang, Li, Guo, "Self-Distillation from the Last Mini-Batch for Consistency
Regularization", CVPR 2022 (Algorithm 1; no code from the authors was found to port, so the
loss follows the paper's equations).

Half of each batch is the second half of the previous batch (the same samples, a fresh
augmentation), and those samples are pulled towards the predictions the previous iteration made
for them, detached, at temperature T:

    CE(z_t, y) + alpha * T^2 * KL(softmax(z_{t-1} / T) || softmax(z_t / T)) on the repeated half,

the KL summed over classes and averaged over the repeated samples; the batch's other half is
stored (its logits detached) for the next iteration. Its CIFAR setting: T = 3, alpha = 1.

The batches (`batches`): the epoch's shuffle cut into chunks of B // 2, batch i = chunks i and
i + 1, so every batch but the first starts with the previous batch's second half. The chain
restarts each epoch (the first batch has no KL term), so a resumed run needs no state.
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

    def __init__(self, cfg, ctx, regularizer=None):
        super().__init__(cfg, ctx, regularizer)
        self.half, self.last = 0, None

    @staticmethod
    def check(cfg) -> None:
        if cfg.alpha < 0 or cfg.temperature <= 0:
            raise ConfigError(f"method.dlb.alpha must be >= 0 and method.dlb.temperature > 0, got "
                              f"{cfg.alpha}, {cfg.temperature}")

    def batches(self, order, batch_size, epoch):
        self.half, self.last = max(1, batch_size // 2), None
        chunks = [order[s:s + self.half] for s in range(0, len(order), self.half)]
        return [a + b for a, b in zip(chunks, chunks[1:])] or chunks

    def loss(self, model, x, y, idx):
        with self.autocast(x):
            logits = model(x)
        z = logits.float()
        loss = dlb_loss(z, y, self.last, self.cfg.alpha, self.cfg.temperature)
        self.last = z[self.half:].detach()  # the next batch's first half
        return loss, logits


METHOD = DLB
