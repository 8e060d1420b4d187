"""`make check-repro`: compare committed run logs with reports/expected_results.yaml
(detectron2's EXPECTED_RESULTS + verify_results idea). Each expectation names a table cell and
the scale it was measured at; the check takes the mean over the matching complete runs (seeds)
and fails when |mean - expected| > tolerance, or when an expectation has no complete run (a
mistyped --runs must not pass as "nothing to check").

An entry with `minus: <method>` checks a paired difference instead: the mean over seeds of
metric(method) - metric(<method>), over the seeds both have complete runs of (the <method> runs
match the entry with its method, and its epochs replaced by `minus_epochs` where given: a
baseline that stops early has another epoch count than a Self-KD run of T epochs); `n` is then
the number of pairs.

An entry with `split: <split>` reads the metric from each run's newest eval record of that split
(Run.metric_on; `ts.<metric>` after temperature scaling, `ts.temperature` the fitted T) instead
of its final record: a run trained evaluating its holdout and then scored on the test set by
`classification.evaluate --split test --record` holds its test numbers there.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from core.cli import UserError

from .differences import by_seed, paired
from .logs import Cell, shown_path, find_runs
from .tables import TABLES

EXPECTED_FILE = Path(__file__).resolve().parent / "expected_results.yaml"
REQUIRED = ("table", "row", "method", "metric", "expected", "tolerance")
OPTIONAL = ("dataset", "epochs", "model", "run_id", "n", "note", "minus", "minus_epochs", "split")
_STRINGS = ("table", "row", "method", "metric", "dataset", "model", "run_id", "note", "minus", "split")


class ReproError(UserError):
    """The check cannot run: a malformed expectations file or a --runs root that is not there.
    The message is one line; the CLI prints it and exits 2."""


def _is_number(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float))


def _read_yaml(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ReproError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ReproError(f"{path}: cannot read the expectations file ({e.strerror or e})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        why = " ".join(str(getattr(e, "problem", None) or type(e).__name__).split())
        raise ReproError(f"{path}{where}: not valid YAML ({why})") from None


def load_expected(path: str | Path) -> list[dict]:
    """The `results:` list of an expected-results YAML, validated. Raises ReproError (a
    ValueError) with a one-line message naming the file and entry on anything malformed."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict) or "results" not in data:
        got = "no results key" if isinstance(data, dict) else type(data).__name__
        raise ReproError(f"{path}: expected a mapping with a 'results:' list of expectations, "
                         f"got {got}")
    entries = data["results"] if data["results"] is not None else []
    if not isinstance(entries, list):
        raise ReproError(f"{path}: 'results' must be a list, got {type(entries).__name__}")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ReproError(f"{path}: results[{i}] must be a mapping, got {e!r}")
        missing = [k for k in REQUIRED if k not in e]
        unknown = [k for k in e if k not in REQUIRED + OPTIONAL]
        if missing or unknown:
            raise ReproError(f"{path}: results[{i}] lacks {missing} / has unknown keys {unknown}; "
                             f"expected keys {REQUIRED} and optionally {OPTIONAL}")
        for k in _STRINGS:
            if k in e and not (isinstance(e[k], str) and e[k]):
                raise ReproError(f"{path}: results[{i}].{k} must be a non-empty string, "
                                 f"got {e[k]!r}")
        for k in ("expected", "tolerance"):
            if not _is_number(e[k]):
                raise ReproError(f"{path}: results[{i}].{k} must be a number, got {e[k]!r}")
        if e["tolerance"] < 0:
            raise ReproError(f"{path}: results[{i}].tolerance must be >= 0, got {e['tolerance']}")
        if "minus_epochs" in e and "minus" not in e:
            raise ReproError(f"{path}: results[{i}].minus_epochs is set without minus")
        for k in ("n", "epochs", "minus_epochs"):
            if k in e and (not isinstance(e[k], int) or isinstance(e[k], bool) or e[k] < 1):
                raise ReproError(f"{path}: results[{i}].{k} must be a positive integer, "
                                 f"got {e[k]!r}")
    return entries


def reader(metric: str, split: str | None = None):
    """run -> its `metric`: from its newest eval record of `split` (Run.metric_on) when a split is
    named, else from its final record (Run.metric). What an expectation reads, checked or written."""
    if split:
        return lambda run: run.metric_on(split, metric)
    return lambda run: run.metric(metric)


def _matches(run, e) -> bool:
    tables = TABLES[e["table"]].run_tables if e["table"] in TABLES else (e["table"],)
    return (run.complete and run.table in tables and run.row == e["row"]
            and run.method == e["method"]
            and ("dataset" not in e or run.dataset == str(e["dataset"]))
            and ("epochs" not in e or run.total_epochs == int(e["epochs"]))
            and ("model" not in e or run.model == str(e["model"]))
            and ("run_id" not in e or run.run_id == str(e["run_id"])))


def _baseline_runs(runs, e) -> list:
    """The runs an entry with `minus` subtracts: the entry's selection with method `minus`, epochs
    `minus_epochs` where given, and no run_id (which selects on the method's side only)."""
    base = {k: v for k, v in e.items() if k not in ("run_id", "epochs", "method")}
    base["method"] = e["minus"]
    if "minus_epochs" in e or "epochs" in e:
        base["epochs"] = e.get("minus_epochs", e.get("epochs"))
    return [r for r in runs if _matches(r, base)]


def check_repro(expected_path=EXPECTED_FILE, roots=("reports/runs",), strict=True):
    """Returns (exit code, report lines). Exit 1 when a result is outside its tolerance or when
    an expectation has no complete run (a mistyped --runs, a log not committed); with
    strict=False (`--allow-missing`) expectations without runs are listed but do not fail, as
    long as at least one expectation was checked. Raises ReproError when a root does not exist
    or the expectations file is malformed."""
    for root in roots:
        if not Path(root).is_dir():
            raise ReproError(f"--runs {root}: "
                             + ("not a folder" if Path(root).exists() else "no such folder"))
    entries = load_expected(expected_path)
    runs, warnings = find_runs(roots)
    lines = [f"warning: {w}" for w in warnings]
    roots_txt = ", ".join(map(str, roots))
    if not runs:
        lines.append(f"check-repro: no run logs under {roots_txt}")
    failed = missing = ok = 0
    used = set()
    for e in entries:
        rs = [r for r in runs if _matches(r, e)]
        method = e["method"] + (f" - {e['minus']} (paired by seed)" if "minus" in e else "")
        where = (f"{e['table']} {e['row']} {method} {e['metric']}"
                 + (f" [{e.get('dataset', '*')}, {e.get('epochs', '*')} ep]")
                 + (f" on the {e['split']} eval record" if "split" in e else "")
                 + (f" {e['run_id']}" if "run_id" in e else ""))
        base_rs = _baseline_runs(runs, e) if "minus" in e and rs else []
        if "minus" in e and not base_rs:
            rs = []  # a paired difference needs both sides
        if not rs:
            missing += 1
            lines.append(f"MISSING {where}: no complete run under {roots_txt}")
            continue
        used.update(id(r) for r in rs + base_rs)
        value = reader(e["metric"], e.get("split"))
        if "minus" in e:
            d = paired(by_seed(base_rs, value), by_seed(rs, value))
            c = Cell(d.value, None, d.n)
            rs = rs + base_rs
        else:
            c = Cell.of(value(r) for r in rs)
        ids = ", ".join(r.run_id for r in rs)
        if c.mean is None:
            failed += 1
            why = "no seed has the metric on both sides" if "minus" in e else "metric absent from the logs"
            if "split" in e:
                why += f" (read from their {e['split']} eval records)"
            lines.append(f"FAIL    {where}: {why} of {ids}")
            continue
        diff = c.mean - e["expected"]
        if "n" in e and c.n != e["n"]:
            failed += 1
            what = "seed pair(s) of complete runs" if "minus" in e else "complete run(s)"
            lines.append(f"FAIL    {where}: {c.n} {what} ({ids}), expected n={e['n']}: "
                         f"a committed log is missing or unreadable, or an extra run matched")
            continue
        good = abs(diff) <= e["tolerance"]
        ok += good
        failed += not good
        lines.append(f"{'ok     ' if good else 'FAIL   '} {where}: measured {c.mean:.4f} "
                     f"(n={c.n}: {ids}), expected {e['expected']} ± {e['tolerance']}, "
                     f"diff {diff:+.4f}")
    unchecked = [r for r in runs if id(r) not in used and r.complete]
    if unchecked:
        lines.append(f"note: {len(unchecked)} complete run(s) have no expectation: "
                     + ", ".join(r.run_id for r in unchecked))
    nothing_checked = bool(entries) and ok + failed == 0
    rc = 1 if failed or (missing and (strict or nothing_checked)) else 0
    note = ""
    if missing and not rc:
        note = " (expectations without runs were not verified: --allow-missing)"
    elif nothing_checked:
        note = (f" (nothing was verified: no expectation of {shown_path(Path(expected_path))} "
                "has a run)")
    lines.append(f"check-repro: {ok} ok, {failed} outside tolerance, {missing} without runs "
                 f"({len(runs)} run logs read) -> {'FAILED' if rc else 'passed'}{note}")
    return rc, lines


# ----------------------------------------------------------------------------- writing expectations
# The smallest tolerance of a metric (its ts. variant the same): a cell of one run, or of seeds that
# happen to agree, still has to allow another CPU's rounding.
TOLERANCE_FLOORS = {"top1_err": 0.3, "ece": 0.3, "nll": 0.01, "aurc": 3.0, "temperature": 0.05}
DECIMALS = {"top1_err": 2, "ece": 2, "nll": 3, "aurc": 1, "temperature": 3}


def _base(key: str) -> str:
    """The metric a key measures: ts.nll -> nll, train_top1_err / fit_top1_err -> top1_err."""
    base = key.split(".")[-1]
    return next((m for m in TOLERANCE_FLOORS if base.endswith("_" + m)), base)


def _tolerance(key: str, sd: float | None) -> float:
    """max(2 x the seed sd, the metric's floor), rounded up at the metric's decimals."""
    base = _base(key)
    d = DECIMALS.get(base, 3)
    t = max(2 * (sd or 0.0), TOLERANCE_FLOORS.get(base, 0.0))
    return math.ceil(t * 10 ** d - 1e-9) / 10 ** d


def expectations(runs, table: str, row: str, method: str, metrics, split: str | None = None,
                 run_id: str | None = None) -> list[str]:
    """YAML lines of reports/expected_results.yaml for one cell measured by committed logs: per
    metric, expected = the mean over the matching complete runs, tolerance = max(2 x the seed sd,
    a floor) (TOLERANCE_FLOORS), n = the runs. Written from the logs, never by hand; raises
    ReproError when no complete run matches or a run lacks a metric. run_id: that one run of the
    cell (an alpha_T candidate among its row's others)."""
    sel = {"table": table, "row": row, "method": method, **({"run_id": run_id} if run_id else {})}
    rs = [r for r in runs if _matches(r, sel)]
    if not rs:
        raise ReproError(f"no complete run of table {table}, row {row}, method {method}"
                         + (f", run_id {run_id}" if run_id else ""))
    lines = []
    for key in metrics:
        get = reader(key, split)
        values = [get(r) for r in rs]
        lacking = [r.run_id for r, v in zip(rs, values) if v is None]
        if lacking:
            where = f" (their {split} eval records)" if split else ""
            raise ReproError(f"{key} is absent from {', '.join(lacking)}{where}")
        c = Cell.of(values)
        d = DECIMALS.get(_base(key), 3)
        fields = [f"table: {table}", f"row: {row}", f"method: {method}", f"metric: {key}"]
        fields += [f"dataset: {rs[0].dataset}", f"epochs: {rs[0].total_epochs}"]
        fields += [f"split: {split}"] if split else []
        fields += [f"run_id: {run_id}"] if run_id else []
        sd = f"{c.std:.{d + 1}f}" if c.std is not None else "- (one run)"
        lines.append(f"  - {{{', '.join(fields)},\n     expected: {round(c.mean, d)}, "
                     f"tolerance: {_tolerance(key, c.std)}, n: {c.n}}}  # n={c.n}, seed std {sd}")
    return lines


KEY = ("table", "row", "method", "metric", "split", "run_id", "minus")  # what one expectation pins


def _entries(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last + 1) line spans of the `  - {...}` entries of an expectations file's lines."""
    spans, i = [], 0
    while i < len(lines):
        if lines[i].lstrip().startswith("- {"):
            j = i
            while "}" not in lines[j].split("#", 1)[0] and j + 1 < len(lines):
                j += 1
            spans.append((i, j + 1))
            i = j + 1
        else:
            i += 1
    return spans


def _key(entry_text: str) -> tuple:
    (e,) = yaml.safe_load(entry_text)
    return tuple(e.get(k) for k in KEY)


def update_expected(path: str | Path, new: list[str]) -> tuple[int, int]:
    """Write the entries `new` (as `expectations` returns them) into the expectations file: each
    replaces the entry pinning the same cell and metric (KEY) in place, comments and every other
    entry kept; one with no such entry is appended at the end. The result is validated
    (load_expected) before it replaces the file, atomically; (replaced, added)."""
    path = Path(path)
    load_expected(path)  # a malformed file is refused before it is touched
    lines = path.read_text(encoding="utf-8").splitlines()
    where = {}
    for a, b in _entries(lines):
        try:
            where.setdefault(_key("\n".join(lines[a:b])), (a, b))
        except (yaml.YAMLError, ValueError, AttributeError):
            continue  # a span this line scan cut wrongly (a "}" in a note): never replaced, only kept
    replace, append = {}, []
    for entry in new:
        k = _key(entry)
        if k in where:
            replace[where[k]] = entry.splitlines()
        else:
            append.extend(entry.splitlines())
    out, i = [], 0
    for (a, b) in sorted(replace):
        out += lines[i:a] + replace[(a, b)]
        i = b
    out += lines[i:] + append
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    try:
        load_expected(tmp)
    except ReproError:
        tmp.unlink()
        raise
    os.replace(tmp, path)
    return len(replace), sum(1 for ln in append if ln.lstrip().startswith("- {"))
