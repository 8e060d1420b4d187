"""Faster R-CNN (torchvision.models.detection.FasterRCNN) with a C4 ResNet backbone from
``detection.backbone``: trunk -> RPN -> RoIAlign 14x14 on the trunk's features -> last ResNet
stage + global average pooling -> class scores and box deltas (``roi_output_size=7``: RoIAlign
7x7, faster-rcnn.pytorch's ResNet setting). No weights are downloaded: the backbone is loaded from
a classification/ checkpoint, the RPN and predictor start untrained.

Defaults are the original ResNet Faster R-CNN recipe on VOC (py-faster-rcnn; the paper's batch-1,
lr 1e-3 fine-tuning schedule is of that family, it states no other setting): shorter side
600, longer at most 1000; anchors 128/256/512 at ratios 0.5/1/2 on the stride-16 map
(py-faster-rcnn's scales 8/16/32 x 16); 2000 RPN proposals after NMS in training, 300 at test;
128 RoIs per image in training (TRAIN.BATCH_SIZE); test NMS 0.3, score threshold 0.05, at most
100 detections per image (test_net). See detection/README.md for why C4 and this scale.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from .backbone import (BackboneCheckpointError, BackboneLoadReport, ClassificationCheckpoint, build_c4_backbone,
                       freeze_stages, load_backbone_checkpoint, read_classification_checkpoint)

# Keyword arguments of torchvision's FasterRCNN that differ from its defaults (its defaults are
# detectron2-like FPN settings); anything here can be overridden through build_faster_rcnn(**kw).
PY_FASTER_RCNN = {
    "rpn_pre_nms_top_n_train": 12000, "rpn_post_nms_top_n_train": 2000,  # TRAIN.RPN_PRE/POST_NMS_TOP_N
    "rpn_pre_nms_top_n_test": 6000, "rpn_post_nms_top_n_test": 300,      # TEST.RPN_PRE/POST_NMS_TOP_N
    "box_batch_size_per_image": 128,                                     # TRAIN.BATCH_SIZE (RoIs)
    "box_nms_thresh": 0.3, "box_score_thresh": 0.05, "box_detections_per_img": 100,  # TEST.NMS, test_net
}

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def backbone_normalization(dataset: str | None, normalization: str = "own"
                           ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the backbone was trained with, from the checkpoint's ``data.name`` and
    ``data.normalization`` (the values classification/data.py normalises with); ImageNet's when
    the dataset is not recorded."""
    if dataset in (None, "imagenet"):
        return IMAGENET_MEAN, IMAGENET_STD
    from classification.data import cifar_normalization
    known = {"cifar10": 10, "cifar10_npz": 10, "cifar100": 100}
    n = known.get(dataset)
    if n is None:
        raise BackboneCheckpointError(f"no image statistics known for a backbone trained on {dataset!r}; "
                                      f"pass image_mean and image_std (known: imagenet, {', '.join(known)})")
    return cifar_normalization(n, normalization)


def build_faster_rcnn(backbone: str, num_classes: int, *, model_kwargs: Mapping | None = None,
                      min_size: int | Sequence[int] = 600, max_size: int = 1000,
                      anchor_sizes: Sequence[int] = (128, 256, 512),
                      aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), roi_output_size: int = 14,
                      roi_sampling_ratio: int = 2,
                      trainable_stages: int = 3, frozen_bn: bool = True, image_mean: Sequence[float] = IMAGENET_MEAN,
                      image_std: Sequence[float] = IMAGENET_STD, **kwargs: Any) -> FasterRCNN:
    """An untrained C4 Faster R-CNN over classification model ``backbone`` (e.g.
    ``"timm/resnet152"``, or ``"resnet20"`` for a small CPU model).

    ``num_classes``: object classes, background excluded (20 for VOC; the predictor has
    ``num_classes + 1`` outputs, label 0 = background). ``min_size``/``max_size``: the model's own
    resize (GeneralizedRCNNTransform), inputs are float RGB in [0, 1] normalised with
    ``image_mean``/``image_std`` (use ``backbone_normalization``). ``anchor_sizes`` in input
    pixels after that resize. ``trainable_stages``: see ``detection.backbone.freeze_stages``.
    ``roi_output_size``/``roi_sampling_ratio``: RoIAlign's output side and samples per bin (0:
    adaptive): 14 / 2 is torchvision's and detectron2's C4, the last stage then runs on 7x7;
    7 / 0 is faster-rcnn.pytorch's ResNet setting (its last stage runs on 4x4).
    ``frozen_bn``: BatchNorm as FrozenBatchNorm2d (default; the paper trains with one image per
    batch) or left as trainable BatchNorm2d (only for batches of several images).
    ``kwargs`` override ``PY_FASTER_RCNN`` and any other FasterRCNN argument.

    The backbone's modules are ``model.backbone`` (trunk) and ``model.roi_heads.box_head`` (last
    stage); load weights with ``detection.backbone.load_backbone_checkpoint``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (object classes, background excluded), got {num_classes}")
    c4 = build_c4_backbone(backbone, model_kwargs, frozen_bn=frozen_bn)
    freeze_stages(c4.trunk, c4.head, c4.layout, trainable_stages)
    anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=(tuple(aspect_ratios),))
    # the trunk's single map is named "0"
    roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=roi_output_size,
                                  sampling_ratio=roi_sampling_ratio)
    min_size = tuple(min_size) if isinstance(min_size, Sequence) else min_size
    return FasterRCNN(c4.trunk, num_classes=None, min_size=min_size, max_size=max_size,
                      image_mean=list(image_mean), image_std=list(image_std),
                      rpn_anchor_generator=anchors, box_roi_pool=roi_pool, box_head=c4.head,
                      box_predictor=FastRCNNPredictor(c4.head_channels, num_classes + 1),
                      **{**PY_FASTER_RCNN, **kwargs})


def faster_rcnn_from_checkpoint(path: str | Path | ClassificationCheckpoint, num_classes: int, *,
                                backbone_classes: int | None = None, **kwargs: Any
                                ) -> tuple[FasterRCNN, BackboneLoadReport]:
    """Build ``build_faster_rcnn`` for the model a classification/ checkpoint (a path, or one
    already read) names in its config
    (``backbone=`` overrides, and is required for a bare state dict) and load its weights.
    Normalisation defaults to the checkpoint's training data (``backbone_normalization``).
    ``backbone_classes``: the class count the checkpoint's classifier must have (1000 for the
    paper's ImageNet backbones); by default the count the checkpoint records."""
    ckpt = path if isinstance(path, ClassificationCheckpoint) else read_classification_checkpoint(path)
    name = kwargs.pop("backbone", None) or ckpt.model
    if name is None:  # (ckpt.path: `path` may be the checkpoint itself, whose repr holds every tensor)
        raise BackboneCheckpointError(f"checkpoint {ckpt.path} does not record its model; pass backbone=<model name> "
                                      f"(model.backbone in a detection config)")
    if "image_mean" not in kwargs and "image_std" not in kwargs:
        kwargs["image_mean"], kwargs["image_std"] = backbone_normalization(
            ckpt.dataset, (ckpt.config.get("data") or {}).get("normalization", "own"))
    kwargs.setdefault("model_kwargs", ckpt.model_kwargs)
    model = build_faster_rcnn(name, num_classes, **kwargs)
    return model, load_backbone_checkpoint(model, ckpt, num_classes=backbone_classes)
