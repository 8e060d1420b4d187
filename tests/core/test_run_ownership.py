"""core.run and core.runlog under concurrency and damage: exactly one process owns a run folder,
even while it moves an old folder aside; a log that lost lines is put back from the checkpoint's
copy; a config.yaml that is not a mapping is refused; a full disk or a read-only folder is one
line naming the file."""
import json
import multiprocessing as mp
import time
import traceback
from pathlib import Path

import pytest

from core.config import ConfigError
from core.run import check_name, record_resume, start_run
from core.runlog import RunLogWriter, read_run_log

PROCESSES, ROUNDS, RETRY_S = 6, 4, 0.3


def _contend(run_dir, start_gate, end_gate, results):
    """One racing process: start_run with resume=true, report what it got, keep any lock until
    every racer has reported (an owner must still own the folder when the others arrive)."""
    start_gate.wait()
    start, deadline = None, time.monotonic() + RETRY_S
    while True:  # a refused process tries again at once, as a user's retry loop would
        try:
            start = start_run(Path(run_dir), {}, True, Path(run_dir) / "checkpoint.pt")
            # the owner writes into the folder it owns, as a training run would
            (Path(run_dir) / "log.jsonl").write_text("mine\n")
            results.put(("owner", start.state))
        except ConfigError as e:
            if time.monotonic() < deadline:
                continue
            results.put(("refused", str(e)))
        except BaseException:  # noqa: BLE001 (any other failure is what this test looks for)
            results.put(("crashed", traceback.format_exc()))
        break
    end_gate.wait()
    if start is not None:
        start.lock.release()


def test_racing_processes_on_a_folder_to_move_aside_have_exactly_one_owner(tmp_path):
    ctx = mp.get_context("fork")
    for rnd in range(ROUNDS):
        run_dir = tmp_path / "t" / f"r{rnd}"
        run_dir.mkdir(parents=True)
        (run_dir / "notes.txt").write_text("a folder with content but no checkpoint")
        start_gate, end_gate, results = ctx.Barrier(PROCESSES), ctx.Barrier(PROCESSES), ctx.Queue()
        procs = [ctx.Process(target=_contend, args=(str(run_dir), start_gate, end_gate, results))
                 for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        got = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        crashed = [g[1] for g in got if g[0] == "crashed"]
        assert not crashed, crashed[0]
        owners = [g for g in got if g[0] == "owner"]
        assert len(owners) == 1 and owners[0][1] == "fresh", got
        assert all("in use by process" in g[1] for g in got if g[0] == "refused"), got
        # the old folder was moved aside once, whole; the new one holds only the owner's writes
        aside = list((tmp_path / "t" / ".aside").glob(f"r{rnd}-*"))
        assert len(aside) == 1 and (aside[0] / "notes.txt").is_file()
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "log.jsonl"]


def test_check_name_refuses_control_characters():
    for bad in ("a\nb", "a\rb", "tab\there", "nul\0", "del\x7f"):
        with pytest.raises(ConfigError, match="plain folder name"):
            check_name(bad, "run_id")
    assert check_name("resnet50_selfkd_s0", "run_id") == "resnet50_selfkd_s0"


def _log_with_epochs(path: Path, n: int) -> RunLogWriter:
    w = RunLogWriter(path)
    w.meta(run_id="r", task="t", method="m", model="x", dataset="d", seed=0, config={}, git_commit="c",
           git_dirty=False, torch="2", device="cpu", started="now")
    for e in range(1, n + 1):
        w.epoch(epoch=e, alpha=0.0, lr=0.1, train_loss=1.0 / e)
    return w


def test_lost_log_lines_are_put_back_from_the_checkpoint_copy(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    saved = _log_with_epochs(path, 3).records()
    want = path.read_text().splitlines()
    # a zero-byte log: meta and epochs 1-2 come back (epoch 3 was after the checkpoint of 2)
    path.write_bytes(b"")
    record_resume(RunLogWriter(path), tmp_path, 2, 3, (), "", "cmd", saved)
    lines = path.read_text().splitlines()
    assert lines[:3] == want[:3] and json.loads(lines[3])["type"] == "resume"
    # a torn first epoch line, then a resume record: epoch 1 goes back before it
    path.write_text("\n".join([want[0], want[1][:20], json.dumps({"type": "resume", "from_epoch": 1}),
                               want[2]]) + "\n")
    record_resume(RunLogWriter(path), tmp_path, 2, 3, (), "", "cmd", saved)
    kinds = [(r["type"], r.get("epoch")) for r in map(json.loads, path.read_text().splitlines())]
    assert kinds == [("meta", None), ("epoch", 1), ("resume", None), ("epoch", 2), ("resume", None)]
    assert read_run_log(path, strict=True).epochs == [json.loads(x) for x in want[1:3]]
    assert capsys.readouterr().err == ""


def test_lost_meta_line_without_a_copy_is_one_line_and_lost_epochs_are_named(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    _log_with_epochs(path, 2)
    full = path.read_text()
    path.write_bytes(b"")
    with pytest.raises(ConfigError, match="lost its meta line") as e:
        record_resume(RunLogWriter(path), tmp_path, 2, 3, (), "", "cmd", None)
    assert "\n" not in str(e.value) and path.read_bytes() == b""
    lines = full.splitlines()
    path.write_text("\n".join([lines[0], lines[1][:15], lines[2]]) + "\n")
    record_resume(RunLogWriter(path), tmp_path, 2, 3, (), "", "cmd", None)
    assert "lacks the lines of epoch(s) 1" in capsys.readouterr().err


def test_config_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    run = tmp_path / "t" / "r"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"x")
    for text in ("- a\n- b\n", "just a string\n", ""):
        (run / "config.yaml").write_text(text)
        with pytest.raises(ConfigError, match="is not a config") as e:
            start_run(run, {"epochs": 3}, True, run / "checkpoint.pt", is_complete=lambda d: False)
        assert "\n" not in str(e.value)


def test_a_fresh_run_that_fails_before_its_first_checkpoint_leaves_nothing_behind(tmp_path):
    """Its folder goes, and so do the <out_dir>/<table>/ folders it made for it (while empty):
    a failed start leaves the out_dir as it found it, and never touches a neighbour's run."""
    from core.run import owned_run
    out = tmp_path / "runs"
    run_dir = out / "table4" / "r"
    with pytest.raises(RuntimeError):
        with owned_run(run_dir, {}, False, run_dir / "checkpoint.pt"):
            (run_dir / "log.jsonl").write_text("started\n")
            raise RuntimeError("the body failed")
    assert not out.exists()
    # a table folder holding another run stays, with that run
    (out / "table4" / "other").mkdir(parents=True)
    with pytest.raises(RuntimeError):
        with owned_run(run_dir, {}, False, run_dir / "checkpoint.pt"):
            raise RuntimeError("the body failed")
    assert sorted(p.name for p in (out / "table4").iterdir()) == ["other"]
