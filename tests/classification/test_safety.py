"""No input may delete, overwrite or mix up a run other than the one a command owns; every
interruption resumes; every bad input is one line and a non-zero exit."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from classification.demo import main as demo_main
from classification.train import main
from core.run import RunLock
from core.runlog import read_run_log
from tests.kills import sigint_after_first_checkpoint, sigkill_after_first_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=96",
        "data.test_subset=64", "data.fit_subset=32", "epochs=2", "optim.batch_size=32",
        "optim.milestones=[1]", "progress=false"]


def _train(tmp_path, *extra):
    return main([*TINY, f"out_dir={tmp_path}", *extra])


def _tree(root: Path) -> dict:
    """Every file under root with its size and mtime: 'nothing else touched' is this unchanged.
    (Lock files hold the pid of the last process that ran the run; they are not data.)"""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def other_run(tmp_path):
    """A finished run of another table, plus a user's file beside the runs: must survive anything."""
    runs = tmp_path / "runs"
    assert _train(runs, "table=keep", "run_id=precious") == 0
    (runs / "notes.txt").write_text("my notes")
    return runs


def _last_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    return err[-1]


# ----------------------------------------------------------------------------- bug 1: deletes other runs
@pytest.mark.parametrize("names", [("table=.", "run_id=."), ("run_id=..",), ("run_id=../..",),
                                   ("table=..", "run_id=x"), ("run_id=a/b",), ("run_id=a\\b",),
                                   ("run_id=.aside",)])
def test_names_that_leave_the_run_folder_are_refused(other_run, capsys, names):
    before = _tree(other_run.parent)
    assert _train(other_run, *names, "--resume") == 2
    assert "must be a plain folder name" in _last_error_line(capsys)
    assert _tree(other_run.parent) == before


def test_demo_deletes_only_its_own_runs(other_run, capsys, monkeypatch):
    before = _tree(other_run)
    # --out runs: the demo's table is "runs" under tmp_path; nothing else of tmp_path/runs goes
    monkeypatch.setattr("classification.demo.CONFIG", REPO / "classification/configs/demo_digits.yaml")
    out = other_run / "demo"
    args = ["--seeds", "0", "--out", str(out), "--report", str(other_run.parent / "rep")]
    monkeypatch.setattr("classification.demo.load_config", _tiny_demo_config)
    assert demo_main(args) == 0
    assert demo_main(args) == 0  # its own runs are replaced
    after = _tree(other_run)
    assert {k: v for k, v in after.items() if not k.startswith("demo/")} == before
    # a foreign folder where a demo run would go: refused, not deleted
    foreign = out / "digits_small_cnn_ls_s0"
    for f in foreign.iterdir():
        if f.name == "log.jsonl":
            f.write_text(f.read_text().replace("python -m classification.demo", "python -m something.else"))
    snapshot = _tree(other_run)
    assert demo_main(args) == 2
    assert "is not a demo run" in _last_error_line(capsys)
    assert _tree(other_run) == snapshot


def _tiny_demo_config(schema, path, overrides):
    from core.config import load_config
    return load_config(schema, path, [*overrides, "epochs=1", "data.train_subset=64", "data.test_subset=32"])


# ----------------------------------------------------------------------------- bug 2: changed config
@pytest.mark.parametrize("change,key", [("method.name=ls", "method.name"), ("optim.lr=0.2", "optim.lr"),
                                        ("epochs=3", "epochs"), ("method.selfkd.alpha_T=0.5", "method.selfkd.alpha_T"),
                                        ("model_kwargs.width=8", "model_kwargs"),
                                        ("data.train_subset=80", "data.train_subset")])
def test_resume_with_a_changed_config_is_refused(tmp_path, capsys, change, key):
    assert _train(tmp_path, "method.name=selfkd", "run_id=r", "stop_after_epochs=1") == 0
    before = _tree(tmp_path)
    assert _train(tmp_path, "method.name=selfkd", "run_id=r", change, "--resume") == 2
    line = _last_error_line(capsys)
    assert "started with another config" in line and key in line and "resume_changed=allow" in line
    assert _tree(tmp_path) == before


def test_resume_changed_allow_records_the_change(tmp_path, capsys):
    assert _train(tmp_path, "run_id=r", "stop_after_epochs=1") == 0
    assert _train(tmp_path, "run_id=r", "optim.lr=0.01", "resume_changed=allow", "--resume") == 0
    log = read_run_log(tmp_path / "table1/r/log.jsonl", strict=True)
    assert log.complete
    change = [r for r in log.extra if r["type"] == "config_change"]
    assert len(change) == 1 and change[0]["changes"] == ["optim.lr: 0.1 -> 0.01"]
    assert "optim:\n  lr: 0.01" in (tmp_path / "table1/r/config.yaml").read_text()


# ----------------------------------------------------------------------------- bug 3: never finishes
def test_kill_between_last_checkpoint_and_final_line_resumes_to_the_same_final(tmp_path):
    assert _train(tmp_path / "a", "method.name=selfkd") == 0
    assert _train(tmp_path / "b", "method.name=selfkd") == 0
    log_b = tmp_path / "b/table1/small_cnn_selfkd_s0/log.jsonl"
    lines = log_b.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["type"] == "final"
    log_b.write_text("".join(lines[:-1]))  # killed after the checkpoint of the last epoch
    assert _train(tmp_path / "b", "method.name=selfkd", "--resume") == 0
    a = read_run_log(tmp_path / "a/table1/small_cnn_selfkd_s0/log.jsonl", strict=True)
    b = read_run_log(log_b, strict=True)
    assert b.complete and a.final["metrics"] == b.final["metrics"]
    assert a.final["reliability"] == b.final["reliability"]
    # the launcher now counts it as done
    from classification.launch import main as launch_main
    assert launch_main(["table1", *TINY, f"out_dir={tmp_path / 'b'}", "--rows", "resnet50", "--dry-run"]) == 0


# ----------------------------------------------------------------------------- bug 4: two processes
def test_second_process_in_a_locked_run_folder_fails_naming_the_holder(tmp_path, capsys):
    assert _train(tmp_path, "run_id=r", "stop_after_epochs=1") == 0
    before = _tree(tmp_path)
    with RunLock(tmp_path / "table1/r"):  # this process holds it, as a running training would
        assert _train(tmp_path, "run_id=r", "--resume") == 2
        assert f"in use by process {os.getpid()}" in _last_error_line(capsys)
    assert _tree(tmp_path) == before
    assert _train(tmp_path, "run_id=r", "--resume") == 0  # released: resumes


def test_lock_is_released_when_the_holder_dies(tmp_path):
    run = tmp_path / "r"
    code = f"from core.run import RunLock; import os; RunLock({str(run)!r}).acquire(); os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    RunLock(run).acquire().release()  # no stale lock


# ----------------------------------------------------------------------------- bug 7: silent loss
def test_resume_without_checkpoint_moves_the_old_folder_aside(tmp_path, capsys):
    run = tmp_path / "table1/r"
    run.mkdir(parents=True)
    (run / "notes.txt").write_text("keep me")
    (run / "log.jsonl").write_text('{"type": "meta"}\n')
    assert _train(tmp_path, "run_id=r", "--resume") == 0
    err = capsys.readouterr().err
    assert "moved to" in err
    aside = list((tmp_path / "table1/.aside").iterdir())
    assert len(aside) == 1 and (aside[0] / "notes.txt").read_text() == "keep me"
    assert read_run_log(run / "log.jsonl", strict=True).complete
    from reports.logs import find_runs
    runs, _ = find_runs([tmp_path])
    assert [r.run_id for r in runs] == ["r"]  # the aside folder is not a run


# ----------------------------------------------------------------------------- weak spots
def test_stale_checkpoint_temp_file_is_removed_and_nan_loss_marks_the_log_failed(tmp_path, capsys):
    assert _train(tmp_path, "run_id=r", "stop_after_epochs=1") == 0
    (tmp_path / "table1/r/checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    assert _train(tmp_path, "run_id=r", "--resume") == 0
    assert not list((tmp_path / "table1/r").glob("*.tmp"))
    # a loss that becomes NaN: one line with the epoch and step, the log marked failed, the
    # last good checkpoint kept; reports show "failed"
    assert _train(tmp_path, "run_id=n", "optim.lr=1e30", "epochs=3") == 2
    line = _last_error_line(capsys)
    assert "training loss is nan at epoch" in line and "marked failed" in line
    from reports.logs import find_runs
    runs, _ = find_runs([tmp_path])
    run = [r for r in runs if r.run_id == "n"]
    assert not run or run[0].status.startswith("failed at epoch")


def test_meta_records_threads_and_device(tmp_path):
    assert _train(tmp_path, "run_id=r", "epochs=1") == 0
    meta = read_run_log(tmp_path / "table1/r/log.jsonl", strict=True).meta
    assert meta["threads"] == torch.get_num_threads() and meta["device"] == "cpu"


def test_resume_records_keep_their_place(tmp_path):
    assert _train(tmp_path, "run_id=r", "epochs=3", "stop_after_epochs=1") == 0
    assert _train(tmp_path, "run_id=r", "epochs=3", "stop_after_epochs=1", "--resume") == 0
    assert _train(tmp_path, "run_id=r", "epochs=3", "--resume") == 0
    kinds = [(json.loads(ln)["type"], json.loads(ln).get("epoch")) for ln in
             (tmp_path / "table1/r/log.jsonl").read_text().splitlines()]
    assert kinds == [("meta", None), ("epoch", 1), ("resume", None), ("epoch", 2), ("resume", None),
                     ("epoch", 3), ("final", None)]


def _corrupt_checkpoint(run: Path):
    (run / "checkpoint.pt").write_bytes(b"\x00" * 100)


def _truncated_checkpoint(run: Path):
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])


def _empty_checkpoint(run: Path):
    (run / "checkpoint.pt").write_bytes(b"")


def _pickle_checkpoint(run: Path):
    import pickle
    (run / "checkpoint.pt").write_bytes(pickle.dumps(time.struct_time((0,) * 9)))


@pytest.mark.parametrize("damage,words", [(_corrupt_checkpoint, "unreadable"), (_truncated_checkpoint, "unreadable"),
                                          (_empty_checkpoint, "unreadable"), (_pickle_checkpoint, "unreadable")])
def test_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, capsys, damage, words):
    assert _train(tmp_path, "run_id=r", "stop_after_epochs=1") == 0
    damage(tmp_path / "table1/r")
    before = _tree(tmp_path)
    assert _train(tmp_path, "run_id=r", "--resume") == 2
    line = _last_error_line(capsys)
    assert words in line and "checkpoint.pt" in line
    assert _tree(tmp_path) == before


# ----------------------------------------------------------------------------- the catalogue
def _labels_out_of_range(tmp_path):
    import numpy as np
    from PIL import Image
    import io
    imgs = [np.full((32, 32, 3), i * 20, np.uint8) for i in range(8)]
    bufs = []
    for im in imgs:
        b = io.BytesIO()
        Image.fromarray(im).save(b, format="JPEG")
        bufs.append(np.frombuffer(b.getvalue(), np.uint8))
    off = np.cumsum([0] + [len(b) for b in bufs])
    np.savez(tmp_path / "bad.npz", train_jpeg=np.concatenate(bufs), train_offsets=off,
             train_labels=np.array([0, 1, 2, 3, 4, 5, 6, 12]), test_jpeg=np.concatenate(bufs),
             test_offsets=off, test_labels=np.arange(8), classes=np.array([str(i) for i in range(10)]))
    return ["data.name=cifar10_npz", f"data.root={tmp_path / 'bad.npz'}", "data.train_subset=0",
            "data.test_subset=0", "run_id=lab"]


def _out_dir_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    return [f"out_dir={tmp_path / 'afile'}"]


def _malformed_yaml(tmp_path):
    (tmp_path / "bad.yaml").write_text("epochs: [1,\n")
    return ["--config", str(tmp_path / "bad.yaml")]


def _yaml_not_mapping(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    return ["--config", str(tmp_path / "list.yaml")]


def _corrupt_npz(tmp_path):
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    return ["data.name=cifar10_npz", f"data.root={tmp_path / 'corrupt.npz'}"]


def _npz_missing_keys(tmp_path):
    import numpy as np
    np.savez(tmp_path / "partial.npz", train_jpeg=np.zeros(3, np.uint8))
    return ["data.name=cifar10_npz", f"data.root={tmp_path / 'partial.npz'}"]


def _config_yaml_not_a_mapping(tmp_path):
    """A run with a checkpoint whose config.yaml is a list: resuming it cannot compare configs."""
    runs = tmp_path / "runs"
    assert _train(runs, "table=keep2", "run_id=half", "stop_after_epochs=1") == 0
    (runs / "keep2/half/config.yaml").write_text("- 1\n- 2\n")
    return ["table=keep2", "run_id=half", "--resume"]


def _npz_folder(tmp_path):
    """data.root names the folder that holds cifar10_jpeg.npz, not the file."""
    (tmp_path / "cifar10-jpeg").mkdir()
    (tmp_path / "cifar10-jpeg" / "cifar10_jpeg.npz").write_bytes(b"")
    return ["data.name=cifar10_npz", f"data.root={tmp_path / 'cifar10-jpeg'}"]


def _cifar_folder_itself(tmp_path):
    """data.root names torchvision's cifar-100-python folder rather than the folder holding it."""
    (tmp_path / "cifar-100-python").mkdir()
    return ["data.name=cifar100", f"data.root={tmp_path / 'cifar-100-python'}"]


CATALOGUE = [
    ("corrupt npz", _corrupt_npz, "is not a readable .npz"),
    ("npz missing keys", _npz_missing_keys, "lacks train_offsets"),
    ("missing config file", lambda t: ["--config", str(t / "nope.yaml")], "config file not found"),
    ("malformed yaml", _malformed_yaml, "malformed config"),
    ("yaml not a mapping", _yaml_not_mapping, "top level must be a mapping"),
    ("unknown key", lambda t: ["optim.lrr=0.1"], "lrr"),
    ("wrong type", lambda t: ["epochs=ten"], "epochs"),
    ("override without =", lambda t: ["epochs"], "key=value"),
    ("unknown model", lambda t: ["model=resnet7"], "unknown model"),
    ("unknown timm model", lambda t: ["model=timm/not_a_net"], "not a timm architecture"),
    ("unknown method", lambda t: ["method.name=cs_kd"], "unknown method"),
    ("alpha_T above 1", lambda t: ["method.name=selfkd", "method.selfkd.alpha_T=1.5"],
     "method.selfkd.alpha_T must be in [0, 1]"),
    ("alpha_T below 0", lambda t: ["method.name=selfkd", "method.selfkd.alpha_T=-0.1"],
     "method.selfkd.alpha_T must be in [0, 1]"),
    ("ls eps above 1", lambda t: ["method.name=ls", "method.ls.eps=2"], "method.ls.eps must be in [0, 1]"),
    ("unknown alpha kind", lambda t: ["method.name=selfkd", "method.selfkd.alpha_kind=sigmoid"], "alpha_kind"),
    ("unknown bank dtype", lambda t: ["method.name=selfkd", "method.selfkd.bank.dtype=int8"], "bank.dtype"),
    ("unknown bank storage", lambda t: ["method.name=selfkd", "method.selfkd.bank.storage=disk"], "bank.storage"),
    ("sub-config the method does not read", lambda t: ["method.name=baseline", "method.selfkd.alpha_T=0.5"],
     "method.selfkd.alpha_T=0.5 is set, but method baseline does not read method.selfkd"),
    ("old and new name both set", lambda t: ["method.name=ls", "method.ls_eps=0.2", "method.ls.eps=0.3"],
     "both method.ls_eps (the old name) and method.ls.eps are set"),
    ("unknown amp", lambda t: ["amp=fp8"], "amp must be one of"),
    ("holdout fraction 1", lambda t: ["data.holdout_fraction=1.0"], "holdout_fraction"),
    ("zero epochs", lambda t: ["epochs=0"], "epochs"),
    ("zero batch", lambda t: ["optim.batch_size=0"], "batch_size"),
    ("fit subset below -1", lambda t: ["data.fit_subset=-5"], "fit_subset"),
    ("eval_every below 1", lambda t: ["eval_every=0"], "eval_every must be >= 1"),
    ("unknown dataset", lambda t: ["data.name=mnist"], "unknown dataset"),
    ("missing cifar folder", lambda t: ["data.name=cifar100", f"data.root={t / 'nodata'}"], "dataset path not found"),
    ("missing npz", lambda t: ["data.name=cifar10_npz", f"data.root={t / 'no.npz'}"], "dataset file not found"),
    ("missing imagenet", lambda t: ["data.name=imagenet", f"data.root={t / 'noimg'}"], "dataset path not found"),
    ("cuda without gpu", lambda t: ["device=cuda"], "no CUDA GPU"),
    ("unknown device", lambda t: ["device=tpu"], "unknown device"),
    ("out_dir is a file", _out_dir_is_a_file, "is not a folder"),
    ("labels out of range", _labels_out_of_range, "outside [0, 10)"),
    ("resume_changed typo", lambda t: ["resume_changed=maybe", "run_id=precious", "table=keep", "--resume"],
     "resume_changed"),
    ("existing run without resume", lambda t: ["run_id=precious", "table=keep"], "exists; pass resume=true"),
    ("table is dot-dot", lambda t: ["table=..", "--resume"], "plain folder name"),
    ("zero eval batch", lambda t: ["optim.eval_batch_size=0"], "optim.eval_batch_size must be >= 1, got 0"),
    ("model_kwargs the model does not take", lambda t: ["model_kwargs={bogus: 1}"],
     "model_kwargs: model 'small_cnn' does not take these arguments"),
    ("negative lr", lambda t: ["optim.lr=-0.1"], "optim.lr must be > 0, got -0.1"),
    ("negative seed", lambda t: ["seed=-1"], "seed must be in [0, "),
    ("negative num_workers", lambda t: ["data.num_workers=-1"], "data.num_workers must be >= 0, got -1"),
    ("zero bins", lambda t: ["n_bins=0"], "n_bins must be >= 1, got 0"),
    ("run_id with a newline", lambda t: ['run_id="a\\nb"'], "plain folder name"),
    ("config.yaml of the run not a mapping", _config_yaml_not_a_mapping, "is not a config"),
    ("on_device on digits", lambda t: ["data.on_device=true"],
     "data.on_device=true keeps uint8 CIFAR-style images on the device; data.name=digits has none"),
    ("npz root is its folder", _npz_folder, "is a folder; data.name=cifar10_npz reads the file itself, "
     "data.root="),
    ("cifar root is the cifar folder itself", _cifar_folder_itself, "is the cifar100 folder itself"),
    ("near-miss key", lambda t: ["method.name=selfkd", "method.selfkd.alpha_t=0.5"],
     "(did you mean method.selfkd.alpha_T?)"),
    ("near-miss old key name", lambda t: ["method.alpha_t=0.5"], "(did you mean method.selfkd.alpha_T?)"),
    ("the paper's method name", lambda t: ["method.name=pskd"], "unknown method 'pskd' (did you mean selfkd?)"),
    ("near-miss method", lambda t: ["method.name=cs_kd"], "(did you mean cskd?)"),
    ("near-miss model", lambda t: ["model=resnet_56"], "(did you mean resnet56?)"),
    ("near-miss dataset", lambda t: ["data.name=cifar_100"], "(did you mean cifar100?)"),
]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the catalogue assumes a machine without a GPU")
@pytest.mark.parametrize("name,args,words", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_catalogue_of_bad_inputs(other_run, capsys, name, args, words):
    extra = args(other_run.parent)
    before = _tree(other_run.parent)
    rc = main([*TINY, f"out_dir={other_run}", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, name
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    after = _tree(other_run.parent)
    new_files = set(after) - set(before)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing touched
    assert not [f for f in new_files if f.startswith("runs/")], new_files  # nothing left behind


def test_config_changes_ignore_runtime_keys_and_keys_added_later():
    from core.run import config_changes
    old = {"epochs": 3, "optim": {"lr": 0.1}, "progress": True, "out_dir": "a"}
    assert config_changes(old, {**old, "progress": False, "out_dir": "b", "new_key": 1}) == []
    assert config_changes(old, {**old, "optim": {"lr": 0.2}}) == ["optim.lr: 0.1 -> 0.2"]
    assert config_changes(old, {"optim": {"lr": 0.1}}) == ["epochs: 3 -> '<unset>'"]


def test_overrides_anywhere_on_the_line(tmp_path, capsys):
    """key=value after options: `--seeds 0 data.root=...` and `--alphas 0.3 epochs=1`."""
    from classification.launch import main as launch_main
    from classification.select_alpha import main as select_main
    assert launch_main(["table1", "--seeds", "0", *TINY, f"out_dir={tmp_path}", "--rows", "resnet50",
                        "--dry-run"]) == 0
    assert "3 of 3 runs to do" in capsys.readouterr().out
    assert select_main(["--alphas", "0.3", *TINY, "epochs=1", f"out_dir={tmp_path}"]) == 0
    sel = json.loads((tmp_path / "alpha_select/small_cnn_s0.selection.json").read_text())
    assert list(sel["holdout_top1_err"]) == ["0.3"]
    assert main([f"out_dir={tmp_path}", "--resume", *TINY, "epochs=1", "run_id=x"]) == 0


# ----------------------------------------------------------------------------- failed, damaged, full
def test_diverged_run_before_its_first_checkpoint_keeps_its_log_marked_failed(tmp_path, capsys):
    assert _train(tmp_path, "run_id=n", "optim.lr=1e30", "epochs=3") == 2
    assert "the run log is marked failed" in _last_error_line(capsys)
    log = read_run_log(tmp_path / "table1/n/log.jsonl", strict=True)
    assert log.meta["run_id"] == "n"
    assert [(r["type"], r["epoch"]) for r in log.extra] == [("failed", 1)]
    assert not (tmp_path / "table1/n/checkpoint.pt").exists()
    from reports.logs import find_runs
    _, warnings = find_runs([tmp_path])
    assert any("table1/n/log.jsonl:1: failed at epoch 1 (training loss is nan" in w for w in warnings), warnings
    # --resume: no checkpoint, so the failed run is moved aside (kept) and a new one starts
    assert _train(tmp_path, "run_id=n", "optim.lr=1e30", "epochs=3", "--resume") == 2
    aside = list((tmp_path / "table1/.aside").iterdir())
    assert len(aside) == 1 and (aside[0] / "log.jsonl").is_file()


def _epochs_and_final(log_path):
    """The epoch lines without their timings, and the final record's metrics and bins."""
    log = read_run_log(log_path, strict=True)
    return ([{k: v for k, v in e.items() if k != "epoch_s"} for e in log.epochs],
            log.final["metrics"], log.final["reliability"])


def test_zero_byte_log_and_torn_first_epoch_line_come_back_on_resume(tmp_path):
    args = ("method.name=selfkd", "epochs=3")
    assert _train(tmp_path / "a", *args) == 0
    want = _epochs_and_final(tmp_path / "a/table1/small_cnn_selfkd_s0/log.jsonl")
    log = tmp_path / "b/table1/small_cnn_selfkd_s0/log.jsonl"
    assert _train(tmp_path / "b", *args, "stop_after_epochs=1") == 0
    meta = read_run_log(log, strict=True).meta
    log.write_bytes(b"")  # a zero-byte log.jsonl beside the checkpoint of epoch 1
    assert _train(tmp_path / "b", *args, "stop_after_epochs=1", "--resume") == 0
    lines = log.read_text().splitlines()
    lines[1] = lines[1][:30]  # the line of epoch 1 torn; the checkpoint is of epoch 2
    log.write_text("\n".join(lines) + "\n")
    assert _train(tmp_path / "b", *args, "--resume") == 0
    got = read_run_log(log, strict=True)
    assert got.meta == meta and [e["epoch"] for e in got.epochs] == [1, 2, 3]
    assert _epochs_and_final(log) == want


def test_zero_byte_log_without_a_copy_in_the_checkpoint_is_refused(tmp_path, capsys):
    from core.checkpoint import load_checkpoint, save_checkpoint
    assert _train(tmp_path, "run_id=r", "stop_after_epochs=1") == 0
    run = tmp_path / "table1/r"
    state = load_checkpoint(run / "checkpoint.pt")
    del state["log"]  # a checkpoint written before checkpoints held the log's records
    save_checkpoint(run / "checkpoint.pt", state)
    (run / "log.jsonl").write_bytes(b"")
    before = _tree(tmp_path)
    assert _train(tmp_path, "run_id=r", "--resume") == 2
    line = _last_error_line(capsys)
    assert line.startswith("error: ") and "lost its meta line" in line and "log.jsonl" in line
    assert _tree(tmp_path) == before


def test_full_disk_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    import errno
    assert _train(tmp_path / "a", "run_id=r", "epochs=3") == 0
    assert _train(tmp_path / "b", "run_id=r", "epochs=3", "stop_after_epochs=1") == 0
    real_save = torch.save

    def full(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", full)  # the checkpoint of epoch 2 finds the disk full
    assert _train(tmp_path / "b", "run_id=r", "epochs=3", "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the disk is full") and "table1/r/checkpoint.pt" in err[0], err
    assert not list((tmp_path / "b/table1/r").glob("*.tmp"))
    monkeypatch.setattr(torch, "save", real_save)
    # the log line of epoch 2 was written before the failed save: the resume drops it and redoes it
    assert _train(tmp_path / "b", "run_id=r", "epochs=3", "--resume") == 0
    assert _epochs_and_final(tmp_path / "b/table1/r/log.jsonl") == _epochs_and_final(tmp_path / "a/table1/r/log.jsonl")


def test_full_disk_on_the_log_and_a_read_only_folder_are_one_line(tmp_path, capsys, monkeypatch):
    import errno
    import core.runlog
    assert _train(tmp_path, "run_id=r", "stop_after_epochs=1") == 0
    fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(core.runlog.os, "fsync", full)
    assert _train(tmp_path, "run_id=r", "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disk is full" in err[0] and "table1/r/log.jsonl" in err[0], err
    monkeypatch.setattr(core.runlog.os, "fsync", fsync)

    def read_only(path, mode="r", *a, **k):  # this process may not write the run folder
        if "a" in mode or "w" in mode:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return open(path, mode, *a, **k)
    monkeypatch.setattr(core.runlog, "open", read_only, raising=False)
    assert _train(tmp_path, "run_id=r", "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write") and "permission denied" in err[0], err
    monkeypatch.delattr(core.runlog, "open")
    assert _train(tmp_path, "run_id=r", "--resume") == 0
    assert read_run_log(tmp_path / "table1/r/log.jsonl", strict=True).complete


# ----------------------------------------------------------------------------- code from inputs
def test_plugins_are_imported_only_after_validation(tmp_path, capsys, monkeypatch):
    (tmp_path / "marker_plugin.py").write_text(
        f"from pathlib import Path\nPath({str(tmp_path / 'imported')!r}).write_text('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for bad in (["epochs=0"], ["optim.lr=-1"], ["run_id=../x"], ["seed=-1"]):
        assert _train(tmp_path / "runs", "imports=[marker_plugin]", *bad) == 2
        assert not (tmp_path / "imported").exists(), bad
    capsys.readouterr()
    assert _train(tmp_path / "runs", "imports=[marker_plugin]", "epochs=1") == 0
    assert (tmp_path / "imported").exists()


class _Payload:
    """Unpickling this runs code: it writes the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_crafted_checkpoint_does_not_run_its_code(tmp_path, capsys):
    from core.checkpoint import CheckpointError, load_checkpoint
    assert _train(tmp_path, "run_id=r", "stop_after_epochs=1") == 0
    marker, ckpt = tmp_path / "pwned", tmp_path / "table1/r/checkpoint.pt"
    state = load_checkpoint(ckpt)
    state["optimizer"] = _Payload(marker)
    torch.save(state, ckpt)
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt)
    assert _train(tmp_path, "run_id=r", "--resume") == 2
    assert "unreadable" in _last_error_line(capsys)
    assert not marker.exists()


# ----------------------------------------------------------------------------- the demo and locks
def test_second_demo_does_not_touch_a_run_another_demo_holds(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("classification.demo.load_config", _tiny_demo_config)
    out = tmp_path / "demo"
    args = ["--seeds", "0", "--out", str(out), "--report", str(tmp_path / "rep")]
    assert demo_main(args) == 0
    before = _tree(tmp_path)
    with RunLock(out / "digits_small_cnn_ls_s0"):  # a demo training it now
        assert demo_main(args) == 2
        line = _last_error_line(capsys)
        assert "digits_small_cnn_ls_s0 is in use by process" in line
    assert _tree(tmp_path) == before  # no run deleted, not even the ones not locked


# ----------------------------------------------------------------------------- real kills
def test_sigkill_of_a_running_training_resumes_to_the_uninterrupted_run(tmp_path):
    """A real process killed (SIGKILL) at whatever point it has reached after its first
    checkpoint; the resumed run's epoch lines and final record equal an uninterrupted run's."""
    args = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=640",
            "data.test_subset=128", "data.fit_subset=64", "epochs=8", "optim.batch_size=32",
            "optim.milestones=[4]", "method.name=selfkd", "progress=false", "run_id=k"]
    assert main([*args, f"out_dir={tmp_path / 'a'}"]) == 0
    run = tmp_path / "b/table1/k"
    sigkill_after_first_checkpoint("classification.train", [*args, f"out_dir={tmp_path / 'b'}"],
                                   run / "checkpoint.pt", timeout=120)
    assert not read_run_log(run / "log.jsonl").complete
    assert main([*args, f"out_dir={tmp_path / 'b'}", "--resume"]) == 0
    assert _epochs_and_final(run / "log.jsonl") == _epochs_and_final(tmp_path / "a/table1/k/log.jsonl")


def test_ctrl_c_is_one_line_and_the_rerun_resumes(tmp_path):
    """Ctrl-C (a real SIGINT) in a running training: one line saying how to continue, exit status
    130, no traceback; the rerun with --resume continues to the uninterrupted run's log."""
    args = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=640",
            "data.test_subset=128", "data.fit_subset=64", "epochs=6", "optim.batch_size=32",
            "optim.milestones=[3]", "method.name=selfkd", "progress=false", "run_id=c"]
    assert main([*args, f"out_dir={tmp_path / 'a'}"]) == 0
    run = tmp_path / "b/table1/c"
    got = sigint_after_first_checkpoint("classification.train", [*args, f"out_dir={tmp_path / 'b'}"],
                                        run / "checkpoint.pt", timeout=120)
    assert got.returncode == 130, got.stderr
    assert got.stderr.strip().splitlines() == [
        "interrupted; rerun the same command with --resume (or resume=true) to continue from the last checkpoint"]
    assert not read_run_log(run / "log.jsonl").complete
    assert main([*args, f"out_dir={tmp_path / 'b'}", "--resume"]) == 0
    assert _epochs_and_final(run / "log.jsonl") == _epochs_and_final(tmp_path / "a/table1/c/log.jsonl")
