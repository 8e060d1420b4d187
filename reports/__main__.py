"""CLI: python -m reports {table1..table5,regime,table4-runs,study,tables,figures,check-repro,demo,qualitative} [options]."""
from __future__ import annotations

import argparse
import sys

from .logs import DEFAULT_ROOTS, find_runs
from .tables import TABLES, build_table, write_table

DEFAULT_OUT = "reports/out"


def _warn(warnings) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def _check_paths(runs, out) -> str | None:
    """What is wrong with the run roots and the output folder a command names, else None: a root
    that does not exist, an output folder (or a folder above it) that is a file."""
    from pathlib import Path
    for r in runs:
        if not Path(r).exists():
            return f"--runs {r}: no such folder"
    if out is not None:
        p = Path(out)
        while not p.exists() and p != p.parent:
            p = p.parent
        if not p.is_dir():
            return f"--out {out}: {p} is a file, not a folder"
    return None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["qualitative"]:  # Figs. 3 and 8, options of its own (python -m reports qualitative -h)
        from .qualitative import main as qualitative_main
        return qualitative_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    ap.add_argument("target", choices=list(TABLES) + ["regime", "table4-runs", "study", "tables", "figures", "check-repro", "demo"])
    ap.add_argument("paths", nargs="*", help="demo only: RUNS_DIR OUT_DIR")
    ap.add_argument("--runs", nargs="+", default=None,
                    help=f"run-log roots (default: {' '.join(DEFAULT_ROOTS)}; "
                         "check-repro: reports/runs)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--expected", default=None, help="check-repro: expected-results YAML")
    ap.add_argument("--allow-missing", action="store_true",
                    help="check-repro: list expectations that have no complete run instead of "
                         "failing on them (at least one expectation must still be checked)")
    ap.add_argument("--selected-on-test", action="store_true",
                    help="tables 1 and 2: add a column of top-1 error at each run's best epoch on "
                         "test, as the official code reports it (the other columns: the last epoch)")
    ap.add_argument("--calibration", action="store_true",
                    help="tables 1 and 2: add Brier score, 15-bin, adaptive and classwise ECE, "
                         "SmoothECE and AUGRC columns and a block of NLL, ECE, SmoothECE and AUGRC "
                         "before and after temperature scaling with the fitted T; table 3: a D-ECE "
                         "column (beyond the paper; measured values only)")
    args = ap.parse_args(argv)

    if args.target == "demo":
        from .demo import render_demo
        if len(args.paths) != 2:
            ap.error("demo needs RUNS_DIR OUT_DIR")
        problem = _check_paths([args.paths[0]], args.paths[1])
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        print(render_demo(*args.paths), end="")
        return 0
    # a root named on the command line must exist (a typo would render tables with no runs over
    # the good ones); the default roots may not exist yet (check-repro checks its own roots)
    problem = None if args.target == "check-repro" else _check_paths(args.runs or [], args.out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.paths:
        ap.error(f"unexpected arguments {args.paths} (use --runs / --out)")
    if args.target == "check-repro":
        from .repro import EXPECTED_FILE, ReproError, check_repro
        try:
            rc, lines = check_repro(args.expected or EXPECTED_FILE, args.runs or ["reports/runs"],
                                    strict=not args.allow_missing)
        except ReproError as e:
            print(f"check-repro: error: {e}", file=sys.stderr)
            return 2
        print("\n".join(lines))
        return rc

    runs, warnings = find_runs(args.runs or DEFAULT_ROOTS)
    _warn(warnings)
    if args.target == "figures":
        from .figures import render_figures
        files, notes = render_figures(runs, f"{args.out}/figures")
        for n in notes:
            print(n)
        for f in files:
            print(f"wrote {f}")
        return 0
    if args.target in ("regime", "tables"):
        from .regime import write_regime
        print(f"regime map -> {write_regime(runs, args.out)}")
        if args.target == "regime":
            return 0
    if args.target in ("table4-runs", "tables"):
        from .translation import write_table4_runs
        path, sel_warnings = write_table4_runs(runs, args.runs or DEFAULT_ROOTS, args.out)
        _warn(sel_warnings)
        print(f"table4 runs -> {path}")
        if args.target == "table4-runs":
            return 0
    if args.target in ("study", "tables"):
        from .study import write_study
        paths, sel_warnings = write_study(runs, args.runs or DEFAULT_ROOTS, args.out, warnings)
        _warn(sel_warnings)
        print(f"study -> {paths['md']}")
        if args.target == "study":
            return 0
    names = list(TABLES) if args.target == "tables" else [args.target]
    for name in names:
        cls = TABLES[name].task == "classification"
        table = build_table(name, runs, warnings, selected_on_test=args.selected_on_test and cls,
                            calibration=args.calibration and (cls or name == "table3"))
        paths = write_table(table, args.out)
        n_meas = sum(ln.group is not None for ln in table.lines)
        print(f"{name}: {n_meas}/{len(table.lines)} lines measured -> "
              + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
