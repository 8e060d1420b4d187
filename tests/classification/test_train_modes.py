"""Fast path vs DataLoader path, DDP vs one process, ImageNet folders, holdout, bad checkpoints."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from classification.train import TrainConfig, main, train
from core.config import load_config
from core.runlog import read_run_log

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path, *ov):
    return train(load_config(TrainConfig, None, ["progress=false", "data.num_workers=0", f"out_dir={tmp_path}", *ov]))


def test_fast_path_matches_dataloader_path(tmp_path, shared_data):
    npz = shared_data / "cifar10-jpeg" / "cifar10_jpeg.npz"
    common = ["model=small_cnn", "data.name=cifar10_npz", f"data.root={npz}", "data.train_subset=128",
              "data.test_subset=128", "data.augment=false", "epochs=2", "optim.batch_size=32",
              "method.name=selfkd"]
    a = read_run_log(_run(tmp_path / "loader", *common) / "log.jsonl", strict=True)
    b = read_run_log(_run(tmp_path / "fast", *common, "data.on_device=true") / "log.jsonl", strict=True)
    # Same batches in the same order; pixels differ only by float rounding of the normalisation
    # ((x/255 - m)/s vs (x - 255 m)/(255 s), ~1e-7), so losses agree to ~1e-5.
    for ea, eb in zip(a.epochs, b.epochs):
        assert ea["train_loss"] == pytest.approx(eb["train_loss"], rel=1e-4)
        assert ea["nll"] == pytest.approx(eb["nll"], rel=1e-3)
    # augmented fast path runs end to end too
    c = read_run_log(_run(tmp_path / "fastaug", *common[:-4], "epochs=1", "optim.batch_size=32",
                          "method.name=cutout_selfkd", "data.on_device=true") / "log.jsonl", strict=True)
    assert c.complete


@pytest.mark.parametrize("teacher", ["bank", "snapshot"])
def test_ddp_two_processes_match_one(tmp_path, teacher):
    common = ["model=small_cnn", "model_kwargs={norm: gn}", "data.name=digits", "data.num_workers=0",
              "data.train_subset=256", "data.test_subset=128", "epochs=2", "optim.batch_size=64",
              "method.name=selfkd", f"method.selfkd.teacher={teacher}", "progress=false", "run_id=r"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    one = subprocess.run([sys.executable, "-m", "classification.train", *common, f"out_dir={tmp_path}/one"],
                         env=env, capture_output=True, text=True, cwd=REPO)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "classification.train", *common, f"out_dir={tmp_path}/two"],
                         env=env, capture_output=True, text=True, cwd=REPO)
    assert two.returncode == 0, two.stderr[-3000:]
    a = read_run_log(tmp_path / "one/table1/r/log.jsonl", strict=True)
    b = read_run_log(tmp_path / "two/table1/r/log.jsonl", strict=True)
    assert b.meta["world_size"] == 2
    if teacher == "bank":
        cs = b.final["bank_checksums"]
        assert len(cs) == 2 and cs[0] == cs[1]  # identical banks on both ranks
    # Same global batches; gradients differ only in summation order (all-reduce of two
    # half-batch means vs one mean): tolerance 1e-4 relative on losses and metrics.
    for ea, eb in zip(a.epochs, b.epochs):
        assert ea["train_loss"] == pytest.approx(eb["train_loss"], rel=1e-4)
    for k, v in a.final["metrics"].items():
        assert b.final["metrics"][k] == pytest.approx(v, rel=1e-4, abs=1e-4), k
    if teacher == "snapshot":
        return
    bank1 = torch.load(tmp_path / "one/table1/r/checkpoint.pt", weights_only=False)["method"]["probs"]
    bank2 = torch.load(tmp_path / "two/table1/r/checkpoint.pt", weights_only=False)["method"]["probs"]
    torch.testing.assert_close(bank1, bank2, rtol=1e-3, atol=1e-5)


def _image_folder(root: Path, n_per_class=3, classes=("ant", "bee", "cat"), size=40):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                Image.fromarray(rng.integers(0, 256, (size, size + 7, 3), dtype=np.uint8)).save(root / split / c / f"{i}.jpg")


def test_imagenet_folder_run_and_corrupt_image(tmp_path, capsys):
    root = tmp_path / "imagenet"
    _image_folder(root)
    ov = ["model=small_cnn", "data.name=imagenet", f"data.root={root}", "epochs=1", "optim.batch_size=3",
          "optim.eval_batch_size=3", "method.name=selfkd", "method.selfkd.bank.dtype=float16",
          "method.selfkd.bank.storage=mmap", "table=table2", "row=tiny"]
    run_dir = _run(tmp_path / "runs", *ov)
    log = read_run_log(run_dir / "log.jsonl", strict=True)
    assert log.complete and sum(log.final["reliability"]["count"]) == 9
    assert (run_dir / "bank.npy").is_file()
    (root / "train" / "bee" / "1.jpg").write_bytes(b"not a jpeg at all")
    for workers in (0, 1):  # in the main process, and re-raised from a DataLoader worker
        rc = main(["progress=false", f"data.num_workers={workers}", f"out_dir={tmp_path}/runs{workers}", *ov])
        err = capsys.readouterr().err
        assert rc == 2 and "corrupt image" in err and "1.jpg" in err and err.count("\n") == 1, err


def test_holdout_and_bad_fraction(tmp_path, capsys):
    run_dir = _run(tmp_path, "model=small_cnn", "data.name=digits", "epochs=1", "data.holdout_fraction=0.1")
    log = read_run_log(run_dir / "log.jsonl", strict=True)
    assert log.meta["eval_split"] == "holdout" and sum(log.final["reliability"]["count"]) == 144  # 10% of 1437
    assert main(["data.name=digits", "model=small_cnn", "data.holdout_fraction=1.5", f"out_dir={tmp_path}/x"]) == 2
    assert "holdout_fraction must be in (0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_checkpoint_class_count_mismatch(tmp_path, capsys):
    ov = ["model=small_cnn", "data.name=digits", "epochs=2", "stop_after_epochs=1", "run_id=r", "data.num_workers=0",
          "progress=false", f"out_dir={tmp_path}"]
    assert main(ov) == 0
    ck = tmp_path / "table1/r/checkpoint.pt"
    state = torch.load(ck, weights_only=False)
    state["num_classes"] = 100
    torch.save(state, ck)
    before = (tmp_path / "table1/r/log.jsonl").read_text()
    assert main(ov + ["resume=true"]) == 2
    assert "is for 100 classes, the data has 10" in capsys.readouterr().err
    assert (tmp_path / "table1/r/log.jsonl").read_text() == before  # nothing touched
