"""fairseq task ``self_kd_translation``: the translation task plus the Self-KD teacher.

At the start of epoch t (fairseq calls ``begin_epoch(t, model)`` before the first batch) the task
takes a frozen snapshot of the model as it ended epoch t-1 (core.teacher.SnapshotTeacher: deep
copy, eval mode, requires_grad off, same dtype and device as the trained model). Epoch 1 has no
teacher. The criterion (criterion.py) reads ``task.snapshot`` and ``task.epoch`` and sets
``task.teacher_mode``: "eval" (the default: no dropout, the teacher's distribution is a function
of the input) or "train" (the snapshot keeps dropout on, as a forward pass of the training model
would give the predictions; its masks are drawn after the student's forward, from fairseq's
per-update seed, so the student's masks and a resumed run are unchanged).

Resume: fairseq restores checkpoint_last.pt (written at the end of an epoch) before calling
``begin_epoch`` for the next epoch, so the snapshot taken then is the same teacher the
uninterrupted run had. This holds because translation.train never writes mid-epoch checkpoints
(no --save-interval-updates / --stop-time-hours); a mid-epoch checkpoint would make the resumed
teacher the mid-epoch model.
"""
from __future__ import annotations

from fairseq.logging import metrics
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from core.teacher import SnapshotTeacher


@register_task("self_kd_translation", dataclass=TranslationConfig)
class SelfKDTranslationTask(TranslationTask):
    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.snapshot = SnapshotTeacher(lambda m, out: m.get_normalized_probs(out, log_probs=False))
        self.epoch = 1
        self.keep_teacher = False  # set by the criterion when alpha_T > 0
        self.teacher_mode = "eval"  # set by the criterion (--selfkd-teacher-mode)

    def begin_epoch(self, epoch, model):
        super().begin_epoch(epoch, model)
        self.epoch = epoch
        if self.keep_teacher:
            self.snapshot.refresh(model, epoch)  # None at epoch 1
            if self.teacher_mode == "train" and self.snapshot.model is not None:
                self.snapshot.model.train()  # dropout on; still no autograd (probs: no_grad)

    def get_batch_iterator(self, dataset, *args, epoch=1, **kwargs):
        # fairseq-fixed orders examples by length after a shuffle seeded with (seed + epoch),
        # where epoch is the epoch at which the iterator is *built*. An uninterrupted run builds
        # it once at epoch 1 and reuses it; a resumed run would build it at the resume epoch, so
        # sentences of equal length land in a different order within their batch and get other
        # dropout masks (dropout is seeded per update). Build reusable iterators as at epoch 1:
        # checkpoint loading then moves the iterator to the saved epoch (load_state_dict), and
        # batch order per epoch stays shuffled with seed + epoch as before.
        if epoch > 1 and self.can_reuse_epoch_itr(dataset):
            epoch = 1
        return super().get_batch_iterator(dataset, *args, epoch=epoch, **kwargs)

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        # Per-epoch constants: weight 0 keeps the last value instead of averaging (as fairseq's lr).
        if hasattr(criterion, "alpha_in_force"):
            metrics.log_scalar("alpha", criterion.alpha_in_force(), weight=0, round=6)
        teacher_epoch = self.snapshot.epoch if self.snapshot.model is not None else 0
        metrics.log_scalar("teacher_epoch", teacher_epoch, weight=0)
