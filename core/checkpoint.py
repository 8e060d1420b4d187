"""Atomic checkpoints (temp file + rename) and the seeding every task shares. A killed run
resumes bit for bit on CPU without saved RNG states: each epoch's randomness is seeded from
(seed, epoch, rank) alone."""
from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .cli import UserError


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch of one process (seed_everything's argument): a function of (seed,
    epoch, rank) alone, so a resumed run replays exactly what the killed run would have."""
    return seed * 100_003 + epoch * 101 + rank


def max_seed(epochs: int, max_rank: int = 0) -> int:
    """The largest run seed whose every epoch_seed, up to `epochs` and `max_rank`, is a valid
    numpy seed (< 2**32)."""
    return (2**32 - 1 - 101 * epochs - max_rank) // 100_003


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def replace_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """``write(tmp)`` fills a temp file in path's folder (``<name>.*.tmp``, the pattern
    core.run.remove_stale_temp_files clears after a kill), then os.replace puts it at ``path``:
    path holds the old content or the new, never a part. On failure the temp file is removed,
    and an OSError that names no file names ``path`` (the entry points report it in one line)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)
        raise


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """torch.save, atomically (replace_atomically): a kill mid-save leaves the previous
    checkpoint intact."""
    def write(tmp: str) -> None:
        # through a Python file object: a full disk is then OSError(ENOSPC), not torch's
        # "unexpected pos" RuntimeError, and the entry point can say what happened
        with open(tmp, "wb") as f:
            torch.save(state, f)

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, write)


class CheckpointError(UserError):
    """A checkpoint that cannot be read (truncated, corrupt, not ours): one line naming the file."""


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint this project wrote. weights_only=True: tensors, numbers, strings, lists
    and dicts only, so a file dropped into a run folder cannot run code when it is loaded."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, pickle of a foreign type, empty file, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {first}); "
                              f"move it away to restart the run") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint dict")
    return state
