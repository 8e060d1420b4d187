"""Robust reading: each bad log gives a warning naming file:line, and the rest still renders."""
import json

from reports.logs import find_runs
from reports.tables import build_table, to_csv, to_markdown

from .conftest import FIXTURES, assert_golden

BAD = FIXTURES / "bad" / "table1"


def _warnings():
    return find_runs([FIXTURES / "bad"])


def _one(warnings, prefix):
    hits = [w for w in warnings if w.startswith(prefix)]
    assert len(hits) == 1, (prefix, warnings)
    return hits[0]


def test_truncated_last_line():
    runs, warnings = _warnings()
    hits = [w for w in warnings if w.startswith(f"{BAD}/table1_resnet50_selfkd_s0/log.jsonl:7: ")]
    assert len(hits) == 2
    assert "malformed JSON" in hits[0] and "no final record" in hits[1]
    run = next(r for r in runs if r.run_id == "table1_resnet50_selfkd_s0")
    # The final line is lost, so the run shows its last epoch (5 of 5), marked in progress.
    assert not run.complete and run.status == "in progress (epoch 5/300)"
    assert run.metric("top1_err") == 27.0


def test_unknown_schema_version_is_skipped_with_warning():
    runs, warnings = _warnings()
    w = _one(warnings, f"{BAD}/table1_resnet50_ls_s0/log.jsonl:1: ")
    assert "unknown schema version 2" in w
    assert "table1_resnet50_ls_s0" not in {r.run_id for r in runs}


def test_no_final_record_shows_last_epoch_marked():
    runs, warnings = _warnings()
    w = _one(warnings, f"{BAD}/table1_resnet101_baseline_s0/log.jsonl:3: ")
    assert "no final record" in w and "last epoch 2" in w
    run = next(r for r in runs if r.run_id == "table1_resnet101_baseline_s0")
    assert run.status == "in progress (epoch 2/5)"


def test_empty_folder_and_empty_file():
    runs, warnings = _warnings()
    assert "empty run folder" in _one(warnings, f"{BAD}/table1_resnet101_ls_s0/log.jsonl: ")
    assert "empty log" in _one(warnings, f"{BAD}/table1_resnet101_selfkd_s0/log.jsonl:1: ")
    assert [r.run_id for r in runs] == ["table1_resnet101_baseline_s0",
                                        "table1_resnet50_baseline_s0", "table1_resnet50_selfkd_s0"]


def test_the_rest_renders_with_the_warnings_listed():
    runs, warnings = _warnings()
    table = build_table("table1", runs, warnings)
    md = to_markdown(table)
    good = next(ln for ln in md.splitlines() if ln.startswith("| ResNet-50 | Baseline |"))
    assert "| complete |" in good and "| 30.00 |" in good
    for w in warnings:
        assert f"- {w}" in md
    assert_golden("bad_table1.md", md)
    assert_golden("bad_table1.csv", to_csv(table))


def test_missing_or_empty_roots_give_nothing_and_no_crash(tmp_path):
    assert find_runs([tmp_path / "absent"]) == ([], [])
    assert find_runs([tmp_path]) == ([], [])
    md = to_markdown(build_table("table2", [], []))
    assert md.count("| no runs |") == 7 + 2  # + the README's CS-KD and TF-KD lines


def test_duplicate_run_id_across_roots_counts_once(tmp_path):
    src = FIXTURES / "tables" / "table3" / "table3_resnet152_baseline_s0" / "log.jsonl"
    dst = tmp_path / "table3" / "copy" / "log.jsonl"
    dst.parent.mkdir(parents=True)
    dst.write_text(src.read_text())
    runs, warnings = find_runs([FIXTURES / "tables", tmp_path])
    assert [r.run_id for r in runs].count("table3_resnet152_baseline_s0") == 1
    assert any("already read" in w and str(dst) in w for w in warnings)


def test_different_runs_sharing_a_run_id_are_both_kept(tmp_path):
    # e.g. a one-seed probe and a table run of the same model, method and seed: same run id,
    # different runs (start times), different tables. Dropping one would silently shrink a
    # table's seed count. (In one table at one scale the first root's is used, with a warning:
    # tests/reports/test_figures.py.)
    src = FIXTURES / "tables" / "table3" / "table3_resnet152_baseline_s0" / "log.jsonl"
    lines = src.read_text().splitlines()
    meta = json.loads(lines[0])
    meta["started"] = "2099-01-01T00:00:00+00:00"
    meta["table"] = "probe"
    dst = tmp_path / "probe" / "table3_resnet152_baseline_s0" / "log.jsonl"
    dst.parent.mkdir(parents=True)
    dst.write_text("\n".join([json.dumps(meta)] + lines[1:]) + "\n")
    runs, warnings = find_runs([FIXTURES / "tables", tmp_path])
    assert [r.run_id for r in runs].count("table3_resnet152_baseline_s0") == 2
    assert not any("already read" in w or "left out" in w for w in warnings)


def test_subfolders_of_a_run_are_not_empty_runs(tmp_path):
    src = FIXTURES / "tables" / "table3" / "table3_resnet152_baseline_s0" / "log.jsonl"
    run = tmp_path / "table3" / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "log.jsonl").write_text(src.read_text())
    runs, warnings = find_runs([tmp_path])
    assert len(runs) == 1 and warnings == []


def test_record_before_meta_and_bad_json_object(tmp_path):
    d = tmp_path / "table1" / "r"
    d.mkdir(parents=True)
    (d / "log.jsonl").write_text(json.dumps({"type": "epoch", "epoch": 1, "alpha": 0, "lr": 0.1,
                                             "train_loss": 1.0}) + "\n")
    runs, warnings = find_runs([tmp_path])
    assert runs == [] and any(w.startswith(f"{d}/log.jsonl:1: ") for w in warnings)


def test_non_object_json_and_non_utf8_bytes_skip_a_line_not_the_tables(tmp_path):
    """A JSON array line (not an object) and a non-UTF-8 byte each cost their own line, named
    with file:line, never the tables."""
    src = FIXTURES / "tables" / "table1" / "table1_resnet50_baseline_s0" / "log.jsonl"
    meta, *rest = src.read_bytes().splitlines(keepends=True)
    d = tmp_path / "table1" / "r"
    d.mkdir(parents=True)
    (d / "log.jsonl").write_bytes(meta + b"[1, 2, 3]\n" + b'"x"\n' + b"\xff\xfe\x00junk\n"
                                  + b"".join(rest))
    runs, warnings = find_runs([tmp_path])
    log = f"{d}/log.jsonl"
    assert warnings == [f"{log}:2: not a JSON object (a JSON array)",
                        f"{log}:3: not a JSON object (a JSON string)",
                        f"{log}:4: not UTF-8 text (byte 0xff at column 1; a corrupted or "
                        "foreign file?)"]
    [run] = runs
    ref = next(r for r in find_runs([FIXTURES / "tables"])[0] if r.path == src)
    assert run.complete and run.metric("top1_err") == ref.metric("top1_err")
    md = to_markdown(build_table("table1", runs, warnings))
    assert all(f"- {w}" in md for w in warnings)


def test_unreadable_log_file_is_a_warning(tmp_path):
    good = FIXTURES / "tables" / "table1" / "table1_resnet50_baseline_s0" / "log.jsonl"
    (tmp_path / "table1" / "good").mkdir(parents=True)
    (tmp_path / "table1" / "good" / "log.jsonl").write_bytes(good.read_bytes())
    (tmp_path / "table1" / "gone").mkdir()
    (tmp_path / "table1" / "gone" / "log.jsonl").symlink_to(tmp_path / "deleted.jsonl")
    runs, warnings = find_runs([tmp_path])
    assert [r.run_id for r in runs] == ["table1_resnet50_baseline_s0"]
    assert warnings == [f"{tmp_path}/table1/gone/log.jsonl: unreadable "
                        "(No such file or directory); skipped"]
