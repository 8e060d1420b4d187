"""Table 4's runs in detail: what the BLEU columns of Table 4 leave out.

For every group of complete translation runs under Table 4 (same row, method, dataset, epochs and
model): tokenised BLEU, sacreBLEU, the brevity penalty of the beam output, greedy BLEU (an
``eval`` record with beam 1, written by ``translation.evaluate --record``), the best validation
NLL, the epoch it came from and the epochs trained (runs with early stopping train past their
best epoch); then each method minus the baseline of the same setting (the same configuration apart
from the method, its epochs and early stopping; ``setting_key``), unpaired with the rules of the
converged-teacher pre-registration (n = 2: a difference is called only when the seeds' ranges do
not overlap; n >= 3 a side: with its standard error, called beyond 2 of them) and, beside it,
paired by seed (not pre-registered; reports.differences); then every alpha_T selection
(``selection.json`` beside the runs).

    python -m reports table4-runs        # -> reports/out/table4_runs.md (also in make tables)
"""
from __future__ import annotations

import json
from pathlib import Path

from core.methods import has_alpha_schedule, is_reference, short_label
from core.run import RUNTIME_KEYS, flatten_config

from .differences import PAIRED_LABEL, UNPAIRED_LABEL, by_seed, fmt, paired, unpaired, verdict_2se
from .logs import Cell, group_runs
from .tables import fmt_measured

RUN_TABLES = ("table4",)
GREEDY = "greedy"  # tokenised BLEU of the recorded beam-1 evaluation (greedy())
# (key, name, decimals, higher is better) of the method-minus-baseline table
DELTA_KEYS = (("bleu_tok", "BLEU (tok.)", 2, True), ("bleu", "sacreBLEU", 2, True),
              (GREEDY, "greedy BLEU (tok.)", 2, True), ("valid_nll_best", "valid NLL (best)", 3, False))


def greedy(run, key: str = "bleu_tok") -> float | None:
    """`key` of the run's last recorded greedy (beam 1) evaluation of its evaluated checkpoint on
    the test split, or None."""
    ckpt = ((run.log.final or {}).get("metrics") or {}).get("checkpoint")
    val = None
    for rec in run.log.extra:
        if (rec.get("type") == "eval" and rec.get("beam") == 1 and rec.get("subset") == "test"
                and rec.get("checkpoint") == ckpt):
            val = (rec.get("metrics") or {}).get(key)
    return float(val) if isinstance(val, (int, float)) else None


def best_epoch(run) -> int | None:
    m = (run.log.final or {}).get("metrics") or {}
    if isinstance(m.get("best_epoch"), int):
        return m["best_epoch"]
    valid = [(e.get("valid_nll"), e.get("epoch")) for e in run.log.epochs if e.get("valid_nll") is not None]
    return min(valid)[1] if valid else None  # older logs: the lowest valid NLL's epoch


def _cell(values, d: int) -> str:
    return fmt_measured(Cell.of(values), d)


def _values(runs, key):
    return [r.metric(key) for r in runs]


# config keys that may differ between the methods of one setting: the method and what follows
# from it (Self-KD trains a fixed T epochs where the baseline stops early; epochs, optim.epochs in
# logs written before it moved to the top level), seeds, places and how a run was executed
PER_RUN_KEYS = ("seed", "run_id", "out_dir", "table", "device", "log_interval", "data.num_workers",
                "epochs", "optim.epochs", "optim.patience", "fairseq_args") + RUNTIME_KEYS


def setting_key(run) -> str:
    """The run's configuration without PER_RUN_KEYS and method.*: runs that share it are one
    setting (e.g. the 10-epoch reduced block and the converged block differ in batch size and lr)."""
    flat = flatten_config(run.meta.get("config") or {})
    keep = {k: v for k, v in flat.items() if k not in PER_RUN_KEYS and not k.startswith("method.")}
    return json.dumps([run.row, run.dataset, run.model, keep], sort_keys=True, default=str)


def with_chosen_selection_runs(runs, selections) -> list:
    """Table 4's runs plus each selection's chosen candidate (logged under another table, e.g.
    table4_select) where no Table 4 run of the same setting, alpha_T and seed exists: the
    candidate chosen on validation is that seed's test run, as the converged-teacher
    pre-registration says; a repeat under table4 supersedes it."""
    table4 = [r for r in runs if r.table in RUN_TABLES]
    chosen = {(sel.get("chosen_run"), sel.get("alpha_T")) for _, sel in selections}
    out = list(table4)
    for c in runs:
        if c.table in RUN_TABLES or (c.run_id, c.meta.get("alpha_T")) not in chosen or not c.complete:
            continue
        twin = [r for r in table4 if r.method == c.method and r.seed == c.seed
                and r.meta.get("alpha_T") == c.meta.get("alpha_T") and setting_key(r) == setting_key(c)]
        if not twin:
            out.append(c)
    return out


def _value(run, key: str):
    return greedy(run) if key == GREEDY else run.metric(key)


def unpaired_call(base_values, values, higher_is_better: bool = True, who: str = "method",
                  decimals: int = 2) -> tuple[str, str]:
    """(Δ text, verdict) by the converged-teacher pre-registration's unpaired rules: with three or
    more seeds a side Δ ± its standard error, called beyond 2 of them; with two a side Δ alone,
    called only when the seeds' ranges do not overlap."""
    b = [v for v in base_values if v is not None]
    o = [v for v in values if v is not None]
    d = unpaired(b, o)
    if d.value is None:
        return "–", "–"
    if len(b) >= 3 and len(o) >= 3:
        return fmt(d, decimals, with_n=True), verdict_2se(d, not higher_is_better, who)
    text = f"{d.value:+.{decimals}f} (n = {len(b)} / {len(o)})"
    if len(b) < 2 or len(o) < 2:
        return text, "one seed on a side: not called"
    if min(o) > max(b) or max(o) < min(b):
        better = (d.value > 0) == higher_is_better
        return text, f"ranges separate: {who} {'better' if better else 'worse'}"
    return text, "ranges overlap: no difference detected"


def to_markdown(runs, selections) -> str:
    runs = [r for r in with_chosen_selection_runs(runs, selections)
            if r.complete and r.meta.get("task") == "translation"]
    groups = group_runs(runs)
    out = ["# Table 4 runs in detail", "",
           "Complete translation runs, one line per configuration (mean ± sample std over the n "
           "seeds). BP = brevity penalty of the tokenised beam output; greedy = tokenised BLEU "
           "with beam 1 (`translation.evaluate --beam 1 --record`), which has no length bias; "
           "best epoch = the lowest validation NLL, whose checkpoint is evaluated. An alpha_T "
           "selection's chosen run (table4_select) counts as its seed's Self-KD run unless a Table 4 "
           "run repeats it.", "",
           "| Setting | Method | α_T | n | BLEU (tok.) | sacreBLEU | BP | BLEU greedy (tok.) "
           "| valid NLL (best) | best epoch | epochs trained | runs |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        rs = g.used
        alpha = ", ".join(sorted({str(r.meta.get("alpha_T")) for r in rs})) if has_alpha_schedule(g.method) else "–"
        out.append("| " + " | ".join([
            g.scale, g.method, alpha, str(len(rs)), _cell(_values(rs, "bleu_tok"), 2),
            _cell(_values(rs, "bleu"), 2), _cell(_values(rs, "bp_tok"), 3),
            _cell([greedy(r) for r in rs], 2), _cell(_values(rs, "valid_nll_best"), 3),
            _cell([best_epoch(r) for r in rs], 1), _cell([r.last_epoch for r in rs], 1),
            ", ".join(g.run_ids)]) + " |")
    if not groups:
        out.append("| (no complete Table 4 runs) |" + " |" * 11)
    out += ["", "## Each method minus the baseline of its setting", "",
            "Unpaired (the converged-teacher pre-registration's rules): Δ of the means; with two "
            "seeds on a side the difference is called only when the seeds' ranges do not overlap; "
            "with three or more a side, Δ ± its standard error sqrt(s_b²/n_b + s_m²/n_m), called "
            "beyond 2 standard errors. Paired by seed (not pre-registered): the mean of the "
            "per-seed differences ± their sd / sqrt(n) over the n seeds both ran (same seed: same "
            "initialisation and data order), called beyond 2 standard errors with 3 pairs or more. "
            "At n = 3 neither is a 95% test (a t quantile with 2 degrees of freedom is 4.3). Settings "
            "run before that pre-registration are read with the same rules.", "",
            f"| Setting | Method | Δ | unpaired Δ (n base / method) | {UNPAIRED_LABEL} "
            f"| paired Δ ± SE (n pairs) | {PAIRED_LABEL} |",
            "|---|---|---|---|---|---|---|"]
    for g in groups:
        base = [b for b in groups if is_reference(b.method)
                and setting_key(b.runs[0]) == setting_key(g.runs[0])]
        if is_reference(g.method) or not base:
            continue
        b = base[0].used
        who = short_label(g.method)
        for key, name, d, higher in DELTA_KEYS:
            text, call = unpaired_call([_value(r, key) for r in b], [_value(r, key) for r in g.used],
                                       higher, who, d)
            p = paired(by_seed(b, lambda r: _value(r, key)), by_seed(g.used, lambda r: _value(r, key)))
            if text == "–" and p.value is None:
                continue  # not measured on either side (e.g. greedy BLEU before it was recorded)
            out.append("| " + " | ".join([g.scale, g.method, name, text, call, fmt(p, d, with_n=True),
                                          verdict_2se(p, not higher, who)]) + " |")
    out += ["", "## alpha_T selections on the validation set", ""]
    if not selections:
        out.append("(none found)")
    for path, sel in selections:
        out += [f"`{path}`: {sel.get('metric', '?')}, {sel.get('epochs', '?')} epochs, seed "
                f"{sel.get('seed', '?')}; chosen **alpha_T = {sel.get('alpha_T')}** "
                f"(ties to the smaller).", "",
                "| α_T | valid sacreBLEU | valid BLEU (tok.) | valid BP | run |", "|---|---|---|---|---|"]
        for c in sel.get("candidates", []):
            bp = c.get("valid_bp_tok")
            out.append(f"| {c.get('alpha_T')} | {c.get('valid_bleu', float('nan')):.2f} | "
                       f"{c.get('valid_bleu_tok', float('nan')):.2f} | "
                       f"{'–' if bp is None else f'{bp:.3f}'} | {c.get('run')} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def find_selections(roots) -> tuple[list, list]:
    """(path, parsed JSON) of every translation selection.json under the roots, and warnings."""
    found, warnings, seen = [], [], set()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("selection.json")):
            if any(part.startswith(".") for part in p.parts):
                continue
            try:
                sel = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                warnings.append(f"{p}: not readable JSON ({type(e).__name__}); skipped")
                continue
            if not isinstance(sel, dict) or "candidates" not in sel:
                warnings.append(f"{p}: not an alpha_T selection (no candidates); skipped")
                continue
            key = (sel.get("chosen_run"), sel.get("written"))
            if key in seen:  # the same selection in two roots (runs/ and its copy in reports/runs/)
                continue
            seen.add(key)
            found.append((p, sel))
    return found, warnings


def write_table4_runs(runs, roots, out_dir: str | Path) -> tuple[Path, list]:
    selections, warnings = find_selections(roots)
    out = Path(out_dir) / "table4_runs.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(runs, selections), encoding="utf-8")
    return out, warnings
