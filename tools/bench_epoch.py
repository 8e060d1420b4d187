"""What one CPU training epoch costs, part by part, measured side by side in one process.

    OMP_NUM_THREADS=1 python tools/bench_epoch.py [--model resnet20] [--n-train 4500] [--n-test 10000]

Every variant is built once, then timed interleaved (A B C ... A B C ..., --rounds rounds of
--steps steps each) so that the load of a shared machine hits all of them alike; each ratio is the
median of the per-round ratios, with its range. The parts:

  model step    a plain PyTorch loop: forward, F.cross_entropy, backward, SGD step on ready float
                batches (no data pipeline): the floor every other figure is compared with
  + project loss   the same step with the project's baseline loss (one-hot targets,
                core.losses.soft_cross_entropy) and train_epoch's running metrics (softmax, max,
                sums of loss / correct / confidence)
  + channels_last / + torch.compile / 2 threads   the plain step with that one change
  augmentation  crop + flip + normalise of one batch: the fast path (uint8 images resident,
                classification.fastpath) and the torchvision PIL pipeline through a DataLoader
                without workers (the default path of a config without data.on_device)
  evaluation    a forward pass in eval mode over --n-fit (fit subset) and --n-test images,
                with the metrics (classification.evaluate), per image

It ends with an epoch estimate: --n-train training images plus the fit and test passes, every
epoch or every --eval-every epochs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cli import UserError, entry_point  # noqa: E402
from core.losses import soft_cross_entropy  # noqa: E402
from core.targets import self_kd_targets  # noqa: E402
from classification.data import (CIFAR_MEAN, CIFAR_STD, ArrayImages, Indexed, cifar_transforms,  # noqa: E402
                                 load_cifar10_npz)
from classification.evaluate import evaluate  # noqa: E402
from classification.fastpath import DeviceData  # noqa: E402
from classification.models import build_model  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg" / "cifar10_jpeg.npz"


class Step:
    """One training-step variant: its own model and optimiser (same initial weights), fed the same
    ready float batches; ``block(n)`` returns seconds for n steps."""

    def __init__(self, name, model_name, batches, threads=1, channels_last=False, compile_=False,
                 project=False, kwargs=None):
        torch.manual_seed(0)
        self.name, self.threads, self.project, self.channels_last = name, threads, project, channels_last
        model = build_model(model_name, 10, **(kwargs or {}))
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        self.model = torch.compile(model) if compile_ else model
        self.model.train()
        self.batches, self.i = batches, 0
        self.compile_s = 0.0
        if compile_:  # the first steps compile (forward and backward): timed apart, paid once a run
            t0 = time.perf_counter()
            self.block(2)
            self.compile_s = time.perf_counter() - t0

    def block(self, n: int) -> float:
        torch.set_num_threads(self.threads)
        t0 = time.perf_counter()
        for _ in range(n):
            x, y = self.batches[self.i % len(self.batches)]
            self.i += 1
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = self.model(x)
            if self.project:  # classification.train's baseline: one-hot soft targets + running metrics
                loss = soft_cross_entropy(logits, self_kd_targets(y, torch.zeros_like(logits), 0.0))
            else:
                loss = F.cross_entropy(logits, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.project:
                conf, pred = torch.softmax(logits.detach().float(), dim=1).max(dim=1)
                torch.stack([loss.detach() * len(y), (pred == y).sum(), conf.sum()])
        torch.set_num_threads(1)
        return time.perf_counter() - t0


class Augment:
    """Producing batches of training images: the fast path or the PIL pipeline."""

    def __init__(self, name, images, labels, batch):
        self.name, self.batch = name, batch
        if name == "fast path (uint8, in batch)":
            self.dd = DeviceData(images, labels, (CIFAR_MEAN[10], CIFAR_STD[10]), "cpu", augment=True)
            self.order = torch.randperm(len(labels))
        else:
            ds = Indexed(ArrayImages(images, labels, cifar_transforms(10, True, True)))
            self.loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0)
            self.it = iter(self.loader)

    def block(self, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            if hasattr(self, "dd"):
                s = torch.randint(0, len(self.order) - self.batch, ()).item()
                self.dd.batch(self.order[s:s + self.batch])
            else:
                try:
                    next(self.it)
                except StopIteration:
                    self.it = iter(self.loader)
                    next(self.it)
        return time.perf_counter() - t0


def interleaved(variants, steps: int, rounds: int) -> list[list[float]]:
    """Seconds per step of each variant in each round (after one warm-up step each)."""
    for v in variants:
        v.block(1)
    times = [[] for _ in variants]
    for _ in range(rounds):
        for v, t in zip(variants, times):
            t.append(v.block(steps) / steps)
    return times


def med_range(values) -> str:
    v = sorted(values)
    return f"{statistics.median(v):.2f} ({v[0]:.2f}-{v[-1]:.2f})"


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--model", default="resnet20")
    p.add_argument("--width", type=int, default=0, help="model_kwargs width (resnet20 / resnet56); 0: the default")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n-train", type=int, default=4500, help="training images per epoch, for the estimate")
    p.add_argument("--n-fit", type=int, default=2000)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--eval-every", type=int, default=5, help="for the estimate with evaluation every k epochs")
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    args = p.parse_args(argv)
    if not Path(args.data).is_file():
        raise UserError(f"data file not found: {args.data}")
    torch.set_num_threads(1)
    n_img = 2048  # decoded images: batches are drawn from these
    sel = sorted(np.random.default_rng(0).permutation(50000)[:n_img].tolist())
    imgs, labels = load_cifar10_npz(Path(args.data), "train", sel)
    imgs, labels = imgs[sel], labels[sel]
    dd = DeviceData(imgs, labels, (CIFAR_MEAN[10], CIFAR_STD[10]), "cpu", augment=True)
    order = torch.randperm(n_img, generator=torch.Generator().manual_seed(0))
    batches = [dd.batch(order[s:s + args.batch])[:2] for s in range(0, n_img - args.batch + 1, args.batch)]
    kw = {"width": args.width} if args.width else {}
    print(f"torch {torch.__version__}, {args.model}{' width ' + str(args.width) if args.width else ''}, "
          f"batch {args.batch}, {args.rounds} rounds x {args.steps} steps, interleaved; "
          f"OMP threads set per variant (1 unless named)", flush=True)

    steps = [Step("plain PyTorch loop", args.model, batches, kwargs=kw),
             Step("+ project loss and running metrics", args.model, batches, project=True, kwargs=kw),
             Step("+ channels_last", args.model, batches, channels_last=True, kwargs=kw),
             Step("2 threads", args.model, batches, threads=2, kwargs=kw)]
    if not args.no_compile:
        try:
            steps.append(Step("+ torch.compile", args.model, batches, compile_=True, kwargs=kw))
        except Exception as e:  # no C++ toolchain, unsupported op, ...: say so and go on
            print(f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    augs = [Augment("fast path (uint8, in batch)", imgs, labels, args.batch),
            Augment("torchvision PIL, DataLoader 0 workers", imgs, labels, args.batch)]
    times = interleaved(steps + augs, args.steps, args.rounds)
    st, at = times[:len(steps)], times[len(steps):]
    plain = st[0]
    print(f"\n| training step variant | ms/step (median) | / plain loop, median of rounds (range) |\n|---|---:|---:|")
    for s, t in zip(steps, st):
        extra = f" (+{s.compile_s:.0f} s compile, once)" if s.compile_s else ""
        print(f"| {s.name}{extra} | {1000 * statistics.median(t):.0f} | "
              f"{med_range([a / b for a, b in zip(t, plain)])} |")
    print(f"\n| augmentation of one batch | ms/batch (median) | / plain step |\n|---|---:|---:|")
    for a, t in zip(augs, at):
        print(f"| {a.name} | {1000 * statistics.median(t):.1f} | {med_range([x / b for x, b in zip(t, plain)])} |")

    # evaluation: eval-mode forward + metrics, per image, on un-augmented images
    model = steps[0].model
    ev = DeviceData(imgs, labels, (CIFAR_MEAN[10], CIFAR_STD[10]), "cpu", augment=False)
    eval_s = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        evaluate(model, ev.batches(list(range(1024)), 256), torch.device("cpu"))
        eval_s.append((time.perf_counter() - t0) / 1024)
    per_eval = statistics.median(eval_s)
    per_train = statistics.median(st[1]) / args.batch  # the project's step, per image
    aug = statistics.median(at[0]) / args.batch
    train_s = args.n_train * (per_train + aug)
    fit_s, test_s = args.n_fit * per_eval, args.n_test * per_eval
    print(f"\neval forward + metrics: {1000 * per_eval:.2f} ms/image = {per_eval / per_train:.2f} x a training "
          f"image ({1000 * per_train:.2f} ms with the project's step, + {1000 * aug:.2f} ms fast-path augmentation)")
    print(f"\nepoch estimate, {args.n_train} training images, fit {args.n_fit}, test {args.n_test}:")
    print(f"  training {train_s:.1f} s + fit pass {fit_s:.1f} s + test pass {test_s:.1f} s = "
          f"{train_s + fit_s + test_s:.1f} s per epoch, evaluating every epoch")
    per_k = train_s + (fit_s + test_s) / args.eval_every
    print(f"  {per_k:.1f} s per epoch, evaluating every {args.eval_every} epochs "
          f"({100 * (1 - per_k / (train_s + fit_s + test_s)):.0f}% less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
