"""Shared helpers of the reports tests: the repo root as working directory (so paths in
warnings and goldens are relative and stable) and golden-file comparison."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path("tests/fixtures/runs")      # relative to REPO
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MPLBACKEND", "Agg")


def assert_golden(name: str, text: str) -> None:
    """Compare text with golden/<name> exactly. REPORTS_BLESS=1 rewrites the golden file (then
    review the diff before committing)."""
    path = GOLDEN / name
    if os.environ.get("REPORTS_BLESS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with REPORTS_BLESS=1 once"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from its golden file {path}"
