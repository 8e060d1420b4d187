"""Train an image classifier with baseline / label smoothing / Self-KD targets, alone or with
Cutout, CutMix and ShakeDrop (Sec. 3.1).

    python -m classification.train --config classification/configs/table1_resnet50_selfkd.yaml [key=value ...]
    torchrun --nproc_per_node 8 -m classification.train --config ...      # DDP, same global batch

Reads top to bottom: config -> data -> model -> per-epoch loop (targets from the prediction bank,
Eq. 6) -> evaluation -> JSONL run log + checkpoint. A killed run continues with resume=true.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.bank import PredictionBank
from core.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from core.config import ConfigError, load_config, to_dict, to_yaml
from core.losses import soft_cross_entropy
from core.runlog import RunLogWriter, git_info, now_iso, read_run_log
from core.schedules import KINDS, alpha_at, step_lr

from .augment import METHODS, method_parts, prepare_batch
from .data import (CIFAR_MEAN, CIFAR_STD, DATASETS, IN_CHANNELS, CorruptImageError, EpochSampler,
                   build_datasets, check_data_path)
from .evaluate import evaluate
from .fastpath import device_data_from
from .models import build_model, check_model_name


@dataclass
class DataConfig:
    name: str = "cifar100"
    root: str = "data/cifar100"
    download: bool = False
    augment: bool = True
    num_workers: int = 4
    train_subset: int = 0  # >0: a fixed random subset of n training images (quick runs, tests)
    test_subset: int = 0
    holdout_fraction: float = 0.0  # >0: evaluate on a random holdout of the training set instead of test
    holdout_seed: int = 0
    on_device: bool = False  # fast path: uint8 CIFAR resident on the device, augmented there


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
class MethodConfig:
    name: str = "baseline"  # see classification.augment.METHODS
    alpha_T: float = 0.8  # Self-KD alpha at the last epoch (CIFAR-100 default, Sec. 3.1)
    alpha_kind: str = "linear"  # Eq. 5; fixed/step/exp/cosine for the Fig. 2 ablation
    ls_eps: float = 0.1  # label smoothing epsilon (Sec. 3.1)
    cutout_size: int = 8  # Cutout hole, pixels (Sec. 3.1)
    cutmix_beta: float = 1.0  # CutMix Beta(beta, beta) (Sec. 3.1)
    cutmix_prob: float = 0.5  # CutMix alone: probability a batch is mixed (CutMix's CIFAR setting)
    cutout_updates_bank: bool = True  # a Cutout'd sample in the Self-KD combination writes its row
    bank_dtype: str = "float32"  # float32 (official) | float16
    bank_device: str = "auto"  # auto = the training device; "cpu" = the official per-step host copy
    bank_storage: str = "memory"  # memory | mmap (a memory-mapped file in the run folder)


@dataclass
class TrainConfig:
    model: str = "resnet50"
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
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
    stop_after_epochs: int = 0  # >0: stop after this many epochs in this invocation (time-sliced jobs)
    n_bins: int = 10  # reliability / ECE bins
    progress: bool = True


def validate(cfg) -> None:
    """Every check that can fail on bad input, run before anything is written to disk."""
    if cfg.method.name not in METHODS:
        raise ConfigError(f"unknown method {cfg.method.name!r}; expected one of {', '.join(METHODS)}")
    try:
        check_model_name(cfg.model)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.data.name not in DATASETS:
        raise ConfigError(f"unknown dataset {cfg.data.name!r}; expected one of {', '.join(DATASETS)}")
    for key in ("alpha_T", "ls_eps"):
        if not 0.0 <= cfg.method[key] <= 1.0:
            raise ConfigError(f"method.{key} must be in [0, 1], got {cfg.method[key]}")
    if cfg.method.alpha_kind not in KINDS:
        raise ConfigError(f"unknown method.alpha_kind {cfg.method.alpha_kind!r}; expected one of {', '.join(KINDS)}")
    choices = {"method.bank_dtype": ("float32", "float16"), "method.bank_storage": ("memory", "mmap"),
               "amp": ("none", "bf16")}
    for key, allowed in choices.items():
        value = cfg.method[key.split(".")[1]] if key.startswith("method.") else cfg[key]
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    if cfg.data.holdout_fraction and not 0.0 < cfg.data.holdout_fraction < 1.0:
        raise ConfigError(f"data.holdout_fraction must be in (0, 1), got {cfg.data.holdout_fraction}")
    if cfg.epochs < 1 or cfg.optim.batch_size < 1:
        raise ConfigError(f"epochs and optim.batch_size must be >= 1, got {cfg.epochs}, {cfg.optim.batch_size}")
    check_data_path(cfg.data.name, cfg.data.root, cfg.data.download)


def run_dir_of(cfg) -> Path:
    row = cfg.row or cfg.model
    run_id = cfg.run_id or f"{row}_{cfg.method.name}_s{cfg.seed}"
    return Path(cfg.out_dir) / cfg.table / run_id


class Dist:
    """Rank, world size and device; torchrun sets the environment, gloo on CPU, NCCL on GPU."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        local = int(os.environ.get("LOCAL_RANK", 0))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate t from every rank in rank order (every rank's t has the same shape)."""
        if self.world == 1:
            return t
        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t.contiguous())
        return torch.cat(out)

    def barrier(self):
        if self.world > 1:
            dist.barrier()


def update_bank(bank: PredictionBank, d: Dist, idx, logits, mask) -> None:
    """Write softmax(logits) into the rows of idx where mask, on every rank: under DDP the
    (index, probabilities) pairs of all ranks are gathered so all banks stay identical."""
    probs = torch.softmax(logits.detach().float(), dim=1)
    idx, mask = idx.to(probs.device), mask.to(probs.device)
    idx, probs, mask = d.gather(idx), d.gather(probs), d.gather(mask)
    bank.update(idx[mask], probs[mask])


def train_step(model, opt, x, y, idx, parts, bank, alpha, mcfg, num_classes, d: Dist, amp_dtype=None):
    """One optimisation step; returns the (detached) batch loss. Shared by training and bench."""
    x, targets, update = prepare_batch(
        parts, x, y, idx, bank, alpha, num_classes, ls_eps=mcfg.ls_eps, cutout_size=mcfg.cutout_size,
        cutmix_beta=mcfg.cutmix_beta, cutmix_prob=mcfg.cutmix_prob, cutout_updates_bank=mcfg.cutout_updates_bank)
    with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        logits = model(x)
    loss = soft_cross_entropy(logits, targets)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if update is not None:
        # p_{t-1} for the next epoch: this train-mode forward pass's prediction (official code).
        update_bank(bank, d, idx, logits, update)
    return loss.detach()


def build(cfg, d: Dist, run_dir: Path):
    """Data, model, optimiser and bank for a validated config."""
    train_set, eval_set, num_classes = build_datasets(
        cfg.data.name, cfg.data.root, cfg.data.download, cfg.data.augment, cfg.data.train_subset,
        cfg.data.test_subset, cfg.data.holdout_fraction, cfg.data.holdout_seed)
    parts = method_parts(cfg.method.name)
    kwargs = dict(cfg.model_kwargs)
    if cfg.data.name in IN_CHANNELS:
        kwargs["in_channels"] = IN_CHANNELS[cfg.data.name]
    if "sd" in parts:
        kwargs["shakedrop"] = True
    model = build_model(cfg.model, num_classes, **kwargs).to(d.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.sync_bn and d.world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                          weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
    bank = None
    if "selfkd" in parts:
        bank_device = d.device if cfg.method.bank_device == "auto" else torch.device(cfg.method.bank_device)
        path = run_dir / "bank.npy" if cfg.method.bank_storage == "mmap" else None
        bank = PredictionBank(len(train_set), num_classes, bank_device, getattr(torch, cfg.method.bank_dtype), path)
    return train_set, eval_set, num_classes, parts, model, opt, bank


def train(cfg, command: str = "") -> Path:
    validate(cfg)
    d = Dist(cfg.device)
    if cfg.optim.batch_size % d.world:
        raise ConfigError(f"optim.batch_size {cfg.optim.batch_size} is not divisible by {d.world} processes")
    run_dir = run_dir_of(cfg)
    ckpt_path, log_path = run_dir / "checkpoint.pt", run_dir / "log.jsonl"
    if run_dir.exists() and not cfg.resume:
        raise ConfigError(f"run directory {run_dir} exists; pass resume=true to continue it or set run_id")
    if cfg.resume and log_path.exists() and read_run_log(log_path).complete:
        if d.main:
            print(f"{run_dir}: already complete, nothing to do")
        return run_dir
    resumed = cfg.resume and ckpt_path.exists()
    if d.main and not resumed:
        if run_dir.exists():  # resume asked but no checkpoint yet: start clean
            shutil.rmtree(run_dir)
        if cfg.method.bank_storage == "mmap":
            run_dir.mkdir(parents=True)  # the memory-mapped bank file lives there
    d.barrier()
    seed_everything(cfg.seed)
    train_set, eval_set, num_classes, parts, model, opt, bank = build(cfg, d, run_dir)
    raw_model = model
    if d.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model)
    amp_dtype = torch.bfloat16 if cfg.amp == "bf16" else None

    start_epoch, wall_before, log = 1, 0.0, RunLogWriter(log_path)
    if resumed:
        state = load_checkpoint(ckpt_path, map_location=d.device)
        if state.get("num_classes") != num_classes:
            raise ConfigError(f"checkpoint {ckpt_path} is for {state.get('num_classes')} classes, "
                              f"the data has {num_classes}")
        raw_model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if bank is not None:
            bank.load_state_dict(state["bank"])
        start_epoch, wall_before = state["epoch"] + 1, state["wall_s"]
        if d.main:
            log.truncate_to_epoch(state["epoch"])  # drop lines written after that checkpoint
            log.extra("resume", from_epoch=state["epoch"], at=now_iso(), command=command)
            print(f"resuming {run_dir} at epoch {start_epoch}")
    elif d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
        sha, dirty = git_info()
        log.meta(run_id=run_dir.name, task="classification", method=cfg.method.name, model=cfg.model,
                 dataset=cfg.data.name, seed=cfg.seed, config=to_dict(cfg), git_commit=sha, git_dirty=dirty,
                 torch=torch.__version__, device=str(d.device), started=now_iso(), table=cfg.table,
                 row=cfg.row or cfg.model, epochs=cfg.epochs, alpha_T=cfg.method.alpha_T,
                 alpha_kind=cfg.method.alpha_kind, command=command, world_size=d.world,
                 eval_split="holdout" if cfg.data.holdout_fraction else "test",
                 card=torch.cuda.get_device_name(d.device) if d.device.type == "cuda" else None)

    fast = None
    if cfg.data.on_device:
        k = num_classes if num_classes in CIFAR_MEAN else 10
        fast = device_data_from(train_set, CIFAR_MEAN[k], CIFAR_STD[k], d.device, cfg.data.augment)
        fast_eval = device_data_from(eval_set, CIFAR_MEAN[k], CIFAR_STD[k], d.device, augment=False)
        eval_batches = lambda: fast_eval.batches(list(range(len(fast_eval))), cfg.optim.eval_batch_size,  # noqa: E731
                                                 cfg.channels_last)
    else:
        eval_loader = DataLoader(eval_set, batch_size=cfg.optim.eval_batch_size, shuffle=False,
                                 num_workers=cfg.data.num_workers, pin_memory=d.device.type == "cuda")
        eval_batches = lambda: eval_loader  # noqa: E731
    per_rank_batch = cfg.optim.batch_size // d.world
    t_start = time.time()
    metrics, bins = None, None
    last = cfg.epochs if cfg.stop_after_epochs <= 0 else min(cfg.epochs, start_epoch + cfg.stop_after_epochs - 1)
    for epoch in range(start_epoch, last + 1):
        t0 = time.time()
        # Every epoch's randomness (shuffle order, augmentation, worker seeds) is a function of
        # (seed, epoch, rank) alone, so a resumed run replays exactly what the killed run would have.
        seed_everything(cfg.seed * 100_003 + epoch * 101 + d.rank)
        sampler = EpochSampler(len(train_set), cfg.seed, epoch, d.rank, d.world)
        if fast is not None:
            batches = fast.batches(list(sampler), per_rank_batch, cfg.channels_last)
            n_batches = -(-len(sampler) // per_rank_batch)
        else:
            batches = DataLoader(train_set, batch_size=per_rank_batch, sampler=sampler,
                                 num_workers=cfg.data.num_workers, pin_memory=d.device.type == "cuda",
                                 generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            n_batches = len(batches)
        alpha = alpha_at(epoch, cfg.epochs, cfg.method.alpha_T, cfg.method.alpha_kind) if bank is not None else 0.0
        lr = step_lr(epoch, cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        loss_sum, n_seen = torch.zeros((), device=d.device), 0
        bar = tqdm(batches, total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                   disable=not (cfg.progress and d.main), dynamic_ncols=True)
        for step, (x, y, idx) in enumerate(bar):
            x = x.to(d.device, non_blocking=True)
            y = y.to(d.device, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = train_step(model, opt, x, y, idx, parts, bank, alpha, cfg.method, num_classes, d, amp_dtype)
            loss_sum += loss * len(y)
            n_seen += len(y)
            if step % 20 == 0 and d.main:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        train_loss = d.gather(loss_sum.reshape(1)).sum().item() / (n_seen * d.world)
        if not torch.isfinite(torch.tensor(train_loss)):
            raise FloatingPointError(f"epoch {epoch}: training loss is {train_loss}; stopping")
        if d.main:
            metrics, bins = evaluate(raw_model, eval_batches(), d.device, cfg.n_bins, amp_dtype)
            epoch_s = time.time() - t0
            log.epoch(epoch=epoch, alpha=alpha, lr=lr, train_loss=train_loss, epoch_s=epoch_s, **metrics)
            print(f"epoch {epoch:>3}/{cfg.epochs}  alpha {alpha:.3f}  lr {lr:.4g}  loss {train_loss:.4f}  "
                  f"top1 {metrics['top1_err']:.2f}%  top5 {metrics['top5_err']:.2f}%  nll {metrics['nll']:.4f}  "
                  f"ece {metrics['ece']:.2f}%  aurc {metrics['aurc']:.2f}  ({epoch_s:.1f}s)", flush=True)
            save_checkpoint(ckpt_path, {
                "model": raw_model.state_dict(), "optimizer": opt.state_dict(),
                "bank": bank.state_dict() if bank is not None else None,
                "num_classes": num_classes, "epoch": epoch, "wall_s": wall_before + time.time() - t_start, "config": to_dict(cfg)})
        d.barrier()
    if last == cfg.epochs:
        extra = {}
        if bank is not None and d.world > 1:
            # every rank must hold the same bank: compare a position-weighted checksum of each
            w = torch.arange(1, bank.num_classes + 1, dtype=torch.float64, device=bank.probs.device)
            s = (bank.probs.double() @ w * torch.arange(1, bank.num_samples + 1, device=w.device)).sum()
            sums = d.gather(s.reshape(1).to(d.device)).tolist()
            extra["bank_checksums"] = sums
            if len(set(sums)) != 1:
                raise RuntimeError(f"prediction banks differ across ranks: {sums}")
        if d.main and metrics is not None:
            log.final(metrics=metrics, reliability=bins, wall_s=wall_before + time.time() - t_start, **extra)
    return run_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file (classification/configs/...)")
    p.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. method.name=selfkd seed=1")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
    command = "python -m classification.train " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        cfg = load_config(TrainConfig, args.config, overrides)
        train(cfg, command)
    except (ConfigError, FileNotFoundError, CorruptImageError) as e:
        # A DataLoader worker re-raises its exception with the worker's traceback in the
        # message: keep only the last line, the original one-line message.
        msg = str(e).strip().splitlines()[-1]
        print(f"error: {msg.split('Error: ', 1)[-1] if msg.startswith(type(e).__name__) else msg}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
