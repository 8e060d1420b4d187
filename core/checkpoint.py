"""Atomic checkpoints (temp file + rename) and the seeding every task shares. A killed run
resumes bit for bit on CPU without saved RNG states: each epoch's randomness is seeded from
(seed, epoch, rank) alone."""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """torch.save to a temp file in the same folder, then os.replace: a kill mid-save leaves the
    previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        # through a Python file object: a full disk is then OSError(ENOSPC), not torch's
        # "unexpected pos" RuntimeError, and the entry point can say what happened
        with open(tmp, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if e.filename is None:
            e.filename = str(path)
        raise
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class CheckpointError(ValueError):
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
