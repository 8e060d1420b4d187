"""End-to-end tiny runs of classification.train on real data (digits; the shared CIFAR-10 copy)."""
import math
import subprocess
import sys

import pytest
import torch

from classification.train import TrainConfig, main, train
from core.config import load_config
from core.metrics import METRIC_NAMES
from core.runlog import read_run_log

TINY = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=300",
        "data.test_subset=200", "epochs=3", "optim.batch_size=32", "optim.lr=0.05",
        "optim.milestones=[2]", "progress=false"]


def _cfg(tmp_path, *extra):
    return load_config(TrainConfig, None, TINY + [f"out_dir={tmp_path}", *extra])


@pytest.mark.parametrize("method", ["baseline", "ls", "selfkd"])
def test_tiny_run_log_schema(tmp_path, method):
    run_dir = train(_cfg(tmp_path, f"method.name={method}"))
    log = read_run_log(run_dir / "log.jsonl", strict=True)
    assert log.meta["method"] == method and log.meta["table"] == "table1" and log.meta["row"] == "small_cnn"
    assert [e["epoch"] for e in log.epochs] == [1, 2, 3]
    for e in log.epochs:
        assert set(METRIC_NAMES) <= set(e) and all(math.isfinite(e[k]) for k in METRIC_NAMES)
        assert math.isfinite(e["train_loss"])
    # Eq. 5: alpha_t = 0.8 t / 3 for Self-KD; 0 otherwise. The logged alpha is the one in force:
    # 0 at epoch 1 (no p_0: one-hot targets), with Eq. 5's value beside it
    want = [0.0, 0.8 * 2 / 3, 0.8] if method == "selfkd" else [0.0] * 3
    assert [e["alpha"] for e in log.epochs] == pytest.approx(want)
    assert [e.get("alpha_schedule") for e in log.epochs] == (
        [pytest.approx(0.8 / 3), None, None] if method == "selfkd" else [None] * 3)
    assert [e["lr"] for e in log.epochs] == pytest.approx([0.05, 0.05, 0.005])
    assert log.epochs[-1]["train_loss"] < log.epochs[0]["train_loss"]
    assert log.final["metrics"] == {k: log.epochs[-1][k] for k in log.final["metrics"]}
    assert sum(log.final["reliability"]["count"]) == 200
    assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoint.pt").is_file()


def test_selfkd_bank_holds_last_epoch_train_predictions(tmp_path):
    run_dir = train(_cfg(tmp_path, "method.name=selfkd"))
    bank = torch.load(run_dir / "checkpoint.pt", weights_only=False)["method"]
    assert bank["seen"].all()  # every training sample wrote its row
    torch.testing.assert_close(bank["probs"].sum(1), torch.ones(300))


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    full = train(_cfg(tmp_path / "a", "method.name=selfkd"))
    part = train(_cfg(tmp_path / "b", "method.name=selfkd", "stop_after_epochs=1"))
    assert not read_run_log(part / "log.jsonl").complete
    # a line written after the checkpoint (as if killed mid-epoch-2) must be dropped on resume
    with open(part / "log.jsonl", "a") as f:
        f.write('{"type": "epoch", "epoch": 2, "alp')
    train(_cfg(tmp_path / "b", "method.name=selfkd", "resume=true"))
    a, b = read_run_log(full / "log.jsonl", strict=True), read_run_log(part / "log.jsonl", strict=True)
    assert a.final["metrics"] == b.final["metrics"]
    assert [e["train_loss"] for e in a.epochs] == [e["train_loss"] for e in b.epochs]
    assert a.final["reliability"] == b.final["reliability"]


def test_resume_of_complete_run_is_noop(tmp_path, capsys):
    run_dir = train(_cfg(tmp_path))
    before = (run_dir / "log.jsonl").read_text()
    train(_cfg(tmp_path, "resume=true"))
    assert (run_dir / "log.jsonl").read_text() == before
    assert "already complete" in capsys.readouterr().out


def test_cifar10_jpeg_copy(tmp_path, shared_data):
    npz = shared_data / "cifar10-jpeg" / "cifar10_jpeg.npz"
    run_dir = train(load_config(TrainConfig, None, [
        "model=preact_resnet18", "data.name=cifar10_npz", f"data.root={npz}", "data.num_workers=0",
        "data.train_subset=64", "data.test_subset=64", "epochs=1", "optim.batch_size=32",
        "method.name=selfkd", "progress=false", f"out_dir={tmp_path}"]))
    log = read_run_log(run_dir / "log.jsonl", strict=True)
    assert log.meta["dataset"] == "cifar10_npz" and log.complete


@pytest.mark.parametrize("override,needle", [
    ("data.name=cifar100", "dataset path not found"),
    ("model=resnet9000", "unknown model 'resnet9000'"),
    ("model=timm/notreal", "not a timm architecture"),
    ("method.name=mixup", "unknown method 'mixup'"),
    ("method.selfkd.alpha_T=1.5", "method.selfkd.alpha_T=1.5 is set, but method baseline"),
    ("method.alpah_T=0.5", "alpah_T"),
    ("epochs=many", "many"),
])
def test_bad_input_one_line_error_no_run_dir(tmp_path, capsys, override, needle):
    rc = main(TINY + [f"out_dir={tmp_path}", "data.root=/nonexistent/cifar", override])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_existing_run_dir_refused(tmp_path, capsys):
    train(_cfg(tmp_path))
    assert main(TINY + [f"out_dir={tmp_path}"]) == 2
    assert "exists" in capsys.readouterr().err


def test_cli_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "-m", "classification.train", "--config", str(tmp_path / "nope.yaml")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: config file not found")


def test_selfkd_with_alpha_zero_is_the_baseline(tmp_path):
    """End to end, Self-KD with alpha_T = 0 must train exactly like the baseline: any gap between
    the two at alpha_T > 0 then comes from the soft targets, not from the machinery around them."""
    a = read_run_log(train(_cfg(tmp_path / "a", "method.name=baseline")) / "log.jsonl", strict=True)
    b = read_run_log(train(_cfg(tmp_path / "b", "method.name=selfkd", "method.selfkd.alpha_T=0.0")) / "log.jsonl", strict=True)
    assert [e["train_loss"] for e in a.epochs] == [e["train_loss"] for e in b.epochs]
    assert a.final["metrics"] == b.final["metrics"]


def test_epoch_lines_log_the_fit_regime(tmp_path):
    """train_top1_err / train_conf from the training forward passes, fit_* from a fixed subset of
    un-augmented training images: here the whole training set (fit_subset=-1), so the logged
    fit error must equal the checkpointed model's error on the training set, recomputed."""
    from classification.data import DataConfig, build_datasets
    from classification.evaluate import evaluate
    from classification.models import build_model
    run_dir = train(_cfg(tmp_path, "data.fit_subset=-1"))
    log = read_run_log(run_dir / "log.jsonl", strict=True)
    for e in log.epochs:
        assert 0.0 <= e["train_top1_err"] <= 100.0 and 10.0 <= e["train_conf"] <= 100.0
        assert 0.0 <= e["fit_top1_err"] <= 100.0 and 10.0 <= e["fit_conf"] <= 100.0 and e["fit_nll"] > 0
    assert log.epochs[-1]["train_top1_err"] < log.epochs[0]["train_top1_err"]
    _, _, fit, k = build_datasets(DataConfig(name="digits", train_subset=300, fit_subset=-1))
    assert len(fit) == 300
    model = build_model("small_cnn", k, in_channels=1)
    model.load_state_dict(torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"])
    m, _ = evaluate(model, torch.utils.data.DataLoader(fit, batch_size=64), torch.device("cpu"))
    assert m["top1_err"] == pytest.approx(log.epochs[-1]["fit_top1_err"])
    assert m["nll"] == pytest.approx(log.epochs[-1]["fit_nll"])
    # and it is not the test set's error (a fit measured on the wrong split would pass above
    # only by coincidence)
    assert log.epochs[-1]["fit_top1_err"] != log.epochs[-1]["top1_err"] or \
        log.epochs[-1]["fit_nll"] != log.epochs[-1]["nll"]


def test_fit_subset_size_and_off(tmp_path):
    from classification.data import DataConfig, build_datasets
    train_set, _, fit, _ = build_datasets(DataConfig(name="digits", train_subset=300, fit_subset=100))
    assert len(fit) == 100 and set(fit.indices) <= set(train_set.indices)
    assert build_datasets(DataConfig(name="digits", train_subset=300, fit_subset=0))[2] is None
    log = read_run_log(train(_cfg(tmp_path, "data.fit_subset=0", "epochs=1")) / "log.jsonl", strict=True)
    assert "fit_top1_err" not in log.epochs[0] and "train_top1_err" in log.epochs[0]


def test_npz_subset_decodes_only_the_selected_images_identically(shared_data):
    from classification.data import load_cifar10_npz
    path = shared_data / "cifar10-jpeg/cifar10_jpeg.npz"
    full, labels = load_cifar10_npz(path, "test")
    part, labels2 = load_cifar10_npz(path, "test", [3, 7, 9999])
    assert (labels == labels2).all() and part.shape == full.shape
    assert (part[[3, 7, 9999]] == full[[3, 7, 9999]]).all()
    assert not part[[0, 1, 2]].any()  # not decoded


def test_topk_bank_trains_end_to_end(tmp_path):
    run_dir = train(_cfg(tmp_path, "method.name=selfkd", "method.selfkd.bank.topk=3"))
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["method"]
    assert state["values"].shape == (300, 3) and state["seen"].all()
    assert read_run_log(run_dir / "log.jsonl", strict=True).complete


def test_threads_key_sets_and_logs_the_count(tmp_path):
    before = torch.get_num_threads()
    try:
        run = train(_cfg(tmp_path, "threads=1", "epochs=1"))
        assert read_run_log(run / "log.jsonl", strict=True).meta["threads"] == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert main(TINY + [f"out_dir={tmp_path}", "threads=-1", "run_id=bad"]) == 2
    from classification.train import thread_count
    assert (thread_count(3, "8"), thread_count(0, "4"), thread_count(0, None), thread_count(0, "")) == (3, 4, 1, 1)


def test_checkpoint_with_the_bank_under_its_old_key_resumes(tmp_path):
    """Checkpoints written before methods held their own state keep Self-KD's bank as "bank"."""
    full = train(_cfg(tmp_path / "a", "method.name=selfkd"))
    part = train(_cfg(tmp_path / "b", "method.name=selfkd", "stop_after_epochs=1"))
    state = torch.load(part / "checkpoint.pt", weights_only=True)
    state["bank"] = state.pop("method")
    torch.save(state, part / "checkpoint.pt")
    train(_cfg(tmp_path / "b", "method.name=selfkd", "resume=true"))
    a, b = read_run_log(full / "log.jsonl", strict=True), read_run_log(part / "log.jsonl", strict=True)
    assert [e["train_loss"] for e in a.epochs] == [e["train_loss"] for e in b.epochs]


def test_eval_every_skips_evaluation_not_training(tmp_path):
    """eval_every=2 over 3 epochs: evaluation (eval set and fit subset) at epochs 2 and 3 (the
    last) only; training and the final metrics equal those of a run evaluated every epoch."""
    every = read_run_log(train(_cfg(tmp_path / "a")) / "log.jsonl", strict=True)
    sparse = read_run_log(train(_cfg(tmp_path / "b", "eval_every=2")) / "log.jsonl", strict=True)
    assert [e["train_loss"] for e in sparse.epochs] == [e["train_loss"] for e in every.epochs]
    assert [e["train_top1_err"] for e in sparse.epochs] == [e["train_top1_err"] for e in every.epochs]
    assert [("top1_err" in e, "fit_top1_err" in e) for e in sparse.epochs] == [(False, False), (True, True), (True, True)]
    for k in [*METRIC_NAMES, "fit_top1_err"]:
        assert sparse.epochs[1][k] == every.epochs[1][k]
    assert sparse.final["metrics"] == every.final["metrics"]
    assert sparse.final["selected_on_test"]["epoch"] in (2, 3)
    assert main(TINY + [f"out_dir={tmp_path}", "eval_every=0", "run_id=bad"]) == 2
    assert not (tmp_path / "table1" / "bad").exists()  # refused before any file is written
