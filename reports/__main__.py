"""Tables 1-5, figures and reproduction checks from run logs (reports never train): python -m
reports SUBCOMMAND [options], one subcommand per output."""
from __future__ import annotations

import argparse
import sys

from core.cli import UserError, description, entry_point

from .logs import DEFAULT_ROOTS, find_runs
from .tables import TABLES, build_table, write_table

DEFAULT_OUT = "reports/out"
# where the reduced configs file a run that names no table (their `table:`): no table reads it
SCRATCH = "scratch"


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


def _parser() -> argparse.ArgumentParser:
    """`python -m reports SUBCOMMAND`: one subparser per subcommand, with the options it reads."""
    ap = argparse.ArgumentParser(prog="python -m reports", description=description(__doc__),
                                 epilog="python -m reports SUBCOMMAND --help: that subcommand's options")
    sub = ap.add_subparsers(dest="target", metavar="SUBCOMMAND", title="subcommands")

    def runs_out(p, what="run-log roots"):
        p.add_argument("--runs", nargs="+", default=None,
                       help=f"{what} (default: {' '.join(DEFAULT_ROOTS)})")
        p.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")

    def columns(p, name):
        if name in ("table1", "table2", "tables"):
            p.add_argument("--selected-on-test", action="store_true",
                           help="tables 1 and 2: add a column of top-1 error at each run's best epoch on "
                                "test, as the official code reports it (the other columns: the last epoch)")
        if name in ("table1", "table2", "table3", "tables"):
            p.add_argument("--calibration", action="store_true",
                           help="tables 1 and 2: add Brier score, 15-bin, adaptive and classwise ECE, "
                                "SmoothECE and AUGRC columns and a block of NLL, ECE, SmoothECE and AUGRC "
                                "before and after temperature scaling with the fitted T; table 3: a D-ECE "
                                "column (beyond the paper; measured values only)")

    for name in TABLES:
        p = sub.add_parser(name, help=f"{TABLES[name].title} (Markdown, LaTeX, CSV)",
                           description=f"{TABLES[name].title}: Markdown, LaTeX and CSV in --out.")
        runs_out(p)
        columns(p, name)
    for name, text in (("tables", "every table, the regime map, Table 4's runs and the study's table"),
                       ("regime", "the regime map: Self-KD minus baseline against the baseline's fit"),
                       ("table4-runs", "Table 4's runs in detail and each method minus its baseline"),
                       ("study", "the pre-registered study's table: each method raw and temperature-scaled"),
                       ("figures", "Fig. 2 and the reliability diagrams (PNG, PDF)")):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ", from run logs.")
        runs_out(p)
        columns(p, name)
    p = sub.add_parser("check-repro", help="compare the logs with the expected results (exit 1 on drift)",
                       description="Compare the run logs with reports/expected_results.yaml: each "
                                   "expectation within its tolerance, else exit status 1.")
    p.add_argument("--runs", nargs="+", default=None, help="run-log roots (default: reports/runs)")
    p.add_argument("--expected", default=None, help="expected-results YAML")
    p.add_argument("--allow-missing", action="store_true",
                   help="list expectations that have no complete run instead of failing on them (at "
                        "least one expectation must still be checked)")
    p = sub.add_parser("expect", help="print expected_results.yaml entries measured by the committed logs",
                       description="Print the reports/expected_results.yaml entries of table cells "
                                   "measured by complete run logs: per metric, expected = the mean over "
                                   "the matching runs, tolerance = max(2 x the seed sd, a floor), n.")
    p.add_argument("--runs", nargs="+", default=None, help="run-log roots (default: reports/runs)")
    p.add_argument("--table", required=True, help="the runs' table (their meta record's), e.g. study")
    p.add_argument("--row", required=True, help="the runs' row, e.g. study_resnet20_9k_aug_e65")
    p.add_argument("--method", nargs="+", required=True, help="one or more methods, e.g. baseline selfkd")
    p.add_argument("--metrics", nargs="+", default=["top1_err", "nll", "ece", "aurc"],
                   help="metric keys (ts.<metric> after temperature scaling, ts.temperature the "
                        "fitted T; default: %(default)s)")
    p.add_argument("--split", default=None,
                   help="read the metrics from each run's eval record of this split (test for the "
                        "study's runs) instead of its final record")
    p.add_argument("--run-id", default=None, help="one run of the cell (e.g. an alpha_T candidate)")
    p.add_argument("--update", metavar="FILE", default=None,
                   help="write the entries into this expectations file instead of printing them: "
                        "each replaces the entry of the same cell and metric in place, a new one "
                        "is appended (e.g. reports/expected_results.yaml)")
    p = sub.add_parser("demo", help="the demo's table and reliability diagrams: demo RUNS_DIR OUT_DIR",
                       description="The demo's Table-1-style table and one reliability diagram per run.")
    p.add_argument("runs_dir", metavar="RUNS_DIR")
    p.add_argument("out_dir", metavar="OUT_DIR")
    sub.add_parser("qualitative", add_help=False,
                   help="Figs. 3 and 8 from classification checkpoints (options: qualitative --help)")
    return ap


@entry_point()
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["qualitative"]:  # Figs. 3 and 8, options of its own (python -m reports qualitative -h)
        from .qualitative import main as qualitative_main
        return qualitative_main(argv[1:])
    ap = _parser()
    args = ap.parse_args(argv)
    if args.target is None:  # no subcommand: what there is to run
        ap.print_help(sys.stderr)
        return 2

    if args.target == "demo":
        from .demo import render_demo
        problem = _check_paths([args.runs_dir], args.out_dir)
        if problem:
            raise UserError(problem)
        print(render_demo(args.runs_dir, args.out_dir), end="")
        return 0
    # a root named on the command line must exist (a typo would render tables with no runs over
    # the good ones); the default roots may not exist yet (check-repro checks its own roots)
    problem = None if args.target in ("check-repro", "expect") else _check_paths(args.runs or [], args.out)
    if problem:
        raise UserError(problem)
    if args.target == "expect":
        from .repro import expectations, update_expected
        roots = args.runs or ["reports/runs"]
        problem = _check_paths(roots, None)
        if problem:
            raise UserError(problem)
        runs, warnings = find_runs(roots)
        _warn(warnings)
        new = [e for m in args.method
               for e in expectations(runs, args.table, args.row, m, args.metrics, args.split, args.run_id)]
        if args.update:
            replaced, added = update_expected(args.update, new)
            print(f"{args.update}: {replaced} entries replaced, {added} added")
        else:
            print("\n".join(new))
        return 0
    if args.target == "check-repro":
        from .repro import EXPECTED_FILE, check_repro
        rc, lines = check_repro(args.expected or EXPECTED_FILE, args.runs or ["reports/runs"],
                                strict=not args.allow_missing)
        print("\n".join(lines))
        return rc

    runs, warnings = find_runs(args.runs or DEFAULT_ROOTS)
    _warn(warnings)
    if args.runs and not runs:  # named roots with no run in them: nothing to write over the outputs
        raise UserError(f"--runs {' '.join(args.runs)}: no run log (log.jsonl with a meta line) under it; "
                        f"nothing written to {args.out}")
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
        table = build_table(name, runs, warnings,
                            selected_on_test=getattr(args, "selected_on_test", False) and cls,
                            calibration=getattr(args, "calibration", False) and (cls or name == "table3"))
        n_meas = sum(ln.group is not None for ln in table.lines)
        if args.runs and not n_meas and args.target != "tables":  # nothing to write over a good table
            raise UserError(f"{name}: no run under --runs {' '.join(args.runs)} belongs to {name}; "
                            f"{args.out}/{name}.* left as they were")
        paths = write_table(table, args.out)
        print(f"{name}: {n_meas}/{len(table.lines)} lines measured -> "
              + ", ".join(str(p) for p in paths.values()))
    scratch = [r for r in runs if r.table == SCRATCH]
    if scratch and args.target == "tables":
        print(f"{len(scratch)} run(s) of table '{SCRATCH}' (a reduced config run without table=...) "
              f"are in no table; `python -m reports figures` draws them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
