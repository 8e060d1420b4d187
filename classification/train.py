"""Train an image classifier with baseline / label smoothing / Self-KD targets, alone or with
Cutout, CutMix and ShakeDrop (Sec. 3.1).

    python -m classification.train --config classification/configs/table1_resnet50_selfkd.yaml [key=value ...]
    torchrun --nproc_per_node 8 -m classification.train --config ...      # DDP, same global batch

Reads top to bottom: config -> data -> model -> per-epoch loop (targets from the prediction bank,
Eq. 6) -> evaluation -> JSONL run log + checkpoint. A killed run continues with resume=true.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Dict, List

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.cli import RESUME_FLAG, did_you_mean, entry_point
from core.dist import Dist, check_device
from core.methods import ALIASES
from core.checkpoint import epoch_seed, load_checkpoint, max_seed, save_checkpoint, seed_everything
from core.config import ConfigError, load_config, parse_with_overrides, to_dict, to_yaml
from core.run import (TrainingDiverged, check_out_dir, log_complete, owned_run, record_failure, record_resume,
                      run_dir_for)
from core.runlog import RunLogWriter, best_epoch_on_test, git_info, now_iso, read_run_log
from core.schedules import step_lr
from core.notices import CpuCostEstimate, next_steps, worker_notice
from core.tensorboard import TensorBoardMirror

from .checkpoint import RunCheckpoint
from .methods import (METHODS, RENAMED_KEYS, Context, MethodConfig, build_method, check_method_config,
                      method_class, unread_sections)
from .data import (CIFAR_MEAN, CIFAR_NORMALIZATIONS, DATASETS, DataConfig, EpochSampler,
                   build_datasets, check_data_path, cifar_normalization)
from .evaluate import evaluate, predict_logits, scaled_evaluation
from .fastpath import device_data_from
from .models import TIMM_PREFIX, build_model, check_model_kwargs, check_model_name, run_model_kwargs


@dataclass
class OptimConfig:
    # Sec. 3.1 / official code: SGD momentum 0.9, lr 0.1 x0.1 at epochs 150 and 225 of 300,
    # weight decay 5e-4, batch 128 (global, split over DDP ranks).
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [150, 225])
    gamma: float = 0.1
    batch_size: int = 128
    eval_batch_size: int = 256


@dataclass
class TrainConfig:
    model: str = "resnet50"
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    # Modules imported before anything else: where your own @register (model) and
    # @register_dataset functions live, e.g. [mypkg.models, mypkg.data] (classification/README.md, "Your own ...").
    imports: List[str] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    epochs: int = 300
    seed: int = 0
    device: str = "auto"
    amp: str = "none"  # none | bf16 (autocast)
    channels_last: bool = False
    compile: bool = False  # torch.compile the model
    sync_bn: bool = False  # SyncBatchNorm under DDP (CUDA only)
    out_dir: str = "runs"
    table: str = "table1"  # where reports/ files the run
    row: str = ""  # table row; default: the model name
    run_id: str = ""  # default: <row>_<method>_s<seed>
    resume: bool = False
    resume_changed: str = "refuse"  # refuse | allow: resume although the config differs (logged)
    stop_after_epochs: int = 0  # >0: stop after this many epochs in this invocation (time-sliced jobs)
    n_bins: int = 10  # reliability / ECE bins
    # Evaluate (eval set and fit subset) every k-th epoch and at the last one; the other epoch lines
    # carry the training fields only. On a CPU an eval-mode image costs about a third of a training
    # image, so the two passes can cost nearly as much as the training pass (BENCHMARKS.md,
    # tools/bench_epoch.py); training and the final metrics are the same.
    eval_every: int = 1
    progress: bool = True
    # intra-op CPU threads: 0 = OMP_NUM_THREADS when it is set, else 1; n > 0 = exactly n. Not torch's
    # default (all cores): beside other busy processes a tiny model ran 3x slower on 2 threads than
    # on 1 (BENCHMARKS.md). The meta line records the count.
    threads: int = 0
    tensorboard: bool = False  # also mirror the epoch lines to <run_dir>/tensorboard/ (core.tensorboard)

    RENAMED_KEYS = RENAMED_KEYS  # old flat method keys -> their sub-config names (not a field)


def import_plugins(modules) -> None:
    import importlib
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise ConfigError(f"imports: cannot import {m!r} ({e}); put the folder that holds its "
                              f"package on PYTHONPATH, or pip install it") from None


def validate(cfg) -> None:
    """Every check that can fail on bad input, run before anything is written to disk. The plugins
    named in `imports` are code: they are imported only after every check that does not need them
    has passed (the model and dataset names they may register are checked after them)."""
    if cfg.method.name not in METHODS:
        raise ConfigError(f"unknown method {cfg.method.name!r}{did_you_mean(cfg.method.name, METHODS, aliases=ALIASES)}; "
                          f"expected one of {', '.join(METHODS)}")
    check_method_config(cfg.method)  # each sub-config's values, and none set that the method does not read
    if cfg.amp not in ("none", "bf16"):
        raise ConfigError(f"amp must be one of none, bf16, got {cfg.amp!r}")
    if cfg.data.holdout_fraction and not 0.0 < cfg.data.holdout_fraction < 1.0:
        raise ConfigError(f"data.holdout_fraction must be in (0, 1), got {cfg.data.holdout_fraction}")
    if cfg.data.normalization not in CIFAR_NORMALIZATIONS:
        raise ConfigError(f"data.normalization must be one of {', '.join(CIFAR_NORMALIZATIONS)}, "
                          f"got {cfg.data.normalization!r}")
    if cfg.epochs < 1 or cfg.optim.batch_size < 1:
        raise ConfigError(f"epochs and optim.batch_size must be >= 1, got {cfg.epochs}, {cfg.optim.batch_size}")
    o = cfg.optim
    for key, value, ok, want in (("optim.eval_batch_size", o.eval_batch_size, o.eval_batch_size >= 1, ">= 1"),
                                 ("optim.lr", o.lr, o.lr > 0, "> 0"),
                                 ("optim.momentum", o.momentum, o.momentum >= 0, ">= 0"),
                                 ("optim.weight_decay", o.weight_decay, o.weight_decay >= 0, ">= 0"),
                                 ("data.num_workers", cfg.data.num_workers, cfg.data.num_workers >= 0, ">= 0"),
                                 ("n_bins", cfg.n_bins, cfg.n_bins >= 1, ">= 1")):
        if not ok:
            raise ConfigError(f"{key} must be {want}, got {value}")
    top = max_seed(cfg.epochs, max_rank=1024)  # room for 1,024 processes
    if not 0 <= cfg.seed <= top:
        raise ConfigError(f"seed must be in [0, {top}], got {cfg.seed}")
    if cfg.eval_every < 1:
        raise ConfigError(f"eval_every must be >= 1 (1: every epoch), got {cfg.eval_every}")
    if cfg.data.fit_subset < -1:
        raise ConfigError(f"data.fit_subset must be -1 (all), 0 (off) or a count, got {cfg.data.fit_subset}")
    try:
        check_device(cfg.device)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.model.startswith(TIMM_PREFIX):  # no plugin can add a timm name: checked before the run folder's
        try:
            check_model_name(cfg.model)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    run_dir_of(cfg)  # table / run_id are plain folder names
    check_out_dir(cfg.out_dir)
    import_plugins(cfg.imports)
    try:
        check_model_name(cfg.model)
        check_model_kwargs(cfg.model, dict(cfg.model_kwargs))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.data.name not in DATASETS:
        raise ConfigError(f"unknown dataset {cfg.data.name!r}{did_you_mean(cfg.data.name, DATASETS)}; "
                          f"expected one of {', '.join(DATASETS)}")
    check_data_path(cfg.data.name, cfg.data.root, cfg.data.download)
    if cfg.data.on_device and cfg.data.name in ("digits", "imagenet"):
        raise ConfigError(f"data.on_device=true keeps uint8 CIFAR-style images on the device; data.name="
                          f"{cfg.data.name} has none (use it with cifar10, cifar100 or cifar10_npz, "
                          "or set data.on_device=false)")


def run_dir_of(cfg) -> Path:
    """<out_dir>/<table>/<run_id>; table and run_id must be plain folder names (core.run)."""
    row = cfg.row or cfg.model
    run_id = cfg.run_id or f"{row}_{cfg.method.name}_s{cfg.seed}"
    return run_dir_for(cfg.out_dir, cfg.table, run_id)


def train_step(model, opt, method, x, y, idx):
    """One optimisation step of `method` (classification/methods); returns the (detached) batch
    loss and logits. Shared by training and bench."""
    loss, logits = method.loss(model, x, y, idx)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    logits = logits.detach()
    method.after_step(idx, logits)
    return loss.detach(), logits


def check_labels(dataset, num_classes: int) -> None:
    """Every label in [0, num_classes), checked once before training (not mid-epoch)."""
    targets = getattr(dataset.base, "targets", None)
    if targets is None:
        return
    labels = torch.as_tensor(targets)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if len(bad):
        raise ConfigError(f"{len(bad)} label(s) outside [0, {num_classes}) in the data "
                          f"(e.g. {int(bad[0])}); is data.name right for this data?")


@dataclass
class Training:
    """What the epoch loop works with, built once per run (build)."""
    cfg: Any
    d: Dist
    model: torch.nn.Module      # the model the steps call (DDP-wrapped / compiled where asked)
    raw_model: torch.nn.Module  # the plain module: checkpoints, evaluation, the snapshot teacher
    opt: torch.optim.Optimizer
    method: Any                 # classification.methods.base.Method
    amp_dtype: Any = None


def build(cfg, d: Dist, run_dir: Path):
    """(train, eval and fit datasets, num_classes, Training) for a validated config."""
    train_set, eval_set, fit_set, num_classes = build_datasets(cfg.data)
    check_labels(train_set, num_classes)
    check_labels(eval_set, num_classes)
    kwargs = run_model_kwargs(cfg.model_kwargs, cfg.data.name, cfg.method.name)
    model = build_model(cfg.model, num_classes, **kwargs).to(d.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.sync_bn and d.world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                          weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
    amp_dtype = torch.bfloat16 if cfg.amp == "bf16" else None
    method = build_method(cfg.method, Context(num_classes, train_set, cfg.epochs, d, cfg.seed, run_dir, amp_dtype))
    raw_model = model
    if d.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model)
    return train_set, eval_set, fit_set, num_classes, Training(cfg, d, model, raw_model, opt, method, amp_dtype)


def _on_device(dataset, num_classes: int, device, augment: bool, normalization: str):
    """The fast path's device-resident copy of a CIFAR-style dataset, normalised with its stats."""
    k = num_classes if num_classes in CIFAR_MEAN else 10
    return device_data_from(dataset, *cifar_normalization(k, normalization), device, augment)


def _batches_of(cfg, d: Dist, dataset, num_classes: int):
    """A callable giving the evaluation batches of `dataset` (no augmentation, fixed order): from
    the device-resident copy on the fast path, else from a DataLoader."""
    if cfg.data.on_device:
        data = _on_device(dataset, num_classes, d.device, False, cfg.data.normalization)
        return lambda: data.batches(list(range(len(data))), cfg.optim.eval_batch_size, cfg.channels_last)
    loader = DataLoader(dataset, batch_size=cfg.optim.eval_batch_size, shuffle=False,
                        num_workers=cfg.data.num_workers, pin_memory=d.device.type == "cuda")
    return lambda: loader


def _epoch_batches(cfg, d: Dist, train_set, fast, method, epoch: int):
    """(batches, count) of one training epoch: the shuffle is a function of (seed, epoch) alone;
    a method may regroup it (its `batches`, e.g. CS-KD's anchor + partner batches)."""
    sampler = EpochSampler(len(train_set), cfg.seed, epoch, d.rank, d.world)
    per_rank_batch = cfg.optim.batch_size // d.world
    custom = method.batches(list(sampler), per_rank_batch, epoch)
    if custom is not None:
        if fast is not None:
            return (fast.batch(torch.as_tensor(b, dtype=torch.long), cfg.channels_last) for b in custom), len(custom)
        loader = DataLoader(train_set, batch_sampler=custom, num_workers=cfg.data.num_workers,
                            pin_memory=d.device.type == "cuda")
        return loader, len(loader)
    if fast is not None:
        return fast.batches(list(sampler), per_rank_batch, cfg.channels_last), -(-len(sampler) // per_rank_batch)
    loader = DataLoader(train_set, batch_size=per_rank_batch, sampler=sampler,
                        num_workers=cfg.data.num_workers, pin_memory=d.device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    return loader, len(loader)


def train_epoch(tr: Training, batches, n_batches: int, epoch: int, estimate=None) -> dict:
    """One pass over the training batches; returns the epoch's training loss and the fit as the
    training forward passes saw it (train mode, augmented inputs, hard labels). estimate: a
    core.notices.CpuCostEstimate timing this epoch's first steps (its notice printed once)."""
    cfg, d = tr.cfg, tr.d
    tr.model.train()
    sums, n_seen = torch.zeros(3, device=d.device), 0  # loss, correct, confidence
    bar = tqdm(batches, total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
               disable=not (cfg.progress and d.main), dynamic_ncols=True)
    for step, (x, y, idx) in enumerate(bar):
        x = x.to(d.device, non_blocking=True)
        y = y.to(d.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss, logits = train_step(tr.model, tr.opt, tr.method, x, y, idx)
        y = y[:len(logits)]  # a method may train on fewer rows than it is given (CS-KD: the anchors)
        conf, pred = torch.softmax(logits.float(), dim=1).max(dim=1)
        sums += torch.stack([loss * len(y), (pred == y).sum(), conf.sum()])
        n_seen += len(y)
        if estimate is not None and (notice := estimate.step(step)) and d.main:
            tqdm.write(notice)
        if step % 20 == 0:  # the one host sync of the loop: progress and a divergence check
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(f"training loss is {value} at epoch {epoch}, step {step}")
            if d.main:
                bar.set_postfix(loss=f"{value:.4f}")
    # float64 before the division: the float32 sums divided as the logs always have been
    train_loss, correct, conf_sum = (d.gather(sums.reshape(1, 3)).sum(0).double() / (n_seen * d.world)).tolist()
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"training loss is {train_loss} at epoch {epoch}")
    return {"train_loss": train_loss, "train_top1_err": 100.0 * (1.0 - correct), "train_conf": 100.0 * conf_sum}


def _write_meta(log: RunLogWriter, cfg, d: Dist, run_dir: Path, command: str) -> None:
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    sha, dirty = git_info()
    log.meta(run_id=run_dir.name, task="classification", method=cfg.method.name, model=cfg.model,
             dataset=cfg.data.name, seed=cfg.seed, config=to_dict(cfg), git_commit=sha, git_dirty=dirty,
             torch=torch.__version__, device=str(d.device), started=now_iso(), table=cfg.table,
             row=cfg.row or cfg.model, epochs=cfg.epochs, alpha_T=cfg.method.selfkd.alpha_T,
             alpha_kind=cfg.method.selfkd.alpha_kind, command=command, world_size=d.world,
             threads=torch.get_num_threads(),  # bit-for-bit CPU resume holds at the same count
             eval_split="holdout" if cfg.data.holdout_fraction else "test",
             card=torch.cuda.get_device_name(d.device) if d.device.type == "cuda" else None)


def _restore(ckpt_path: Path, d: Dist, raw_model, opt, method, num_classes: int) -> RunCheckpoint:
    """Load model, optimiser and the method's state from the run's checkpoint; a mismatch is one line."""
    try:
        state = RunCheckpoint.from_dict(load_checkpoint(ckpt_path, map_location=d.device))
    except ValueError as e:
        raise ConfigError(f"checkpoint {ckpt_path}: {e}") from None
    if state.num_classes != num_classes:
        raise ConfigError(f"checkpoint {ckpt_path} is for {state.num_classes} classes, "
                          f"the data has {num_classes}")
    try:
        raw_model.load_state_dict(state.model)
        opt.load_state_dict(state.optimizer)
        method.load_state_dict(state.method)
    except ConfigError as e:
        raise ConfigError(f"checkpoint {ckpt_path}: {e}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"checkpoint {ckpt_path} does not fit this model / data ({first})") from None
    return state


def thread_count(threads: int, omp: str | None) -> int:
    """The intra-op thread count for the `threads` key (see TrainConfig)."""
    if threads:
        return threads
    try:
        return max(1, int(omp)) if omp else 1
    except ValueError:
        raise ConfigError(f"OMP_NUM_THREADS={omp!r} is not a whole number; set threads=N instead") from None


def train(cfg, command: str = "") -> Path:
    # -- config and processes: every check that can fail on bad input, before any file is written
    validate(cfg)
    if cfg.threads < 0:
        raise ConfigError(f"threads must be >= 0 (0: OMP_NUM_THREADS when set, else 1), got {cfg.threads}")
    torch.set_num_threads(thread_count(cfg.threads, os.environ.get("OMP_NUM_THREADS")))
    d = Dist(cfg.device)
    if cfg.optim.batch_size % d.world:
        raise ConfigError(f"optim.batch_size {cfg.optim.batch_size} is not divisible by {d.world} processes")
    if method_class(cfg.method.name).single_process and d.world > 1:
        raise ConfigError(f"method {cfg.method.name} runs in one process (its batches are not split over ranks)")
    run_dir = run_dir_of(cfg)
    ckpt_path = run_dir / "checkpoint.pt"

    # -- the run folder: fresh, resume or complete (core.run: locked, config checked, nothing
    # deleted); the main process owns it, the others follow its decision after the barrier
    # (a key under its old flat name is the same key; sub-configs the method does not read are not compared)
    with (owned_run(run_dir, to_dict(cfg), cfg.resume, ckpt_path, cfg.resume_changed, RENAMED_KEYS,
                    unread_sections(cfg.method.name)) if d.main
          else contextlib.nullcontext()) as start:
        d.barrier()
        state = start.state if start else ("complete" if log_complete(run_dir) else
                                           "resume" if cfg.resume and ckpt_path.exists() else "fresh")
        if state == "complete":
            if d.main:
                print(f"{run_dir}: already complete, nothing to do")
            return run_dir
        return _run(cfg, d, run_dir, state == "resume", start.changes if start else (), command)


def _run(cfg, d: Dist, run_dir: Path, resumed: bool, changes, command: str) -> Path:
    ckpt_path, log = run_dir / "checkpoint.pt", RunLogWriter(run_dir / "log.jsonl")
    workers = None if cfg.data.on_device else worker_notice(cfg.data.num_workers)
    if workers and d.main:  # before the first DataLoader, which would warn in PyTorch's words
        print(workers, file=sys.stderr)
    # -- data, model, optimiser and the method (which owns its state: Self-KD's bank or snapshot, ...)
    seed_everything(cfg.seed)
    train_set, eval_set, fit_set, num_classes, tr = build(cfg, d, run_dir)
    raw_model, opt, method, amp_dtype = tr.raw_model, tr.opt, tr.method, tr.amp_dtype

    # -- resume from the checkpoint, or write the log's meta header
    start_epoch, wall_before = 1, 0.0
    if resumed:
        state = _restore(ckpt_path, d, raw_model, opt, method, num_classes)
        start_epoch, wall_before = state.epoch + 1, state.wall_s
        if d.main:
            record_resume(log, run_dir, state.epoch, cfg.epochs, changes, to_yaml(cfg), command, state.log)
    elif d.main:
        _write_meta(log, cfg, d, run_dir, command)
    if cfg.tensorboard and d.main:
        log.mirrors.append(TensorBoardMirror(run_dir / "tensorboard", start_epoch))

    # -- data pipelines: training (fast path: uint8 on the device), evaluation, fit subset
    fast = _on_device(train_set, num_classes, d.device, cfg.data.augment, cfg.data.normalization) \
        if cfg.data.on_device else None
    eval_batches = _batches_of(cfg, d, eval_set, num_classes)
    fit_batches = _batches_of(cfg, d, fit_set, num_classes) if fit_set is not None else None

    # -- the epochs: the method's epoch start (alpha_t, Eq. 5), its steps, eval, log, checkpoint
    t_start = time.time()
    last = cfg.epochs if cfg.stop_after_epochs <= 0 else min(cfg.epochs, start_epoch + cfg.stop_after_epochs - 1)
    estimate = None  # the first epoch of this invocation times its first steps on a CPU
    metrics, bins = None, None
    for epoch in range(start_epoch, last + 1):
        t0 = time.time()
        # Every epoch's randomness (shuffle order, augmentation, worker seeds) is a function of
        # (seed, epoch, rank) alone, so a resumed run replays exactly what the killed run would have.
        seed_everything(epoch_seed(cfg.seed, epoch, d.rank))
        batches, n_batches = _epoch_batches(cfg, d, train_set, fast, method, epoch)
        started = method.start_epoch(raw_model, epoch)
        lr = step_lr(epoch, cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma)
        for group in opt.param_groups:
            group["lr"] = lr
        if epoch == start_epoch:
            estimate = CpuCostEstimate(d.device.type == "cpu", n_batches, last - epoch + 1)
        try:
            fit = train_epoch(tr, batches, n_batches, epoch, estimate if epoch == start_epoch else None)
        except TrainingDiverged as e:
            raise record_failure(log if d.main else None, epoch, e) from None
        ended = method.end_epoch()
        if d.main:
            shown = {}  # this epoch's evaluation metrics: none on an epoch eval_every skips
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                if fit_batches is not None:
                    m, _ = evaluate(raw_model, fit_batches(), d.device, cfg.n_bins, amp_dtype, extra=False)
                    fit.update(fit_top1_err=m["top1_err"], fit_nll=m["nll"], fit_conf=m["conf"])
                metrics, bins = evaluate(raw_model, eval_batches(), d.device, cfg.n_bins, amp_dtype)
                shown = metrics
            epoch_s = time.time() - t0
            log.epoch(epoch=epoch, **started, lr=lr, epoch_s=epoch_s, **fit, **ended, **shown)
            fit_msg = f"  fit {fit['fit_top1_err']:.2f}%" if "fit_top1_err" in fit else ""
            if ended.get("bank_row_age") is not None:
                fit_msg += f"  bank age {ended['bank_row_age']:.2f} ep, {100 * ended['bank_never_written']:.1f}% unwritten"
            eval_msg = (f"top1 {shown['top1_err']:.2f}%  top5 {shown['top5_err']:.2f}%  nll {shown['nll']:.4f}  "
                        f"ece {shown['ece']:.2f}%  conf {shown['conf']:.1f}%  " if shown else "")
            print(f"epoch {epoch:>3}/{cfg.epochs}  alpha {started['alpha']:.3f}  lr {lr:.4g}  loss {fit['train_loss']:.4f}  "
                  f"train {fit['train_top1_err']:.2f}%{fit_msg}  {eval_msg}({epoch_s:.1f}s)", flush=True)
            save_checkpoint(ckpt_path, RunCheckpoint(
                raw_model.state_dict(), to_dict(cfg), num_classes, epoch, opt.state_dict(), method.state_dict(),
                wall_before + time.time() - t_start, log.records()).to_dict())
        d.barrier()

    # -- the final record (also when a kill fell between the last checkpoint and this line)
    if last == cfg.epochs:
        extra = {}
        checksum = method.checksum() if d.world > 1 else None
        if checksum is not None:
            # every rank must hold the same bank: compare a position-weighted checksum of each
            sums = d.gather(checksum.reshape(1).to(d.device)).tolist()
            extra["bank_checksums"] = sums
            if len(set(sums)) != 1:
                raise RuntimeError(f"prediction banks differ across ranks: {sums}")
        if d.main:
            if metrics is None:  # no epoch ran in this invocation: the restored model is the final one
                metrics, bins = evaluate(raw_model, eval_batches(), d.device, cfg.n_bins, amp_dtype)
            best = best_epoch_on_test(read_run_log(log.path).epochs)
            if best is not None:  # what the official code would report (its best-test checkpoint)
                extra["selected_on_test"] = best
            # the metrics after temperature scaling, T cross-fitted on the evaluated split (never trained on)
            logits_of = partial(predict_logits, raw_model, device=d.device, amp_dtype=amp_dtype)
            extra["temperature_scaled"] = scaled_evaluation(
                logits_of, eval_batches(), cfg.n_bins, "holdout" if cfg.data.holdout_fraction else "test")
            log.final(metrics=metrics, reliability=bins, wall_s=wall_before + time.time() - t_start, **extra)
    return run_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m classification.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file (classification/configs/...)")
    p.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    p.epilog = "key=value overrides anywhere on the line, e.g. method.name=selfkd seed=1"
    return parse_with_overrides(p, argv)


@entry_point(rerun=RESUME_FLAG)
def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
    command = "python -m classification.train " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        cfg = load_config(TrainConfig, args.config, overrides)
        run_dir = train(cfg, command)
        print(next_steps(run_dir, cfg.table, cfg.out_dir, log_complete(run_dir)))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
