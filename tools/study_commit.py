"""Bring finished study runs into the record in one step: copy the log of every run under FROM/study/
that is complete and scored on test (its `eval` record of split test) into reports/runs/study/,
pin every scored cell of table `study` in reports/expected_results.yaml (`reports expect --update`:
the cell's entries replaced where they stand, new cells appended), render reports/out/study.md and
cut its tables into the pages that hold a setting's markers (tools/study_excerpt.py: docs/reproduction.md's
full tables, the README's glance table). Nothing is deleted; a run not finished is left where it
is and listed. What it cannot do is the prose: the README's study sentences are checked against the
report by tests/test_docs.py, and are updated by hand.

    python tools/study_commit.py --from /path/to/worktree/runs [--from ...]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.cli import UserError, entry_point  # noqa: E402
from core.runlog import read_run_log  # noqa: E402

TABLE = "study"
METRICS = ["top1_err", "nll", "ece", "aurc", "ts.nll", "ts.ece", "ts.aurc", "ts.temperature"]


def scored_on_test(log_path: Path) -> bool:
    """A complete log with a test-set eval record (what classification.evaluate --split test --record
    adds): the report's own rule (reports.study.scored_record), applied to the log on disk."""
    from reports.logs import Run
    from reports.study import scored_record
    try:
        log = read_run_log(log_path)
    except (OSError, ValueError):
        return False
    return scored_record(Run(log, log_path.parent.parent)) is not None


def copy_finished(sources, dest: Path) -> tuple[list[str], list[str]]:
    """(run ids copied or updated, run ids left: not finished or not scored yet)."""
    copied, left = [], []
    for src in sources:
        for log in sorted(Path(src, TABLE).glob("*/log.jsonl")):
            run = log.parent.name
            if not scored_on_test(log):
                left.append(run)
                continue
            target = dest / run / "log.jsonl"
            if target.exists() and target.read_bytes() == log.read_bytes():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, target)
            copied.append(run)
    return copied, left


def pin(runs, settings, expected: Path) -> tuple[int, int]:
    """Every (row, method) of the study with scored runs, pinned; (entries replaced, added)."""
    from reports.repro import expectations, update_expected
    new = [e for s in settings for m, mr in s.methods.items() if mr.scored
           for e in expectations(runs, TABLE, s.row, m, METRICS, "test")]
    return update_expected(expected, new) if new else (0, 0)


def render(runs, settings, warnings, runs_root: Path, out: Path, pages) -> list[str]:
    """reports/out/study.md, then each page's marked sections; the lines the excerpt tool printed."""
    from reports.study import write_study
    import importlib.util
    spec = importlib.util.spec_from_file_location("study_excerpt", Path(__file__).with_name("study_excerpt.py"))
    excerpt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(excerpt)
    paths, _ = write_study(runs, [runs_root], out, warnings)
    report = paths["md"].read_text(encoding="utf-8")
    lines = []
    for page in pages:
        text = Path(page).read_text(encoding="utf-8")
        new = text
        for s in settings:
            for kind, cut in (("tables", excerpt.excerpt), ("glance", excerpt.glance)):
                if excerpt.begin(s.row, kind) in new:
                    new = excerpt.replace_section(new, s.row, cut(report, s.row), kind)
        if new != text:
            Path(page).write_text(new, encoding="utf-8")
        lines.append(f"{page}: {'updated' if new != text else 'unchanged'}")
    return lines


@entry_point()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/study_commit.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="sources", action="append", required=True, metavar="RUNS",
                    help="a launcher's output folder holding study/<run_id>/log.jsonl (repeatable)")
    ap.add_argument("--runs", default="reports/runs", help="the committed run logs (default: %(default)s)")
    ap.add_argument("--expected", default="reports/expected_results.yaml", help="the pins (default: %(default)s)")
    ap.add_argument("--out", default="reports/out", help="where study.md is rendered (default: %(default)s)")
    ap.add_argument("--pages", nargs="+", default=["docs/reproduction.md", "README.md"],
                    help="pages whose study markers are filled (default: %(default)s)")
    args = ap.parse_args(argv)
    for src in args.sources:
        if not Path(src, TABLE).is_dir():
            raise UserError(f"{src}: no {TABLE}/ folder of run logs in it")
    runs_root = Path(args.runs)
    copied, left = copy_finished(args.sources, runs_root / TABLE)
    print(f"copied {len(copied)} finished run log(s)" + (f": {', '.join(copied)}" if copied else ""))
    if left:
        print(f"left {len(left)} not finished or not scored yet: {', '.join(left)}")
    from reports.logs import find_runs
    from reports.study import study_settings
    runs, warnings = find_runs([runs_root])  # read once, after the copy, for the pins and the report
    settings = study_settings(runs)
    replaced, added = pin(runs, settings, Path(args.expected))
    print(f"{args.expected}: {replaced} entries replaced, {added} added")
    print("\n".join(render(runs, settings, warnings, runs_root, Path(args.out), args.pages)))
    print("next: the README's study sentences by hand (pytest tests/test_docs.py checks their figures), "
          "make check-repro, commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
