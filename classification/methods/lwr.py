"""LWR -- Deng & Zhang, "Learning with Retrospection", AAAI 2021 (code:
Xiang-Deng-DL/Learning-With-Retrospection, train_LWR.py and helper/loops.py).

Each sample's soft label is its own prediction softened at temperature tau, softmax(z / tau),
refreshed every k epochs: the labels used in epochs mk+1 .. mk+k are the predictions of epoch mk
(the official code stores every sample's logits each epoch and reloads the soft labels after
epochs k, 2k, ...). The first k epochs train on cross entropy alone; after that, with
c = floor(t / k) k and H = `horizon`,

    loss = (gamma + (1 - c / H)(1 - gamma)) CE + (c / H)(1 - gamma) tau^2 KL(soft || softmax(z / tau)),

the KL summed over classes and averaged over the batch (its KL criterion). Its CIFAR-100 setting
(train_script.sh, ResNet-18): k = 5, tau = 5, gamma = 0.1; H = 240 is the constant in its loss
(its code's schedule length). Its own recipe is 200 epochs, lr 0.1 x0.1 after epochs 100 and 150.

The soft labels live in the prediction bank (core.bank.PredictionBank) holding softmax(z / tau):
rows are written only in the refresh epochs (t % k == 0). Every sample is read (its targets) before
it is written (after its step) within an epoch, so the rows read in epochs mk+1 .. mk+k are those
of epoch mk, one bank instead of the official code's two copies.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.bank import PredictionBank, bank_checksum
from core.config import ConfigError
from core.dist import update_bank

from .base import Method


@dataclass
class LWRConfig:
    k: int = 5  # soft labels refreshed every k epochs (its code's --eta / -e)
    temperature: float = 5.0  # tau (its --kd_T)
    gamma: float = 0.1  # the floor of the cross-entropy weight (its -r / --gamma)
    horizon: int = 240  # H, the epoch count in its loss weights (a constant in its code)


def lwr_loss(logits, labels, soft, epoch: int, cfg) -> torch.Tensor:
    """LWR's loss at epoch `epoch` (module docstring); soft: (B, K) softened past predictions."""
    ce = F.cross_entropy(logits, labels)
    if epoch <= cfg.k:
        return ce
    w = (epoch // cfg.k) * cfg.k / cfg.horizon
    t = cfg.temperature
    kl = F.kl_div(F.log_softmax(logits / t, dim=1), soft, reduction="sum") * t ** 2 / logits.shape[0]
    return (cfg.gamma + (1 - w) * (1 - cfg.gamma)) * ce + w * (1 - cfg.gamma) * kl


class LWR(Method):
    Config = LWRConfig

    def __init__(self, cfg, ctx, regularizer=None):
        super().__init__(cfg, ctx, regularizer)
        self.bank = PredictionBank(len(ctx.train_set), ctx.num_classes, ctx.dist.device)
        self.epoch = 0

    @staticmethod
    def check(cfg) -> None:
        if cfg.k < 1 or cfg.temperature <= 0 or not 0.0 <= cfg.gamma <= 1.0 or cfg.horizon < 1:
            raise ConfigError(f"method.lwr needs k >= 1, temperature > 0, gamma in [0, 1] and horizon >= 1, got "
                              f"{cfg.k}, {cfg.temperature}, {cfg.gamma}, {cfg.horizon}")

    def start_epoch(self, model, epoch):
        self.epoch = self.bank.epoch = epoch
        w = (epoch // self.cfg.k) * self.cfg.k / self.cfg.horizon if epoch > self.cfg.k else 0.0
        return {"alpha": 0.0, "lwr_kd_weight": w * (1 - self.cfg.gamma)}

    def loss(self, model, x, y, idx):
        soft = self.bank.teacher(idx, y).to(x.device) if self.epoch > self.cfg.k else None
        with self.autocast(x):
            logits = model(x)
        return lwr_loss(logits.float(), y, soft, self.epoch, self.cfg), logits

    def after_step(self, idx, logits):
        if self.epoch % self.cfg.k == 0:  # a refresh epoch: these predictions are the next k epochs' labels
            update_bank(self.bank, self.ctx.dist, idx, logits.float() / self.cfg.temperature, True)

    def end_epoch(self):
        return self.bank.row_age()

    def state_dict(self):
        return self.bank.state_dict()

    def load_state_dict(self, state):
        if state is None:
            raise ConfigError("holds no LWR soft labels (written by another method?)")
        self.bank.load_state_dict(state)

    def checksum(self):
        return bank_checksum(self.bank)


METHOD = LWR
