"""`make demo`: baseline, label smoothing and Self-KD on scikit-learn's bundled digits (offline,
real data), 3 seeds each, then Table 1 for the demo and one reliability diagram per run.

    python -m classification.demo [--seeds 0 1 2] [--out runs/demo]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from core.cli import description, entry_point
from core.config import ConfigError, load_config
from core.run import RunLock, check_name

from .train import TrainConfig, run_dir_of, train

CONFIG = Path(__file__).parent / "configs" / "demo_digits.yaml"


METHODS = ("baseline", "ls", "selfkd")  # registered in core.methods
DEMO_COMMAND = "python -m classification.demo"


def _remove_own_runs(out: Path, seeds) -> None:
    """The demo starts its runs afresh each time: it deletes the run folders it is about to write
    (<out>/<row>_<method>_s<seed>), and only those, and only when their log says the demo made
    them. Each is locked first (core.run.RunLock), so a run another demo is training is never
    touched: its lock makes this one stop with a one-line error before anything is deleted.
    Anything else under --out is left alone; a foreign folder in the way is an error."""
    from core.runlog import read_run_log
    locks = []
    try:
        for method in METHODS:
            for seed in seeds:
                cfg = load_config(TrainConfig, CONFIG, [f"method.name={method}", f"seed={seed}",
                                                        f"out_dir={out.parent}", f"table={out.name}"])
                run_dir = run_dir_of(cfg)
                if not run_dir.is_dir():
                    continue
                log = run_dir / "log.jsonl"
                meta = read_run_log(log).meta if log.is_file() else None
                if not (meta and str(meta.get("command", "")).startswith(DEMO_COMMAND)):
                    raise ConfigError(f"{run_dir} exists and is not a demo run; refusing to replace it "
                                      f"(choose another --out)")
                locks.append(RunLock(run_dir).acquire())  # (a foreign folder never gets a lock file)
        for lock in locks:  # only once every folder in the way is known to be the demo's, and held
            shutil.rmtree(lock.path.parent)
    finally:
        for lock in locks:
            lock.release()


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m classification.demo", description=description(__doc__))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/demo", help="run logs go to OUT/<run_id>/")
    p.add_argument("--report", default="reports/out/demo", help="table and diagrams go here")
    args = p.parse_args(argv)
    out = Path(args.out)
    check_name(out.name, "--out's last folder")
    _remove_own_runs(out, args.seeds)
    # One thread: the demo's numbers are then the same on every run of a machine (float sums in
    # another order change the last digits, and a tiny model is fastest on one thread anyway).
    import torch
    torch.set_num_threads(1)
    t0 = time.time()
    for method in METHODS:
        for seed in args.seeds:
            print(f"== {method}, seed {seed}", flush=True)
            cfg = load_config(TrainConfig, CONFIG, [f"method.name={method}", f"seed={seed}",
                                                    f"out_dir={out.parent}", f"table={out.name}",
                                                    "progress=false"])
            # another demo writing the same --out meets this one here: one line, nothing deleted
            train(cfg, command=f"{DEMO_COMMAND} --seeds {' '.join(map(str, args.seeds))}")
    from reports import render_demo
    table = render_demo(out, Path(args.report))
    print(f"\nTable 1 on digits ({len(args.seeds)} seeds per method, {time.time() - t0:.0f}s; "
          f"written to {args.report}/):\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
