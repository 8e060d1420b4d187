"""One config mechanism for every task: typed dataclass defaults <- YAML file <- `a.b=value`
overrides (OmegaConf structured configs, as dinov2). Unknown keys and wrong types raise
ConfigError with a one-line message naming the key."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .cli import UserError, did_you_mean, nearest


class ConfigError(UserError):
    """A config that cannot be used: one line naming the key (or the file) and what is wrong."""


def _one_line(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    first = msg[0] if msg else type(e).__name__
    key = getattr(e, "full_key", None)
    return f"{first} (key: {key})" if key and key not in first else first


def _yaml_layers(path: Path, chain: tuple = ()) -> list:
    """The YAML file and, first, the files its `_base_` key names (paths relative to it), so a
    table-row config states only what differs from its dataset's base config."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in chain:
        raise ConfigError(f"config {path} includes itself through _base_")
    try:
        y = OmegaConf.load(path)
    except Exception as e:  # yaml errors come in many classes
        raise ConfigError(f"malformed config {path}: {_one_line(e)}") from None
    if not OmegaConf.is_dict(y):
        raise ConfigError(f"malformed config {path}: top level must be a mapping")
    layers = []
    base = y.pop("_base_", None)
    for b in [base] if isinstance(base, str) else list(base or []):
        layers += _yaml_layers(path.parent / b, chain + (path.resolve(),))
    return layers + [(str(path), y)]


_NOTED: set = set()  # old key names whose deprecation note this process has printed


def _renamed(layer, renames: dict, where: str):
    """`layer` with every old key of `renames` (old dotted key -> new dotted key) moved to its new
    name; a one-line note on stderr the first time this process meets each old key."""
    data = OmegaConf.to_container(layer, resolve=False)
    found = []
    for old, new in renames.items():
        *parents, leaf = old.split(".")
        d = data
        for p in parents:
            d = d.get(p) if isinstance(d, dict) else None
        if not isinstance(d, dict) or leaf not in d or isinstance(d[leaf], dict):
            continue  # an old key never held a mapping: a mapping there is the section of today
        value = d.pop(leaf)
        *parents, leaf = new.split(".")
        t = data
        for p in parents:
            if t.get(p) is None:
                t[p] = {}
            if not isinstance(t[p], dict):
                raise ConfigError(f"{where}: {old} is now {new}, but {p} is set to {t[p]!r}")
            t = t[p]
        if leaf in t and t[leaf] != value:
            raise ConfigError(f"{where}: both {old} (the old name) and {new} are set, to {value!r} and "
                              f"{t[leaf]!r}; keep {new}")
        t[leaf] = value
        found.append(old)
    if not found:
        return layer
    new_notes = [k for k in found if k not in _NOTED]
    if new_notes:
        import sys
        _NOTED.update(new_notes)
        print(f"note: renamed config keys ({where}): "
              + ", ".join(f"{k} -> {renames[k]}" for k in new_notes) + "; the old names still work for now",
              file=sys.stderr)
    return OmegaConf.create(data)


def load_config(schema, path: str | os.PathLike | None = None, overrides: Sequence[str] = ()):
    """Merge schema defaults <- YAML at path (after its `_base_` files) <- overrides; return a
    typed, read-only DictConfig. Keys the schema has renamed (its class attribute RENAMED_KEYS,
    old dotted key -> new) are accepted under their old names, with a deprecation note."""
    renames = getattr(schema, "RENAMED_KEYS", None) or {}
    cfg = OmegaConf.structured(schema)
    layers = _yaml_layers(Path(path)) if path is not None else []
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} is not of the form key=value")
    if overrides:
        try:
            layers.append(("command line", OmegaConf.from_dotlist(list(overrides))))
        except OmegaConfBaseException as e:
            raise ConfigError(f"bad override: {_one_line(e)}") from None
    for where, layer in layers:
        if renames:
            layer = _renamed(layer, renames, where)
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as e:
            raise ConfigError(f"{where}: {_one_line(e)}{_near_key(cfg, e, renames)}") from None
    OmegaConf.set_readonly(cfg, True)
    return cfg


def _near_key(cfg, e: Exception, renames: dict) -> str:
    """' (did you mean KEY?)' for an unknown key that is a near miss of a key beside it (or of an
    old key name, whose new name is given), else ''."""
    key = getattr(e, "full_key", None)
    if not key or type(e).__name__ != "ConfigKeyError":
        return ""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    near = did_you_mean(leaf, list(node.keys()), f"{parent}." if parent else "") if OmegaConf.is_dict(node) else ""
    old = nearest(key, renames)
    return near or (f" (did you mean {renames[old]}?)" if old else "")


def to_yaml(cfg) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def to_dict(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def parse_with_overrides(parser: argparse.ArgumentParser, argv=None):
    """Parse argv with `parser`, taking every `key=value` token as a config override wherever it
    stands (before, between or after options: `--alphas 0.3 0.8 epochs=3` works). The overrides
    come back as args.overrides, in order; the parser must not define a positional "overrides"."""
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a for a in argv if _OVERRIDE.match(a)]
    args, rest = parser.parse_known_args([a for a in argv if not _OVERRIDE.match(a)])
    rest = [a for a in rest if a != "--"]  # the old "options -- overrides" spelling still works
    unknown = [a for a in rest if a.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    # a bare word is a malformed override: load_config names it in one line
    args.overrides = overrides + [a for a in rest if not a.startswith("-")]
    return args
