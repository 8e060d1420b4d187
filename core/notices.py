"""What a run tells its user in words, shared by every task: what a CPU run will cost (measured on
the run's own first steps), DataLoader workers above the machine's cores, and where a finished run
is and what to run next. Pure functions that return the text; the tasks print it.
"""
from __future__ import annotations

import os
import time
import warnings

# A run on a CPU whose measured cost stays under this says nothing more: its epoch lines come soon.
QUIET_BELOW_S = 10 * 60
# Steps the estimate needs: the first step (index 0) is left out (allocations, warm-up), then steps
# until this many seconds have passed or MEASURE_STEPS steps were timed, whichever comes first.
MEASURE_S, MEASURE_STEPS = 10.0, 5
# The tables reports/ builds and the meta "table" values they read (reports.tables.TABLES);
# written here because core imports no reports code. A run in another table shows in figures only.
TABLE_RUNS = ("table1", "table2", "table3", "table4", "table5", "regime", "study_pilots")


def duration(seconds: float) -> str:
    """1.2 h, 35 min, 48 s, 3.1 d: the unit a reader plans with."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


class CpuCostEstimate:
    """Times a CPU run's first training steps and returns, once, what an epoch and the rest of the
    run will cost. Call step(i) after step i of the first epoch this invocation trains; it returns
    the notice (a str) once enough steps are timed, else None; None on a GPU and for a run whose
    whole remaining cost is under QUIET_BELOW_S."""

    def __init__(self, on_cpu: bool, steps_per_epoch: int, epochs_left: int, clock=time.perf_counter):
        self.active = on_cpu and steps_per_epoch > 1
        self.steps_per_epoch, self.epochs_left, self.clock = steps_per_epoch, epochs_left, clock
        self.t1 = None

    def step(self, i: int) -> str | None:
        if not self.active:
            return None
        now = self.clock()
        if i == 0:
            self.t1 = now  # the warm-up step ends here; timing starts
            return None
        timed = now - self.t1
        if timed < MEASURE_S and i < MEASURE_STEPS and i < self.steps_per_epoch - 1:
            return None
        self.active = False
        per_step = timed / i
        epoch_s = per_step * self.steps_per_epoch
        if epoch_s * self.epochs_left < QUIET_BELOW_S:
            return None
        return cpu_cost_notice(per_step, i, self.steps_per_epoch, self.epochs_left)


def cpu_cost_notice(per_step_s: float, timed_steps: int, steps_per_epoch: int, epochs_left: int) -> str:
    epoch_s = per_step_s * steps_per_epoch
    steps = "step 2" if timed_steps == 1 else f"steps 2-{timed_steps + 1}"
    return (f"running on CPU: one epoch ({steps_per_epoch} steps) will take about {duration(epoch_s)}, "
            f"the {epochs_left} epoch(s) left about {duration(epoch_s * epochs_left)} (measured here, "
            f"over training {steps} of this run: {per_step_s:.2f} s a step; "
            f"evaluation not included). docs/gpu_plan.md estimates the GPU-hours of each table "
            f"row; on a machine with a GPU, device=auto (the default) or device=cuda uses it")


def epoch_cost_notice(epoch_s: float, epoch: int, epochs_left: int, capped: bool = False) -> str | None:
    """What a CPU run's remaining epochs will cost, measured on the first epoch this invocation
    trained (a task whose training loop is not ours to time step by step: translation's
    fairseq-train); None when that stays under QUIET_BELOW_S. capped: the run may stop early
    (early stopping), so the epochs left are a cap."""
    if epochs_left < 1 or epoch_s * epochs_left < QUIET_BELOW_S:
        return None
    bound = "at most " if capped else ""
    return (f"running on CPU: epoch {epoch} took {duration(epoch_s)} of training (measured here); the "
            f"{epochs_left} epoch(s) left {bound}about {duration(epoch_s * epochs_left)} (evaluation not "
            f"included). docs/gpu_plan.md estimates the GPU-hours of each table row; on a machine "
            f"with a GPU, device=auto (the default) or device=cuda uses it")


def worker_notice(num_workers: int, cores: int | None = None) -> str | None:
    """A warning in our words when DataLoader workers outnumber the machine's cores (they then
    share the cores and the epoch gets slower, not faster), else None. Silences PyTorch's own
    warning about the same thing, so the user reads it once."""
    cores = cores if cores is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                             else os.cpu_count() or 1)
    if num_workers <= cores:
        return None
    warnings.filterwarnings("ignore", message=r"This DataLoader will create \d+ worker processes")
    return (f"warning: data.num_workers={num_workers} is more than the {cores} CPU core(s) this process "
            f"may use: the workers share them, which is slower, not faster; data.num_workers={cores} "
            f"or fewer here (0 loads in the main process)")


def next_steps(run_dir, table: str, out_dir: str, complete: bool = True) -> str:
    """Where a run is and what to run next: `make tables` / `make figures` for a run that a table
    reads, the reports command with --runs when the run is outside the default roots, figures
    only for a run in no table (scratch), --resume for a run stopped before its last epoch."""
    if not complete:
        return (f"run folder: {run_dir} (stopped before its last epoch; the same command with "
                f"--resume continues it)")
    # reports read runs/ and reports/runs/ (and every folder below them) unless told otherwise
    default_root = any(os.path.normpath(out_dir) == r or os.path.normpath(out_dir).startswith(r + os.sep)
                       for r in ("runs", os.path.join("reports", "runs")))
    runs = "" if default_root else f" --runs {out_dir}"
    if table == "demo":
        nxt = f"python -m reports demo {os.path.join(out_dir, table)} reports/out/demo (make demo runs all nine)"
    elif table == "study":  # the "which method" study has a report of its own (reports/study.py)
        nxt = ("make tables (reports/out/study.md)" if default_root else f"python -m reports study{runs}")
    elif table in TABLE_RUNS:
        nxt = ("make tables (reports/out/table*.md), make figures" if default_root else
               f"python -m reports tables{runs}, python -m reports figures{runs}")
    else:
        nxt = (f"python -m reports figures{runs} (table {table!r} feeds no paper table; "
               f"name one with table=table1 ... to put a run there)")
    return f"run folder: {run_dir}\nnext: {nxt}"
