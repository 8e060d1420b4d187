"""Train an image classifier with baseline / label smoothing / Self-KD targets.

    python -m classification.train --config classification/configs/table1_resnet50_selfkd.yaml [key=value ...]

Reads top to bottom: config -> data -> model -> per-epoch loop (targets from the prediction bank,
Eq. 6) -> evaluation -> JSONL run log + checkpoint. A killed run continues with resume=true.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.bank import PredictionBank
from core.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from core.config import ConfigError, load_config, to_dict, to_yaml
from core.losses import soft_cross_entropy
from core.runlog import RunLogWriter, git_info, now_iso, read_run_log
from core.schedules import KINDS, alpha_at, step_lr
from core.targets import label_smoothing_targets

from .data import DATASETS, IN_CHANNELS, build_datasets, check_data_path
from .evaluate import evaluate
from .models import available_models, build_model

METHODS = ("baseline", "ls", "selfkd")


@dataclass
class DataConfig:
    name: str = "cifar100"
    root: str = "data/cifar100"
    download: bool = False
    augment: bool = True
    num_workers: int = 4
    train_subset: int = 0  # >0: train on the first n training images only (quick runs, tests)
    test_subset: int = 0


@dataclass
class OptimConfig:
    # Sec. 3.1 / official code: SGD momentum 0.9, lr 0.1 x0.1 at epochs 150 and 225 of 300,
    # weight decay 5e-4, batch 128.
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
    name: str = "baseline"  # baseline | ls | selfkd
    alpha_T: float = 0.8  # Self-KD alpha at the last epoch (CIFAR-100 default, Sec. 3.1)
    alpha_kind: str = "linear"  # Eq. 5; fixed/step/exp/cosine for the Fig. 2 ablation
    ls_eps: float = 0.1  # label smoothing epsilon (Sec. 3.1)
    bank_dtype: str = "float32"  # float32 (official) | float16
    bank_device: str = "auto"  # auto = the training device


@dataclass
class TrainConfig:
    model: str = "resnet50"
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    epochs: int = 300
    seed: int = 0
    device: str = "auto"
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
    if cfg.model not in available_models() and not cfg.model.startswith("timm/"):
        raise ConfigError(f"unknown model {cfg.model!r}; available: {', '.join(available_models())}")
    if cfg.data.name not in DATASETS:
        raise ConfigError(f"unknown dataset {cfg.data.name!r}; expected one of {', '.join(DATASETS)}")
    if not 0.0 <= cfg.method.alpha_T <= 1.0:
        raise ConfigError(f"method.alpha_T must be in [0, 1], got {cfg.method.alpha_T}")
    if not 0.0 <= cfg.method.ls_eps <= 1.0:
        raise ConfigError(f"method.ls_eps must be in [0, 1], got {cfg.method.ls_eps}")
    if cfg.method.alpha_kind not in KINDS:
        raise ConfigError(f"unknown method.alpha_kind {cfg.method.alpha_kind!r}; expected one of {', '.join(KINDS)}")
    if cfg.method.bank_dtype not in ("float32", "float16"):
        raise ConfigError(f"method.bank_dtype must be float32 or float16, got {cfg.method.bank_dtype!r}")
    if cfg.epochs < 1 or cfg.optim.batch_size < 1:
        raise ConfigError(f"epochs and optim.batch_size must be >= 1, got {cfg.epochs}, {cfg.optim.batch_size}")
    check_data_path(cfg.data.name, cfg.data.root, cfg.data.download)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_dir_of(cfg) -> Path:
    row = cfg.row or cfg.model
    run_id = cfg.run_id or f"{row}_{cfg.method.name}_s{cfg.seed}"
    return Path(cfg.out_dir) / cfg.table / run_id


def make_targets(method: str, labels, logits, idx, bank, alpha, ls_eps):
    """(B, K) soft targets for one batch. Self-KD reads the bank row before it is overwritten."""
    k = logits.shape[1]
    if method == "baseline":
        return F.one_hot(labels, k).float()
    if method == "ls":
        return label_smoothing_targets(labels, k, ls_eps)
    targets = bank.targets(idx, labels, alpha)
    # p_{t-1} for the next epoch: this train-mode forward pass's prediction (official code).
    bank.update(idx, torch.softmax(logits.detach().float(), dim=1))
    return targets


def train(cfg, command: str = "") -> Path:
    validate(cfg)
    device = resolve_device(cfg.device)
    run_dir = run_dir_of(cfg)
    ckpt_path = run_dir / "checkpoint.pt"
    log_path = run_dir / "log.jsonl"
    if run_dir.exists() and not cfg.resume:
        raise ConfigError(f"run directory {run_dir} exists; pass resume=true to continue it or set run_id")
    if cfg.resume and log_path.exists() and read_run_log(log_path).complete:
        print(f"{run_dir}: already complete, nothing to do")
        return run_dir

    seed_everything(cfg.seed)
    train_set, test_set, num_classes = build_datasets(
        cfg.data.name, cfg.data.root, cfg.data.download, cfg.data.augment,
        cfg.data.train_subset, cfg.data.test_subset)
    model = build_model(cfg.model, num_classes, **({"in_channels": IN_CHANNELS[cfg.data.name]}
                                                    if cfg.data.name in IN_CHANNELS else {})).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                          weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
    bank = None
    if cfg.method.name == "selfkd":
        bank_device = device if cfg.method.bank_device == "auto" else torch.device(cfg.method.bank_device)
        bank = PredictionBank(len(train_set), num_classes, bank_device, getattr(torch, cfg.method.bank_dtype))

    start_epoch, wall_before = 1, 0.0
    resumed = cfg.resume and ckpt_path.exists()
    if resumed:
        state = load_checkpoint(ckpt_path, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if bank is not None:
            bank.load_state_dict(state["bank"])
        start_epoch, wall_before = state["epoch"] + 1, state["wall_s"]
        log = RunLogWriter(log_path)
        log.truncate_to_epoch(state["epoch"])  # drop lines written after that checkpoint
        print(f"resuming {run_dir} at epoch {start_epoch}")
    else:
        if cfg.resume and run_dir.exists():  # resume asked but no checkpoint yet: start clean
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
        sha, dirty = git_info()
        log = RunLogWriter(log_path)
        log.meta(run_id=run_dir.name, task="classification", method=cfg.method.name, model=cfg.model,
                 dataset=cfg.data.name, seed=cfg.seed, config=to_dict(cfg), git_commit=sha, git_dirty=dirty,
                 torch=torch.__version__, device=str(device), started=now_iso(), table=cfg.table,
                 row=cfg.row or cfg.model, epochs=cfg.epochs, alpha_T=cfg.method.alpha_T,
                 alpha_kind=cfg.method.alpha_kind, command=command,
                 card=torch.cuda.get_device_name(device) if device.type == "cuda" else None)

    eval_loader = DataLoader(test_set, batch_size=cfg.optim.eval_batch_size, shuffle=False,
                             num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda")
    t_start = time.time()
    metrics, bins = None, None
    last = cfg.epochs if cfg.stop_after_epochs <= 0 else min(cfg.epochs, start_epoch + cfg.stop_after_epochs - 1)
    for epoch in range(start_epoch, last + 1):
        t0 = time.time()
        # Every epoch's randomness (shuffle order, augmentation, worker seeds) is a function of
        # (seed, epoch) alone, so a resumed run replays exactly what the killed run would have.
        seed_everything(cfg.seed * 100_003 + epoch)
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        loader = DataLoader(train_set, batch_size=cfg.optim.batch_size, shuffle=True, generator=g,
                            num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
                            drop_last=False, persistent_workers=False)
        alpha = alpha_at(epoch, cfg.epochs, cfg.method.alpha_T, cfg.method.alpha_kind) \
            if cfg.method.name == "selfkd" else 0.0
        lr = step_lr(epoch, cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        loss_sum, n_seen = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not cfg.progress,
                   dynamic_ncols=True)
        for x, y, idx in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            targets = make_targets(cfg.method.name, y, logits, idx, bank, alpha, cfg.method.ls_eps)
            loss = soft_cross_entropy(logits, targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            n_seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}")
        train_loss = loss_sum / n_seen
        if not torch.isfinite(torch.tensor(train_loss)):
            raise FloatingPointError(f"epoch {epoch}: training loss is {train_loss}; stopping")
        metrics, bins = evaluate(model, eval_loader, device, cfg.n_bins)
        epoch_s = time.time() - t0
        log.epoch(epoch=epoch, alpha=alpha, lr=lr, train_loss=train_loss, epoch_s=epoch_s, **metrics)
        print(f"epoch {epoch:>3}/{cfg.epochs}  alpha {alpha:.3f}  lr {lr:.4g}  loss {train_loss:.4f}  "
              f"top1 {metrics['top1_err']:.2f}%  top5 {metrics['top5_err']:.2f}%  nll {metrics['nll']:.4f}  "
              f"ece {metrics['ece']:.2f}%  aurc {metrics['aurc']:.2f}  ({epoch_s:.1f}s)", flush=True)
        save_checkpoint(ckpt_path, {
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "bank": bank.state_dict() if bank is not None else None,
            "epoch": epoch, "wall_s": wall_before + time.time() - t_start, "config": to_dict(cfg)})
    if last == cfg.epochs and metrics is not None:
        log.final(metrics=metrics, reliability=bins, wall_s=wall_before + time.time() - t_start)
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
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
