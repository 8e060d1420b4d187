"""Post-hoc temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks",
Sec. 4.2): one scalar T > 0 divides every logit, softmax(z / T), fitted by minimising the NLL on
data the model did not train on. T leaves the argmax (top-1, top-5) unchanged and changes the
confidences, so every calibration metric is recomputed after it.

Logits go in, never probabilities: dividing log-probabilities by T is the same map (log_softmax
differs from the logits by a per-row constant), but scaling softmax outputs themselves is a known
pitfall that raises ECE.

Where the fit data come from (the `ts_fit` label logs and tables carry):
- "holdout": T fitted on the run's holdout split (`data.holdout_fraction`), applied to the test set;
- "unused-train-<N>": T fitted on N training images outside the run's training subset (a run that
  trained on `data.train_subset` images without a holdout; classification.evaluate
  --calibration-images N), applied to the test set;
- "<split>-2fold": the scored split has no disjoint held-out data (a run without a holdout scores
  the test set; a holdout run scores its holdout): 2-fold cross-fitting on that split. Samples at
  even positions form fold 0, odd positions fold 1 (fixed and deterministic; alternation also
  halves every class of a class-sorted file); each fold is scaled with the T fitted on the other,
  so no sample is scored with a temperature fitted on itself. The reported T is the geometric
  mean of the two (both are kept).

Everything is numpy in float64, a chunk of rows at a time; torch is not needed.
"""
from __future__ import annotations

import math

import numpy as np

from .metrics import CHUNK, to_numpy, classification_metrics

# log T is searched in [log 0.05, log 20]: temperatures of trained networks lie near 1-3 (Guo et
# al. Table 3 and the S1 of their code); a fit at a bound means the data want a more extreme T
# (e.g. a set the model separates perfectly drives T -> 0) and is reported as it is.
T_BOUNDS = (0.05, 20.0)
LOG_T_TOL = 1e-7  # golden-section stops when the bracket on log T is narrower: T to ~1e-7 relative
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _logits_labels(logits, labels):
    z, y = to_numpy(logits), to_numpy(labels).astype(np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.shape[0] or z.shape[0] == 0:
        raise ValueError(f"expected logits (N, K) with N >= 1 and labels (N,), got {z.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must be in [0, {z.shape[1]}), got {y.min()}..{y.max()}")
    return z, y


def log_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """(N, K) float64 log softmax(logits / temperature), a chunk of rows at a time."""
    z = to_numpy(logits)
    out = np.empty(z.shape, dtype=np.float64)
    for s in range(0, len(z), CHUNK):
        c = z[s:s + CHUNK].astype(np.float64) / temperature
        c -= c.max(axis=1, keepdims=True)
        out[s:s + CHUNK] = c - np.log(np.exp(c).sum(axis=1, keepdims=True))
    return out


def temperature_nll(logits, labels, temperature: float) -> float:
    """Mean -log softmax(logits / T)[label] in nats, float64."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z, y = _logits_labels(logits, labels)
    total = 0.0
    for s in range(0, len(y), CHUNK):
        c = z[s:s + CHUNK].astype(np.float64) / temperature
        m = c.max(axis=1)
        lse = m + np.log(np.exp(c - m[:, None]).sum(axis=1))
        total += float((lse - c[np.arange(len(c)), y[s:s + CHUNK]]).sum())
    return total / len(y)


def fit_temperature(logits, labels, bounds=T_BOUNDS, tol: float = LOG_T_TOL) -> float:
    """The T in `bounds` minimising temperature_nll(logits, labels, T).

    Method: golden-section search on log T over [log lo, log hi] until the bracket is narrower
    than `tol` (default 1e-7, i.e. T to about 1e-7 relative; ~40 NLL evaluations). The NLL is
    convex in 1/T (a log-sum-exp of terms linear in 1/T, minus a linear term), hence unimodal in
    log T, so the search finds the global minimum within the bounds. Logits (N, K), labels (N,)."""
    lo, hi = bounds
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < lo < hi, got {bounds}")
    z, y = _logits_labels(logits, labels)
    f = lambda log_t: temperature_nll(z, y, math.exp(log_t))  # noqa: E731
    a, b = math.log(lo), math.log(hi)
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:  # the minimum lies in [a, d]
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(c)
        else:         # in [c, b]
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = f(d)
    return math.exp((a + b) / 2)


def cross_fit_folds(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The two folds of 2-fold cross-fitting: even positions, odd positions."""
    if n < 2:
        raise ValueError(f"2-fold cross-fitting needs at least 2 samples, got {n}")
    idx = np.arange(n)
    return idx[0::2], idx[1::2]


def cross_fit_log_probs(logits, labels) -> tuple[np.ndarray, list[float]]:
    """((N, K) float64 log-probabilities after 2-fold cross-fitted temperature scaling, [T_0, T_1]):
    fold i (cross_fit_folds) is scaled with T_i, the temperature fitted on the other fold."""
    z, y = _logits_labels(logits, labels)
    folds = cross_fit_folds(len(y))
    out = np.empty(z.shape, dtype=np.float64)
    temps = []
    for i, rows in enumerate(folds):
        other = folds[1 - i]
        t = fit_temperature(z[other], y[other])
        out[rows] = log_softmax(z[rows], t)
        temps.append(t)
    return out, temps


def temperature_scaled(logits, labels, n_bins: int = 10, fit_logits=None, fit_labels=None,
                       split: str = "test", fit_name: str = "holdout") -> dict:
    """Temperature-scaled evaluation of `logits` (N, K) with `labels` (N,) of the scored `split`.

    With fit_logits / fit_labels (a held-out split disjoint from the scored one and from the
    training data) T is fitted there ("ts_fit": `fit_name`); without them by 2-fold cross-fitting
    on the scored data ("ts_fit": f"{split}-2fold"). Returns {"temperature", "fold_temperatures"
    (cross-fitting only), "ts_fit", "split", "metrics" (every metric of
    core.metrics.classification_metrics with extra=True, after scaling), "reliability"}."""
    z, y = _logits_labels(logits, labels)
    if (fit_logits is None) != (fit_labels is None):
        raise ValueError("fit_logits and fit_labels go together")
    if fit_logits is not None:
        t = fit_temperature(fit_logits, fit_labels)
        logp, out = log_softmax(z, t), {"temperature": t, "ts_fit": fit_name}
    else:
        logp, temps = cross_fit_log_probs(z, y)
        out = {"temperature": math.exp(sum(math.log(t) for t in temps) / len(temps)),
               "fold_temperatures": temps, "ts_fit": f"{split}-2fold"}
    # A fit set without errors (or without right predictions) has no finite NLL optimum: T runs
    # to a bound of the search. Said in the record, since scaling then helps little or hurts.
    fitted = out.get("fold_temperatures", [out["temperature"]])
    out["at_bound"] = any(min(abs(math.log(t / b)) for b in T_BOUNDS) < 1e-5 for t in fitted)
    probs = np.exp(logp)
    metrics, bins = classification_metrics(probs, y, n_bins, logp[np.arange(len(y)), y], extra=True)
    return {**out, "split": split, "metrics": metrics, "reliability": bins}
