"""The words a run says to its user: the CPU cost estimate (from its own first steps), workers
above the core count, and the run folder with what to run next."""
import pytest

import core.notices as N
from core.notices import CpuCostEstimate, next_steps, worker_notice


def _clock(times):
    it = iter(times)
    return lambda: next(it)


def test_cpu_estimate_times_steps_after_the_first_and_speaks_once():
    # step 0 ends at t=100 (warm-up, not timed); then 42 s a step: past MEASURE_S after step 1
    est = CpuCostEstimate(True, 391, 300, clock=_clock([100.0, 142.0, 184.0]))
    assert est.step(0) is None
    notice = est.step(1)
    assert notice.startswith("running on CPU: one epoch (391 steps) will take about 4.6 h")
    assert "the 300 epoch(s) left about 57.0 d" in notice and "42.00 s a step" in notice
    assert "over training step 2 of this run" in notice
    assert est.step(2) is None  # once


def test_cpu_estimate_is_quiet_on_a_gpu_and_for_a_short_run():
    assert CpuCostEstimate(False, 391, 300, clock=_clock([0.0, 42.0])).step(0) is None
    short = CpuCostEstimate(True, 20, 3, clock=_clock([0.0] + [0.1 * i for i in range(1, 10)]))
    assert all(short.step(i) is None for i in range(6))  # 20 steps x 3 epochs x 0.1 s: silent


def test_classification_run_on_cpu_prints_its_estimate_and_next_steps(tmp_path, capsys, monkeypatch):
    from classification.train import main
    from tests.classification.test_train import TINY
    monkeypatch.setattr(N, "QUIET_BELOW_S", 0.0)
    assert main(TINY + ["device=cpu", f"out_dir={tmp_path}", "epochs=2", "optim.milestones=[1]"]) == 0
    out = capsys.readouterr().out
    assert out.count("running on CPU: one epoch (10 steps)") == 1
    run_dir = tmp_path / "table1" / "small_cnn_baseline_s0"
    assert f"run folder: {run_dir}\nnext: python -m reports tables --runs {tmp_path}" in out


def test_workers_above_the_cores_warn_once_in_our_words():
    assert worker_notice(2, cores=2) is None
    msg = worker_notice(8, cores=2)
    assert msg.startswith("warning: data.num_workers=8 is more than the 2 CPU core(s)")
    import warnings
    from torch.utils.data import DataLoader
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        worker_notice(8, cores=2)  # the filter is installed again inside the catch
        DataLoader(list(range(4)), num_workers=64).check_worker_number_rationality()
    assert not [w for w in caught if "worker processes" in str(w.message)]


@pytest.mark.parametrize("table,out_dir,want", [
    ("table1", "runs", "next: make tables (reports/out/table*.md), make figures"),
    ("table4", "/tmp/x", "next: python -m reports tables --runs /tmp/x, python -m reports figures --runs /tmp/x"),
    ("scratch", "runs", "next: python -m reports figures (table 'scratch' feeds no paper table"),
    ("demo", "runs", "next: python -m reports demo runs/demo reports/out/demo"),
    ("study", "runs", "next: make tables (reports/out/study.md)"),
    ("study", "/tmp/x", "next: python -m reports study --runs /tmp/x"),
])
def test_next_steps_name_the_reports_command(table, out_dir, want):
    text = next_steps(f"{out_dir}/{table}/r", table, out_dir)
    assert text.startswith(f"run folder: {out_dir}/{table}/r\n") and want in text
    assert "--resume" in next_steps("runs/table1/r", "table1", "runs", complete=False)


def test_the_table_list_matches_the_reports():
    from reports.tables import TABLES
    assert set(N.TABLE_RUNS) == {t for spec in TABLES.values() for t in spec.run_tables}


def test_epoch_cost_notice_after_a_first_epoch():
    assert N.epoch_cost_notice(30.0, 1, 5) is None  # 2.5 min left: silent
    msg = N.epoch_cost_notice(600.0, 3, 27)
    assert msg.startswith("running on CPU: epoch 3 took 10 min of training") and "the 27 epoch(s) left about 4.5 h" in msg
    assert "left at most about" in N.epoch_cost_notice(600.0, 1, 29, capped=True)
    assert N.epoch_cost_notice(600.0, 30, 0) is None  # nothing left


def test_translation_speaks_once_after_its_first_epoch(tmp_path):
    """translation.train's epoch handler asks for the notice after the first epoch it logs, once."""
    from core.runlog import RunLogWriter
    from translation.train import EpochRecords
    said, asked = [], []
    w = RunLogWriter(tmp_path / "log.jsonl")

    def cost(epoch, seconds):
        asked.append((epoch, seconds))
        return f"notice {epoch} {seconds:.0f}"
    h = EpochRecords(w, said.append, cost=cost)
    for epoch in (4, 5):
        h._write({"epoch": epoch, "train_loss": "1.0", "train_lr": "0.001", "train_num_updates": str(10 * epoch),
                  "train_train_wall": "700"})
    assert asked == [(4, 700.0)] and said.count("notice 4 700") == 1
