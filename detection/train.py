"""Fine-tune Faster R-CNN on VOC with a backbone trained by classification/ (Sec. 3.3, Tables 3
and 5): the backbone is the only thing Self-KD touched; detection training itself is plain.

    python -m detection.train --config detection/configs/resnet152_selfkd.yaml [key=value ...]
    python -m detection.train --config detection/configs/synthetic_learnability.yaml   # CPU check

Reads top to bottom: config -> VOC data -> C4 Faster R-CNN with the backbone checkpoint's weights
-> epochs (SGD, lr x0.1 after `optim.milestones`) -> VOC07 mAP -> JSONL run log + checkpoint.
The run folder, its lock, the resume policy and the run-log format are the ones every task uses
(core.run, core.runlog); a killed run continues with resume=true and ends bit for bit where the
uninterrupted run ends (CPU, same thread count).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from core.checkpoint import epoch_seed, load_checkpoint, save_checkpoint, seed_everything
from core.config import ConfigError, load_config, parse_with_overrides, to_dict, to_yaml
from core.dist import Dist
from core.cli import RESUME_FLAG, entry_point
from core.notices import CpuCostEstimate, next_steps, worker_notice
from core.run import TrainingDiverged, log_complete, owned_run, record_failure, record_resume
from core.runlog import RunLogWriter, git_info, now_iso
from core.sampler import EpochSampler
from core.schedules import step_lr
from core.tensorboard import TensorBoardMirror

from .config import RENAMED_KEYS, TrainConfig, row_of, run_dir_of, validate
from .engine import (build_data, build_model, epoch_data, evaluate, evaluation_subset,
                     param_groups, train_epoch)
from .voc import FlippedCopies, collate_detection


def train(cfg, command: str = "") -> Path:
    # -- config: every bad input is one line, before any file is written
    validate(cfg)
    d = Dist(cfg.device)
    if d.world > 1:
        raise ConfigError("detection.train runs in one process (batch 1, as the paper); drop torchrun")
    run_dir = run_dir_of(cfg)
    ckpt_path = run_dir / "checkpoint.pt"
    data = build_data(cfg)  # parses every annotation: a bad VOC file fails here, before any write

    # -- the run folder (core.run): fresh, resume or complete; locked; nothing deleted
    with owned_run(run_dir, to_dict(cfg), cfg.resume, ckpt_path, cfg.resume_changed, RENAMED_KEYS) as start:
        if start.state == "complete":
            print(f"{run_dir}: already complete, nothing to do")
            return run_dir
        return _run(cfg, d, run_dir, data, start.state == "resume", start.changes, command)


def _run(cfg, d: Dist, run_dir: Path, data, resumed: bool, changes, command: str) -> Path:
    ckpt_path, log = run_dir / "checkpoint.pt", RunLogWriter(run_dir / "log.jsonl")
    # -- data and model
    seed_everything(cfg.seed)
    train_set, test_set = data
    train_data = epoch_data(cfg, train_set)  # data.flip=copy: each image twice per epoch
    test_data = evaluation_subset(cfg, test_set)
    model, load_report = build_model(cfg, train_set.num_classes)
    model.to(d.device)
    o = cfg.optim
    opt = torch.optim.SGD(param_groups(model, o.weight_decay, o.bias_decay, o.bias_lr_mult), lr=o.lr,
                          momentum=o.momentum)

    # -- resume, or the meta header
    start_epoch, wall_before = 1, 0.0
    if resumed:
        state = load_checkpoint(ckpt_path, map_location=d.device)
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        except (KeyError, ValueError, RuntimeError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ConfigError(f"checkpoint {ckpt_path} does not fit this model ({first})") from None
        start_epoch, wall_before = state["epoch"] + 1, state["wall_s"]
        record_resume(log, run_dir, state["epoch"], cfg.epochs, changes, to_yaml(cfg), command, state.get("log"))
    else:
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
        sha, dirty = git_info()
        log.meta(run_id=run_dir.name, task="detection", method=cfg.method.name,
                 model=load_report["backbone"], dataset=cfg.data.name, seed=cfg.seed,
                 config=to_dict(cfg), git_commit=sha, git_dirty=dirty, torch=torch.__version__,
                 device=str(d.device), started=now_iso(), table=cfg.table, row=row_of(cfg),
                 epochs=cfg.epochs, alpha_T=0.0, alpha_kind="linear", command=command,
                 threads=torch.get_num_threads(), test_images=len(test_data),
                 train_images=len(train_data.dataset if isinstance(train_data, FlippedCopies) else train_data),
                 epoch_samples=len(train_data),  # twice train_images with data.flip=copy
                 backbone_checkpoint=cfg.model.backbone_checkpoint,
                 **{k: v for k, v in load_report.items() if k != "backbone"})
    if cfg.tensorboard:
        log.mirrors.append(TensorBoardMirror(run_dir / "tensorboard", start_epoch))

    # -- epochs: one pass each, lr per epoch, mAP when asked, a checkpoint at each end
    t_start = time.time()
    last = cfg.epochs if cfg.stop_after_epochs <= 0 else min(cfg.epochs, start_epoch + cfg.stop_after_epochs - 1)
    workers = worker_notice(cfg.data.num_workers)
    if workers:  # before the first DataLoader, which would warn in PyTorch's words
        print(workers, file=sys.stderr)
    for epoch in range(start_epoch, last + 1):
        t0 = time.time()
        seed_everything(epoch_seed(cfg.seed, epoch))
        train_set.set_epoch(epoch)  # flips: detection.voc.flip_decision(seed, epoch, index)
        loader = DataLoader(train_data, batch_size=cfg.optim.batch_size, collate_fn=collate_detection,
                            sampler=EpochSampler(len(train_data), cfg.seed, epoch),
                            num_workers=cfg.data.num_workers)
        lr = step_lr(epoch, cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma)
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)  # (checkpoints written before lr_mult: 1)
        try:
            estimate = (CpuCostEstimate(d.device.type == "cpu", len(loader), last - epoch + 1)
                        if epoch == start_epoch else None)  # the first epoch of this invocation
            train_loss = train_epoch(cfg, model, opt, loader, d.device, epoch, cfg.progress, estimate)
        except TrainingDiverged as e:
            raise record_failure(log, epoch, e) from None
        rec = {"epoch": epoch, "alpha": 0.0, "lr": lr, "train_loss": train_loss}
        if cfg.eval_every > 0 and epoch % cfg.eval_every == 0 and epoch != cfg.epochs:
            rec["map"] = evaluate(model, test_data, d.device, cfg.use_07_metric, cfg.progress).to_log()["map"]
        rec["epoch_s"] = time.time() - t0
        log.epoch(**rec)
        print(f"epoch {epoch:>3}/{cfg.epochs}  lr {lr:.4g}  loss {train_loss:.4f}"
              + (f"  mAP {rec['map']:.2f}" if "map" in rec else "") + f"  ({rec['epoch_s']:.1f}s)", flush=True)
        save_checkpoint(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                                    "wall_s": wall_before + time.time() - t_start, "config": to_dict(cfg),
                                    "log": log.records()})

    # -- the final record: VOC07 AP per class and mAP on the test split
    if last == cfg.epochs:
        result = evaluate(model, test_data, d.device, cfg.use_07_metric, cfg.progress).to_log()
        log.final(metrics=result, reliability=None, wall_s=wall_before + time.time() - t_start)
        print(f"{run_dir.name}: mAP {result['map']:.2f} on {len(test_data)} test images "
              f"({'VOC07 11-point' if cfg.use_07_metric else 'area'} AP, IoU > 0.5)")
    return run_dir


@entry_point(rerun=RESUME_FLAG)
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m detection.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="key=value overrides anywhere on the line, e.g. data.root=/data/VOCdevkit seed=1")
    p.add_argument("--config", help="YAML file (detection/configs/...)")
    p.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    args = parse_with_overrides(p, argv)
    overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
    command = "python -m detection.train " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    cfg = load_config(TrainConfig, args.config, overrides)
    run_dir = train(cfg, command)
    print(next_steps(run_dir, cfg.table, cfg.out_dir, log_complete(run_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
