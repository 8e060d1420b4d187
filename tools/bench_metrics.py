"""Time core.metrics.classification_metrics on N x K float32 probabilities beside torchmetrics'
ECE + accuracy on the same input, in one process (medians of --repeats).

    OMP_NUM_THREADS=1 python tools/bench_metrics.py [--n 1000000] [--k 100]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from core.cli import entry_point
from core.metrics import classification_metrics


def median_time(f, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    probs = torch.softmax(torch.from_numpy(rng.standard_normal((args.n, args.k), dtype=np.float32) * 3), 1)
    labels = torch.from_numpy(rng.integers(0, args.k, args.n))
    pn, yn = probs.numpy(), labels.numpy()
    ours = median_time(lambda: classification_metrics(pn, yn), args.repeats)
    extra = median_time(lambda: classification_metrics(pn, yn, extra=True), args.repeats)
    import torchmetrics.functional.classification as tm
    theirs = median_time(lambda: (tm.multiclass_calibration_error(probs, labels, num_classes=args.k, n_bins=10),
                                  tm.multiclass_accuracy(probs, labels, num_classes=args.k, average="micro")),
                         args.repeats)
    print(f"{args.n} x {args.k} float32, median of {args.repeats}, {torch.get_num_threads()} thread(s):")
    print(f"  core.metrics.classification_metrics (top-1, top-5, NLL, ECE, AURC, E-AURC, conf): {ours:.2f} s")
    print(f"  ... with extra=True (+ Brier, 15-bin, adaptive and classwise ECE):             {extra:.2f} s")
    print(f"  torchmetrics ECE + accuracy:                                                   {theirs:.2f} s")
    print(f"  ratio torchmetrics / ours: {theirs / ours:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
