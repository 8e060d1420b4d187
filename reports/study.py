"""The "which method" table of the pre-registered CPU study (docs/evidence/study_preregistration.md):
should a practitioner train with Self-KD, a peer, label smoothing, or train plainly and
temperature-scale?

Study runs (meta table "study") train evaluating their holdout; each is then scored on the test
set by `classification.evaluate RUN --split test --record`, whose "eval" record holds the test
metrics raw and after temperature scaling fitted on the run's own holdout. Only that record's
numbers are shown: a run without it (in progress, or not scored yet) is listed, not counted.

Per setting (row, dataset, epochs): one line per method raw and one after temperature scaling
(top-1 error, NLL, ECE, AURC as mean ± sd over seeds, n, the fitted temperature, the fit); then
for every method the pre-registered comparisons with the baseline, (i) raw vs raw, (ii) after
TS vs after TS, (iii) raw vs the baseline after TS, paired by seed (primary) and unpaired beside
it (reports.differences), with the pre-registration's verdict words; then Self-KD's alpha_T
selection on the holdout when its JSON (classification.select_alpha) is under a run root.

    python -m reports study --runs reports/runs     # -> reports/out/study.{md,tex,csv} (make tables)
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.methods import reference_method, studied_method

from .differences import Difference, by_seed, fmt, paired, unpaired
from .logs import SCALED, Cell, group_runs, number
from .regime import DELTA_METRICS
from .tables import METHOD_LABELS, TOP1, fmt_measured, md_escape, tex_escape

STUDY_TABLES = ("study",)
PREREGISTRATION = "docs/evidence/study_preregistration.md"
# The pre-registered methods in its order, with the seeds it plans for each (Seeds section).
PLANNED_SEEDS = {"baseline": 5, "ls": 5, "selfkd": 5, "cskd": 3, "tfkd": 3, "lwr": 3, "dlb": 3, "zipf": 3}
# Rows with a plan of their own: the regime block's fitting cell (5,000 un-augmented images), re-run
# at 5 seeds of its three methods and temperature-scaled on 500 training images it did not train on
# (the pre-registration's notes of 2026-12-03 15:13 and 15:16 UTC).
ROW_PLANS = {"resnet20_5k_noaug": {"baseline": 5, "ls": 5, "selfkd": 5}}
OTHER_SEEDS = 3  # a method the plan does not list yet (the pre-registration: 3 seeds for every other method)


def plan_of(row: str) -> dict:
    """{method: planned seeds} of a setting's row."""
    return ROW_PLANS.get(row, PLANNED_SEEDS)


def queue(row: str, methods=None, reference_first: bool = True) -> list[tuple[str, int]]:
    """(method, seed) of a row's planned runs in the order tools/cpu_study.sh runs them (results do
    not depend on it): with reference_first the baseline's seeds first; then the methods with the
    most planned seeds seed by seed, then those with the next count seed by seed, ..., so a queue
    cut off leaves each comparison with the most seed pairs. methods: those to run, in this order
    (None: the plan's); one the plan does not list gets OTHER_SEEDS."""
    planned = plan_of(row)
    plan = dict(planned) if methods is None else {m: planned.get(m, OTHER_SEEDS) for m in methods}
    out = []
    if reference_first and BASELINE in plan:
        out += [(BASELINE, s) for s in range(plan.pop(BASELINE))]
    for k in sorted(set(plan.values()), reverse=True):
        out += [(m, s) for s in range(k) for m, n in plan.items() if n == k]
    return out
BASELINE = reference_method()  # what every comparison subtracts (core.methods: the baseline)
# (metric key, column name, decimals): top-1 error, NLL, ECE, AURC, all lower-is-better
METRICS = tuple((k, "top-1 error (%)" if k == TOP1 else name, d) for k, name, d in DELTA_METRICS)
# (id, what is compared, method after TS, baseline after TS): the pre-registered three
COMPARISONS = (("(i)", "raw vs baseline raw", False, False),
               ("(ii)", "after TS vs baseline after TS", True, True),
               ("(iii)", "raw vs baseline after TS", False, True))
FIT_COLUMNS = (("train_top1_err", "train err, running (%)", 2), ("fit_top1_err", "fit err (%)", 2))
# reported beside the four metrics, not tested (the pre-registration's Metrics section)
CONF = ("conf", "mean conf (%)", 1)
TS_SUFFIX = " + temperature scaling"
# a selection decided by fewer holdout images than this is said to be (the pre-registration)
CLOSE_IMAGES = 3


def scored_record(run) -> dict | None:
    """The run's newest test-set "eval" record (classification.evaluate --split test --record),
    or None; only a finished run's record counts."""
    return run.evaluation_on("test") if run.complete else None


def value(key: str, scaled: bool):
    """run -> `key` of its test eval record, raw or after temperature scaling (None if absent)."""
    return lambda run: run.metric_on("test", (SCALED if scaled else "") + key) if run.complete else None


def temperature(run) -> float | None:
    return run.metric_on("test", SCALED + "temperature") if run.complete else None


@dataclass
class MethodRuns:
    method: str
    planned: int | None = None  # seeds the pre-registration plans (None: a method it does not list)
    scored: list = field(default_factory=list)   # finished runs with a test eval record
    pending: list = field(default_factory=list)  # in progress, failed, or not scored on test yet

    @property
    def label(self) -> str:
        return METHOD_LABELS.get(self.method, self.method).lstrip("+ ")

    def by_seed(self, get) -> dict:
        return by_seed(self.scored, get)

    def cell(self, get) -> Cell:
        return Cell.of(self.by_seed(get).values())

    @property
    def status(self) -> str:
        if not self.scored and not self.pending:
            return "not run yet"
        seeds = sorted({str(r.seed) for r in self.scored})
        out = [f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"] if seeds else []
        for r in self.scored:  # the pre-registration notes every run cut off and resumed
            resumed = [str(x.get("from_epoch", "?")) for x in r.log.extra if x.get("type") == "resume"]
            if resumed:
                out.append(f"seed {r.seed} resumed from epoch {', '.join(resumed)}")
        for r in self.pending:
            why = "trained, not scored on test yet" if r.complete else r.status
            out.append(f"seed {r.seed}: {why}")
        return "; ".join(out)


@dataclass
class Setting:
    row: str
    dataset: str
    epochs: int | None
    methods: dict  # {method: MethodRuns}, the pre-registered ones first (even without runs)

    @property
    def label(self) -> str:
        return f"{self.row} ({self.dataset}, {self.epochs if self.epochs is not None else '?'} ep)"

    @property
    def compared(self) -> list:
        return [m for m in self.methods if m != BASELINE]

    def compare(self, method: str, key: str, m_scaled: bool, b_scaled: bool) -> tuple[Difference, Difference]:
        """(paired by seed, unpaired) of `method` minus the baseline for metric `key`."""
        b = self.methods[BASELINE].by_seed(value(key, b_scaled))
        o = self.methods[method].by_seed(value(key, m_scaled))
        return paired(b, o), unpaired(list(b.values()), list(o.values()))

    @property
    def test_images(self) -> list:
        """The distinct numbers of test images the scored runs' records counted."""
        n = set()
        for mr in self.methods.values():
            for r in mr.scored:
                counts = ((scored_record(r) or {}).get("reliability") or {}).get("count")
                if isinstance(counts, list):
                    n.add(int(sum(counts)))
        return sorted(n)


def study_settings(runs) -> list[Setting]:
    """One Setting per (row, dataset, epochs, model) of the study's runs, every pre-registered
    method listed (without runs: "not run yet"), then any other method found."""
    runs = [r for r in runs if r.table in STUDY_TABLES and r.meta.get("task") == "classification"]
    by_key: dict = {}
    for g in group_runs(runs):
        key = (g.row, g.dataset, g.epochs, g.model)
        s = by_key.setdefault(key, Setting(g.row, g.dataset, g.epochs,
                                           {m: MethodRuns(m, k) for m, k in plan_of(g.row).items()}))
        mr = s.methods.setdefault(g.method, MethodRuns(g.method))
        for r in g.runs:
            (mr.scored if scored_record(r) is not None else mr.pending).append(r)
    return list(by_key.values())


def verdict(d: Difference) -> str:
    """The pre-registration's words: "improvement" or "degradation" when |Δ| > 2 SE (lower is
    better for every metric), else "no difference detected at n = ..."."""
    n = str(d.n) if d.paired else f"{d.n_base} / {d.n_other}"
    if d.value is None:
        return "–"
    if d.se is None:
        return f"not called: no standard error at n = {n}"
    if not d.calls(2.0):
        return f"no difference detected at n = {n}"
    return "improvement" if d.value < 0 else "degradation"


# ----------------------------------------------------------------------------- alpha_T selection
@dataclass
class Selection:
    path: Path
    data: dict
    holdout_images: int | None
    row: str = ""  # the setting's row whose file name it has

    @property
    def alpha_T(self):
        return self.data.get("alpha_T")

    def candidates(self) -> list[tuple[str, float | None, int | None]]:
        """(alpha_T, holdout top-1 error %, wrong holdout images or None) in increasing alpha_T."""
        errs = self.data.get("holdout_top1_err") or {}
        out = []
        for a in sorted(errs, key=lambda a: float(a)):
            e = number(errs[a])
            n = self.holdout_images
            out.append((a, e, round(e * n / 100) if e is not None and n else None))
        return out

    def margin(self) -> int | None:
        """Wrong holdout images of the best other candidate minus the chosen one's (0: a tie broken
        by the rule), or None without the holdout's size or a second candidate."""
        chosen = [w for a, _, w in self.candidates() if float(a) == float(self.alpha_T)]
        others = [w for a, _, w in self.candidates() if float(a) != float(self.alpha_T)]
        if not chosen or chosen[0] is None or not others or any(w is None for w in others):
            return None
        return min(others) - chosen[0]


def _holdout_images(runs, row: str) -> int | None:
    """The holdout's size: the samples counted in the final (holdout) reliability of the
    selection's candidate runs (table alpha_select), else of the study's own runs (the same
    holdout: same subset and holdout seed)."""
    for tables in (("alpha_select",), STUDY_TABLES):
        for r in runs:
            if r.table in tables and r.row == row and r.eval_split == "holdout" and r.complete:
                counts = (r.log.final.get("reliability") or {}).get("count")
                if isinstance(counts, list) and counts:
                    return int(sum(counts))
    return None


def _selection_problem(data) -> str | None:
    """What keeps `data` from being read as classification.select_alpha's JSON, else None."""
    if not isinstance(data, dict) or not isinstance(data.get("holdout_top1_err"), dict):
        return "no holdout_top1_err"
    try:
        alphas = [float(a) for a in data["holdout_top1_err"]]
    except ValueError:
        return "a candidate that is not a number"
    if number(data.get("alpha_T")) is None or float(data["alpha_T"]) not in alphas:
        return "its alpha_T is not one of its candidates"
    return None


def find_selections(roots, settings, runs) -> tuple[list[Selection], list[str]]:
    """The alpha_T selection JSONs of the settings' rows (<root>/alpha_select/<row>_s<seed>.
    selection.json), a copy under two roots read once, and warnings for unreadable ones."""
    found, warnings, seen = [], [], set()
    for root in roots:
        for s in settings:
            folder = Path(root) / "alpha_select"
            names = sorted(f.name for f in folder.iterdir()) if folder.is_dir() else []
            for p in (folder / n for n in names if re.fullmatch(re.escape(s.row) + r"_s\d+\.selection\.json", n)):
                try:
                    data = json.loads(p.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                    warnings.append(f"{p}: not readable JSON ({type(e).__name__}); skipped")
                    continue
                problem = _selection_problem(data)
                if problem:
                    warnings.append(f"{p}: not an alpha_T selection ({problem}); skipped")
                    continue
                key = (data.get("row"), data.get("seed"), data.get("decided"))
                if key in seen:
                    continue
                seen.add(key)
                found.append(Selection(p, data, _holdout_images(runs, s.row), s.row))
    return found, warnings


def selection_lines(sel: Selection, setting: Setting | None) -> list[str]:
    n = sel.holdout_images
    out = [f"`{sel.path}` (seed {sel.data.get('seed', '?')}, decided {sel.data.get('decided', '?')}): "
           f"lowest holdout top-1 error, ties to the smaller alpha_T; holdout of "
           f"{n if n else 'unknown'} images" + (f" (one image = {100 / n:.2f} points)." if n else "."), "",
           "| α_T | holdout top-1 err (%) | wrong holdout images | chosen |", "|---|---|---|---|"]
    for a, e, w in sel.candidates():
        chosen = "**chosen**" if float(a) == float(sel.alpha_T) else ""
        out.append(f"| {a} | {'–' if e is None else f'{e:.2f}'} | {'–' if w is None else w} | {chosen} |")
    m = sel.margin()
    if m is None:
        close = "margin unknown (holdout size or a second candidate missing)"
    elif m == 0:
        close = "a tie, broken by the rule (ties to the smaller alpha_T): decided by fewer than 3 holdout images"
    else:
        close = (f"the runner-up is {m} image{'s' if m != 1 else ''} behind: "
                 + ("decided by fewer than 3 holdout images" if m < CLOSE_IMAGES else "not a close call"))
    out += ["", f"Chosen alpha_T = {sel.alpha_T}; {close}."]
    if setting is not None:
        kd = setting.methods.get(studied_method())
        used = sorted({str(r.meta.get("alpha_T")) for r in (kd.scored + kd.pending)}) if kd else []
        if used:
            same = used == [str(sel.alpha_T)]
            out.append(f"Self-KD's study runs use alpha_T = {', '.join(used)}"
                       + ("." if same else f": **not the selected {sel.alpha_T}**."))
    return out


# ----------------------------------------------------------------------------- grids
def _n_text(mr: MethodRuns, n: int) -> str:
    return f"{n} of {mr.planned}" if mr.planned else str(n)


METHOD_HEAD = (["Method", "n (of planned)"] + [name for _, name, _ in METRICS + (CONF,)]
               + ["T (fitted on)"] + [name for _, name, _ in FIT_COLUMNS] + ["seeds"])


def method_grid(s: Setting) -> list[list[str]]:
    """Two lines per method (raw, after temperature scaling); one for a method not run yet."""
    body = []
    for mr in s.methods.values():
        n = len(mr.by_seed(value(METRICS[0][0], False)))
        if not mr.scored:
            body.append([mr.label, _n_text(mr, 0), "not run yet" if not mr.pending else "not scored yet"]
                        + ["–"] * (len(METHOD_HEAD) - 4) + [mr.status])
            continue
        fit = [fmt_measured(Cell.of(mr.by_seed(lambda r, k=k: r.metric(k)).values()), d)
               for k, _, d in FIT_COLUMNS]
        fits = sorted({str(((scored_record(r) or {}).get("temperature_scaled") or {}).get("ts_fit"))
                       for r in mr.scored})
        bound = sum(bool(((scored_record(r) or {}).get("temperature_scaled") or {}).get("at_bound"))
                    for r in mr.scored)
        # a temperature at the edge of its search interval did not converge to a minimum
        at_bound = f"; {bound} at the search bound" if bound else ""
        for scaled in (False, True):
            cells = [mr.label + (TS_SUFFIX if scaled else ""), _n_text(mr, n)]
            cells += [fmt_measured(mr.cell(value(k, scaled)), d) for k, _, d in METRICS + (CONF,)]
            cells.append(f"{fmt_measured(mr.cell(temperature), 3)} ({', '.join(fits)}){at_bound}" if scaled else "–")
            body.append(cells + fit + [mr.status])
    return body


GLANCE_HEAD = ["Method", "n (of planned)"] + [name for _, name, _ in METRICS]


def glance_grid(s: Setting) -> list[list[str]]:
    """The practitioner's table: each method raw and after temperature scaling (mean ± sd over
    seeds) and, in brackets, its paired-by-seed difference to the baseline after temperature
    scaling (Δ ± SE), the free alternative every method has to beat; comparisons (ii) and (iii)
    for the other methods, the effect of scaling itself for the baseline raw. Methods without
    scored runs are left out (the full grids list them)."""
    ref = s.methods.get(BASELINE)
    body = []
    for mr in s.methods.values():
        if not mr.scored:
            continue
        n = len(mr.by_seed(value(METRICS[0][0], False)))
        for scaled in (False, True):
            cells = [mr.label + (TS_SUFFIX if scaled else ""), _n_text(mr, n)]
            for key, _, d in METRICS:
                text = fmt_measured(mr.cell(value(key, scaled)), d)
                # (the baseline raw against itself scaled: top-1 is the same by construction)
                if ref is not None and ref.scored and not (mr is ref and (scaled or key == TOP1)):
                    diff = paired(ref.by_seed(value(key, True)), mr.by_seed(value(key, scaled)))
                    text += f" ({fmt(diff, d)})" if diff.value is not None else ""
                cells.append(text)
            body.append(cells)
    return body


GLANCE_NOTE = ("Mean ± sample sd over seeds; in brackets the paired-by-seed difference to **the "
               "baseline after temperature scaling** (Δ ± SE; lower is better): is training with the "
               "method better than training plainly and temperature-scaling (T fitted on images the run "
               "did not train on: its holdout, or unused training images)? Top-1 "
               "error is unchanged by temperature scaling. Every comparison, its verdict and the "
               "unpaired analysis: the tables below.")


COMPARE_HEAD = ["Method", "Metric", "Comparison", "paired by seed: Δ ± SE (n pairs), primary",
                "verdict (paired, primary)", "unpaired: Δ ± SE (n base / method)", "verdict (unpaired)"]


def compare_grid(s: Setting) -> list[list[str]]:
    body = []
    for m in s.compared:
        mr = s.methods[m]
        if not mr.scored:
            body.append([mr.label, "all", "–", "not run yet" if not mr.pending else "not scored yet",
                         "–", "–", "–"])
            continue
        for key, name, d in METRICS:
            for cid, what, m_ts, b_ts in COMPARISONS:
                p, u = s.compare(m, key, m_ts, b_ts)
                body.append([mr.label, name, f"{cid} {what}", fmt(p, d, with_n=True), verdict(p),
                             fmt(u, d, with_n=True), verdict(u)])
    return body


def n_comparisons(s: Setting) -> tuple[int, int]:
    """(pre-registered comparisons: compared methods x metrics x 3, those with a paired value)."""
    total = len(s.compared) * len(METRICS) * len(COMPARISONS)
    done = sum(1 for m in s.compared for key, _, _ in METRICS for _, _, a, b in COMPARISONS
               if s.methods[m].scored and s.compare(m, key, a, b)[0].value is not None)
    return total, done


# ----------------------------------------------------------------------------- renderers
NOTES = [
    f"Pre-registered in `{PREREGISTRATION}`. Every number is on the test set, from each run's final "
    "model scored by `classification.evaluate RUN --split test --record`: raw, and after temperature "
    "scaling (one temperature fitted by minimising NLL on the run's own holdout, never on test; "
    "a run trained on a subset without a holdout fits it on training images outside its subset, "
    "\"unused-train-N\"; top-1 error is unchanged by it). Mean ± sample sd over seeds; n = seeds "
    "scored, of those "
    "planned. Lower is better for all four metrics.",
    "Only Self-KD's alpha_T is selected on the holdout (the paper's procedure); every other method "
    "runs at the defaults its paper published, not tuned on the holdout.",
    "Fit: train err, running = the last epoch's running top-1 error on the augmented training "
    "batches (train mode); fit err = top-1 error on a fixed un-augmented subset of the training "
    "images. A run in progress or not yet scored on test is listed under seeds, not counted.",
]
COMPARE_NOTE = (
    "Δ = X(method) − X(baseline), lower is better. Primary (pre-registered): paired by seed, the "
    "mean of the per-seed differences over the seeds both have (same seed: same initialisation and "
    "data order), SE = sd / sqrt(n). Beside it: unpaired, the difference of the means over all "
    "their seeds, SE = sqrt(s_m²/n_m + s_b²/n_b). Either is called an improvement or a degradation "
    "only when |Δ| > 2 SE, else 'no difference detected at n = ...'. (i) the method raw vs the "
    "baseline raw; (ii) both after temperature scaling; (iii) the method raw vs the baseline after "
    "temperature scaling (is training with the method better than training plainly and "
    "temperature-scaling?). For top-1 error (ii) and (iii) repeat (i): temperature scaling leaves "
    "it unchanged. While a method has fewer seeds than planned (n in the table above) its verdicts "
    "are interim.")


def _md_table(head, body) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
            + ["| " + " | ".join(md_escape(c) for c in cells) + " |" for cells in body])


def _setting_heading(s: Setting) -> str:
    n = s.test_images
    return f"## {s.label}" + (f", {' / '.join(f'{k:,}' for k in n)} test images" if n else "")


def _commits_line(s: Setting) -> str:
    """The commits the scored runs trained at (Run.commit: '-dirty' for uncommitted changes)."""
    commits = sorted({r.commit for mr in s.methods.values() for r in mr.scored})
    return f"Trained at commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}." if commits else ""


def _comparisons_line(s: Setting) -> str:
    total, done = n_comparisons(s)
    return (f"Number of comparisons: {len(s.compared)} methods x {len(METRICS)} metrics x "
            f"{len(COMPARISONS)} = {total} pre-registered, {done} with a value so far; no correction "
            "for their number (the pre-registration's rule).")


def _selection_for(s: Setting, selections) -> list:
    return [x for x in selections if x.row == s.row]


def _or_empty(settings) -> list:
    """The settings, or with none a placeholder listing every pre-registered method as not run."""
    return list(settings) or [Setting("(no study runs yet)", "?", None,
                                      {m: MethodRuns(m, k) for m, k in PLANNED_SEEDS.items()})]


def to_markdown(settings, selections=(), warnings=()) -> str:
    out = ["# Which method? The pre-registered CPU study", ""] + [n for x in NOTES for n in (x, "")]
    for s in _or_empty(settings):
        out += [_setting_heading(s), ""]
        glance = glance_grid(s)
        if glance:
            out += ["### At a glance", "", GLANCE_NOTE, ""] + _md_table(GLANCE_HEAD, glance) + [""]
        out += ["### Each method, raw and after temperature scaling", ""]
        out += _md_table(METHOD_HEAD, method_grid(s))
        out += ["", _commits_line(s)] if _commits_line(s) else []
        out += ["", "### Each method minus the baseline", "", COMPARE_NOTE, "", _comparisons_line(s), ""]
        out += _md_table(COMPARE_HEAD, compare_grid(s))
        out += ["", "### Self-KD's alpha_T, selected on the holdout", ""]
        sels = _selection_for(s, selections)
        out += [ln for sel in sels for ln in selection_lines(sel, s) + [""]] or [
            f"(no selection file `alpha_select/{s.row}_s0.selection.json` under the run roots)", ""]
    if warnings:
        out += ["Warnings (inputs that could not be read in full):", ""] + [f"- {w}" for w in warnings]
    return "\n".join(out).rstrip() + "\n"


def to_latex(settings) -> str:
    """booktabs tabulars of the two grids per setting; the notes as comments."""
    out = ["% Which method? The pre-registered CPU study. Generated by `python -m reports study`; do not edit."]
    out += [f"% {n}" for n in NOTES + [COMPARE_NOTE]]
    for s in _or_empty(settings):
        out += ["", f"% {s.label}: {_comparisons_line(s)} {_commits_line(s)}".rstrip()]
        for head, body in ((METHOD_HEAD, method_grid(s)), (COMPARE_HEAD, compare_grid(s))):
            out += [r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}", r"\toprule",
                    " & ".join(tex_escape(h) for h in head) + r" \\", r"\midrule"]
            out += [" & ".join(tex_escape(c) for c in cells) + r" \\" for cells in body]
            out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("setting", "method", "variant", "metric", "value", "sd_or_se", "n", "n_base",
               "verdict", "run_ids")


def to_csv(settings) -> str:
    """Long format: a line per (method, raw|ts, metric) cell, then per (comparison, paired|unpaired)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    f6 = lambda x: "" if x is None else f"{x:.6f}"  # noqa: E731
    for s in _or_empty(settings):
        for mr in s.methods.values():
            ids = " ".join(r.run_id for r in mr.scored)
            for scaled in (False, True):
                cols = [(k, value(k, scaled)) for k, _, _ in METRICS + (CONF,)]
                cols += [("temperature", temperature)] if scaled else [
                    (k, lambda r, k=k: r.metric(k)) for k, _, _ in FIT_COLUMNS]
                for key, get in cols:
                    c = mr.cell(get)
                    w.writerow([s.row, mr.method, "ts" if scaled else "raw", key, f6(c.mean),
                                f6(c.std), c.n, "", "" if mr.scored else "not run yet", ids])
        for m in s.compared:
            for key, _, _ in METRICS:
                for cid, _, a, b in COMPARISONS:
                    for d in s.compare(m, key, a, b):
                        w.writerow([s.row, m, f"{cid} {'paired' if d.paired else 'unpaired'}", key,
                                    f6(d.value), f6(d.se), d.n_other, d.n_base, verdict(d), ""])
    return buf.getvalue()


def _concerns(warning: str) -> bool:
    """A warning about a study run or an alpha_T selection (the others belong to other tables)."""
    parts = set(Path(warning.split(":", 1)[0]).parts)
    return bool(parts & (set(STUDY_TABLES) | {"alpha_select"}))


def write_study(runs, roots, out_dir: str | Path, warnings=()) -> tuple[dict, list]:
    """Write study.md, study.tex and study.csv into out_dir; ({suffix: path}, warnings about the
    selection files)."""
    settings = study_settings(runs)
    selections, sel_warnings = find_selections(roots, settings, runs)
    shown = [w for w in warnings if _concerns(w)] + sel_warnings
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for suffix, text in (("md", to_markdown(settings, selections, shown)), ("tex", to_latex(settings)),
                         ("csv", to_csv(settings))):
        paths[suffix] = out_dir / f"study.{suffix}"
        paths[suffix].write_text(text, encoding="utf-8")
    return paths, sel_warnings
