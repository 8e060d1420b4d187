"""A translation run's checkpoints: read safely, written atomically, resumed from a readable one.

* Reading: every checkpoint this package opens goes through core.checkpoint.load_checkpoint
  (weights_only=True: a file dropped into a run folder cannot run code) before fairseq loads it,
  so fairseq's own torch.load only ever sees a file that has passed the restricted unpickler.
* Writing: fairseq writes ``checkpoint_best.pt`` atomically (temp file + rename) but then copies
  it to ``checkpoint_last.pt`` in place; during a run ``fairseq_saves`` makes that copy atomic too
  (temp file in the same folder, fsync, os.replace), so a kill or a full disk mid-copy leaves the
  previous ``checkpoint_last.pt`` whole.
* Resuming: ``restore_point`` reads ``checkpoint_last.pt``; if it is unreadable (damaged outside
  this code, or torn by an older version's copy), ``checkpoint_best.pt``, which holds the same
  full training state as of its epoch, is the fallback.
* Averaging: ``average_checkpoints`` averages the weights of the last N epoch checkpoints
  (``checkpoint<epoch>.pt``) as fairseq's scripts/average_checkpoints.py does (``--inputs DIR
  --num-epoch-checkpoints N``), reading each file with weights_only=True.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.checkpoint import CheckpointError, load_checkpoint, replace_atomically
from core.cli import UserError

LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"
EPOCH_CHECKPOINT = re.compile(r"checkpoint(\d+)\.pt")  # fairseq's name of epoch t's checkpoint


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The state of a fairseq checkpoint, loaded with weights_only=True (CheckpointError, one
    line naming the file, when it is unreadable or not a fairseq checkpoint)."""
    from translation import allow_fairseq_checkpoints
    allow_fairseq_checkpoints()
    state = load_checkpoint(path)
    has_cfg = isinstance(state.get("cfg"), dict) or state.get("args") is not None  # (args: older fairseq)
    if not has_cfg or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"checkpoint {path} is not a fairseq checkpoint (no cfg and model); "
                              "a translation.train checkpoint is checkpoints/checkpoint_*.pt")
    return state


def task_settings(state: dict) -> dict:
    """The task section of a read_checkpoint state (source_lang, target_lang, ...)."""
    if isinstance(state.get("cfg"), dict):
        task = state["cfg"].get("task")
        return task if isinstance(task, dict) else {}
    return dict(vars(state["args"]))


@dataclass
class Position:
    """Where a training checkpoint stands: ``epochs`` fully trained, whether it was saved
    mid-epoch, fairseq's ``previous_training_time`` (seconds, every process that trained it)."""
    path: Path
    epochs: int
    mid_epoch: bool
    train_s: float


def checkpoint_position(path: Path) -> Position:
    """The Position of a training checkpoint. It comes from the data iterator (fairseq stores
    (epoch t + 1, 0 iterations) once epoch t is finished)."""
    state = read_checkpoint(path)
    try:
        extra = state["extra_state"]
        itr = extra["train_iterator"]
        return Position(Path(path), int(itr["epoch"]) - 1, int(itr["iterations_in_epoch"]) > 0,
                        float(extra.get("previous_training_time", 0.0)))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"checkpoint {path} holds no training state (extra_state."
                              "train_iterator); it is not a checkpoint to resume from") from None


def restore_point(save_dir: Path) -> Position:
    """The checkpoint a resume starts from: checkpoint_last.pt, or checkpoint_best.pt when the
    former is unreadable and the latter is not (CheckpointError naming checkpoint_last.pt when
    neither can be used). Reads only: the caller copies a fallback into place once every other
    check of the resume has passed (use_fallback)."""
    try:
        return checkpoint_position(save_dir / LAST)
    except CheckpointError as e:
        if not (save_dir / BEST).is_file():
            raise
        try:
            return checkpoint_position(save_dir / BEST)
        except CheckpointError:
            raise e from None


def use_fallback(pos: Position, save_dir: Path) -> str | None:
    """Put a fallback restore point in place as checkpoint_last.pt (fairseq resumes from that
    name); returns the note to print, or None when checkpoint_last.pt itself is the point."""
    last = save_dir / LAST
    if pos.path == last:
        return None
    atomic_copy(pos.path, last)
    return (f"{last} was unreadable; resuming from {pos.path.name} (epoch {pos.epochs}), the epochs "
            "after it are trained again")


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = True) -> bool:
    """Copy src to dst, synced to disk, atomically (core.checkpoint.replace_atomically): dst is the
    old file or the new one, never a part. Signature and return value as fairseq's
    PathManager.copy."""
    def write(tmp: str) -> None:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())

    replace_atomically(dst, write)
    return True


@contextlib.contextmanager
def fairseq_saves(before_epoch_checkpoint):
    """For the fairseq-train run inside: ``before_epoch_checkpoint(epoch)`` is called when an
    end-of-epoch checkpoint is about to be written (the run log's epoch record goes first, so
    a checkpoint never holds an epoch the log lacks), and the copies to checkpoint_last.pt are
    atomic. fairseq keeps the best validation loss seen as an attribute of its module's
    save_checkpoint: the wrapper, a new function each run, starts every run without one (a
    resumed run gets its own back from the checkpoint)."""
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    save, copy = checkpoint_utils.save_checkpoint, PathManager.__dict__["copy"]

    def save_checkpoint(cfg, trainer, epoch_itr, val_loss):
        if epoch_itr.end_of_epoch():
            before_epoch_checkpoint(epoch_itr.epoch)
        return save(cfg, trainer, epoch_itr, val_loss)

    checkpoint_utils.save_checkpoint = save_checkpoint
    PathManager.copy = staticmethod(atomic_copy)
    try:
        yield
    finally:
        checkpoint_utils.save_checkpoint = save
        PathManager.copy = copy


def last_epoch_checkpoints(folder: str | os.PathLike, n: int) -> list[Path]:
    """The n epoch checkpoints (``checkpoint<epoch>.pt``) of ``folder`` with the highest epochs,
    newest first, as fairseq's average_checkpoints.py picks them; UserError when it holds fewer
    (a run trains with ``--keep-last-epochs N`` to keep them: eval.average_last)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (the epoch checkpoints to average)")
    found = sorted(((int(m.group(1)), folder / m.group(0)) for m in
                    (EPOCH_CHECKPOINT.fullmatch(f.name) for f in folder.iterdir()) if m), reverse=True)
    if len(found) < n:
        raise UserError(f"{folder} holds {len(found)} epoch checkpoints (checkpoint<epoch>.pt), "
                        f"{n} are needed to average the last {n} (train with eval.average_last={n}, "
                        "which keeps them)")
    return [path for _, path in found[:n]]


def average_checkpoints(paths: list[str | os.PathLike]) -> dict:
    """The state of the first checkpoint in ``paths`` with its model weights replaced by the mean
    of every checkpoint's (fairseq's average_checkpoints.py: fp16 tensors summed in fp32, floating
    tensors divided by the count, integer ones floor-divided); the checkpoints must hold the same
    parameter names in the same order."""
    import torch
    if not paths:
        raise ValueError("no checkpoints to average")
    new_state, keys, sums = None, None, {}
    for path in paths:
        state = read_checkpoint(path)
        model = state["model"]
        if keys is None:
            new_state, keys = state, list(model)
        elif list(model) != keys:
            raise CheckpointError(f"checkpoint {path} holds other parameters than {paths[0]}: not "
                                  "checkpoints of one model")
        for k in keys:
            p = model[k]
            if p.dtype == torch.float16:
                p = p.float()
            sums[k] = p.clone() if k not in sums else sums[k].add_(p)
    for k, v in sums.items():
        if v.is_floating_point():
            v.div_(len(paths))
        else:
            v.floor_divide_(len(paths))
    new_state["model"] = sums
    return new_state


def write_averaged(paths: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """average_checkpoints(paths) saved atomically to ``out``."""
    import torch
    state = average_checkpoints(paths)
    replace_atomically(out, lambda tmp: torch.save(state, tmp))
    return Path(out)
