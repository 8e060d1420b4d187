"""Method objects for unit tests: built from a config the way training builds them."""
import torch

from classification.methods import Context, build_method
from classification.train import TrainConfig
from core.config import load_config
from core.dist import Dist


def make_method(name, num_classes, n=8, *overrides, alpha=None, epochs=2):
    """The method `name` for a training set of n samples; alpha: Self-KD's alpha_t in force."""
    cfg = load_config(TrainConfig, None, [f"method.name={name}", "device=cpu", *overrides])
    m = build_method(cfg.method, Context(num_classes, range(n), epochs, Dist("cpu")))
    if alpha is not None:
        m.alpha = alpha
    return m
