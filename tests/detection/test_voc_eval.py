"""detection.voc_eval against hand-worked cases and against torchmetrics' COCO-style mAP."""
import importlib.util
import math

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detection.voc import continuous_to_devkit
from detection.voc_eval import (ClassMatch, VOCEvaluator, box_iou_devkit, devkit_detections,
                                evaluate_detections, match_class, voc_ap)

CLS = ("aeroplane", "bicycle", "bird")
A = [10, 10, 50, 50]     # devkit boxes used below
B = [100, 100, 140, 160]


def gt(boxes, labels, difficult=None):
    return {"boxes": np.array(boxes, float).reshape(-1, 4), "labels": np.array(labels, np.int64),
            "difficult": np.zeros(len(labels), bool) if difficult is None else np.array(difficult, bool)}


def det(boxes, scores, labels):
    return {"boxes": np.array(boxes, float).reshape(-1, 4), "scores": np.array(scores, float),
            "labels": np.array(labels, np.int64)}


# ------------------------------------------------------------------ overlaps

def test_devkit_iou_uses_plus_one_widths():
    # 3x3-pixel box vs its top two rows: devkit areas 9 and 6 -> IoU 6/9 (> 0.5, a match);
    # without the +1 the same numbers give (2*1)/(2*2) = 0.5 (not > 0.5).
    assert box_iou_devkit([1, 1, 3, 2], [[1, 1, 3, 3]])[0] == pytest.approx(6 / 9)
    assert box_iou_devkit(A, [A, B]).tolist() == [1.0, 0.0]


def test_devkit_iou_of_converted_boxes_is_the_continuous_iou():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(40, 2, generator=g) * 100
    cont = torch.cat([xy, xy + 1 + torch.rand(40, 2, generator=g) * 60], 1).double()
    ref = box_iou(cont[:1], cont)[0].numpy()
    ours = box_iou_devkit(continuous_to_devkit(cont[:1])[0], continuous_to_devkit(cont))
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ hand-worked APs

def test_perfect_detections_give_ap_one():
    gts = [gt([A, B], [1, 2]), gt([A], [3])]
    dets = [det([A, B], [0.9, 0.8], [1, 2]), det([A], [0.7], [3])]
    for m07 in (True, False):
        r = evaluate_detections(dets, gts, CLS, use_07_metric=m07)
        # 11 * (1/11) in floating point is 1.0000000000000002, as in the official code
        assert r.ap == pytest.approx({"aeroplane": 1.0, "bicycle": 1.0, "bird": 1.0}) and r.map == pytest.approx(1.0)


def test_duplicate_detection_is_a_false_positive():
    # Two aeroplanes (images 0 and 1). Detections in score order: 0.9 on image 0 (TP), 0.8 the same
    # object again (duplicate: FP), 0.7 on image 1 (TP).
    # recall    = 1/2, 1/2, 2/2      precision = 1, 1/2, 2/3
    # 11-point: t = 0..0.5 (6 points) reach recall 1/2 with best precision 1; t = 0.6..1 (5 points)
    #           need recall 1, precision 2/3 -> (6 * 1 + 5 * 2/3) / 11 = 28/33.
    # area:     1/2 * 1 + 1/2 * 2/3 = 5/6.
    gts = [gt([A], [1]), gt([B], [1])]
    dets = [det([A, [11, 11, 50, 50]], [0.9, 0.8], [1, 1]), det([B], [0.7], [1])]
    m = match_class([(d["boxes"], d["scores"]) for d in dets], [(g["boxes"], g["difficult"]) for g in gts])
    assert m.tp.tolist() == [1, 0, 1] and m.fp.tolist() == [0, 1, 0] and m.npos == 2
    assert evaluate_detections(dets, gts, CLS).ap["aeroplane"] == pytest.approx(28 / 33)
    assert evaluate_detections(dets, gts, CLS, use_07_metric=False).ap["aeroplane"] == pytest.approx(5 / 6)
    # without the duplicate: AP 1
    dets1 = [det([A], [0.9], [1]), det([B], [0.7], [1])]
    assert evaluate_detections(dets1, gts, CLS).ap["aeroplane"] == pytest.approx(1.0)


def test_detection_of_a_difficult_object_is_ignored():
    # Image 0: a difficult aeroplane at A (two detections on it, scores 0.95 and 0.9) and a normal
    # one at B (0.8). Ignored detections are neither TP nor FP: AP 1. Were they FPs (the object
    # not annotated at all), precision would be 0, 0, 1/3 at recall 0, 0, 1: 11-point AP 1/3.
    gts = [gt([A, B], [1, 1], difficult=[True, False])]
    dets = [det([A, A, B], [0.95, 0.9, 0.8], [1, 1, 1])]
    m = match_class([(dets[0]["boxes"], dets[0]["scores"])], [(gts[0]["boxes"], gts[0]["difficult"])])
    assert m.tp.tolist() == [0, 0, 1] and m.fp.tolist() == [0, 0, 0] and m.npos == 1
    assert evaluate_detections(dets, gts, CLS).ap["aeroplane"] == pytest.approx(1.0)
    assert evaluate_detections(dets, [gt([B], [1])], CLS).ap["aeroplane"] == pytest.approx(1 / 3)


def test_class_without_ground_truth_is_nan_and_left_out_of_map():
    # bicycle: detections but no object; bird: only a difficult object (npos = 0); aeroplane: AP 1.
    gts = [gt([A, B], [1, 3], difficult=[False, True])]
    dets = [det([A, B, [0, 0, 5, 5]], [0.9, 0.8, 0.7], [1, 3, 2])]
    r = evaluate_detections(dets, gts, CLS)
    assert r.ap["aeroplane"] == pytest.approx(1.0) and math.isnan(r.ap["bicycle"]) and math.isnan(r.ap["bird"])
    assert r.map == pytest.approx(1.0) and r.npos == {"aeroplane": 1, "bicycle": 0, "bird": 0}
    # D-ECE: 0.9 a hit, 0.7 a miss (the bird detection of a difficult object is left out):
    # 100 * (|1 - 0.9| + |0 - 0.7|) / 2
    assert r.to_log() == {"map": 100.0, "ap": {"aeroplane": 100.0, "bicycle": None, "bird": None},
                          "dece": pytest.approx(40.0)}
    # a class with ground truth but no detection has AP 0 and counts
    r = evaluate_detections([det([], [], [])], [gt([A, B], [1, 2])], CLS)
    assert r.ap["aeroplane"] == 0.0 and r.ap["bicycle"] == 0.0 and r.map == 0.0
    assert math.isnan(evaluate_detections([det([], [], [])], [gt([], [])], CLS).map)


def test_11_point_thresholds_are_the_official_arange():
    # np.arange(0, 1.1, 0.1)[3] is 0.30000000000000004 > 3/10: recall 0.3 reaches 3 points only.
    assert voc_ap(np.array([0.3]), np.array([1.0])) == pytest.approx(3 / 11)
    assert voc_ap(np.array([0.5]), np.array([1.0])) == pytest.approx(6 / 11)
    assert voc_ap(np.array([0.5]), np.array([1.0]), use_07_metric=False) == pytest.approx(0.5)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0


def test_iou_threshold_is_strict():
    # IoU exactly 1/2 (devkit areas 20 and 10, one inside the other) is not a match.
    g, d = [1, 1, 4, 5], [1, 1, 2, 5]
    assert box_iou_devkit(d, [g])[0] == 0.5
    assert evaluate_detections([det([d], [1.0], [1])], [gt([g], [1])], CLS).ap["aeroplane"] == 0.0


def test_labels_are_checked_and_evaluator_accumulates():
    with pytest.raises(ValueError, match="1-based"):
        evaluate_detections([det([A], [0.9], [0])], [gt([A], [1])], CLS)
    with pytest.raises(ValueError, match="images"):
        evaluate_detections([], [gt([A], [1])], CLS)
    ev = VOCEvaluator(CLS, use_07_metric=False)
    gts = [gt([A], [1]), gt([B], [1])]
    dets = [det([A, [11, 11, 50, 50]], [0.9, 0.8], [1, 1]), det([B], [0.7], [1])]
    for d, g in zip(dets, gts):
        ev.add({k: torch.as_tensor(v) for k, v in d.items()}, g)
    assert ev.compute().ap["aeroplane"] == pytest.approx(5 / 6)


def test_devkit_detections_undoes_dataset_scale():
    out = {"boxes": torch.tensor([[9.0, 19.0, 50.0, 100.0]]), "scores": torch.tensor([0.5]),
           "labels": torch.tensor([2])}
    d = devkit_detections(out, scale=(0.5, 2.0))
    np.testing.assert_allclose(d["boxes"], [[19.0, 10.5, 100.0, 50.0]])
    assert d["labels"].tolist() == [2]


# ------------------------------------------------------------------ cross-check with torchmetrics

def _coco_backend():
    for module, name in (("pycocotools", "pycocotools"), ("faster_coco_eval", "faster_coco_eval")):
        if importlib.util.find_spec(module) is not None:
            return name
    return None


def _disjoint(rng, n, size=200.0):
    out = []
    while len(out) < n:
        w, h = rng.uniform(10, 60, 2)
        x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
        b = np.round(np.array([x, y, x + w, y + h]) * 8) / 8
        if all(b[2] <= o[0] or o[2] <= b[0] or b[3] <= o[1] or o[3] <= b[1] for o in out):
            out.append(b)
    return np.array(out).reshape(-1, 4)


def _random_case(rng, n_images=6, n_classes=3, per_class=4):
    """Continuous boxes on a 1/8-pixel grid (exact in float32): each of the first n_classes - 1
    classes has exactly per_class objects, the last has none (only false detections).
    Objects of an image are disjoint; detections are jittered copies (some relabelled, some
    repeated) plus random boxes; scores are distinct."""
    labels = [[] for _ in range(n_images)]
    for c in range(1, n_classes):
        for _ in range(per_class):
            labels[rng.integers(n_images)].append(c)
    gts, dets = [], []
    for lab in labels:
        boxes = _disjoint(rng, len(lab))
        db, dl = [], []
        for b, l in zip(boxes, lab):
            for _ in range(rng.integers(0, 3)):
                db.append(np.round((b + rng.normal(0, 4, 4)) * 8) / 8)
                dl.append(l if rng.random() < 0.85 else rng.integers(1, n_classes + 1))
        for _ in range(rng.integers(0, 3)):
            x, y, w, h = rng.uniform(0, 150), rng.uniform(0, 150), rng.uniform(10, 50), rng.uniform(10, 50)
            db.append(np.round(np.array([x, y, x + w, y + h]) * 8) / 8)
            dl.append(rng.integers(1, n_classes + 1))
        db = np.array(db).reshape(-1, 4)
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
        gts.append({"boxes": boxes, "labels": np.array(lab, np.int64)})
        dets.append({"boxes": db, "labels": np.array(dl, np.int64)})
    scores = (rng.permutation(sum(len(d["labels"]) for d in dets)) + 1).astype(np.float32) / 1024
    k = 0
    for d in dets:
        d["scores"] = scores[k:k + len(d["labels"])].astype(np.float64)
        k += len(d["labels"])
    return gts, dets


def test_matches_torchmetrics_where_the_conventions_coincide():
    """torchmetrics' MeanAveragePrecision (COCO evaluation) equals the VOC evaluation when:
    * iou_thresholds=[0.5] and no object is difficult (COCO has no 'difficult'; its crowd
      regions behave differently);
    * boxes: VOC gets devkit boxes, torchmetrics the continuous ones (continuous_to_devkit
      makes the devkit +1 IoU the continuous IoU COCO computes);
    * the objects of an image are disjoint, so no detection overlaps two objects by > 0.5: then
      VOC's "best object, FP if taken" and COCO's "best untaken object" choose alike; distinct
      scores, IoUs never exactly 0.5 (VOC needs > 0.5, COCO >= 0.5);
    * fewer than 100 detections per image and class (COCO's maxDets);
    * recall thresholds: COCO's precision at threshold t is the envelope at the first recall
      >= t, which is VOC07's max(prec[rec >= t]); so rec_thresholds = np.arange(0, 1.1, 0.1)
      gives the 11-point metric, and, when every class has the same N objects, rec_thresholds =
      [k/N for k = 1..N] gives the area metric (it sums 1/N times the envelope at each new TP).
    A class with no ground truth is nan here, -1 there: compared as "undefined" on both sides."""
    backend = _coco_backend()
    if backend is None:
        pytest.skip("torchmetrics' MeanAveragePrecision needs pycocotools or faster-coco-eval "
                    "(pip install pycocotools); neither is installed")
    from torchmetrics.detection import MeanAveragePrecision
    names = ("aeroplane", "bicycle", "bird", "boat")
    rng = np.random.default_rng(0)
    per_class = 4
    for _ in range(12):
        gts, dets = _random_case(rng, n_classes=len(names), per_class=per_class)
        for b in [d["boxes"] for d in dets]:  # keep clear of the threshold (never hit in practice)
            for g in gts:
                assert not np.any(np.isclose(box_iou(torch.tensor(b), torch.tensor(g["boxes"])).numpy(), 0.5))
        preds = [{"boxes": torch.tensor(d["boxes"], dtype=torch.float32),
                  "scores": torch.tensor(d["scores"], dtype=torch.float32),
                  "labels": torch.tensor(d["labels"])} for d in dets]
        target = [{"boxes": torch.tensor(g["boxes"], dtype=torch.float32), "labels": torch.tensor(g["labels"])}
                  for g in gts]
        voc_dets = [{**d, "boxes": continuous_to_devkit(d["boxes"])} for d in dets]
        voc_gts = [{**g, "boxes": continuous_to_devkit(g["boxes"]), "difficult": np.zeros(len(g["labels"]), bool)}
                   for g in gts]
        for m07, rec_thresholds in ((True, np.arange(0.0, 1.1, 0.1).tolist()),
                                    (False, [k / per_class for k in range(1, per_class + 1)])):
            metric = MeanAveragePrecision(box_format="xyxy", iou_thresholds=[0.5], rec_thresholds=rec_thresholds,
                                          max_detection_thresholds=[1, 10, 100], class_metrics=True,
                                          backend=backend)
            metric.update(preds, target)
            res = metric.compute()
            theirs = dict(zip(res["classes"].tolist(), res["map_per_class"].tolist()))
            ours = evaluate_detections(voc_dets, voc_gts, names, use_07_metric=m07)
            for k, name in enumerate(names, start=1):
                t = theirs.get(k, -1.0)
                if math.isnan(ours.ap[name]):
                    assert t == -1.0
                else:
                    assert ours.ap[name] == pytest.approx(t, abs=1e-6), (name, m07)
            assert ours.map == pytest.approx(res["map"].item(), abs=1e-6)


def test_detection_ece_hand_worked_and_score_one_in_the_last_bin():
    """Scores 1.0 (a hit), 1.0 (a duplicate: a miss), 0.55 (a miss) and 0.0 (a hit on the other
    object): bins (0.9, 1] precision 1/2 at mean score 1.0, (0.5, 0.6] 0 at 0.55, [0, 0.1] 1 at 0.
    D-ECE = 100 * (2 * 0.5 + 1 * 0.55 + 1 * 1.0) / 4. A score of exactly 1.0 must land in the
    last bin, 0.0 in the first (torchmetrics issue #3510)."""
    dets = [det([A, A, [0, 0, 5, 5], B], [1.0, 1.0, 0.55, 0.0], [1, 1, 1, 1])]
    r = evaluate_detections(dets, [gt([A, B], [1, 1])], CLS)
    assert r.dece == pytest.approx(100 * (2 * 0.5 + 0.55 + 1.0) / 4)
    assert math.isnan(evaluate_detections([det([], [], [])], [gt([A], [1])], CLS).dece)


def test_detection_ece_against_netcal():
    """netcal's detection ECE (confidence only, 10 bins) on the same matched detections."""
    pytest.importorskip("netcal")
    from netcal.metrics import ECE
    from detection.voc_eval import detection_ece
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.05, 0.95, 500)
    hits = rng.uniform(size=500) < scores ** 2
    m = ClassMatch(tp=hits.astype(float), fp=(~hits).astype(float), scores=scores, npos=int(hits.sum()))
    theirs = ECE(bins=10, detection=True).measure(scores[:, None], hits.astype(int))
    assert detection_ece([m]) == pytest.approx(100 * theirs, abs=1e-9)
