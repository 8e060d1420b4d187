import math

import numpy as np
import pytest
import torch

from core.metrics import (aurc, classification_metrics, confidence_and_correct, e_aurc,
                          expected_calibration_error, negative_log_likelihood, reliability_bins,
                          top_k_error)


def _probs(n=500, k=10, seed=0, temp=2.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * temp
    labels = torch.randint(0, k, (n,), generator=g)
    # make the model better than chance so every bin gets both hits and misses
    logits[torch.arange(n), labels] += 1.5
    return torch.softmax(logits, 1), labels


def test_top_k_hand_case():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.4, 0.35, 0.25], [0.3, 0.3, 0.4]])
    y = torch.tensor([0, 1, 1, 2])
    assert top_k_error(p, y, 1) == pytest.approx(50.0)  # rows 1 and 2 wrong
    assert top_k_error(p, y, 2) == pytest.approx(0.0)
    assert top_k_error(np.log(p.numpy()), y.numpy(), 1) == pytest.approx(50.0)  # logits work too
    with pytest.raises(ValueError):
        top_k_error(p, y, 4)


def test_nll_hand_case():
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.0, 1.0]])
    y = np.array([0, 1, 0])
    tiny = np.finfo(np.float32).tiny  # the documented clamp: float32, the precision of softmax outputs
    expected = (-math.log(0.5) - math.log(0.1) - math.log(tiny)) / 3
    assert negative_log_likelihood(p, y) == pytest.approx(expected, rel=1e-12)


def test_ece_hand_case_with_edges_and_ties():
    # n_bins=4: bins (0, .25], (.25, .5], (.5, .75], (.75, 1]; 0.5 and 0.75 sit exactly on edges.
    p = np.array([
        [0.5, 0.5],     # conf 0.5 (a tie: argmax picks class 0) -> bin 1; label 0 -> correct
        [0.75, 0.25],   # conf 0.75 on an edge -> bin 2; label 1 -> wrong
        [0.25, 0.75],   # conf 0.75 -> bin 2; label 1 -> correct
        [1.0, 0.0],     # conf 1.0 -> bin 3; correct
        [0.9, 0.1],     # conf 0.9 -> bin 3; wrong
    ])
    y = np.array([0, 1, 1, 0, 1])
    bins = reliability_bins(p, y, n_bins=4)
    assert bins["count"] == [0, 1, 2, 2]
    assert bins["conf"] == pytest.approx([0.0, 0.5, 0.75, 0.95])
    assert bins["acc"] == pytest.approx([0.0, 1.0, 0.5, 0.5])
    expected = 100 * (1 * 0.5 + 2 * 0.25 + 2 * 0.45) / 5
    assert expected_calibration_error(p, y, n_bins=4) == pytest.approx(expected)


def test_ece_matches_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    for seed in range(3):
        p, y = _probs(seed=seed)
        ref = tm.multiclass_calibration_error(p, y, num_classes=10, n_bins=10, norm="l1").item() * 100
        # torchmetrics bins [lo, hi) and we bin (lo, hi]; random confidences never sit on an edge.
        assert expected_calibration_error(p, y, 10) == pytest.approx(ref, abs=1e-4)


def _slow_aurc(p, y):
    conf = [max(row) for row in p.tolist()]
    pred = [row.index(max(row)) for row in p.tolist()]
    items = sorted(zip(conf, [int(a == b) for a, b in zip(pred, y.tolist())]), key=lambda t: t[0], reverse=True)
    risk, out = 0, []
    for i, (_, c) in enumerate(items):
        risk += 1 - c
        out.append(risk / (i + 1))
    # E-AURC's oracle, built rather than taken from a formula: the same predictions ranked with
    # every correct one first, and the mean of that ranking's risk curve.
    oracle = sorted((c for _, c in items), reverse=True)
    risk, best = 0, []
    for i, c in enumerate(oracle):
        risk += 1 - c
        best.append(risk / (i + 1))
    return 1000 * sum(out) / len(out), 1000 * (sum(out) - sum(best)) / len(out)


def test_aurc_against_slow_reference():
    for seed in range(3):
        p, y = _probs(n=300, seed=seed)
        a, e = _slow_aurc(p.double(), y)
        assert aurc(p, y) == pytest.approx(a, rel=1e-9)
        assert e_aurc(p, y) == pytest.approx(e, rel=1e-9)


def test_aurc_ties_deterministic_dataset_order():
    # Two equal confidences, first wrong then right: dataset order decides (a stable sort;
    # the official code's np.argsort(...)[::-1] leaves this order arbitrary).
    p = np.array([[0.6, 0.4], [0.6, 0.4], [0.9, 0.1]])
    assert aurc(p, np.array([1, 0, 0])) == pytest.approx(1000 * (0 + 0.5 + 1 / 3) / 3)
    assert aurc(p, np.array([0, 1, 0])) == pytest.approx(1000 * (0 + 0 + 1 / 3) / 3)


def test_perfect_ranking_has_small_e_aurc_and_all_wrong():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    assert aurc(p, np.array([1, 1, 1, 1])) == pytest.approx(1000.0)
    assert e_aurc(p, np.array([1, 1, 1, 1])) == pytest.approx(0.0)


def test_all_in_one_agrees_and_torch_numpy_same():
    p, y = _probs()
    m, bins = classification_metrics(p, y)
    assert m["top1_err"] == top_k_error(p, y, 1)
    assert m["ece"] == pytest.approx(expected_calibration_error(p.numpy(), y.numpy()))
    assert m["aurc"] == pytest.approx(aurc(p, y))
    assert m["nll"] == pytest.approx(torch.nn.functional.nll_loss(p.double().log(), y).item())
    assert sum(bins["count"]) == len(y)


def test_large_input_is_chunked():
    # 1M x 100 float32 is 400 MB; a float64 copy of it would be another 800 MB. The chunked code
    # must not make one: check peak extra memory stays far below that.
    import tracemalloc
    n, k = 1_000_000, 100
    p = np.full((n, k), 1.0 / k, dtype=np.float32)
    p[:, 0] += 0.01
    y = np.zeros(n, dtype=np.int64)
    tracemalloc.start()
    conf, correct = confidence_and_correct(p, y)
    ece = expected_calibration_error(p, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert correct.all() and ece >= 0
    assert peak < 200e6, f"peak {peak / 1e6:.0f} MB"


def test_bad_input():
    with pytest.raises(ValueError):
        aurc(np.ones((3, 2)) / 2, np.array([0, 2, 1]))
    with pytest.raises(ValueError):
        expected_calibration_error(np.ones((3, 2)) / 2, np.array([0, 1]))


def test_e_aurc_is_zero_for_a_perfect_ranking_with_errors():
    # errors ranked last: AURC equals the oracle's, so E-AURC is exactly 0 (the continuous
    # approximation the code used before left 1000 * 0.0119 here)
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.55, 0.45]])
    y = np.array([0, 0, 0, 1, 1])
    assert e_aurc(p, y) == pytest.approx(0.0, abs=1e-12)
    assert classification_metrics(p, y)[0]["e_aurc"] == pytest.approx(0.0, abs=1e-12)


def test_nll_underflow_and_log_probs():
    from core.metrics import negative_log_likelihood
    p = np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32)
    y = np.array([1, 0])
    # the first label's probability underflowed to 0 in float32: clamped at float32's tiny
    tiny = float(np.finfo(np.float32).tiny)
    assert negative_log_likelihood(p, y) == pytest.approx((-math.log(tiny) + math.log(2)) / 2)
    # with the log-probabilities the caller has from the logits, exact
    assert negative_log_likelihood(p, y, np.array([-150.0, math.log(0.5)])) == pytest.approx((150 + math.log(2)) / 2)


def test_brier_against_sklearn_and_a_loop():
    from sklearn.metrics import brier_score_loss

    from core.metrics import brier_score
    rng = np.random.default_rng(0)
    p1 = rng.random(200)
    p = np.stack([1 - p1, p1], 1)
    y = rng.integers(0, 2, 200)
    # two classes: the multiclass sum over both classes is twice sklearn's binary Brier score
    assert brier_score(p, y) == pytest.approx(2 * brier_score_loss(y, p1), rel=1e-12)
    pk, yk = _probs(n=100, seed=3)
    loop = sum(sum((float(pk[i, k]) - (k == int(yk[i]))) ** 2 for k in range(pk.shape[1]))
               for i in range(len(yk))) / len(yk)
    assert brier_score(pk, yk) == pytest.approx(loop, rel=1e-6)


def test_ece15_against_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    p, y = _probs(seed=5)
    ref = tm.multiclass_calibration_error(p, y, num_classes=10, n_bins=15, norm="l1").item() * 100
    assert classification_metrics(p, y, extra=True)[0]["ece15"] == pytest.approx(ref, abs=1e-4)


def test_adaptive_and_classwise_ece_hand_cases():
    from core.metrics import adaptive_ece, classwise_ece
    # 4 samples, 2 equal-mass bins: sorted confidences [.6 (wrong), .7 (right)] and
    # [.8 (right), .9 (wrong)] -> bin gaps |.5 - .65| and |.5 - .85| -> (0.15 * 2 + 0.35 * 2) / 4
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3]])
    y = np.array([1, 1, 0, 0])
    assert adaptive_ece(p, y, n_bins=2) == pytest.approx(100 * (0.15 * 2 + 0.35 * 2) / 4)
    # classwise, 2 bins (0, .5], (.5, 1]: class 0 has p0 = .9,.6,.8,.7 all in bin 2, hits 0,0,1,1
    # -> |2 - 3.0| = 1.0; class 1 has p1 = .1,.4,.2,.3 all in bin 1, hits 1,1,0,0 -> |2 - 1.0| = 1.0
    assert classwise_ece(p, y, n_bins=2) == pytest.approx(100 * (1.0 + 1.0) / (4 * 2))


def test_classwise_ece_against_a_loop():
    from core.metrics import classwise_ece
    p, y = _probs(n=300, seed=7)
    p, y = p.double().numpy(), y.numpy()
    edges = np.linspace(0, 1, 16)
    total = 0.0
    for k in range(p.shape[1]):
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (p[:, k] > lo) & (p[:, k] <= hi)
            if m.any():
                total += abs((y[m] == k).sum() - p[m, k].sum())
    assert classwise_ece(p, y, 15) == pytest.approx(100 * total / (len(y) * p.shape[1]), rel=1e-9)
