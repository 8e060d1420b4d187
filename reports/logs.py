"""Find run logs, read them leniently, and group them into table cells.

A run is a folder holding `log.jsonl` (core.runlog schema) under one of the roots, normally
`runs/<table>/<run_id>/` (local) and `reports/runs/<table>/<run_id>/` (committed). Reading never
stops on a bad file: every problem becomes a warning "file:line: why" and the rest renders.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config import ConfigError
from core.run import check_name
from core.runlog import RunLog, best_epoch_on_test, read_run_log

LOG_NAME = "log.jsonl"
# Prefix of metric keys read at the run's best epoch on the evaluation split (Run.selected_on_test),
# e.g. "selected_on_test.top1_err": how the official code picks the number it reports.
SELECTED = "selected_on_test."
# Prefix of metric keys read after post-hoc temperature scaling (Run.temperature_scaled), e.g.
# "ts.ece"; "ts.temperature" is the fitted T.
SCALED = "ts."
DEFAULT_ROOTS = ("runs", "reports/runs")
# alpha_T selections (classification.select_alpha's <row>_s<seed>.selection.json, translation's
# selection.json) sit beside run folders, not in them
SELECTION_SUFFIX = "selection.json"


@dataclass
class Run:
    """One run log, as read. `complete` is False for a run with no final record (in progress,
    or killed); its numbers then come from its last epoch record."""
    log: RunLog
    root: Path

    @property
    def path(self) -> Path:
        return self.log.path

    @property
    def meta(self) -> dict:
        return self.log.meta or {}

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.parent.name)

    @property
    def table(self) -> str:
        """meta "table", else the folder above the run folder (runs/<table>/<run_id>/)."""
        return str(self.meta.get("table") or self.path.parent.parent.name)

    @property
    def row(self) -> str:
        return str(self.meta.get("row") or self.meta.get("model") or "?")

    @property
    def method(self) -> str:
        return str(self.meta.get("method") or "?")

    @property
    def model(self) -> str:
        """meta "model" (for translation the architecture and size), else the row."""
        return str(self.meta.get("model") or self.row)

    @property
    def seed(self):
        return self.meta.get("seed")

    @property
    def dataset(self) -> str:
        return str(self.meta.get("dataset") or "?")

    @property
    def total_epochs(self) -> int | None:
        """T: meta "epochs", else config.epochs / config.train.epochs, else None."""
        if self.meta.get("epochs") is not None:
            return int(self.meta["epochs"])
        cfg = self.meta.get("config") or {}
        for c in (cfg, cfg.get("train") if isinstance(cfg.get("train"), dict) else {}):
            if isinstance(c, dict) and isinstance(c.get("epochs"), (int, float)):
                return int(c["epochs"])
        if self.complete and self.log.epochs:  # a finished run ran all its epochs
            return self.last_epoch
        return None

    @property
    def eval_split(self) -> str:
        """Where the metrics were measured: "test" unless the log says otherwise (e.g. a
        holdout split carved from the training set for choosing alpha_T)."""
        return str(self.meta.get("eval_split") or "test")

    @property
    def complete(self) -> bool:
        return self.log.final is not None

    @property
    def last_epoch(self) -> int | None:
        return self.log.epochs[-1].get("epoch") if self.log.epochs else None

    @property
    def failed(self) -> dict | None:
        """The "failed" record (e.g. a diverged loss) unless a later resume superseded it."""
        last = None
        for rec in self.log.extra:
            if rec.get("type") == "failed":
                last = rec
            elif rec.get("type") == "resume":
                last = None
        return last

    @property
    def status(self) -> str:
        if self.complete:
            return "complete"
        if self.failed:
            return f"failed at epoch {self.failed.get('epoch', '?')}/{self.total_epochs or '?'}"
        return f"in progress (epoch {self.last_epoch or 0}/{self.total_epochs or '?'})"

    @property
    def commit(self) -> str:
        sha = str(self.meta.get("git_commit") or "unknown")
        short = sha[:7] if sha != "unknown" else sha
        return short + ("-dirty" if self.meta.get("git_dirty") else "")

    @property
    def evaluation(self) -> dict | None:
        """The newest re-evaluation of a classification run's checkpoint on its own evaluation
        split (an "eval" record of `classification.evaluate --record`), or None. When present,
        its metrics, reliability bins and temperature scaling replace the final record's."""
        return self.evaluation_on(self.eval_split)

    def evaluation_on(self, split: str) -> dict | None:
        """The newest "eval" record of a classification run that scored `split` (e.g. "test" for
        a run that trained evaluating its holdout, then was scored with `classification.evaluate
        --split test --record`), or None."""
        if self.meta.get("task") != "classification":
            return None  # translation's eval records score other subsets and beams
        for rec in reversed(self.log.extra):
            if (rec.get("type") == "eval" and rec.get("split") == split
                    and isinstance(rec.get("metrics"), dict)):
                return rec
        return None

    def metric_on(self, split: str, key: str) -> float | None:
        """`key` of the newest eval record that scored `split` (evaluation_on): its metrics, or
        with the `ts.` prefix the metric after temperature scaling (`ts.temperature`: the fitted
        T); None without such a record or value. A run trained evaluating its holdout keeps its
        holdout numbers in its final record (metric); its test-set numbers are here."""
        rec = self.evaluation_on(split) or {}
        if key.startswith(SCALED):
            rec, key = rec.get("temperature_scaled") or {}, key[len(SCALED):]
            if key == "temperature":
                return number(rec.get(key))
        return number((rec.get("metrics") or {}).get(key))

    @property
    def reliability(self) -> dict | None:
        return (self.evaluation or self.log.final or {}).get("reliability")

    @property
    def temperature_scaled(self) -> dict | None:
        """{"temperature", "ts_fit", "metrics", "reliability", ...} after post-hoc temperature
        scaling (core.calibration): the newest evaluation's, else the final record's; None for
        logs written before it was recorded."""
        for src in (self.evaluation, self.log.final):
            rec = (src or {}).get("temperature_scaled")
            if isinstance(rec, dict) and isinstance(rec.get("metrics"), dict):
                return rec
        return None

    @property
    def selected_on_test(self) -> dict | None:
        """{"epoch", metrics...} of the epoch with the lowest evaluation top-1 error, the number the
        official code reports (it keeps the checkpoint with the best *test* accuracy; this project
        reports the last epoch): the final record's "selected_on_test", else computed from the
        epoch records (logs written before it was recorded); None without per-epoch top-1 error."""
        rec = (self.log.final or {}).get("selected_on_test")
        return rec if isinstance(rec, dict) else best_epoch_on_test(self.log.epochs)

    def metric(self, key: str) -> float | None:
        """The value of `key` from the final record's metrics (or, for a run in progress, its last
        epoch record). Keys the final record does not hold (train_loss and the fit keys
        train_top1_err, train_conf, fit_top1_err, fit_nll, fit_conf) come from the last epoch
        record. `ap.<class>` reads metrics["ap"][<class>]; `selected_on_test.<key>` reads the
        best epoch on test (selected_on_test); `ts.<key>` the metric after temperature scaling and
        `ts.temperature` the fitted T (temperature_scaled). A classification run's newest
        re-evaluation (evaluation) supersedes its final record. None when absent or null."""
        if key.startswith(SELECTED):
            return number((self.selected_on_test or {}).get(key[len(SELECTED):]))
        if key.startswith(SCALED):
            ts = self.temperature_scaled or {}
            key = key[len(SCALED):]
            return number(ts.get(key) if key == "temperature" else ts["metrics"].get(key) if ts else None)
        src = {}
        if self.evaluation is not None:
            src = self.evaluation["metrics"]
        elif self.complete:
            src = self.log.final.get("metrics") or {}
        base = "ap" if key.startswith("ap.") else key
        if base not in src and self.log.epochs:
            src = self.log.epochs[-1]
        if key.startswith("ap.") and "." not in key[3:]:
            src = src.get("ap") or {}
            key = key[3:]
        return number(src.get(key))


def number(val) -> float | None:
    """val as a float when it is a finite number (not a bool), else None."""
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
        return None
    return float(val)


def shown_path(path: Path) -> Path:
    """Paths in warnings: relative to the working directory when below it (stable output)."""
    try:
        return path.relative_to(Path.cwd()) if path.is_absolute() else path
    except ValueError:
        return path


def _n_lines(path: Path) -> int:
    with open(path, encoding="utf-8", errors="replace") as f:
        return sum(1 for _ in f)


def find_runs(roots=DEFAULT_ROOTS) -> tuple[list[Run], list[str]]:
    """All readable runs under the roots (sorted by path) and the warnings met on the way.

    Missing roots are skipped silently (no runs yet is normal). A leaf folder with no log.jsonl
    (an empty run folder) warns; a log.jsonl that cannot be opened or yields no meta record warns
    (via read_run_log, which also skips bad lines with a warning) and is skipped; the same run
    read twice (same run id and start time, e.g. a log copied from runs/ to reports/runs/) keeps
    the first copy and warns. Two different runs that share a run id are both kept when they
    are in different tables (a probe and a table run of the same model, method and seed) or at
    different scales in one table (a local 3-epoch run beside the committed 15-epoch one): each
    shows on its own line. Two runs of one table with one run id at the same scale (group_key)
    would count one seed twice: the first found is used (roots in order, so a local runs/ before
    the committed reports/runs/) and a warning names both.
    """
    runs, warnings, seen = [], [], {}
    for root in roots:
        root = shown_path(Path(root))
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            # hidden folders (.aside/: run folders moved out of the way by a restart) are not runs
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            d = Path(dirpath)
            if LOG_NAME in filenames:
                dirnames[:] = []  # a run folder's subfolders (checkpoints, ...) are not runs
                try:
                    log = read_run_log(d / LOG_NAME, strict=False)
                except OSError as e:  # a dangling link, no permission: one run lost, not all
                    warnings.append(f"{d / LOG_NAME}: unreadable ({e.strerror or e}); skipped")
                    continue
                warnings.extend(log.warnings)
                if log.meta is None:
                    warnings.append(f"{d / LOG_NAME}: skipped (no readable meta record)")
                    continue
                if not log.epochs and log.final is None:
                    failed = [r for r in log.extra if r.get("type") == "failed"]
                    why = (f"failed at epoch {failed[-1].get('epoch', '?')} ({failed[-1].get('reason', '?')}) "
                           f"before its first epoch record" if failed else "no epoch or final record yet")
                    warnings.append(f"{d / LOG_NAME}:1: {why}; skipped")
                    continue
                run = Run(log, root)
                try:  # reports build file names from them: a log must not point them elsewhere
                    check_name(run.run_id, "run_id")
                    check_name(run.table, "table")
                except ConfigError as e:
                    warnings.append(f"{d / LOG_NAME}:1: meta {e}; run skipped")
                    continue
                key = (run.run_id, run.meta.get("started"))
                if key in seen:
                    warnings.append(f"{d / LOG_NAME}:1: run {run.run_id!r} (started "
                                    f"{key[1]}) already read from {seen[key]}; this copy ignored")
                    continue
                seen[key] = d / LOG_NAME
                if not run.complete:
                    warnings.append(f"{d / LOG_NAME}:{_n_lines(d / LOG_NAME)}: no final record "
                                    f"(run in progress or killed); showing its last epoch "
                                    f"{run.last_epoch}, marked in progress")
                runs.append(run)
            elif not dirnames and d != root and not any(f.endswith(SELECTION_SUFFIX) for f in filenames):
                # (a folder holding only an alpha_T selection, e.g. its copy without the candidates' logs, is no run)
                warnings.append(f"{d / LOG_NAME}: missing (empty run folder); skipped")
    return _one_run_per_seed(runs, warnings)


def _one_run_per_seed(runs, warnings) -> tuple[list[Run], list[str]]:
    """Drop a run whose table, run id and group_key an earlier run already has (find_runs)."""
    kept, first = [], {}
    for run in runs:
        key = (run.table, run.run_id, group_key(run))
        if key in first:
            used = first[key]
            warnings.append(
                f"{run.path}:1: run {run.run_id!r} of table {run.table!r} (started "
                f"{run.meta.get('started')}) has the run id and scale of {used.path} (started "
                f"{used.meta.get('started')}); that one is used, this one is left out of tables "
                f"and figures (rename one with run_id=..., or pass --runs to choose)")
            continue
        first[key] = run
        kept.append(run)
    return kept, warnings


@dataclass
class Cell:
    """Measured value of one metric over a group of runs (one table cell)."""
    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values) -> "Cell":
        vals = np.array([v for v in values if v is not None], dtype=np.float64)
        if len(vals) == 0:
            return cls(None, None, 0)
        # Sample std (ddof=1) over seeds; undefined for one run.
        std = float(vals.std(ddof=1)) if len(vals) > 1 else None
        return cls(float(vals.mean()), std, len(vals))

    def minus(self, base: "Cell") -> tuple[float | None, float | None]:
        """(this mean - base's mean, its standard error sqrt(s^2/n + s_base^2/n_base), or None
        with one value on a side); (None, None) when either has no value."""
        if self.mean is None or base.mean is None:
            return None, None
        se = None
        if self.std is not None and base.std is not None:
            se = math.sqrt(self.std ** 2 / self.n + base.std ** 2 / base.n)
        return self.mean - base.mean, se


@dataclass
class Group:
    """Runs that share (row, method, dataset, epochs, eval split, model): seeds of one configuration.
    Runs at another scale make another group, so reduced-scale runs are never averaged with full
    ones (a Table 4 row is a dataset, so a smaller Transformer on it is another scale too)."""
    row: str
    method: str
    dataset: str
    epochs: int | None
    eval_split: str = "test"
    model: str = ""
    runs: list = field(default_factory=list)

    @property
    def used(self) -> list:
        """Complete runs; only when there are none, the runs in progress (marked)."""
        done = [r for r in self.runs if r.complete]
        return done or self.runs

    @property
    def in_progress(self) -> bool:
        return not any(r.complete for r in self.runs)

    @property
    def status(self) -> str:
        if not self.in_progress:
            extra = sum(not r.complete for r in self.runs)
            return "complete" + (f" (+{extra} in progress, not counted)" if extra else "")
        return "; ".join(r.status for r in self.runs)

    @property
    def scale(self) -> str:
        split = "" if self.eval_split == "test" else f", {self.eval_split} split"
        model = "" if self.model in ("", self.row) else f", {self.model}"
        patience = max((((r.meta.get("config") or {}).get("optim") or {}).get("patience") or 0
                        for r in self.runs), default=0)
        epochs = self.epochs if self.epochs is not None else "?"
        # early stopping (translation's optim.patience): epochs is the cap, not what was trained
        ep = f"early stop (patience {patience}), cap {epochs} ep" if patience else f"{epochs} ep"
        return f"{self.dataset}, {ep}{split}{model}"

    @property
    def run_ids(self) -> list:
        return [r.run_id for r in self.used]

    @property
    def commits(self) -> list:
        return sorted({r.commit for r in self.used})

    def cell(self, metric: str) -> Cell:
        return Cell.of(r.metric(metric) for r in self.used)


def group_key(run) -> tuple:
    """(row, method, dataset, epochs, eval split, model): what makes runs seeds of one
    configuration, the Group fields in order. Tables and figures both group by it."""
    return (run.row, run.method, run.dataset, run.total_epochs, run.eval_split, run.model)


def group_runs(runs) -> list[Group]:
    """Group runs by group_key, in order of first appearance."""
    groups: dict = {}
    for r in runs:
        key = group_key(r)
        if key not in groups:
            groups[key] = Group(*key)
        groups[key].runs.append(r)
    return list(groups.values())


def groups_by_row_scale(runs) -> dict:
    """{(table, row, scale): [Group, ...]}: the groups of group_runs, formed within each run's own
    table (meta "table") and collected per row and scale (Group.scale). One figure draws one such
    entry, so it never pools runs that a table keeps on separate lines (another scale, another
    table); its panels are the groups, one per method."""
    out: dict = {}
    for table in dict.fromkeys(r.table for r in runs):
        for g in group_runs([r for r in runs if r.table == table]):
            out.setdefault((table, g.row, g.scale), []).append(g)
    return out
