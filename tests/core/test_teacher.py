import torch
import torch.nn as nn

from core.teacher import SnapshotTeacher


def test_snapshot_is_frozen_copy_of_previous_epoch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    t = SnapshotTeacher()
    t.refresh(model, 1)
    assert t.model is None and t.probs(torch.randn(2, 4)) is None  # no teacher at epoch 1
    t.refresh(model, 2)
    assert t.epoch == 1 and not t.model.training
    assert all(not p.requires_grad for p in t.model.parameters())
    x = torch.randn(5, 4)
    p = t.probs(x)
    torch.testing.assert_close(p, torch.softmax(model[0](x), -1))  # eval mode: no dropout
    assert not p.requires_grad
    with torch.no_grad():
        model[0].weight.add_(1.0)  # training goes on: the snapshot does not move
    torch.testing.assert_close(t.probs(x), p)


def test_custom_probs_fn():
    model = nn.Linear(4, 3)
    t = SnapshotTeacher(lambda m, out: torch.sigmoid(out))
    t.refresh(model, 3)
    x = torch.randn(2, 4)
    torch.testing.assert_close(t.probs(x), torch.sigmoid(model(x)))
