"""classification.checkpoint.RunCheckpoint: the one format classification.train writes and
detection's backbone loader reads, round-tripped through a file."""
import pytest
import torch

from classification.checkpoint import RunCheckpoint
from core.checkpoint import load_checkpoint, save_checkpoint
from detection.backbone import read_classification_checkpoint


def _checkpoint() -> RunCheckpoint:
    model = torch.nn.Linear(3, 2)
    cfg = {"model": "resnet20", "model_kwargs": {"width": 2}, "data": {"name": "cifar10"}, "epochs": 5}
    return RunCheckpoint(model.state_dict(), cfg, num_classes=2, epoch=3, optimizer={"state": {}},
                         method={"bank": torch.zeros(4, 2)}, wall_s=1.5, log=[{"type": "meta"}])


def test_written_and_read_back_unchanged(tmp_path):
    ckpt = _checkpoint()
    save_checkpoint(tmp_path / "checkpoint.pt", ckpt.to_dict())
    back = RunCheckpoint.from_dict(load_checkpoint(tmp_path / "checkpoint.pt"))
    assert back.model.keys() == ckpt.model.keys()
    assert all(torch.equal(back.model[k], ckpt.model[k]) for k in ckpt.model)
    assert torch.equal(back.method["bank"], ckpt.method["bank"])
    assert (back.config, back.num_classes, back.epoch, back.optimizer, back.wall_s, back.log) == \
        (ckpt.config, 2, 3, {"state": {}}, 1.5, [{"type": "meta"}])


def test_detection_reads_what_classification_writes(tmp_path):
    ckpt = _checkpoint()
    save_checkpoint(tmp_path / "checkpoint.pt", ckpt.to_dict())
    read = read_classification_checkpoint(tmp_path / "checkpoint.pt")
    assert (read.model, read.model_kwargs, read.num_classes, read.dataset, read.epoch, read.epochs) == \
        ("resnet20", {"width": 2}, 2, "cifar10", 3, 5)
    assert read.state_dict.keys() == ckpt.model.keys() and read.config == ckpt.config


def test_earlier_bank_key_is_the_method_state_and_a_non_checkpoint_is_refused():
    bank = torch.ones(2)
    assert RunCheckpoint.from_dict({"model": {}, "bank": bank}).method is bank
    with pytest.raises(ValueError, match="not a classification checkpoint"):
        RunCheckpoint.from_dict({"weights": {}})
