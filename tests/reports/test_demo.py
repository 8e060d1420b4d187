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


def test_demo_table_shows_temperature_scaled_columns_when_runs_carry_them(tmp_path):
    """`make demo` prints NLL and ECE before and after temperature scaling, with T and where it
    was fitted; a fit that stopped at the search bound is explained."""
    from core.runlog import RunLogWriter
    for seed, (t, nll, ece) in enumerate(((0.5, 0.10, 0.40), (0.7, 0.20, 0.60))):
        w = RunLogWriter(tmp_path / "demo" / f"r{seed}" / "log.jsonl")
        w.meta(run_id=f"r{seed}", task="classification", method="baseline", model="small_cnn", dataset="digits",
               seed=seed, config={}, git_commit="0" * 40, git_dirty=False, torch="x", device="cpu",
               started=f"s{seed}", table="demo", row="digits_small_cnn", epochs=30)
        w.epoch(epoch=1, alpha=0.0, lr=0.1, train_loss=1.0)
        w.final(metrics={"top1_err": 0.5, "top5_err": 0.0, "nll": 0.02, "ece": 0.7, "aurc": 0.1},
                reliability=None, wall_s=1.0,
                temperature_scaled={"temperature": t, "ts_fit": "test-2fold", "at_bound": seed == 0,
                                    "metrics": {"nll": nll, "ece": ece}})
    md = reports.render_demo(tmp_path / "demo", tmp_path / "out")
    assert "| AURC (x10^3) | T | NLL after TS | ECE after TS (%) | Status |" in md
    assert "| 0.600 ± 0.141 | 0.150 ± 0.071 | 0.50 ± 0.14 | complete |" in md
    assert "fit: test-2fold" in md and "lower bound" in md
