"""Throughput benchmark, measured side by side in one run:

  official  DataLoader with CPU transforms, fp32, prediction bank on the CPU (a host copy of the
            batch's rows every step): the official PS-KD training loop's shape
  fast      uint8 data resident on the device, crop/flip on the device in batch, bf16 autocast,
            channels_last, bank on the device (+ torch.compile with --compile)
  and the Self-KD (bank) overhead: fast-path step time of selfkd over baseline.

    python -m classification.bench [--data ../shared/data/cifar10-jpeg/cifar10_jpeg.npz] [--model preact_resnet18]

Every configuration runs the project's own train_step (classification.train). The three are built
once and timed interleaved, A B C A B C ... (--rounds), and the ratios are the medians of the
per-round ratios with their range: run one after the other, machine drift swamped a 2% target
(three identical CPU runs printed overheads of -18.6%, +11.2% and -5.5%).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from core.cli import entry_point
from core.config import load_config

from .data import CIFAR_MEAN, CIFAR_STD, ArrayImages, EpochSampler, Indexed, cifar_transforms, load_cifar10_npz
from .fastpath import DeviceData
from .models import build_model
from .methods import Context, build_method
from .train import Dist, TrainConfig, train_step

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg" / "cifar10_jpeg.npz"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Config:
    """One configuration (path x method), built once; ``block(n)`` times n training steps."""

    def __init__(self, mode: str, method: str, images, labels, args, device):
        torch.manual_seed(0)
        k = 10  # CIFAR-10
        self.mode, self.method, self.args, self.device, self.k = mode, method, args, device, k
        model = build_model(args.model, k).to(device)
        fast = mode == "fast"
        if fast:
            model = model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        self.model = torch.compile(model) if (fast and args.compile) else model
        # the bank on the device on the fast path, on the cpu (a host copy per step) as the official code
        cfg = load_config(TrainConfig, None, [f"method.name={method}", f"device={device.type}", "epochs=2",
                                              *([] if fast else ["method.selfkd.bank.device=cpu"])])
        self.amp = torch.bfloat16 if fast and device.type == "cuda" else None
        self.d = Dist(str(device))
        self.training_method = build_method(cfg.method, Context(k, range(len(labels)), cfg.epochs, self.d, amp_dtype=self.amp))
        self.training_method.start_epoch(model, 2)  # alpha_T in force: every step builds Eq. 6 targets
        order = list(EpochSampler(len(labels), 0, 1))
        if fast:
            dd = DeviceData(images, labels, (CIFAR_MEAN[10], CIFAR_STD[10]), device)
            n_steps = args.warmup + args.rounds * args.steps
            self.batches = dd.batches(order * (1 + n_steps * args.batch // len(order)), args.batch,
                                      channels_last=True)
        else:
            ds = Indexed(ArrayImages(images, labels, cifar_transforms(10, True)))
            self.loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                     pin_memory=device.type == "cuda", drop_last=True,
                                     persistent_workers=args.workers > 0)
            self.batches = _cycle(self.loader)
        model.train()

    def block(self, n: int) -> float:
        """Seconds for n training steps (the device synchronised before and after)."""
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(n):
            x, y, idx = next(self.batches)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            train_step(self.model, self.opt, self.training_method, x, y, idx)
        _sync(self.device)
        return time.perf_counter() - t0


def _cycle(loader):
    while True:
        yield from loader


def measure_interleaved(configs, steps: int, warmup: int, rounds: int) -> list[list[float]]:
    """ms/step of each configuration in each round: a warm-up block each, then per round one block
    of `steps` steps of every configuration in turn (A B C A B C ...), so machine drift hits all
    of them alike and the per-round ratios pair like with like."""
    for c in configs:
        c.block(warmup)
    times = [[] for _ in configs]
    for _ in range(rounds):
        for c, t in zip(configs, times):
            t.append(1000 * c.block(steps) / steps)
    return times


def _median_spread(values) -> tuple[float, float, float]:
    v = sorted(values)
    return statistics.median(v), v[0], v[-1]


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m classification.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="cifar10_jpeg.npz, or 'synthetic'")
    p.add_argument("--model", default="preact_resnet18")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=100, help="steps per configuration per round")
    p.add_argument("--warmup", type=int, default=20, help="warm-up steps per configuration, untimed")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of A B C (each configuration once per round, interleaved)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--n", type=int, default=0,
                   help="use a fixed random subset of n training images (0: all)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.data == "synthetic":
        rng = np.random.default_rng(0)
        n = args.n or 5000
        images, labels = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)
    else:
        if not Path(args.data).is_file():
            raise FileNotFoundError(f"data file not found: {args.data}")
        images, labels = load_cifar10_npz(Path(args.data), "train")
        if args.n:  # a random subset: the file is sorted by class
            sel = np.sort(np.random.default_rng(0).permutation(len(labels))[:args.n])
            images, labels = images[sel], labels[sel]
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {card}  torch {torch.__version__}  model {args.model}  batch {args.batch}  "
          f"{args.rounds} rounds x {args.steps} steps (+{args.warmup} warm-up)  compile {args.compile}")
    configs = [Config(mode, method, images, labels, args, device)
               for mode, method in (("official", "selfkd"), ("fast", "selfkd"), ("fast", "baseline"))]
    times = measure_interleaved(configs, args.steps, args.warmup, args.rounds)
    rows = []
    for c, t in zip(configs, times):
        ms = statistics.median(t)
        rows.append({"mode": c.mode, "method": c.method, "ms_per_step": ms,
                     "images_per_s": 1000 * args.batch / ms, "ms_per_step_rounds": t})
    print(f"\n| path | method | images/s | ms/step (median of {args.rounds} rounds) |\n|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['method']} | {r['images_per_s']:.0f} | {r['ms_per_step']:.2f} |")
    # paired per round: official / fast (both Self-KD), fast Self-KD / fast baseline
    speedups = [o / f for o, f in zip(times[0], times[1])]
    overheads = [100 * (s_ / b - 1) for s_, b in zip(times[1], times[2])]
    speedup, s_lo, s_hi = _median_spread(speedups)
    overhead, o_lo, o_hi = _median_spread(overheads)
    print(f"\nfast / official (both Self-KD): {speedup:.2f}x, median of {args.rounds} paired rounds "
          f"(range {s_lo:.2f}-{s_hi:.2f})   (target >= 3x on a GPU)")
    print(f"Self-KD overhead on the fast path: {overhead:+.1f}% step time, median of {args.rounds} paired "
          f"rounds (range {o_lo:+.1f} to {o_hi:+.1f})   (target <= 2%)")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": card, "args": vars(args), "rows": rows,
                                               "speedup": speedup, "speedup_rounds": speedups,
                                               "selfkd_overhead_pct": overhead,
                                               "selfkd_overhead_pct_rounds": overheads}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
