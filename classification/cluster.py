"""Commands and job files for more than one process: the `torchrun` line of a run on N nodes x G
GPUs (c10d rendezvous: the same line on every node, node ranks assigned at the rendezvous) and a
Slurm job array that runs a whole table, one array task per run. classification.launch uses both.

Every run is started with resume=true, so a task that Slurm requeues after a preemption (or that a
user resubmits) continues from the run's last checkpoint (saved atomically after every epoch), and
a task whose run is complete exits at once.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ConfigError

# Slurm's own options that the job file sets from --nnodes / --nproc-per-node and the array.
_OWN = {"array", "nodes", "ntasks-per-node", "gpus-per-node", "requeue", "open-mode", "output", "job-name"}


def check_counts(nnodes: int, nproc: int) -> None:
    if nnodes < 1 or nproc < 1:
        raise ConfigError(f"--nnodes and --nproc-per-node must be >= 1, got {nnodes} and {nproc}")


def torchrun_args(nnodes: int, nproc: int, endpoint: str | None, rdzv_id: str) -> list[str]:
    """The torchrun options for nnodes x nproc processes; [] for one process (plain python).
    One node: --standalone (a local rendezvous). More: c10d at endpoint (HOST:PORT, a port on the
    first node that every node can reach); rdzv_id names the run so two runs never meet."""
    check_counts(nnodes, nproc)
    if nnodes == 1:
        return [] if nproc == 1 else ["--standalone", f"--nproc-per-node={nproc}"]
    if not endpoint:
        raise ConfigError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT (an address of the first "
                          "node and a free port, reachable from every node)")
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--rdzv-endpoint must be HOST:PORT, got {endpoint!r}")
    return [f"--nnodes={nnodes}", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}", f"--rdzv-id={rdzv_id}"]


def slurm_options(pairs) -> dict[str, str]:
    """KEY=VALUE strings (e.g. partition=gpu time=24:00:00) -> {key: value}; a key the job file
    sets itself, or one without '=', is an error."""
    out = {}
    for p in pairs or ():
        key, eq, value = p.partition("=")
        key = key.strip().lstrip("-")
        if not eq or not key or not value:
            raise ConfigError(f"--slurm-opt takes KEY=VALUE (an sbatch option without its dashes, "
                              f"e.g. --slurm-opt=partition=gpu), got {p!r}")
        if key in _OWN:
            raise ConfigError(f"--slurm-opt {key}=... is set by the launcher (from --nnodes, "
                              "--nproc-per-node and the table); leave it out")
        out[key] = value
    return out


@dataclass(frozen=True)
class SlurmJob:
    """How each array task runs: the python that starts classification.train, nnodes x nproc
    processes, extra sbatch options (slurm_options), where the task logs go (job_dir) and how many
    tasks may run at once (0: no limit)."""
    python: str
    job_dir: Path
    nnodes: int = 1
    nproc: int = 1
    options: dict = field(default_factory=dict)
    max_parallel: int = 0


def slurm_array(table: str, runs: list[list[str]], workdir: Path, job: SlurmJob) -> str:
    """The sbatch script of a job array with one task per run. runs: each run's
    classification.train arguments (after `-m classification.train`); workdir: where the
    commands run (their relative paths are relative to it)."""
    python, nnodes, nproc, job_dir, max_parallel = job.python, job.nnodes, job.nproc, job.job_dir, job.max_parallel
    if not runs:
        raise ValueError("a job array needs at least one run")
    throttle = f"%{max_parallel}" if max_parallel > 0 else ""
    head = [
        "#!/bin/bash",
        f"#SBATCH --job-name=selfkd-{table}",
        f"#SBATCH --array=0-{len(runs) - 1}{throttle}",
        f"#SBATCH --nodes={nnodes}",
        "#SBATCH --ntasks-per-node=1",  # one torchrun agent per node; it starts the GPU processes
        f"#SBATCH --gpus-per-node={nproc}",  # one process per GPU
        # a preempted task goes back to the queue and its run resumes from its last checkpoint
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={job_dir / 'logs'}/%A_%a.out",
        *(f"#SBATCH --{k}={v}" for k, v in job.options.items()),
    ]
    cases = [f"  {i}) ARGS=({shlex.join(r)}) ;;" for i, r in enumerate(runs)]
    if nnodes == 1 and nproc == 1:
        launch = f'srun {shlex.quote(python)} -m classification.train "${{ARGS[@]}}"'
    else:
        # the first node of the allocation hosts the rendezvous; the port differs per job so two
        # array tasks that share a first node do not collide
        launch = "\n".join([
            'HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            "PORT=$((20000 + SLURM_JOB_ID % 20000))",
            f"srun --kill-on-bad-exit=1 {shlex.quote(python)} -m torch.distributed.run "
            f'--nnodes="$SLURM_JOB_NUM_NODES" --nproc-per-node={nproc} --rdzv-backend=c10d '
            '--rdzv-endpoint="$HEAD:$PORT" --rdzv-id="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" '
            '-m classification.train "${ARGS[@]}"'])
    body = [
        "",
        f"# {table}: {len(runs)} runs, one array task each ({nnodes} node(s) x {nproc} process(es)).",
        f"# Submit: sbatch {shlex.quote(str(job_dir / (table + '.sbatch')))}   (runs.txt maps task ids to runs)",
        "# Every run has resume=true: a requeued or resubmitted task continues from its checkpoint,",
        "# a complete run exits at once.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(workdir))}",
        'case "$SLURM_ARRAY_TASK_ID" in',
        *cases,
        '  *) echo "error: no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
        "esac",
        launch,
        "",
    ]
    return "\n".join(head + body)


def write_slurm_job(job_dir: Path, table: str, script: str, runs: list[list[str]]) -> Path:
    """Write <job_dir>/<table>.sbatch, <job_dir>/runs.txt (array task id -> command) and the
    logs/ folder Slurm writes the task output to; return the sbatch file."""
    (job_dir / "logs").mkdir(parents=True, exist_ok=True)
    sbatch = job_dir / f"{table}.sbatch"
    sbatch.write_text(script, encoding="utf-8")
    sbatch.chmod(0o755)
    (job_dir / "runs.txt").write_text(
        "".join(f"{i}\tpython -m classification.train {shlex.join(r)}\n" for i, r in enumerate(runs)),
        encoding="utf-8")
    return sbatch
