"""JSONL run logs: the interface between training and reports (docs/design.md, "Run logs").

Line 1: {"type": "meta", "schema": 1, "run_id", "task", "method", "model", "dataset", "seed",
"config", "git_commit", "git_dirty", "torch", "device", "started", ...}; then one
{"type": "epoch", "epoch", "alpha", "lr", "train_loss", ...eval metrics} per epoch; last
{"type": "final", "metrics": {...}, "reliability": {"edges", "count", "conf", "acc"}, "wall_s"}
(classification's final record also has "selected_on_test": best_epoch_on_test of its epochs).
Append-only, one object per line, flushed per line.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .cli import UserError
from .metrics import METRIC_NAMES

SCHEMA_VERSION = 1
META_KEYS = ("run_id", "task", "method", "model", "dataset", "seed", "config",
             "git_commit", "git_dirty", "torch", "device", "started")
EPOCH_KEYS = ("epoch", "alpha", "lr", "train_loss")
FINAL_KEYS = ("metrics", "reliability", "wall_s")
RELIABILITY_KEYS = ("edges", "count", "conf", "acc")


class RunLogError(UserError):
    """A log line that does not follow the schema."""


def git_info(cwd: str | os.PathLike | None = None) -> tuple[str, bool]:
    """(commit sha or "unknown", dirty?) of the repository holding cwd."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return sha, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _clean(obj):
    # JSON has no NaN/inf: write them as null so every line stays valid JSON for any reader.
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def validate_record(rec: dict) -> None:
    """Raise RunLogError if a record lacks the keys its type requires."""
    kind = rec.get("type")
    required = {"meta": ("schema",) + META_KEYS, "epoch": EPOCH_KEYS, "final": FINAL_KEYS}.get(kind)
    if required is None:
        raise RunLogError(f"unknown record type {kind!r}")
    missing = [k for k in required if k not in rec]
    if missing:
        raise RunLogError(f"{kind} record lacks {', '.join(missing)}")
    if kind == "meta" and rec["schema"] != SCHEMA_VERSION:
        raise RunLogError(f"unknown schema version {rec['schema']!r} (this code reads {SCHEMA_VERSION})")
    if kind == "final" and not isinstance(rec["metrics"], dict):
        raise RunLogError(f"final metrics must be an object, got {rec['metrics']!r:.40}")
    if kind == "final" and rec["reliability"] is not None:
        if not isinstance(rec["reliability"], dict):
            raise RunLogError(f"final reliability must be an object or null, "
                              f"got {rec['reliability']!r:.40}")
        miss = [k for k in RELIABILITY_KEYS if k not in rec["reliability"]]
        if miss:
            raise RunLogError(f"final reliability lacks {', '.join(miss)}")


class RunLogWriter:
    """Append records to log.jsonl, one flushed line each."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.mirrors: list = []  # callables given each schema record once written (TensorBoard)
        # The meta record and the epoch records of the run so far, as written: a checkpoint keeps a
        # copy (records()), so a resume can put back lines a damaged log lost (truncate_to_epoch).
        self._meta: dict | None = None
        self._epochs: list = []

    def write(self, rec: dict) -> None:
        validate_record(rec)
        line = self._append(rec)
        if rec["type"] in ("meta", "epoch"):
            plain = json.loads(line)  # as read back: JSON types only (a str subclass becomes a str)
            if rec["type"] == "meta":
                self._meta = plain
            else:
                self._epochs.append(plain)
        for mirror in self.mirrors:
            mirror(rec)

    def records(self) -> dict:
        """{"meta": the meta record, "epochs": [epoch records]} of this run so far: what a
        checkpoint stores beside the weights so the log and the checkpoint cannot disagree
        (plain dicts, lists, numbers and strings: it loads with weights_only=True)."""
        return {"meta": self._meta, "epochs": list(self._epochs)}

    def extra(self, kind: str, **fields) -> None:
        """A record of a type outside the schema (e.g. "resume"): readers keep it in RunLog.extra
        and reports ignore it."""
        if kind in ("meta", "epoch", "final"):
            raise RunLogError(f"use the {kind}() method for {kind} records")
        self._append({"type": kind, **fields})

    def _append(self, rec: dict) -> str:
        line = json.dumps(_clean(rec), sort_keys=False)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # a full disk: the error names the file (the entry point reports it)
            if e.filename is None:
                e.filename = str(self.path)
            raise
        return line

    def meta(self, **fields) -> dict:
        rec = {"type": "meta", "schema": SCHEMA_VERSION, **fields}
        self.write(rec)
        return rec

    def epoch(self, **fields) -> None:
        self.write({"type": "epoch", **fields})

    def final(self, metrics: dict, reliability: dict | None, wall_s: float, **extra) -> None:
        self.write({"type": "final", "metrics": metrics, "reliability": reliability, "wall_s": wall_s, **extra})

    def truncate_to_epoch(self, last_epoch: int, saved: dict | None = None) -> list[str]:
        """On resume from the checkpoint of `last_epoch`: drop epoch lines after it (written after
        that checkpoint) and any final line, so the log matches the restored state. Atomic rewrite.

        The log must then hold the meta line and the line of every epoch up to last_epoch. A line
        a damaged log lost (a zero-byte file, a torn line) is put back from `saved`, the copy of the
        records the checkpoint holds (records()), in its place; without one, a lost meta line is a
        RunLogError (a log without its header is not a run reports can read) and lost epoch lines
        are returned, so the caller can say so. Returns the epochs still missing."""
        entries = []  # (line, record)
        with open(self.path, "rb") as f:
            raw = f.read()
        for _, line, _ in _decoded_lines(raw):  # file order: resume records keep their place
            try:
                rec = json.loads(line) if line and line.strip() else None
            except json.JSONDecodeError:
                rec = None  # a torn line of the kill
            if not isinstance(rec, dict) or rec.get("type") == "final":
                continue
            if rec.get("type") == "epoch" and not (isinstance(rec.get("epoch"), int) and rec["epoch"] <= last_epoch):
                continue
            entries.append((line, rec))
        saved = saved or {}
        if not any(r.get("type") == "meta" for _, r in entries):
            if not saved.get("meta"):
                raise RunLogError(f"{self.path} has lost its meta line (an empty or damaged log) and the "
                                  f"checkpoint holds no copy of it; move the run folder away to start "
                                  f"the run again")
            entries.insert(0, (json.dumps(saved["meta"]), saved["meta"]))
        have = {r["epoch"] for _, r in entries if r.get("type") == "epoch"}
        for rec in saved.get("epochs") or []:
            e = rec.get("epoch")
            if not isinstance(e, int) or e > last_epoch or e in have:
                continue
            # before the first line that came after it: a later epoch, or a resume from it or later
            at = next((i for i, (_, r) in enumerate(entries)
                       if (r.get("type") == "epoch" and r["epoch"] > e)
                       or (r.get("type") == "resume" and isinstance(r.get("from_epoch"), int)
                           and r["from_epoch"] >= e)), len(entries))
            entries.insert(at, (json.dumps(rec), rec))
            have.add(e)
        tmp = self.path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line, _ in entries))
        os.replace(tmp, self.path)
        meta = [r for _, r in entries if r.get("type") == "meta"]
        self._meta = meta[0]
        self._epochs = sorted((r for _, r in entries if r.get("type") == "epoch"), key=lambda r: r["epoch"])
        return [e for e in range(1, last_epoch + 1) if e not in have]


@dataclass
class RunLog:
    path: Path
    meta: dict | None = None
    epochs: list = field(default_factory=list)
    final: dict | None = None
    extra: list = field(default_factory=list)  # records of other types (e.g. "resume"), kept as is
    warnings: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.final is not None


def _decoded_lines(raw: bytes):
    """(line number, text or None, why) for each line of a log file's bytes. A line that is not
    valid UTF-8 comes back as None with the reason, so one bad byte costs one line, not the file."""
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        try:
            yield lineno, line.decode("utf-8"), ""
        except UnicodeDecodeError as e:
            yield lineno, None, (f"not UTF-8 text (byte 0x{line[e.start]:02x} at column "
                                 f"{e.start + 1}; a corrupted or foreign file?)")


def read_run_log(path: str | os.PathLike, strict: bool = False) -> RunLog:
    """Read a log.jsonl. With strict=False a bad line (the truncated last line of a killed run,
    JSON that is not an object, bytes that are not UTF-8, a record lacking keys) becomes a warning
    "file:line: why" and is skipped; strict=True raises RunLogError with that message."""
    path = Path(path)
    log = RunLog(path)

    def bad(lineno: int, why: str):
        msg = f"{path}:{lineno}: {why}"
        if strict:
            raise RunLogError(msg)
        log.warnings.append(msg)

    with open(path, "rb") as f:
        raw = f.read()
    for lineno, line, why in _decoded_lines(raw):
        if line is None:
            bad(lineno, why)
            continue
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            bad(lineno, f"malformed JSON ({e.msg}; a run killed mid-write?)")
            continue
        if not isinstance(rec, dict):
            bad(lineno, f"not a JSON object (a JSON {_json_kind(rec)})")
            continue
        if rec.get("type") not in ("meta", "epoch", "final"):
            log.extra.append(rec)
            continue
        try:
            validate_record(rec)
        except RunLogError as e:
            bad(lineno, str(e))
            if rec["type"] == "meta":
                return log  # an unreadable header makes the rest meaningless
            continue
        kind = rec["type"]
        if kind == "meta":
            if log.meta is not None:
                bad(lineno, "second meta record")
                continue
            log.meta = rec
        elif log.meta is None:
            bad(lineno, f"{kind} record before the meta record")
            return log
        elif kind == "epoch":
            log.epochs.append(rec)
        else:
            log.final = rec
    if log.meta is None and not log.warnings:
        bad(1, "empty log (no meta record)")
    return log


def _json_kind(value) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def best_epoch_on_test(epochs) -> dict | None:
    """The epoch record with the lowest evaluation top-1 error (the first on ties), as
    {"epoch", <its evaluation metrics>}: the checkpoint the official code keeps (main.py saves
    the best *test* accuracy). This project reports the last epoch; this is the comparison.
    None when no epoch record has a top1_err."""
    scored = [e for e in epochs if isinstance(e.get("top1_err"), (int, float)) and math.isfinite(e["top1_err"])]
    if not scored:
        return None
    last = {}
    for e in scored:  # a resumed run may repeat an epoch: its last record counts
        last[e["epoch"]] = e
    best = min(last.values(), key=lambda e: (e["top1_err"], e["epoch"]))
    return {"epoch": best["epoch"], **{k: best[k] for k in METRIC_NAMES if k in best}}
