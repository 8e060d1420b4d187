"""The regime map (beyond the paper): Self-KD minus baseline as a function of how well the baseline
fits its training data.

A setting is one (table, row, dataset, epochs, model) with complete baseline and Self-KD runs
(linear schedule, the paper's) under one of REGIME_TABLES. For each setting the map shows the
baseline's fit at the end of training (its final training loss, which every log has, and the
un-augmented training error where the log records it) and Self-KD minus baseline for top-1
error, NLL and ECE on the test set, each the difference of the means over seeds with a standard
error where both sides have several seeds.

    python -m reports regime --runs reports/runs          # -> reports/out/regime.md (make tables)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .logs import Cell, group_runs
from .tables import ECE, NLL, TOP1, _fmt_measured

# Tables whose baseline-vs-Self-KD runs differ only in the method (Fig. 2's sweep and the
# alpha_T holdout selection are not comparisons at a setting's chosen alpha_T).
REGIME_TABLES = ("table1", "probe", "regime")
DELTA_METRICS = (TOP1, NLL, ECE)
FIT_KEYS = ("train_loss", "fit_top1_err", "conf")


@dataclass
class Setting:
    table: str
    row: str
    dataset: str
    epochs: int | None
    baseline: list
    selfkd: list

    def base(self, key: str) -> Cell:
        return Cell.of(r.metric(key) for r in self.baseline)

    def delta(self, key: str) -> tuple[float | None, float | None]:
        """(mean Self-KD - mean baseline, its standard error or None with one seed a side)."""
        return Cell.of(r.metric(key) for r in self.selfkd).minus(self.base(key))

    @property
    def alpha_T(self) -> str:
        return ", ".join(sorted({str(r.meta.get("alpha_T")) for r in self.selfkd}))

    @property
    def label(self) -> str:
        return f"{self.table}/{self.row} ({self.dataset}, {self.epochs} ep)"


def regime_settings(runs) -> list[Setting]:
    """The settings with complete baseline and linear-schedule Self-KD runs, ordered from the
    worst-fitting baseline (highest final training loss) to the best-fitting one."""
    runs = [r for r in runs if r.table in REGIME_TABLES and r.complete and r.eval_split == "test"]
    by_key: dict = {}
    for g in group_runs(runs):
        for r in g.runs:
            key = (r.table, g.row, g.dataset, g.epochs, g.model)
            by_key.setdefault(key, {"baseline": [], "selfkd": []})
            if g.method == "baseline":
                by_key[key]["baseline"].append(r)
            elif g.method == "selfkd" and r.meta.get("alpha_kind", "linear") == "linear":
                by_key[key]["selfkd"].append(r)
    out = [Setting(k[0], k[1], k[2], k[3], v["baseline"], v["selfkd"])
           for k, v in by_key.items() if v["baseline"] and v["selfkd"]]
    return sorted(out, key=lambda s: -(s.base("train_loss").mean or 0.0))


def _pm(value, se, d: int) -> str:
    if value is None:
        return "–"
    return f"{value:+.{d}f}" + (f" ± {se:.{d}f}" if se is not None else "")


def _num(c: Cell, d: int) -> str:
    return "–" if c.mean is None else f"{c.mean:.{d}f}"


def to_markdown(settings) -> str:
    out = ["# Regime map: Self-KD minus baseline against how well the baseline fits", "",
           "Fit = the baseline's final training loss (cross entropy, training forward passes) and, "
           "where logged, its final top-1 error on un-augmented training images (fit). Test: the "
           "baseline's mean confidence and ECE. Δ = mean(Self-KD) − mean(baseline) over seeds, "
           "± standard error where both have several seeds; negative Δ = Self-KD better. "
           "Settings from the worst-fitting baseline to the best-fitting one.", "",
           "| Setting | α_T | n (base / Self-KD) | train loss | fit err (%) | conf (%) | ECE (%) "
           "| Δ top-1 (%) | Δ NLL | Δ ECE (%) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for s in settings:
        cells = [s.label, s.alpha_T, f"{len(s.baseline)} / {len(s.selfkd)}",
                 _num(s.base("train_loss"), 3), _num(s.base("fit_top1_err"), 2),
                 _num(s.base("conf"), 1), _num(s.base(ECE), 2)]
        for key, d in ((TOP1, 2), (NLL, 3), (ECE, 2)):
            cells.append(_pm(*s.delta(key), d))
        out.append("| " + " | ".join(cells) + " |")
    if not settings:
        out.append("| (no setting with complete baseline and Self-KD runs) |" + " |" * 9)
    return "\n".join(out) + "\n"


FIT_COLUMNS = (("train_loss", "train loss", 3), ("train_top1_err", "train err, aug. (%)", 2),
               ("fit_top1_err", "fit err, un-aug. (%)", 2), ("fit_conf", "fit conf (%)", 1),
               (TOP1, "test top-1 err (%)", 2), (NLL, "test NLL", 3), (ECE, "test ECE (%)", 2),
               ("conf", "test conf (%)", 1))


def fit_table(runs) -> str:
    """Every method of every regime setting (LS and fixed schedules included): how well it fits
    its training data and how confident it is, from the last epoch line and the final record."""
    runs = [r for r in runs if r.table in REGIME_TABLES and r.complete and r.eval_split == "test"]
    out = ["| Setting | Method | n | " + " | ".join(h for _, h, _ in FIT_COLUMNS) + " |",
           "|---|---|---|" + "---|" * len(FIT_COLUMNS)]
    for g in group_runs(runs):
        cells = [f"{g.runs[0].table}/{g.row} ({g.dataset}, {g.epochs} ep)", g.method, str(len(g.runs))]
        for key, _, d in FIT_COLUMNS:
            c = Cell.of(r.metric(key) for r in g.runs)
            cells.append(_fmt_measured(c, d))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_regime(runs, out_dir: str | Path) -> Path:
    out = Path(out_dir) / "regime.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(regime_settings(runs)) + "\n## Fit and confidence of every run group\n\n"
                   "Last epoch line (training loss and errors; 'aug.' = the training forward passes, "
                   "'un-aug.' = the fixed un-augmented fit subset) and final test metrics; mean ± std "
                   "over seeds. A dash: the log predates fit logging.\n\n" + fit_table(runs), encoding="utf-8")
    return out


def regime_figure(settings):
    """Three panels (Δ top-1, Δ NLL, Δ ECE) against the baseline's final training loss (log x),
    one point per setting with its standard error where there is one."""
    import matplotlib.pyplot as plt  # imported here: tables need no matplotlib
    if not settings:
        raise ValueError("regime_figure needs at least one setting")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (key, name) in zip(axes, ((TOP1, "Δ top-1 error (%)"), (NLL, "Δ NLL (nats)"),
                                      (ECE, "Δ ECE (%)"))):
        for i, s in enumerate(settings):
            x = s.base("train_loss").mean
            y, se = s.delta(key)
            if x is None or y is None:
                continue
            ax.errorbar([x], [y], yerr=[se] if se is not None else None, fmt="o", capsize=3,
                        color=f"C{i}", label=s.label)
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("Baseline final training loss (log)")
        ax.set_ylabel(f"Self-KD − baseline: {name}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, loc="best")
    fig.suptitle("Regime map: where Self-KD helps (below 0) and hurts (above 0)", fontsize=10)
    fig.tight_layout()
    return fig
