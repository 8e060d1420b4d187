"""Reports write only under --out: file names built from run-log values (run_id, table, row) are
checked like run folder names, and a bad --runs / --out is one line before anything is written."""
from pathlib import Path

import pytest

from core.runlog import RunLogWriter
from reports.__main__ import main


def _complete_run(root: Path, folder: str, **meta):
    """A finished classification run with reliability bins whose meta may lie about its names."""
    w = RunLogWriter(root / "table1" / folder / "log.jsonl")
    fields = dict(run_id=folder, task="classification", method="baseline", model="small_cnn",
                  dataset="digits", seed=0, config={}, git_commit="abc", git_dirty=False, torch="2",
                  device="cpu", started="2026-01-01T00:00:00+00:00", table="table1", row="small_cnn", epochs=1)
    w.meta(**{**fields, **meta})
    m = {"top1_err": 10.0, "top5_err": 1.0, "nll": 0.3, "ece": 2.0, "aurc": 20.0, "e_aurc": 5.0}
    w.epoch(epoch=1, alpha=0.0, lr=0.1, train_loss=0.5, **m)
    w.final(metrics=m, reliability={"edges": [0.0, 0.5, 1.0], "count": [1, 9], "conf": [0.4, 0.9],
                                    "acc": [0.0, 1.0]}, wall_s=1.0)


def _files(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("target,meta", [
    ("demo", {"run_id": "x/../../escaped"}),
    ("figures", {"row": "x/../../../escaped"}),
    ("figures", {"table": "x/../../../escaped"}),
])
def test_names_from_a_log_never_write_outside_out(tmp_path, capsys, target, meta):
    runs, out = tmp_path / "runs", tmp_path / "out"
    _complete_run(runs, "good")
    _complete_run(runs, "evil", **meta)
    before = _files(tmp_path)
    args = ["demo", str(runs), str(out)] if target == "demo" else ["figures", "--runs", str(runs), "--out", str(out)]
    assert main(args) == 0
    written = _files(tmp_path) - before
    assert written and all(f.startswith("out/") for f in written), written
    assert not list(tmp_path.parent.glob("escaped*")) and not list(tmp_path.glob("escaped*"))
    said = capsys.readouterr()  # demo lists warnings in its table (stdout), figures on stderr
    assert "plain folder name" in said.out + said.err and "escaped" in said.out + said.err
    if target == "demo":  # the good run is still drawn
        assert "out/reliability_good.png" in written


def test_missing_runs_root_and_out_that_is_a_file_are_one_line(tmp_path, capsys):
    runs = tmp_path / "runs"
    _complete_run(runs, "good")
    out = tmp_path / "out"
    assert main(["table1", "--runs", str(runs), "--out", str(out)]) == 0
    table = (out / "table1.md").read_text()
    capsys.readouterr()
    # a typo in --runs: not a table of nothing over the good one
    assert main(["table1", "--runs", str(tmp_path / "typo"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --runs {tmp_path / 'typo'}: no such folder"]
    assert (out / "table1.md").read_text() == table
    (tmp_path / "afile").write_text("x")
    for bad_out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        assert main(["table1", "--runs", str(runs), "--out", str(bad_out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --out ") and "is a file, not a folder" in err[0], err
    assert (tmp_path / "afile").read_text() == "x"
    assert main(["demo", str(tmp_path / "typo"), str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_runs_root_without_a_run_of_the_table_leaves_the_table_alone(tmp_path, capsys):
    """A named --runs that exists but holds no run, or none of the table asked for: one line,
    exit 2, and nothing written over what --out holds (no table of nothing)."""
    runs, out = tmp_path / "runs", tmp_path / "out"
    _complete_run(runs, "good")
    assert main(["table1", "--runs", str(runs), "--out", str(out)]) == 0
    before = {f: (out / f).read_bytes() for f in _files(out)}
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    for argv, words in ((["table1", "--runs", str(tmp_path / "empty")], "no run log"),
                        (["table2", "--runs", str(runs)], "no run under --runs")):
        assert main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
        assert {f: (out / f).read_bytes() for f in _files(out)} == before


def test_no_subcommand_lists_the_subcommands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "required" not in err
    for sub in ("table1", "table5", "tables", "figures", "check-repro", "demo", "qualitative", "regime"):
        assert f"\n    {sub}" in err, sub


@pytest.mark.parametrize("sub", ["table1", "table3", "tables", "regime", "table4-runs", "study", "figures",
                                 "check-repro", "demo", "qualitative"])
def test_each_subcommand_help_is_its_own(capsys, sub):
    with pytest.raises(SystemExit) as e:
        main([sub, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m reports {sub} "), out[:200]
    assert ("--expected" in out) == (sub == "check-repro")
    assert ("--checkpoints" in out) == (sub == "qualitative")
