"""translation.train owns exactly its run folder, <out_dir>/<table>/<run_id>/, as every task does
(core.run): no run_id points outside out_dir, an existing folder is continued only with
resume=true (without it the rerun is refused and nothing changes), a resume with another config
does not resume (or finish) someone else's run, a finished run is never deleted or retrained, a
folder with nothing to resume is moved aside rather than deleted, and a folder in use is refused."""
import pytest

from core.run import RunLock
from core.runlog import read_run_log
from tests.conftest import REPO
from tests.translation.conftest import TINY
from translation.train import main

CONFIG = REPO / "translation" / "configs" / "multi30k_de_en_selfkd.yaml"


def _args(prep_dir, out_dir, *extra):
    return (["--config", str(CONFIG)] + TINY + ["epochs=2", f"data.prep_dir={prep_dir}",
                                                f"out_dir={out_dir}"] + list(extra))


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_run_id_cannot_leave_out_dir(tiny_multi30k, tmp_path, capsys):
    out = tmp_path / "runs"
    for bad in ("../escape", "a/b", ".."):
        assert main(_args(tiny_multi30k, out, f"run_id={bad}")) == 2
        assert "run_id must be a plain folder name" in _err(capsys)
    assert not (tmp_path / "escape").exists() and not out.exists()


def test_another_config_does_not_resume_the_run(tiny_multi30k, tmp_path, capsys):
    pytest.importorskip("fairseq")
    run = tmp_path / "table4" / "r"
    assert main(_args(tiny_multi30k, tmp_path, "run_id=r", "stop_after_epochs=1")) == 0
    before = (run / "log.jsonl").read_bytes()
    capsys.readouterr()
    # the same command without resume=true: refused, the partial run untouched
    assert main(_args(tiny_multi30k, tmp_path, "run_id=r")) == 2
    assert f"run directory {run} exists; pass resume=true" in _err(capsys)
    assert (run / "log.jsonl").read_bytes() == before
    # same run_id, another alpha_T: refused with the key named, the run untouched
    assert main(_args(tiny_multi30k, tmp_path, "run_id=r", "method.selfkd.alpha_T=0.3", "--resume")) == 2
    err = _err(capsys)
    assert "method.selfkd.alpha_T: 0.7 -> 0.3" in err and "resume_changed=allow" in err
    assert (run / "log.jsonl").read_bytes() == before
    # a runtime key (log_interval, stop_after_epochs) is not a change; resume_changed=allow goes
    # on with the new value and logs it
    assert main(_args(tiny_multi30k, tmp_path, "run_id=r", "method.selfkd.alpha_T=0.3", "--resume",
                      "resume_changed=allow", "log_interval=5")) == 0
    log = read_run_log(run / "log.jsonl", strict=True)
    assert [r["type"] for r in log.extra] == ["resume", "config_change"]
    assert log.extra[1]["changes"] == ["method.selfkd.alpha_T: 0.7 -> 0.3"]
    assert [e["epoch"] for e in log.epochs] == [1, 2] and log.final is not None
    assert "alpha_T: 0.3" in (run / "config.yaml").read_text()


def test_finished_run_without_checkpoints_is_left_alone(tiny_multi30k, tmp_path, capsys):
    """Deleting a finished run's checkpoints to save disk, then rerunning the command (a launcher
    script's rerun) must not delete its log and train again."""
    pytest.importorskip("fairseq")
    import shutil
    run = tmp_path / "table4" / "done"
    assert main(_args(tiny_multi30k, tmp_path, "run_id=done", "epochs=1")) == 0
    shutil.rmtree(run / "checkpoints")
    before = (run / "log.jsonl").read_bytes()
    capsys.readouterr()
    assert main(_args(tiny_multi30k, tmp_path, "run_id=done", "epochs=1", "--resume")) == 0
    assert "is complete; nothing to do" in capsys.readouterr().out
    assert (run / "log.jsonl").read_bytes() == before and not (run / "checkpoints").exists()


def test_folder_without_checkpoint_is_moved_aside_not_deleted(tiny_multi30k, tmp_path, capsys):
    pytest.importorskip("fairseq")
    run = tmp_path / "table4" / "r"
    run.mkdir(parents=True)
    (run / "log.jsonl").write_text('{"type": "meta", "note": "a run killed before its first save"}\n')
    (run / "notes.txt").write_text("mine\n")
    assert main(_args(tiny_multi30k, tmp_path, "run_id=r", "epochs=1")) == 2  # not without resume=true
    assert (run / "notes.txt").read_text() == "mine\n" and not (tmp_path / "table4" / ".aside").exists()
    assert main(_args(tiny_multi30k, tmp_path, "run_id=r", "epochs=1", "resume=true")) == 0
    assert "moved to" in capsys.readouterr().err
    (aside,) = (tmp_path / "table4" / ".aside").iterdir()
    assert aside.name.startswith("r-") and (aside / "notes.txt").read_text() == "mine\n"
    assert "killed before" in (aside / "log.jsonl").read_text()
    assert read_run_log(run / "log.jsonl", strict=True).final is not None


def test_folder_in_use_is_refused(tiny_multi30k, tmp_path, capsys):
    pytest.importorskip("fairseq")
    run = tmp_path / "table4" / "busy"
    with RunLock(run):
        assert main(_args(tiny_multi30k, tmp_path, "run_id=busy", "--resume")) == 2
        assert "is in use by process" in _err(capsys)
    assert [p.name for p in run.iterdir()] == [".lock"]
