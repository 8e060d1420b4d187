"""Tables 1–5: measured (mean ± std over seeds, n) next to the paper's value and the difference,
with the run ids, commits and scale each measured cell came from. Markdown, LaTeX and CSV.

Rows with no runs show the paper's value and the exact command that would produce them.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from core.labels import VOC_CLASSES
from core.methods import method_labels
from core.metrics import METRIC_NAMES

from .logs import SCALED, SELECTED, Cell, Group, group_runs
from .paper_data import AURC_NOTE, PEER_NOTE, paper_table

# Metric keys of the other tasks (their final records: translation "bleu_tok" (tokenised, what
# Table 4 is compared with) and "bleu" (detokenised sacreBLEU), detection "map" and "ap"
# {class: AP}). Classification names come from core.metrics.METRIC_NAMES.
BLEU, BLEU_TOK, MAP = "bleu", "bleu_tok", "map"
TOP1, TOP5, NLL, ECE, AURC = "top1_err", "top5_err", "nll", "ece", "aurc"
assert all(k in METRIC_NAMES for k in (TOP1, TOP5, NLL, ECE, AURC))

METRIC_LABELS = {**METRIC_NAMES, AURC: "AURC (x10^3)", BLEU: "sacreBLEU (detok.)", "dece": "D-ECE (%)",
                 BLEU_TOK: "BLEU (tok.)", MAP: "mAP (%)",
                 **{f"ap.{c}": c for c in VOC_CLASSES}}

ROW_LABELS = {
    "resnet50": "ResNet-50", "resnet101": "ResNet-101", "densenet_bc100": "DenseNet-BC",
    "resnext29_8x64d": "ResNeXt-29 (8x64d)", "pyramidnet200": "PyramidNet-200",
    "resnet152": "ResNet-152", "densenet264": "DenseNet-264*",
    "resnext101_1x64d": "ResNeXt-101 (1x64d)*", "iwslt15_en_de": "IWSLT15 EN-DE",
    "iwslt15_de_en": "IWSLT15 DE-EN", "multi30k_de_en": "Multi30k DE-EN",
    "preact_resnet18": "PreAct ResNet-18", "preact_resnet101": "PreAct ResNet-101",
    "densenet121": "DenseNet-121",
}
METHOD_LABELS = {**method_labels(), "reported": "(original paper)"}  # one list: core.methods
# The optional column of the classification tables (--selected-on-test): top-1 error at each run's
# best epoch on test, which is what the official code reports (it keeps the checkpoint with the
# best test accuracy). The main columns are the last epoch's: selecting on the test set flatters.
SELECTED_TOP1 = SELECTED + TOP1
SELECTED_LABEL = "Top-1 error (%), selected on test, as the official code"
# The optional calibration columns of the classification tables (--calibration): measures later
# papers report, logged by every classification run since they were added (no paper values).
CALIBRATION = (("brier", 4), ("ece15", 2), ("adaece", 2), ("cwece", 2), ("smece", 2), ("augrc", 2))
# Table 3's optional calibration column: the detection ECE of the detector's scores (detection.voc_eval).
DECE = "dece"
DETECTION_CALIBRATION = ((DECE, 2),)
# --calibration's second block: raw vs after post-hoc temperature scaling (core.calibration), with
# the fitted T and where it was fitted (the run log's temperature_scaled).
SCALED_METRICS = (NLL, ECE, "smece", "augrc")
TEMPERATURE = SCALED + "temperature"


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    task: str                 # classification | detection | translation
    metrics: tuple
    paper_scale: str
    run_tables: tuple         # meta "table" values whose runs feed this table
    seeds: tuple = (0,)
    layout: str = "wide"      # wide: a line per (row, method); by_metric: a line per metric
    # The paper's scale: only groups with one of these datasets and this many epochs sit on the
    # paper's lines (with its value and a difference); any other scale gets a line of its own.
    paper_datasets: tuple = ()
    paper_epochs: int | None = None
    decimals: tuple = ()      # (metric, decimals) where the paper's own precision is not wanted

    def at_paper_scale(self, group) -> bool:
        return group.dataset in self.paper_datasets and group.epochs == self.paper_epochs


TABLES = {
    "table1": TableSpec("table1", "Table 1: CIFAR-100 classification", "classification",
                        (TOP1, TOP5, NLL, ECE, AURC),
                        "CIFAR-100, 300 epochs, average of three runs", ("table1", "regime", "study_pilots"),
                        (0, 1, 2),
                        paper_datasets=("cifar100",), paper_epochs=300),
    "table2": TableSpec("table2", "Table 2: ImageNet classification (validation set)",
                        "classification", (TOP1, TOP5, NLL, ECE, AURC),
                        "ImageNet, 90 epochs", ("table2",), paper_datasets=("imagenet",), paper_epochs=90),
    "table3": TableSpec("table3", "Table 3: Faster R-CNN on VOC07 test with each backbone",
                        "detection", (MAP,),
                        "VOC07+12 trainval -> VOC07 test, fine-tuned 10 epochs", ("table3", "table5"),
                        paper_datasets=("voc07+12",), paper_epochs=10),
    "table4": TableSpec("table4", "Table 4: Transformer BLEU", "translation", (BLEU_TOK, BLEU),
                        "IWSLT15 / Multi30k, 150 epochs", ("table4",),
                        paper_datasets=("iwslt15_en_de", "iwslt15_de_en", "multi30k_de_en"), paper_epochs=150,
                        decimals=((BLEU_TOK, 2), (BLEU, 2))),  # both BLEU columns alike
    "table5": TableSpec("table5", "Table 5: per-class AP on VOC07 test", "detection",
                        tuple(f"ap.{c}" for c in VOC_CLASSES) + (MAP,),
                        "VOC07+12 trainval -> VOC07 test, fine-tuned 10 epochs",
                        ("table3", "table5"), layout="by_metric", paper_datasets=("voc07+12",), paper_epochs=10),
}


def command_for(spec: TableSpec, row: str, method: str) -> str:
    """The exact command that would produce the runs of one table line."""
    if method == "reported":
        return "(number from the original paper; not reproduced here)"
    if spec.task == "classification":
        cmd = (f"python -m classification.train --config "
               f"classification/configs/{spec.name}_{row}_{method}.yaml")
        if len(spec.seeds) == 1:
            return f"{cmd} seed={spec.seeds[0]}"
        return f"for s in {' '.join(map(str, spec.seeds))}; do {cmd} seed=$s; done"
    if spec.task == "translation":
        return f"python -m translation.train --config translation/configs/{row}_{method}.yaml"
    return f"python -m detection.train --config detection/configs/{row}_{method}.yaml"


@dataclass
class Line:
    """One (row, method[, scale]) of a table: the paper's cells and the measured group, if any."""
    row: str
    method: str
    group: Group | None
    command: str
    on_paper_line: bool = True  # False: measured at another scale, never compared with the paper

    @property
    def label(self) -> str:
        return f"{ROW_LABELS.get(self.row, self.row)} {METHOD_LABELS.get(self.method, self.method)}"


@dataclass
class Table:
    spec: TableSpec
    paper: dict          # {(row, method, metric): PaperValue}
    lines: list
    warnings: list
    selected_on_test: bool = False  # the optional SELECTED_LABEL column (classification tables)
    calibration: bool = False  # the optional CALIBRATION columns (classification tables)

    def paper_value(self, line: Line, metric: str):
        return self.paper.get((line.row, line.method, metric)) if line.on_paper_line else None

    def cell(self, line: Line, metric: str) -> Cell:
        return line.group.cell(metric) if line.group else Cell(None, None, 0)


def build_table(name: str, runs, warnings=(), selected_on_test: bool = False,
                calibration: bool = False) -> Table:
    """Match runs (already read) to the paper's lines of table `name`. selected_on_test: add the
    column of top-1 error at each run's best epoch on test; calibration: add the CALIBRATION
    columns (classification tables only)."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
    spec = TABLES[name]
    if selected_on_test and spec.task != "classification":
        raise ValueError(f"selected_on_test is a column of the classification tables, not of {name}")
    if calibration and not (spec.task == "classification" or name == "table3"):
        raise ValueError(f"calibration columns belong to the classification tables and table3, not to {name}")
    paper = paper_table(name)
    mine = [r for r in runs if r.table in spec.run_tables]
    groups = group_runs(mine)
    lines, used = [], set()
    for row, method in dict.fromkeys((r, m) for r, m, _ in paper):
        matching = [g for g in groups if (g.row, g.method) == (row, method) and spec.at_paper_scale(g)]
        for g in matching or [None]:
            lines.append(Line(row, method, g, command_for(spec, row, method)))
        used.update(id(g) for g in matching)
    # Measured lines the paper does not have (another model, a new method): shown, no paper value.
    for g in groups:
        if id(g) not in used:
            lines.append(Line(g.row, g.method, g, command_for(spec, g.row, g.method), on_paper_line=False))
    return Table(spec, paper, lines, [w for w in warnings if _concerns(w, spec)], selected_on_test,
                 calibration)


def _concerns(warning: str, spec: TableSpec) -> bool:
    """A warning belongs to this table when its path runs through a folder of one of the
    table's run_tables, or through no folder named after any table (then it could be ours)."""
    parts = set(Path(warning.split(":", 1)[0]).parts)
    known = set(TABLES) | {"fig2", "demo"}
    return bool(parts & set(spec.run_tables)) or not (parts & known)


# ----------------------------------------------------------------------------- formatting
def _decimals(table: Table, metric: str) -> int:
    if metric in dict(table.spec.decimals):
        return dict(table.spec.decimals)[metric]
    ds = [p.decimals for (_, _, m), p in table.paper.items() if m == metric]
    return max(ds) if ds else 2


def fmt_measured(c: Cell, d: int, pm: str = " ± ") -> str:
    if c.mean is None:
        return "–"
    return f"{c.mean:.{d}f}" + (f"{pm}{c.std:.{d}f}" if c.std is not None else "")


def _fmt_diff(c: Cell, p, d: int) -> str:
    if c.mean is None or p is None:
        return "–"
    return f"{c.mean - p.value:+.{d}f}"


def _header_notes(table: Table) -> list[str]:
    s = table.spec
    notes = [f"Paper: {s.paper_scale}. Measured: mean ± sample std over the n runs (seeds) of "
             f"each configuration; Δ = measured − paper. Scale = dataset and epochs of the "
             f"measured runs; runs at another scale than the paper's are not comparable."]
    if AURC in s.metrics:
        notes.append(AURC_NOTE)
    if any("pskd_readme" in p.note for p in table.paper.values()):
        notes.append(PEER_NOTE)
    if table.selected_on_test:
        notes.append(f"{SELECTED_LABEL}: each run's lowest top-1 error over its epochs' test "
                     f"evaluations (its epoch in brackets), the checkpoint the official code keeps; "
                     f"the other columns are the last epoch's, which this project reports.")
    if table.calibration and table.spec.task == "detection":
        notes.append("D-ECE beyond the paper (measured only): the detection ECE of the detector's "
                     "scores, every detection matched as VOC07's evaluation matches it (IoU > 0.5), "
                     "10 confidence bins, precision vs mean score per bin (detection.voc_eval); a "
                     "dash where a run's log predates it.")
    elif table.calibration:
        notes.append("Calibration beyond the paper (measured only): Brier score, 15-bin ECE, "
                     "adaptive (equal-mass, 15 bins) ECE, classwise ECE, SmoothECE (relplot) and "
                     "AUGRC (x10^3), from core.metrics; a dash where a run's log predates them.")
    return notes


SCALED_NOTE = ("After temperature scaling (Guo et al. 2017): each run's logits divided by one "
               "temperature T fitted by minimising NLL on data the run did not train on (Fit: "
               "holdout = the run's holdout split, scoring the test set; <split>-2fold = 2-fold "
               "cross-fitting on the scored split, each half scaled with the T fitted on the other "
               "half, T = their geometric mean). Raw = the run's own numbers; TS = after scaling; "
               "top-1 and top-5 error are unchanged by a temperature. A calibration gain that "
               "temperature scaling also gives the baseline is no gain over baseline + TS.")


def _calibration_columns(table: Table) -> tuple:
    """The optional --calibration columns of this table: (metric, decimals)."""
    if not table.calibration:
        return ()
    return DETECTION_CALIBRATION if table.spec.task == "detection" else CALIBRATION


def _scaled_block(table: Table) -> bool:
    """--calibration's temperature-scaled block: classification tables only."""
    return table.calibration and table.spec.task == "classification"


def _scaled_grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """--calibration's temperature-scaled block: one line per measured table line."""
    head = ["Model", "Method", "T", "Fit"]
    for m in SCALED_METRICS:
        label = METRIC_LABELS.get(m, m)
        head += [f"{label} raw", f"{label} TS"]
    head += ["n", "Runs"]
    body = []
    for ln in table.lines:
        g = ln.group
        if g is None:
            continue
        fits = sorted({str(r.temperature_scaled.get("ts_fit")) for r in g.used if r.temperature_scaled})
        cells = [ROW_LABELS.get(ln.row, ln.row), METHOD_LABELS.get(ln.method, ln.method),
                 fmt_measured(g.cell(TEMPERATURE), 3), ", ".join(fits) or "–"]
        for m in SCALED_METRICS:
            d = _decimals(table, m) if m in table.spec.metrics else 2
            cells += [fmt_measured(g.cell(m), d), fmt_measured(g.cell(SCALED + m), d)]
        body.append(cells + [str(len(g.used)), ", ".join(g.run_ids)])
    return head, body


def _runs_text(line: Line) -> str:
    if line.group is None:
        return f"`{line.command}`"
    return ", ".join(line.group.run_ids)


def _status(line: Line) -> str:
    return line.group.status if line.group else "no runs"


def _fmt_selected(table: Table, line: Line) -> str:
    """The optional column: mean ± std of the best-on-test top-1 error, the epochs it came from."""
    if line.group is None:
        return "–"
    c = line.group.cell(SELECTED_TOP1)
    epochs = [str(r.selected_on_test["epoch"]) for r in line.group.used if r.selected_on_test]
    text = fmt_measured(c, _decimals(table, TOP1))
    return text + (f" (ep {', '.join(epochs)})" if epochs and c.mean is not None else "")


def _meta_cols(line: Line) -> list[str]:
    g = line.group
    return [str(len(g.used)) if g else "0",
            g.scale if g else "–", _status(line), _runs_text(line),
            ", ".join(g.commits) if g else "–"]


_META_HEAD = ["n", "Scale", "Status", "Runs", "Commit"]


def _grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """Header and body cells shared by Markdown and LaTeX."""
    s = table.spec
    if s.layout == "wide":
        head = ["Model", "Method"]
        for m in s.metrics:
            head += [METRIC_LABELS.get(m, m), "paper", "Δ"]
        head += [SELECTED_LABEL] if table.selected_on_test else []
        head += [METRIC_LABELS.get(m, m) for m, _ in _calibration_columns(table)]
        head += _META_HEAD
        body = []
        for ln in table.lines:
            cells = [ROW_LABELS.get(ln.row, ln.row), METHOD_LABELS.get(ln.method, ln.method)]
            for m in s.metrics:
                p, c, d = table.paper_value(ln, m), table.cell(ln, m), _decimals(table, m)
                cells += [fmt_measured(c, d), p.text if p else "–", _fmt_diff(c, p, d)]
            cells += [_fmt_selected(table, ln)] if table.selected_on_test else []
            cells += [fmt_measured(table.cell(ln, m), d) for m, d in _calibration_columns(table)]
            body.append(cells + _meta_cols(ln))
        return head, body
    # by_metric: one line per metric, three columns (measured, paper, Δ) per table line.
    head = ["Metric"]
    for ln in table.lines:
        head += [ln.label.strip(), "paper", "Δ"]
    body = []
    for m in s.metrics:
        cells = [METRIC_LABELS.get(m, m)]
        for ln in table.lines:
            p, c, d = table.paper_value(ln, m), table.cell(ln, m), _decimals(table, m)
            cells += [fmt_measured(c, d), p.text if p else "–", _fmt_diff(c, p, d)]
        body.append(cells)
    for i, name in enumerate(_META_HEAD):
        body.append([name] + [x for ln in table.lines for x in (_meta_cols(ln)[i], "", "")])
    return head, body


def md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(table: Table) -> str:
    head, body = _grid(table)
    out = [f"# {table.spec.title}", ""]
    out += [f"{n}" for n in _header_notes(table)]
    out += ["", "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(md_escape(c) for c in cells) + " |" for cells in body]
    if _scaled_block(table):
        head, body = _scaled_grid(table)
        out += ["", "## After temperature scaling", "", SCALED_NOTE, ""]
        out += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(md_escape(c) for c in cells) + " |" for cells in body]
    if table.warnings:
        out += ["", "Warnings (inputs that could not be read in full):", ""]
        out += [f"- {w}" for w in table.warnings]
    return "\n".join(out) + "\n"


_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$", "–": "--",
               "−": "-", "`": ""}


def tex_escape(s: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in s)


def to_latex(table: Table) -> str:
    """A booktabs tabular. Missing-run commands go in comments (too long for a cell)."""
    head, body = _grid(table)
    if table.spec.layout == "wide":
        runs_col = head.index("Runs")
        body = [c[:runs_col] + [("--" if c[runs_col].startswith("`") else c[runs_col])]
                + c[runs_col + 1:] for c in body]
    out = [f"% {table.spec.title}. Generated by `python -m reports {table.spec.name}`; do not edit."]
    out += [f"% {n}" for n in _header_notes(table)]
    for ln in table.lines:
        if ln.group is None:
            out.append(f"% missing {ln.row} {ln.method}: {ln.command}")
    n_left = 2 if table.spec.layout == "wide" else 1
    out += [r"\begin{tabular}{" + "l" * n_left + "r" * (len(head) - n_left) + "}", r"\toprule",
            " & ".join(tex_escape(h) for h in head) + r" \\", r"\midrule"]
    out += [" & ".join(tex_escape(c) for c in cells) + r" \\" for cells in body]
    out += [r"\bottomrule", r"\end{tabular}"]
    if _scaled_block(table):
        head, body = _scaled_grid(table)
        out += ["", f"% {SCALED_NOTE}", r"\begin{tabular}{ll" + "r" * (len(head) - 2) + "}", r"\toprule",
                " & ".join(tex_escape(h) for h in head) + r" \\", r"\midrule"]
        out += [" & ".join(tex_escape(c) for c in cells) + r" \\" for cells in body]
        out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("table", "row", "method", "metric", "paper", "measured_mean", "measured_std", "n",
               "diff", "status", "dataset", "epochs", "run_ids", "commits", "command")


def to_csv(table: Table) -> str:
    """Long format: one line per (row, method, scale, metric)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    f4 = lambda x: "" if x is None else f"{x:.4f}"  # noqa: E731
    extra = ((SELECTED_TOP1,) if table.selected_on_test else ()) + (
        tuple(m for m, _ in _calibration_columns(table))
        + ((TEMPERATURE,) + tuple(SCALED + m for m in SCALED_METRICS) if _scaled_block(table) else ()))
    for ln in table.lines:
        g = ln.group
        for m in table.spec.metrics + extra:
            p, c = table.paper_value(ln, m), table.cell(ln, m)
            if p is None and c.mean is None:
                continue  # neither printed nor measured (e.g. NLL of a '*' row)
            diff = c.mean - p.value if (p is not None and c.mean is not None) else None
            w.writerow([table.spec.name, ln.row, ln.method, m, p.text if p else "", f4(c.mean),
                        f4(c.std), c.n, f4(diff), _status(ln), g.dataset if g else "",
                        "" if g is None or g.epochs is None else g.epochs,
                        " ".join(g.run_ids) if g else "", " ".join(g.commits) if g else "",
                        "" if g else ln.command])
    return buf.getvalue()


def write_table(table: Table, out_dir: str | Path) -> dict:
    """Write <name>.md, .tex and .csv into out_dir; return {suffix: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for suffix, render in (("md", to_markdown), ("tex", to_latex), ("csv", to_csv)):
        p = out_dir / f"{table.spec.name}.{suffix}"
        p.write_text(render(table), encoding="utf-8")
        paths[suffix] = p
    return paths
