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


def sigint_after_first_checkpoint(module: str, argv: list[str], checkpoint: Path,
                                  timeout: float = 180) -> subprocess.CompletedProcess:
    """Start `python -m module argv...` (one thread), press Ctrl-C (SIGINT) as soon as
    `checkpoint` exists, and return how it ended (returncode, stderr). SIGINT is reset to its
    default in the child: a process started from a background job inherits it ignored."""
    proc = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + timeout
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, proc.stderr.read()  # still running: the Ctrl-C interrupts it
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, None, err)
