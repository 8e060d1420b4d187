"""The `method` section of a classification config: the method's name and one typed sub-config per
target rule / regulariser (method.selfkd.*, method.ls.*, method.cutout.*, method.cutmix.*,
method.cskd.*, method.tfkd.*). Which method reads which is registered with it (core.methods,
MethodSpec.configs): selfkd, cutout_selfkd, cutmix_selfkd and cutmix_sd_selfkd all read
method.selfkd; a value set in a section the method does not read is refused (check_method_config),
unless it is that section's default.

The flat keys of earlier versions (method.alpha_T, method.ls_eps, ...) still work: RENAMED_KEYS,
the one table of old -> new names, is applied to every config file and override
(core.config.load_config, with a one-line deprecation note) and to the resume check of run
folders whose config.yaml has the old names (core.run.config_changes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import OmegaConf

from core.config import ConfigError
from core.methods import SUBCONFIGS, get_method
from core.run import flatten_config
from core.schedules import KINDS


@dataclass
class BankConfig:
    # Self-KD's prediction bank (core.bank; used with method.selfkd.teacher=bank).
    dtype: str = "float32"  # float32 (official) | float16
    device: str = "auto"  # auto = the training device; "cpu" = the official per-step host copy
    storage: str = "memory"  # memory | mmap (a memory-mapped file in the run folder)
    topk: int = 0  # >0: a sparse bank of the k largest probabilities per sample (core.bank.TopKPredictionBank)


@dataclass
class SelfKDConfig:
    # alpha at the last epoch: 0.8 is the official code's CIFAR default (main.py); the paper chose
    # 0.7 for CIFAR-100 (Sec. 3.1), which the Table 1 / Fig. 2 Self-KD rows set.
    alpha_T: float = 0.8
    alpha_kind: str = "linear"  # Eq. 5; fixed/step/exp/cosine for the Fig. 2 ablation
    # Where p_{t-1} comes from (Sec. 2.2): bank = the prediction bank (the official code; `bank`
    # below); snapshot = the model as it ended the previous epoch, in eval mode on the same
    # augmented batch (core.teacher.SnapshotTeacher; one extra forward, a model copy in memory,
    # no bank; the paper's way on ImageNet).
    teacher: str = "bank"
    bank: BankConfig = field(default_factory=BankConfig)


@dataclass
class LSConfig:
    eps: float = 0.1  # label smoothing epsilon (Sec. 3.1)


@dataclass
class CutoutConfig:
    size: int = 8  # the hole, pixels (Sec. 3.1)
    updates_bank: bool = True  # with Self-KD (cutout_selfkd): a Cutout'd sample writes its bank row


@dataclass
class CutMixConfig:
    beta: float = 1.0  # Beta(beta, beta) (Sec. 3.1)
    prob: float = 0.5  # CutMix alone: probability a batch is mixed (CutMix's CIFAR setting)


@dataclass
class CSKDConfig:
    # CS-KD (Yun et al. 2020; classification/peers.py), its paper's CIFAR defaults
    temperature: float = 4.0  # T of the KL term
    lam: float = 1.0  # lambda, the weight of the KL term


@dataclass
class TFKDConfig:
    # TF-KD-reg (Yuan et al. 2020; classification/peers.py), its CIFAR-100 ResNet-18 setting
    alpha: float = 0.1  # weight of the hand-made teacher
    temperature: float = 20.0  # T applied to the hand-made teacher
    correct_prob: float = 0.99  # the hand-made teacher's probability of the true class


@dataclass
class MethodConfig:
    name: str = "baseline"  # core.methods: baseline, ls, selfkd, cutout[_selfkd], cutmix[_sd][_selfkd], cskd, tfkd
    selfkd: SelfKDConfig = field(default_factory=SelfKDConfig)  # read by every *selfkd method
    ls: LSConfig = field(default_factory=LSConfig)  # read by ls
    cutout: CutoutConfig = field(default_factory=CutoutConfig)  # read by cutout, cutout_selfkd
    cutmix: CutMixConfig = field(default_factory=CutMixConfig)  # read by cutmix[_sd][_selfkd]
    cskd: CSKDConfig = field(default_factory=CSKDConfig)  # read by cskd
    tfkd: TFKDConfig = field(default_factory=TFKDConfig)  # read by tfkd


# The flat method keys of earlier versions -> their names now (old config files, commands and the
# config.yaml of run folders started before the change). The one copy of this table.
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


_DEFAULTS = flatten_config(OmegaConf.to_container(OmegaConf.structured(MethodConfig)), "method.")


def unread_sections(name: str) -> tuple[str, ...]:
    """The sub-configs method `name` does not read, as config keys ('method.cskd', ...): their
    values never affect its run (the resume check ignores them)."""
    reads = get_method(name, "classification").configs
    return tuple(f"method.{s}" for s in SUBCONFIGS if s not in reads)


def check_method_config(method) -> None:
    """One-line ConfigError for a value set in a sub-config the method does not read (unless it is
    the default) or a value out of range; method: the validated config's `method` section."""
    spec = get_method(method.name, "classification")
    values = flatten_config(OmegaConf.to_container(method, resolve=True), "method.")
    for section in unread_sections(method.name):
        for key, value in values.items():
            if key.startswith(section + ".") and value != _DEFAULTS[key]:
                reads = ", ".join(f"method.{c}" for c in spec.configs) or "none"
                raise ConfigError(f"{key}={value} is set, but method {method.name} does not read {section} "
                                  f"(it reads: {reads})")
    s, bank = method.selfkd, method.selfkd.bank
    for key, value in (("method.selfkd.alpha_T", s.alpha_T), ("method.ls.eps", method.ls.eps)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{key} must be in [0, 1], got {value}")
    t = method.tfkd
    if not 0.0 <= t.alpha <= 1.0 or not 0.0 < t.correct_prob < 1.0:
        raise ConfigError(f"method.tfkd.alpha must be in [0, 1] and method.tfkd.correct_prob in (0, 1), got "
                          f"{t.alpha}, {t.correct_prob}")
    if method.cskd.temperature <= 0 or t.temperature <= 0 or method.cskd.lam < 0:
        raise ConfigError("method.cskd.temperature and method.tfkd.temperature must be > 0, method.cskd.lam >= 0")
    if s.alpha_kind not in KINDS:
        raise ConfigError(f"unknown method.selfkd.alpha_kind {s.alpha_kind!r}; expected one of {', '.join(KINDS)}")
    choices = {"method.selfkd.bank.dtype": (bank.dtype, ("float32", "float16")),
               "method.selfkd.bank.storage": (bank.storage, ("memory", "mmap")),
               "method.selfkd.teacher": (s.teacher, ("bank", "snapshot"))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
