"""A translation run SIGKILLed at any point of its end-of-epoch writes resumes, with the same
command (resume=true, as the launchers give every run), to the uninterrupted run's log (every
epoch record, in order), weights and BLEU.

Each run is a real ``python -m translation.train`` process. It is killed deterministically by a
bootstrap that wraps one of the functions the end of an epoch goes through (the test owns the
kill points; the code under test has no hook for them): after fairseq's checkpoint save returns,
in the middle of fairseq's copy of checkpoint_best.pt to checkpoint_last.pt, and in the middle
of writing the epoch's log line."""
import json
import os
import subprocess
import sys

import pytest
import torch

from core.runlog import read_run_log
from tests.conftest import REPO
from tests.translation.conftest import TINY
from translation.checkpoints import read_checkpoint

CONFIGS = REPO / "translation" / "configs"

# argv: kill point, epoch (or copy number), then translation.train's own arguments
BOOT = r"""
import os, shutil, signal, sys
point, at = sys.argv[1], int(sys.argv[2])
argv = sys.argv[3:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "after_checkpoint":  # checkpoint_best/last of epoch `at` on disk, nothing after
    from fairseq import checkpoint_utils
    save = checkpoint_utils.save_checkpoint
    def save_then_die(cfg, trainer, epoch_itr, val_loss):
        out = save(cfg, trainer, epoch_itr, val_loss)
        if epoch_itr.epoch == at and epoch_itr.end_of_epoch():
            die()
        return out
    checkpoint_utils.save_checkpoint = save_then_die
elif point == "mid_copy":  # the `at`-th copy of checkpoint_best.pt cut off half-way
    copyfile, n = shutil.copyfile, [0]
    def torn_copy(src, dst, *a, **k):
        if str(src).endswith("checkpoint_best.pt"):
            n[0] += 1
            if n[0] == at:
                data = open(src, "rb").read()
                with open(dst, "wb") as f:
                    f.write(data[: len(data) // 2])
                die()
        return copyfile(src, dst, *a, **k)
    shutil.copyfile = torn_copy
elif point == "mid_record":  # the log line of epoch `at` torn
    from core.runlog import RunLogWriter
    append = RunLogWriter._append
    def torn_append(self, rec):
        if rec.get("type") == "epoch" and rec.get("epoch") == at:
            with open(self.path, "a") as f:
                f.write('{"type": "epoch", "epoch": %d, "alp' % at)
            die()
        return append(self, rec)
    RunLogWriter._append = torn_append

from translation.train import main
sys.exit(main(argv))
"""


def _run(args, point="none", at=0):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", BOOT, point, str(at), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _selfkd(prep, out, run_id):
    return (["--config", str(CONFIGS / "multi30k_de_en_selfkd.yaml")] + TINY
            + [f"data.prep_dir={prep}", f"out_dir={out}", f"run_id={run_id}", "resume=true"])


def _patience(prep, out, run_id):
    return (["--config", str(CONFIGS / "multi30k_de_en_baseline.yaml")] + TINY
            # valid NLL stops improving at epoch 5 (best at 4) at this lr without dropout
            + ["optim.lr=0.03", "model.dropout=0", "epochs=15", "optim.patience=1",
               f"data.prep_dir={prep}", f"out_dir={out}", f"run_id={run_id}", "resume=true"])


def _result(run_dir):
    """(epoch records without their wall time, final metrics, the weights of both checkpoints)."""
    log = read_run_log(run_dir / "log.jsonl", strict=True)
    epochs = [{k: v for k, v in e.items() if k != "epoch_wall_s"} for e in log.epochs]
    weights = {n: read_checkpoint(run_dir / "checkpoints" / n)["model"]
               for n in ("checkpoint_last.pt", "checkpoint_best.pt")}
    metrics = {k: log.final["metrics"][k] for k in ("bleu", "bleu_tok", "best_epoch", "epochs_trained")}
    return epochs, metrics, weights


def _same(a, b):
    (ea, ma, wa), (eb, mb, wb) = a, b
    assert [e["epoch"] for e in eb] == [e["epoch"] for e in ea]
    assert eb == ea and mb == ma
    for name in wa:
        assert wa[name].keys() == wb[name].keys()
        assert all(torch.equal(wa[name][k], wb[name][k]) for k in wa[name]), name


@pytest.fixture(scope="module")
def reference(tiny_multi30k, tmp_path_factory):
    """The uninterrupted runs, as processes like the killed ones."""
    pytest.importorskip("fairseq")
    out = tmp_path_factory.mktemp("reference")
    refs = {}
    for name, args in (("selfkd", _selfkd), ("patience", _patience)):
        p = _run(args(tiny_multi30k, out, name))
        assert p.returncode == 0, p.stderr[-2000:]
        refs[name] = _result(out / "table4" / name)
    return refs


# (kill point, epoch or copy number) of each process of the chain; the last one finishes
CHAIN = [("after_checkpoint", 1), ("mid_copy", 1), ("mid_record", 3)]


def test_selfkd_killed_three_times_resumes_to_the_uninterrupted_run(tiny_multi30k, tmp_path,
                                                                     reference):
    """Killed after epoch 1's checkpoint (before, the epoch's line was lost), then half-way
    through the copy to checkpoint_last.pt of the resumed process's first epoch (before, every
    rerun failed on the torn file), then in the middle of epoch 3's log line."""
    args = _selfkd(tiny_multi30k, tmp_path, "r")
    for point, at in CHAIN:
        killed = _run(args, point, at)
        assert killed.returncode == -9, (point, killed.stderr[-2000:])
        assert read_run_log(tmp_path / "table4" / "r" / "log.jsonl").final is None
    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _same(reference["selfkd"], _result(tmp_path / "table4" / "r"))
    assert not list((tmp_path / "table4" / "r").rglob("*.tmp"))  # a cut-off write leaves nothing behind


def test_early_stopping_count_survives_a_kill_after_a_checkpoint(tiny_multi30k, tmp_path, reference):
    """Killed right after the checkpoint of the first epoch without improvement (before, its
    line was lost, and the resumed run trained on past the uninterrupted run's stop): the resumed
    run counts that epoch towards optim.patience and stops where the uninterrupted run stopped."""
    epochs, metrics, _ = reference["patience"]
    assert metrics["epochs_trained"] == metrics["best_epoch"] + 1 < 15
    args = _patience(tiny_multi30k, tmp_path, "p")
    assert _run(args, "after_checkpoint", metrics["best_epoch"] + 1).returncode == -9
    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _same(reference["patience"], _result(tmp_path / "table4" / "p"))


def test_unreadable_checkpoint_last_falls_back_to_checkpoint_best(tiny_multi30k, tmp_path, reference):
    """checkpoint_last.pt damaged after epoch 2 (as a copy torn by an older version would leave
    it): the rerun resumes from checkpoint_best.pt, says so in one line, and finishes as the
    uninterrupted run."""
    args = _selfkd(tiny_multi30k, tmp_path, "r")
    assert _run(args + ["stop_after_epochs=2"]).returncode == 0
    last = tmp_path / "table4" / "r" / "checkpoints" / "checkpoint_last.pt"
    data = last.read_bytes()
    last.write_bytes(bytes(len(data)))  # zeroed
    p = _run(args)
    assert p.returncode == 0, p.stderr[-2000:]
    notes = [ln for ln in p.stderr.splitlines() if "unreadable" in ln]
    assert len(notes) == 1 and "resuming from checkpoint_best.pt" in notes[0], p.stderr
    _same(reference["selfkd"], _result(tmp_path / "table4" / "r"))
    records = [json.loads(ln) for ln in (tmp_path / "table4" / "r" / "log.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "resume" for r in records) == 1
