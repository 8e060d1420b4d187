"""LWR, DLB and Zipf's label smoothing (classification/methods/lwr.py, dlb.py, zipf.py): each loss
against a port of its authors' function on random logits (value and gradient), each method end to
end on digits and through a kill / resume."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from classification.methods.dlb import dlb_loss
from classification.methods.lwr import LWRConfig, lwr_loss
from classification.methods.zipf import zipf_loss, zipf_non_target
from classification.train import TrainConfig, train
from core.config import load_config
from core.runlog import read_run_log

from .method_objects import make_method


# -- ports of the official functions ------------------------------------------------------------

def _official_lwr_loss(logit_s, target, stored_logits, epoch, eta, kd_T, gamma):
    """Xiang-Deng-DL/Learning-With-Retrospection: the soft label of zoo/Soft_T.py (Softmax_T),
    the criterion of zoo/KL_divergence.py (KL) and the loss of helper/loops.py (train_lwr)."""
    soft_label = F.softmax(stored_logits / kd_T, dim=1)
    loss_cls = F.cross_entropy(logit_s, target)
    p_s = F.log_softmax(logit_s / kd_T, dim=1)
    loss_kl = F.kl_div(p_s, soft_label, reduction="sum") * (kd_T ** 2) / p_s.shape[0]  # size_average=False
    if epoch <= eta:
        return loss_cls
    num_5 = int(epoch / eta)
    cure = num_5 * eta
    return (gamma + (1 - cure / 240) * (1 - gamma)) * loss_cls + cure / 240 * (1 - gamma) * loss_kl


def _official_zipf_loss(logits, labels, power=1.0):
    """megvii-research/zipfls, pytorch_zipfls/losses.py: zipf_loss with its defaults
    (distribution='rank_zipf', dense=False, rank='hard', friend=False, loss_mask=False), i.e.
    gen_pdf -> get_masked_distribution(with_target=False) -> kl_loss; CPU instead of .cuda()."""
    n, c = logits.shape
    lg = logits.detach().cpu()
    mask = torch.ones_like(lg).scatter_(1, labels.unsqueeze(1), 0.)
    rank = rankdata(-lg, axis=1, method="min")
    dist = (1 / rank) ** power
    dist = dist[mask.bool().numpy()].reshape((n, c - 1))
    dist = dist / dist.sum(axis=1, keepdims=True)
    pdf = torch.Tensor(dist)
    out_mask = torch.ones_like(logits).scatter_(1, labels.unsqueeze(1), 0.)
    res = logits[out_mask.bool()].view((n, c - 1))
    res = F.log_softmax(res, dim=1)
    return F.kl_div(res, pdf, reduction="none").sum(axis=1).mean()


def _official_dlb_loss(out, label, out_pre, pre_label, pre_out, alpha, T):
    """Meta-knowledge-Lab/DLB, dlb.py: train_one_epoch's loss once a previous batch exists."""
    ce_loss = F.cross_entropy(torch.cat((out_pre, out), dim=0), torch.cat((pre_label, label), dim=0))
    dml_loss = (F.kl_div(F.log_softmax(out_pre / T, dim=1), F.softmax(pre_out.detach() / T, dim=1),
                         reduction="batchmean") * T * T)
    return ce_loss + alpha * dml_loss


def _value_and_grad(fn, logits):
    z = logits.clone().requires_grad_(True)
    loss = fn(z)
    loss.backward()
    return loss.detach(), z.grad


@pytest.mark.parametrize("epoch", [3, 5, 6, 12, 200])
def test_lwr_loss_matches_the_official_loss(epoch):
    torch.manual_seed(epoch)
    z, stored, y = torch.randn(16, 100) * 3, torch.randn(16, 100) * 3, torch.randint(0, 100, (16,))
    cfg = LWRConfig()  # k 5, tau 5, gamma 0.1, horizon 240: its CIFAR-100 setting
    soft = F.softmax(stored / cfg.temperature, dim=1)
    ours = _value_and_grad(lambda a: lwr_loss(a, y, soft, epoch, cfg), z)
    theirs = _value_and_grad(lambda a: _official_lwr_loss(a, y, stored, epoch, 5, 5.0, 0.1), z)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


@pytest.mark.parametrize("power", [1.0, 1.5])
def test_zipf_loss_matches_the_official_loss(power):
    torch.manual_seed(0)
    z, y = torch.randn(32, 100) * 2, torch.randint(0, 100, (32,))
    z[0, :10] = z[0, 10]  # ties share the smallest rank, as rankdata(method='min')
    ours = _value_and_grad(lambda a: zipf_loss(a, y, power), z)
    theirs = _value_and_grad(lambda a: _official_zipf_loss(a, y, power), z)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])
    pdf = zipf_non_target(z, y, power)
    assert pdf.shape == (32, 99) and torch.allclose(pdf.sum(1), torch.ones(32))


def test_dlb_loss_matches_the_official_loss_and_the_last_logits_get_no_gradient():
    torch.manual_seed(1)
    z, y, last = torch.randn(16, 10) * 2, torch.randint(0, 10, (16,)), torch.randn(8, 10) * 2
    ours = _value_and_grad(lambda a: dlb_loss(a, y, last, 1.0, 3.0), z)
    # ours sees [previous part; new part] as one batch; the official code has them as out_pre and out
    theirs = _value_and_grad(lambda a: _official_dlb_loss(a[8:], y[8:], a[:8], y[:8], last, 1.0, 3.0), z)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])
    lastg = last.clone().requires_grad_(True)
    dlb_loss(z.clone().requires_grad_(True), y, lastg, 1.0, 3.0).backward()
    assert lastg.grad is None
    assert dlb_loss(z, y, None, 1.0, 3.0) == F.cross_entropy(z, y)


def test_dlb_batches_repeat_the_previous_chunk_across_epochs():
    m = make_method("dlb", 10, 23)
    first = m.batches(list(range(23)), 8, epoch=1)
    assert [len(b) for b in first] == [4, 8, 8, 8, 8, 7]  # the first step of training: no previous chunk
    for prev, cur in zip(first, first[1:]):
        assert cur[:4] == prev[-4:]  # each step starts with the previous step's new chunk
    assert sorted(set(i for b in first for i in b)) == list(range(23))
    second = m.batches(list(range(100, 123)), 8, epoch=2)
    assert second[0] == [20, 21, 22, 100, 101, 102, 103]  # the last chunk of epoch 1 comes first


def test_lwr_writes_softened_predictions_only_in_refresh_epochs():
    m = make_method("lwr", 5, 4, "method.lwr.k=2", epochs=4)
    z = torch.randn(4, 5)
    m.start_epoch(None, 1)
    m.after_step(torch.arange(4), z)
    assert not m.bank.seen.any()
    m.start_epoch(None, 2)
    m.after_step(torch.arange(4), z)
    torch.testing.assert_close(m.bank.teacher(torch.arange(4), torch.zeros(4, dtype=torch.long)),
                               F.softmax(z / 5.0, dim=1))


TINY = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=200",
        "data.test_subset=100", "data.fit_subset=0", "epochs=3", "optim.batch_size=32", "optim.lr=0.05",
        "optim.milestones=[2]", "progress=false"]


@pytest.mark.parametrize("method,extra", [("lwr", ["method.lwr.k=1"]), ("dlb", []), ("zipf", [])])
def test_peer_trains_end_to_end_and_resumes(tmp_path, method, extra):
    cfg = lambda *o: load_config(TrainConfig, None, [*TINY, f"method.name={method}", *extra, *o])  # noqa: E731
    full = train(cfg(f"out_dir={tmp_path / 'a'}"))
    part = train(cfg(f"out_dir={tmp_path / 'b'}", "stop_after_epochs=2"))
    assert not read_run_log(part / "log.jsonl").complete
    train(cfg(f"out_dir={tmp_path / 'b'}", "resume=true"))
    a, b = read_run_log(full / "log.jsonl", strict=True), read_run_log(part / "log.jsonl", strict=True)
    assert a.meta["method"] == method and a.complete
    assert [e["train_loss"] for e in a.epochs] == [e["train_loss"] for e in b.epochs]
    assert a.final["metrics"] == b.final["metrics"]
    assert a.epochs[-1]["train_loss"] < a.epochs[0]["train_loss"]
    assert np.isfinite(a.final["metrics"]["nll"])
