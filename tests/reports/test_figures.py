"""Figure 2 and the reliability diagrams: files exist, have the expected panels (read back from
the PNG's metadata), and draw what the logs hold."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from reports.__main__ import main
from reports.figures import (GAP_OVER, GAP_UNDER, POOLED_NOTE, _method_panels, draw_reliability,
                             fig2_figure, fig2_summary, pooled_bins, reliability_figure, render_figures)
from reports.logs import find_runs

from .conftest import FIXTURES

ROOT = FIXTURES / "tables"


@pytest.fixture(scope="module")
def runs():
    return find_runs([ROOT])[0]


def _png_panels(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return int(im.text["Panels"]), im.size


def test_make_figures_writes_png_and_pdf_with_expected_panels(tmp_path, capsys):
    assert main(["figures", "--runs", str(ROOT), "--out", str(tmp_path)]) == 0
    out = tmp_path / "figures"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["fig2.md", "fig2.pdf", "fig2.png", "fig4_resnet50.pdf", "fig4_resnet50.png",
                     "regime_map.pdf", "regime_map.png",
                     "reliability_table1_preact_resnet18.pdf",
                     "reliability_table1_preact_resnet18.png"]
    # Fig. 2: NLL and top-1 panels. Fig. 4 (ResNet-50): baseline and Self-KD have complete runs;
    # LS is still in progress (no bins), so two panels, side by side (wider than tall).
    panels, (w2, h2) = _png_panels(out / "fig2.png")
    assert panels == 2 and w2 > 1.8 * h2
    panels, (w4, h4) = _png_panels(out / "fig4_resnet50.png")
    assert panels == 2 and w4 > 1.2 * h4  # (taller than the panels: each legend is under its panel)
    assert _png_panels(out / "reliability_table1_preact_resnet18.png")[0] == 1
    for p in out.iterdir():
        if p.suffix != ".md":
            assert p.stat().st_size > 10_000, p
    assert (out / "fig2.pdf").read_bytes()[:5] == b"%PDF-"


def test_fig2_has_one_curve_per_run_labelled_by_schedule(runs):
    fig = fig2_figure(runs)
    nll_ax, top1_ax = fig.axes
    labels = [ln.get_label() for ln in top1_ax.get_lines()]
    assert labels == ["fixed α=0.1", "fixed α=0.3", "fixed α=0.7", "LS", "linear α_T=0.7"]
    assert len(nll_ax.get_lines()) == 5
    # The linear run's top-1 curve is the logged per-epoch values, epochs 1..6.
    x, y = top1_ax.get_lines()[-1].get_data()
    assert list(x) == [1, 2, 3, 4, 5, 6]
    assert y[-1] == pytest.approx(28.0) and y[0] == pytest.approx(28.0 + 40 - 40 / 6, abs=1e-3)
    plt.close(fig)


def test_fig2_without_runs_is_skipped_not_an_error(tmp_path):
    files, notes = render_figures([], tmp_path)
    assert files == [] and any("fig2 skipped" in n for n in notes)


def test_reliability_panel_shows_logged_bins_and_ece_in_title(runs):
    run = next(r for r in runs if r.run_id == "table1_resnet50_selfkd_s0")
    fig = reliability_figure([("Self-KD", run.reliability)])
    (ax,) = fig.axes
    ece = run.metric("ece")
    assert f"ECE = {ece:.2f}%" in ax.get_title()
    acc_bars = ax.containers[0]
    assert [round(b.get_height(), 4) for b in acc_bars] == run.reliability["acc"]
    gap_bars = ax.containers[1]
    np.testing.assert_allclose([b.get_y() + b.get_height() for b in gap_bars],
                               run.reliability["conf"], atol=1e-9)
    plt.close(fig)


def test_draw_reliability_ece_matches_the_definition():
    bins = {"edges": [0, 0.5, 1.0], "count": [2, 6], "conf": [0.4, 0.9], "acc": [0.5, 0.5]}
    fig, ax = plt.subplots()
    # 100 * (2 * 0.1 + 6 * 0.4) / 8 = 32.5
    assert draw_reliability(ax, bins, "t") == pytest.approx(32.5)
    plt.close(fig)


def _legend(ax) -> dict:
    """{label: facecolour (RGBA)} of the panel's legend entries."""
    leg = ax.get_legend()
    return {t.get_text(): tuple(h.get_facecolor()) for t, h in zip(leg.get_texts(), leg.legend_handles)}


def test_reliability_legend_shows_every_gap_colour_drawn():
    """Over- and under-confident gaps have their own colours, and the legend shows each colour
    the panel draws (no gap in a colour the legend does not explain)."""
    from matplotlib.colors import to_rgba
    bins = {"edges": [0, 0.25, 0.5, 0.75, 1.0], "count": [3, 0, 50, 400],
            "conf": [0.2, 0.0, 0.6, 0.9], "acc": [0.6, 0.0, 0.5, 0.95]}
    fig, ax = plt.subplots()
    draw_reliability(ax, bins, "t")
    legend = _legend(ax)
    assert list(legend) == ["Accuracy", "Gap: over-confident", "Gap: under-confident"]
    assert legend["Gap: over-confident"] == to_rgba(GAP_OVER["facecolor"])
    assert legend["Gap: under-confident"] == to_rgba(GAP_UNDER["facecolor"])
    gap_bars = ax.containers[1]
    drawn = [tuple(b.get_facecolor()) for b in gap_bars]
    assert drawn == [to_rgba(GAP_UNDER["facecolor"]), to_rgba(GAP_OVER["facecolor"]),
                     to_rgba(GAP_UNDER["facecolor"])]  # bins 1, 3, 4 (bin 2 is empty)
    assert set(drawn) <= set(legend.values())
    assert all(a == 1.0 for *_, a in drawn)  # opaque: no blend with the accuracy bar underneath
    plt.close(fig)
    # only over-confident bins: no legend entry for a colour that is not drawn
    fig, ax = plt.subplots()
    draw_reliability(ax, {"edges": [0, 0.5, 1], "count": [2, 6], "conf": [0.4, 0.9], "acc": [0.3, 0.5]}, "t")
    assert list(_legend(ax)) == ["Accuracy", "Gap: over-confident"]
    plt.close(fig)


def test_reliability_panel_shows_samples_per_bin():
    bins = {"edges": [0, 0.25, 0.5, 0.75, 1.0], "count": [3, 0, 50, 400],
            "conf": [0.2, 0.0, 0.6, 0.9], "acc": [0.6, 0.0, 0.5, 0.95]}
    fig, ax = plt.subplots()
    draw_reliability(ax, bins, "t")
    counts = [(round(t.get_position()[0], 3), t.get_text()) for t in ax.texts if t.get_gid() == "bin_count"]
    assert counts == [(0.125, "3"), (0.625, "50"), (0.875, "400")]  # empty bins get none
    assert "samples per bin" in ax.get_xlabel()
    plt.close(fig)
    # pooled counts (floats after pooling) print as integers
    fig, ax = plt.subplots()
    draw_reliability(ax, {"edges": [0, 0.5, 1], "count": [4.0, 12.0], "conf": [0.4, 0.9], "acc": [0.5, 0.5]}, "t")
    assert [t.get_text() for t in ax.texts if t.get_gid() == "bin_count"] == ["4", "12"]
    plt.close(fig)


def test_pooled_panel_gives_the_tables_mean_ece_beside_the_pooled_one(runs):
    """A panel pooling seeds shows the pooled bins' ECE and the mean ± sample std of the runs'
    ECEs (what the tables show), and the figure says why the two differ."""
    rs = [r for r in runs if r.complete and r.reliability]
    by_method = {}
    for r in rs:
        by_method.setdefault((r.table, r.row, r.method), []).append(r)
    group = next(g for g in by_method.values() if len(g) > 1)
    panels = _method_panels(group, [group[0].method])
    (title, bins, eces), = panels
    eces_logged = [r.metric("ece") for r in group]
    assert eces == eces_logged and f"({len(group)} runs pooled)" in title
    fig = reliability_figure(panels)
    (ax,) = fig.axes
    pooled = pooled_bins(group)
    from core.metrics import ece_from_bins
    head = ax.get_title()
    assert f"ECE = {ece_from_bins(pooled):.2f}% (pooled bins)" in head
    assert (f"mean of {len(group)} runs: {np.mean(eces_logged):.2f} ± "
            f"{np.std(eces_logged, ddof=1):.2f}%") in head
    assert [" ".join(t.get_text().split()) for t in fig.texts if t.get_gid() == "pooled_note"] == [POOLED_NOTE]
    plt.close(fig)
    # one run: no pooled note, the title as before
    fig = reliability_figure([("one", group[0].reliability, [group[0].metric("ece")])])
    assert "pooled" not in fig.axes[0].get_title() and not fig.texts
    plt.close(fig)


def test_pooled_bins_are_count_weighted():
    class R:
        def __init__(self, b):
            self.reliability = b
    a = {"edges": [0, 0.5, 1], "count": [1, 3], "conf": [0.2, 0.8], "acc": [0.0, 1.0]}
    b = {"edges": [0, 0.5, 1], "count": [3, 1], "conf": [0.4, 0.6], "acc": [1.0, 0.0]}
    p = pooled_bins([R(a), R(b)])
    assert p["count"] == [4, 4]
    np.testing.assert_allclose(p["conf"], [(0.2 + 1.2) / 4, (2.4 + 0.6) / 4])
    np.testing.assert_allclose(p["acc"], [0.75, 0.75])
    assert pooled_bins([R(None)]) is None


def test_fig2_one_figure_per_scale(tmp_path):
    """A second alpha sweep at another scale (here: the same logs relabelled as another model)
    gets its own Fig. 2 instead of sharing axes with the first."""
    import json
    src = ROOT / "fig2"
    for d in sorted(src.iterdir()):
        lines = (d / "log.jsonl").read_text().splitlines()
        meta = json.loads(lines[0])
        meta["row"] = meta["model"] = "other_net"
        meta["started"] = "2099-01-01T00:00:00+00:00"
        (tmp_path / "runs" / "fig2" / d.name).mkdir(parents=True)
        (tmp_path / "runs" / "fig2" / d.name / "log.jsonl").write_text(
            "\n".join([json.dumps(meta)] + lines[1:]) + "\n")
    runs = find_runs([ROOT, tmp_path / "runs"])[0]
    files, _ = render_figures([r for r in runs if r.table == "fig2"], tmp_path / "out")
    names = sorted(f.name for f in files)
    assert len(names) == 6 and all(n.startswith("fig2_") for n in names)
    assert any("other_net" in n for n in names) and not any(n.startswith("fig2.") for n in names)


def test_fig2_summary_quotes_each_curves_final_metrics(runs):
    md = fig2_summary(runs)
    header, _, *rows = md.strip().splitlines()
    fig2 = [r for r in runs if r.table == "fig2" and r.complete]
    assert header.count("|") == len(fig2) + 2
    top1 = rows[0].split("|")[2:-1]
    assert sorted(float(v) for v in top1) == sorted(round(r.metric("top1_err"), 2) for r in fig2)


def test_before_and_after_temperature_scaling_side_by_side(tmp_path):
    """Runs whose final record carries temperature-scaled bins get reliability_ts_<table>_<row>:
    per method two panels, before and after scaling, each titled with the ECE of its bins."""
    from core.runlog import RunLogWriter
    from reports.figures import before_after_panels, render_scaled_reliability_figures
    raw = {"edges": [0.0, 0.5, 1.0], "count": [2, 8], "conf": [0.4, 0.95], "acc": [0.5, 0.75]}
    scaled = {"edges": [0.0, 0.5, 1.0], "count": [3, 7], "conf": [0.45, 0.8], "acc": [0.5, 0.78]}
    for method in ("baseline", "selfkd"):
        w = RunLogWriter(tmp_path / "table1" / method / "log.jsonl")
        w.meta(run_id=method, task="classification", method=method, model="resnet50", dataset="cifar100",
               seed=0, config={}, git_commit="0" * 40, git_dirty=False, torch="x", device="cpu",
               started="s", table="table1", row="resnet50", epochs=1)
        w.epoch(epoch=1, alpha=0.0, lr=0.1, train_loss=1.0)
        w.final(metrics={"top1_err": 20.0, "ece": 17.0}, reliability=raw, wall_s=1.0,
                temperature_scaled={"temperature": 1.7, "ts_fit": "test-2fold", "split": "test",
                                    "metrics": {"ece": 4.3}, "reliability": scaled})
    runs, _ = find_runs([tmp_path])
    panels = before_after_panels(runs, ["baseline", "selfkd"])
    assert [p[0].splitlines()[-1] for p in panels] == ["before scaling", "after TS (T = 1.70, fit test-2fold)"] * 2
    assert panels[1][1]["count"] == [3, 7] and panels[1][2] == [4.3]
    files = render_scaled_reliability_figures(runs, tmp_path / "out")
    png = next(p for p in files if p.suffix == ".png")
    assert png.name == "reliability_ts_table1_resnet50.png"
    panels_n, (w, h) = _png_panels(png)
    assert panels_n == 4 and w > 2.5 * h


def _logged_run(root, table, run_id, method, seed, epochs, started, ece=5.0):
    """A finished classification run of `epochs` epochs with reliability bins."""
    from core.runlog import RunLogWriter
    w = RunLogWriter(root / table / run_id / "log.jsonl")
    w.meta(run_id=run_id, task="classification", method=method, model="small_cnn", dataset="cifar10_npz",
           seed=seed, config={}, git_commit="0" * 40, git_dirty=False, torch="x", device="cpu",
           started=started, table=table, row="small_cnn", epochs=epochs)
    m = {"top1_err": 30.0, "top5_err": 3.0, "nll": 0.9, "ece": ece, "aurc": 90.0}
    w.epoch(epoch=epochs, alpha=0.0, lr=0.1, train_loss=1.0, **m)
    w.final(metrics=m, reliability={"edges": [0.0, 0.5, 1.0], "count": [4, 6], "conf": [0.4, 0.9],
                                    "acc": [0.5, 0.8]}, wall_s=1.0)


def test_figures_never_pool_runs_the_tables_keep_apart(tmp_path, capsys):
    """Committed 15-epoch Self-KD runs (3 seeds) and a user's 3- and 4-epoch runs of the same row
    and method: the tables show three lines, so the figures draw three Self-KD diagrams, each
    pooling only its own scale's runs, the scale in file name and title."""
    from reports.logs import group_runs, groups_by_row_scale
    committed, local = tmp_path / "reports_runs", tmp_path / "runs"
    for seed in (0, 1, 2):
        _logged_run(committed, "table1", f"small_cnn_selfkd_s{seed}", "selfkd", seed, 15, f"2026-01-0{seed + 1}")
    _logged_run(local, "table1", "small_cnn_selfkd_s0", "selfkd", 0, 3, "2026-02-01")
    _logged_run(local, "table1", "small_cnn_selfkd_s1", "selfkd", 1, 4, "2026-02-02")
    runs, warnings = find_runs([local, committed])
    assert len(runs) == 5 and not warnings  # same run id, other scale: both kept, both shown
    entries = groups_by_row_scale(runs)
    assert sorted(len(gs[0].runs) for gs in entries.values()) == [1, 1, 3]
    assert sorted(len(g.runs) for g in group_runs(runs)) == [1, 1, 3]  # what a table shows
    assert main(["figures", "--runs", str(local), str(committed), "--out", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out" / "figures").glob("reliability_*.png"))
    assert names == [f"reliability_table1_small_cnn_cifar10_npz_{n}ep.png" for n in (15, 3, 4)]
    fig = reliability_figure(_method_panels(entries[next(k for k in entries if "15 ep" in k[2])][0].runs,
                                            ["selfkd"]))
    assert "3 runs pooled" in fig.axes[0].get_title()
    plt.close(fig)


def test_a_local_rerun_with_a_committed_run_id_says_which_one_is_used(tmp_path):
    """Same table, run id and scale in runs/ and reports/runs/: counting both would count one seed
    twice; the first root's (local) run is used and a warning names both files."""
    committed, local = tmp_path / "reports_runs", tmp_path / "runs"
    _logged_run(committed, "table1", "small_cnn_selfkd_s0", "selfkd", 0, 15, "2026-01-01", ece=5.0)
    _logged_run(local, "table1", "small_cnn_selfkd_s0", "selfkd", 0, 15, "2026-02-01", ece=7.0)
    runs, warnings = find_runs([local, committed])
    assert [r.metric("ece") for r in runs] == [7.0]
    (w,) = warnings
    assert str(committed / "table1" / "small_cnn_selfkd_s0" / "log.jsonl") in w
    assert str(local / "table1" / "small_cnn_selfkd_s0" / "log.jsonl") in w
    assert "that one is used" in w and "left out" in w


def test_scratch_runs_stay_out_of_the_tables_and_are_counted(tmp_path, capsys):
    _logged_run(tmp_path / "runs", "scratch", "small_cnn_selfkd_s0", "selfkd", 0, 3, "2026-02-01")
    assert main(["tables", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "1 run(s) of table 'scratch'" in out and "table1: 0/" in out
    assert "small_cnn_selfkd_s0" not in (tmp_path / "out" / "table1.md").read_text()


def test_figures_read_at_the_size_the_readme_shows_them(runs):
    """The legend sits under a reliability panel (never over a bar), bin counts and the pooled
    note are at least 7.5 pt, and a count fits its bin (1.7k, not 1737)."""
    from reports.figures import _count_label
    group = [r for r in runs if r.table == "table1" and r.row == "resnet50" and r.method == "selfkd"
             and r.complete]
    bins = {"edges": [i / 10 for i in range(11)], "count": [5, 40, 300, 1737, 2245, 2275, 1942, 26_000, 9, 1],
            "conf": [0.05 + i / 10 for i in range(10)], "acc": [1.0] * 10}  # bars up to the top
    fig = reliability_figure([("a", bins, [1.0, 2.0]), ("b", group[0].reliability, [1.0])])
    fig.canvas.draw()
    for ax in fig.axes:
        legend = ax.get_legend().get_window_extent()
        assert legend.y1 < ax.get_window_extent().y0  # wholly under the axes
        assert all(t.get_fontsize() >= 7.5 for t in ax.texts if t.get_gid() == "bin_count")
        assert all(len(t.get_text()) <= 4 for t in ax.texts if t.get_gid() == "bin_count")
    (note,) = [t for t in fig.texts if t.get_gid() == "pooled_note"]
    assert note.get_fontsize() >= 7.5
    assert note.get_window_extent().y1 <= min(ax.get_legend().get_window_extent().y0 for ax in fig.axes)
    assert [_count_label(n) for n in (27, 999, 1737, 26_000)] == ["27", "999", "1.7k", "26k"]
    plt.close(fig)


def test_fig2_one_legend_for_both_panels_and_an_ordered_alpha_family(runs):
    from matplotlib.colors import to_rgba
    fig = fig2_figure(runs)
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)
    lines = {ln.get_label(): ln for ln in fig.axes[1].get_lines()}
    fixed = [lines[k] for k in ("fixed α=0.1", "fixed α=0.3", "fixed α=0.7")]
    colours = [to_rgba(ln.get_color()) for ln in fixed]
    assert len(set(colours)) == 3
    lum = [0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b, _ in colours]
    assert lum == sorted(lum)  # lighter = larger alpha: one ordered family
    assert lines["linear α_T=0.7"].get_linewidth() > max(ln.get_linewidth() for ln in fixed)
    plt.close(fig)


def test_detection_curve_title_is_for_a_reader_not_a_run_id():
    from reports.logs import find_runs as fr
    from reports.figures import map_curve_figure
    (run,) = [r for r in fr(["reports/runs/detection_check"])[0]]
    fig = map_curve_figure(run)
    title = fig._suptitle.get_text()
    assert run.run_id not in title and "Faster R-CNN" in title and "Baseline" in title
    plt.close(fig)
