"""The one list of training methods every task and the reports share: each name, how tables show
it, which tasks train with it, and what it is made of, spelled out instead of parsed from its
underscores.

A method is a rule (how the loss is built from a batch: one-hot, label smoothing, Self-KD's
Eq. 6, a peer's rule) optionally composed with a batch regulariser (Cutout, CutMix) and with
ShakeDrop (a model option). A task finds the code of a rule by its name (classification:
classification/methods/<rule>.py), so adding a method is one new file for its rule plus one
`MethodSpec` line below; a combination of existing parts (e.g. CutMix + Self-KD) is the line
alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from .cli import UserError, did_you_mean
from .config import ConfigError

REGULARIZERS = ("none", "cutout", "cutmix")
ALL_TASKS = ("classification", "translation", "detection")


# The flat method keys that older config files, commands and run folders' config.yaml spell -> the
# sub-config keys they stand for, the same in every task that has the sub-config (a task's config
# class lists it as RENAMED_KEYS; core.config.load_config and core.run.config_changes read it).
# The one copy of this table.
RENAMED_KEYS = {
    "method.alpha_T": "method.selfkd.alpha_T",
    "method.alpha_kind": "method.selfkd.alpha_kind",
    "method.teacher": "method.selfkd.teacher",
    "method.bank_dtype": "method.selfkd.bank.dtype",
    "method.bank_device": "method.selfkd.bank.device",
    "method.bank_storage": "method.selfkd.bank.storage",
    "method.bank_topk": "method.selfkd.bank.topk",
    "method.ls_eps": "method.ls.eps",
    "method.cutout_size": "method.cutout.size",
    "method.cutout_updates_bank": "method.cutout.updates_bank",
    "method.cutmix_beta": "method.cutmix.beta",
    "method.cutmix_prob": "method.cutmix.prob",
    "method.cskd_temperature": "method.cskd.temperature",
    "method.cskd_lambda": "method.cskd.lam",
    "method.tfkd_alpha": "method.tfkd.alpha",
    "method.tfkd_temperature": "method.tfkd.temperature",
    "method.tfkd_correct_prob": "method.tfkd.correct_prob",
}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str                 # how tables and figures show it
    rule: str = "onehot"       # the loss rule's module name (classification/methods/<rule>.py)
    regularizer: str = "none"  # none | cutout | cutmix (classification batches)
    shakedrop: bool = False    # ShakeDrop in the model (PyramidNet)
    tasks: tuple = ("classification",)
    short: str = ""            # the short name figures and text use (Fig. 2's curves, deltas); default: name
    reference: bool = False    # the method every difference in the reports is taken against
    studied: bool = False      # the paper's method, the one the regime and delta reports are about

    @property
    def alpha_schedule(self) -> bool:
        """Reads method.selfkd (alpha_T, alpha_kind): its runs have an alpha schedule."""
        return self.rule == "selfkd"


_METHODS: dict[str, MethodSpec] = {}
# other names a user may know a method by, for "did you mean" (lower case, no '-' / '_'): the
# paper's published name of Self-KD is PS-KD (progressive self-knowledge distillation)
ALIASES = {"pskd": "selfkd", "progressiveselfkd": "selfkd", "labelsmoothing": "ls"}


def register_method(spec: MethodSpec) -> MethodSpec:
    if spec.name in _METHODS:
        raise ValueError(f"method {spec.name!r} registered twice")
    if spec.regularizer not in REGULARIZERS or not spec.rule.isidentifier():
        raise ValueError(f"method {spec.name!r}: rule must be a module name, regularizer one of {REGULARIZERS}")
    _METHODS[spec.name] = spec
    return spec


for _spec in (
    MethodSpec("baseline", "Baseline", tasks=ALL_TASKS, short="baseline", reference=True),
    MethodSpec("ls", "+ Label Smoothing", "ls", tasks=ALL_TASKS, short="LS"),
    MethodSpec("selfkd", "+ Self-KD", "selfkd", tasks=ALL_TASKS, short="Self-KD", studied=True),
    MethodSpec("cutout", "+ Cutout", regularizer="cutout"),
    MethodSpec("cutout_selfkd", "+ Cutout + Self-KD", "selfkd", "cutout"),
    MethodSpec("cutmix", "+ CutMix", regularizer="cutmix"),
    MethodSpec("cutmix_selfkd", "+ CutMix + Self-KD", "selfkd", "cutmix"),
    MethodSpec("cutmix_sd", "+ CutMix + SD", regularizer="cutmix", shakedrop=True),
    MethodSpec("cutmix_sd_selfkd", "+ CutMix + SD + Self-KD", "selfkd", "cutmix", True),
    # Peers (beyond the seed paper), trained in the same harness:
    MethodSpec("cskd", "+ CS-KD (peer)", "cskd"),   # Yun et al., CVPR 2020
    MethodSpec("tfkd", "+ TF-KD-reg (peer)", "tfkd"),  # Yuan et al., CVPR 2020
    MethodSpec("lwr", "+ LWR (peer)", "lwr"),  # Deng & Zhang, AAAI 2021
    MethodSpec("zipf", "+ Zipf's LS (peer)", "zipf"),  # Liang et al., ECCV 2022
    MethodSpec("dlb", "+ DLB (peer)", "dlb"),  # Shen et al., CVPR 2022
):
    register_method(_spec)


def method_names(task: str | None = None) -> tuple[str, ...]:
    """Registered names, in registration order; only those a task supports when task is given
    (for detection: how the backbone was pre-trained)."""
    return tuple(n for n, s in _METHODS.items() if task is None or task in s.tasks)


def get_method(name: str, task: str | None = None) -> MethodSpec:
    """The spec of `name`; UserError (one line) when unknown or not supported by `task`."""
    names = method_names(task)
    if name not in names:
        raise UserError(f"unknown method {name!r}{did_you_mean(name, names, aliases=ALIASES)}; expected one of {', '.join(names)}")
    return _METHODS[name]


def _one(flag: str) -> str:
    (name,) = [n for n, s in _METHODS.items() if getattr(s, flag)]
    return name


def reference_method() -> str:
    """The method differences are taken against (the baseline)."""
    return _one("reference")


def studied_method() -> str:
    """The paper's method (Self-KD), the one the regime and delta reports compare."""
    return _one("studied")


def is_reference(name: str) -> bool:
    """Whether `name` is the reference method; False for any unregistered name (a log's '?')."""
    return name in _METHODS and _METHODS[name].reference


def has_alpha_schedule(name: str) -> bool:
    """Whether runs of `name` read method.selfkd's alpha_T / alpha_kind; False when unregistered."""
    return name in _METHODS and _METHODS[name].alpha_schedule


def short_label(name: str) -> str:
    """The short name figures and text use; the name itself when it has none or is unregistered."""
    return (_METHODS[name].short if name in _METHODS else "") or name


def method_labels() -> dict[str, str]:
    return {n: s.label for n, s in _METHODS.items()}


def check_unread_settings(name: str, values: dict, defaults: dict, unread, reads) -> None:
    """One-line ConfigError for a value set (other than its default) in a sub-config method `name`
    does not read: it would change nothing in the run while its config says otherwise. values /
    defaults: the method section flattened ("method.<section>.<field>" -> value); unread / reads:
    the sub-config names it does not / does read, in the order the config lists them."""
    for section in unread:
        for key, value in values.items():
            if key.startswith(f"method.{section}.") and value != defaults[key]:
                read = ", ".join(f"method.{c}" for c in reads) or "none"
                raise ConfigError(f"{key}={value} is set, but method {name} does not read method.{section} "
                                  f"(it reads: {read})")
