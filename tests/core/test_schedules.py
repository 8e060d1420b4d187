import math

import pytest

from core.schedules import KINDS, alpha_at, step_lr

# alpha_T = 0.8, T = 4: explicit expected values per kind (computed by hand from the docstring).
EXPECTED = {
    "linear": [0.2, 0.4, 0.6, 0.8],
    "fixed": [0.8, 0.8, 0.8, 0.8],
    # ceil(3t/4)/3 = ceil(0.75)/3, ceil(1.5)/3, ceil(2.25)/3, ceil(3)/3 = 1/3, 2/3, 1, 1
    "step": [0.8 / 3, 1.6 / 3, 0.8, 0.8],
    "exp": [0.8 * math.exp(-5 * 0.5625), 0.8 * math.exp(-5 * 0.25), 0.8 * math.exp(-5 * 0.0625), 0.8],
    "cosine": [0.8 * (1 - math.sqrt(0.5)) / 2, 0.4, 0.8 * (1 + math.sqrt(0.5)) / 2, 0.8],
}


@pytest.mark.parametrize("kind", KINDS)
def test_table(kind):
    got = [alpha_at(t, 4, 0.8, kind) for t in range(1, 5)]
    assert got == pytest.approx(EXPECTED[kind], abs=1e-12)


def test_linear_matches_official_zero_based_formula():
    # official: alpha_T * ((epoch + 1) / end_epoch) with epoch = 0..T-1
    T = 300
    for epoch in range(T):
        assert alpha_at(epoch + 1, T, 0.8) == pytest.approx(0.8 * (epoch + 1) / T, abs=1e-15)


@pytest.mark.parametrize("t,T", [(0, 10), (11, 10), (-1, 10), (1.5, 10), (1, 0)])
def test_out_of_range(t, T):
    with pytest.raises(ValueError):
        alpha_at(t, T, 0.5)


def test_bad_alpha_and_kind():
    with pytest.raises(ValueError, match="alpha_T"):
        alpha_at(1, 10, 1.2)
    with pytest.raises(ValueError, match="unknown alpha schedule"):
        alpha_at(1, 10, 0.5, "sigmoid")


def test_step_lr_matches_multisteplr():
    import torch
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [150, 225], 0.1)
    for t in range(1, 301):
        assert step_lr(t, 0.1, [150, 225]) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()
    with pytest.raises(ValueError):
        step_lr(0, 0.1, [1])
