"""CS-KD -- Yun, Park, Lee, Shin, "Regularizing Class-wise Predictions via Self-Knowledge
Distillation", CVPR 2020 (code: alinlab/cs-kd).

Each batch holds B anchors and, for each, a random other sample of the same class; the loss is
cross entropy on the anchors plus lambda * T^2 * KL(softmax(z_partner / T) || softmax(z_anchor / T)),
summed over classes and averaged over anchors, the partner's side computed without gradient (in
train mode, after the anchors' forward, as its code). Its defaults: T = 4, lambda = 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.config import ConfigError

from .base import Method


@dataclass
class CSKDConfig:
    temperature: float = 4.0  # T of the KL term
    lam: float = 1.0  # lambda, the weight of the KL term


def cskd_loss(anchor_logits: torch.Tensor, partner_logits: torch.Tensor, labels: torch.Tensor,
              temperature: float = 4.0, lam: float = 1.0) -> torch.Tensor:
    """CE(anchors) + lam * T^2 * KL(softmax(partner / T) || softmax(anchor / T)), batch mean."""
    ce = F.cross_entropy(anchor_logits, labels)
    log_p = torch.log_softmax(anchor_logits / temperature, dim=1)
    q = torch.softmax(partner_logits.detach() / temperature, dim=1)
    kl = F.kl_div(log_p, q, reduction="sum") * temperature ** 2 / anchor_logits.shape[0]
    return ce + lam * kl


class ClassPairBatches:
    """CS-KD's batches for one epoch: the epoch's shuffle (core.sampler.EpochSampler) cut into
    batches of `batch_size` anchors, each batch followed by one same-class partner per anchor,
    drawn uniformly from the other samples of its class (itself when it is alone). A function of
    (seed, epoch) only, so a resumed run replays it."""

    def __init__(self, labels, order, batch_size: int, seed: int, epoch: int):
        self.labels = torch.as_tensor(labels).long()
        self.order, self.batch_size = list(order), batch_size
        self.g = torch.Generator().manual_seed(seed * 100_003 + epoch * 7 + 1)
        self.by_class = {int(c): torch.nonzero(self.labels == c).flatten() for c in self.labels.unique()}

    def partner(self, i: int) -> int:
        pool = self.by_class[int(self.labels[i])]
        if len(pool) == 1:
            return i
        j = i
        while j == i:
            j = int(pool[torch.randint(len(pool), (1,), generator=self.g)])
        return j

    def __iter__(self):
        for s in range(0, len(self.order), self.batch_size):
            anchors = self.order[s:s + self.batch_size]
            yield anchors + [self.partner(i) for i in anchors]

    def __len__(self):
        return -(-len(self.order) // self.batch_size)


class CSKD(Method):
    Config = CSKDConfig
    single_process = True  # its pair batches are not split over ranks

    @staticmethod
    def check(cfg) -> None:
        if cfg.temperature <= 0 or cfg.lam < 0:
            raise ConfigError(f"method.cskd.temperature must be > 0 and method.cskd.lam >= 0, got "
                              f"{cfg.temperature}, {cfg.lam}")

    def batches(self, order, batch_size, epoch):
        train = self.ctx.train_set
        labels = [train.base.targets[i] for i in train.indices]
        return ClassPairBatches(labels, order, batch_size, self.ctx.seed, epoch)

    def loss(self, model, x, y, idx):
        """Anchors are the first half of the batch, their partners the second; the logits returned
        are the anchors'."""
        h = len(y) // 2
        with self.autocast(x):
            logits = model(x[:h])
            with torch.no_grad():  # the partner side, after the anchors' forward (CS-KD's code)
                partner = model(x[h:])
        return cskd_loss(logits.float(), partner.float(), y[:h], self.cfg.temperature, self.cfg.lam), logits


METHOD = CSKD
