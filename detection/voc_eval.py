"""PASCAL VOC detection evaluation: per-class AP and mAP at IoU > 0.5 with the semantics of the
devkit and of py-faster-rcnn's ``voc_eval.py`` (the paper's Tables 3 and 5 are VOC2007 test).

* **Boxes** are devkit boxes, 1-based inclusive ``(xmin, ymin, xmax, ymax)``; overlaps use the
  devkit's +1 widths (``box_iou_devkit``). Predictions of a torchvision model are continuous
  boxes: convert with ``detection.voc.continuous_to_devkit`` (``devkit_detections`` does it),
  and the +1 IoU then equals the continuous IoU exactly (see ``detection/voc.py``).
* **Matching**, per class: detections of all images sorted by score, highest first (a stable
  sort: ties keep input order; the official ``np.argsort`` does not promise an order for ties).
  Each takes the ground truth of its image with the largest IoU; if that IoU is > ``iou_threshold``
  (strictly) and the object is ``difficult``, the detection is neither a true nor a false
  positive; if it is not difficult and not yet taken it is a TP; if already taken (a duplicate)
  an FP; an IoU <= threshold is an FP. The object with the largest IoU is chosen among *all*
  objects of that class in the image, taken or not (as the devkit does; COCO would fall back to
  the next unmatched object).
* **Recall** is over the non-difficult objects (``npos``). **AP**: the VOC2007 11-point metric by
  default (``use_07_metric=True``, the paper's: mean over t in ``np.arange(0, 1.1, 0.1)`` of the
  best precision at recall >= t; note ``np.arange`` makes t = 0.30000000000000004, so a recall of
  exactly 3/10 does not reach it, as in the official code), or the area under the monotone
  precision envelope (VOC2010+ "all-point" metric, ``use_07_metric=False``).
* **A class with no non-difficult ground truth** (``npos == 0``) has no defined recall: its AP is
  ``nan`` (the official code divides by zero there) and it is left out of the mAP, which is the
  mean over the classes that have ground truth (COCO, and so torchmetrics, does the same with -1).
  ``VOCEvalResult.to_log`` writes such an AP as ``null``.

* **D-ECE** (beyond the paper): the detection expected calibration error of the detector's scores
  (Kueppers et al. 2020, netcal's ``ECE(detection=True)`` with confidence only): every detection
  of every class, matched as above (a TP is a hit, an FP a miss; a detection of a difficult object
  is left out), in 10 equal-width confidence bins (lo, hi]; per bin |precision - mean score|,
  weighted by the bin's share of the detections (``core.metrics.binned_calibration_error``).
  ``nan`` without detections.

Results are fractions in [0, 1]; ``to_log`` gives percentages, as the run logs and Tables 3 and 5
hold them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from core.metrics import binned_calibration_error

from .voc import VOC_CLASSES, continuous_to_devkit

IOU_THRESHOLD = 0.5  # "mAP (IoU > 0.5)", Table 3
DECE_BINS = 10


def box_iou_devkit(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one devkit box (4,) with (M, 4) devkit boxes, the devkit's +1 convention:
    ``w = xmax - xmin + 1`` for each box and for the intersection. Returns (M,) float64."""
    box, boxes = np.asarray(box, dtype=np.float64), np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    iw = np.maximum(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]) + 1.0, 0.0)
    inter = iw * ih
    union = ((box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
             + (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0) - inter)
    return inter / union


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = True) -> float:
    """AP from a recall/precision curve (detections in score order), the official ``voc_ap``.
    11-point: ``sum_t max(prec[rec >= t]) / 11`` over ``t in np.arange(0, 1.1, 0.1)`` (0 where no
    recall reaches t). Area: the area under the envelope ``p(r) = max_{r' >= r} prec(r')``,
    summed where recall changes. Empty curves give 0."""
    rec, prec = np.asarray(rec, dtype=np.float64), np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # envelope: max precision at recall >= r
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@dataclass
class ClassMatch:
    """Matching of one class: ``tp``/``fp`` (D,) 0/1 in score order (a detection ignored for a
    difficult object has both 0), ``scores`` (D,) sorted, ``npos`` non-difficult objects."""
    tp: np.ndarray
    fp: np.ndarray
    scores: np.ndarray
    npos: int

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative (recall, precision), the official definitions (nan recall when npos = 0)."""
        tp, fp = np.cumsum(self.tp), np.cumsum(self.fp)
        with np.errstate(divide="ignore", invalid="ignore"):
            rec = tp / float(self.npos) if self.npos else np.full_like(tp, np.nan)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        return rec, prec


def match_class(detections: Sequence[tuple[np.ndarray, np.ndarray]],
                ground_truth: Sequence[tuple[np.ndarray, np.ndarray]],
                iou_threshold: float = IOU_THRESHOLD) -> ClassMatch:
    """Match one class's detections to its ground truth over a set of images.

    detections[i] = (boxes (D_i, 4) devkit, scores (D_i,)) in image i;
    ground_truth[i] = (boxes (G_i, 4) devkit, difficult (G_i,) bool) of the same class in image i.
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} images of detections but {len(ground_truth)} of ground truth")
    img = np.concatenate([np.full(len(s), i, dtype=np.int64) for i, (_, s) in enumerate(detections)] or [np.zeros(0, np.int64)])
    boxes = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for b, _ in detections] or [np.zeros((0, 4))])
    scores = np.concatenate([np.asarray(s, np.float64).reshape(-1) for _, s in detections] or [np.zeros(0)])
    order = np.argsort(-scores, kind="stable")
    taken = [np.zeros(len(d), dtype=bool) for _, d in ground_truth]
    npos = int(sum(int((~np.asarray(d, dtype=bool)).sum()) for _, d in ground_truth))
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for k, j in enumerate(order):
        gt_boxes, gt_difficult = ground_truth[img[j]]
        gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        if len(gt_boxes) == 0:
            fp[k] = 1.0
            continue
        ious = box_iou_devkit(boxes[j], gt_boxes)
        m = int(np.argmax(ious))
        if ious[m] > iou_threshold:
            if bool(np.asarray(gt_difficult)[m]):
                continue  # a detection of a difficult object: neither TP nor FP
            if not taken[img[j]][m]:
                tp[k], taken[img[j]][m] = 1.0, True
            else:
                fp[k] = 1.0  # a duplicate of an object already detected
        else:
            fp[k] = 1.0
    return ClassMatch(tp=tp, fp=fp, scores=scores[order], npos=npos)


def average_precision(match: ClassMatch, use_07_metric: bool = True) -> float:
    """AP of one class; nan when it has no non-difficult ground truth (module docstring)."""
    if match.npos == 0:
        return math.nan
    rec, prec = match.precision_recall()
    return voc_ap(rec, prec, use_07_metric)


def detection_ece(matches: Sequence[ClassMatch], n_bins: int = DECE_BINS) -> float:
    """D-ECE (%) over the detections of all classes' matches (module docstring); nan when no
    detection counts (none, or only detections of difficult objects)."""
    scores = np.concatenate([m.scores for m in matches] or [np.zeros(0)])
    tp = np.concatenate([m.tp for m in matches] or [np.zeros(0)])
    fp = np.concatenate([m.fp for m in matches] or [np.zeros(0)])
    counted = (tp + fp) > 0
    if not counted.any():
        return math.nan
    return binned_calibration_error(scores[counted], tp[counted] > 0, n_bins)


@dataclass
class VOCEvalResult:
    """``ap[c]`` per class (nan: no ground truth), ``map`` over the classes with ground truth,
    ``npos[c]`` non-difficult objects, ``num_detections[c]``. Fractions in [0, 1]; ``dece`` the
    D-ECE in percent."""
    ap: dict[str, float]
    map: float
    npos: dict[str, int]
    num_detections: dict[str, int]
    use_07_metric: bool = True
    iou_threshold: float = IOU_THRESHOLD
    dece: float = math.nan

    def to_log(self) -> dict:
        """What a detection run's ``final`` line holds (reports read ``map``, ``ap`` and
        ``dece``): percentages, rounded to 4 decimals; a class without ground truth is ``None``."""
        pct = lambda v: None if math.isnan(v) else round(100.0 * v, 4)  # noqa: E731
        return {"map": pct(self.map), "ap": {c: pct(v) for c, v in self.ap.items()},
                "dece": None if math.isnan(self.dece) else round(self.dece, 4)}


def _np(x, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def evaluate_detections(detections: Sequence[Mapping], ground_truth: Sequence[Mapping],
                        classes: Sequence[str] = VOC_CLASSES, iou_threshold: float = IOU_THRESHOLD,
                        use_07_metric: bool = True) -> VOCEvalResult:
    """Per-class AP and mAP over a set of images.

    detections[i]: ``{"boxes": (D, 4) devkit, "scores": (D,), "labels": (D,) 1-based}`` for image i;
    ground_truth[i]: ``{"boxes": (G, 4) devkit, "labels": (G,) 1-based, "difficult": (G,) bool}``
    (a ``detection.voc.VOCAnnotation`` works too). numpy arrays or tensors.
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} images of detections but {len(ground_truth)} of ground truth")
    get = lambda d, k: getattr(d, k) if hasattr(d, k) else d[k]  # noqa: E731
    dets = [(_np(get(d, "boxes"), np.float64).reshape(-1, 4), _np(get(d, "scores"), np.float64).reshape(-1),
             _np(get(d, "labels"), np.int64).reshape(-1)) for d in detections]
    gts = [(_np(get(g, "boxes"), np.float64).reshape(-1, 4), _np(get(g, "labels"), np.int64).reshape(-1),
            _np(get(g, "difficult"), bool).reshape(-1)) for g in ground_truth]
    for kind, items in (("detection", [d[2] for d in dets]), ("ground-truth", [g[1] for g in gts])):
        bad = [int(x) for lab in items for x in lab if not 1 <= x <= len(classes)]
        if bad:
            raise ValueError(f"{kind} label {bad[0]} is outside 1..{len(classes)} "
                             f"(labels are 1-based, 0 = background)")
    ap, npos, ndet, matches = {}, {}, {}, []
    for k, name in enumerate(classes, start=1):
        m = match_class([(b[l == k], s[l == k]) for b, s, l in dets],
                        [(b[l == k], d[l == k]) for b, l, d in gts], iou_threshold)
        ap[name], npos[name], ndet[name] = average_precision(m, use_07_metric), m.npos, len(m.scores)
        matches.append(m)
    defined = [v for v in ap.values() if not math.isnan(v)]
    mean = float(np.mean(defined)) if defined else math.nan
    return VOCEvalResult(ap=ap, map=mean, npos=npos, num_detections=ndet,
                         use_07_metric=use_07_metric, iou_threshold=iou_threshold,
                         dece=detection_ece(matches))


def devkit_detections(output: Mapping[str, torch.Tensor], scale=(1.0, 1.0)) -> dict[str, np.ndarray]:
    """A torchvision detector's output for one image (continuous ``boxes``, ``scores``,
    ``labels``) -> devkit boxes in the annotation's pixels: divide by the dataset's
    ``target["scale"]`` (scale_x, scale_y), then ``continuous_to_devkit``."""
    boxes = output["boxes"].detach().cpu().double()
    sx, sy = (float(v) for v in scale)
    boxes = boxes / torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
    return {"boxes": continuous_to_devkit(boxes), "scores": _np(output["scores"], np.float64),
            "labels": _np(output["labels"], np.int64)}


@dataclass
class VOCEvaluator:
    """Accumulate one image at a time (an evaluation loop), then ``compute()``:
    ``add(detections, ground_truth)`` takes the arguments of ``evaluate_detections`` for one image."""
    classes: Sequence[str] = VOC_CLASSES
    iou_threshold: float = IOU_THRESHOLD
    use_07_metric: bool = True
    detections: list = field(default_factory=list)
    ground_truth: list = field(default_factory=list)

    def add(self, detections: Mapping, ground_truth) -> None:
        self.detections.append(detections)
        self.ground_truth.append(ground_truth)

    def compute(self) -> VOCEvalResult:
        return evaluate_detections(self.detections, self.ground_truth, self.classes,
                                   self.iou_threshold, self.use_07_metric)
