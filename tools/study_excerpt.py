"""The study's tables for docs/reproduction.md, cut from what `python -m reports study` rendered:
the setting's method grid (methods with scored runs; the seeds column left out) and the rows of
its minus-the-baseline grid for those methods; with --glance its "At a glance" table instead (for
the README). Copied, never typed: the section between the setting's two markers (begin(row,
kind), end(row, kind) below; one pair per setting and kind, so a page can hold several) is
replaced, the rest of the page is left as it is.

    python -m reports study --runs reports/runs          # -> reports/out/study.md
    python tools/study_excerpt.py reports/out/study.md docs/reproduction.md --row study_resnet20_9k_aug_e65
    python tools/study_excerpt.py reports/out/study.md README.md --row study_resnet20_9k_aug_e65 --glance
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.cli import UserError, entry_point  # noqa: E402



def begin(row: str, kind: str = "tables") -> str:
    return f"<!-- study {kind} of {row}: tools/study_excerpt.py writes between these lines -->"


def end(row: str, kind: str = "tables") -> str:
    return f"<!-- end of the study {kind} of {row} -->"


def _table_after(lines: list[str], start: int, title: str) -> list[str]:
    """The Markdown table that follows the heading `title` after line `start`."""
    try:
        i = next(k for k in range(start, len(lines)) if lines[k].startswith(title))
        j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("|"))
    except StopIteration:
        raise UserError(f"no {title!r} table in the study report") from None
    k = j
    while k < len(lines) and lines[k].startswith("|"):
        k += 1
    return lines[j:k]


def _without_last_column(line: str) -> str:
    if line.startswith("|---"):
        return "|" + "---|" * (line.count("|") - 2)
    return " | ".join(line.split(" | ")[:-1]) + " |"


def _setting_start(lines: list[str], row: str) -> int:
    try:
        return next(i for i, ln in enumerate(lines) if ln.startswith(f"## {row} "))
    except StopIteration:
        raise UserError(f"no setting {row!r} in the study report") from None


def glance(report: str, row: str) -> str:
    """The "At a glance" table of setting `row` in a rendered study report."""
    lines = report.splitlines()
    start = _setting_start(lines, row)
    nxt = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(_table_after(lines[:nxt], start, "### At a glance"))


def excerpt(report: str, row: str) -> str:
    """The two tables of setting `row` in a rendered study report."""
    lines = report.splitlines()
    start = _setting_start(lines, row)
    grid = _table_after(lines, start, "### Each method, raw")
    scored = [ln for ln in grid[2:] if "not run yet" not in ln and "not scored yet" not in ln]
    methods = {ln.split(" | ")[0].lstrip("| ").removesuffix(" + temperature scaling") for ln in scored}
    compare = _table_after(lines, start, "### Each method minus the baseline")
    rows = [ln for ln in compare[2:] if ln.split(" | ")[0].lstrip("| ") in methods]
    return "\n".join([_without_last_column(ln) for ln in grid[:2] + scored] + [""] + compare[:2] + rows)


def replace_section(page: str, row: str, text: str, kind: str = "tables") -> str:
    """`page` with the text between row's begin and end markers of `kind` replaced by `text`."""
    b_mark, e_mark = begin(row, kind), end(row, kind)
    if page.count(b_mark) != 1 or page.count(e_mark) != 1 or page.index(b_mark) > page.index(e_mark):
        raise UserError(f"the page has no single '{b_mark}' ... '{e_mark}' section")
    a, b = page.index(b_mark) + len(b_mark), page.index(e_mark)
    return page[:a] + "\n" + text + "\n" + page[b:]


@entry_point()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/study_excerpt.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="the rendered study report (reports/out/study.md)")
    ap.add_argument("page", help="the page whose marked section is replaced (docs/reproduction.md)")
    ap.add_argument("--row", required=True, help="the study setting's row, e.g. study_resnet20_9k_aug_e65")
    ap.add_argument("--glance", action="store_true",
                    help="the setting's 'At a glance' table (between its 'study glance' markers)")
    args = ap.parse_args(argv)
    report, page = Path(args.report).read_text(encoding="utf-8"), Path(args.page).read_text(encoding="utf-8")
    if args.glance:
        new = replace_section(page, args.row, glance(report, args.row), "glance")
    else:
        new = replace_section(page, args.row, excerpt(report, args.row))
    if new != page:
        Path(args.page).write_text(new, encoding="utf-8")
    print(f"{args.page}: {'updated' if new != page else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
