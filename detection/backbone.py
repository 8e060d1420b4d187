"""A classification ResNet of this repo, cut into the two halves of a C4 Faster R-CNN, and the
explicit key mapping that loads a ``classification/`` checkpoint into them.

C4 (He et al. 2016, Sec. "Object detection"; py-faster-rcnn's ResNet models): the stem and the
first three stages (conv1..conv4_x, stride 16 on ImageNet ResNets) are the shared *trunk* that
the RPN and RoI pooling read; the last stage (conv5_x, stride 2) runs per RoI as the box *head*,
followed by global average pooling. The classifier (``fc`` / ``linear``) is not used.

Layouts (``c4_layout``), by the classification model's class:

=====================  ====================================  =====================  ==========
model                  trunk (in forward order)              head                   classifier
=====================  ====================================  =====================  ==========
timm ``ResNet``        conv1 bn1 act1 maxpool layer1..layer3  layer4                 fc
``resnet50/101``       conv1 bn1 relu layer1..layer3          layer4                 linear
``preact_resnet*``     conv1 layer1..layer3                   layer4 bn relu         linear
``resnet20/56``        conv1 bn1 relu stages[0:2n]            stages[2n:3n]          linear
=====================  ====================================  =====================  ==========

(``timm/resnet152`` is the paper's backbone; the CIFAR ResNets have a stride-1 stem and are for
tests and CPU checks.) Parts keep their module names, so the key map is a prefix rule:
a trunk key ``k`` becomes ``backbone.k`` and a head key ``roi_heads.box_head.k`` in the
torchvision ``FasterRCNN``; ``stages[a:b]`` keeps the original block indices. Two kinds of
checkpoint tensors are deliberately not loaded, and are listed in the load report: the
classifier, and BatchNorm's ``num_batches_tracked`` (every BatchNorm becomes a
``FrozenBatchNorm2d``: with one image per batch, as in the paper, batch statistics are useless).
Any other key that no part takes, any detector backbone tensor left without a checkpoint tensor,
and any shape difference is a ``BackboneCheckpointError`` (a ValueError), one line.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops.misc import FrozenBatchNorm2d

from classification.checkpoint import RunCheckpoint
from core.cli import UserError
from core.config import ConfigError

TRUNK_PREFIX = "backbone."           # FasterRCNN.backbone
HEAD_PREFIX = "roi_heads.box_head."  # FasterRCNN.roi_heads.box_head
BN_COUNTER = "num_batches_tracked"
# DataParallel/DDP and torch.compile wrap a model and prefix its keys; classification/ saves the
# unwrapped model, but a checkpoint from elsewhere may carry them.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class BackboneCheckpointError(UserError):
    """A checkpoint that does not fit the detector's backbone (one line, names the checkpoint)."""


@dataclass(frozen=True)
class C4Layout:
    """How one classification ResNet divides into C4 parts. Entries name top-level modules of
    the classification model; ``"relu"`` is ``F.relu`` (no module); ``"stages[a:b]"`` is blocks
    a..b-1 of the ``nn.Sequential`` ``stages``. ``groups``: parameter groups from the input
    (stem, stage 1, ...), the unit of ``freeze_stages``."""
    arch: str
    trunk: tuple[str, ...]
    head: tuple[str, ...]
    classifier: str
    groups: tuple[tuple[str, ...], ...]


_SLICE = re.compile(r"^(\w+)\[(\d+):(\d+)\]$")


def _claims(part: str, key: str) -> bool:
    """Whether layout entry ``part`` owns state-dict key ``key`` (both in classification names)."""
    m = _SLICE.match(part)
    if m:
        name, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        head, _, rest = key.partition(".")
        idx = rest.partition(".")[0]
        return head == name and idx.isdigit() and a <= int(idx) < b
    return part != "relu" and key.startswith(part + ".")


def c4_layout(model: nn.Module) -> C4Layout:
    """The C4 layout of a classification model (see the module docstring's table)."""
    from classification.models.preact_resnet import PreActResNet
    from classification.models.resnet import CifarResNet
    from classification.models.resnet_cifar import ResNetCifar
    try:
        from timm.models.resnet import ResNet as TimmResNet
    except ImportError:  # timm is a dependency; this only keeps the error readable
        TimmResNet = ()
    if TimmResNet and isinstance(model, TimmResNet):
        return C4Layout("timm ResNet", ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3"),
                        ("layer4",), "fc", (("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",)))
    if isinstance(model, CifarResNet):
        return C4Layout("CIFAR bottleneck ResNet", ("conv1", "bn1", "relu", "layer1", "layer2", "layer3"),
                        ("layer4",), "linear", (("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",)))
    if isinstance(model, PreActResNet):
        return C4Layout("pre-activation ResNet", ("conv1", "layer1", "layer2", "layer3"),
                        ("layer4", "bn", "relu"), "linear",
                        (("conv1",), ("layer1",), ("layer2",), ("layer3",), ("layer4", "bn")))
    if isinstance(model, ResNetCifar):
        n = len(model.stages) // 3  # 3 stages of n blocks: C4 = stages 1-2, head = stage 3
        return C4Layout("CIFAR ResNet (6n+2)", ("conv1", "bn1", "relu", f"stages[0:{2 * n}]"),
                        (f"stages[{2 * n}:{3 * n}]",), "linear",
                        (("conv1", "bn1"), (f"stages[0:{n}]",), (f"stages[{n}:{2 * n}]",),
                         (f"stages[{2 * n}:{3 * n}]",)))
    raise ConfigError(f"{type(model).__name__} is not a ResNet this module can split into a C4 "
                      f"trunk and head; supported: timm ResNets (timm/resnet*), resnet50/101, "
                      f"preact_resnet18/101, resnet20/56")


def _part_module(model: nn.Module, part: str) -> nn.Module | None:
    if part == "relu":
        return None
    m = _SLICE.match(part)
    if m:
        seq = getattr(model, m.group(1))
        a, b = int(m.group(2)), int(m.group(3))
        return nn.Sequential(OrderedDict((str(i), seq[i]) for i in range(a, b)))
    return getattr(model, part)


def _part_name(part: str) -> str:
    m = _SLICE.match(part)
    return m.group(1) if m else part


class C4Part(nn.Module):
    """The modules of a classification ResNet named by ``parts``, applied in order, registered
    under their original names (so state-dict keys keep them). ``pool=True`` ends with global
    average pooling and flattening: (R, C, h, w) -> (R, C), the box head's output."""

    def __init__(self, model: nn.Module, parts: Sequence[str], pool: bool = False):
        super().__init__()
        self.parts = tuple(parts)
        self.pool = pool
        for p in self.parts:
            mod = _part_module(model, p)
            if mod is not None:
                self.add_module(_part_name(p), mod)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for p in self.parts:
            x = F.relu(x) if p == "relu" else getattr(self, _part_name(p))(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1) if self.pool else x


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` in ``module`` by a ``FrozenBatchNorm2d`` holding its
    affine parameters and running statistics (returns the module, changed in place; a bare
    BatchNorm2d is returned converted)."""
    if type(module) is nn.BatchNorm2d:
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        with torch.no_grad():
            if module.affine:
                frozen.weight.copy_(module.weight)
                frozen.bias.copy_(module.bias)
            if module.track_running_stats:
                frozen.running_mean.copy_(module.running_mean)
                frozen.running_var.copy_(module.running_var)
        return frozen
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        raise ValueError(f"cannot freeze {type(module).__name__}: only nn.BatchNorm2d is supported")
    for name, child in module.named_children():
        new = freeze_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module


@dataclass
class C4Backbone:
    """The two halves for ``torchvision.models.detection.FasterRCNN``: ``trunk`` (its
    ``backbone``, with ``out_channels``) and ``head`` (its ``box_head``, (R, C, 14, 14) ->
    (R, head_channels)); ``model`` is the classification model name they came from."""
    trunk: C4Part
    head: C4Part
    layout: C4Layout
    model: str
    head_channels: int


def build_c4_backbone(model: str, model_kwargs: Mapping | None = None, frozen_bn: bool = True) -> C4Backbone:
    """Build classification model ``model`` (its registry: ``resnet20``, ``timm/resnet152``, ...,
    untrained: weights come from ``load_backbone_state``), cut it into C4 trunk and head, and
    (default) freeze its BatchNorms."""
    from classification.models import build_model
    clf = build_model(model, num_classes=1, **dict(model_kwargs or {}))  # the classifier is dropped
    try:
        layout = c4_layout(clf)
    except ConfigError as e:  # name the model the user gave, not only its class
        raise ConfigError(f"{model}: {e}") from None
    trunk, head = C4Part(clf, layout.trunk), C4Part(clf, layout.head, pool=True)
    first = next(m for m in trunk.modules() if isinstance(m, nn.Conv2d))
    if first.in_channels != 3:
        raise ConfigError(f"{model} takes {first.in_channels}-channel images; detection needs RGB (3)")
    trunk.out_channels = next(m for m in head.modules() if isinstance(m, nn.Conv2d)).in_channels
    head_channels = getattr(clf, layout.classifier).in_features
    if frozen_bn:
        freeze_batchnorm(trunk), freeze_batchnorm(head)
    # What load_backbone_state reads from FasterRCNN.backbone:
    trunk.layout, trunk.backbone_name, trunk.head_channels = layout, model, head_channels
    return C4Backbone(trunk, head, layout, model, head_channels)


def freeze_stages(trunk: nn.Module, head: nn.Module, layout: C4Layout, trainable: int) -> None:
    """Train only the last ``trainable`` groups of ``layout.groups`` (stem, stage 1, ...); the
    others get ``requires_grad=False``. py-faster-rcnn / faster-rcnn.pytorch fix conv1 and the
    first stage of ResNets (trainable = 3 of 5 on ImageNet ResNets, torchvision's default too)."""
    n = len(layout.groups)
    if not 0 <= trainable <= n:
        raise ConfigError(f"trainable stages must be in 0..{n} for a {layout.arch}, got {trainable}")
    frozen = [p for g in layout.groups[:n - trainable] for p in g]
    for part in (trunk, head):
        for name, param in part.named_parameters():
            param.requires_grad_(not any(_claims(p, name) for p in frozen))


# ---------------------------------------------------------------------------------------------
# checkpoints


@dataclass
class ClassificationCheckpoint:
    """What a backbone needs from a checkpoint: ``state_dict``; and, when the checkpoint was
    written by classification/train.py (classification.checkpoint.RunCheckpoint), the model name
    and kwargs, its class count, the dataset it was trained on, and the epoch its weights are from
    out of the run's ``epochs`` (a finished run's checkpoint holds the last epoch's weights, the
    model its final line measures; no best-epoch copy is written)."""
    path: str
    state_dict: dict[str, torch.Tensor]
    model: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    num_classes: int | None = None
    dataset: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    config: dict = field(default_factory=dict)  # the run's resolved config, as saved


def strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a DDP ``module.`` or torch.compile ``_orig_mod.`` prefix carried by every key."""
    sd = dict(state_dict)
    for prefix in WRAPPER_PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def read_classification_checkpoint(path: str | Path) -> ClassificationCheckpoint:
    """Read a classification/ checkpoint (``checkpoint.pt``) or a bare state dict file."""
    from core.checkpoint import load_checkpoint
    path = Path(path)
    try:
        obj = load_checkpoint(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # pickle / zip errors come in many classes
        raise BackboneCheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: "
                                      f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        run = RunCheckpoint.from_dict(obj)  # the record classification.train writes
        return ClassificationCheckpoint(
            str(path), strip_wrapper_prefixes(run.model), run.model_name, run.model_kwargs, run.num_classes,
            run.dataset, run.epoch, run.epochs, run.config)
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return ClassificationCheckpoint(str(path), strip_wrapper_prefixes(obj))
    raise BackboneCheckpointError(f"{path} is neither a classification checkpoint "
                                  f"({{'model': state_dict, ...}}) nor a state dict")


def c4_key_map(keys: Sequence[str], layout: C4Layout) -> tuple[dict[str, str], dict[str, str]]:
    """The explicit mapping from classification keys to detector keys.

    Returns ``(mapping, ignored)``: ``mapping[src] = "backbone." + src`` for a trunk key,
    ``"roi_heads.box_head." + src`` for a head key; ``ignored[src] = reason`` for the classifier
    and BatchNorm step counters. Raises ``BackboneCheckpointError`` if any other key is left."""
    mapping, ignored, unclaimed = {}, {}, []
    for k in keys:
        if k.endswith("." + BN_COUNTER):
            ignored[k] = "BatchNorm step counter (the detector's BatchNorm is frozen)"
        elif _claims(layout.classifier, k):
            ignored[k] = "classifier (not part of the detector)"
        elif any(_claims(p, k) for p in layout.trunk):
            mapping[k] = TRUNK_PREFIX + k
        elif any(_claims(p, k) for p in layout.head):
            mapping[k] = HEAD_PREFIX + k
        else:
            unclaimed.append(k)
    if unclaimed:
        raise BackboneCheckpointError(f"{len(unclaimed)} checkpoint tensors belong to no part of a "
                                      f"{layout.arch} (e.g. {unclaimed[0]!r}): another architecture?")
    return mapping, ignored


@dataclass
class BackboneLoadReport:
    """``loaded[detector_key] = checkpoint_key`` for every backbone tensor of the detector;
    ``ignored[checkpoint_key] = reason`` for the checkpoint tensors deliberately not used."""
    source: str
    loaded: dict[str, str]
    ignored: dict[str, str]


def _backbone_keys(detector: nn.Module) -> list[str]:
    return [k for k in detector.state_dict() if k.startswith(TRUNK_PREFIX) or k.startswith(HEAD_PREFIX)]


def load_backbone_state(detector: nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                        source: str = "state dict", num_classes: int | None = None) -> BackboneLoadReport:
    """Copy a classification state dict into a detector built by ``detection.model.build_faster_rcnn``.

    Every detector tensor under ``backbone.`` and ``roi_heads.box_head.`` must receive exactly one
    checkpoint tensor of the same shape, and every checkpoint tensor must be loaded or ignored by
    rule (``c4_key_map``). ``num_classes``: when given, the checkpoint's classifier must have
    that many outputs (e.g. 1000 for an ImageNet backbone). Errors: ``BackboneCheckpointError``."""
    layout: C4Layout = detector.backbone.layout
    sd = strip_wrapper_prefixes(state_dict)
    mapping, ignored = c4_key_map(list(sd), layout)
    cls_w = sd.get(f"{layout.classifier}.weight")
    if cls_w is not None:
        if cls_w.ndim != 2 or cls_w.shape[1] != detector.backbone.head_channels:
            raise BackboneCheckpointError(
                f"{source}: classifier {layout.classifier}.weight has shape {tuple(cls_w.shape)}, a "
                f"{detector.backbone.backbone_name} backbone ends in {detector.backbone.head_channels} channels: another architecture?")
        if num_classes is not None and cls_w.shape[0] != num_classes:
            raise BackboneCheckpointError(f"{source}: class head has {cls_w.shape[0]} outputs "
                                          f"({layout.classifier}.weight), expected {num_classes}")
    elif num_classes is not None:
        raise BackboneCheckpointError(f"{source}: no classifier {layout.classifier}.weight to check "
                                      f"the expected {num_classes} classes against")
    own = detector.state_dict()
    targets = _backbone_keys(detector)
    missing = sorted(set(targets) - set(mapping.values()))
    extra = sorted(set(mapping.values()) - set(targets))
    shapes = [(d, tuple(sd[s].shape), tuple(own[d].shape)) for s, d in mapping.items()
              if d in own and sd[s].shape != own[d].shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} detector tensors get nothing (e.g. {missing[0]!r})")
        if extra:
            parts.append(f"{len(extra)} checkpoint tensors have no place (e.g. {extra[0]!r})")
        if shapes:
            d, a, b = shapes[0]
            parts.append(f"{len(shapes)} shapes differ (e.g. {d!r}: checkpoint {a}, detector {b})")
        raise BackboneCheckpointError(f"{source} does not fit the {detector.backbone.backbone_name} C4 "
                                      f"backbone: {'; '.join(parts)}")
    result = detector.load_state_dict({d: sd[s] for s, d in mapping.items()}, strict=False)
    assert not result.unexpected_keys and not set(result.missing_keys) & set(targets), result
    return BackboneLoadReport(source, {d: s for s, d in mapping.items()}, ignored)


def load_backbone_checkpoint(detector: nn.Module, checkpoint: str | Path | ClassificationCheckpoint,
                             num_classes: int | None = None) -> BackboneLoadReport:
    """``load_backbone_state`` from a checkpoint file (or one already read), after checking that
    the model named in its config (if any) is the detector's backbone. Its classifier must have
    ``num_classes`` outputs if given, else the class count the checkpoint records (if any)."""
    ckpt = checkpoint if isinstance(checkpoint, ClassificationCheckpoint) else read_classification_checkpoint(checkpoint)
    want = detector.backbone.backbone_name
    if ckpt.model is not None and ckpt.model != want:
        raise BackboneCheckpointError(f"checkpoint {ckpt.path} holds a {ckpt.model!r} model; the "
                                      f"detector's backbone is {want!r}")
    if ckpt.num_classes is not None and num_classes is not None and ckpt.num_classes != num_classes:
        raise BackboneCheckpointError(f"checkpoint {ckpt.path} was trained for {ckpt.num_classes} "
                                      f"classes, expected {num_classes}")
    return load_backbone_state(detector, ckpt.state_dict, source=f"checkpoint {ckpt.path}",
                               num_classes=num_classes if num_classes is not None else ckpt.num_classes)


# ---------------------------------------------------------------------------------------------
# detectron2


def to_detectron2_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, "object"]:
    """Rename a torchvision/timm-layout ResNet state dict (``timm/resnet*`` checkpoints) to
    detectron2's ResNet names, as detectron2's ``tools/convert-torchvision-to-d2.py`` does:
    ``conv1 -> stem.conv1``, ``bn1 -> stem.conv1.norm``, ``layerN -> res{N+1}``,
    ``bnK -> convK.norm``, ``downsample.0 -> shortcut``, ``downsample.1 -> shortcut.norm``.
    The classifier and ``num_batches_tracked`` are dropped. Values become numpy arrays (save with
    ``pickle`` as ``{"model": ..., "__author__": "torchvision", "matching_heuristics": True}``)."""
    out = {}
    for k, v in strip_wrapper_prefixes(state_dict).items():
        if k.startswith("fc.") or k.endswith("." + BN_COUNTER):
            continue
        if not k.startswith("layer"):
            k = "stem." + k
        for t in (1, 2, 3, 4):
            k = k.replace(f"layer{t}.", f"res{t + 1}.")
        for t in (1, 2, 3):
            k = k.replace(f"bn{t}.", f"conv{t}.norm.")
        k = k.replace("downsample.0.", "shortcut.").replace("downsample.1.", "shortcut.norm.")
        out[k] = v.detach().cpu().numpy()
    return out
