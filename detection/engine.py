"""What a detection run does, step by step (torchvision's references/detection keeps these in its
engine.py beside a train.py that sets the run up): the VOC data of a config, the C4 Faster R-CNN with
its backbone checkpoint, one training epoch, VOC07 evaluation. detection.evaluate uses these too,
without the training script."""
from __future__ import annotations

import math

import torch
from torch.utils.data import Subset
from tqdm import tqdm

from core.run import TrainingDiverged

from .backbone import read_classification_checkpoint
from .model import backbone_normalization, build_faster_rcnn, faster_rcnn_from_checkpoint
from .voc import FlippedCopies, VOCDetection
from .voc_eval import VOCEvaluator, devkit_detections


def build_data(cfg):
    """(train, test) VOCDetection sets; a VOC problem is one line (VOCFormatError / FileNotFoundError)."""
    kw = dict(classes=cfg.data.classes)
    flip_prob = cfg.data.flip_prob if cfg.data.flip == "random" else 0.0  # copy: FlippedCopies mirrors
    train = VOCDetection(cfg.data.root, cfg.data.train, flip_prob=flip_prob, seed=cfg.seed,
                         skip_difficult=True, **kw)  # py-faster-rcnn trains without difficult objects
    test = VOCDetection(cfg.data.root, cfg.data.test, **kw)
    return train, test


def epoch_data(cfg, train_set):
    """What one epoch passes over: the first ``data.train_subset`` images (all when 0), and with
    ``data.flip=copy`` each of them twice, as is and mirrored (``voc.FlippedCopies``)."""
    n = cfg.data.train_subset
    data = Subset(train_set, range(min(n, len(train_set)))) if n else train_set
    return FlippedCopies(data) if cfg.data.flip == "copy" else data


def param_groups(model, weight_decay: float, bias_decay: bool = True, bias_lr_mult: float = 1.0) -> list[dict]:
    """SGD parameter groups of ``model``'s trainable parameters. One group when biases are
    treated like weights; else the biases (names ending in ``bias``, faster-rcnn.pytorch's rule)
    in a second group without weight decay (``bias_decay`` false) and with ``lr_mult`` =
    ``bias_lr_mult`` (the loop sets each group's lr to lr x its ``lr_mult``)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if bias_decay and bias_lr_mult == 1.0:
        return [{"params": [p for _, p in named], "weight_decay": weight_decay, "lr_mult": 1.0}]
    weights = [p for n, p in named if not n.endswith("bias")]
    biases = [p for n, p in named if n.endswith("bias")]
    return [{"params": weights, "weight_decay": weight_decay, "lr_mult": 1.0},
            {"params": biases, "weight_decay": weight_decay if bias_decay else 0.0, "lr_mult": bias_lr_mult}]


def evaluation_subset(cfg, test_set):
    """The images a run evaluates: the first data.test_subset of the test split (all when 0)."""
    return Subset(test_set, range(min(cfg.data.test_subset, len(test_set)))) if cfg.data.test_subset else test_set


def build_model(cfg, num_classes: int):
    """The C4 Faster R-CNN, backbone loaded from its classification checkpoint (or untrained)."""
    m = cfg.model
    kw = dict(min_size=m.min_size, max_size=m.max_size, anchor_sizes=tuple(m.anchor_sizes),
              trainable_stages=m.trainable_stages, frozen_bn=m.frozen_bn,
              roi_output_size=m.roi_output_size, roi_sampling_ratio=m.roi_sampling_ratio)
    if m.model_kwargs:
        kw["model_kwargs"] = dict(m.model_kwargs)
    if m.backbone_checkpoint:
        ckpt = read_classification_checkpoint(m.backbone_checkpoint)
        model, report = faster_rcnn_from_checkpoint(ckpt, num_classes, backbone_classes=m.backbone_classes or None,
                                                    **({"backbone": m.backbone} if m.backbone else {}), **kw)
        # the weights of the classification run's last epoch (its only checkpoint): recorded so
        # that a backbone taken from an unfinished run shows (backbone_epoch < backbone_epochs)
        return model, {"backbone": m.backbone or ckpt.model, "backbone_loaded": len(report.loaded),
                       "backbone_ignored": sorted(report.ignored), "backbone_epoch": ckpt.epoch,
                       "backbone_epochs": ckpt.epochs}
    mean, std = backbone_normalization(None)
    return build_faster_rcnn(m.backbone, num_classes, image_mean=mean, image_std=std, **kw), \
        {"backbone": m.backbone, "backbone_loaded": 0, "backbone_ignored": []}


@torch.no_grad()
def evaluate(model, dataset, device, use_07_metric: bool = True, progress: bool = False, limit: int = 0):
    """VOC AP per class and mAP over `dataset` (a VOCDetection or a Subset of one)."""
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    indices = dataset.indices if isinstance(dataset, Subset) else range(len(dataset))
    model.eval()
    ev = VOCEvaluator(base.classes, use_07_metric=use_07_metric)
    for i in tqdm(indices, desc="eval", leave=False, disable=not progress):
        image, target = base[i]
        out = model([image.to(device)])[0]
        ev.add(devkit_detections(out, target["scale"]), base.annotations[i])
    return ev.compute()


def train_epoch(cfg, model, opt, loader, device, epoch: int, progress: bool, estimate=None) -> float:
    """One pass; returns the mean of the summed Faster R-CNN losses over the epoch's batches.
    estimate: a core.notices.CpuCostEstimate timing this epoch's first steps (printed once)."""
    model.train()
    total, n = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not progress, dynamic_ncols=True)
    for step, (images, targets) in enumerate(bar):
        images = [im.to(device) for im in images]
        targets = [{k: v.to(device) for k, v in t.items() if k in ("boxes", "labels")} for t in targets]
        losses = model(images, targets)
        loss = sum(losses.values())
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(f"training loss is {value} at epoch {epoch}, step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total, n = total + value, n + 1
        if estimate is not None and (notice := estimate.step(step)):
            tqdm.write(notice)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
    return total / max(n, 1)
