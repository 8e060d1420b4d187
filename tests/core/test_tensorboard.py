"""tensorboard=true: the epoch lines (and final metrics) as TensorBoard scalars, equal to the log;
a resumed run purges the steps its interrupted part wrote after the checkpoint."""
import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from classification.train import TrainConfig, train  # noqa: E402
from core.config import load_config  # noqa: E402
from core.runlog import read_run_log  # noqa: E402
from core.tensorboard import TensorBoardMirror  # noqa: E402
from tests.classification.test_train import TINY  # noqa: E402


def _scalars(log_dir):
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_classification_run_mirrors_its_log(tmp_path):
    cfg = load_config(TrainConfig, None, TINY + [f"out_dir={tmp_path}", "method.name=selfkd", "tensorboard=true"])
    run = train(cfg)
    log = read_run_log(run / "log.jsonl", strict=True)
    sc = _scalars(run / "tensorboard")
    for key in ("train_loss", "top1_err", "ece", "alpha", "lr"):
        assert sc[key] == [(e["epoch"], pytest.approx(e[key], rel=1e-6)) for e in log.epochs]
    assert sc["final/nll"] == [(3, pytest.approx(log.final["metrics"]["nll"], rel=1e-6))]
    assert "epoch" not in sc and "type" not in sc
    # off by default: no folder
    plain = train(load_config(TrainConfig, None, TINY + [f"out_dir={tmp_path / 'plain'}"]))
    assert not (plain / "tensorboard").exists()


def test_resume_purges_the_steps_after_the_checkpoint(tmp_path):
    m = TensorBoardMirror(tmp_path)
    for epoch, loss in ((1, 3.0), (2, 2.0), (3, 9.9)):  # epoch 3 was written, then the run died
        m({"type": "epoch", "epoch": epoch, "train_loss": loss, "ok": True, "note": "x"})
    m.close()
    m = TensorBoardMirror(tmp_path, start_epoch=3)  # resumed from the end of epoch 2
    m({"type": "epoch", "epoch": 3, "train_loss": 1.0})
    m.close()
    assert _scalars(tmp_path)["train_loss"] == [(1, 3.0), (2, 2.0), (3, 1.0)]
    assert "ok" not in _scalars(tmp_path)  # booleans and strings are not scalars
