"""Translation's bad inputs, damaged run folders and untrusted files: every one is a single
``error:`` line and exit status 2 that leaves nothing behind and changes nothing; no file in a
run folder runs code when a command reads it; ``--user-dir`` code is imported only once every
check has passed; a full disk or a folder that cannot be written is named in one line."""
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from core.run import RunLock
from tests.conftest import REPO
from tests.translation.conftest import TINY
from translation import data as tdata
from translation import evaluate
from translation.train import main

CONFIG = REPO / "translation" / "configs" / "multi30k_de_en_selfkd.yaml"


def _args(prep, out, *extra):
    return ["--config", str(CONFIG)] + TINY + [f"data.prep_dir={prep}", f"out_dir={out}", *extra]


def _tree(root: Path) -> dict:
    """Every file under root with its size and mtime (lock files hold a pid, not data)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def _one_error_line(capsys, prog: str) -> str:
    out = capsys.readouterr()
    err = [ln for ln in out.err.splitlines() if ln.strip()]
    assert len(err) == 1, out.err
    assert err[0].startswith("error: "), (prog, err[0])
    return err[0]


class Payload:
    """Unpickling this calls os.system: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted(path: Path, marker: Path) -> None:
    """A checkpoint whose unpickling would create marker (a torch.save zip, as a real one)."""
    torch.save({"cfg": {}, "model": {}, "x": Payload(marker)}, path)
    assert not marker.exists()


@pytest.fixture(scope="module")
def stopped(tiny_multi30k, tmp_path_factory) -> Path:
    """A run folder stopped after epoch 1 of 3 (checkpoints, log), copied by the tests below."""
    pytest.importorskip("fairseq")
    out = tmp_path_factory.mktemp("stopped")
    assert main(_args(tiny_multi30k, out, "run_id=r", "stop_after_epochs=1")) == 0
    return out / "table4" / "r"


@pytest.fixture
def run(stopped, tmp_path) -> Path:
    """A copy of `stopped` under tmp_path/runs (the out_dir: the folder is runs/table4/r)."""
    dst = tmp_path / "runs" / "table4" / "r"
    shutil.copytree(stopped, dst)
    (dst / ".lock").unlink(missing_ok=True)
    return dst


# ----------------------------------------------------------------------------- damaged run folders
def _zero(p: Path):
    p.write_bytes(bytes(p.stat().st_size))


def _halve(p: Path):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _ckpts(run):
    return run / "checkpoints" / "checkpoint_last.pt", run / "checkpoints" / "checkpoint_best.pt"


def _zeroed_checkpoints(run):
    for p in _ckpts(run):
        _zero(p)


def _truncated_checkpoints(run):
    for p in _ckpts(run):
        _halve(p)


def _truncated_last_without_best(run):
    last, best = _ckpts(run)
    _halve(last)
    best.unlink()


def _classification_checkpoint(run):
    from core.checkpoint import save_checkpoint
    last, best = _ckpts(run)
    save_checkpoint(last, {"model": {"w": torch.zeros(2)}, "optimizer": {}, "epoch": 1})
    best.unlink()


def _zero_byte_log(run):
    (run / "log.jsonl").write_bytes(b"")


def _torn_first_epoch_line(run):
    lines = (run / "log.jsonl").read_text().splitlines(keepends=True)
    assert '"epoch": 1' in lines[1]
    (run / "log.jsonl").write_text(lines[0] + lines[1][:40] + "\n" + "".join(lines[2:]))


def _torn_meta_line(run):
    text = (run / "log.jsonl").read_text()
    (run / "log.jsonl").write_text(text[:30] + "\n" + text.split("\n", 1)[1])


DAMAGED = [
    ("zeroed checkpoints", _zeroed_checkpoints, "checkpoint_last.pt is unreadable"),
    ("truncated checkpoints", _truncated_checkpoints, "checkpoint_last.pt is unreadable"),
    ("truncated last, no best", _truncated_last_without_best, "checkpoint_last.pt is unreadable"),
    ("classification checkpoint", _classification_checkpoint, "is not a fairseq checkpoint"),
    ("zero-byte log", _zero_byte_log, "has no meta record"),
    ("torn meta line", _torn_meta_line, "has no meta record"),
    ("torn first epoch line", _torn_first_epoch_line, "lacks the record of epoch 1"),
]


@pytest.mark.parametrize("name,damage,words", DAMAGED, ids=[d[0] for d in DAMAGED])
def test_damaged_run_folder_is_one_line_and_left_as_it_is(tiny_multi30k, run, capsys, name,
                                                          damage, words):
    damage(run)
    before = _tree(run.parent.parent)
    assert main(_args(tiny_multi30k, run.parent.parent, "run_id=r", "--resume")) == 2
    assert words in _one_error_line(capsys, "translation.train")
    assert _tree(run.parent.parent) == before


# ----------------------------------------------------------------------------- the catalogue
def _prep(tmp_path, *pairs):
    """A Multi30k-like raw folder: (file name, bytes) pairs over a good copy of 5 lines each."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for stem in ("train", "val", "test_2016_flickr"):
        for lang in ("de", "en"):
            (raw / f"{stem}.{lang}").write_text("".join(f"satz {i} .\n" for i in range(5)))
    for name, content in pairs:
        (raw / name).write_bytes(content)
    return raw


def _yaml(tmp_path, text: str) -> list[str]:
    """A config file over the selfkd config (a value an override cannot spell, e.g. a newline)."""
    (tmp_path / "c.yaml").write_text(f"_base_: {CONFIG}\n{text}")
    return ["--config", str(tmp_path / "c.yaml")]


CATALOGUE = [  # (name, translation.train arguments or a function of tmp_path giving them, words)
    ("zero max_tokens", ["optim.max_tokens=0"], "optim.max_tokens must be >= 1"),
    ("heads not dividing embed_dim", ["model.heads=3"], "model.heads=3 must divide model.embed_dim=64"),
    ("zero heads", ["model.heads=0"], "model.heads must be >= 1"),
    ("negative lr", ["optim.lr=-0.1"], "optim.lr must be a positive number"),
    ("negative seed", ["seed=-1"], "seed must be >= 0"),
    ("negative workers", ["data.num_workers=-1"], "data.num_workers must be >= 0"),
    ("zero beam", ["eval.beam=0"], "eval.beam must be >= 1"),
    ("dropout 1", ["model.dropout=1.0"], "model.dropout must be in [0, 1)"),
    ("alpha_T above 1", ["method.selfkd.alpha_T=1.5"], "method.selfkd.alpha_T must be in [0, 1]"),
    ("a sub-config the method does not read", ["method.ls.eps=0.2"],
     "method.ls.eps=0.2 is set, but method selfkd does not read method.ls (it reads: method.selfkd)"),
    ("run_id with a newline", lambda t: _yaml(t, 'run_id: "a\\nb"\n'), "no control characters"),
    ("run_id with a tab", lambda t: _yaml(t, 'run_id: "a\\tb"\n'), "no control characters"),
    ("row with a newline", lambda t: _yaml(t, 'row: "x\\ny"\n'), "no control characters"),
    ("row with a slash", ["row=../x"], "row must be a plain folder name"),
    ("fairseq_args typo", ["fairseq_args=[--max-updatez,3]"], "fairseq rejected"),
    # TINY runs on the CPU (device=cpu): fairseq would stop in its CUDA setup with a long traceback
    ("fp16 on the CPU", ["optim.precision=fp16"], "optim.precision=fp16 needs a CUDA GPU"),
    ("amp on the CPU", ["optim.precision=amp"], "optim.precision=amp needs a CUDA GPU"),
    ("near-miss method", ["method.name=selfdk"], "did you mean selfkd?"),
    ("near-miss key", ["method.alpha_t=0.5"], "(did you mean method."),
]


@pytest.mark.parametrize("name,extra,words", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_catalogue_train(tiny_multi30k, tmp_path, capsys, name, extra, words):
    out = tmp_path / "runs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    extra = extra(tmp_path) if callable(extra) else extra
    before = _tree(tmp_path)
    assert main(_args(tiny_multi30k, out, *extra)) == 2
    assert words in _one_error_line(capsys, "translation.train")
    assert _tree(tmp_path) == before and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_ctrl_c_is_one_line_saying_how_to_resume(tiny_multi30k, tmp_path, capsys, monkeypatch):
    """Ctrl-C during training (here: at its start) is one line and exit status 130; an existing
    translation run folder is continued only with --resume, so the line says so."""
    def interrupted(job):
        raise KeyboardInterrupt
    monkeypatch.setattr("translation.train._train", interrupted)
    assert main(_args(tiny_multi30k, tmp_path / "runs", "run_id=r")) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted; rerun the same command with --resume (or resume=true) to continue "
                   "from the last checkpoint"], err


def test_prep_iwslt15_without_its_path_is_one_line():
    """`make prep-iwslt15` without IWSLT15=: one line saying what to pass, before anything is
    installed or run (make -n: the check is the Makefile's own, at parse time)."""
    if shutil.which("make") is None:
        pytest.skip("no make here")
    # under `make test` the outer make's MAKELEVEL/MAKEFLAGS would make this one print "Entering directory"
    env = {k: v for k, v in os.environ.items()
           if k != "IWSLT15" and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    got = subprocess.run(["make", "--no-print-directory", "-n", "prep-iwslt15"], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert got.returncode == 2 and got.stdout == ""
    err = got.stderr.strip().splitlines()
    assert len(err) == 1 and "IWSLT15 is not set: pass IWSLT15=/path/to/en-de.tgz" in err[0], err
    given = subprocess.run(["make", "--no-print-directory", "-n", "prep-iwslt15", "IWSLT15=/data/en-de.tgz"],
                           cwd=REPO, env=env,
                           capture_output=True, text=True)
    assert given.returncode == 0 and "raw_path=/data/en-de.tgz" in given.stdout


def _data_args(tmp_path, raw, *extra):
    return ["--config", str(REPO / "translation/configs/prep/multi30k_de_en.yaml"),
            f"raw_path={raw}", f"out_dir={tmp_path / 'prep'}", "bpe_merges=20", *extra]


DATA_CATALOGUE = [  # (name, (file, bytes) replaced in the raw folder, overrides, words)
    ("negative bpe_merges", [], ["bpe_merges=-1"], "bpe_merges must be >= 1"),
    ("zero bpe_merges", [], ["bpe_merges=0"], "bpe_merges must be >= 1"),
    ("same languages", [], ["lang2=de"], "lang1 and lang2 must differ"),
    ("language with a slash", [], ["lang1=../de"], "lang1 must be a plain folder name"),
    ("mismatched line counts", [("train.en", b"one .\n")], [], "5 de lines but 1 en lines"),
    ("not UTF-8", [("val.de", b"gut \xff\xfe .\n" * 5)], [], "not UTF-8"),
]


@pytest.mark.parametrize("name,files,extra,words", DATA_CATALOGUE, ids=[c[0] for c in DATA_CATALOGUE])
def test_catalogue_data(tmp_path, capsys, name, files, extra, words):
    raw = _prep(tmp_path, *files)
    before = _tree(tmp_path)
    assert tdata.main(_data_args(tmp_path, raw, *extra)) == 2
    assert words in _one_error_line(capsys, "translation.data")
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no prep/, no .prep.tmp/


def _ev(ckpt, prep, *extra, src="de", tgt="en"):
    return [str(ckpt), str(prep), "-s", src, "-t", tgt, "--beam", "1", *extra]


def test_catalogue_evaluate(tiny_multi30k, run, tmp_path, capsys, monkeypatch):
    """translation.evaluate's bad inputs, each refused in one line before fairseq loads the model
    (and prints its log lines) and before any beam search (either fails the test here)."""
    last = run / "checkpoints" / "checkpoint_last.pt"
    zeroed = tmp_path / "zeroed.pt"
    zeroed.write_bytes(bytes(1000))
    from core.checkpoint import save_checkpoint
    cls = tmp_path / "classification.pt"
    save_checkpoint(cls, {"model": {"w": torch.zeros(2)}, "optimizer": {}, "epoch": 1})
    lm = tmp_path / "language_model.pt"
    save_checkpoint(lm, {"cfg": {"task": {"_name": "language_modeling"}}, "model": {}})
    cases = [
        (_ev(lm, tiny_multi30k), "is not a translation checkpoint (its task is 'language_modeling')"),
        (_ev(zeroed, tiny_multi30k), "is unreadable"),
        (_ev(cls, tiny_multi30k), "is not a fairseq checkpoint"),
        (_ev(last, tiny_multi30k, src="en", tgt="de"), "translates de->en, not en->de"),
        (_ev(last, tiny_multi30k, "--hyps-out", str(tmp_path / "no" / "such" / "h.en")),
         "does not exist"),
        (_ev(last, tiny_multi30k, "--hyps-out", str(tmp_path)), "is a folder"),
    ]

    def no_beam_search(*a, **k):
        raise AssertionError("the beam search ran before the input was checked")

    def no_fairseq_load(*a, **k):
        raise AssertionError("fairseq loaded the checkpoint before the input was checked")

    monkeypatch.setattr(evaluate, "_generate", no_beam_search)
    monkeypatch.setattr("fairseq.checkpoint_utils.load_model_ensemble_and_task", no_fairseq_load)
    before = _tree(tmp_path)
    for argv, words in cases:
        assert evaluate.main(argv) == 2, argv
        assert words in _one_error_line(capsys, "translation.evaluate"), argv
    assert _tree(tmp_path) == before


# ----------------------------------------------------------------------------- code in files
def test_crafted_checkpoint_does_not_run(tiny_multi30k, run, tmp_path, capsys):
    """A pickle payload in checkpoint_last.pt / checkpoint_best.pt: rerunning the training
    command on the folder, or evaluating the file, refuses it in one line without running it."""
    marker = tmp_path / "pwned"
    for p in _ckpts(run):
        _crafted(p, marker)
    assert main(_args(tiny_multi30k, run.parent.parent, "run_id=r", "--resume")) == 2
    assert "unreadable" in _one_error_line(capsys, "translation.train")
    assert evaluate.main(_ev(_ckpts(run)[0], tiny_multi30k)) == 2
    assert "unreadable" in _one_error_line(capsys, "translation.evaluate")
    assert not marker.exists()
    # the payload is live: a weights_only=False load would have run it
    torch.load(_ckpts(run)[0], weights_only=False)
    assert marker.exists()


def _user_dir(tmp_path) -> tuple[Path, Path]:
    """A fairseq --user-dir plugin whose import creates a marker file."""
    marker = tmp_path / "imported"
    plugin = tmp_path / f"plugin_{abs(hash(str(tmp_path)))}"
    plugin.mkdir()
    (plugin / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return plugin, marker


@pytest.mark.parametrize("why", ["folder in use", "config changed", "damaged log"])
def test_user_dir_is_imported_only_after_every_check(tiny_multi30k, run, tmp_path, capsys, why):
    plugin, marker = _user_dir(tmp_path)
    extra = [f"fairseq_args=[--user-dir,{plugin}]", "resume_changed=allow"]
    if why == "config changed":
        extra[1] = "method.selfkd.alpha_T=0.3"  # refused: resume_changed is refuse by default
    if why == "damaged log":
        _zero_byte_log(run)
    lock = RunLock(run).acquire() if why == "folder in use" else None
    try:
        assert main(_args(tiny_multi30k, run.parent.parent, "run_id=r", "--resume", *extra)) == 2
    finally:
        if lock:
            lock.release()
    _one_error_line(capsys, "translation.train")
    assert not marker.exists()


def test_user_dir_is_imported_when_the_checks_pass(tiny_multi30k, tmp_path):
    """The counterpart of the test above: the same plugin on a good run is imported."""
    plugin, marker = _user_dir(tmp_path)
    assert main(_args(tiny_multi30k, tmp_path / "runs", "run_id=ok", "stop_after_epochs=1",
                      f"fairseq_args=[--user-dir,{plugin}]")) == 0
    assert marker.exists()


# ----------------------------------------------------------------------------- disk and permissions
def test_full_disk_is_one_line(tiny_multi30k, run, capsys, monkeypatch):
    """Every checkpoint write goes to /dev/full (a real ENOSPC from the kernel)."""
    save = torch.save

    def to_dev_full(obj, f, *a, **k):
        with open("/dev/full", "wb") as dev:
            return save(obj, dev, *a, **k)

    monkeypatch.setattr(torch, "save", to_dev_full)
    monkeypatch.setattr("fairseq.checkpoint_utils.time.sleep", lambda s: None)  # its 3 retries
    assert main(_args(tiny_multi30k, run.parent.parent, "run_id=r", "--resume")) == 2
    line = _one_error_line(capsys, "translation.train")
    assert str(run) in line and "disk is full" in line
    monkeypatch.undo()
    # space freed: the same command finishes the run
    assert main(_args(tiny_multi30k, run.parent.parent, "run_id=r", "--resume")) == 0


def test_read_only_run_folder_is_one_line(tiny_multi30k, run, capsys, monkeypatch):
    """The run folder refuses new files (EACCES, as a chmod a-w folder does for a non-root user;
    root ignores mode bits, so the refusal is simulated at os.open)."""
    real_open = os.open

    def read_only(path, flags, *a, **k):
        if str(path).startswith(str(run)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    before = _tree(run)
    assert main(_args(tiny_multi30k, run.parent.parent, "run_id=r", "--resume")) == 2
    line = _one_error_line(capsys, "translation.train")
    assert str(run) in line and "cannot write" in line and "permission denied" in line
    assert _tree(run) == before


def test_fairseq_checkpoints_read_with_weights_only(run):
    """The checkpoints translation.train writes load under weights_only=True (their
    argparse.Namespace is allowed by name), so nothing needs a full unpickler."""
    from translation.checkpoints import checkpoint_position
    pos = checkpoint_position(_ckpts(run)[0])
    assert (pos.epochs, pos.mid_epoch) == (1, False) and pos.train_s > 0
