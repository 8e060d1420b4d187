"""The regime map: which runs form a setting, the differences and their standard errors
(worked by hand below), the order of settings, and the CLI / figure outputs."""
import math

import pytest
from PIL import Image

from core.runlog import RunLogWriter
from reports.__main__ import main
from reports.logs import find_runs
from reports.regime import regime_settings, to_markdown

from .conftest import assert_golden


def _run(root, table, row, method, seed, top1, nll, ece, train_loss, fit=1.5, **meta):
    meta = {"alpha_kind": "linear", "alpha_T": 0.5, "eval_split": "test", **meta}
    w = RunLogWriter(root / table / f"{row}_{method}_{meta.get('alpha_kind')}_s{seed}" / "log.jsonl")
    w.meta(run_id=f"{row}_{method}_s{seed}", task="classification", method=method, model=row,
           dataset="cifar10_npz", seed=seed, config={}, git_commit="abc", git_dirty=False, torch="x",
           device="cpu", started=f"2026-11-26T00:00:0{seed}{method}", table=table, row=row, epochs=4,
           **meta)
    w.epoch(epoch=4, alpha=0.0, lr=0.1, train_loss=train_loss, fit_top1_err=fit, conf=90.0)
    w.final(metrics={"top1_err": top1, "nll": nll, "ece": ece, "aurc": 10 * top1, "conf": 90.0},
            reliability=None, wall_s=1.0)


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
    # setting 3 (in between: train loss 0.5), three seeds each, seed 0 from before fit logging;
    # top-1 worked by hand in test_differences: unpaired -1.00 ± 1.14, paired -1.00 ± 0.29
    for s, (b, k) in enumerate(((30.0, 29.0), (31.0, 30.5), (33.0, 31.5))):
        fit = None if s == 0 else 20.0 + s
        _run(tmp_path, "probe", "between", "baseline", s, b, 1.0, 5.0, 0.5, fit=fit)
        _run(tmp_path, "probe", "between", "selfkd", s, k, 1.0 + 0.01 * s, 3.0 - 0.1 * s, 0.8, fit=fit)
    # a baseline without Self-KD: no setting
    _run(tmp_path, "table1", "alone", "baseline", 0, 40.0, 1.2, 2.0, 0.5)
    return find_runs([tmp_path])[0]


def test_settings_pair_baseline_with_linear_selfkd_worst_fit_first(runs):
    settings = regime_settings(runs)
    assert [s.row for s in settings] == ["underfits", "between", "fits"]
    fits = settings[2]
    assert (len(fits.baseline), len(fits.selfkd)) == (3, 2)
    # top-1: means 31.0 and 27.5 -> -3.5; SE = sqrt(1^2/3 + 0.7071^2/2) = sqrt(1/3 + 1/4)
    d, se = fits.delta("top1_err")
    assert d == pytest.approx(-3.5) and se == pytest.approx(math.sqrt(1 / 3 + 1 / 4))
    assert fits.delta("ece")[0] == pytest.approx(-6.0)
    d, se = settings[0].delta("nll")
    assert d == pytest.approx(0.1) and se is None  # one seed a side: no standard error


def test_paired_by_seed_and_other_methods(runs):
    between = regime_settings(runs)[1]
    p, u = between.paired("top1_err"), between.unpaired("top1_err")
    assert (p.value, p.n) == (pytest.approx(-1.0), 3) and p.se == pytest.approx(0.5 / math.sqrt(3))
    assert u.se == pytest.approx(math.sqrt((7 / 3 + 19 / 12) / 3))
    fits = regime_settings(runs)[2]
    # seeds 0 and 1 have both methods: differences 27 - 30 = -3 and 28 - 31 = -3: sd 0
    p = fits.paired("top1_err")
    assert (p.value, p.se, p.n) == (pytest.approx(-3.0), 0.0, 2)
    # label smoothing (seed 0 only) is compared too: one pair, 0 - 30 = -30
    assert fits.methods == ["ls", "selfkd"]
    assert fits.paired("top1_err", "ls").value == pytest.approx(-30.0)
    assert fits.unpaired("top1_err", "ls").value == pytest.approx(-31.0)


def test_regime_markdown_golden(runs):
    """The whole rendering: the map (unpaired Δ with AURC) and the unpaired / paired table."""
    assert_golden("regime.md", to_markdown(regime_settings(runs)))


def test_markdown_rows(runs):
    md = to_markdown(regime_settings(runs))
    lines = [ln for ln in md.splitlines() if ln.startswith("| regime") or ln.startswith("| table1")]
    assert lines[0].startswith("| table1/underfits (cifar10_npz, 4 ep) | 0.5 | 1 / 1 | 0.900 | 1.50 | 90.0 | 2.00 | +2.00 | +0.100 | +1.50 | +20.0 |")
    assert lines[1].startswith("| regime/fits (cifar10_npz, 4 ep) | 0.5 | 3 / 2 | 0.010 |")
    assert "-3.50 ± 0.76" in lines[1]
    # the fit error of 'between' comes from seeds 1 and 2 only: said beside the value
    between = next(ln for ln in md.splitlines() if ln.startswith("| probe/between"))
    assert "| 3 / 3 | 0.500 | 21.50 (n = 2) | 90.0 |" in between


def test_cli_writes_regime_md_and_figure(runs, tmp_path):
    root = str(tmp_path)
    out = tmp_path / "out"
    assert main(["regime", "--runs", root, "--out", str(out)]) == 0
    assert "regime/fits" in (out / "regime.md").read_text()
    assert main(["figures", "--runs", root, "--out", str(out)]) == 0
    with Image.open(out / "figures" / "regime_map.png") as im:
        assert im.text["Panels"] == "4"  # Δ top-1, NLL, ECE, AURC


def test_fit_table_lists_every_method_with_its_fit(runs, tmp_path):
    from reports.regime import fit_table
    t = fit_table(runs)
    ls = [ln for ln in t.splitlines() if "| regime/fits (cifar10_npz, 4 ep) | ls |" in ln]
    assert len(ls) == 1 and "| 1.50 |" in ls[0]  # fit_top1_err from the last epoch line
    assert any("| table1/underfits (cifar10_npz, 4 ep) | baseline | 1 | 0.900 |" in ln for ln in t.splitlines())


def test_differences_after_temperature_scaling_when_the_runs_hold_them(tmp_path):
    """Runs that record temperature-scaled metrics get 'after TS' rows (Self-KD minus baseline,
    both scaled, paired by seed); runs without them get none."""
    import json
    for seed, (b, k) in enumerate(((2.0, 1.5), (2.4, 1.7), (2.2, 2.1))):
        for method, ece_ts in (("baseline", b), ("selfkd", k)):
            _run(tmp_path, "regime", "fits", method, seed, 30.0, 1.0, 10.0, 0.01)
            log = tmp_path / "regime" / f"fits_{method}_linear_s{seed}" / "log.jsonl"
            lines = [json.loads(x) for x in log.read_text().splitlines()]
            lines[-1]["temperature_scaled"] = {"temperature": 1.5, "ts_fit": "holdout",
                                               "metrics": {"ece": ece_ts, "nll": 0.9}}
            log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    setting = regime_settings(find_runs([tmp_path])[0])[0]
    p = setting.paired("ts.ece")
    assert (p.value, p.n) == (pytest.approx((-0.5 - 0.7 - 0.1) / 3), 3)
    md = to_markdown([setting])
    assert "| ECE after TS (%) |" in md and "| NLL after TS |" in md


def test_no_scaled_rows_for_runs_without_them(runs):
    assert "after TS" not in to_markdown(regime_settings(runs))


def test_regime_map_has_one_readable_legend_under_the_panels(runs):
    import matplotlib.pyplot as plt
    from reports.regime import regime_figure
    fig = regime_figure(regime_settings(runs))
    fig.canvas.draw()
    assert not any(ax.get_legend() for ax in fig.axes)
    (legend,) = fig.legends
    assert all(t.get_fontsize() >= 9 for t in legend.get_texts())
    assert legend.get_window_extent().y1 <= min(ax.get_window_extent().y0 for ax in fig.axes)
    plt.close(fig)
