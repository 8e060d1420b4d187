"""Choose alpha_T as the paper does (Sec. 3.1): hold out a random 10% of the training set, train
with each candidate alpha_T on the rest, pick the lowest top-1 error on the holdout.

    python -m classification.select_alpha --config classification/configs/table1_resnet50_selfkd.yaml \
        --alphas 0.1 0.3 0.5 0.7 0.9 [--holdout 0.1] [key=value ...]

Each candidate is an ordinary resumable run under runs/alpha_select/; the choice and every
candidate's holdout error are written to runs/alpha_select/<row>_s<seed>.selection.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.config import ConfigError, load_config, parse_with_overrides
from core.runlog import now_iso, read_run_log

from .train import TrainConfig, train


def select(config: str | None, alphas, holdout: float, overrides=()) -> dict:
    if not 0.0 < holdout < 1.0:
        raise ConfigError(f"holdout fraction must be in (0, 1), got {holdout}")
    if not alphas:
        raise ConfigError("give at least one alpha_T candidate")
    for a in alphas:
        if not 0.0 <= a <= 1.0:
            raise ConfigError(f"alpha_T candidate must be in [0, 1], got {a}")
    base = load_config(TrainConfig, config, overrides)
    row, errors = base.row or base.model, {}
    for a in alphas:
        cfg = load_config(TrainConfig, config, [*overrides, "method.name=selfkd", f"method.alpha_T={a}",
                                                f"data.holdout_fraction={holdout}", "table=alpha_select",
                                                "resume=true", f"run_id={row}_a{a}_s{base.seed}"])
        run_dir = train(cfg)
        errors[a] = read_run_log(run_dir / "log.jsonl", strict=True).final["metrics"]["top1_err"]
    best = min(alphas, key=lambda a: (errors[a], a))  # ties: the smaller alpha_T
    result = {"row": row, "seed": base.seed, "holdout_fraction": holdout, "metric": "top1_err",
              "holdout_top1_err": {str(a): e for a, e in errors.items()}, "alpha_T": best,
              "config": config, "decided": now_iso()}
    out = Path(base.out_dir) / "alpha_select" / f"{row}_s{base.seed}.selection.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"alpha_T = {best} (holdout top-1 error {errors[best]:.2f}%); written to {out}")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9])
    p.add_argument("--holdout", type=float, default=0.1)
    args = parse_with_overrides(p, argv)  # key=value overrides anywhere on the line
    try:
        select(args.config, args.alphas, args.holdout, args.overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
