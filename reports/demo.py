"""The demo's Table-1-style table: per method, mean ± std over seeds of top-1, top-5, NLL, ECE,
AURC; plus one reliability diagram per run. No paper column: the demo's dataset (scikit-learn's
digits) is not the paper's CIFAR-100, so the paper's numbers would not be comparable."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib.pyplot as plt

from .figures import file_stem, reliability_figure, save, scaled_bins_of
from .logs import SCALED, find_runs, group_runs
from .tables import AURC, ECE, METHOD_LABELS, METRIC_LABELS, NLL, ROW_LABELS, TEMPERATURE, TOP1, TOP5

DEMO_METRICS = (TOP1, TOP5, NLL, ECE, AURC)
# After post-hoc temperature scaling (the runs' temperature_scaled): T, NLL and ECE. Shown when a
# run has them (logs written before they were recorded have not).
SCALED_DEMO = (TEMPERATURE, SCALED + NLL, SCALED + ECE)
SCALED_LABELS = {TEMPERATURE: "T", SCALED + NLL: "NLL after TS", SCALED + ECE: "ECE after TS (%)"}
# NLL gets a third decimal: on an easy dataset it is far below the paper's 0.5-1.1 nats.
DECIMALS = {NLL: 3, SCALED + NLL: 3, TEMPERATURE: 3}
_ORDER = list(METHOD_LABELS)


def _sorted_groups(runs):
    return sorted(group_runs(runs), key=lambda g: (
        g.row, _ORDER.index(g.method) if g.method in _ORDER else len(_ORDER), g.method,
        g.dataset, g.epochs or 0))


def demo_table(runs, warnings=()) -> tuple[str, str]:
    """(Markdown, CSV) of the demo table."""
    groups = _sorted_groups(runs)
    datasets = sorted({g.scale for g in groups})
    fits = sorted({str(r.temperature_scaled.get("ts_fit")) for g in groups for r in g.used if r.temperature_scaled})
    metrics = DEMO_METRICS + (SCALED_DEMO if fits else ())
    head = (["Model", "Method", "n"] + [METRIC_LABELS.get(m) or SCALED_LABELS[m] for m in metrics]
            + ["Status", "Runs"])
    note = ("" if not fits else
            f" TS = after temperature scaling (fit: {', '.join(fits)}): the logits divided by one T "
            "fitted by minimising NLL on data the run did not train on; 'test-2fold' = 2-fold "
            "cross-fitting on the test set (each half scaled with the T of the other half), since "
            "the demo's runs have no holdout split."
            + ("" if not any(r.temperature_scaled.get("at_bound") for g in groups for r in g.used
                             if r.temperature_scaled) else
               " Some fit halves here have no error at all: their NLL falls as T -> 0, so the fit "
               "stops at the search's lower bound and the other half's errors cost more; on so few "
               "errors temperature scaling cannot be fitted well, and NLL after it can be worse."))
    md = ["# Table 1 (demo): baseline vs label smoothing vs Self-KD", "",
          f"Scale: {'; '.join(datasets) or 'no runs'}. Mean ± sample std over the n runs (seeds) "
          "of each method. No paper column: the paper's Table 1 is CIFAR-100, 300 epochs, so its "
          "numbers are not comparable with this dataset." + note, "",
          "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "method", "dataset", "epochs", "n"]
               + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
               + ["status", "run_ids", "commits"])
    for g in groups:
        cells = [g.cell(m) for m in metrics]
        txt = []
        for m, c in zip(metrics, cells):
            d = DECIMALS.get(m, 2)
            if c.mean is None:
                txt.append("–")
            else:
                txt.append(f"{c.mean:.{d}f}" + (f" ± {c.std:.{d}f}" if c.std is not None else ""))
        md.append("| " + " | ".join([ROW_LABELS.get(g.row, g.row),
                                     METHOD_LABELS.get(g.method, g.method), str(len(g.used))]
                                    + txt + [g.status, ", ".join(g.run_ids)]) + " |")
        f4 = lambda x: "" if x is None else f"{x:.4f}"  # noqa: E731
        w.writerow([g.row, g.method, g.dataset, "" if g.epochs is None else g.epochs, len(g.used)]
                   + [f4(v) for c in cells for v in (c.mean, c.std)]
                   + [g.status, " ".join(g.run_ids), " ".join(g.commits)])
    if warnings:
        md += ["", "Warnings (inputs that could not be read in full):", ""]
        md += [f"- {x}" for x in warnings]
    return "\n".join(md) + "\n", buf.getvalue()


def render_demo(runs_dir, out_dir) -> str:
    """Read every log under runs_dir (any "table" value), write out_dir/table1.md,
    out_dir/table1.csv and out_dir/reliability_<run_id>.png (one per complete run with bins);
    return the Markdown table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, warnings = find_runs([runs_dir])
    md, table_csv = demo_table(runs, warnings)
    (out_dir / "table1.md").write_text(md, encoding="utf-8")
    (out_dir / "table1.csv").write_text(table_csv, encoding="utf-8")
    for r in runs:
        if r.complete and r.reliability:
            title = (f"{METHOD_LABELS.get(r.method, r.method).lstrip('+ ')}, seed {r.seed}\n"
                     f"{r.run_id}")
            stem = file_stem(out_dir, "reliability", r.run_id)
            if stem is None:
                continue
            panels = [(title, r.reliability)]
            if scaled_bins_of(r):  # before and after temperature scaling, side by side
                ts = r.temperature_scaled
                panels = [(f"{title}\nbefore scaling", r.reliability),
                          (f"after TS (T = {ts['temperature']:.2f}, fit {ts.get('ts_fit')})", ts["reliability"])]
            fig = reliability_figure(panels)
            save(fig, stem, formats=("png",))
            plt.close(fig)
    return md
