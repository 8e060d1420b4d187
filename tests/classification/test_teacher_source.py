"""Self-KD's p_{t-1} from the prediction bank or the snapshot teacher (method.selfkd.teacher); the
bank's row ages; the best-on-test epoch in the final record."""
import copy

import pytest
import torch
import torch.nn.functional as F

from classification.models import build_model
from classification.train import main, train
from core.runlog import read_run_log

from .method_objects import make_method
from .test_train import TINY, _cfg

K = 10


def _batch(b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 16, 16, generator=g), torch.randint(0, K, (b,), generator=g), torch.arange(b)


def _selfkd_half(method, b=8, seed=0):
    """The samples Self-KD's batch() gives Self-KD targets after torch.manual_seed(seed): all of them
    alone, else the random half it draws first (the half-batch rule)."""
    if method == "selfkd":
        return torch.ones(b, dtype=torch.bool)
    torch.manual_seed(seed)
    kd = torch.zeros(b, dtype=torch.bool)
    kd[torch.randperm(b)[: b // 2]] = True
    return kd


@pytest.mark.parametrize("method", ["selfkd", "cutmix_selfkd", "cutout_selfkd"])
def test_epoch1_targets_are_onehot_with_either_teacher(method):
    x, y, idx = _batch()
    model = build_model("small_cnn", K)
    for teacher in ("bank", "snapshot"):
        m = make_method(method, K, 8, f"method.selfkd.teacher={teacher}")
        m.start_epoch(model, 1)
        m.alpha = 0.6  # whatever Eq. 5 gives, epoch 1 has no p_0
        kd = _selfkd_half(method)
        torch.manual_seed(0)  # the half-batch split and the regulariser draw the same
        xo, t = m.batch(x, y, idx)
        assert torch.equal(xo[kd], x[kd]) and torch.equal(t[kd], F.one_hot(y[kd], K).float())


@pytest.mark.parametrize("method", ["selfkd", "cutmix_selfkd"])
def test_snapshot_targets_at_epoch2_are_eq6_of_the_frozen_eval_model(method):
    """(1 - a) onehot + a softmax(f(x)), f = the model as it was when the epoch started, in eval
    mode (BatchNorm's running statistics), computed here by hand; training moves the live model."""
    torch.manual_seed(1)
    model = build_model("small_cnn", K)
    model.train()
    for _ in range(2):  # non-trivial BatchNorm running statistics
        model(torch.randn(16, 3, 8, 8))
    frozen = copy.deepcopy(model).eval()
    m = make_method(method, K, 8, "method.selfkd.teacher=snapshot")
    m.start_epoch(model, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)  # the epoch's training steps: the snapshot must not follow
    x, y, idx = _batch(seed=2)
    a = m.alpha = 0.3
    kd = _selfkd_half(method)
    torch.manual_seed(0)
    xo, t = m.batch(x, y, idx)
    assert m.writes is None  # the snapshot teacher writes no bank
    with torch.no_grad():
        logits = frozen(x)
    p = torch.exp(logits - logits.logsumexp(1, keepdim=True))
    want = (1 - a) * F.one_hot(y, K).float() + a * p
    torch.testing.assert_close(t[kd], want[kd], rtol=1e-5, atol=1e-6)
    assert torch.equal(xo[kd], x[kd]) and not torch.allclose(want, F.one_hot(y, K).float(), atol=1e-3)


def test_snapshot_epoch1_is_the_bank_and_the_baseline_and_alpha0_is_the_baseline(tmp_path):
    one = ["stop_after_epochs=1"]
    runs = {name: read_run_log(train(_cfg(tmp_path / name, *one, *extra)) / "log.jsonl").epochs[0]
            for name, extra in {"baseline": ["method.name=baseline"],
                                "bank": ["method.name=selfkd"],
                                "snapshot": ["method.name=selfkd", "method.selfkd.teacher=snapshot"]}.items()}
    assert runs["bank"]["alpha"] == 0 < runs["bank"]["alpha_schedule"]  # alpha_1 = alpha_T / T, but p_0 is the one-hot label
    keys = ("train_loss", "top1_err", "nll", "ece")
    assert {k: runs["bank"][k] for k in keys} == {k: runs["baseline"][k] for k in keys}
    assert {k: runs["snapshot"][k] for k in keys} == {k: runs["baseline"][k] for k in keys}
    base = read_run_log(train(_cfg(tmp_path / "b0", "method.name=baseline")) / "log.jsonl", strict=True)
    zero = read_run_log(train(_cfg(tmp_path / "s0", "method.name=selfkd", "method.selfkd.teacher=snapshot",
                                   "method.selfkd.alpha_T=0.0")) / "log.jsonl", strict=True)
    assert [e["train_loss"] for e in zero.epochs] == [e["train_loss"] for e in base.epochs]
    assert zero.final["metrics"] == base.final["metrics"]


def test_snapshot_kill_and_resume_equals_uninterrupted(tmp_path):
    """The snapshot is rebuilt on resume from the checkpoint of the previous epoch's end: the
    same weights the uninterrupted run copied."""
    snap = ["method.name=selfkd", "method.selfkd.teacher=snapshot"]
    full = train(_cfg(tmp_path / "a", *snap))
    part = train(_cfg(tmp_path / "b", *snap, "stop_after_epochs=2"))
    assert torch.load(part / "checkpoint.pt", weights_only=False)["method"] is None
    train(_cfg(tmp_path / "b", *snap, "resume=true"))
    a, b = read_run_log(full / "log.jsonl", strict=True), read_run_log(part / "log.jsonl", strict=True)
    assert [e["teacher_epoch"] for e in b.epochs] == [0, 1, 2]
    assert [e["train_loss"] for e in a.epochs] == [e["train_loss"] for e in b.epochs]
    assert a.final["metrics"] == b.final["metrics"]
    # the best epoch on test, as the official code would report it, next to the last
    best = min(a.epochs, key=lambda e: (e["top1_err"], e["epoch"]))
    assert a.final["selected_on_test"]["epoch"] == best["epoch"]
    assert a.final["selected_on_test"]["top1_err"] == best["top1_err"] and a.final["selected_on_test"]["nll"] == best["nll"]
    # a snapshot run's checkpoint has no bank: resuming it with the bank is a one-line refusal
    assert main(TINY + [f"out_dir={tmp_path / 'c'}", *snap, "stop_after_epochs=1"]) == 0
    assert main(TINY + [f"out_dir={tmp_path / 'c'}", "method.name=selfkd", "resume=true",
                        "resume_changed=allow"]) == 2


def test_bad_teacher_is_a_one_line_error(tmp_path, capsys):
    assert main(TINY + [f"out_dir={tmp_path}", "method.name=selfkd", "method.selfkd.teacher=ema"]) == 2
    err = capsys.readouterr().err
    assert "method.selfkd.teacher must be one of bank, snapshot, got 'ema'" in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_epoch_lines_log_bank_row_ages(tmp_path):
    """Self-KD alone rewrites every row each epoch; with CutMix the CutMix'd half keeps its older
    row, so rows age and some stay the one-hot label."""
    alone = read_run_log(train(_cfg(tmp_path / "a", "method.name=selfkd")) / "log.jsonl", strict=True)
    assert [(e["bank_row_age"], e["bank_never_written"]) for e in alone.epochs] == [(1.0, 0.0)] * 3
    mixed = read_run_log(train(_cfg(tmp_path / "m", "method.name=cutmix_selfkd")) / "log.jsonl", strict=True)
    never = [e["bank_never_written"] for e in mixed.epochs]
    age = [e["bank_row_age"] for e in mixed.epochs]
    # 300 rows in batches of 32 (9 x 32 + 12): exactly b // 2 of each batch write, 150 rows
    assert never[0] == 0.5 and age[0] == 1.0
    assert 0 < never[2] < never[1] < 0.5 and 1.0 < age[1] <= age[2] < 3.0
