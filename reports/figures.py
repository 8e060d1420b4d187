"""Figure 2 (NLL and top-1 error per epoch for several alpha schedules) and reliability diagrams
in the style of Figures 4–7 (accuracy vs confidence per bin, the gap shaded by direction, samples
per bin, ECE in the title, one panel per method; pooled seeds say how their ECE relates to the
tables'). Drawn only from what the run logs store: per-epoch eval metrics and the final record's
reliability bins (count, mean confidence, accuracy per bin).

Every PNG carries a "Panels" text chunk with its number of axes, so tests (and people) can check
a file without re-running the code.
"""
from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (files only; no display)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core.config import ConfigError  # noqa: E402
from core.methods import has_alpha_schedule, is_reference, short_label  # noqa: E402
from core.metrics import METRIC_NAMES, ece_from_bins  # noqa: E402
from core.run import check_name  # noqa: E402

from .logs import groups_by_row_scale  # noqa: E402
from .tables import METHOD_LABELS, NLL, ROW_LABELS, TOP1  # noqa: E402

# Figures 4–7 of the paper: (file stem, table, row, methods, title).
PAPER_RELIABILITY_FIGURES = (
    ("fig4_resnet50", "table1", "resnet50", ("baseline", "ls", "selfkd"),
     "Fig. 4: ResNet-50 on CIFAR-100"),
    ("fig4_pyramidnet200", "table1", "pyramidnet200", ("baseline", "ls", "selfkd"),
     "Fig. 4: PyramidNet-200 on CIFAR-100"),
    ("fig5_resnet152", "table2", "resnet152", ("baseline", "ls", "selfkd"),
     "Fig. 5: ResNet-152 on ImageNet"),
    ("fig6_pyramidnet200", "table1", "pyramidnet200",
     ("cutout", "cutout_selfkd", "cutmix", "cutmix_selfkd", "cutmix_sd", "cutmix_sd_selfkd"),
     "Fig. 6: PyramidNet-200 with advanced regularisers on CIFAR-100"),
    ("fig7_resnet152", "table2", "resnet152", ("cutmix", "cutmix_selfkd"),
     "Fig. 7: ResNet-152 with CutMix on ImageNet"),
)


def file_stem(out_dir: str | Path, *parts) -> Path | None:
    """out_dir / "<part>_<part>..." for a file named from run-log values (run_id, table, row,
    dataset), checked like a run folder name (core.run.check_name): a name that would leave out_dir
    is None, with a warning on stderr, and that file is not written."""
    name = "_".join(str(x) for x in parts)
    try:
        return Path(out_dir) / check_name(name, "file name")
    except ConfigError as e:
        print(f"warning: {e} (built from run-log values); that file is skipped", file=sys.stderr)
        return None


def save(fig, stem: str | Path, formats=("png", "pdf")) -> list[Path]:
    """Save fig as stem.<fmt>; the PNG records the number of panels in its metadata."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        p = stem.with_suffix(f".{fmt}")
        meta = {"Panels": str(len(fig.axes)), "Software": "reports.figures"} if fmt == "png" \
            else {"Creator": "reports.figures"}
        fig.savefig(p, dpi=100, metadata=meta, bbox_inches="tight")
        paths.append(p)
    return paths


def pooled_bins(runs, bins_of=lambda r: r.reliability) -> dict | None:
    """Reliability bins of several runs (seeds) pooled: counts add, per-bin confidence and
    accuracy are count-weighted means. Same as binning all their predictions together.
    bins_of: a run's bins (default: its own; scaled_bins_of: after temperature scaling)."""
    bins = [b for b in map(bins_of, runs) if b]
    if not bins:
        return None
    edges = bins[0]["edges"]
    count = np.zeros(len(edges) - 1)
    conf = np.zeros_like(count)
    acc = np.zeros_like(count)
    for b in bins:
        c = np.asarray(b["count"], dtype=np.float64)
        if len(c) != len(count):
            raise ValueError(f"runs disagree on the number of reliability bins: {len(c)} vs "
                             f"{len(count)}")
        count += c
        conf += c * np.asarray(b["conf"], dtype=np.float64)
        acc += c * np.asarray(b["acc"], dtype=np.float64)
    nz = np.maximum(count, 1)
    return {"edges": list(edges), "count": count.tolist(), "conf": (conf / nz).tolist(),
            "acc": (acc / nz).tolist()}


# Gap styles. The accuracy bar keeps its height in both directions: an over-confident gap
# (conf > acc) lies above the bar, on the white background; an under-confident one (conf < acc)
# lies inside the bar, so it is the bar's blue with orange hatching. Both are opaque, so the
# legend's patches look exactly like what the panel draws (a transparent gap over the blue bar
# would blend into a colour of its own, which no legend entry shows).
GAP_OVER = {"facecolor": "#f3bebf", "edgecolor": "tab:red", "hatch": "//"}  # tab:red at 30% on white
GAP_UNDER = {"facecolor": "tab:blue", "edgecolor": "tab:orange", "hatch": "xx"}
# Text sizes (pt) read at the size the README shows a figure (its PNG at 100 dpi, up to ~900 px
# wide): smaller than ~7 pt is a grey smudge there.
COUNT_PT, NOTE_PT = 7.5, 8
POOLED_NOTE = ("ECE of pooled runs: the bins of all their predictions together (pooled_bins); "
               "the tables give the mean ± sample std of each run's ECE, which differs from it.")


def _std(values) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _count_label(n: float) -> str:
    """A bin's sample count in at most four characters (1.7k, 26k), so ten bins' counts fit."""
    n = int(round(n))
    if n < 1000:
        return str(n)
    return f"{n / 1000:.1f}k" if n < 10_000 else f"{n // 1000}k"


def draw_reliability(ax, bins: dict, title: str, run_eces=None) -> float:
    """Accuracy bars per confidence bin, the gap to the bin's mean confidence shaded (GAP_OVER
    above the bar where over-confident, conf > acc; GAP_UNDER inside it where under-confident,
    conf < acc), the number of samples
    of each non-empty bin above the panel, the diagonal of perfect calibration, ECE (from the
    bins) in the title. run_eces: the ECE (%) of each run pooled into `bins`; with more than one,
    the title also gives their mean ± sample std, the number the tables show. Returns the ECE (%)."""
    edges = np.asarray(bins["edges"], dtype=np.float64)
    count = np.asarray(bins["count"], dtype=np.float64)
    acc = np.asarray(bins["acc"], dtype=np.float64)
    conf = np.asarray(bins["conf"], dtype=np.float64)
    left, width = edges[:-1], np.diff(edges)
    has = count > 0
    ece = ece_from_bins(bins)
    acc_bars = ax.bar(left[has], acc[has], width=width[has], align="edge", color="tab:blue",
                      edgecolor="black", linewidth=0.6, label="Accuracy")
    # The gap between accuracy and confidence, from acc to conf (the "Gap" bars of Figs. 4–7),
    # one bar per non-empty bin, coloured by its direction.
    gap_bars = ax.bar(left[has], conf[has] - acc[has], bottom=acc[has], width=width[has], align="edge",
                      linewidth=0.6)
    over = conf[has] > acc[has]
    for bar, is_over in zip(gap_bars, over):
        style = GAP_OVER if is_over else GAP_UNDER
        bar.set_facecolor(style["facecolor"])
        bar.set_edgecolor(style["edgecolor"])
        bar.set_hatch(style["hatch"])
    handles = [acc_bars]
    from matplotlib.patches import Patch
    for style, label, shown in ((GAP_OVER, "Gap: over-confident", over.any()),
                                (GAP_UNDER, "Gap: under-confident", (~over).any())):
        if shown:
            handles.append(Patch(facecolor=style["facecolor"], edgecolor=style["edgecolor"],
                                 hatch=style["hatch"], linewidth=0.6, label=label))
    # Samples per bin, above the panel: a bin of 3 samples with a large gap is noise, not a finding.
    for x, w, n in zip(left[has], width[has], count[has]):
        ax.text(x + w / 2, 1.01, _count_label(n), transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=COUNT_PT, rotation=90 if len(count) > 10 else 0,
                gid="bin_count")
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Confidence (samples per bin above the panel)", fontsize=8.5)
    ax.set_ylabel("Accuracy")
    head = f"{title}\nECE = {ece:.2f}%"
    eces = [float(e) for e in (run_eces or []) if e is not None]
    if len(eces) > 1:
        head += f" (pooled bins)\nmean of {len(eces)} runs: {np.mean(eces):.2f} ± {_std(eces):.2f}%"
    ax.set_title(head, fontsize=9, pad=14 if len(count) <= 10 else 22)
    # under the panel, never over a bar: an under-confident model's bars reach above the diagonal
    # in the middle bins, where a legend inside the axes would hide them
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize=8,
              ncol=1, frameon=False)
    return ece


def reliability_figure(panels, suptitle: str = ""):
    """panels: [(title, bins)] or [(title, bins, run_eces)] (draw_reliability); one axis per
    panel, side by side. A figure with a pooled panel (more than one run's ECE) carries
    POOLED_NOTE under it."""
    if not panels:
        raise ValueError("reliability_figure needs at least one panel")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 4.8), squeeze=False)
    pooled = False
    for ax, (title, bins, *rest) in zip(axes[0], panels):
        run_eces = rest[0] if rest else None
        pooled |= run_eces is not None and len(run_eces) > 1
        draw_reliability(ax, bins, title, run_eces)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    if pooled:
        width = max(60, int(fig.get_figwidth() * 14))  # characters a line at NOTE_PT
        fig.canvas.draw()  # the legends' extents, to put the note right under the lowest
        inv = fig.transFigure.inverted()
        bottom = min([inv.transform(ax.get_legend().get_window_extent())[0][1]
                      for ax in axes[0] if ax.get_legend()], default=0.0)
        fig.text(0.5, bottom - 0.02, "\n".join(textwrap.wrap(POOLED_NOTE, width)), ha="center", va="top",
                 fontsize=NOTE_PT, gid="pooled_note")
    return fig


def _method_panels(runs, methods) -> list:
    """(title, pooled bins, each run's ECE) per method with complete runs. The runs are one
    figure's, of one table, row and scale (groups_by_row_scale): pooling them per method pools
    exactly the seeds a table line averages."""
    panels, by_method = [], {}
    for r in runs:
        if r.complete and r.reliability:
            by_method.setdefault(r.method, []).append(r)
    for m in methods:
        if m in by_method:
            rs = by_method[m]
            title = METHOD_LABELS.get(m, m).lstrip("+ ") + (f" ({len(rs)} runs pooled)"
                                                             if len(rs) > 1 else "")
            panels.append((title, pooled_bins(rs), [r.metric("ece") for r in rs]))
    return panels


def scaled_bins_of(run) -> dict | None:
    """A run's reliability bins after post-hoc temperature scaling, or None."""
    return (run.temperature_scaled or {}).get("reliability") or None


def before_after_panels(runs, methods) -> list:
    """Per method with complete temperature-scaled runs, two panels side by side: its reliability
    before and after temperature scaling (pooled over seeds), each with its runs' ECE."""
    panels, by_method = [], {}
    for r in runs:
        if r.complete and r.reliability and scaled_bins_of(r):
            by_method.setdefault(r.method, []).append(r)
    for m in methods:
        rs = by_method.get(m)
        if not rs:
            continue
        name = METHOD_LABELS.get(m, m).lstrip("+ ") + (f" ({len(rs)} runs pooled)" if len(rs) > 1 else "")
        temps = [r.metric("ts.temperature") for r in rs]
        fits = ", ".join(sorted({str(r.temperature_scaled.get("ts_fit")) for r in rs}))
        t = f"T = {np.mean([x for x in temps if x is not None]):.2f}" if any(x is not None for x in temps) else "T ?"
        panels.append((f"{name}\nbefore scaling", pooled_bins(rs), [r.metric("ece") for r in rs]))
        panels.append((f"{name}\nafter TS ({t}, fit {fits})", pooled_bins(rs, scaled_bins_of),
                       [r.metric("ts.ece") for r in rs]))
    return panels


def _scale_slug(scale: str) -> str:
    """A Group.scale ("cifar10_npz, 15 ep") as part of a file name ("cifar10_npz_15ep")."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", scale.replace(" ep", "ep")).strip("_")


def _row_figures(runs, keep=lambda r: True) -> list[tuple]:
    """(table, row, scale, runs, several) per figure: groups_by_row_scale over the runs that
    `keep` accepts; several: the (table, row) has more than one scale, so its file names carry
    the scale."""
    entries = groups_by_row_scale([r for r in runs if keep(r)])
    n_scales: dict = {}
    for table, row, _ in entries:
        n_scales[(table, row)] = n_scales.get((table, row), 0) + 1
    return [(table, row, scale, [r for g in groups for r in g.runs], n_scales[(table, row)] > 1)
            for (table, row, scale), groups in sorted(entries.items(), key=str)]


def render_scaled_reliability_figures(runs, out_dir: str | Path) -> list[Path]:
    """One figure per (table, row, scale) whose complete runs carry temperature-scaled bins: for
    each method, the reliability diagram before and after temperature scaling side by side
    (reliability_ts_<table>_<row>[_<scale>]). Returns the files written."""
    out_dir = Path(out_dir)
    written = []
    for table, row, scale, rs, several in _row_figures(
            runs, lambda r: r.complete and scaled_bins_of(r) and r.table != "fig2"):
        stem = file_stem(out_dir, "reliability_ts", table, row, *([_scale_slug(scale)] if several else []))
        if stem is None:
            continue
        methods = list(dict.fromkeys(list(METHOD_LABELS) + sorted({r.method for r in rs})))
        fig = reliability_figure(before_after_panels(rs, methods),
                                 f"{table}: {ROW_LABELS.get(row, row)} ({scale}), "
                                 f"before and after temperature scaling")
        written += save(fig, stem)
        plt.close(fig)
    return written


def render_reliability_figures(runs, out_dir: str | Path) -> list[Path]:
    """Figs. 4–7 where their runs exist, plus one figure per other (table, row) whose runs have
    reliability bins (all its methods side by side); one figure per scale, grouped as the tables
    group (groups_by_row_scale), the scale in the file name when a row has several. Returns the
    files written."""
    out_dir = Path(out_dir)
    written, covered = [], set()
    # Fig. 2 runs differ by alpha schedule, not by method: pooling them would mislead.
    figures = _row_figures(runs, lambda r: r.complete and r.reliability and r.table != "fig2")
    for stem, table, row, methods, title in PAPER_RELIABILITY_FIGURES:
        for t, rw, scale, rs, several in figures:
            if (t, rw) != (table, row):
                continue
            panels = _method_panels(rs, methods)
            if not panels:
                continue
            covered.update((table, row, scale, m) for m in methods)
            path = file_stem(out_dir, stem, *([_scale_slug(scale)] if several else []))
            if path is None:
                continue
            fig = reliability_figure(panels, f"{title} (paper); measured: {scale}")
            written += save(fig, path)
            plt.close(fig)
    for table, row, scale, rs, several in figures:
        rs = [r for r in rs if (table, row, scale, r.method) not in covered]
        if not rs:
            continue
        methods = list(dict.fromkeys(list(METHOD_LABELS) + sorted({r.method for r in rs})))
        stem = file_stem(out_dir, "reliability", table, row, *([_scale_slug(scale)] if several else []))
        if stem is None:
            continue
        fig = reliability_figure(_method_panels(rs, methods),
                                 f"{table}: {ROW_LABELS.get(row, row)} ({scale})")
        written += save(fig, stem)
        plt.close(fig)
    return written


def _curve_label(run) -> str:
    m = run.meta
    if not has_alpha_schedule(run.method):
        return short_label(run.method)
    kind, a = m.get("alpha_kind", "linear"), m.get("alpha_T")
    return f"{kind} α_T={a}" if kind == "linear" else f"{kind} α={a}"


def _fig2_curves(runs) -> list[tuple]:
    """(run, label) per Fig. 2 curve in drawing order (fixed schedules first, then by label):
    the label of _curve_label, plus the seed when several runs share that label."""
    runs = sorted(runs, key=lambda r: (r.meta.get("alpha_kind") == "linear", _curve_label(r),
                                       str(r.seed), r.run_id))
    labels = [_curve_label(r) for r in runs]
    return [(r, f"{lab} (seed {r.seed})" if labels.count(lab) > 1 else lab)
            for r, lab in zip(runs, labels)]


def fig2_figure(runs):
    """Figure 2: NLL (left) and top-1 error (right) per epoch, one curve per run of table
    "fig2", labelled by alpha_kind / alpha_T (and seed when several runs share a label)."""
    runs = [r for r in runs if r.table == "fig2" and r.log.epochs]
    if not runs:
        raise ValueError("no runs of table 'fig2' with epoch records")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    curves = _fig2_curves(runs)
    for (r, lab), (colour, style, width) in zip(curves, _fig2_styles([r for r, _ in curves])):
        if not r.complete:
            lab += " [in progress]"
        for ax, key in zip(axes, (NLL, TOP1)):
            pts = [(e["epoch"], e[key]) for e in r.log.epochs
                   if isinstance(e.get(key), (int, float))]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, style, color=colour, label=lab, linewidth=width)
    for ax, key in zip(axes, (NLL, TOP1)):
        ax.set_xlabel("Epoch")
        ax.set_ylabel(METRIC_NAMES[key])
        ax.grid(alpha=0.3)
    scales = sorted({f"{r.row}, {r.dataset}, {r.total_epochs} ep" for r in runs})
    fig.suptitle(f"Fig. 2: NLL and top-1 error per epoch ({'; '.join(scales)})", fontsize=11)
    fig.tight_layout()
    handles, labels = axes[1].get_legend_handles_labels()
    if handles:  # one legend for both panels, beside them (runs without per-epoch metrics draw none)
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9,
                   title="α schedule", title_fontsize=9, frameon=False)
    return fig


def _fig2_styles(runs) -> list[tuple]:
    """(colour, line style, width) per Fig. 2 curve: the fixed-α runs on one sequential colour
    scale (lighter = larger α), so nine curves read as an ordered family rather than nine
    unrelated colours; the reference method (the baseline) black, a method without an alpha
    schedule (label smoothing) grey, the linear schedule (the paper's Self-KD) a thick red line."""
    fixed = sorted({float(r.meta.get("alpha_T") or 0) for r in runs
                    if has_alpha_schedule(r.method) and r.meta.get("alpha_kind") == "fixed"})
    cmap = plt.get_cmap("viridis")
    out = []
    for r in runs:
        if is_reference(r.method):
            out.append(("black", "--", 1.6))
        elif not has_alpha_schedule(r.method):  # label smoothing, another method without alpha_t
            out.append(("0.55", ":", 1.8))
        elif r.meta.get("alpha_kind") == "fixed":
            a = float(r.meta.get("alpha_T") or 0)
            out.append((cmap(0.85 * fixed.index(a) / max(len(fixed) - 1, 1)), "-", 1.1))
        else:
            out.append(("tab:red", "-", 2.4))
    return out


def fig2_summary(runs) -> str:
    """Markdown table of the final metrics of each Fig. 2 curve (one column per schedule, in the
    figure's order), so the numbers quoted next to the figure come from the logs."""
    curves = _fig2_curves([r for r in runs if r.table == "fig2" and r.complete])
    runs = [r for r, _ in curves]
    lines = ["| metric | " + " | ".join(lab for _, lab in curves) + " |",
             "|---" * (len(runs) + 1) + "|"]
    for key, fmt in ((TOP1, "{:.2f}"), (NLL, "{:.3f}"), ("ece", "{:.2f}")):
        vals = [r.metric(key) for r in runs]
        lines.append(f"| {METRIC_NAMES[key]} | "
                     + " | ".join("–" if v is None else fmt.format(v) for v in vals) + " |")
    return "\n".join(lines) + "\n"


def map_curve_figure(run):
    """Detection mAP per epoch (epoch lines with "map", and the final record at the last epoch)
    beside the training loss: the learning curve of a detection run."""
    pts = [(e["epoch"], e["map"]) for e in run.log.epochs if isinstance(e.get("map"), (int, float))]
    if run.complete and run.metric("map") is not None and run.last_epoch is not None:
        pts.append((run.last_epoch, run.metric("map")))
    loss = [(e["epoch"], e["train_loss"]) for e in run.log.epochs if isinstance(e.get("train_loss"), (int, float))]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, data, label in ((axes[0], pts, "mAP (%), VOC07 11-point, IoU > 0.5"), (axes[1], loss, "Training loss")):
        if data:
            x, y = zip(*sorted(data))
            ax.plot(x, y, "o-")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    # a reader's title (detector, backbone, method, seed, data); the run id stays in the file name
    backbone = ROW_LABELS.get(run.model, run.model)
    method = METHOD_LABELS.get(run.method, run.method).lstrip("+ ")
    fig.suptitle(f"Faster R-CNN with a {backbone} backbone, {method}, seed {run.seed}: "
                 f"{run.dataset}, {run.meta.get('train_images', '?')} training images, "
                 f"{run.meta.get('test_images', '?')} test images", fontsize=11)
    fig.tight_layout()
    return fig


def render_figures(runs, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """All figures the logs allow; returns (files written, notes on what was skipped)."""
    out_dir = Path(out_dir)
    written, notes = [], []
    # One Fig. 2 per row and scale, grouped as the tables group: curves of a CPU sweep and a GPU
    # sweep on one axis would compare runs that differ in more than the alpha schedule.
    sweeps = [(row, scale, rs) for table, row, scale, rs, _ in
              _row_figures(runs, lambda r: r.table == "fig2" and r.log.epochs)]
    if not sweeps:
        notes.append("fig2 skipped: no runs of table 'fig2' with epoch records")
    for row, scale, rs in sweeps:
        stem = out_dir / "fig2" if len(sweeps) == 1 else file_stem(out_dir, "fig2", row, _scale_slug(scale))
        if stem is None:
            continue
        fig = fig2_figure(rs)
        written += save(fig, stem)
        plt.close(fig)
        md = stem.with_name(f"{stem.name}.md")
        md.write_text(f"Fig. 2, final metrics ({row}, {scale})\n\n" + fig2_summary(rs))
        written.append(md)
    detection = [r for r in runs if r.meta.get("task") == "detection" and any("map" in e for e in r.log.epochs)]
    for r in detection:
        # a run id shared by runs at two scales (find_runs keeps both): the scale tells them apart
        twin = sum((d.table, d.run_id) == (r.table, r.run_id) for d in detection) > 1
        stem = file_stem(out_dir, "map_curve", r.table, r.run_id,
                         *([f"{r.total_epochs}ep"] if twin else []))
        if stem is None:
            continue
        fig = map_curve_figure(r)
        written += save(fig, stem)
        plt.close(fig)
    from .regime import regime_figure, regime_settings
    settings = regime_settings(runs)
    if settings:
        fig = regime_figure(settings)
        written += save(fig, out_dir / "regime_map")
        plt.close(fig)
    else:
        notes.append("regime map skipped: no setting with complete baseline and Self-KD runs")
    rel = render_reliability_figures(runs, out_dir) + render_scaled_reliability_figures(runs, out_dir)
    if not rel:
        notes.append("reliability diagrams skipped: no complete run with reliability bins")
    return written + rel, notes
