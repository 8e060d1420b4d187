import torch
import torch.nn.functional as F

from classification.augment import cutmix, cutout

from .method_objects import make_method


def test_cutout_zeroes_one_clipped_square():
    torch.manual_seed(0)
    x = torch.ones(64, 3, 32, 32)
    out = cutout(x, 8)
    holes = (out == 0).all(1)  # (B, H, W)
    for h in holes:
        ys, xs = torch.nonzero(h, as_tuple=True)
        assert 0 < len(ys) <= 64
        # a rectangle (clipped square): its area is its bounding box
        assert len(ys) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert ys.max() - ys.min() < 8 and xs.max() - xs.min() < 8
    assert holes.sum(dim=(1, 2)).float().mean() > 40  # mostly full 8x8 holes
    assert torch.equal(x, torch.ones_like(x))  # input untouched


def test_cutmix_targets_match_pasted_area():
    torch.manual_seed(1)
    b, k = 16, 5
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 3, 32, 32).clone()
    y = torch.arange(b) % k
    out, t = cutmix(x, F.one_hot(y, k).float())
    torch.testing.assert_close(t.sum(1), torch.ones(b))
    for i in range(b):
        own = (out[i, 0] == i).float().mean()  # fraction of the image still its own
        if (out[i, 0] != i).any():
            partner = int(out[i, 0][out[i, 0] != i][0])
            expected = own * F.one_hot(y[i], k).float() + (1 - own) * F.one_hot(y[partner], k).float()
            torch.testing.assert_close(t[i], expected)


def _selfkd_with_rows(name, n, k, alpha):
    """Self-KD (with `name`'s regulariser) whose bank has every row written."""
    m = make_method(name, k, n, alpha=alpha)
    m.bank.update(torch.arange(n), torch.softmax(torch.randn(n, k), 1))
    return m


def test_half_batch_rule_cutout():
    torch.manual_seed(2)
    b, k = 10, 4
    m = _selfkd_with_rows("cutout_selfkd", b, k, 0.5)
    x, y, idx = torch.randn(b, 3, 32, 32), torch.arange(b) % k, torch.arange(b)
    xo, t = m.batch(x, y, idx)
    update = m.writes
    kd_targets = m.bank.targets(idx, y, 0.5)
    is_kd = torch.isclose(t, kd_targets).all(1) & ~torch.isclose(t, F.one_hot(y, k).float()).all(1)
    assert is_kd.sum() == b // 2
    assert torch.equal(xo[is_kd], x[is_kd])  # the Self-KD half is not occluded
    assert ((xo[~is_kd] == 0).flatten(1).sum(1) > 0).all()  # the other half is
    assert torch.equal(t[~is_kd], F.one_hot(y, k).float()[~is_kd])
    assert update.all()  # Cutout'd samples are still themselves: their rows are written


def test_half_batch_rule_cutmix_rows_not_written():
    torch.manual_seed(3)
    b, k = 10, 4
    m = _selfkd_with_rows("cutmix_selfkd", b, k, 0.5)
    x, y, idx = torch.randn(b, 3, 32, 32), torch.arange(b) % k, torch.arange(b)
    xo, t = m.batch(x, y, idx)
    update = m.writes
    assert update.sum() == b // 2
    torch.testing.assert_close(t[update], m.bank.targets(idx, y, 0.5)[update])
    assert torch.equal(xo[update], x[update])


def test_plain_methods():
    b, k = 6, 3
    x, y, idx = torch.randn(b, 3, 8, 8), torch.arange(b) % k, torch.arange(b)
    _, t = make_method("ls", k, b, "method.ls.eps=0.3").batch(x, y, idx)
    torch.testing.assert_close(t, 0.7 * F.one_hot(y, k).float() + 0.1)
    m = make_method("selfkd", k, b, alpha=0.4)
    _, t = m.batch(x, y, idx)
    assert m.writes is True and torch.equal(t, F.one_hot(y, k).float())  # epoch 1: one-hot


def test_cutmix_alone_mixes_whole_batches():
    torch.manual_seed(4)
    b, k = 8, 4
    x, y, idx = torch.randn(b, 3, 16, 16), torch.arange(b) % k, torch.arange(b)
    mixed, m = 0, make_method("cutmix", k, b, "method.cutmix.prob=0.5")
    for _ in range(40):
        xo, t = m.batch(x, y, idx)
        assert t.shape == (b, k)
        mixed += int(not torch.equal(xo, x))
    assert 8 < mixed < 32  # about half of the batches (cutmix_prob 0.5)
