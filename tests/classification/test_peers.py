"""The peers of Self-KD (classification/methods/cskd.py, tfkd.py): each against its own paper's code,
and both end to end in the harness."""
import pytest
import torch
import torch.nn.functional as F

from classification.methods.cskd import ClassPairBatches, cskd_loss
from classification.methods.tfkd import tfkd_targets
from classification.train import TrainConfig, train
from core.config import load_config
from core.losses import soft_cross_entropy
from core.runlog import read_run_log


def _official_tfkd_reg(outputs, labels, alpha, T, multiplier, correct_prob=0.99):
    """TF-KD-reg as its authors' loss_kd_regularization computes it (written out here)."""
    K = outputs.size(1)
    teacher_soft = torch.ones_like(outputs) * (1 - correct_prob) / (K - 1)
    teacher_soft[torch.arange(len(labels)), labels] = correct_prob
    soft = torch.nn.KLDivLoss()(F.log_softmax(outputs, dim=1), F.softmax(teacher_soft / T, dim=1)) * multiplier
    return (1 - alpha) * F.cross_entropy(outputs, labels) + alpha * soft


def test_tfkd_targets_match_the_official_loss_up_to_a_constant():
    torch.manual_seed(0)
    labels = torch.randint(0, 100, (16,))
    a = torch.randn(16, 100, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    ours = soft_cross_entropy(a, tfkd_targets(labels, 100, 0.1, 20.0))
    theirs = _official_tfkd_reg(b, labels, 0.1, 20.0, multiplier=100)  # their ResNet-18 setting: m = K
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(a.grad, b.grad)  # same gradient: the difference is the teacher's entropy
    assert torch.allclose(tfkd_targets(labels, 100, 0.1, 20.0).sum(1), torch.ones(16))


def test_cskd_loss_is_ce_plus_tempered_kl_and_partner_gets_no_gradient():
    torch.manual_seed(1)
    z = torch.randn(8, 5, requires_grad=True)
    zp = torch.randn(8, 5, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    loss = cskd_loss(z, zp, y, temperature=4.0, lam=1.0)
    kl = (F.softmax(zp / 4, 1) * (F.log_softmax(zp / 4, 1) - F.log_softmax(z / 4, 1))).sum(1).mean() * 16
    assert loss.item() == pytest.approx((F.cross_entropy(z, y) + kl).item(), rel=1e-5)
    loss.backward()
    assert zp.grad is None or not zp.grad.any()


def test_class_pair_batches_pair_each_anchor_with_another_sample_of_its_class():
    labels = [0, 1, 0, 1, 2, 0, 1, 2, 3]
    order = list(range(9))
    batches = list(ClassPairBatches(labels, order, 4, seed=0, epoch=1))
    assert len(batches) == 3 and [len(b) for b in batches] == [8, 8, 2]
    for b in batches:
        h = len(b) // 2
        for a, p in zip(b[:h], b[h:]):
            assert labels[a] == labels[p] and (a != p or labels.count(labels[a]) == 1)
    again = list(ClassPairBatches(labels, order, 4, seed=0, epoch=1))
    assert again == batches  # a function of (seed, epoch): a resumed run replays it


TINY = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=200",
        "data.test_subset=100", "data.fit_subset=0", "epochs=2", "optim.batch_size=32", "optim.lr=0.05",
        "optim.milestones=[1]", "progress=false"]


@pytest.mark.parametrize("method", ["cskd", "tfkd"])
def test_peer_trains_end_to_end_and_resumes(tmp_path, method):
    cfg = lambda *o: load_config(TrainConfig, None, [*TINY, f"method.name={method}", *o])  # noqa: E731
    full = train(cfg(f"out_dir={tmp_path / 'a'}"))
    part = train(cfg(f"out_dir={tmp_path / 'b'}", "stop_after_epochs=1"))
    train(cfg(f"out_dir={tmp_path / 'b'}", "resume=true"))
    a, b = read_run_log(full / "log.jsonl", strict=True), read_run_log(part / "log.jsonl", strict=True)
    assert a.meta["method"] == method and a.complete and a.final["metrics"] == b.final["metrics"]
    assert a.epochs[-1]["train_loss"] < a.epochs[0]["train_loss"]


def test_every_readme_peer_line_has_its_config_and_renders():
    """reports/paper/pskd_readme.csv (the official PS-KD README's CS-KD / TF-KD numbers) and the
    configs name the lines the same way; Table 1 shows them beside a header note."""
    import csv
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    with open(repo / "reports/paper/pskd_readme.csv") as f:
        rows = {(r["table"], r["row"], r["method"]) for r in csv.DictReader(f)}
    assert len(rows) == 12
    missing = [f"{t}_{r}_{m}.yaml" for t, r, m in sorted(rows)
               if not (repo / "classification/configs" / f"{t}_{r}_{m}.yaml").is_file()]
    assert not missing, missing
    from reports.tables import build_table, to_markdown
    md = to_markdown(build_table("table1", []))
    assert "| PreAct ResNet-18 | + CS-KD (peer) | – | 21.30 |" in md and "official PS-KD README" in md
