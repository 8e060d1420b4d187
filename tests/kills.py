"""Killing a real training process, for the resume tests of every task."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sigkill_after_first_checkpoint(module: str, argv: list[str], checkpoint: Path, timeout: float = 180) -> None:
    """Start `python -m module argv...` (one thread) and SIGKILL it as soon as `checkpoint`
    exists, wherever it has got to by then; asserts that the kill, not the end of training,
    stopped it."""
    proc = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + timeout
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()  # killed mid-run, not finished
