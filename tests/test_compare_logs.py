"""tools/compare_logs.py: a rerun that repeats a run is reported identical whatever its timings; a
changed value, a missing epoch or a missing final record is named; an unreadable log is one line."""
import importlib.util
from pathlib import Path

import pytest

from core.runlog import RunLogWriter

spec = importlib.util.spec_from_file_location("compare_logs", Path(__file__).resolve().parent.parent / "tools/compare_logs.py")
compare_logs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_logs)


def _log(path, loss=(0.9, 0.5), wall=1.0, final=True, nll=1.25):
    w = RunLogWriter(path / "log.jsonl")
    w.meta(run_id="r", task="classification", method="baseline", model="m", dataset="d", seed=0, config={},
           git_dirty=False, torch="x", device="cpu", started=f"t{wall}", git_commit=f"c{wall}")
    for i, x in enumerate(loss):
        w.epoch(epoch=i + 1, alpha=0.0, lr=0.1, train_loss=x, epoch_s=wall * (i + 3), top1_err=40.0 - i)
    if final:
        w.final(metrics={"top1_err": 39.0, "nll": nll}, reliability={"edges": [0.0, 0.5, 1.0], "count": [1, 2], "conf": [0.3, 0.9], "acc": [0.2, 0.8]}, wall_s=wall)
    return path / "log.jsonl"


def test_identical_but_for_timings_and_meta(tmp_path, capsys):
    a, b = _log(tmp_path / "a"), _log(tmp_path / "b", wall=7.0)
    assert compare_logs.main([str(a), str(b)]) == 0
    assert capsys.readouterr().out.startswith("identical: 2 epoch lines")


@pytest.mark.parametrize("kw, where", [
    ({"loss": (0.9, 0.5000001)}, "epoch 2: train_loss: 0.5 vs 0.5000001"),
    ({"nll": 1.26}, "final: metrics.nll: 1.25 vs 1.26"),
    ({"loss": (0.9,)}, "epoch lines: 2 vs 1"),
    ({"final": False}, "final record: True vs False"),
])
def test_a_difference_is_named(tmp_path, capsys, kw, where):
    a, b = _log(tmp_path / "a"), _log(tmp_path / "b", **kw)
    assert compare_logs.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert where in out and "differ" in out


def test_unreadable_log_is_one_line(tmp_path, capsys):
    a = _log(tmp_path / "a")
    assert compare_logs.main([str(a), str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_a_metric_only_one_log_has_is_listed_not_compared(tmp_path, capsys):
    a = _log(tmp_path / "a")
    w = RunLogWriter(tmp_path / "b" / "log.jsonl")
    w.meta(run_id="r", task="classification", method="baseline", model="m", dataset="d", seed=0, config={},
           git_dirty=False, torch="x", device="cpu", started="t", git_commit="c")
    for i, x in enumerate((0.9, 0.5)):
        w.epoch(epoch=i + 1, alpha=0.0, lr=0.1, train_loss=x, top1_err=40.0 - i, augrc=5.0)
    w.final(metrics={"top1_err": 39.0, "nll": 1.25, "augrc": 4.0},
            reliability={"edges": [0.0, 0.5, 1.0], "count": [1, 2], "conf": [0.3, 0.9], "acc": [0.2, 0.8]}, wall_s=2.0)
    assert compare_logs.main([str(a), str(tmp_path / "b" / "log.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "only in" in out and "augrc" in out and "identical" in out
