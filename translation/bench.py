"""Step time of Self-KD (teacher forward + student step) against the baseline step.

    python -m translation.bench --config translation/configs/multi30k_de_en_selfkd.yaml \
        [--steps 40] [--repeats 3] [key=value ...]

Builds the trainer exactly as fairseq-train does for that config, takes `steps` training
updates from the data, and times ``trainer.train_step`` on each update twice in a row: without
the teacher (plain NLL, the baseline's cost) and with the epoch-2 snapshot teacher (alpha > 0).
Prints one JSON line: median ms per update for each and their ratio (the issue's target is
<= 1.35). On CUDA the timings synchronise the device.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from itertools import islice

import torch

from core.cli import UserError, entry_point
from core.config import load_config
from translation.methods import rule_of
from translation.train import TrainConfig, check, fairseq_argv


def _time_step(trainer, samples, cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.train_step(samples)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench(cfg, steps: int, repeats: int, warmup: int = 3) -> dict:
    from fairseq import options, tasks

    import translation
    translation.register()
    from fairseq.data import iterators
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    check(cfg)
    if not rule_of(cfg.method.name).snapshot_teacher:
        raise UserError(f"bench times the teacher forward: it needs a method with a snapshot teacher "
                         f"(method.name=selfkd), got {cfg.method.name!r}")
    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        argv = fairseq_argv(cfg, tmp, use_cuda=cuda)
        fs = convert_namespace_to_omegaconf(
            options.parse_args_and_arch(options.get_training_parser(), input_args=argv))
        torch.manual_seed(cfg.seed)
        task = tasks.setup_task(fs.task)
        task.load_dataset("train")
        model = task.build_model(fs.model)
        criterion = task.build_criterion(fs.criterion)
        trainer = Trainer(fs, task, model, criterion)
        itr = trainer.get_train_iterator(epoch=1, load_dataset=False)
        updates = list(islice(iterators.GroupedIterator(itr.next_epoch_itr(shuffle=True),
                                                        cfg.optim.update_freq), warmup + steps))
        if len(updates) < warmup + steps:
            raise UserError(f"the training set has only {len(updates)} updates an epoch; "
                            f"lower --steps (asked for {warmup} + {steps})")
        # Paired, interleaved: each update is timed without the teacher (as at epoch 1: plain
        # NLL, the baseline's cost) and right after with it, so machine-load drift cancels.
        trainer.begin_epoch(2)  # snapshot the model as the teacher
        teacher = task.snapshot.model
        times = {False: [], True: []}  # with the teacher?
        for r in range(repeats):
            for i, samples in enumerate(updates):
                for with_teacher in (False, True):
                    task.snapshot.model = teacher if with_teacher else None
                    t = _time_step(trainer, samples, cuda)
                    if i >= warmup:
                        times[with_teacher].append(t)
    base, skd = statistics.median(times[False]), statistics.median(times[True])
    paired = statistics.median(b / a for a, b in zip(times[False], times[True]))
    return {"device": torch.cuda.get_device_name() if cuda else "cpu",
            "threads": torch.get_num_threads(), "precision": cfg.optim.precision,
            "model": f"N={cfg.model.layers} d={cfg.model.embed_dim} ff={cfg.model.ffn_dim}",
            "max_tokens": cfg.optim.max_tokens, "steps": steps * repeats,
            "baseline_ms": 1000 * base, "selfkd_ms": 1000 * skd, "ratio": skd / base, "ratio_paired_median": paired}


@entry_point()
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m translation.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    print(json.dumps(bench(load_config(TrainConfig, args.config, args.overrides), args.steps, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
