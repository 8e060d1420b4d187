import pytest
import torch
import torch.nn.functional as F

from core.losses import soft_cross_entropy
from core.targets import label_smoothing_targets, self_kd_targets, uniform_teacher


def _batch(b=16, k=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, k, (b,), generator=g)
    teacher = torch.softmax(torch.randn(b, k, generator=g, dtype=torch.float64), dim=1)
    return logits, labels, teacher


def test_alpha_zero_is_cross_entropy():
    logits, labels, teacher = _batch()
    t = self_kd_targets(labels, teacher, 0.0)
    assert torch.equal(t, F.one_hot(labels, 7).double())
    torch.testing.assert_close(soft_cross_entropy(logits, t), F.cross_entropy(logits, labels), rtol=0, atol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35, 1.0])
def test_uniform_teacher_is_label_smoothing(eps):
    logits, labels, _ = _batch(k=10)
    t = self_kd_targets(labels, uniform_teacher(16, 10, torch.float64), eps)
    ref = F.cross_entropy(logits, labels, label_smoothing=eps)
    torch.testing.assert_close(soft_cross_entropy(logits, t), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(label_smoothing_targets(labels, 10, eps).double(), t, rtol=0, atol=1e-7)


def test_targets_eq6_and_rows_sum_to_one():
    _, labels, teacher = _batch()
    t = self_kd_targets(labels, teacher, 0.3)
    expected = 0.7 * F.one_hot(labels, 7).double() + 0.3 * teacher
    torch.testing.assert_close(t, expected)
    torch.testing.assert_close(t.sum(1), torch.ones(16, dtype=torch.float64))


def test_reductions():
    logits, labels, teacher = _batch()
    t = self_kd_targets(labels, teacher, 0.5)
    per = soft_cross_entropy(logits, t, reduction="none")
    assert per.shape == (16,)
    torch.testing.assert_close(soft_cross_entropy(logits, t), per.mean())
    torch.testing.assert_close(soft_cross_entropy(logits, t, reduction="sum"), per.sum())
    # the gradient of CE w.r.t. logits is softmax - target
    lg = logits.clone().requires_grad_(True)
    soft_cross_entropy(lg, t, reduction="sum").backward()
    torch.testing.assert_close(lg.grad, torch.softmax(logits, 1) - t)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_out_of_range(alpha):
    _, labels, teacher = _batch()
    with pytest.raises(ValueError, match="alpha"):
        self_kd_targets(labels, teacher, alpha)


def test_bad_shapes_and_reduction():
    logits, labels, teacher = _batch()
    with pytest.raises(ValueError):
        soft_cross_entropy(logits, teacher[:, :3])
    with pytest.raises(ValueError, match="reduction"):
        soft_cross_entropy(logits, teacher, reduction="avg")
    with pytest.raises(ValueError):
        self_kd_targets(labels[:3], teacher, 0.1)
