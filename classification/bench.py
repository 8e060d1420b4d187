"""Throughput benchmark, measured side by side in one run (issue 4, item 8):

  official  DataLoader with CPU transforms, fp32, prediction bank on the CPU (a host copy of the
            batch's rows every step): the official PS-KD training loop's shape
  fast      uint8 data resident on the device, crop/flip on the device in batch, bf16 autocast,
            channels_last, bank on the device (+ torch.compile with --compile)
  and the Self-KD (bank) overhead: fast-path step time of selfkd over baseline.

    python -m classification.bench [--data ../shared/data/cifar10-jpeg/cifar10_jpeg.npz] [--model preact_resnet18]

Every configuration runs the project's own train_step (classification.train).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .selfkd import method_parts
from .data import CIFAR_MEAN, CIFAR_STD, ArrayImages, EpochSampler, Indexed, cifar_transforms, load_cifar10_npz
from .fastpath import DeviceData
from .models import build_model
from .method_config import MethodConfig
from .train import Dist, train_step

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg" / "cifar10_jpeg.npz"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(mode: str, method: str, images, labels, args, device) -> dict:
    """Images/s and ms/step of `steps` training steps after `warmup` steps."""
    torch.manual_seed(0)
    k = 10  # CIFAR-10
    model = build_model(args.model, k).to(device)
    fast = mode == "fast"
    if fast:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    step_model = torch.compile(model) if (fast and args.compile) else model
    parts = method_parts(method)
    from core.bank import PredictionBank
    bank = PredictionBank(len(labels), k, device if fast else "cpu") if "selfkd" in parts else None
    n_steps = args.warmup + args.steps
    order = list(EpochSampler(len(labels), 0, 1))
    if fast:
        dd = DeviceData(images, labels, CIFAR_MEAN[10], CIFAR_STD[10], device)
        batches = dd.batches(order * (1 + n_steps * args.batch // len(order)), args.batch, channels_last=True)
    else:
        ds = Indexed(ArrayImages(images, labels, cifar_transforms(10, True)))
        batches = iter(DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                  pin_memory=device.type == "cuda", drop_last=True, persistent_workers=args.workers > 0))
    d, mcfg = Dist(str(device)), MethodConfig(name=method)
    amp = torch.bfloat16 if fast and device.type == "cuda" else None
    model.train()
    t0 = None
    for i in range(n_steps):
        if i == args.warmup:
            _sync(device)
            t0 = time.perf_counter()
        x, y, idx = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        train_step(step_model, opt, x, y, idx, parts, bank, 0.5, mcfg, k, d, amp)
    _sync(device)
    dt = time.perf_counter() - t0
    return {"mode": mode, "method": method, "images_per_s": args.steps * args.batch / dt,
            "ms_per_step": 1000 * dt / args.steps}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="cifar10_jpeg.npz, or 'synthetic'")
    p.add_argument("--model", default="preact_resnet18")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--n", type=int, default=0, help="use the first n training images (0: all)")
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
            print(f"error: data file not found: {args.data}", file=sys.stderr)
            return 2
        images, labels = load_cifar10_npz(Path(args.data), "train")
        if args.n:  # a random subset: the file is sorted by class
            sel = np.sort(np.random.default_rng(0).permutation(len(labels))[:args.n])
            images, labels = images[sel], labels[sel]
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {card}  torch {torch.__version__}  model {args.model}  batch {args.batch}  "
          f"steps {args.steps} (+{args.warmup} warm-up)  compile {args.compile}")
    rows = [measure(mode, method, images, labels, args, device)
            for mode, method in (("official", "selfkd"), ("fast", "selfkd"), ("fast", "baseline"))]
    print(f"\n| path | method | images/s | ms/step |\n|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['method']} | {r['images_per_s']:.0f} | {r['ms_per_step']:.2f} |")
    speedup = rows[1]["images_per_s"] / rows[0]["images_per_s"]
    overhead = 100 * (rows[1]["ms_per_step"] / rows[2]["ms_per_step"] - 1)
    print(f"\nfast / official (both Self-KD): {speedup:.2f}x   (target >= 3x on a GPU)")
    print(f"Self-KD overhead on the fast path: {overhead:+.1f}% step time   (target <= 2%)")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": card, "args": vars(args), "rows": rows,
                                               "speedup": speedup, "selfkd_overhead_pct": overhead}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
