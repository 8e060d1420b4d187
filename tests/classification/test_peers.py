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

# the authors' loss, ported as written, uses KLDivLoss()'s element mean, which torch warns about
pytestmark = pytest.mark.filterwarnings("ignore:reduction.*mean.*divides:UserWarning")


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


def test_tfkd_multiplier_is_the_authors_loss_exactly():
    """method.tfkd.multiplier > 0 computes the authors' loss_kd_regularization itself: the same value
    and gradient for random logits, m = 1 (their DenseNet-121 / ResNeXt-29 settings, no multiplier)
    and m = K. The soft-target form (multiplier 0, the default) has m = K's gradient, and m = 1's
    differs from it by alpha (1 - 1/K) (q - p_T) / B: the KL term of KLDivLoss's default reduction
    is averaged over B x K elements, so without a multiplier it weighs 1/K of the soft targets'."""
    from classification.methods.tfkd import designed_teacher, tfkd_authors_loss
    torch.manual_seed(3)
    B, K, alpha, T = 16, 100, 0.1, 40.0
    labels = torch.randint(0, K, (B,))
    logits = torch.randn(B, K) * 3
    for m in (1.0, float(K), 7.5):
        a = logits.clone().requires_grad_(True)
        b = logits.clone().requires_grad_(True)
        ours, theirs = tfkd_authors_loss(a, labels, alpha, T, m), _official_tfkd_reg(b, labels, alpha, T, m)
        ours.backward()
        theirs.backward()
        assert ours.item() == theirs.item() and torch.equal(a.grad, b.grad), m
    # the soft-target form against the authors' m = 1: the difference, and where it comes from
    a = logits.clone().requires_grad_(True)
    soft_cross_entropy(a, tfkd_targets(labels, K, alpha, T)).backward()
    b = logits.clone().requires_grad_(True)
    _official_tfkd_reg(b, labels, alpha, T, 1.0).backward()
    q, p_t = torch.softmax(logits, 1), designed_teacher(labels, K, T)
    gap = (a.grad - b.grad).abs().max().item()
    assert 1e-4 < gap < 1e-2  # what the soft targets gave for m = 1
    torch.testing.assert_close(a.grad - b.grad, alpha * (1 - 1 / K) * (q - p_t) / B)


def test_tfkd_multiplier_default_trains_as_before_and_option_trains(tmp_path):
    """multiplier 0 is the soft-target path (the golden numbers hold it bit for bit); > 0 trains
    through the authors' loss; a negative one is refused."""
    cfg = lambda *o: load_config(TrainConfig, None, [*TINY, "method.name=tfkd", *o])  # noqa: E731
    assert cfg().method.tfkd.multiplier == 0.0
    run = train(cfg(f"out_dir={tmp_path}", "method.tfkd.multiplier=1.0", "epochs=1"))
    log = read_run_log(run / "log.jsonl", strict=True)
    assert log.complete and log.epochs[0]["train_loss"] > 0
    from classification.train import validate
    with pytest.raises(Exception, match="multiplier"):
        validate(cfg("method.tfkd.multiplier=-1"))


PEER_ROWS = ("preact_resnet18", "preact_resnet101", "densenet121", "resnext29_8x64d", "pyramidnet200")


@pytest.mark.parametrize("method", ["cskd", "tfkd"])
@pytest.mark.parametrize("row", PEER_ROWS)
def test_each_peer_row_has_the_harness_and_the_authors_recipe(row, method, monkeypatch):
    """configs/table1_<row>_<peer>.yaml: PS-KD's recipe (300 epochs, Nesterov, wd 5e-4 except
    PyramidNet's 1e-4); configs/authors/table1_<row>_<peer>.yaml: the peer's own code's recipe
    (CS-KD: train.py's defaults; TF-KD: main.py + its per-architecture params.json), the same
    model, its runs in a folder of their own."""
    import classification.train as T
    from pathlib import Path
    configs = Path(T.__file__).parent / "configs"
    monkeypatch.setattr(T, "check_data_path", lambda *a: None)  # no CIFAR-100 here
    harness = load_config(TrainConfig, configs / f"table1_{row}_{method}.yaml")
    authors = load_config(TrainConfig, configs / "authors" / f"table1_{row}_{method}.yaml")
    for cfg in (harness, authors):
        T.validate(cfg)
        assert (cfg.table, cfg.row or cfg.model, cfg.method.name) == ("table1", row, method)
    assert authors.model == harness.model and authors.out_dir == "runs/authors" != harness.out_dir
    assert (harness.epochs, harness.optim.nesterov, list(harness.optim.milestones)) == (300, True, [150, 225])
    assert harness.method.tfkd.multiplier == 0.0  # the soft-target form in the harness recipe
    o = authors.optim
    assert authors.epochs == 200 and not o.nesterov and o.momentum == 0.9
    if method == "cskd":
        assert (o.lr, o.weight_decay, o.batch_size, o.gamma) == (0.1, 1e-4, 128, 0.1)
        assert list(o.milestones) == [101, 151] and authors.data.normalization == "official"
        assert (authors.method.cskd.temperature, authors.method.cskd.lam) == (4.0, 1.0)
    else:
        assert (o.weight_decay, o.gamma, list(o.milestones)) == (5e-4, 0.2, [60, 120, 160])
        assert authors.data.normalization == "own" and o.lr == 0.1 * o.batch_size / 128
        t = authors.method.tfkd
        expected = {"densenet121": (0.1, 40.0, 1.0, 128), "resnext29_8x64d": (0.5, 40.0, 1.0, 64)}.get(
            row, (0.1, 20.0, 100.0, 128))  # their ResNet-18 params.json where they have no file
        assert (t.alpha, t.temperature, t.multiplier, o.batch_size) == expected
