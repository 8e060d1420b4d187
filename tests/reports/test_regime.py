"""The regime map: which runs form a setting, the differences and their standard errors
(worked by hand below), the order of settings, and the CLI / figure outputs."""
import math

import pytest
from PIL import Image

from core.runlog import RunLogWriter
from reports.__main__ import main
from reports.logs import find_runs
from reports.regime import regime_settings, to_markdown


def _run(root, table, row, method, seed, top1, nll, ece, train_loss, **meta):
    meta = {"alpha_kind": "linear", "alpha_T": 0.5, "eval_split": "test", **meta}
    w = RunLogWriter(root / table / f"{row}_{method}_{meta.get('alpha_kind')}_s{seed}" / "log.jsonl")
    w.meta(run_id=f"{row}_{method}_s{seed}", task="classification", method=method, model=row,
           dataset="cifar10_npz", seed=seed, config={}, git_commit="abc", git_dirty=False, torch="x",
           device="cpu", started=f"2026-11-26T00:00:0{seed}{method}", table=table, row=row, epochs=4,
           **meta)
    w.epoch(epoch=4, alpha=0.0, lr=0.1, train_loss=train_loss, fit_top1_err=1.5, conf=90.0)
    w.final(metrics={"top1_err": top1, "nll": nll, "ece": ece, "conf": 90.0}, reliability=None, wall_s=1.0)


@pytest.fixture
def runs(tmp_path):
    # setting 1 (fits: train loss 0.01): baseline 3 seeds, Self-KD 2 seeds
    for s, t in enumerate((30.0, 31.0, 32.0)):
        _run(tmp_path, "regime", "fits", "baseline", s, t, 1.0, 10.0, 0.01)
    for s, t in enumerate((27.0, 28.0)):
        _run(tmp_path, "regime", "fits", "selfkd", s, t, 0.8, 4.0, 0.02)
    # not part of any setting: a fixed-alpha Self-KD run, LS, a holdout run, another table
    _run(tmp_path, "regime", "fits", "selfkd", 5, 0.0, 0.0, 0.0, 0.0, alpha_kind="fixed")
    _run(tmp_path, "regime", "fits", "ls", 0, 0.0, 0.0, 0.0, 0.0)
    _run(tmp_path, "regime", "fits", "selfkd", 6, 0.0, 0.0, 0.0, 0.0, eval_split="holdout")
    _run(tmp_path, "fig2", "fits", "selfkd", 7, 0.0, 0.0, 0.0, 0.0)
    # setting 2 (underfits: train loss 0.9), one seed each
    _run(tmp_path, "table1", "underfits", "baseline", 0, 40.0, 1.2, 2.0, 0.9)
    _run(tmp_path, "table1", "underfits", "selfkd", 0, 42.0, 1.3, 3.5, 1.0)
    # a baseline without Self-KD: no setting
    _run(tmp_path, "table1", "alone", "baseline", 0, 40.0, 1.2, 2.0, 0.5)
    return find_runs([tmp_path])[0]


def test_settings_pair_baseline_with_linear_selfkd_worst_fit_first(runs):
    settings = regime_settings(runs)
    assert [s.row for s in settings] == ["underfits", "fits"]
    fits = settings[1]
    assert (len(fits.baseline), len(fits.selfkd)) == (3, 2)
    # top-1: means 31.0 and 27.5 -> -3.5; SE = sqrt(1^2/3 + 0.7071^2/2) = sqrt(1/3 + 1/4)
    d, se = fits.delta("top1_err")
    assert d == pytest.approx(-3.5) and se == pytest.approx(math.sqrt(1 / 3 + 1 / 4))
    assert fits.delta("ece")[0] == pytest.approx(-6.0)
    d, se = settings[0].delta("nll")
    assert d == pytest.approx(0.1) and se is None  # one seed a side: no standard error


def test_markdown_rows(runs):
    md = to_markdown(regime_settings(runs))
    lines = [ln for ln in md.splitlines() if ln.startswith("| regime") or ln.startswith("| table1")]
    assert lines[0].startswith("| table1/underfits (cifar10_npz, 4 ep) | 0.5 | 1 / 1 | 0.900 | 1.50 | 90.0 | 2.00 | +2.00 | +0.100 | +1.50 |")
    assert lines[1].startswith("| regime/fits (cifar10_npz, 4 ep) | 0.5 | 3 / 2 | 0.010 |")
    assert "-3.50 ± 0.76" in lines[1]


def test_cli_writes_regime_md_and_figure(runs, tmp_path):
    root = str(tmp_path)
    out = tmp_path / "out"
    assert main(["regime", "--runs", root, "--out", str(out)]) == 0
    assert "regime/fits" in (out / "regime.md").read_text()
    assert main(["figures", "--runs", root, "--out", str(out)]) == 0
    with Image.open(out / "figures" / "regime_map.png") as im:
        assert im.text["Panels"] == "3"


def test_fit_table_lists_every_method_with_its_fit(runs, tmp_path):
    from reports.regime import fit_table
    t = fit_table(runs)
    ls = [ln for ln in t.splitlines() if "| regime/fits (cifar10_npz, 4 ep) | ls |" in ln]
    assert len(ls) == 1 and "| 1.50 |" in ls[0]  # fit_top1_err from the last epoch line
    assert any("| table1/underfits (cifar10_npz, 4 ep) | baseline | 1 | 0.900 |" in ln for ln in t.splitlines())
