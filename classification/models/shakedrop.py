"""ShakeDrop (Yamada et al. 2019, "ShakeDrop Regularization for Deep Residual Learning"), as
written out in Appendix B.1 of the Self-KD paper and implemented by the official PS-KD code
(``models/shakedrop/shakedrop.py``): a residual branch F(x) is scaled by

    train forward:   b + alpha - b * alpha,   alpha ~ U[-1, 1] per sample
    train backward:  b + beta  - b * beta,    beta  ~ U[0, 1]  per sample, drawn independently
    test:            E[b + alpha - b * alpha] = p_keep          (E[alpha] = 0)

with one gate b ~ Bernoulli(p_keep) per block and mini-batch, as in the official code.
Appendix B.1 writes the test-time factor with beta; we follow the ShakeDrop paper and the
official code, whose test factor is the expectation of the *forward* factor, i.e. p_keep.
"""
import torch
import torch.nn as nn


def linear_decay_keep_probs(num_blocks: int, p_last: float = 0.5) -> list[float]:
    """p_l = 1 - l / L * (1 - P_L) for blocks l = 1..L (Appendix B.1); P_L = 0.5 in the paper."""
    if not 0.0 <= p_last <= 1.0:
        raise ValueError(f"p_last must be in [0, 1], got {p_last}")
    return [1.0 - l / num_blocks * (1.0 - p_last) for l in range(1, num_blocks + 1)]


class ShakeDropFunction(torch.autograd.Function):
    """The b = 0 case: x (N, ...) -> alpha * x forward, beta * grad backward, per sample."""

    @staticmethod
    def forward(ctx, x):
        shape = (x.size(0),) + (1,) * (x.dim() - 1)
        return torch.empty(shape, device=x.device, dtype=x.dtype).uniform_(-1.0, 1.0) * x

    @staticmethod
    def backward(ctx, grad):
        shape = (grad.size(0),) + (1,) * (grad.dim() - 1)
        return torch.empty(shape, device=grad.device, dtype=grad.dtype).uniform_(0.0, 1.0) * grad


def shake_drop(x: torch.Tensor, p_keep: float, training: bool) -> torch.Tensor:
    """Scale the residual branch x (N, C, H, W): stochastic in training, p_keep * x in eval."""
    if not training:
        return p_keep * x
    # b = 1: the factor is 1 both ways. The gate is drawn on the CPU, so reading it never syncs
    # an accelerator.
    if torch.rand(()).item() < p_keep:
        return x
    return ShakeDropFunction.apply(x)


class ShakeDrop(nn.Module):
    def __init__(self, p_keep: float):
        super().__init__()
        if not 0.0 <= p_keep <= 1.0:
            raise ValueError(f"p_keep must be in [0, 1], got {p_keep}")
        self.p_keep = p_keep

    def forward(self, x):
        return shake_drop(x, self.p_keep, self.training)

    def extra_repr(self):
        return f"p_keep={self.p_keep:.4f}"
