"""The regime map (beyond the paper): Self-KD minus baseline as a function of how well the baseline
fits its training data.

A setting is one (table, row, dataset, epochs, model) with complete baseline and Self-KD runs
(linear schedule, the paper's) under one of REGIME_TABLES. For each setting the map shows the
baseline's fit at the end of training (its final training loss, which every log has, and the
un-augmented training error where the log records it) and Self-KD minus baseline for top-1
error, NLL, ECE and AURC on the test set, twice: unpaired (the difference of the means over
seeds with its standard error, the rule the regime pre-registration fixed) and paired by seed
(the mean of the per-seed differences; not pre-registered), see reports.differences.

    python -m reports regime --runs reports/runs          # -> reports/out/regime.md (make tables)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.methods import is_reference, studied_method

from .differences import (PAIRED_LABEL, UNPAIRED_LABEL, Difference, by_seed, fmt, paired, unpaired,
                          verdict_2se)
from .logs import SCALED, Cell, group_runs
from .tables import AURC, ECE, METHOD_LABELS, NLL, TOP1, TOP5, fmt_measured

# Tables whose baseline-vs-Self-KD runs differ only in the method (Fig. 2's sweep and the
# alpha_T holdout selection are not comparisons at a setting's chosen alpha_T).
REGIME_TABLES = ("table1", "probe", "regime")
# (metric, column name, decimals), all lower-is-better: the map's differences, and those of the
# table of every method minus the baseline (top-5 too, which the README's Table 1 reading cites)
DELTA_METRICS = ((TOP1, "top-1 (%)", 2), (NLL, "NLL", 3), (ECE, "ECE (%)", 2), (AURC, "AURC (x10^3)", 1))
# After post-hoc temperature scaling (T fitted on each run's held-out data; logs from before it
# was recorded have none, and a metric no run holds gets no row): does a calibration difference
# survive what a baseline gets for free?
SCALED_METRICS = ((SCALED + NLL, "NLL after TS", 3), (SCALED + ECE, "ECE after TS (%)", 2),
                  (SCALED + AURC, "AURC after TS (x10^3)", 1), ("augrc", "AUGRC (x10^3)", 2))
COMPARE_METRICS = DELTA_METRICS[:1] + ((TOP5, "top-5 (%)", 2),) + DELTA_METRICS[1:] + SCALED_METRICS
FIT_KEYS = ("train_loss", "fit_top1_err", "conf")


@dataclass
class Setting:
    table: str
    row: str
    dataset: str
    epochs: int | None
    baseline: list
    selfkd: list
    others: dict = field(default_factory=dict)  # {method: runs} of the other methods (e.g. ls)

    def base(self, key: str) -> Cell:
        return Cell.of(r.metric(key) for r in self.baseline)

    def delta(self, key: str) -> tuple[float | None, float | None]:
        """(mean Self-KD - mean baseline, its standard error or None with one seed a side)."""
        d = self.unpaired(key)
        return d.value, d.se

    def _runs(self, method: str) -> list:
        return self.selfkd if method == studied_method() else self.others[method]

    def unpaired(self, key: str, method: str = "selfkd") -> Difference:
        """method minus baseline, the difference of the means over seeds."""
        return unpaired([r.metric(key) for r in self.baseline], [r.metric(key) for r in self._runs(method)])

    def paired(self, key: str, method: str = "selfkd") -> Difference:
        """method minus baseline per seed (same seed: same initialisation and data order)."""
        value = lambda r: r.metric(key)  # noqa: E731
        return paired(by_seed(self.baseline, value), by_seed(self._runs(method), value))

    @property
    def methods(self) -> list[str]:
        """The compared methods: the others (sorted), then Self-KD."""
        return sorted(self.others) + ["selfkd"]

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
            by_key.setdefault(key, {"baseline": [], "selfkd": [], "others": {}})
            if is_reference(g.method):
                by_key[key]["baseline"].append(r)
            elif g.method == studied_method():
                if r.meta.get("alpha_kind", "linear") == "linear":
                    by_key[key]["selfkd"].append(r)
            else:
                by_key[key]["others"].setdefault(g.method, []).append(r)
    out = [Setting(k[0], k[1], k[2], k[3], v["baseline"], v["selfkd"], v["others"])
           for k, v in by_key.items() if v["baseline"] and v["selfkd"]]
    return sorted(out, key=lambda s: -(s.base("train_loss").mean or 0.0))


def _num(c: Cell, d: int, n_rows: int | None = None) -> str:
    """The mean; '(n = k)' after it when only k of the n_rows runs hold the value (logs written
    before the key was logged), so a row's n is not read as the value's."""
    if c.mean is None:
        return "–"
    return f"{c.mean:.{d}f}" + (f" (n = {c.n})" if n_rows is not None and c.n < n_rows else "")


def _measured(c: Cell, d: int, n_rows: int) -> str:
    """mean ± std, with '(n = k)' as _num."""
    text = fmt_measured(c, d)
    return text + (f" (n = {c.n})" if c.mean is not None and c.n < n_rows else "")


def to_markdown(settings) -> str:
    n_delta = len(DELTA_METRICS)
    out = ["# Regime map: Self-KD minus baseline against how well the baseline fits", "",
           "Fit = the baseline's final training loss (cross entropy, training forward passes) and, "
           "where logged, its final top-1 error on un-augmented training images (fit). Test: the "
           "baseline's mean confidence and ECE; '(n = k)' after a value: only k of the group's runs "
           "log it. Δ = mean(Self-KD) − mean(baseline) over seeds, ± its unpaired standard error "
           f"({UNPAIRED_LABEL}); the paired-by-seed analysis is in the next table. Negative Δ = "
           "Self-KD better (all four are lower-is-better). Settings from the worst-fitting "
           "baseline to the best-fitting one.", "",
           "| Setting | α_T | n (base / Self-KD) | train loss | fit err (%) | conf (%) | ECE (%) | "
           + " | ".join(f"Δ {name}" for _, name, _ in DELTA_METRICS) + " |",
           "|---|---|---|---|---|---|---|" + "---|" * n_delta]
    for s in settings:
        nb = len(s.baseline)
        cells = [s.label, s.alpha_T, f"{nb} / {len(s.selfkd)}",
                 _num(s.base("train_loss"), 3, nb), _num(s.base("fit_top1_err"), 2, nb),
                 _num(s.base("conf"), 1, nb), _num(s.base(ECE), 2, nb)]
        for key, _, d in DELTA_METRICS:
            cells.append(fmt(s.unpaired(key), d))
        out.append("| " + " | ".join(cells) + " |")
    if not settings:
        out.append("| (no setting with complete baseline and Self-KD runs) |" + " |" * (6 + n_delta))
    out += ["", "## Every method minus the baseline: unpaired and paired by seed", "",
            "Unpaired: Δ of the means ± sqrt(s_b²/n_b + s_m²/n_m), n = runs a side, called "
            "beyond 2 standard errors: the rule the regime pre-registration fixed for Self-KD's "
            "top-1, NLL, ECE and AURC (docs/evidence/regime_preregistration.md: the resnet20 "
            "cells, and the probe's seeds 1-2 added under it); label smoothing, top-5 and the "
            "settings run before it (table1/small_cnn) are read with the same rule after the fact. "
            "Paired by seed: the mean of the per-seed differences ± their sd / sqrt(n), n = seeds "
            "both methods ran (a seed fixes initialisation and data order for every method); the "
            "same 2-SE call, made only with 3 pairs or more, not pre-registered. At n = 3 neither "
            "is a 95% test (a t quantile with 2 degrees of freedom is 4.3).", "",
            f"| Setting | Method | Δ | unpaired Δ ± SE (n base / method) | {UNPAIRED_LABEL} "
            f"| paired Δ ± SE (n pairs) | {PAIRED_LABEL} |",
            "|---|---|---|---|---|---|---|"]
    for s in settings:
        for m in s.methods:
            for key, name, d in COMPARE_METRICS:
                u, p = s.unpaired(key, m), s.paired(key, m)
                if u.value is None and p.value is None:
                    continue  # not logged by either side
                who = METHOD_LABELS.get(m, m).lstrip("+ ")
                out.append("| " + " | ".join([
                    s.label, m, name, fmt(u, d, with_n=True), verdict_2se(u, who=who),
                    fmt(p, d, with_n=True), verdict_2se(p, who=who)]) + " |")
    if not settings:
        out.append("| (no setting with complete baseline and Self-KD runs) |" + " |" * 6)
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
            cells.append(_measured(c, d, len(g.runs)))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_regime(runs, out_dir: str | Path) -> Path:
    out = Path(out_dir) / "regime.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(regime_settings(runs)) + "\n## Fit and confidence of every run group\n\n"
                   "Last epoch line (training loss and errors; 'aug.' = the training forward passes, "
                   "'un-aug.' = the fixed un-augmented fit subset) and final test metrics; mean ± std "
                   "over seeds; '(n = k)': only k of the n runs log the value. A dash: the logs predate fit "
                   "logging.\n\n" + fit_table(runs), encoding="utf-8")
    return out


def regime_figure(settings):
    """One panel per DELTA_METRICS entry against the baseline's final training loss (log x), one
    point per setting: the filled circle with ± the unpaired standard error (the pre-registered
    rule), and just right of it the open square with ± the paired-by-seed one."""
    import matplotlib.pyplot as plt  # imported here: tables need no matplotlib
    if not settings:
        raise ValueError("regime_figure needs at least one setting")
    fig, axes = plt.subplots(1, len(DELTA_METRICS), figsize=(16, 3.8))
    for ax, (key, name, _) in zip(axes, DELTA_METRICS):
        for i, s in enumerate(settings):
            x = s.base("train_loss").mean
            u, p = s.unpaired(key), s.paired(key)
            if x is None or u.value is None:
                continue
            ax.errorbar([x], [u.value], yerr=[u.se] if u.se is not None else None, fmt="o",
                        capsize=3, color=f"C{i}", label=s.label)
            if p.value is not None and p.se is not None:
                ax.errorbar([x * 1.15], [p.value], yerr=[p.se], fmt="s", mfc="none", capsize=2,
                            elinewidth=2, color=f"C{i}")
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("Baseline final training loss (log)")
        ax.set_ylabel(f"Self-KD − baseline: Δ {name}")
        ax.grid(alpha=0.3)
    fig.suptitle("Regime map: where Self-KD helps (below 0) and hurts (above 0). Circles: ± unpaired "
                 "SE (pre-registered rule); open squares, right: ± paired-by-seed SE (not "
                 "pre-registered)", fontsize=11)
    fig.tight_layout()
    # one legend for the four panels, under them at a readable size (inside a panel it would be
    # tiny or hide points)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=9,
                   ncol=min(len(labels), 4), title="Setting (table/row: data, epochs)", title_fontsize=9,
                   frameon=False)
    return fig
