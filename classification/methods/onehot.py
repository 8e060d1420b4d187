"""One-hot targets: the baseline, and the rule of Cutout, CutMix and CutMix + ShakeDrop alone."""
from .base import Method

METHOD = Method
