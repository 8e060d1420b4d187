"""Classification's training methods: each registered name (core.methods) is a rule of this package
(classification/methods/<rule>.py: a `Method` subclass exposed as METHOD, its config dataclass
beside it) composed with a regulariser (classification/augment.py). This module turns the
registry into the `method` section of a config (MethodConfig: the name plus one sub-config per
rule or regulariser, method.selfkd.*, method.ls.*, ...), checks it, and builds the method object.

A value set in a section the method does not read is refused (unless it is the default).
The flat keys of earlier configs (method.alpha_T, method.ls_eps, ...) still load: RENAMED_KEYS
(core.methods), the one table of old -> new names that every task shares, is applied to every config file and override
(core.config.load_config, with a one-line deprecation note) and to the resume check of run
folders whose config.yaml has the old names (core.run.config_changes).
"""
from __future__ import annotations

import importlib
from dataclasses import field, make_dataclass

from omegaconf import OmegaConf

from core.cli import did_you_mean
from core.config import ConfigError
from core.methods import ALIASES, RENAMED_KEYS, check_unread_settings, get_method, method_names
from core.run import flatten_config

from ..augment import REGULARIZERS
from .base import Context, Method

METHODS = method_names("classification")


def rule_class(rule: str) -> type[Method]:
    """The Method class of a registered rule: METHOD of classification/methods/<rule>.py."""
    return importlib.import_module(f"{__name__}.{rule}").METHOD


def _sections() -> dict[str, type]:
    """section name -> its config dataclass, for every rule and regulariser a method uses."""
    out = {}
    for name in METHODS:
        spec = get_method(name)
        if rule_class(spec.rule).Config is not None:
            out.setdefault(spec.rule, rule_class(spec.rule).Config)
        if spec.regularizer != "none":
            out.setdefault(spec.regularizer, REGULARIZERS[spec.regularizer][0])
    return out


SECTIONS = _sections()
MethodConfig = make_dataclass(
    "MethodConfig", [("name", str, field(default="baseline"))]
    + [(s, c, field(default_factory=c)) for s, c in SECTIONS.items()])
MethodConfig.__doc__ = "The `method` section: the registered name and one sub-config per rule / regulariser."


_DEFAULTS = flatten_config(OmegaConf.to_container(OmegaConf.structured(MethodConfig)), "method.")


def reads(name: str) -> tuple[str, ...]:
    """The sections method `name` reads, e.g. ('selfkd', 'cutmix') for cutmix_selfkd; () for the baseline."""
    spec = get_method(name, "classification")
    return tuple(s for s in (spec.rule, spec.regularizer) if s in SECTIONS)


def unread_sections(name: str) -> tuple[str, ...]:
    """The sub-configs method `name` does not read, as config keys ('method.cskd', ...): their
    values never affect its run (the resume check ignores them)."""
    return tuple(f"method.{s}" for s in SECTIONS if s not in reads(name))


def check_method_config(method) -> None:
    """One-line ConfigError for an unknown method, a value set in a sub-config the method does not
    read (unless it is the default) or a value out of range; method: the config's `method` section."""
    if method.name not in METHODS:
        raise ConfigError(f"unknown method {method.name!r}{did_you_mean(method.name, METHODS, aliases=ALIASES)}; "
                          f"expected one of {', '.join(METHODS)}")
    values = flatten_config(OmegaConf.to_container(method, resolve=True), "method.")
    check_unread_settings(method.name, values, _DEFAULTS, [s for s in SECTIONS if s not in reads(method.name)],
                          reads(method.name))
    spec = get_method(method.name)
    rule = rule_class(spec.rule)
    if rule.Config is not None:
        rule.check(method[spec.rule])
    if spec.regularizer != "none":
        REGULARIZERS[spec.regularizer][1].check(method[spec.regularizer])


def method_class(name: str) -> type[Method]:
    return rule_class(get_method(name, "classification").rule)


def build_method(method, ctx: Context) -> Method:
    """The method object of a checked `method` config section, built once per run."""
    spec = get_method(method.name, "classification")
    regularizer = None
    if spec.regularizer != "none":
        regularizer = REGULARIZERS[spec.regularizer][1](method[spec.regularizer])
    rule = rule_class(spec.rule)
    return rule(method[spec.rule] if rule.Config is not None else None, ctx, regularizer)


__all__ = ["METHODS", "Context", "Method", "MethodConfig", "RENAMED_KEYS", "build_method", "check_method_config",
           "method_class", "reads", "unread_sections"]
