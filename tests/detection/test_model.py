"""detection.backbone / detection.model: a classification checkpoint becomes the C4 backbone of a
torchvision Faster R-CNN, every tensor accounted for; mismatches are one-line errors."""
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn

from classification.models import build_model
from detection.backbone import (BackboneCheckpointError, c4_key_map, load_backbone_checkpoint,
                                load_backbone_state, to_detectron2_state_dict)
from detection.model import IMAGENET_MEAN, build_faster_rcnn, faster_rcnn_from_checkpoint
from detection.voc import VOCDetection, collate_detection
from detection.voc_eval import VOCEvaluator, devkit_detections

TINY = dict(min_size=64, max_size=96, anchor_sizes=(16, 32, 64))  # small images, CPU-fast


def trained_like(name: str, num_classes: int, seed: int = 0, **kw) -> nn.Module:
    """A classifier whose every tensor (BN statistics included) differs from a fresh init, so a
    tensor that was not copied cannot pass for one that was."""
    torch.manual_seed(seed)
    m = build_model(name, num_classes, **kw)
    with torch.no_grad():
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.1 + 0.01)
            else:
                t.fill_(7)  # num_batches_tracked
    return m


def save_clf_checkpoint(path, model, name, num_classes, dataset="cifar10", model_kwargs=None):
    """The layout classification/train.py writes (checkpoint.pt)."""
    torch.save({"model": model.state_dict(), "optimizer": {}, "num_classes": num_classes, "epoch": 1,
                "config": {"model": name, "model_kwargs": model_kwargs or {}, "data": {"name": dataset}}}, path)
    return path


def assert_every_backbone_tensor_loaded(det, clf, report):
    """Each detector tensor under backbone. / roi_heads.box_head. equals its checkpoint tensor,
    each checkpoint tensor is loaded or ignored by rule, and nothing else is ignored."""
    src, own = clf.state_dict(), det.state_dict()
    backbone = {k for k in own if k.startswith(("backbone.", "roi_heads.box_head."))}
    assert set(report.loaded) == backbone
    for d, s in report.loaded.items():
        assert torch.equal(own[d], src[s]), d
    assert set(report.loaded.values()) | set(report.ignored) == set(src)
    assert not set(report.loaded.values()) & set(report.ignored)
    for k, why in report.ignored.items():
        assert k.endswith("num_batches_tracked") or k.split(".")[0] in ("fc", "linear"), (k, why)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in det.modules())  # frozen


@pytest.mark.parametrize("name, kw", [("resnet20", {}), ("resnet20", {"width": 2}),
                                      ("preact_resnet18", {}), ("timm/resnet18", {})])
def test_every_backbone_tensor_loaded(name, kw):
    clf = trained_like(name, 10, **kw)
    det = build_faster_rcnn(name, 3, model_kwargs=kw, **TINY)
    report = load_backbone_state(det, clf.state_dict(), num_classes=10)
    assert_every_backbone_tensor_loaded(det, clf, report)


@pytest.mark.parametrize("name", ["timm/resnet152", "resnet50", "resnet56"])
def test_key_map_covers_large_backbones(name):
    """The paper's timm/resnet152 (and CIFAR bottleneck ResNet-50, ResNet-56) on the meta device:
    names and shapes only, no memory."""
    with torch.device("meta"):
        clf = build_model(name, 1000)
        det = build_faster_rcnn(name, 20)
    src, own = clf.state_dict(), det.state_dict()
    mapping, ignored = c4_key_map(list(src), det.backbone.layout)
    backbone = {k for k in own if k.startswith(("backbone.", "roi_heads.box_head."))}
    assert set(mapping.values()) == backbone
    assert set(mapping) | set(ignored) == set(src)
    assert all(src[s].shape == own[d].shape for s, d in mapping.items())
    if name == "timm/resnet152":
        assert mapping["layer3.35.conv3.weight"] == "backbone.layer3.35.conv3.weight"
        assert mapping["layer4.0.downsample.0.weight"] == "roi_heads.box_head.layer4.0.downsample.0.weight"
        assert det.backbone.out_channels == 1024 and det.roi_heads.box_predictor.cls_score.out_features == 21


def test_checkpoint_file_round_trip(tmp_path):
    clf = trained_like("resnet20", 10)
    path = save_clf_checkpoint(tmp_path / "checkpoint.pt", clf, "resnet20", 10)
    det, report = faster_rcnn_from_checkpoint(path, num_classes=3, **TINY)
    assert_every_backbone_tensor_loaded(det, clf, report)
    from classification.data import CIFAR_MEAN
    assert det.transform.image_mean == list(CIFAR_MEAN[10])  # the backbone's own normalisation
    det2 = build_faster_rcnn("resnet20", 3, **TINY)
    assert det2.transform.image_mean == list(IMAGENET_MEAN)
    assert_every_backbone_tensor_loaded(det2, clf, load_backbone_checkpoint(det2, path))
    # a DDP-prefixed bare state dict loads the same, given the model name
    torch.save({"module." + k: v for k, v in clf.state_dict().items()}, tmp_path / "bare.pt")
    det3, report3 = faster_rcnn_from_checkpoint(tmp_path / "bare.pt", 3, backbone="resnet20", **TINY)
    assert_every_backbone_tensor_loaded(det3, clf, report3)


# ------------------------------------------------------------------ mismatches: one-line errors

def _raises(fn, *needles, exc=BackboneCheckpointError):
    with pytest.raises(exc) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert str(n) in msg, msg


def test_mismatched_architecture_is_one_line_error(tmp_path):
    det = build_faster_rcnn("resnet20", 3, **TINY)
    # the checkpoint says it is another model
    p56 = save_clf_checkpoint(tmp_path / "r56.pt", build_model("resnet56", 10), "resnet56", 10)
    _raises(lambda: load_backbone_checkpoint(det, p56), "resnet56", "resnet20", p56)
    _raises(lambda: faster_rcnn_from_checkpoint(p56, 3, backbone="resnet20", **TINY), "resnet56")
    # same keys, other shapes (twice as wide), no model name to tell
    wide = build_model("resnet20", 10, width=2).state_dict()
    _raises(lambda: load_backbone_state(det, wide, source="wide.pt"), "wide.pt", "linear.weight", "another architecture")
    wide = {k: v for k, v in wide.items() if not k.startswith("linear.")}  # no classifier to tell
    _raises(lambda: load_backbone_state(det, wide, source="wide.pt"), "wide.pt", "shapes differ", "checkpoint (32, 3, 3, 3), detector (16, 3, 3, 3)")
    # more blocks than the detector has (ResNet-56 into ResNet-20): keys no part takes
    _raises(lambda: load_backbone_state(det, build_model("resnet56", 10).state_dict()), "no part", "stages.9")
    # another family altogether
    _raises(lambda: load_backbone_state(det, build_model("preact_resnet18", 10).state_dict()), "no part")
    # a tensor missing, and a stray one
    sd = build_model("resnet20", 10).state_dict()
    missing = {k: v for k, v in sd.items() if k != "stages.4.conv2.weight"}
    _raises(lambda: load_backbone_state(det, missing), "get nothing", "backbone.stages.4.conv2.weight")
    _raises(lambda: load_backbone_state(det, {**sd, "projector.weight": torch.zeros(2)}), "projector.weight")
    # not a checkpoint
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    _raises(lambda: load_backbone_checkpoint(det, tmp_path / "junk.pt"), "cannot read", "junk.pt")
    _raises(lambda: load_backbone_checkpoint(det, tmp_path / "absent.pt"), "absent.pt", exc=FileNotFoundError)


def test_mismatched_class_head_is_one_line_error(tmp_path):
    det = build_faster_rcnn("resnet20", 3, **TINY)
    clf = build_model("resnet20", 10)
    # an ImageNet backbone was expected (1000 classes), the checkpoint's head has 10
    _raises(lambda: load_backbone_state(det, clf.state_dict(), source="c.pt", num_classes=1000),
            "c.pt", "10 outputs", "1000")
    # the checkpoint records 100 classes but its head has 10
    p = save_clf_checkpoint(tmp_path / "c100.pt", clf, "resnet20", 100)
    _raises(lambda: load_backbone_checkpoint(det, p), "10 outputs", "100", p)
    _raises(lambda: faster_rcnn_from_checkpoint(p, 3, backbone_classes=10, **TINY), "trained for 100")
    # a head of the wrong width: another architecture under the same names
    sd = {**clf.state_dict(), "linear.weight": torch.zeros(10, 128)}
    _raises(lambda: load_backbone_state(det, sd), "linear.weight", "(10, 128)", "64 channels")


# ------------------------------------------------------------------ the model runs

def test_tiny_detector_trains_and_evaluates_on_real_voc(voc_sample):
    """One SGD step on 2 real VOC images and an evaluation pass, with a ResNet-20 backbone."""
    torch.manual_seed(0)
    clf = trained_like("resnet20", 10)
    det = build_faster_rcnn("resnet20", 20, **TINY)
    load_backbone_state(det, clf.state_dict())
    train = VOCDetection(voc_sample, "2007:trainval", flip_prob=0.5, skip_difficult=True)
    images, targets = collate_detection([train[0], train[1]])
    det.train()
    losses = det(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    opt = torch.optim.SGD([p for p in det.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    loss.backward()
    assert det.backbone.conv1.weight.grad is None  # stem frozen (trainable_stages=3 of 4)
    assert det.roi_heads.box_head.stages[0].conv1.weight.grad is not None
    opt.step()
    det.eval()
    test = VOCDetection(voc_sample, "2007:test+2012:test")
    ev = VOCEvaluator()
    with torch.no_grad():
        for i in range(3):
            img, t = test[i]
            out = det([img])[0]
            assert out["boxes"].shape[1] == 4 and (out["labels"] >= 1).all()
            ev.add(devkit_detections(out, t["scale"]), test.annotations[i])
    r = ev.compute()
    assert 0.0 <= r.map <= 1.0 and set(r.ap) == set(r.npos)


def test_freezing_and_layout():
    det = build_faster_rcnn("timm/resnet18", 20, **TINY)
    frozen = {n for n, p in det.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in det.named_parameters() if n.startswith(("backbone.conv1.", "backbone.layer1."))}
    assert det.backbone.out_channels == 256 and det.roi_heads.box_head.pool
    with pytest.raises(ValueError, match="trainable"):
        build_faster_rcnn("resnet20", 20, trainable_stages=5)
    with pytest.raises(ValueError, match="not a ResNet"):
        build_faster_rcnn("densenet_bc_100_12", 20)


def test_detectron2_key_renaming(tmp_path):
    """detectron2 is not installable here; its ResNet names (convert-torchvision-to-d2.py rules)."""
    sd = build_model("timm/resnet18", 1000).state_dict()
    d2 = to_detectron2_state_dict(sd)
    for k in ("stem.conv1.weight", "stem.conv1.norm.running_mean", "res2.0.conv1.weight",
              "res2.1.conv2.norm.bias", "res3.0.shortcut.weight", "res3.0.shortcut.norm.running_var",
              "res5.1.conv2.weight"):
        assert k in d2, k
    assert not any(k.startswith(("fc", "stem.fc")) or k.endswith("num_batches_tracked") for k in d2)
    assert len(d2) == sum(1 for k in sd if not k.startswith("fc.") and not k.endswith("num_batches_tracked"))
    np.testing.assert_array_equal(d2["res3.0.shortcut.weight"], sd["layer2.0.downsample.0.weight"].numpy())
    with open(tmp_path / "r18.pkl", "wb") as f:
        pickle.dump({"model": d2, "__author__": "torchvision", "matching_heuristics": True}, f)


def test_backbone_normalisation_follows_the_runs_choice(tmp_path):
    """A CIFAR backbone trained with data.normalization=official is normalised as it was trained."""
    from classification.data import cifar_normalization
    from detection.model import backbone_normalization
    assert backbone_normalization("cifar100", "official") == cifar_normalization(100, "official")
    assert backbone_normalization("cifar100") == cifar_normalization(100, "own")
    clf = trained_like("resnet20", 100)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": clf.state_dict(), "num_classes": 100, "epoch": 3,
                "config": {"model": "resnet20", "epochs": 5, "data": {"name": "cifar100", "normalization": "official"}}},
               path)
    det, _ = faster_rcnn_from_checkpoint(path, num_classes=3, **TINY)
    assert det.transform.image_std == [0.2023, 0.1994, 0.2010]
    from detection.backbone import read_classification_checkpoint
    ckpt = read_classification_checkpoint(path)
    assert (ckpt.epoch, ckpt.epochs, ckpt.config["data"]["normalization"]) == (3, 5, "official")
