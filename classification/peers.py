"""The peers of Self-KD in the same harness (the official PS-KD README compares with both).

CS-KD -- Yun, Park, Lee, Shin, "Regularizing Class-wise Predictions via Self-Knowledge
Distillation", CVPR 2020 (code: alinlab/cs-kd). Each batch holds B anchors and, for each, a
random other sample of the same class; the loss is cross entropy on the anchors plus
lambda * T^2 * KL(softmax(z_partner / T) || softmax(z_anchor / T)), summed over classes and
averaged over anchors, the partner's side computed without gradient (in train mode, after the
anchors' forward, as its code). Its defaults: T = 4, lambda = 1.

TF-KD-reg -- Yuan, Tay, Li, Wang, Feng, "Revisiting Knowledge Distillation via Label Smoothing
Regularization", CVPR 2020 (code: yuanli2333/Teacher-free-Knowledge-Distillation). A hand-made
teacher p^d: 0.99 on the true class, the rest uniform; its code then takes softmax(p^d / T) as
the teacher distribution and minimises (1 - alpha) CE + alpha * m * KL_mean(teacher || model),
where KL_mean is torch's default element mean (over B x K) and m its "multiplier". With m = K
(its CIFAR-100 ResNet-18 setting: m = 100) that is (1 - alpha) CE + alpha * KL averaged over the
batch, i.e. soft-target cross entropy with targets (1 - alpha) onehot + alpha softmax(p^d / T)
plus a constant (the teacher's entropy): what `tfkd_targets` builds. Its CIFAR-100 ResNet-18
defaults: alpha = 0.1, T = 20.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def tfkd_targets(labels: torch.Tensor, num_classes: int, alpha: float, temperature: float,
                 correct_prob: float = 0.99) -> torch.Tensor:
    """(B, K) targets (1 - alpha) onehot + alpha softmax(p^d / T) of TF-KD-reg (module docstring)."""
    if not 0.0 <= alpha <= 1.0 or temperature <= 0 or not 0.0 < correct_prob < 1.0:
        raise ValueError(f"tfkd needs alpha in [0, 1], T > 0, correct_prob in (0, 1); got {alpha}, "
                         f"{temperature}, {correct_prob}")
    onehot = F.one_hot(labels.long(), num_classes).float()
    designed = onehot * correct_prob + (1 - onehot) * (1 - correct_prob) / (num_classes - 1)
    return (1 - alpha) * onehot + alpha * torch.softmax(designed / temperature, dim=1)


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
