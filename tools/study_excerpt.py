"""The study's tables for docs/reproduction.md, cut from what `python -m reports study` rendered:
the setting's method grid (methods with scored runs; the seeds column left out) and the rows of
its minus-the-baseline grid for those methods. Copied, never typed: the section between the
markers below is replaced, the rest of the page is left as it is.

    python -m reports study --runs reports/runs          # -> reports/out/study.md
    python tools/study_excerpt.py reports/out/study.md docs/reproduction.md --row study_resnet20_9k_aug_e65
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.cli import UserError, entry_point  # noqa: E402

BEGIN = "<!-- study tables: tools/study_excerpt.py writes between these lines -->"
END = "<!-- end of the study tables -->"


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


def excerpt(report: str, row: str) -> str:
    """The two tables of setting `row` in a rendered study report."""
    lines = report.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith(f"## {row} "))
    except StopIteration:
        raise UserError(f"no setting {row!r} in the study report") from None
    grid = _table_after(lines, start, "### Each method, raw")
    scored = [ln for ln in grid[2:] if "not run yet" not in ln and "not scored yet" not in ln]
    methods = {ln.split(" | ")[0].lstrip("| ").removesuffix(" + temperature scaling") for ln in scored}
    compare = _table_after(lines, start, "### Each method minus the baseline")
    rows = [ln for ln in compare[2:] if ln.split(" | ")[0].lstrip("| ") in methods]
    return "\n".join([_without_last_column(ln) for ln in grid[:2] + scored] + [""] + compare[:2] + rows)


def replace_section(page: str, text: str) -> str:
    """`page` with the text between BEGIN and END replaced by `text`."""
    if BEGIN not in page or END not in page or page.index(BEGIN) > page.index(END):
        raise UserError(f"the page has no '{BEGIN}' ... '{END}' section")
    a, b = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[:a] + "\n" + text + "\n" + page[b:]


@entry_point()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/study_excerpt.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="the rendered study report (reports/out/study.md)")
    ap.add_argument("page", help="the page whose marked section is replaced (docs/reproduction.md)")
    ap.add_argument("--row", required=True, help="the study setting's row, e.g. study_resnet20_9k_aug_e65")
    args = ap.parse_args(argv)
    report, page = Path(args.report).read_text(encoding="utf-8"), Path(args.page).read_text(encoding="utf-8")
    new = replace_section(page, excerpt(report, args.row))
    if new != page:
        Path(args.page).write_text(new, encoding="utf-8")
    print(f"{args.page}: {'updated' if new != page else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
