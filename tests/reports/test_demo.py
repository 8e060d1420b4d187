"""reports.render_demo: the table `make demo` prints, its CSV, one reliability PNG per run."""
from PIL import Image

import reports
from reports.__main__ import main

from .conftest import FIXTURES, assert_golden

DEMO = FIXTURES / "demo"


def test_render_demo_golden_and_pngs(tmp_path):
    md = reports.render_demo(DEMO, tmp_path)
    assert_golden("demo_table1.md", md)
    assert (tmp_path / "table1.md").read_text() == md
    assert_golden("demo_table1.csv", (tmp_path / "table1.csv").read_text())
    lines = [ln for ln in md.splitlines() if ln.startswith("| Small")
             or ln.startswith("| small_cnn")]
    assert len(lines) == 3  # baseline, LS, Self-KD, in that order
    assert [ln.split(" | ")[1] for ln in lines] == ["Baseline", "+ Label Smoothing", "+ Self-KD"]
    # Baseline seeds end at 12 and 13 top-1: mean 12.50 ± 0.71 (sample std), n = 2.
    assert "| 2 | 12.50 ± 0.71 |" in lines[0]
    assert "No paper column" in md
    pngs = sorted(tmp_path.glob("reliability_*.png"))
    assert len(pngs) == 6
    for p in pngs:
        with Image.open(p) as im:
            assert im.text["Panels"] == "1" and im.size[0] > 200
        assert p.stat().st_size > 10_000


def test_render_demo_on_empty_dir_still_writes_a_table(tmp_path):
    md = reports.render_demo(tmp_path / "none", tmp_path / "out")
    assert "no runs" in md and (tmp_path / "out" / "table1.csv").exists()


def test_cli_demo(tmp_path, capsys):
    assert main(["demo", str(DEMO), str(tmp_path)]) == 0
    assert "+ Self-KD" in capsys.readouterr().out
