"""Run the missing runs of a table, one after another, resumable (a killed launcher picks up where
it stopped: complete runs are skipped, a partial one resumes from its checkpoint).

    python -m classification.launch table1 [key=value ...] --seeds 0 1 2 [--rows resnet50] [--methods selfkd] [--dry-run]
    make train-table1 SEEDS="0 1 2" ARGS="data.root=/data/cifar100"

More processes per run (classification.cluster): --nproc-per-node G runs each run under torchrun
with G processes (one per GPU); --nnodes N --rdzv-endpoint HOST:PORT prints (and runs) the torchrun
line for N nodes, the same line on every node. --slurm DIR writes a Slurm job array with one task
per missing run (DIR/<table>.sbatch, DIR/runs.txt) and submits it with sbatch (--dry-run: writes
the files, submits nothing); --slurm-opt=partition=gpu adds an sbatch option. docs/cluster.md has
the walk-through.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from core.cli import RERUN_RESUMES, entry_point
from core.config import ConfigError, load_config, parse_with_overrides
from core.runlog import read_run_log

from .cluster import SlurmJob, check_counts, slurm_array, slurm_options, torchrun_args, write_slurm_job
from .methods import method_class
from .train import TrainConfig, run_dir_of

CONFIGS = Path(__file__).parent / "configs"


def table_configs(table: str, rows=None, methods=None) -> list[Path]:
    """The row configs of a table: configs/<table>_<row>_<method>.yaml."""
    out = []
    for f in sorted(CONFIGS.glob(f"{table}_*.yaml")):
        cfg = load_config(TrainConfig, f)
        if rows and (cfg.row or cfg.model) not in rows:
            continue
        if methods and cfg.method.name not in methods:
            continue
        out.append(f)
    return out


@entry_point(rerun=RERUN_RESUMES)
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m classification.launch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", help="table1, table2 or fig2 (the prefix of the config files)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", nargs="*")
    p.add_argument("--methods", nargs="*")
    p.add_argument("--dry-run", action="store_true",
                   help="print the commands (with --slurm: write the job files), run or submit nothing")
    p.add_argument("--nnodes", type=int, default=1, help="nodes per run (torchrun, c10d rendezvous)")
    p.add_argument("--nproc-per-node", type=int, default=1, help="processes per node, one per GPU")
    p.add_argument("--rdzv-endpoint", help="HOST:PORT on the first node, reachable from all (--nnodes > 1)")
    p.add_argument("--slurm", metavar="DIR", help="write a Slurm job array of the missing runs to DIR and submit it")
    p.add_argument("--slurm-opt", action="append", metavar="KEY=VALUE",
                   help="an sbatch option for the job file, joined by '=' (a bare KEY=VALUE is a config "
                        "override): --slurm-opt=partition=gpu --slurm-opt=time=24:00:00")
    p.add_argument("--max-parallel", type=int, default=0, help="Slurm: at most this many array tasks at once")
    p.epilog = "key=value overrides (anywhere on the line) apply to every run, e.g. data.root=..."
    args = parse_with_overrides(p, argv)
    check_counts(args.nnodes, args.nproc_per_node)
    if not args.slurm:  # under Slurm the job file finds the rendezvous (the allocation's first node)
        torchrun_args(args.nnodes, args.nproc_per_node, args.rdzv_endpoint, "check")
    slurm_opts = slurm_options(args.slurm_opt)
    if args.slurm and not args.dry_run and not shutil.which("sbatch"):
        raise ConfigError("--slurm: sbatch is not on PATH here (not a Slurm login node?); "
                          "add --dry-run to write the job files only")
    configs = table_configs(args.table, args.rows, args.methods)
    if not configs:
        raise ConfigError(f"no config matches {args.table} (rows={args.rows}, methods={args.methods}) in {CONFIGS}")
    todo, todo_args = [], []
    for f in configs:
        for seed in args.seeds:
            ov = [f"seed={seed}", *args.overrides]
            cfg = load_config(TrainConfig, f, ov)
            if method_class(cfg.method.name).single_process and args.nnodes * args.nproc_per_node > 1:
                raise ConfigError(f"{os.path.relpath(f)}: method {cfg.method.name} runs in one process; launch its "
                                  "runs without --nnodes / --nproc-per-node (select the others with --methods)")
            run_dir = run_dir_of(cfg)
            log = run_dir / "log.jsonl"
            done = log.exists() and read_run_log(log).complete
            rel = os.path.relpath(f)  # commands (and the logs' meta) stay free of this machine's paths
            train_args = ["--config", rel, *ov, "resume=true"]
            # one rendezvous id per run (its table and run id), so two runs never meet
            dist = [] if args.slurm else torchrun_args(args.nnodes, args.nproc_per_node, args.rdzv_endpoint,
                                                       f"{run_dir.parent.name}-{run_dir.name}")
            cmd = ([sys.executable, "-m", "torch.distributed.run", *dist] if dist else [sys.executable]) + [
                "-m", "classification.train", *train_args]
            shown = (["torchrun", *dist] if dist else ["python"]) + ["-m", "classification.train", *train_args]
            print(("done  " if done else "todo  ") + shlex.join(shown))
            if not done:
                todo.append(cmd)
                todo_args.append(train_args)
    print(f"{len(todo)} of {len(configs) * len(args.seeds)} runs to do")
    if args.nnodes > 1 and not args.slurm:
        print(f"multi-node: run each todo line on all {args.nnodes} nodes at the same time (or this "
              "launcher, with the same arguments, on every node); the rendezvous assigns node ranks")
    if args.slurm:
        return _slurm(args, todo_args, slurm_opts)
    if args.dry_run:
        return 0
    for i, cmd in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {shlex.join(cmd[1:])}", flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"error: run failed with exit code {rc}: {shlex.join(cmd[1:])}", file=sys.stderr)
            return rc
    return 0


def _slurm(args, todo_args: list[list[str]], options: dict) -> int:
    """Write the job array of the missing runs; submit it unless --dry-run."""
    if not todo_args:
        print("nothing to submit: every run is complete")
        return 0
    job_dir = Path(args.slurm).absolute()
    job = SlurmJob(sys.executable, job_dir, args.nnodes, args.nproc_per_node, options, args.max_parallel)
    script = slurm_array(args.table, todo_args, Path.cwd(), job)
    sbatch = write_slurm_job(job_dir, args.table, script, todo_args)
    print(f"wrote {sbatch} ({len(todo_args)} array tasks) and {job_dir / 'runs.txt'}")
    if args.dry_run:
        print(f"submit with: sbatch {shlex.quote(str(sbatch))}")
        return 0
    return subprocess.call(["sbatch", str(sbatch)])


if __name__ == "__main__":
    sys.exit(main())
