"""Translation's training methods: the `method` section of a run's config and what each registered
method (core.methods) asks of the criterion.

The sub-configs are spelled as classification's (method.selfkd.alpha_T, method.selfkd.alpha_kind,
method.ls.eps) so one key means one thing in every task; only the defaults are each task's own
(translation: the paper's alpha_T = 0.7, Sec. 3.4). A method name is never tested here: its
registered rule (core.methods.MethodSpec.rule) is looked up in RULES, which says which settings
the criterion gets from which sub-config. Earlier spellings (method.alpha_T, optim.epochs, ...)
still load through RENAMED_KEYS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from omegaconf import OmegaConf

from core.methods import RENAMED_KEYS as METHOD_RENAMED_KEYS
from core.methods import check_unread_settings, get_method
from core.run import flatten_config


@dataclass
class SelfKDSection:
    alpha_T: float = 0.7  # alpha at the last epoch (Sec. 3.4: 0.7, chosen on validation)
    alpha_kind: str = "linear"  # Eq. 5; see core.schedules.KINDS
    # the previous-epoch snapshot's mode for its teacher pass; eval = no dropout (the paper does
    # not say; a deterministic teacher), train = dropout on as in the student's forward
    teacher_mode: str = "eval"


@dataclass
class LSSection:
    eps: float = 0.1  # Sec. 3.4 / Vaswani et al.
    convention: str = "fairseq"  # eps/(V-1) on non-targets, as fairseq's LS criterion; uniform: eps/V


@dataclass
class MethodSection:
    name: str = "baseline"  # a method of core.methods that translation trains: baseline | ls | selfkd
    selfkd: SelfKDSection = field(default_factory=SelfKDSection)
    ls: LSSection = field(default_factory=LSSection)


# Old spelling -> key now: the method keys every task shares, and translation's own (its label
# smoothing convention and Self-KD teacher mode, and epochs, which sat under optim; it is
# top-level in every task).
RENAMED_KEYS = {**METHOD_RENAMED_KEYS,
                "method.ls_convention": "method.ls.convention",
                "method.teacher_mode": "method.selfkd.teacher_mode",
                "optim.epochs": "epochs"}


@dataclass(frozen=True)
class Rule:
    """What a registered rule needs from the criterion, read from the method section: alpha_T
    (Self-KD's target weight at the last epoch) and ls_eps (label smoothing), each None where the
    rule does not use it (the criterion then gets 0: off)."""
    alpha_T: Callable | None = None
    ls_eps: Callable | None = None
    reads: tuple[str, ...] = ()  # the sub-configs of the method section the rule reads

    @property
    def snapshot_teacher(self) -> bool:
        """Trains against the model as it ended the previous epoch (task.py): the alpha schedule
        needs the number of epochs fixed in advance, and a resume needs an end-of-epoch checkpoint."""
        return self.alpha_T is not None


RULES = {
    "onehot": Rule(),
    "ls": Rule(ls_eps=lambda m: m.ls.eps, reads=("ls",)),
    "selfkd": Rule(alpha_T=lambda m: m.selfkd.alpha_T, reads=("selfkd",)),
}


def rule_of(name: str) -> Rule:
    """The Rule of a method translation trains; ValueError (one line) for any other name."""
    return RULES[get_method(name, "translation").rule]


SECTIONS = {"selfkd": SelfKDSection, "ls": LSSection}  # MethodSection's sub-configs
_DEFAULTS = flatten_config(OmegaConf.to_container(OmegaConf.structured(MethodSection)), "method.")


def check_unread(method) -> None:
    """A value set in a sub-config the method does not read, unless it is the default, is a
    one-line ConfigError, as in classification (core.methods.check_unread_settings). method: a
    checked section."""
    reads = rule_of(method.name).reads
    check_unread_settings(method.name, flatten_config(OmegaConf.to_container(method, resolve=True), "method."),
                          _DEFAULTS, [s for s in SECTIONS if s not in reads], reads)


def criterion_settings(method) -> dict:
    """The settings the criterion trains with for a `method` section (the log's meta record holds
    them too): alpha_T, alpha_kind (None when the method has no alpha schedule), ls_eps."""
    rule = rule_of(method.name)
    return {"alpha_T": rule.alpha_T(method) if rule.alpha_T else 0.0,
            "alpha_kind": method.selfkd.alpha_kind if rule.alpha_T else None,
            "ls_eps": rule.ls_eps(method) if rule.ls_eps else 0.0}
