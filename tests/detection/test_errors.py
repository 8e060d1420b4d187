"""Every bad input to a detection command is one line 'error: ...', exit status 2, and nothing
written: a catalogue of the mistakes that reach detection's own checks (the VOC split spec, the
backbone and its checkpoint, the model's sizes) from python -m detection.train, detection.evaluate
and detection.synthetic. The library functions raise the same errors: a core.cli.UserError, which
is a ValueError, so callers that catch ValueError keep working."""
from pathlib import Path

import pytest
import torch

from core.cli import UserError
from core.config import load_config, to_yaml
from detection.config import TrainConfig
from detection.evaluate import main as evaluate_main
from detection.synthetic import main as synthetic_main, write_synthetic_voc
from detection.train import main as train_main
from detection.voc import VOCDetection, parse_splits

TINY = ["data.train=2007:trainval", "data.test=2007:test", "data.classes=[aeroplane,bicycle,bird,boat]",
        "data.num_workers=0", "data.train_subset=2", "data.test_subset=2", "model.min_size=32",
        "model.max_size=32", "model.anchor_sizes=[8,16]", "epochs=1", "progress=false", "device=cpu"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A tiny synthetic VOC set and two ResNet-20 backbone checkpoints classification/ could not
    have written: a bare state dict (no model name) and one trained on a dataset detection has no
    image statistics for."""
    from classification.models import build_model
    root = tmp_path_factory.mktemp("inputs")
    write_synthetic_voc(root / "voc", 8, image_size=32, object_size=(8, 12), objects_per_image=(1, 1))
    state = build_model("resnet20", 10).state_dict()
    torch.save(state, root / "bare.pt")
    torch.save({"model": state, "config": {"model": "resnet20", "data": {"name": "digits"}}}, root / "digits.pt")
    return root


def _one_error_line(capsys, rc) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), (rc, err)
    return err[0]


@pytest.mark.parametrize("args,words", [
    (["data.train=2007"], "data.train: bad VOC split '2007'"),
    (["data.test=2007:test+"], "data.test: bad VOC split ''"),
    (["data.classes=[]"], "data.classes must name at least one class"),
    (["model.min_size=0"], "model.min_size and model.max_size must be >= 1"),
    (["model.anchor_sizes=[]"], "model.anchor_sizes must be a non-empty list"),
    (["model.backbone=small_cnn"], "small_cnn: Sequential is not a ResNet"),
    (["model.backbone=resnet20", "model.trainable_stages=9"], "trainable stages must be in 0..4"),
    (["model.backbone=resnet20", "model.model_kwargs={in_channels: 1}"], "1-channel images; detection needs RGB"),
    (["model.backbone_checkpoint={inputs}/bare.pt"], "bare.pt does not record its model"),
    (["model.backbone_checkpoint={inputs}/digits.pt"], "no image statistics known for a backbone trained on 'digits'"),
    (["method.name=cskd"], "unknown method"),
    (["model.backbone_checkpoint=/nope/checkpoint.pt"], "backbone checkpoint not found"),
    (["data.root=/nope"], "VOC data not found"),
    (["data.test=2009:test"], "VOC2009"),
    (["epochs=0"], "must be positive"),
    (["data.flip_prob=2"], "flip_prob"),
    (["run_id=../x"], "plain folder name"),
    (["model.backbone="], "model.backbone"),
    (["data.flip=sometimes"], "data.flip"),
    (["model.roi_output_size=0"], "model.roi_output_size"),
    (["model.roi_sampling_ratio=-1"], "model.roi_sampling_ratio"),
    (["optim.bias_lr_mult=0"], "optim.bias_lr_mult"),
    (["model.backbone=resnet7"], "model.backbone: unknown model 'resnet7'"),
    (["model.model_kwargs={bogus: 1}"], "does not take these arguments"),
    (["seed=-1"], "seed must be in [0, "),
    (["data.num_workers=-1"], "data.num_workers must be >= 0"),
    (['run_id="a\\nb"'], "plain folder name"),
])
def test_train_bad_input_is_one_line(tmp_path, inputs, capsys, args, words):
    args = [a.replace("{inputs}", str(inputs)) for a in args]
    backbone = [] if any(a.startswith("model.backbone") for a in args) else ["model.backbone=resnet20"]
    rc = train_main([*TINY, f"data.root={inputs / 'voc'}", f"out_dir={tmp_path}", *backbone, *args])
    assert words in _one_error_line(capsys, rc)
    assert not any(tmp_path.iterdir())  # nothing left behind, not even the run folder


def test_evaluate_bad_split_override_is_one_line(tmp_path, inputs, capsys):
    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config(TrainConfig, None, [*TINY, "model.backbone=resnet20", f"data.root={inputs / 'voc'}"])
    (run / "config.yaml").write_text(to_yaml(cfg))
    (run / "checkpoint.pt").write_bytes(b"never read: the split is refused first")
    before = sorted(p.name for p in run.iterdir())
    rc = evaluate_main([str(run), "data.test=test", "--json", str(tmp_path / "r.json")])
    assert "bad VOC split 'test'" in _one_error_line(capsys, rc)
    assert sorted(p.name for p in run.iterdir()) == before and not (tmp_path / "r.json").exists()


def test_synthetic_bad_image_count_is_one_line(tmp_path, capsys):
    rc = synthetic_main(["--out", str(tmp_path / "voc"), "--images", "1"])
    assert "num_images >= 2" in _one_error_line(capsys, rc)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("call,words", [
    (lambda voc, out: parse_splits("2007"), "YEAR:SPLIT"),
    (lambda voc, out: VOCDetection(voc, flip_prob=1.5), "flip_prob"),
    (lambda voc, out: VOCDetection(voc, min_size=0), "min_size"),
    (lambda voc, out: write_synthetic_voc(out, 4, ("dog",), image_size=32, object_size=(8, 40)), "object_size"),
    (lambda voc, out: write_synthetic_voc(out, 4, ("dog",), objects_per_image=(2, 1)), "objects_per_image"),
    (lambda voc, out: write_synthetic_voc(out, 4, ("dog", "circle")), "'circle' is not one"),
])
def test_library_raises_a_user_error_that_is_a_value_error(tmp_path, inputs, call, words):
    with pytest.raises(UserError, match=words) as e:
        call(inputs / "voc", tmp_path)
    assert isinstance(e.value, ValueError) and not any(tmp_path.iterdir())
