"""The one list of training methods every task and the reports share (issue 13): what each name
means, spelled out, instead of being parsed from its underscores.

A method is a target rule (one-hot, label smoothing, Self-KD, Eq. 6) optionally combined with a
batch regulariser (Cutout, CutMix) and ShakeDrop (a model option). Tasks take the methods they
support by `tasks`; reports take the labels. Each spec names the typed sub-configs it reads
(`configs`: classification's `method.<name>.*` sections, classification/method_config.py), so
several names share one (selfkd, cutout_selfkd and cutmix_selfkd all read `method.selfkd`) and a
value set in a section its method does not read is refused. Adding a method is one
`register_method` call here plus the task code for a new target rule (and its sub-config).
"""
from __future__ import annotations

from dataclasses import dataclass

TARGET_RULES = ("onehot", "ls", "selfkd", "cskd", "tfkd")
REGULARIZERS = ("none", "cutout", "cutmix")
# The classification sub-configs (method.<name>.*) a method may read: its target rule's and its
# regulariser's (onehot and none have none). Translation keeps its own method section.
SUBCONFIGS = ("ls", "selfkd", "cskd", "tfkd", "cutout", "cutmix")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str                 # how tables and figures show it
    targets: str = "onehot"    # onehot | ls | selfkd
    regularizer: str = "none"  # none | cutout | cutmix (classification batches)
    shakedrop: bool = False    # ShakeDrop in the model (PyramidNet)
    tasks: tuple = ("classification",)

    @property
    def configs(self) -> tuple[str, ...]:
        """The sub-configs it reads, e.g. ('selfkd', 'cutmix') for cutmix_selfkd: method.selfkd.*
        and method.cutmix.* (classification/method_config.py); () for the baseline."""
        return tuple(c for c in (self.targets, self.regularizer) if c in SUBCONFIGS)

    @property
    def parts(self) -> set[str]:
        """The components as a set, e.g. {'cutmix', 'sd', 'selfkd'} (empty for the baseline)."""
        out = set()
        if self.targets != "onehot":
            out.add(self.targets)
        if self.regularizer != "none":
            out.add(self.regularizer)
        if self.shakedrop:
            out.add("sd")
        return out


_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    if spec.name in _METHODS:
        raise ValueError(f"method {spec.name!r} registered twice")
    if spec.targets not in TARGET_RULES or spec.regularizer not in REGULARIZERS:
        raise ValueError(f"method {spec.name!r}: targets must be one of {TARGET_RULES}, "
                         f"regularizer one of {REGULARIZERS}")
    _METHODS[spec.name] = spec
    return spec


ALL_TASKS = ("classification", "translation", "detection")
# The sub-configs each reads (MethodSpec.configs, from its target rule and regulariser):
# ls -> ls; selfkd -> selfkd; cutout -> cutout; cutout_selfkd -> selfkd + cutout; cutmix and
# cutmix_sd -> cutmix; cutmix_selfkd and cutmix_sd_selfkd -> selfkd + cutmix; cskd -> cskd;
# tfkd -> tfkd; baseline -> none (tests/core/test_methods.py holds this list).
for _spec in (
    MethodSpec("baseline", "Baseline", tasks=ALL_TASKS),
    MethodSpec("ls", "+ Label Smoothing", "ls", tasks=ALL_TASKS),
    MethodSpec("selfkd", "+ Self-KD", "selfkd", tasks=ALL_TASKS),
    MethodSpec("cutout", "+ Cutout", regularizer="cutout"),
    MethodSpec("cutout_selfkd", "+ Cutout + Self-KD", "selfkd", "cutout"),
    MethodSpec("cutmix", "+ CutMix", regularizer="cutmix"),
    MethodSpec("cutmix_selfkd", "+ CutMix + Self-KD", "selfkd", "cutmix"),
    MethodSpec("cutmix_sd", "+ CutMix + SD", regularizer="cutmix", shakedrop=True),
    MethodSpec("cutmix_sd_selfkd", "+ CutMix + SD + Self-KD", "selfkd", "cutmix", True),
    # Peers (beyond the seed paper; the official PS-KD README compares with them):
    MethodSpec("cskd", "+ CS-KD (peer)", "cskd"),   # Yun et al., CVPR 2020
    MethodSpec("tfkd", "+ TF-KD-reg (peer)", "tfkd"),  # Yuan et al., CVPR 2020
):
    register_method(_spec)


def method_names(task: str | None = None) -> tuple[str, ...]:
    """Registered names, in registration order; only those a task supports when task is given
    (for detection: how the backbone was pre-trained)."""
    return tuple(n for n, s in _METHODS.items() if task is None or task in s.tasks)


def get_method(name: str, task: str | None = None) -> MethodSpec:
    """The spec of `name`; ValueError (one line) when unknown or not supported by `task`."""
    names = method_names(task)
    if name not in names:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(names)}")
    return _METHODS[name]


def method_labels() -> dict[str, str]:
    return {n: s.label for n, s in _METHODS.items()}
