"""fairseq criterion ``self_kd_cross_entropy``: cross entropy against token-level soft targets.

Per non-padding target token y with model log-probabilities log q (Eq. 6):

    target = (1 - a) * onehot(y) + a * p_teacher          (core.targets.self_kd_targets)
    loss   = -sum_k target_k * log q_k  =  (1 - a) * (-log q_y) + a * (-sum_k p_teacher,k log q_k)

(the right-hand form is what is computed: no (tokens x vocab) target is built).

* Self-KD:  p_teacher = the frozen snapshot of the model as it ended the previous epoch (held by
  the task, see task.py), a = alpha_at(t, T, alpha_T, kind) (Eq. 5). Epoch 1 has no teacher: the
  loss is plain NLL (a in force = 0). The snapshot runs in eval mode (no dropout) by default;
  ``--selfkd-teacher-mode train`` keeps its dropout on (the paper does not say which).
* Label smoothing (Sec. 2.1): p_teacher = uniform over the V output symbols, a = eps.
  ``ls_convention="uniform"`` is the paper's/core's (1 - eps) onehot + eps / V.
  ``ls_convention="fairseq"`` matches fairseq's ``label_smoothed_cross_entropy`` exactly: it puts
  1 - eps on the target and eps / (V - 1) on every other symbol, which is the uniform teacher with
  a = eps * V / (V - 1).
* Baseline: a = 0.

Validation (model in eval mode) always reports plain NLL, so that checkpoint selection and the
logged valid loss are comparable across methods and epochs. Losses are logged in bits per token,
as fairseq's own criteria do (fairseq derives ppl = 2 ** nll_loss from that).
"""

import math
from dataclasses import dataclass, field

import torch
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from core.schedules import KINDS, alpha_at
from translation import task as _task  # noqa: F401  (the criterion needs its task registered too)

LS_CONVENTIONS = ("uniform", "fairseq")
TEACHER_MODES = ("eval", "train")


def self_kd_token_loss(lprobs: torch.Tensor, target: torch.Tensor, padding_idx: int,
                       teacher_probs: torch.Tensor | None = None, alpha: float = 0.0,
                       uniform_teacher: bool = False):
    """Summed soft-target cross entropy over the non-padding tokens (Eq. 6).

    lprobs: (N, V) log-probabilities of the model being trained; target: (N,) int64;
    teacher_probs: (N, V) rows summing to 1, or None with ``uniform_teacher`` (label smoothing: the
    teacher 1/V everywhere) or with alpha 0.
    Returns (loss_sum, nll_sum), scalars in nats; tokens with target == padding_idx contribute
    nothing to either.

    The same value and gradient as ``-sum_k self_kd_targets(y, p_teacher, a)_k log q_k`` over
    the non-padding rows (core.targets, the definition; tested equal), computed without copying
    the non-padding rows, without an int64 one-hot, and as one dot product whose backward is one
    scaled copy (see the comments below).
    """
    if lprobs.dim() != 2 or target.shape != lprobs.shape[:1]:
        raise ValueError(f"expected lprobs (N, V) and target (N,), got {tuple(lprobs.shape)} and "
                         f"{tuple(target.shape)}")
    if teacher_probs is None and not uniform_teacher and alpha != 0:
        raise ValueError(f"alpha={alpha} needs teacher_probs, got None")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    pad = target.eq(padding_idx)

    def token_nll():
        return -lprobs.gather(1, target.unsqueeze(1)).squeeze(1).masked_fill(pad, 0.0).sum()

    if alpha == 0:
        nll = token_nll()
        return nll, nll
    if uniform_teacher:
        nll = token_nll()
        ce = -lprobs.mean(1).masked_fill(pad, 0.0).sum()
        return (1.0 - alpha) * nll + alpha * ce, nll
    with torch.no_grad():
        nll = token_nll()  # logged only: the gradient flows through the weighted sum below
        # a * p_teacher + (1 - a) at the label, padding rows zero: built in one buffer of our
        # own (the caller's teacher tensor is not modified), then one dot product with log q.
        # Its backward is one scaled copy of that buffer: no gather / one-hot gradient to add.
        w = teacher_probs.to(lprobs.dtype) * alpha
        w.masked_fill_(pad.unsqueeze(1), 0.0)
        w.scatter_add_(1, target.unsqueeze(1), (~pad).to(w.dtype).unsqueeze(1) * (1.0 - alpha))
    return -torch.dot(w.reshape(-1), lprobs.reshape(-1)), nll


@dataclass
class SelfKDCrossEntropyConfig(FairseqDataclass):
    # Field names carry a prefix: a plugin field named like a global option (max_epoch, lr, seed)
    # would silently alias it.
    selfkd_alpha_T: float = field(default=0.0, metadata={
        "help": "alpha at the last epoch (Eq. 5); 0 disables Self-KD (no teacher is kept)"})
    selfkd_alpha_kind: str = field(default="linear", metadata={
        "help": f"alpha schedule, one of {', '.join(KINDS)} (core.schedules.alpha_at)"})
    selfkd_total_epochs: int = II("optimization.max_epoch")
    selfkd_teacher_mode: str = field(default="eval", metadata={
        "help": "the snapshot teacher's mode: eval (no dropout; default) or train (dropout on)"})
    ls_eps: float = field(default=0.0, metadata={
        "help": "label smoothing epsilon (a uniform teacher); exclusive with --selfkd-alpha-T"})
    ls_convention: str = field(default="uniform", metadata={
        "help": "uniform: eps/V on every symbol (paper); fairseq: eps/(V-1) on non-targets"})
    sentence_avg: bool = II("optimization.sentence_avg")


@register_criterion("self_kd_cross_entropy", dataclass=SelfKDCrossEntropyConfig)
class SelfKDCrossEntropyCriterion(FairseqCriterion):
    def __init__(self, task, selfkd_alpha_T, selfkd_alpha_kind, selfkd_total_epochs, ls_eps,
                 ls_convention, sentence_avg, selfkd_teacher_mode="eval"):
        super().__init__(task)
        if not 0.0 <= selfkd_alpha_T <= 1.0:
            raise ValueError(f"--selfkd-alpha-T must be in [0, 1], got {selfkd_alpha_T}")
        if selfkd_alpha_kind not in KINDS:
            raise ValueError(f"--selfkd-alpha-kind must be one of {', '.join(KINDS)}, "
                             f"got {selfkd_alpha_kind!r}")
        if not 0.0 <= ls_eps < 1.0:
            raise ValueError(f"--ls-eps must be in [0, 1), got {ls_eps}")
        if ls_convention not in LS_CONVENTIONS:
            raise ValueError(f"--ls-convention must be one of {', '.join(LS_CONVENTIONS)}, "
                             f"got {ls_convention!r}")
        if selfkd_teacher_mode not in TEACHER_MODES:
            raise ValueError(f"--selfkd-teacher-mode must be one of {', '.join(TEACHER_MODES)}, "
                             f"got {selfkd_teacher_mode!r}")
        if ls_eps > 0 and selfkd_alpha_T > 0:
            raise ValueError("--ls-eps and --selfkd-alpha-T are exclusive (LS is Self-KD with a "
                             "uniform teacher); set one of them to 0")
        if selfkd_alpha_T > 0 and not hasattr(task, "snapshot"):
            raise ValueError("self_kd_cross_entropy with --selfkd-alpha-T > 0 needs "
                             "--task self_kd_translation (it holds the snapshot teacher)")
        if selfkd_alpha_T > 0 and not selfkd_total_epochs:
            raise ValueError("Self-KD's linear alpha needs --max-epoch (T in Eq. 5)")
        self.alpha_T = selfkd_alpha_T
        self.alpha_kind = selfkd_alpha_kind
        self.total_epochs = selfkd_total_epochs
        self.ls_eps = ls_eps
        self.ls_convention = ls_convention
        self.sentence_avg = sentence_avg
        if hasattr(task, "snapshot"):
            # Baseline and LS runs keep no snapshot (no copy of the model, no extra forward).
            task.keep_teacher = self.alpha_T > 0
            task.teacher_mode = selfkd_teacher_mode

    def alpha_in_force(self, vocab_size: int | None = None) -> float:
        """The a of Eq. 6 applied to training tokens right now (0 at epoch 1 of Self-KD: no
        teacher yet). For LS under the fairseq convention, a = eps * V / (V - 1)."""
        if self.ls_eps > 0:
            if self.ls_convention == "fairseq":
                v = vocab_size or len(self.task.target_dictionary)
                return self.ls_eps * v / (v - 1)
            return self.ls_eps
        if self.alpha_T == 0 or self.task.snapshot.model is None:
            return 0.0
        return alpha_at(self.task.epoch, self.total_epochs, self.alpha_T, self.alpha_kind)

    def teacher_probs(self, sample) -> torch.Tensor:
        """(N, V) Self-KD teacher distribution for the flattened target tokens of `sample`."""
        # Same batch tensors, no autograd graph, the snapshot's mode (task.teacher_mode: eval, no
        # dropout, unless --selfkd-teacher-mode train), after the student's forward; runs under the trainer's
        # autocast / in the trainer's dtype because the snapshot is a copy of the trained model.
        probs = self.task.snapshot.probs(**sample["net_input"])
        return probs.view(-1, probs.size(-1))

    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        lprobs = model.get_normalized_probs(net_output, log_probs=True)
        lprobs = lprobs.view(-1, lprobs.size(-1))
        target = model.get_targets(sample, net_output).view(-1)
        alpha = self.alpha_in_force(lprobs.size(-1)) if model.training else 0.0
        ls = self.ls_eps > 0
        teacher = self.teacher_probs(sample) if alpha > 0 and not ls else None
        loss, nll_loss = self_kd_token_loss(lprobs, target, self.padding_idx, teacher, alpha,
                                            uniform_teacher=ls)
        sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
        nll_loss_sum = sum(log.get("nll_loss", 0) for log in logging_outputs)
        ntokens = sum(log.get("ntokens", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        # bits, as fairseq's criteria (ppl = 2 ** nll_loss)
        metrics.log_scalar("loss", loss_sum / sample_size / math.log(2), sample_size, round=4)
        metrics.log_scalar("nll_loss", nll_loss_sum / ntokens / math.log(2), ntokens, round=4)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
