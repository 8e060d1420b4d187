"""`make check-demo`: run `make demo`'s code and check that the README's demo table is what it
prints now (the README trims the Status and Runs columns). Exit 1, with both lines, on a change.

    python tools/check_demo.py [--readme README.md]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path


def table_rows(text: str) -> list[str]:
    """The demo table's data rows, cut to the README's columns (Model ... AURC)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| digits_small_cnn |"):
            rows.append(" | ".join(c.strip() for c in line.strip().strip("|").split("|")[:8]))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--readme", default="README.md")
    args = p.parse_args(argv)
    from classification.demo import main as demo
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        demo([])
    now, readme = table_rows(out.getvalue()), table_rows(Path(args.readme).read_text(encoding="utf-8"))
    if not now or now != readme:
        print("the README's demo table differs from what `make demo` prints now:", file=sys.stderr)
        for a, b in zip(readme, now):
            if a != b:
                print(f"  README: {a}\n  now:    {b}", file=sys.stderr)
        return 1
    print(f"README demo table matches a fresh `make demo` ({len(now)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
