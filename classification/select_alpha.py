"""Choose alpha_T as the paper does (Sec. 3.1): hold out a random 10% of the training set, train
with each candidate alpha_T on the rest, pick the lowest top-1 error on the holdout.

    python -m classification.select_alpha --config classification/configs/table1_resnet50_selfkd.yaml \
        --alphas 0.1 0.3 0.5 0.7 0.9 [--holdout 0.1] [key=value ...]

Each candidate is an ordinary resumable run under runs/alpha_select/; the choice and every
candidate's holdout error are written to runs/alpha_select/<row>_s<seed>.selection.json. When
several candidates share the lowest holdout error, the smaller alpha_T wins (choose_alpha); the
run says so and the JSON records the tie ("tie": the tied candidates and the rule, else null).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli import description, entry_point
from core.config import ConfigError, load_config, parse_with_overrides
from core.runlog import now_iso, read_run_log

from .train import TrainConfig, train


TIE_RULE = "ties go to the smaller alpha_T"


def choose_alpha(errors: dict) -> tuple[float, list[float]]:
    """(the alpha_T with the lowest holdout error, the candidates tied at that error in increasing
    order: more than one means a tie, broken by TIE_RULE). errors: {alpha_T: top-1 error (%)}.
    Errors of the same holdout are multiples of 100/n: equal counts give equal floats."""
    lowest = min(errors.values())
    tied = sorted(a for a, e in errors.items() if e == lowest)
    return tied[0], tied


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
        cfg = load_config(TrainConfig, config, [*overrides, "method.name=selfkd", f"method.selfkd.alpha_T={a}",
                                                f"data.holdout_fraction={holdout}", "table=alpha_select",
                                                "resume=true", f"run_id={row}_a{a}_s{base.seed}"])
        run_dir = train(cfg)
        errors[a] = read_run_log(run_dir / "log.jsonl", strict=True).final["metrics"]["top1_err"]
    best, tied = choose_alpha(errors)
    tie = None
    if len(tied) > 1:
        tie = {"alphas": tied, "holdout_top1_err": errors[best], "rule": TIE_RULE}
        print(f"note: alpha_T {', '.join(str(a) for a in tied)} tie at the lowest holdout top-1 error "
              f"({errors[best]:.2f}%); {best} wins: {TIE_RULE} (the weaker self-distillation)")
    result = {"row": row, "seed": base.seed, "holdout_fraction": holdout, "metric": "top1_err",
              "holdout_top1_err": {str(a): e for a, e in errors.items()}, "alpha_T": best,
              "tie": tie, "config": config, "decided": now_iso()}
    out = Path(base.out_dir) / "alpha_select" / f"{row}_s{base.seed}.selection.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"alpha_T = {best} (holdout top-1 error {errors[best]:.2f}%"
          + (f", tied with {', '.join(str(a) for a in tied[1:])}" if tie else "") + f"); written to {out}")
    return result


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m classification.select_alpha", description=description(__doc__))
    p.add_argument("--config")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9])
    p.add_argument("--holdout", type=float, default=0.1)
    args = parse_with_overrides(p, argv)  # key=value overrides anywhere on the line
    select(args.config, args.alphas, args.holdout, args.overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
