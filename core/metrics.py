"""Classification metrics, following the official PS-KD code's definitions (which the paper's
tables use). Inputs are (N, K) probabilities (torch or numpy) and (N,) int labels; everything is
computed in float64, a chunk of rows at a time, so 1M x 100 inputs never make a float64 copy of
the whole matrix.

Names of the metrics as they appear in run logs live in METRIC_NAMES; reports import them.
"""
from __future__ import annotations


import numpy as np

# Run-log keys, with their direction and units. Reports import these.
METRIC_NAMES = {
    "top1_err": "Top-1 error (%)",
    "top5_err": "Top-5 error (%)",
    "nll": "NLL (nats)",
    "ece": "ECE (%)",
    "aurc": "AURC (x1000)",
    "e_aurc": "E-AURC (x1000)",
    "conf": "Mean confidence (%)",
    # Beyond the paper (later papers report these): Brier score, 15-bin ECE, adaptive
    # (equal-mass) ECE, classwise ECE.
    "brier": "Brier score",
    "ece15": "ECE, 15 bins (%)",
    "adaece": "Adaptive ECE (%)",
    "cwece": "Classwise ECE (%)",
    # Bin-free calibration error (Blasiok & Nakkiran 2023, the relplot package) and the area under
    # the generalized risk-coverage curve (Traub et al. 2024).
    "smece": "SmoothECE (%)",
    "augrc": "AUGRC (x1000)",
}

CHUNK = 1 << 16


def to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor (torch is not imported here:
        return x.detach().cpu().numpy()             # reports read logs without loading it)
    return np.asarray(x)


def _check(probs, labels):
    p, y = to_numpy(probs), to_numpy(labels).astype(np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"expected probs (N, K) and labels (N,), got {p.shape} and {y.shape}")
    if p.shape[0] == 0:
        raise ValueError("metrics need at least one sample")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must be in [0, {p.shape[1]}), got {y.min()}..{y.max()}")
    return p, y


def confidence_and_correct(probs, labels):
    """(N,) float64 max probability, (N,) bool argmax == label (first index wins ties)."""
    p, y = _check(probs, labels)
    conf = np.empty(len(y), dtype=np.float64)
    correct = np.empty(len(y), dtype=bool)
    for s in range(0, len(y), CHUNK):
        c = p[s:s + CHUNK]  # argmax in the input's precision: the float64 cast changes no order
        pred = c.argmax(axis=1)
        conf[s:s + CHUNK] = c[np.arange(len(c)), pred].astype(np.float64)
        correct[s:s + CHUNK] = pred == y[s:s + CHUNK]
    return conf, correct


def top_k_error(logits_or_probs, labels, k: int = 1) -> float:
    """Percent of samples whose label is not among the k largest scores (softmax-invariant).

    The label is a hit when fewer than k classes score strictly higher than it: a class tied
    with the label's score never pushes it out (a sort would break such ties arbitrarily).
    Counting is also faster than a top-k sort (BENCHMARKS.md, the metrics timing)."""
    p, y = _check(logits_or_probs, labels)
    if not 1 <= k <= p.shape[1]:
        raise ValueError(f"k must be in 1..{p.shape[1]}, got {k}")
    hits = 0
    for s in range(0, len(y), CHUNK):
        c = p[s:s + CHUNK]
        label_score = c[np.arange(len(c)), y[s:s + CHUNK]]
        hits += int(((c > label_score[:, None]).sum(axis=1) < k).sum())
    return 100.0 * (1.0 - hits / len(y))


def negative_log_likelihood(probs, labels, label_log_probs=None) -> float:
    """Mean -log p(label) in nats. With `label_log_probs` ((N,) log p(label), e.g. from
    log_softmax of the logits) those are used as they are: exact however small p is. From
    probabilities alone, a probability below float32's smallest normal number (1.2e-38, the
    precision softmax outputs have) is clamped to it (-log = 87.3), so a label probability that
    underflowed to 0 in float32 costs 87 nats, not float64's 708 or infinity."""
    p, y = _check(probs, labels)
    if label_log_probs is not None:
        lp = to_numpy(label_log_probs).astype(np.float64).reshape(-1)
        if lp.shape != y.shape:
            raise ValueError(f"label_log_probs must be (N,) = {y.shape}, got {lp.shape}")
        return float(-lp.mean())
    total = 0.0
    tiny = float(np.finfo(np.float32).tiny)
    for s in range(0, len(y), CHUNK):
        c = p[s:s + CHUNK]
        pt = c[np.arange(len(c)), y[s:s + CHUNK]].astype(np.float64)
        total += float(-np.log(np.maximum(pt, tiny)).sum())
    return total / len(y)


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    # Bins are (lo, hi]: a confidence exactly on an edge belongs to the bin below it.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)


def reliability_bins(probs, labels, n_bins: int = 10) -> dict:
    """Per-bin data of a reliability diagram: edges (n_bins+1), count, mean confidence and
    accuracy per bin (0.0 for empty bins, whose count is 0)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return _bins(*confidence_and_correct(probs, labels), n_bins)


def _bins(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> dict:
    b = _bin_index(conf, n_bins)
    count = np.bincount(b, minlength=n_bins)
    conf_sum = np.bincount(b, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(b, weights=correct.astype(np.float64), minlength=n_bins)
    nz = np.maximum(count, 1)
    return {
        "edges": np.linspace(0.0, 1.0, n_bins + 1).tolist(),
        "count": count.astype(int).tolist(),
        "conf": (conf_sum / nz).tolist(),
        "acc": (acc_sum / nz).tolist(),
    }


def ece_from_bins(bins: dict) -> float:
    """ECE (%) = 100 * sum_b |B_b| |acc_b - conf_b| / n, from reliability_bins' output."""
    count = np.asarray(bins["count"], dtype=np.float64)
    gap = np.abs(np.asarray(bins["acc"]) - np.asarray(bins["conf"]))
    return float(100.0 * (count * gap).sum() / count.sum())


def binned_calibration_error(confidences, hits, n_bins: int = 10) -> float:
    """ECE (%) of any confidences (N,) in [0, 1] against 0/1 outcomes (N,) (a hit: the prediction
    was right), in n_bins equal-width bins (lo, hi] as reliability_bins: 100 * sum_b |B_b| *
    |mean hit_b - mean conf_b| / N. Detection's D-ECE (Kueppers et al. 2020) is this with a
    detector's scores and whether each detection matched an object."""
    conf = to_numpy(confidences).astype(np.float64).reshape(-1)
    hit = to_numpy(hits).astype(bool).reshape(-1)
    if conf.shape != hit.shape or len(conf) == 0:
        raise ValueError(f"expected N >= 1 confidences and as many hits, got {conf.shape} and {hit.shape}")
    if n_bins < 1 or conf.min() < 0 or conf.max() > 1:
        raise ValueError(f"need n_bins >= 1 and confidences in [0, 1], got {n_bins}, {conf.min()}..{conf.max()}")
    return ece_from_bins(_bins(conf, hit, n_bins))


def expected_calibration_error(probs, labels, n_bins: int = 10) -> float:
    """ECE in percent with n_bins equal-width bins (lo, hi] (Appendix A.1)."""
    return ece_from_bins(reliability_bins(probs, labels, n_bins))


def brier_score(probs, labels) -> float:
    """Multiclass Brier score (Brier 1950): mean over samples of sum_k (p_k - 1[y = k])^2, in [0, 2]."""
    p, y = _check(probs, labels)
    total = 0.0
    for s in range(0, len(y), CHUNK):
        c = p[s:s + CHUNK].astype(np.float64)
        c[np.arange(len(c)), y[s:s + CHUNK]] -= 1.0
        total += float((c * c).sum())
    return total / len(y)


def adaptive_ece(probs, labels, n_bins: int = 15) -> float:
    """Adaptive ECE (%) (Nguyen & O'Connor 2015; Mukhoti et al. 2020): n_bins bins holding equal
    numbers of samples (np.array_split of the confidence-sorted samples; ties in dataset order)."""
    return _adaptive_ece(*confidence_and_correct(probs, labels), n_bins)


def _adaptive_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    order = np.lexsort((np.arange(len(conf)), conf))
    gaps = [abs(float(correct[b].mean()) - float(conf[b].mean())) * len(b)
            for b in np.array_split(order, min(n_bins, len(order))) if len(b)]
    return 100.0 * sum(gaps) / len(conf)


def classwise_ece(probs, labels, n_bins: int = 15) -> float:
    """Classwise ECE (%) (Kull et al. 2019): for each class k, the ECE of p_k against 1[y = k]
    over all samples in n_bins equal-width bins (lo, hi], averaged over the K classes."""
    p, y = _check(probs, labels)
    k = p.shape[1]
    count = np.zeros((k, n_bins))
    conf_sum = np.zeros((k, n_bins))
    hit_sum = np.zeros((k, n_bins))
    cls = np.arange(k)
    for s in range(0, len(y), CHUNK):
        c = p[s:s + CHUNK].astype(np.float64)
        b = _bin_index(c.reshape(-1), n_bins).reshape(c.shape)
        flat = (cls[None, :] * n_bins + b).reshape(-1)
        hit = (y[s:s + CHUNK, None] == cls[None, :]).astype(np.float64).reshape(-1)
        count += np.bincount(flat, minlength=k * n_bins).reshape(k, n_bins)
        conf_sum += np.bincount(flat, weights=c.reshape(-1), minlength=k * n_bins).reshape(k, n_bins)
        hit_sum += np.bincount(flat, weights=hit, minlength=k * n_bins).reshape(k, n_bins)
    return float(100.0 * np.abs(hit_sum - conf_sum).sum() / (len(y) * k))


def _risk_curve(probs, labels) -> np.ndarray:
    return _risk(*confidence_and_correct(probs, labels))


def _risk(conf: np.ndarray, correct: np.ndarray) -> np.ndarray:
    # Descending confidence; ties keep dataset order, so the number is deterministic. This
    # differs from the official code (utils/metric.py): np.argsort(conf)[::-1] is an unstable
    # sort (quicksort) reversed, over a test loader that is shuffled, so its tie order is
    # arbitrary. Only ties between a right and a wrong prediction change the value.
    order = np.lexsort((np.arange(len(conf)), -conf))
    errors = np.cumsum(~correct[order])
    return errors / np.arange(1, len(conf) + 1)


def aurc(probs, labels) -> float:
    """Area under the risk-coverage curve, x1000: mean over k of (errors among the k most
    confident) / k. The paper's header says x10^2 but its values are x10^3 (official code)."""
    return 1000.0 * float(_risk_curve(probs, labels).mean())


def _optimal_aurc(n: int, errors: int) -> float:
    """AURC of an oracle that ranks the `errors` wrong predictions of n last, exactly as the
    official code (utils/metric.py): (1/n) * sum_{i=1..m} i / (n - m + i). (The continuous
    r + (1 - r) ln(1 - r) of Geifman et al. 2019 approximates it, 0.13 x10^3 off at n = 1000.)"""
    i = np.arange(1, errors + 1, dtype=np.float64)
    return float((i / (n - errors + i)).sum() / n)


def e_aurc(probs, labels) -> float:
    """Excess AURC (x1000): AURC minus the exact AURC of an oracle that ranks all errors last
    (_optimal_aurc, the official code's formula; 0 for a perfect ranking)."""
    curve = _risk_curve(probs, labels)
    return 1000.0 * (float(curve.mean()) - _optimal_aurc(len(curve), int(round(curve[-1] * len(curve)))))


def augrc(probs, labels) -> float:
    """Area under the generalized risk-coverage curve (Traub et al. 2024), x1000: the mean over
    coverage k/N, k = 1..N, of the generalized risk (errors among the k most confident) / N, i.e.
    (1/N) sum_k (k/N) risk_k with AURC's ranking (descending confidence, ties in dataset order).
    Unlike AURC it counts an error by the fraction of all samples it costs, so the few most
    confident samples do not dominate; a random ranking gives err * (1 + 1/N) / 2."""
    return _augrc(_risk_curve(probs, labels))


def _augrc(curve: np.ndarray) -> float:
    n = len(curve)  # curve: AURC's risk_k, k = 1..N
    return 1000.0 * float((curve * np.arange(1, n + 1)).sum()) / (n * n)


def smooth_ece(probs, labels) -> float:
    """SmoothECE (%) of the top-label confidence (Blasiok & Nakkiran 2023, "Smooth ECE: Principled
    Reliability Diagrams via Kernel Smoothing"): relplot.smECE(confidence, correct), the kernel-
    smoothed calibration error with its bandwidth chosen automatically, x100. No bins, so no bin
    edges; relplot is the implementation (imported on use: it is slow to import)."""
    return _smooth_ece(*confidence_and_correct(probs, labels))


def _smooth_ece(conf: np.ndarray, correct: np.ndarray) -> float:
    try:
        import relplot
    except ImportError as e:
        # A machine without relplot (a bare GPU image) still trains and evaluates: SmoothECE is
        # then NaN (null in the run log, a dash in the tables), said once.
        import warnings
        warnings.warn(f"SmoothECE needs the relplot package ({e}); recorded as NaN", stacklevel=2)
        return float("nan")
    return 100.0 * float(relplot.smECE(conf, correct.astype(np.float64)))


def classification_metrics(probs, labels, n_bins: int = 10, label_log_probs=None,
                           extra: bool = False) -> tuple[dict, dict]:
    """All Table-1 metrics at once: ({top1_err, top5_err, nll, ece, aurc, e_aurc, conf}, bins).
    conf is the mean max probability (%): above 100 - top1_err means over-confident. extra=True
    adds brier, ece15, adaece, cwece, smece and augrc."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p, y = _check(probs, labels)
    conf, correct = confidence_and_correct(p, y)  # once, for the bins and the risk curve
    bins, curve = _bins(conf, correct, n_bins), _risk(conf, correct)
    m = {
        "top1_err": 100.0 * (1.0 - float(correct.mean())),
        "top5_err": top_k_error(p, y, min(5, p.shape[1])),
        "nll": negative_log_likelihood(p, y, label_log_probs),
        "ece": ece_from_bins(bins),
        "aurc": 1000.0 * float(curve.mean()),
        "e_aurc": 1000.0 * (float(curve.mean()) - _optimal_aurc(len(y), int((~correct).sum()))),
        "conf": 100.0 * float(conf.mean()),
    }
    if extra:  # beyond the paper; classwise ECE touches all N x K entries, so it is asked for
        m.update(brier=brier_score(p, y), ece15=ece_from_bins(_bins(conf, correct, 15)),
                 adaece=_adaptive_ece(conf, correct, 15), cwece=classwise_ece(p, y, 15),
                 smece=_smooth_ece(conf, correct), augrc=_augrc(curve))
    return m, bins
