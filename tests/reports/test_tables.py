"""Tables 1–5 from fixture logs: golden Markdown/LaTeX/CSV and the numbers behind them."""
import csv
import io
import json

import pytest

from reports.__main__ import main
from reports.logs import find_runs
from reports.tables import TABLES, build_table, command_for, to_csv, to_latex, to_markdown

from .conftest import FIXTURES, GOLDEN, assert_golden

ROOT = FIXTURES / "tables"


@pytest.fixture(scope="module")
def runs():
    return find_runs([ROOT])


@pytest.mark.parametrize("name", list(TABLES))
def test_golden_outputs(runs, name):
    table = build_table(name, *runs)
    assert_golden(f"{name}.md", to_markdown(table))
    assert_golden(f"{name}.csv", to_csv(table))
    assert_golden(f"{name}.tex", to_latex(table))


def _csv_rows(table):
    return list(csv.DictReader(io.StringIO(to_csv(table))))


def test_mean_std_n_and_difference(runs):
    rows = _csv_rows(build_table("table1", *runs))
    r = next(x for x in rows if (x["row"], x["method"], x["metric"]) == ("resnet50", "baseline", "top1_err"))
    # Fixture seeds end at 30, 31, 32: mean 31, sample std 1; paper 27.07.
    assert (float(r["measured_mean"]), float(r["measured_std"]), int(r["n"])) == (31.0, 1.0, 3)
    assert r["paper"] == "27.07" and float(r["diff"]) == pytest.approx(31.0 - 27.07)
    assert r["run_ids"].split() == [f"table1_resnet50_baseline_s{s}" for s in (0, 1, 2)]
    assert (r["dataset"], r["epochs"], r["commits"], r["status"]) == ("cifar100", "300", "0123456", "complete")


def test_rows_without_runs_show_paper_value_and_exact_command(runs):
    table = build_table("table1", *runs)
    rows = _csv_rows(table)
    r = next(x for x in rows if (x["row"], x["method"], x["metric"]) == ("pyramidnet200", "cutmix_sd_selfkd", "ece"))
    assert r["paper"] == "1.72" and r["measured_mean"] == "" and r["n"] == "0"
    assert r["status"] == "no runs"
    assert r["command"] == ("for s in 0 1 2; do python -m classification.train --config "
                            "classification/configs/table1_pyramidnet200_cutmix_sd_selfkd.yaml seed=$s; done")
    assert r["command"] in to_markdown(table)
    assert command_for(TABLES["table2"], "resnet152", "ls") == (
        "python -m classification.train --config classification/configs/table2_resnet152_ls.yaml seed=0")
    assert command_for(TABLES["table4"], "multi30k_de_en", "selfkd") == (
        "python -m translation.train --config translation/configs/multi30k_de_en_selfkd.yaml")
    assert command_for(TABLES["table3"], "resnet152", "ls") == (
        "python -m detection.train --config detection/configs/resnet152_ls.yaml")


def test_every_paper_cell_appears_in_csv_with_no_runs():
    table = build_table("table1", [], [])
    rows = _csv_rows(table)
    # the seed paper's 105 cells, plus the peers' 50 from the official README (10 lines x 5)
    assert len(rows) == 105 + 50 and all(r["status"] == "no runs" for r in rows)
    assert sum(r["method"] in ("cskd", "tfkd") for r in rows) == 50
    assert len(_csv_rows(build_table("table5", [], []))) == 63


def test_in_progress_run_is_marked_and_not_averaged_with_complete_ones(runs):
    md = to_markdown(build_table("table1", *runs))
    ls_line = next(ln for ln in md.splitlines() if "| ResNet-50 | + Label Smoothing |" in ln)
    assert "in progress (epoch 3/300)" in ls_line
    # Its last epoch: 29 + 40/3 - 40/5 = 34.33 top-1.
    assert "| 34.33 |" in ls_line


def test_detection_tables_read_map_and_per_class_ap(runs):
    rows = _csv_rows(build_table("table5", *runs))
    r = next(x for x in rows if (x["method"], x["metric"]) == ("selfkd", "ap.bicycle"))
    assert float(r["measured_mean"]) == 70.5 and r["paper"] == "85.34"
    t3 = _csv_rows(build_table("table3", *runs))
    assert [float(x["measured_mean"] or "nan") for x in t3][::2] == [70.0, 71.5]


def _write_run(path, epochs, top1, dataset="cifar100", run_id=None, **extra):
    path.mkdir(parents=True)
    meta = {"type": "meta", "schema": 1, "run_id": run_id or path.name, "task": "classification",
            "method": "selfkd", "model": "resnet50", "dataset": dataset, "seed": 0, "config": {},
            "git_commit": "abc", "git_dirty": True, "torch": "x", "device": "cpu", "started": "t",
            "table": "table1", "row": "resnet50", "epochs": epochs, **extra}
    fin = {"type": "final", "metrics": {"top1_err": top1}, "reliability": None, "wall_s": 1}
    ep = {"type": "epoch", "epoch": epochs, "alpha": 0.7, "lr": 0.1, "train_loss": 1.0}
    (path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in (meta, ep, fin)) + "\n")


def test_runs_at_different_scales_are_separate_lines(tmp_path):
    _write_run(tmp_path / "table1" / "a", 5, 30.0)
    _write_run(tmp_path / "table1" / "b", 300, 25.0)
    runs, warnings = find_runs([tmp_path])
    assert warnings == []
    lines = [ln for ln in build_table("table1", runs).lines if (ln.row, ln.method) == ("resnet50", "selfkd")]
    # the paper's scale (CIFAR-100, 300 epochs) sits on the paper's line; 5 epochs is a line of
    # its own with no paper value and no difference (a reduced run is not the paper's setting)
    assert [(ln.group.epochs, ln.group.cell("top1_err").mean) for ln in lines] == [(300, 25.0), (5, 30.0)]
    assert lines[0].group.commits == ["abc-dirty"]
    table = build_table("table1", runs)
    assert table.paper_value(lines[0], "top1_err").value == 24.95
    assert table.paper_value(lines[1], "top1_err") is None
    from reports.tables import to_markdown
    row5 = [r for r in to_markdown(table).splitlines() if "cifar100, 5 ep" in r][0]
    assert "| 30.00 | – | – |" in row5


def test_holdout_runs_are_not_averaged_with_test_runs(tmp_path):
    _write_run(tmp_path / "table1" / "a", 5, 30.0)
    _write_run(tmp_path / "table1" / "b", 5, 20.0, eval_split="holdout")
    table = build_table("table1", find_runs([tmp_path])[0])
    lines = [ln for ln in table.lines if ln.group is not None]
    assert [ln.group.scale for ln in lines] == ["cifar100, 5 ep", "cifar100, 5 ep, holdout split"]
    assert [ln.group.cell("top1_err").mean for ln in lines] == [30.0, 20.0]


def test_unknown_table_raises():
    with pytest.raises(ValueError, match="table9"):
        build_table("table9", [])


def test_cli_writes_md_tex_csv(tmp_path, capsys):
    assert main(["tables", "--runs", str(ROOT), "--out", str(tmp_path)]) == 0
    for name in TABLES:
        for suffix in ("md", "tex", "csv"):
            assert (tmp_path / f"{name}.{suffix}").stat().st_size > 200
    assert (tmp_path / "table1.md").read_text() == (GOLDEN / "table1.md").read_text()
    assert "table1: 4/32 lines measured" in capsys.readouterr().out


def test_makefile_section_has_the_targets():
    text = open("Makefile").read()
    begin, end = text.index("# --- reports (begin) ---"), text.index("# --- reports (end) ---")
    section = text[begin:end]
    for target in ("table1 table2 table3 table4 table5 tables:", "figures:", "check-repro:"):
        assert target in section
    assert "-m reports" in section


def test_optional_column_selected_on_test_as_the_official_code(tmp_path, capsys):
    """The main columns are the last epoch's; the optional column is each run's
    lowest test top-1 error over its epochs (the official code's best-test checkpoint), from the
    final record's selected_on_test or, for older logs, from the epoch records."""
    from core.runlog import RunLogWriter
    for seed, errs in ((0, [40.0, 30.0, 32.0]), (1, [38.0, 34.0, 36.0])):
        w = RunLogWriter(tmp_path / "table1" / f"r{seed}" / "log.jsonl")
        w.meta(run_id=f"r{seed}", task="classification", method="selfkd", model="resnet50", dataset="cifar100",
               seed=seed, config={}, git_commit="0" * 40, git_dirty=False, torch="x", device="cpu",
               started=f"s{seed}", table="table1", row="resnet50", epochs=3)
        for t, e in enumerate(errs, 1):
            w.epoch(epoch=t, alpha=0.1, lr=0.1, train_loss=1.0, top1_err=e, nll=1.0)
        extra = {"selected_on_test": {"epoch": 2, "top1_err": errs[1]}} if seed == 0 else {}
        w.final(metrics={"top1_err": errs[-1], "nll": 1.0}, reliability=None, wall_s=1.0, **extra)
    runs = find_runs([tmp_path])
    plain = build_table("table1", *runs)
    table = build_table("table1", *runs, selected_on_test=True)
    assert "selected on test" not in to_markdown(plain)
    line = next(ln for ln in table.lines if ln.group is not None)
    assert table.cell(line, "top1_err").mean == 34.0  # the last epochs, 32 and 36
    md = to_markdown(table)
    assert "| AURC (x10^3) | paper | Δ | Top-1 error (%), selected on test, as the official code | n |" in md
    assert "32.00 ± 2.83 (ep 2, 2)" in md  # (30 + 34) / 2, sample std of {30, 34}
    row = next(r for r in _csv_rows(table) if r["metric"] == "selected_on_test.top1_err" and r["n"] == "2")
    assert float(row["measured_mean"]) == 32.0 and row["paper"] == ""
    with pytest.raises(ValueError, match="classification tables"):
        build_table("table3", *runs, selected_on_test=True)
    assert main(["table1", "--runs", str(tmp_path), "--out", str(tmp_path / "out"), "--selected-on-test"]) == 0
    assert "selected on test, as the official code" in (tmp_path / "out" / "table1.md").read_text()


def test_optional_calibration_columns(tmp_path):
    """Brier, 15-bin, adaptive and classwise ECE as optional measured-only columns."""
    from core.runlog import RunLogWriter
    for seed, brier in ((0, 0.30), (1, 0.40)):
        w = RunLogWriter(tmp_path / "table1" / f"r{seed}" / "log.jsonl")
        w.meta(run_id=f"r{seed}", task="classification", method="ls", model="resnet50", dataset="cifar100",
               seed=seed, config={}, git_commit="0" * 40, git_dirty=False, torch="x", device="cpu",
               started=f"s{seed}", table="table1", row="resnet50", epochs=1)
        w.epoch(epoch=1, alpha=0.0, lr=0.1, train_loss=1.0, top1_err=20.0)
        cal = {"brier": brier, "ece15": 5.0, "adaece": 4.0, "cwece": 0.5} if seed == 0 else {"brier": brier}
        w.final(metrics={"top1_err": 20.0, **cal}, reliability=None, wall_s=1.0)
    runs = find_runs([tmp_path])
    assert "Brier" not in to_markdown(build_table("table1", *runs))
    table = build_table("table1", *runs, calibration=True)
    md = to_markdown(table)
    assert ("| Brier score | ECE, 15 bins (%) | Adaptive ECE (%) | Classwise ECE (%) | SmoothECE (%) "
            "| AUGRC (x1000) | n |") in md
    line = next(ln for ln in md.splitlines() if "+ Label Smoothing" in ln and "| 2 |" in ln)
    assert "| 0.3500 ± 0.0707 | 5.00 | 4.00 | 0.50 | – | – |" in line  # the other run predates them: n = 1
    rows = [r for r in _csv_rows(table) if r["metric"] == "cwece" and r["measured_mean"]]
    assert [(r["measured_mean"], r["n"], r["paper"]) for r in rows] == [("0.5000", "1", "")]
    with pytest.raises(ValueError, match="classification tables"):
        build_table("table4", *runs, calibration=True)


def test_table3_optional_detection_ece_column(runs):
    """--calibration on Table 3: a D-ECE column (detection runs' final "dece"), no TS block; a dash
    for the fixture runs, which predate it."""
    table = build_table("table3", *runs, calibration=True)
    md = to_markdown(table)
    assert "| D-ECE (%) | n |" in md and "After temperature scaling" not in md
    assert "D-ECE beyond the paper" in md
    assert to_markdown(build_table("table3", *runs)) != md


def _ts_run(root, seed, final_ts=None, evals=()):
    from core.runlog import RunLogWriter
    w = RunLogWriter(root / "table1" / f"r{seed}" / "log.jsonl")
    w.meta(run_id=f"r{seed}", task="classification", method="baseline", model="resnet50", dataset="cifar100",
           seed=seed, config={}, git_commit="0" * 40, git_dirty=False, torch="x", device="cpu",
           started=f"s{seed}", table="table1", row="resnet50", epochs=1)
    w.epoch(epoch=1, alpha=0.0, lr=0.1, train_loss=1.0, top1_err=20.0)
    extra = {"temperature_scaled": final_ts} if final_ts else {}
    w.final(metrics={"top1_err": 20.0, "nll": 1.0, "ece": 10.0}, reliability=None, wall_s=1.0, **extra)
    for rec in evals:
        w.extra("eval", **rec)


def _ts(t, nll, ece, fit="test-2fold"):
    return {"temperature": t, "ts_fit": fit, "metrics": {"nll": nll, "ece": ece, "smece": ece / 2, "augrc": 50.0}}


def test_temperature_scaled_block_reads_final_records_and_the_newest_reevaluation(tmp_path):
    """--calibration adds a block of raw vs temperature-scaled NLL / ECE / SmoothECE / AUGRC with
    the fitted T and where it was fitted. A run re-evaluated with `classification.evaluate
    --record` is read from its newest eval record on its own split (raw numbers too); the default
    table is untouched."""
    _ts_run(tmp_path, 0, final_ts=_ts(1.5, 0.8, 2.0))
    old = {"split": "test", "task": "classification", "metrics": {"top1_err": 20.0, "nll": 9.0, "ece": 9.0},
           "temperature_scaled": _ts(9.0, 9.0, 9.0)}
    new = {"split": "test", "task": "classification", "metrics": {"top1_err": 20.0, "nll": 1.2, "ece": 12.0,
                                                                  "smece": 6.0, "augrc": 60.0},
           "temperature_scaled": _ts(2.5, 0.9, 4.0)}
    other_split = {**new, "split": "holdout", "metrics": {"top1_err": 99.0}}
    _ts_run(tmp_path, 1, evals=(old, new, other_split))
    runs = find_runs([tmp_path])
    assert "temperature" not in to_markdown(build_table("table1", *runs))
    table = build_table("table1", *runs, calibration=True)
    md = to_markdown(table)
    block = md.split("## After temperature scaling", 1)[1]
    assert ("| Model | Method | T | Fit | NLL (nats) raw | NLL (nats) TS | ECE (%) raw | ECE (%) TS | "
            "SmoothECE (%) raw | SmoothECE (%) TS | AUGRC (x1000) raw | AUGRC (x1000) TS | n | Runs |") in block
    line = next(ln for ln in block.splitlines() if ln.startswith("| ResNet-50"))
    # T: mean of 1.5 and 2.5; NLL raw: 1.0 (final) and 1.2 (the newest re-evaluation); TS 0.8, 0.9
    assert line.startswith("| ResNet-50 | Baseline | 2.000 ± 0.707 | test-2fold | 1.10 ± 0.14 | 0.85 ± 0.07 | "
                           "11.00 ± 1.41 | 3.00 ± 1.41 | 6.00 | 1.50 ± 0.71 | 60.00 | 50.00 ± 0.00 | 2 |")
    rows = {r["metric"]: r for r in _csv_rows(table) if r["metric"].startswith("ts.")}
    assert float(rows["ts.temperature"]["measured_mean"]) == 2.0 and rows["ts.ece"]["n"] == "2"
    assert "After temperature scaling" in to_latex(table)


def test_study_pilots_are_lines_of_table1_of_their_own(tmp_path):
    """Baseline-only pilot runs (meta table "study_pilots") show in Table 1 at their own scale,
    on lines of their own rows, never averaged into another table's line."""
    _write_run(tmp_path / "regime" / "a", 40, 30.0, dataset="cifar10_npz", row="resnet20_5k_aug", table="regime")
    _write_run(tmp_path / "study_pilots" / "b", 130, 20.0, dataset="cifar10_npz", row="resnet20_4k5_aug_e130",
               table="study_pilots")
    table = build_table("table1", find_runs([tmp_path])[0])
    got = [(ln.row, ln.group.epochs, ln.group.cell("top1_err").mean, len(ln.group.runs), ln.on_paper_line)
           for ln in table.lines if ln.group is not None]
    assert got == [("resnet20_5k_aug", 40, 30.0, 1, False), ("resnet20_4k5_aug_e130", 130, 20.0, 1, False)]
