"""Does a rerun repeat a committed run? Compare two run logs record by record: every epoch line and
the final record's metrics, leaving out what measures the machine (epoch_s, wall_s) rather than
the training.

    python tools/compare_logs.py reports/runs/regime/resnet20_5k_noaug_baseline_s0/log.jsonl \
        runs/study/resnet20_5k_noaug_baseline_s0/log.jsonl

prints one line per differing value (record, key, both values), the keys only one log has (a log
written before a metric existed), then a summary: identical, or the number of differing values
and the largest absolute difference. Exit 0 when identical, 1 when
not, 2 on a log that cannot be read.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.cli import UserError, entry_point  # noqa: E402
from core.runlog import RunLogError, read_run_log  # noqa: E402

TIMING = ("epoch_s", "wall_s")


def _flat(rec, prefix: str = "") -> dict:
    """{dotted key: number or string} of a record's values, timings left out."""
    out = {}
    for k, v in rec.items():
        if k in TIMING:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, list):
            out.update(_flat({str(i): x for i, x in enumerate(v)}, key + "."))
        else:
            out[key] = v
    return out


def differences(a, b) -> list[tuple[str, object, object]]:
    """(where, value in a, value in b) for every epoch-line and final-record value that differs;
    a record one log has and the other lacks counts as one difference."""
    out = []
    pairs = [(f"epoch {ea.get('epoch', i + 1)}", ea, eb) for i, (ea, eb) in enumerate(zip(a.epochs, b.epochs))]
    if len(a.epochs) != len(b.epochs):
        out.append(("epoch lines", len(a.epochs), len(b.epochs)))
    if (a.final is None) != (b.final is None):
        out.append(("final record", a.final is not None, b.final is not None))
    elif a.final is not None:
        pairs.append(("final", {k: a.final.get(k) for k in ("metrics", "reliability")},
                      {k: b.final.get(k) for k in ("metrics", "reliability")}))
    for where, ra, rb in pairs:
        fa, fb = _flat(ra), _flat(rb)
        for k in sorted(set(fa) & set(fb)):  # a key one log lacks: another schema (only_in)
            if fa[k] != fb[k]:
                out.append((f"{where}: {k}", fa[k], fb[k]))
    return out


def only_in(a, b) -> tuple[list, list]:
    """The keys of the epoch lines and final metrics only `a` has, and only `b` has (a log written
    before a metric existed lacks it: a schema difference, not a training one)."""
    both_final = a.final is not None and b.final is not None  # else differences() says which lacks it

    def keys(log):
        recs = list(log.epochs) + ([{"metrics": log.final.get("metrics") or {}}] if both_final else [])
        return set().union(*(_flat(r) for r in recs)) if recs else set()
    ka, kb = keys(a), keys(b)
    return sorted(ka - kb), sorted(kb - ka)


def _gap(x, y) -> float | None:
    try:
        d = abs(float(x) - float(y))
    except (TypeError, ValueError):
        return None
    return d if math.isfinite(d) else None


@entry_point()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/compare_logs.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("a", metavar="LOG_A", help="a run's log.jsonl (e.g. the committed one)")
    ap.add_argument("b", metavar="LOG_B", help="another run's log.jsonl (e.g. the rerun)")
    args = ap.parse_args(argv)
    try:
        a, b = read_run_log(args.a, strict=True), read_run_log(args.b, strict=True)
    except (OSError, RunLogError) as e:
        raise UserError(str(e)) from None
    diffs = differences(a, b)
    for where, x, y in diffs:
        print(f"{where}: {x!r} vs {y!r}")
    for name, keys in zip((args.a, args.b), only_in(a, b)):
        if keys:
            print(f"not compared, only in {name}: {', '.join(keys)}")
    if not diffs:
        print(f"identical: {len(a.epochs)} epoch lines and the final record (timings left out)")
        return 0
    gaps = [g for _, x, y in diffs if (g := _gap(x, y)) is not None]
    print(f"{len(diffs)} values differ" + (f"; largest absolute difference {max(gaps):.3g}" if gaps else ""))
    return 1


if __name__ == "__main__":
    sys.exit(main())
