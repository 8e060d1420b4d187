"""Every classification method and sub-config on tiny CPU runs, one thread: the epoch lines
(wall-clock fields dropped) as the reference that tests/classification/test_method_golden.py
holds the training code to, bit for bit.

    python tools/method_golden.py [--write]   # --write: (re)generate tests/fixtures/method_golden.json

Regenerate only when a method's numbers are meant to change, and say why in the commit.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from core.cli import entry_point

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "fixtures" / "method_golden.json"
NPZ = REPO.parent / "shared" / "data" / "cifar10-jpeg" / "cifar10_jpeg.npz"

DIGITS = ["model=small_cnn", "data.name=digits", "data.train_subset=160", "data.test_subset=64",
          "data.fit_subset=32", "epochs=3", "optim.batch_size=32", "optim.lr=0.05", "optim.milestones=[2]"]
PYRAMID = ["model=tiny_pyramidnet", "imports=[tests.fixtures.plugins.tiny_pyramidnet]", "data.name=digits",
           "data.train_subset=64", "data.test_subset=32", "data.fit_subset=0", "epochs=2",
           "optim.batch_size=16", "optim.lr=0.05"]
CIFAR = ["model=small_cnn", "data.name=cifar10_npz", f"data.root={NPZ}", "data.train_subset=64",
         "data.test_subset=32", "data.fit_subset=16", "epochs=2", "optim.batch_size=16", "optim.lr=0.05"]

# name -> overrides; every method, every teacher / alpha schedule / bank variant, each regulariser
CASES = {
    "digits/baseline": DIGITS + ["method.name=baseline"],
    "digits/ls": DIGITS + ["method.name=ls"],
    "digits/ls_eps0.3": DIGITS + ["method.name=ls", "method.ls.eps=0.3"],
    "digits/selfkd": DIGITS + ["method.name=selfkd"],
    **{f"digits/selfkd_{k}": DIGITS + ["method.name=selfkd", f"method.selfkd.alpha_kind={k}", "method.selfkd.alpha_T=0.6"]
       for k in ("fixed", "step", "exp", "cosine")},
    "digits/selfkd_snapshot": DIGITS + ["method.name=selfkd", "method.selfkd.teacher=snapshot"],
    "digits/selfkd_snapshot_bf16": DIGITS + ["method.name=selfkd", "method.selfkd.teacher=snapshot", "amp=bf16"],
    "digits/selfkd_bank_fp16": DIGITS + ["method.name=selfkd", "method.selfkd.bank.dtype=float16"],
    "digits/selfkd_bank_top3": DIGITS + ["method.name=selfkd", "method.selfkd.bank.topk=3"],
    "digits/selfkd_bank_mmap": DIGITS + ["method.name=selfkd", "method.selfkd.bank.storage=mmap"],
    "digits/cutout": DIGITS + ["method.name=cutout", "method.cutout.size=3"],
    "digits/cutout_selfkd": DIGITS + ["method.name=cutout_selfkd", "method.cutout.size=3"],
    "digits/cutout_selfkd_noupdate": DIGITS + ["method.name=cutout_selfkd", "method.cutout.size=3",
                                               "method.cutout.updates_bank=false"],
    "digits/cutout_selfkd_snapshot": DIGITS + ["method.name=cutout_selfkd", "method.cutout.size=3",
                                               "method.selfkd.teacher=snapshot"],
    "digits/cutmix": DIGITS + ["method.name=cutmix"],
    "digits/cutmix_p1_beta0.5": DIGITS + ["method.name=cutmix", "method.cutmix.prob=1.0", "method.cutmix.beta=0.5"],
    "digits/cutmix_selfkd": DIGITS + ["method.name=cutmix_selfkd"],
    "digits/cutmix_selfkd_snapshot": DIGITS + ["method.name=cutmix_selfkd", "method.selfkd.teacher=snapshot"],
    "digits/cskd": DIGITS + ["method.name=cskd"],
    "digits/cskd_T2": DIGITS + ["method.name=cskd", "method.cskd.temperature=2.0", "method.cskd.lam=0.5"],
    "digits/tfkd": DIGITS + ["method.name=tfkd"],
    "digits/tfkd_variant": DIGITS + ["method.name=tfkd", "method.tfkd.alpha=0.3", "method.tfkd.temperature=5.0",
                                     "method.tfkd.correct_prob=0.9"],
    "pyramid/cutmix_sd": PYRAMID + ["method.name=cutmix_sd"],
    "pyramid/cutmix_sd_selfkd": PYRAMID + ["method.name=cutmix_sd_selfkd"],
    "cifar/baseline": CIFAR + ["method.name=baseline"],
    "cifar/selfkd": CIFAR + ["method.name=selfkd"],
    "cifar/cutout_selfkd": CIFAR + ["method.name=cutout_selfkd"],
    "cifar/cutmix_selfkd": CIFAR + ["method.name=cutmix_selfkd"],
    "cifar/cskd": CIFAR + ["method.name=cskd"],
    "cifar/selfkd_fast": CIFAR + ["method.name=selfkd", "data.on_device=true"],
    "cifar/cskd_fast": CIFAR + ["method.name=cskd", "data.on_device=true"],
    "cifar/cutmix_selfkd_fast": CIFAR + ["method.name=cutmix_selfkd", "data.on_device=true"],
}
WALL_CLOCK = ("epoch_s", "wall_s")


def run_case(overrides, out_dir) -> dict:
    """The epoch lines and the final line of one tiny run, wall-clock fields dropped."""
    from classification.train import TrainConfig, train
    from core.config import load_config
    from core.runlog import read_run_log
    cfg = load_config(TrainConfig, None, [*overrides, "progress=false", "data.num_workers=0", "threads=1",
                                          f"out_dir={out_dir}", "run_id=r"])
    log = read_run_log(train(cfg) / "log.jsonl", strict=True)
    drop = lambda line: {k: v for k, v in line.items() if k not in WALL_CLOCK}  # noqa: E731
    return {"epochs": [drop(e) for e in log.epochs], "final": drop(log.final)}


def run_all(names=None, cifar: bool = True) -> dict:
    names = [n for n in (names or CASES) if cifar or not n.startswith("cifar/")]
    with tempfile.TemporaryDirectory() as tmp:
        return {n: run_case(CASES[n], Path(tmp) / n.replace("/", "_")) for n in names}


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", action="store_true", help=f"write {GOLDEN.relative_to(REPO)}")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    out = {"torch": torch.__version__, "cases": run_all(cifar=NPZ.is_file())}
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    if args.write:
        GOLDEN.write_text(text)
        print(f"wrote {GOLDEN} ({len(out['cases'])} cases)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
