"""Optional TensorBoard view of a run (``tensorboard=true``): every numeric field of each epoch
record, and of the final record's metrics, as a scalar in ``<run_dir>/tensorboard/``, tag = the
log key, step = the epoch. ``log.jsonl`` stays the record; this is a mirror for the tool many
researchers watch. Needs the ``tensorboard`` package (``pip install tensorboard``, in the
project's ``test`` extra)."""
from __future__ import annotations

import math
from pathlib import Path

from .config import ConfigError

SKIP = ("type", "epoch")


def _scalars(rec: dict, prefix: str = ""):
    for k, v in rec.items():
        if k in SKIP or isinstance(v, bool):
            continue
        if isinstance(v, (int, float)) and math.isfinite(v):
            yield prefix + k, float(v)


class TensorBoardMirror:
    """Callable on epoch records (``RunLogWriter.mirrors``). ``start_epoch``: a resumed run
    purges what an interrupted run wrote after its checkpoint, as the log is cut back."""

    def __init__(self, log_dir: str | Path, start_epoch: int = 1):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("tensorboard=true needs the tensorboard package (pip install tensorboard)") from None
        self.writer = SummaryWriter(str(log_dir), purge_step=start_epoch if start_epoch > 1 else None)
        self.last_epoch = start_epoch - 1

    def __call__(self, rec: dict) -> None:
        if rec.get("type") == "epoch":
            self.last_epoch = int(rec["epoch"])
            for tag, v in _scalars(rec):
                self.writer.add_scalar(tag, v, self.last_epoch)
        elif rec.get("type") == "final":
            for tag, v in _scalars(rec.get("metrics") or {}, "final/"):
                self.writer.add_scalar(tag, v, self.last_epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
