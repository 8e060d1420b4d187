"""Evaluate a classifier: softmax probabilities over a loader, the Table-1 metrics (core.metrics),
and the same metrics after post-hoc temperature scaling (core.calibration).

    python -m classification.evaluate RUN_DIR_OR_CHECKPOINT [--split test|holdout] [--record]
                                      [--calibration-images N]

re-evaluates a run from its checkpoint (no retraining): the run's data and model come from the
config stored in the checkpoint. It prints one JSON object: the raw metrics, the reliability
bins and "temperature_scaled" (fitted T, where it was fitted ("ts_fit"), every metric after
scaling). --record appends it to the run's log.jsonl as an "eval" record (reports read the newest
one); existing lines are never rewritten.

Where the temperature is fitted (never on the scored data itself, never on test data):
  run with a holdout (data.holdout_fraction > 0), --split test:  on the holdout ("holdout")
  run with a holdout, --split holdout:  2-fold cross-fitting on the holdout ("holdout-2fold")
  run without a holdout, --split test:  2-fold cross-fitting on the test set ("test-2fold")
  run without a holdout, --split test --calibration-images N:  on N un-augmented training images
      outside the run's data.train_subset, a fixed random draw ("unused-train-N"); the run trained
      on a subset, so these are images its model never saw.
"""
from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from functools import partial
from pathlib import Path

import torch

from core.calibration import temperature_scaled
from core.cli import UserError, entry_point
from core.metrics import METRIC_NAMES, classification_metrics


def _forward(model, batches, device, amp_dtype=None):
    """(logits on the device, labels on the device) per batch, in eval mode, without gradients."""
    model.eval()
    with torch.no_grad():
        for x, y, _ in batches:
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(x.to(device, non_blocking=True))
            yield logits, y.to(logits.device)


def predict(model, batches, device, amp_dtype=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, K) float32 probabilities on the cpu, (N,) labels and (N,) float64 log p(label) (from
    log_softmax of the logits: exact where the float32 probability underflows), in batch order.
    batches: any iterable of (x, y, idx), e.g. a DataLoader."""
    probs, labels, label_logp = [], [], []
    for logits, y in _forward(model, batches, device, amp_dtype):
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        label_logp.append(torch.log_softmax(logits.double(), dim=1).gather(1, y[:, None])[:, 0].cpu())
        labels.append(y.cpu())
    return torch.cat(probs), torch.cat(labels), torch.cat(label_logp)


def predict_logits(model, batches, device, amp_dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) float32 logits on the cpu and (N,) labels, in batch order (temperature scaling needs
    logits, not probabilities)."""
    out = [(logits.float().cpu(), y.cpu()) for logits, y in _forward(model, batches, device, amp_dtype)]
    return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])


def evaluate(model, batches, device, n_bins: int = 10, amp_dtype=None, extra: bool = True) -> tuple[dict, dict]:
    """Metrics of `model` on `batches`; extra=False skips the calibration metrics beyond the
    paper's (the fit subset needs only top-1, NLL and confidence)."""
    probs, labels, label_logp = predict(model, batches, device, amp_dtype)
    return classification_metrics(probs, labels, n_bins, label_logp, extra=extra)


def scaled_evaluation(logits_of, batches, n_bins: int = 10, split: str = "test", fit_batches=None,
                      fit_name: str = "holdout") -> dict:
    """core.calibration.temperature_scaled of a model on `batches` (the scored `split`), its
    logits_of(batches) -> ((N, K) logits, (N,) labels) (predict_logits with the model, device and
    autocast dtype bound): T fitted on `fit_batches` (held-out data, "ts_fit": `fit_name`) or,
    without them, by 2-fold cross-fitting on `batches` ("<split>-2fold")."""
    logits, labels = logits_of(batches)
    fit = logits_of(fit_batches) if fit_batches is not None else (None, None)
    return temperature_scaled(logits, labels, n_bins, *fit, split=split, fit_name=fit_name)


# ----------------------------------------------------------------------------- the CLI
CALIBRATION_FIT = "unused-train"  # ts_fit of --calibration-images N: "unused-train-N"


class EvaluateError(UserError):
    """A user's mistake: one line on stderr, exit code 2."""


def _checkpoint_of(path: Path) -> tuple[Path, Path]:
    """(run folder, checkpoint) of RUN_DIR_OR_CHECKPOINT."""
    if path.is_dir():
        ckpt = path / "checkpoint.pt"
        if not ckpt.is_file():
            raise EvaluateError(f"{path} holds no checkpoint.pt (not a classification run folder?)")
        return path, ckpt
    if not path.is_file():
        raise EvaluateError(f"{path}: no such run folder or checkpoint")
    return path.parent, path


def _section(cfg: dict, key: str) -> dict:
    value = cfg.get(key)
    return value if isinstance(value, dict) else {}


def load_run(ckpt: Path, device: torch.device, data_root: str | None = None, calibration_images: int = 0):
    """(model with the checkpoint's weights on `device`, its config dict, checkpoint epoch,
    datasets {"test": ..., "holdout": ... (runs with a holdout), "calibration": ... (with
    calibration_images: that many training images outside the run's training subset)}) from a
    classification checkpoint."""
    from core.checkpoint import load_checkpoint
    from .data import DataConfig, build_datasets, check_data_path, unused_train_images
    from .models import build_model, run_model_kwargs

    state = load_checkpoint(ckpt, map_location="cpu")
    cfg = state.get("config")
    if not isinstance(cfg, dict) or "model" not in state or "data" not in cfg:
        raise EvaluateError(f"{ckpt} is not a classification checkpoint of this project (no model / config)")
    for m in cfg.get("imports") or []:  # the run's own @register modules
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise EvaluateError(f"imports: cannot import {m!r} ({e})") from None
    data = _section(cfg, "data")
    root = data_root if data_root is not None else str(data.get("root", ""))
    try:
        check_data_path(data["name"], root, False)
    except (ValueError, FileNotFoundError) as e:
        raise EvaluateError(f"{e} (the run's data.root is relative to where it was trained; "
                            f"--data-root sets another)") from None
    common = dict(name=data["name"], root=root, download=False, augment=False, fit_subset=0,
                  train_subset=int(data.get("train_subset", 0)), test_subset=int(data.get("test_subset", 0)),
                  holdout_seed=int(data.get("holdout_seed", 0)))
    fraction = float(data.get("holdout_fraction", 0.0) or 0.0)
    normalization = str(data.get("normalization", "own"))
    _, test, _, num_classes = build_datasets(DataConfig(holdout_fraction=0.0, **common), normalization)
    sets = {"test": test}
    if fraction:
        sets["holdout"] = build_datasets(DataConfig(holdout_fraction=fraction, **common), normalization)[1]
    if calibration_images:
        try:
            sets["calibration"] = unused_train_images(DataConfig(holdout_fraction=fraction, **common),
                                                      calibration_images, normalization=normalization)
        except ValueError as e:
            raise EvaluateError(f"--calibration-images: {e}") from None
    if state.get("num_classes") not in (None, num_classes):
        raise EvaluateError(f"{ckpt} is for {state['num_classes']} classes, the data has {num_classes}")
    kwargs = run_model_kwargs(cfg.get("model_kwargs"), data["name"], _section(cfg, "method").get("name", "baseline"))
    model = build_model(cfg["model"], num_classes, **kwargs)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise EvaluateError(f"{ckpt} does not fit its model ({str(e).strip().splitlines()[0]})") from None
    return model.to(device), cfg, state.get("epoch"), sets


def run_evaluation(target: str | Path, split: str | None = None, device: str = "auto",
                   data_root: str | None = None, batch_size: int = 0, calibration_images: int = 0) -> dict:
    """The record of one re-evaluation (see the module doc): {"split", "checkpoint", "epoch",
    "metrics", "reliability", "temperature_scaled"}. split None: the run's own evaluation split.
    calibration_images N > 0: the temperature is fitted on N training images outside the run's
    training subset (a run without a holdout, scoring the test set)."""
    from torch.utils.data import DataLoader

    from core.dist import check_device

    _, ckpt = _checkpoint_of(Path(target))
    try:
        check_device(device)
    except ValueError as e:
        raise EvaluateError(str(e)) from None
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    if calibration_images and split not in (None, "test"):
        raise EvaluateError("--calibration-images fits the temperature for the test set; use --split test")
    model, cfg, epoch, sets = load_run(ckpt, dev, data_root, calibration_images)
    split = split or ("holdout" if "holdout" in sets else "test")
    if split not in sets:
        raise EvaluateError(f"{ckpt}: the run has no holdout split (data.holdout_fraction is 0); "
                            f"use --split test")
    bs = batch_size or int(_section(cfg, "optim").get("eval_batch_size", 256))
    loader = lambda ds: DataLoader(ds, batch_size=bs, shuffle=False, num_workers=0)  # noqa: E731
    amp = torch.bfloat16 if cfg.get("amp") == "bf16" else None
    n_bins = int(cfg.get("n_bins", 10))
    metrics, bins = evaluate(model, loader(sets[split]), dev, n_bins, amp)
    # scoring the test set: fit on the run's holdout, or on the calibration images; else cross-fit
    fit, fit_name = None, "holdout"
    if split == "test" and "holdout" in sets:
        fit = loader(sets["holdout"])
    elif split == "test" and "calibration" in sets:
        fit, fit_name = loader(sets["calibration"]), f"{CALIBRATION_FIT}-{calibration_images}"
    ts = scaled_evaluation(partial(predict_logits, model, device=dev, amp_dtype=amp), loader(sets[split]),
                           n_bins, split, fit, fit_name)
    return {"split": split, "checkpoint": ckpt.name, "epoch": epoch, "metrics": metrics,
            "reliability": bins, "temperature_scaled": ts}


def _recorded(log, split: str, ckpt: str, epoch, calibration_images: int = 0) -> dict | None:
    """The newest eval record of `log` for this split and checkpoint epoch, with its temperature
    fitted where this call would fit it (on `calibration_images` unused training images, or not),
    that holds every metric this code computes (so a record from before a metric was added is
    made anew)."""
    for rec in reversed(log.extra):
        ts = rec.get("temperature_scaled")
        if (rec.get("type") == "eval" and rec.get("split") == split and rec.get("checkpoint") == ckpt
                and rec.get("epoch") == epoch and isinstance(ts, dict)
                and set(METRIC_NAMES) <= set(rec.get("metrics") or {})
                and _fit_of(calibration_images, str(ts.get("ts_fit")))):
            return rec
    return None


def _fit_of(calibration_images: int, ts_fit: str) -> bool:
    """Whether a record's `ts_fit` is the fit a call with `calibration_images` makes."""
    if calibration_images:
        return ts_fit == f"{CALIBRATION_FIT}-{calibration_images}"
    return not ts_fit.startswith(CALIBRATION_FIT + "-")


@entry_point()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m classification.evaluate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", metavar="RUN_DIR_OR_CHECKPOINT",
                    help="a run folder (<out_dir>/<table>/<run_id>/, its checkpoint.pt is used) or a checkpoint file")
    ap.add_argument("--split", choices=("test", "holdout"), default=None,
                    help="the split to score (default: the run's own evaluation split: holdout when "
                         "it trained with data.holdout_fraction > 0, else test)")
    ap.add_argument("--record", action="store_true",
                    help="append the result as an 'eval' record to the run's log.jsonl (the run must "
                         "have finished and not be in use; its folder is the checkpoint's); an "
                         "evaluation already recorded for this split and checkpoint epoch is printed, "
                         "not run again")
    ap.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda[:N], mps")
    ap.add_argument("--data-root", default=None,
                    help="the data folder, when it is not the run's data.root (relative to the "
                         "folder the run was trained from)")
    ap.add_argument("--batch-size", type=int, default=0,
                    help="evaluation batch size (default: the run's optim.eval_batch_size)")
    ap.add_argument("--calibration-images", type=int, default=0, metavar="N",
                    help="a run without a holdout that trained on data.train_subset images: fit the "
                         "temperature for the test set on N un-augmented training images outside "
                         "that subset (a fixed random draw; ts_fit \"unused-train-N\") instead of "
                         "cross-fitting on the test set")
    args = ap.parse_args(argv)
    from core.checkpoint import load_checkpoint
    lock = None
    try:
        if args.batch_size < 0:
            raise EvaluateError(f"--batch-size must be >= 0, got {args.batch_size}")
        if args.calibration_images < 0:
            raise EvaluateError(f"--calibration-images must be >= 0, got {args.calibration_images}")
        run_dir, ckpt = _checkpoint_of(Path(args.target))
        if args.record:
            from core.run import lock_finished_run
            try:
                lock, log = lock_finished_run(run_dir)  # held until the record is written
            except ValueError as e:  # not finished, or in use (ConfigError)
                raise EvaluateError(str(e)) from None
            epoch = load_checkpoint(ckpt).get("epoch")
            split = args.split or str(log.meta.get("eval_split") or "test")
            done = _recorded(log, split, ckpt.name, epoch, args.calibration_images)
            if done is not None:
                print(json.dumps({k: done[k] for k in ("split", "checkpoint", "epoch", "metrics",
                                                       "temperature_scaled")}))
                return 0
        result = run_evaluation(ckpt, args.split, args.device, args.data_root, args.batch_size,
                                args.calibration_images)
        if args.record:
            from core.runlog import RunLogWriter, now_iso
            command = "python -m classification.evaluate " + " ".join(
                shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
            RunLogWriter(run_dir / "log.jsonl").extra("eval", task="classification", **result,
                                                      command=command, at=now_iso())
    finally:
        if lock is not None:
            lock.release()
    print(json.dumps({k: result[k] for k in ("split", "checkpoint", "epoch", "metrics", "temperature_scaled")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
