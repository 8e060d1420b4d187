"""classification.evaluate: the final record's temperature-scaled block, and re-evaluating a
finished run from its checkpoint (the CLI, --record under the run's lock)."""
import json
import math

import pytest

from classification import evaluate
from classification.train import TrainConfig, train
from core.config import load_config
from core.metrics import METRIC_NAMES
from core.run import RunLock
from core.runlog import read_run_log

TINY = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=300",
        "data.test_subset=200", "epochs=2", "optim.batch_size=32", "optim.lr=0.05",
        "optim.milestones=[2]", "progress=false", "data.fit_subset=0"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train(load_config(TrainConfig, None, TINY + [f"out_dir={out}"]))


@pytest.fixture(scope="module")
def holdout_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train(load_config(TrainConfig, None, TINY + [f"out_dir={out}", "data.holdout_fraction=0.3"]))


def test_final_record_holds_raw_and_scaled_metrics(finished_run):
    log = read_run_log(finished_run / "log.jsonl", strict=True)
    ts = log.final["temperature_scaled"]
    assert ts["ts_fit"] == "test-2fold" and ts["split"] == "test" and len(ts["fold_temperatures"]) == 2
    assert ts["temperature"] > 0 and set(ts["metrics"]) == set(METRIC_NAMES) == set(log.final["metrics"])
    assert ts["metrics"]["top1_err"] == log.final["metrics"]["top1_err"]
    assert all(math.isfinite(v) for v in ts["metrics"].values())
    assert sum(ts["reliability"]["count"]) == 200


def test_cli_reevaluates_the_checkpoint_exactly(finished_run, capsys):
    """The re-evaluation of the run's checkpoint (the last epoch's model) gives the final record's
    numbers, raw and scaled; without --record the log is untouched."""
    before = (finished_run / "log.jsonl").read_bytes()
    assert evaluate.main([str(finished_run)]) == 0
    out = json.loads(capsys.readouterr().out)
    final = read_run_log(finished_run / "log.jsonl").final
    assert out["split"] == "test" and out["epoch"] == 2
    assert out["metrics"] == pytest.approx(final["metrics"], rel=1e-9)
    assert out["temperature_scaled"]["metrics"] == pytest.approx(final["temperature_scaled"]["metrics"], rel=1e-9)
    assert out["temperature_scaled"]["temperature"] == pytest.approx(final["temperature_scaled"]["temperature"])
    assert (finished_run / "log.jsonl").read_bytes() == before


def test_record_appends_one_eval_record_and_keeps_every_line(finished_run, capsys):
    log_path = finished_run / "log.jsonl"
    before = log_path.read_bytes()
    assert evaluate.main([str(finished_run / "checkpoint.pt"), "--record"]) == 0
    after = log_path.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == before.count(b"\n") + 1
    rec = json.loads(after.splitlines()[-1])
    assert rec["type"] == "eval" and rec["task"] == "classification" and rec["split"] == "test"
    assert rec["temperature_scaled"]["ts_fit"] == "test-2fold" and "command" in rec
    # the same evaluation again: printed from the log, nothing appended
    capsys.readouterr()
    assert evaluate.main([str(finished_run), "--record"]) == 0
    assert log_path.read_bytes() == after
    assert json.loads(capsys.readouterr().out)["metrics"] == rec["metrics"]


def test_record_refuses_a_run_in_use(finished_run, capsys):
    before = (finished_run / "log.jsonl").read_bytes()
    with RunLock(finished_run):
        assert evaluate.main([str(finished_run), "--record"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "in use" in err and err.count("\n") == 1
    assert (finished_run / "log.jsonl").read_bytes() == before


def test_holdout_run_fits_on_its_holdout_for_the_test_set(holdout_run, capsys):
    final = read_run_log(holdout_run / "log.jsonl").final
    assert final["temperature_scaled"]["ts_fit"] == "holdout-2fold"  # the run scores its holdout
    assert evaluate.main([str(holdout_run), "--split", "test"]) == 0
    out = json.loads(capsys.readouterr().out)
    ts = out["temperature_scaled"]
    assert out["split"] == "test" and ts["ts_fit"] == "holdout" and "fold_temperatures" not in ts
    assert sum(ts["reliability"]["count"]) == 200  # the test subset, scored once


@pytest.mark.parametrize("args, msg", [
    (["{run}", "--split", "holdout"], "no holdout split"),
    (["{tmp}/nothing"], "no such run folder"),
    (["{tmp}"], "no checkpoint.pt"),
    (["{run}", "--data-root", "{tmp}/nodata", "--split", "test"], None),  # digits ignores the root
])
def test_user_errors_are_one_line(finished_run, tmp_path, capsys, args, msg):
    args = [a.format(run=finished_run, tmp=tmp_path) for a in args]
    rc = evaluate.main(args)
    err = capsys.readouterr().err
    if msg is None:
        assert rc == 0
        return
    assert rc == 2 and err.startswith("error: ") and msg in err and err.count("\n") == 1


def test_record_refuses_an_unfinished_run(tmp_path, capsys):
    run = train(load_config(TrainConfig, None, TINY + [f"out_dir={tmp_path}", "stop_after_epochs=1"]))
    before = (run / "log.jsonl").read_bytes()
    assert evaluate.main([str(run), "--record"]) == 2
    assert "has not finished" in capsys.readouterr().err
    assert (run / "log.jsonl").read_bytes() == before


def test_help_describes_the_fit_rules(capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--help"])
    out = capsys.readouterr().out
    for word in ("RUN_DIR_OR_CHECKPOINT", "--split", "--record", "test-2fold", "holdout-2fold", "--data-root"):
        assert word in out


def test_a_run_logged_before_temperature_scaling_gains_it_from_its_checkpoint(tmp_path, capsys):
    """A run whose log predates temperature scaling (its final record without temperature_scaled,
    SmoothECE or AUGRC) is re-evaluated with --record; the reports then read the scaled metrics
    and the new ones from that eval record."""
    from reports.logs import find_runs
    run = train(load_config(TrainConfig, None, TINY + [f"out_dir={tmp_path}"]))
    recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    final = recs[-1]
    del final["temperature_scaled"]
    for rec in recs[1:-1] + [final["metrics"]]:
        for k in ("smece", "augrc"):
            rec.pop(k, None)
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (r,), _ = find_runs([tmp_path])
    assert r.metric("ts.ece") is None and r.metric("smece") is None
    capsys.readouterr()
    assert evaluate.main([str(run), "--record"]) == 0
    (r,), _ = find_runs([tmp_path])
    rec = json.loads(capsys.readouterr().out)
    assert r.metric("ts.ece") == rec["temperature_scaled"]["metrics"]["ece"]
    assert r.metric("ts.temperature") == rec["temperature_scaled"]["temperature"]
    assert r.metric("smece") == rec["metrics"]["smece"] and r.metric("top1_err") == final["metrics"]["top1_err"]
    assert r.temperature_scaled["ts_fit"] == "test-2fold"
