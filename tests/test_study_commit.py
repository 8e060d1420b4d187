"""tools/study_commit.py: finished and scored study runs copied into the record (an unfinished one
left and listed), every scored cell pinned, the report rendered and cut into marked pages; a rerun
copies nothing and changes nothing; a source without study logs is one line."""
import importlib.util
from pathlib import Path

import yaml

from reports.repro import check_repro
from tests.reports.test_study import _run

spec = importlib.util.spec_from_file_location("study_commit", Path(__file__).resolve().parent.parent / "tools/study_commit.py")
study_commit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_commit)
spec2 = importlib.util.spec_from_file_location("study_excerpt", Path(__file__).resolve().parent.parent / "tools/study_excerpt.py")
study_excerpt = importlib.util.module_from_spec(spec2)
spec2.loader.exec_module(study_excerpt)


def test_finished_runs_are_copied_pinned_and_rendered(tmp_path, capsys):
    src, record = tmp_path / "wt" / "runs", tmp_path / "record"
    for s in range(2):
        _run(src, "baseline", s, top1=20.0 + s)
        _run(src, "selfkd", s, top1=19.0 + s, alpha_T=0.7)
    _run(src, "ls", 0, scored=False)    # trained, not scored on test yet
    _run(src, "ls", 1, complete=False)  # still training
    expected = tmp_path / "expected.yaml"
    expected.write_text("# pins\nresults:\n")
    page = tmp_path / "page.md"
    G, E = study_excerpt.begin("study_tiny", "glance"), study_excerpt.end("study_tiny", "glance")
    page.write_text(f"# Page\n\n{G}\n{E}\n")
    argv = ["--from", str(src), "--runs", str(record), "--expected", str(expected), "--out", str(tmp_path / "out"),
            "--pages", str(page)]
    assert study_commit.main(argv) == 0
    out = capsys.readouterr().out
    assert "copied 4 finished run log(s)" in out and "left 2 not finished or not scored yet" in out
    assert sorted(p.parent.name for p in (record / "study").glob("*/log.jsonl")) == [
        "study_tiny_baseline_s0", "study_tiny_baseline_s1", "study_tiny_selfkd_s0", "study_tiny_selfkd_s1"]
    entries = yaml.safe_load(expected.read_text())["results"]
    assert len(entries) == 2 * len(study_commit.METRICS) and {e["n"] for e in entries} == {2}
    assert check_repro(expected, [record])[0] == 0
    text = page.read_text()
    assert "| Self-KD + temperature scaling | 2 of 5 |" in text and (tmp_path / "out" / "study.md").exists()
    pinned = expected.read_text()
    assert study_commit.main(argv) == 0  # a rerun: nothing new
    out = capsys.readouterr().out
    assert "copied 0 finished run log(s)" in out and f"{len(entries)} entries replaced, 0 added" in out
    assert expected.read_text() == pinned and page.read_text() == text


def test_a_source_without_study_logs_is_one_line(tmp_path, capsys):
    assert study_commit.main(["--from", str(tmp_path), "--runs", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no study/ folder" in err and err.count("\n") == 1
