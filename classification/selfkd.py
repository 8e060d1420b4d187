"""The training targets of a classification batch: Self-KD's (Eq. 6, from p_{t-1}, the previous
epoch's predictions), label smoothing's, or one-hot, alone or combined with Cutout / CutMix
(Sec. 3.1, Appendix B.1). The training step (classification.train.train_step) calls
prepare_batch, and after its forward pass writes the bank rows prepare_batch marks.

p_{t-1} has two sources (Sec. 2.2, `method.selfkd.teacher`): the prediction bank (core.bank, the
official code's way: each sample's row written by its train-mode forward in epoch t-1) or the snapshot
teacher (core.teacher.SnapshotTeacher: the model as it ended epoch t-1, in eval mode, on this same
augmented batch, one extra forward; the paper's way on ImageNet).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.methods import get_method, method_names
from core.targets import label_smoothing_targets, self_kd_targets
from core.teacher import SnapshotTeacher

from .augment import cutmix, cutout
from .peers import tfkd_targets

METHODS = method_names("classification")


def method_parts(name: str) -> set[str]:
    """'cutmix_sd_selfkd' -> {'cutmix', 'sd', 'selfkd'}, from the method's registered spec
    (core.methods), not from its spelling; ShakeDrop ('sd') is a model option."""
    return get_method(name, "classification").parts


def past_predictions(teacher, x, idx, labels, num_classes: int, rows=None, amp_dtype=None) -> torch.Tensor:
    """p_{t-1} of Eq. 6, (B, K) float32 on x's device. teacher: a PredictionBank /
    TopKPredictionBank (the rows of idx; one-hot where never written) or a SnapshotTeacher (its
    prediction on x, under autocast to amp_dtype as the training forward; one-hot in epoch 1, no
    teacher yet). rows: (B,) bool, the samples whose p_{t-1} is used; the snapshot's forward
    skips the others (they get one-hot)."""
    if not isinstance(teacher, SnapshotTeacher):
        return teacher.teacher(idx, labels).to(x.device)
    out = F.one_hot(labels, num_classes).float()
    if teacher.model is not None:
        with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            if rows is None:
                out = teacher.probs(x).float()
            else:
                out[rows] = teacher.probs(x[rows]).float()
    return out


def prepare_batch(parts: set[str], x, labels, idx, teacher, alpha: float, num_classes: int, *,
                  ls_eps: float = 0.1, cutout_size: int = 8, cutmix_beta: float = 1.0,
                  cutmix_prob: float = 0.5, cutout_updates_bank: bool = True, tfkd=(0.1, 20.0, 0.99),
                  amp_dtype=None):
    """Inputs and (B, K) soft targets for one training batch, and which bank rows to overwrite
    with this forward pass's predictions: a (B,) bool mask, True for all of them, or None when
    nothing is written (no bank, or the snapshot teacher). teacher: where p_{t-1} comes from (past_predictions), None without Self-KD.

    Self-KD combined with Cutout or CutMix (Sec. 3.1): a random half of the batch is trained with
    Self-KD targets (and writes its bank rows); the other half gets the other regulariser with
    hard targets. A CutMix'd sample does NOT overwrite its bank row: its image is a mix of two
    samples, so its prediction is not p(x) for that x. A Cutout'd sample is still that sample
    (occluded, like a crop), so it does write its row (cutout_updates_bank=False turns that off).
    """
    b = x.shape[0]

    def onehot():
        return F.one_hot(labels, num_classes).float()

    if "tfkd" in parts:  # TF-KD-reg: a hand-made teacher (classification/peers.py)
        return x, tfkd_targets(labels, num_classes, *tfkd), None
    if "selfkd" not in parts:
        if "ls" in parts:
            return x, label_smoothing_targets(labels, num_classes, ls_eps), None
        if "cutout" in parts:
            return cutout(x, cutout_size), onehot(), None
        if "cutmix" in parts and float(torch.rand(())) < cutmix_prob:  # per batch, as CutMix's code
            return (*cutmix(x, labels, num_classes, cutmix_beta), None)
        return x, onehot(), None
    writes = not isinstance(teacher, SnapshotTeacher)  # only a bank is written
    if not parts & {"cutout", "cutmix"}:
        targets = self_kd_targets(labels, past_predictions(teacher, x, idx, labels, num_classes,
                                                           amp_dtype=amp_dtype), alpha)
        return x, targets, True if writes else None  # True: every row (core.dist.update_bank)
    # the half-batch rule: exactly b // 2 samples (a random subset) go to Self-KD
    kd = torch.zeros(b, dtype=torch.bool, device=x.device)
    kd[torch.randperm(b, device=x.device)[: b // 2]] = True
    other = ~kd
    targets = self_kd_targets(labels, past_predictions(teacher, x, idx, labels, num_classes, kd, amp_dtype), alpha)
    x = x.clone()
    if "cutout" in parts:
        x[other] = cutout(x[other], cutout_size)
        targets[other] = onehot()[other]
        update = torch.ones_like(kd) if cutout_updates_bank else kd
    else:
        if b - b // 2 > 0:  # the other half is never empty for b >= 1 (and counting it on a GPU would sync)
            x[other], targets[other] = cutmix(x[other], labels[other], num_classes, cutmix_beta)
        update = kd
    return x, targets, update if writes else None
