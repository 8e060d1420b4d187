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
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, seed_everything
from core.config import ConfigError, load_config, parse_with_overrides, to_dict, to_yaml
from core.dist import Dist, check_device
from core.methods import method_names
from core.run import (TrainingDiverged, check_out_dir, owned_run, record_failure, record_resume, run_dir_for,
                      storage_error)
from core.runlog import RunLogWriter, git_info, now_iso
from core.sampler import EpochSampler
from core.schedules import step_lr
from core.tensorboard import TensorBoardMirror

from .backbone import BackboneCheckpointError, read_classification_checkpoint
from .model import backbone_normalization, build_faster_rcnn, faster_rcnn_from_checkpoint
from .voc import VOC_CLASSES, FlippedCopies, VOCDetection, VOCFormatError, collate_detection
from .voc_eval import VOCEvaluator, devkit_detections

BACKBONE_METHODS = method_names("detection")  # how the backbone was pre-trained (Table 3 rows)
FLIP_MODES = ("random", "copy")  # data.flip


@dataclass
class DataConfig:
    name: str = "voc07+12"  # the label reports group runs by
    root: str = "data/VOCdevkit"  # a VOCdevkit folder (or the folder holding one)
    train: str = "2007:trainval+2012:trainval"  # year:split lists, concatenated (Sec. 3.3)
    test: str = "2007:test"
    classes: List[str] = field(default_factory=lambda: list(VOC_CLASSES))
    # Horizontal flips in training. random: each image flipped with probability flip_prob, drawn
    # per (seed, epoch, image), an epoch is one pass over the images. copy: each image once as is
    # and once mirrored per epoch, shuffled (voc.FlippedCopies; py-faster-rcnn's and
    # faster-rcnn.pytorch's TRAIN.USE_FLIPPED), an epoch twice as long: 33,102 iterations on
    # VOC07+12 at batch 1 instead of 16,551; flip_prob is then unused.
    flip: str = "random"
    flip_prob: float = 0.5
    train_subset: int = 0  # >0: the first n training images (smoke runs, tests)
    test_subset: int = 0
    num_workers: int = 2


@dataclass
class ModelConfig:
    # A checkpoint written by classification/ (runs/table2/<row>_<method>_s0/checkpoint.pt for
    # the paper's ImageNet ResNet-152). Empty: `backbone` built untrained (learnability checks).
    backbone_checkpoint: str = ""
    backbone: str = ""  # model name; default: the one the checkpoint's config names
    backbone_classes: int = 0  # the class count the checkpoint's head must have; 0: as it records
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    min_size: int = 600  # shorter image side (Faster R-CNN / py-faster-rcnn)
    max_size: int = 1000
    anchor_sizes: List[int] = field(default_factory=lambda: [128, 256, 512])
    trainable_stages: int = 3  # ResNet stages fine-tuned (stem and stage 1 frozen, as py-faster-rcnn)
    frozen_bn: bool = True  # BatchNorm frozen: batch 1 (the paper) has no batch statistics
    # RoIAlign on the trunk's stride-16 map: output side and samples per bin (0: adaptive, as
    # torchvision.ops.roi_align). 14 / 2: torchvision's and detectron2's C4 (the last stage halves
    # it to 7x7); 7 / 0: faster-rcnn.pytorch's ResNet setting (cfgs/res101.yml POOLING_MODE align,
    # POOLING_SIZE 7; its ROIAlign's sampling_ratio 0), the last stage then sees 7x7 -> 4x4.
    roi_output_size: int = 14
    roi_sampling_ratio: int = 2


@dataclass
class OptimConfig:
    # Appendix C: batch 1, lr 1e-3, x0.1 after epoch 5 of 10. Momentum 0.9 and weight decay 1e-4
    # (the paper gives none; torchvision's detection reference recipe).
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # Biases: with bias_decay false they get no weight decay (faster-rcnn.pytorch's
    # TRAIN.BIAS_DECAY = False; py-faster-rcnn's decay_mult 0), and their lr is lr x bias_lr_mult
    # (faster-rcnn.pytorch's DOUBLE_BIAS: 2 by default, 1 in its ResNet cfgs/res101.yml;
    # py-faster-rcnn's lr_mult 2). BatchNorm's affine terms are buffers under frozen_bn.
    bias_decay: bool = True
    bias_lr_mult: float = 1.0
    milestones: List[int] = field(default_factory=lambda: [5])  # lr x0.1 from epoch 6 on
    gamma: float = 0.1
    batch_size: int = 1


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: str = "baseline"  # the backbone's pre-training method: baseline | ls | selfkd
    epochs: int = 10
    eval_every: int = 0  # >0: VOC07 mAP every n epochs in the epoch lines (learning curves)
    use_07_metric: bool = True  # VOC2007 11-point AP (the paper's); false: area under the curve
    seed: int = 0
    device: str = "auto"
    out_dir: str = "runs"
    table: str = "table3"
    row: str = ""  # default: the backbone's model name
    run_id: str = ""  # default: <row>_<method>_s<seed>
    resume: bool = False
    resume_changed: str = "refuse"
    stop_after_epochs: int = 0
    progress: bool = True
    tensorboard: bool = False  # also mirror the epoch lines to <run_dir>/tensorboard/ (core.tensorboard)


def validate(cfg) -> None:
    """Every check that can fail on bad input, before anything is written."""
    if cfg.method not in BACKBONE_METHODS:
        raise ConfigError(f"unknown method {cfg.method!r} (the backbone's pre-training); expected one of "
                          f"{', '.join(BACKBONE_METHODS)}")
    if cfg.epochs < 1 or cfg.optim.batch_size < 1 or cfg.optim.lr <= 0:
        raise ConfigError(f"epochs, optim.batch_size and optim.lr must be positive, got {cfg.epochs}, "
                          f"{cfg.optim.batch_size}, {cfg.optim.lr}")
    if not 0.0 <= cfg.data.flip_prob <= 1.0:
        raise ConfigError(f"data.flip_prob must be in [0, 1], got {cfg.data.flip_prob}")
    if cfg.data.flip not in FLIP_MODES:
        raise ConfigError(f"data.flip must be one of {', '.join(FLIP_MODES)}, got {cfg.data.flip!r}")
    if cfg.model.roi_output_size < 1 or cfg.model.roi_sampling_ratio < 0:
        raise ConfigError(f"model.roi_output_size must be >= 1 and model.roi_sampling_ratio >= 0, got "
                          f"{cfg.model.roi_output_size}, {cfg.model.roi_sampling_ratio}")
    if not cfg.optim.bias_lr_mult > 0:
        raise ConfigError(f"optim.bias_lr_mult must be positive, got {cfg.optim.bias_lr_mult}")
    if cfg.data.num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {cfg.data.num_workers}")
    # numpy seeds are < 2**32, and each epoch seeds seed * 100_003 + epoch * 101
    max_seed = (2**32 - 1 - 101 * cfg.epochs) // 100_003
    if not 0 <= cfg.seed <= max_seed:
        raise ConfigError(f"seed must be in [0, {max_seed}], got {cfg.seed}")
    if not cfg.model.backbone_checkpoint and not cfg.model.backbone:
        raise ConfigError("set model.backbone_checkpoint (a classification/ checkpoint) or model.backbone "
                          "(an untrained backbone, for checks only)")
    if cfg.model.backbone:  # the name classification/ would refuse, refused the same way
        from classification.models import check_model_kwargs, check_model_name
        try:
            check_model_name(cfg.model.backbone)
            check_model_kwargs(cfg.model.backbone, dict(cfg.model.model_kwargs))
        except ValueError as e:
            raise ConfigError(f"model.backbone: {e}") from None
    if cfg.model.backbone_checkpoint and not Path(cfg.model.backbone_checkpoint).is_file():
        raise ConfigError(f"backbone checkpoint not found: {cfg.model.backbone_checkpoint} (train it with "
                          f"classification/, e.g. make train-table2)")
    if not Path(cfg.data.root).exists():
        raise ConfigError(f"VOC data not found: {cfg.data.root} (set data.root to a VOCdevkit folder)")
    try:
        check_device(cfg.device)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    run_dir_of(cfg)
    check_out_dir(cfg.out_dir)


def row_of(cfg) -> str:
    """The table row: `row`, else the backbone's name, else its checkpoint's run folder."""
    return cfg.row or (cfg.model.backbone or Path(cfg.model.backbone_checkpoint).parent.name).replace("/", "_")


def run_dir_of(cfg) -> Path:
    return run_dir_for(cfg.out_dir, cfg.table, cfg.run_id or f"{row_of(cfg)}_{cfg.method}_s{cfg.seed}")


def build_data(cfg):
    """(train, test) VOCDetection sets; a VOC problem is one line (VOCFormatError / FileNotFoundError)."""
    kw = dict(classes=cfg.data.classes)
    flip_prob = cfg.data.flip_prob if cfg.data.flip == "random" else 0.0  # copy: FlippedCopies mirrors
    train = VOCDetection(cfg.data.root, cfg.data.train, flip_prob=flip_prob, seed=cfg.seed,
                         skip_difficult=True, **kw)  # py-faster-rcnn trains without difficult objects
    test = VOCDetection(cfg.data.root, cfg.data.test, **kw)
    return train, test


def epoch_data(cfg, train_set):
    """What one epoch passes over: the first ``data.train_subset`` images (all when 0), and with
    ``data.flip=copy`` each of them twice, as is and mirrored (``voc.FlippedCopies``)."""
    n = cfg.data.train_subset
    data = Subset(train_set, range(min(n, len(train_set)))) if n else train_set
    return FlippedCopies(data) if cfg.data.flip == "copy" else data


def param_groups(model, weight_decay: float, bias_decay: bool = True, bias_lr_mult: float = 1.0) -> list[dict]:
    """SGD parameter groups of ``model``'s trainable parameters. One group when biases are
    treated like weights; else the biases (names ending in ``bias``, faster-rcnn.pytorch's rule)
    in a second group without weight decay (``bias_decay`` false) and with ``lr_mult`` =
    ``bias_lr_mult`` (the loop sets each group's lr to lr x its ``lr_mult``)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if bias_decay and bias_lr_mult == 1.0:
        return [{"params": [p for _, p in named], "weight_decay": weight_decay, "lr_mult": 1.0}]
    weights = [p for n, p in named if not n.endswith("bias")]
    biases = [p for n, p in named if n.endswith("bias")]
    return [{"params": weights, "weight_decay": weight_decay, "lr_mult": 1.0},
            {"params": biases, "weight_decay": weight_decay if bias_decay else 0.0, "lr_mult": bias_lr_mult}]


def evaluation_subset(cfg, test_set):
    """The images a run evaluates: the first data.test_subset of the test split (all when 0)."""
    return Subset(test_set, range(min(cfg.data.test_subset, len(test_set)))) if cfg.data.test_subset else test_set


def build_model(cfg, num_classes: int):
    """The C4 Faster R-CNN, backbone loaded from its classification checkpoint (or untrained)."""
    m = cfg.model
    kw = dict(min_size=m.min_size, max_size=m.max_size, anchor_sizes=tuple(m.anchor_sizes),
              trainable_stages=m.trainable_stages, frozen_bn=m.frozen_bn,
              roi_output_size=m.roi_output_size, roi_sampling_ratio=m.roi_sampling_ratio)
    if m.model_kwargs:
        kw["model_kwargs"] = dict(m.model_kwargs)
    if m.backbone_checkpoint:
        ckpt = read_classification_checkpoint(m.backbone_checkpoint)
        model, report = faster_rcnn_from_checkpoint(ckpt, num_classes, backbone_classes=m.backbone_classes or None,
                                                    **({"backbone": m.backbone} if m.backbone else {}), **kw)
        # the weights of the classification run's last epoch (its only checkpoint): recorded so
        # that a backbone taken from an unfinished run shows (backbone_epoch < backbone_epochs)
        return model, {"backbone": m.backbone or ckpt.model, "backbone_loaded": len(report.loaded),
                       "backbone_ignored": sorted(report.ignored), "backbone_epoch": ckpt.epoch,
                       "backbone_epochs": ckpt.epochs}
    mean, std = backbone_normalization(None)
    return build_faster_rcnn(m.backbone, num_classes, image_mean=mean, image_std=std, **kw), \
        {"backbone": m.backbone, "backbone_loaded": 0, "backbone_ignored": []}


@torch.no_grad()
def evaluate(model, dataset, device, use_07_metric: bool = True, progress: bool = False, limit: int = 0):
    """VOC AP per class and mAP over `dataset` (a VOCDetection or a Subset of one)."""
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    indices = dataset.indices if isinstance(dataset, Subset) else range(len(dataset))
    model.eval()
    ev = VOCEvaluator(base.classes, use_07_metric=use_07_metric)
    for i in tqdm(indices, desc="eval", leave=False, disable=not progress):
        image, target = base[i]
        out = model([image.to(device)])[0]
        ev.add(devkit_detections(out, target["scale"]), base.annotations[i])
    return ev.compute()


def train_epoch(cfg, model, opt, loader, device, epoch: int, progress: bool) -> float:
    """One pass; returns the mean of the summed Faster R-CNN losses over the epoch's batches."""
    model.train()
    total, n = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not progress, dynamic_ncols=True)
    for step, (images, targets) in enumerate(bar):
        images = [im.to(device) for im in images]
        targets = [{k: v.to(device) for k, v in t.items() if k in ("boxes", "labels")} for t in targets]
        losses = model(images, targets)
        loss = sum(losses.values())
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(f"training loss is {value} at epoch {epoch}, step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total, n = total + value, n + 1
        if step % 10 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
    return total / max(n, 1)


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
    with owned_run(run_dir, to_dict(cfg), cfg.resume, ckpt_path, cfg.resume_changed) as start:
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
        log.meta(run_id=run_dir.name, task="detection", method=cfg.method,
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
    for epoch in range(start_epoch, last + 1):
        t0 = time.time()
        seed_everything(cfg.seed * 100_003 + epoch * 101)  # the epoch's randomness from (seed, epoch) alone
        train_set.set_epoch(epoch)  # flips: detection.voc.flip_decision(seed, epoch, index)
        loader = DataLoader(train_data, batch_size=cfg.optim.batch_size, collate_fn=collate_detection,
                            sampler=EpochSampler(len(train_data), cfg.seed, epoch),
                            num_workers=cfg.data.num_workers)
        lr = step_lr(epoch, cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma)
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)  # (checkpoints written before lr_mult: 1)
        try:
            train_loss = train_epoch(cfg, model, opt, loader, d.device, epoch, cfg.progress)
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="key=value overrides anywhere on the line, e.g. data.root=/data/VOCdevkit seed=1")
    p.add_argument("--config", help="YAML file (detection/configs/...)")
    p.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    args = parse_with_overrides(p, argv)
    overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
    command = "python -m detection.train " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        train(load_config(TrainConfig, args.config, overrides), command)
    except (ConfigError, FileNotFoundError, VOCFormatError, BackboneCheckpointError, CheckpointError,
            TrainingDiverged) as e:
        print(f"error: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only folder: one line; any other OSError is a bug
        if storage_error(e) is None:
            raise
        print(f"error: {storage_error(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
