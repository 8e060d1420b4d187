"""Update time of the prediction bank in memory and as a memory-mapped file (BENCHMARKS.md).

    OMP_NUM_THREADS=1 python tools/bench_bank.py [--n 300000] [--k 1000] [--batch 256] [--dir /tmp]

Two epochs of random-order batch updates (every row once an epoch, as training writes them) for
each storage, in turn, twice: the in-memory bank, the memory-mapped bank as a sparse file (how
numpy creates it), and the memory-mapped bank with its blocks reserved up front (what
core.bank.PredictionBank does). Prints median / worst update and the epoch's total per storage.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import core.bank as cb  # noqa: E402
from core.cli import UserError, entry_point  # noqa: E402


def epoch_times(bank, n: int, batch: int, probs) -> list[float]:
    perm, ts = torch.randperm(n), []
    for s in range(0, n, batch):
        idx = perm[s:s + batch]
        t = time.perf_counter()
        bank.update(idx, probs[:len(idx)])
        ts.append(time.perf_counter() - t)
    return ts


@entry_point()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300_000, help="rows (samples)")
    ap.add_argument("--k", type=int, default=1000, help="classes")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the bank file goes")
    args = ap.parse_args(argv)
    if not Path(args.dir).is_dir():
        raise UserError(f"--dir {args.dir}: no such folder")
    probs = torch.softmax(torch.randn(args.batch, args.k), 1)
    path = Path(args.dir) / f"bench_bank_{os.getpid()}.npy"
    real = cb._preallocate
    print(f"{args.n} x {args.k} float32 ({args.n * args.k * 4 / 2**30:.2f} GiB), batch {args.batch}, "
          f"{torch.get_num_threads()} thread(s)")
    try:
        for _ in range(args.repeats):
            for name, p, pre in (("memory", None, True), ("mmap, sparse file", path, False),
                                 ("mmap, preallocated", path, True)):
                cb._preallocate = real if pre else (lambda _p: None)
                bank = cb.PredictionBank(args.n, args.k, path=p)
                cells = []
                for ep in (1, 2):
                    ts = sorted(epoch_times(bank, args.n, args.batch, probs))
                    cells.append(f"epoch {ep}: median {1000 * statistics.median(ts):.2f} ms, "
                                 f"worst {1000 * ts[-1]:.0f} ms, total {sum(ts):.1f} s")
                print(f"  {name:20s} " + " | ".join(cells), flush=True)
                del bank
                if p is not None and p.exists():
                    p.unlink()
    finally:
        cb._preallocate = real
        if path.exists():
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
