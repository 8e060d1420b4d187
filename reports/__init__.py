"""Run logs -> the paper's Tables 1–5 (Markdown, LaTeX, CSV), Figure 2 and reliability diagrams
(Figures 4–7), and the reproduction check. Reads logs only; nothing here trains.

    python -m reports table1 ... table5 | tables | figures | check-repro | demo RUNS OUT
    reports.render_demo(runs_dir, out_dir) -> Markdown of the demo's Table-1-style table
"""
from .logs import find_runs, group_runs
from .tables import TABLES, build_table, write_table

__all__ = ["render_demo", "find_runs", "group_runs", "TABLES", "build_table", "write_table"]


def render_demo(runs_dir, out_dir):
    """The demo's table and reliability diagrams (reports.demo; imported on use, so the tables
    load without matplotlib)."""
    from .demo import render_demo as _render
    return _render(runs_dir, out_dir)
