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

from core.config import load_config

from .train import TrainConfig, train

CONFIG = Path(__file__).parent / "configs" / "demo_digits.yaml"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/demo", help="run logs go to OUT/<run_id>/")
    p.add_argument("--report", default="reports/out/demo", help="table and diagrams go here")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():  # the demo's own runs only: start it fresh each time
        shutil.rmtree(out)
    t0 = time.time()
    for method in ("baseline", "ls", "selfkd"):
        for seed in args.seeds:
            print(f"== {method}, seed {seed}", flush=True)
            cfg = load_config(TrainConfig, CONFIG, [f"method.name={method}", f"seed={seed}",
                                                    f"out_dir={out.parent}", f"table={out.name}",
                                                    "progress=false"])
            train(cfg, command=f"python -m classification.demo --seeds {' '.join(map(str, args.seeds))}")
    from reports import render_demo
    table = render_demo(out, Path(args.report))
    print(f"\nTable 1 on digits ({len(args.seeds)} seeds per method, {time.time() - t0:.0f}s; "
          f"written to {args.report}/):\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
