"""Run the missing runs of a table, one after another, resumable (a killed launcher picks up where
it stopped: complete runs are skipped, a partial one resumes from its checkpoint).

    python -m classification.launch table1 [key=value ...] --seeds 0 1 2 [--rows resnet50] [--methods selfkd] [--dry-run]
    make train-table1 SEEDS="0 1 2" ARGS="data.root=/data/cifar100"
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from core.config import load_config, parse_with_overrides
from core.runlog import read_run_log

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("table", help="table1, table2 or fig2 (the prefix of the config files)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", nargs="*")
    p.add_argument("--methods", nargs="*")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.epilog = "key=value overrides (anywhere on the line) apply to every run, e.g. data.root=..."
    args = parse_with_overrides(p, argv)
    configs = table_configs(args.table, args.rows, args.methods)
    if not configs:
        print(f"error: no config matches {args.table} (rows={args.rows}, methods={args.methods}) in {CONFIGS}",
              file=sys.stderr)
        return 2
    todo = []
    for f in configs:
        for seed in args.seeds:
            ov = [f"seed={seed}", *args.overrides]
            cfg = load_config(TrainConfig, f, ov)
            log = run_dir_of(cfg) / "log.jsonl"
            done = log.exists() and read_run_log(log).complete
            rel = os.path.relpath(f)  # commands (and the logs' meta) stay free of this machine's paths
            cmd = [sys.executable, "-m", "classification.train", "--config", rel, *ov, "resume=true"]
            print(("done  " if done else "todo  ") + shlex.join(["python", *cmd[1:]]))
            if not done:
                todo.append(cmd)
    print(f"{len(todo)} of {len(configs) * len(args.seeds)} runs to do")
    if args.dry_run:
        return 0
    for i, cmd in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {shlex.join(cmd[1:])}", flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"error: run failed with exit code {rc}: {shlex.join(cmd[1:])}", file=sys.stderr)
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
