"""`make check-repro`: compare committed run logs with reports/expected_results.yaml
(detectron2's EXPECTED_RESULTS + verify_results idea). Each expectation names a table cell and
the scale it was measured at; the check takes the mean over the matching complete runs (seeds)
and fails when |mean - expected| > tolerance.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .logs import Cell, _display, find_runs
from .tables import TABLES

EXPECTED_FILE = Path(__file__).resolve().parent / "expected_results.yaml"
REQUIRED = ("table", "row", "method", "metric", "expected", "tolerance")
OPTIONAL = ("dataset", "epochs", "model", "run_id", "n", "note")


def load_expected(path: str | Path) -> list[dict]:
    """The `results:` list of an expected-results YAML, validated."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("results") or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'results' must be a list, got {type(entries).__name__}")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"{path}: results[{i}] must be a mapping, got {e!r}")
        missing = [k for k in REQUIRED if k not in e]
        unknown = [k for k in e if k not in REQUIRED + OPTIONAL]
        if missing or unknown:
            raise ValueError(f"{path}: results[{i}] lacks {missing} / has unknown keys {unknown}; "
                             f"expected keys {REQUIRED} and optionally {OPTIONAL}")
        for k in ("expected", "tolerance"):
            if isinstance(e[k], bool) or not isinstance(e[k], (int, float)):
                raise ValueError(f"{path}: results[{i}].{k} must be a number, got {e[k]!r}")
        if e["tolerance"] < 0:
            raise ValueError(f"{path}: results[{i}].tolerance must be >= 0, got {e['tolerance']}")
        if "n" in e and (isinstance(e["n"], bool) or not isinstance(e["n"], int) or e["n"] < 1):
            raise ValueError(f"{path}: results[{i}].n must be a positive integer, got {e['n']!r}")
    return entries


def _matches(run, e) -> bool:
    tables = TABLES[e["table"]].run_tables if e["table"] in TABLES else (e["table"],)
    return (run.complete and run.table in tables and run.row == e["row"]
            and run.method == e["method"]
            and ("dataset" not in e or run.dataset == str(e["dataset"]))
            and ("epochs" not in e or run.total_epochs == int(e["epochs"]))
            and ("model" not in e or run.model == str(e["model"]))
            and ("run_id" not in e or run.run_id == str(e["run_id"])))


def check_repro(expected_path=EXPECTED_FILE, roots=("reports/runs",), strict=False):
    """Returns (exit code, report lines). Exit 1 when a result is outside its tolerance (or, with
    strict, when an expectation has no complete run); 0 otherwise, including "nothing to check"."""
    entries = load_expected(expected_path)
    runs, warnings = find_runs(roots)
    lines = [f"warning: {w}" for w in warnings]
    roots_txt = ", ".join(map(str, roots))
    if not runs:
        lines.append(f"check-repro: nothing to check: no run logs under {roots_txt} "
                     f"({len(entries)} expectation(s) in {_display(Path(expected_path))} left unchecked). "
                     "Passing, but nothing was verified.")
        return 0, lines
    failed = missing = ok = 0
    used = set()
    for e in entries:
        rs = [r for r in runs if _matches(r, e)]
        where = (f"{e['table']} {e['row']} {e['method']} {e['metric']}"
                 + (f" [{e.get('dataset', '*')}, {e.get('epochs', '*')} ep]")
                 + (f" {e['run_id']}" if "run_id" in e else ""))
        if not rs:
            missing += 1
            lines.append(f"MISSING {where}: no complete run under {roots_txt}")
            continue
        used.update(id(r) for r in rs)
        c = Cell.of(r.metric(e["metric"]) for r in rs)
        ids = ", ".join(r.run_id for r in rs)
        if c.mean is None:
            failed += 1
            lines.append(f"FAIL    {where}: metric absent from the logs of {ids}")
            continue
        diff = c.mean - e["expected"]
        if "n" in e and c.n != e["n"]:
            failed += 1
            lines.append(f"FAIL    {where}: {c.n} complete run(s) ({ids}), expected n={e['n']}: "
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
    rc = 1 if failed or (strict and missing) else 0
    lines.append(f"check-repro: {ok} ok, {failed} outside tolerance, {missing} without runs "
                 f"({len(runs)} run logs read) -> {'FAILED' if rc else 'passed'}"
                 + (" (expectations without runs were not verified; --strict fails on them)"
                    if missing and not rc else ""))
    return rc, lines
