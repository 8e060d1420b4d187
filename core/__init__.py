"""Self-KD core library: targets, losses, alpha schedules, prediction bank, metrics,
run logs, config and checkpoints. Imports no task package (tests/test_layering.py)."""

__version__ = "0.1.0"
