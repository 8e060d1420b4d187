"""Evaluate a detection run's checkpoint on a VOC split: per-class AP and mAP at IoU > 0.5.

    python -m detection.evaluate runs/table3/resnet152_selfkd_s0 [data.test=2007:test] [use_07_metric=false]

The run folder's config.yaml gives the model and data; key=value overrides change them (e.g.
data.root for data moved elsewhere). It scores the images the run's own evaluation scored (the
first data.test_subset when set). Prints one line per class, the mAP and the D-ECE of the scores
(detection.voc_eval); --json writes them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.checkpoint import load_checkpoint
from core.cli import description, entry_point
from core.config import ConfigError, load_config, parse_with_overrides

from .config import TrainConfig
from .engine import build_data, build_model, evaluate, evaluation_subset


def evaluate_run(run_dir: str | Path, overrides=()) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoint.pt").is_file():
        raise ConfigError(f"{run_dir} is not a detection run folder (needs config.yaml and checkpoint.pt)")
    cfg = load_config(TrainConfig, run_dir / "config.yaml", overrides)
    _, test_set = build_data(cfg)
    test = evaluation_subset(cfg, test_set)  # the images the run's own evaluation scored
    model, _ = build_model(cfg, test_set.num_classes)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise ConfigError(f"{run_dir / 'checkpoint.pt'} does not fit the run's model ({str(e).splitlines()[0]})") from None
    import torch
    return evaluate(model, test, torch.device("cpu"), cfg.use_07_metric, cfg.progress).to_log()


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m detection.evaluate", description=description(__doc__))
    p.add_argument("run_dir")
    p.add_argument("--json", help="also write the result here")
    args = parse_with_overrides(p, argv)
    result = evaluate_run(args.run_dir, args.overrides)
    for cls, ap in result["ap"].items():
        print(f"{cls:<12} {'-' if ap is None else f'{ap:6.2f}'}")
    print(f"{'mAP':<12} {result['map']:6.2f}")
    print(f"{'D-ECE (%)':<12} {'-' if result.get('dece') is None else format(result['dece'], '6.2f')}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
