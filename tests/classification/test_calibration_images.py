"""Temperature scaling of a run trained on a subset without a holdout, fitted on training images
outside that subset (classification.data.unused_train_images, classification.evaluate
--calibration-images N): the images are the run's unused ones, decoded as the full file decodes
them, and the fitted temperature is the one fitted on their logits."""
import io
import json

import numpy as np
import pytest
import torch

from classification import evaluate
from classification.data import DataConfig, _subset, build_datasets, cifar_transforms, load_cifar10_npz, \
    unused_train_images
from classification.train import TrainConfig, train
from core.calibration import fit_temperature
from core.config import load_config
from core.runlog import read_run_log

from .test_evaluate import TINY


def _npz(path, n=40):
    """A CIFAR-10 JPEG file in the shared copy's layout: image i is one grey level (6 i)."""
    from PIL import Image
    bufs = []
    for i in range(n):
        b = io.BytesIO()
        Image.fromarray(np.full((32, 32, 3), 6 * i, np.uint8)).save(b, format="JPEG")
        bufs.append(np.frombuffer(b.getvalue(), np.uint8))
    off = np.cumsum([0] + [len(b) for b in bufs])
    np.savez(path, train_jpeg=np.concatenate(bufs), train_offsets=off, train_labels=np.arange(n) % 10,
             test_jpeg=np.concatenate(bufs), test_offsets=off, test_labels=np.arange(n) % 10,
             classes=np.array([str(i) for i in range(10)]))
    return path


def test_npz_unused_images_are_outside_the_subset_and_decoded(tmp_path):
    root = _npz(tmp_path / "c.npz")
    data = DataConfig(name="cifar10_npz", root=str(root), augment=False, train_subset=20, fit_subset=0)
    got = unused_train_images(data, 8)
    used = set(_subset(40, 20))
    assert len(got) == 8 and not set(got.indices) & used and len(set(got.indices)) == 8
    assert got.indices == unused_train_images(data, 8).indices  # a fixed draw
    assert got.indices != unused_train_images(data, 8, seed=1).indices
    imgs, labels = load_cifar10_npz(root, "train")  # every image decoded: the reference
    t = cifar_transforms(10, False)
    for j, i in enumerate(got.indices):
        x, y, pos = got[j]
        assert pos == j and y == labels[i] and torch.equal(x, t(imgs[i]))
    # the run's own training images are exactly the subset: nothing of the draw among them
    train_set = build_datasets(data)[0]
    assert set(train_set.indices) == used


@pytest.mark.parametrize("overrides, n, msg", [
    ({"train_subset": 0}, 5, "0 are left"),
    ({"train_subset": 30}, 11, "10 are left"),
    ({"train_subset": 20, "holdout_fraction": 0.1}, 5, "holdout of its own"),
])
def test_npz_unused_images_refused(tmp_path, overrides, n, msg):
    data = DataConfig(name="cifar10_npz", root=str(_npz(tmp_path / "c.npz")), **overrides)
    with pytest.raises(ValueError, match=msg):
        unused_train_images(data, n)


@pytest.fixture(scope="module")
def subset_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train(load_config(TrainConfig, None, TINY + [f"out_dir={out}"]))


def test_evaluate_fits_the_temperature_on_the_unused_images(subset_run, capsys):
    assert evaluate.main([str(subset_run), "--split", "test", "--calibration-images", "60"]) == 0
    out = json.loads(capsys.readouterr().out)
    ts = out["temperature_scaled"]
    assert ts["ts_fit"] == "unused-train-60" and "fold_temperatures" not in ts
    final = read_run_log(subset_run / "log.jsonl").final
    assert out["metrics"] == pytest.approx(final["metrics"], rel=1e-9)  # raw: the run's own numbers
    assert ts["metrics"]["top1_err"] == final["metrics"]["top1_err"]
    # the same temperature, fitted here on the logits of the same 60 images
    model, cfg, _, sets = evaluate.load_run(subset_run / "checkpoint.pt", torch.device("cpu"), None, 60)
    used = set(build_datasets(DataConfig(name="digits", train_subset=300, fit_subset=0))[0].indices)
    assert len(sets["calibration"]) == 60 and not set(sets["calibration"].indices) & used
    loader = torch.utils.data.DataLoader(sets["calibration"], batch_size=64)
    logits, labels = evaluate.predict_logits(model.eval(), loader, torch.device("cpu"))
    assert ts["temperature"] == pytest.approx(fit_temperature(logits, labels), rel=1e-9)
    assert ts["temperature"] != pytest.approx(final["temperature_scaled"]["temperature"], rel=1e-6)


def test_record_keeps_each_fit_apart(subset_run, capsys):
    log_path = subset_run / "log.jsonl"
    args = [str(subset_run), "--split", "test", "--record"]
    assert evaluate.main(args + ["--calibration-images", "60"]) == 0
    first = log_path.read_bytes()
    assert json.loads(first.splitlines()[-1])["temperature_scaled"]["ts_fit"] == "unused-train-60"
    assert evaluate.main(args + ["--calibration-images", "60"]) == 0  # recorded: nothing appended
    assert log_path.read_bytes() == first
    assert evaluate.main(args) == 0  # another fit (cross-fitting on test): a record of its own
    assert json.loads(log_path.read_bytes().splitlines()[-1])["temperature_scaled"]["ts_fit"] == "test-2fold"
    capsys.readouterr()


@pytest.mark.parametrize("extra, msg", [
    (["--calibration-images", "100000"], "are left"),
    (["--calibration-images", "-1"], "must be >= 0"),
    (["--split", "holdout", "--calibration-images", "5"], "use --split test"),
])
def test_calibration_user_errors_are_one_line(subset_run, capsys, extra, msg):
    before = (subset_run / "log.jsonl").read_bytes()
    assert evaluate.main([str(subset_run)] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1
    assert (subset_run / "log.jsonl").read_bytes() == before
