"""core.calibration (temperature scaling) and the metrics it recomputes: SmoothECE, AUGRC, and the
confidence-1.0 / 0.0 bin edges of every binned metric."""
import importlib.util
import math

import numpy as np
import pytest
import torch

from core.calibration import (T_BOUNDS, cross_fit_folds, cross_fit_log_probs, fit_temperature,
                              log_softmax, temperature_nll, temperature_scaled)
from core.metrics import (adaptive_ece, augrc, aurc, binned_calibration_error, classification_metrics, classwise_ece,
                          expected_calibration_error, reliability_bins, smooth_ece)


def _logits(n=400, k=5, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g) * scale
    y = torch.randint(0, k, (n,), generator=g)
    z[torch.arange(n), y] += 2.0  # better than chance, over-confident at this scale
    return z.double().numpy(), y.numpy()


# ----------------------------------------------------------------------------- temperature fit
def test_nll_at_t1_is_plain_cross_entropy():
    z, y = _logits()
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(y)).item()
    assert temperature_nll(z, y, 1.0) == pytest.approx(ref, rel=1e-12)
    assert np.allclose(log_softmax(z, 1.0), torch.log_softmax(torch.from_numpy(z), 1).numpy())


def test_two_class_optimum_is_known_analytically():
    """Two classes, every sample predicts class 0 with logit margin d, a fraction q is right.
    NLL(T) = q log(1 + e^{-d/T}) + (1 - q) log(1 + e^{d/T}) is minimal where the predicted
    probability sigmoid(d/T) equals q: T* = d / logit(q)."""
    d, q = 2.0, 0.75  # 3 right, 1 wrong
    z = np.array([[d, 0.0], [d, 0.0], [d, 0.0], [d, 0.0]])
    y = np.array([0, 0, 0, 1])
    expected = d / math.log(q / (1 - q))
    assert fit_temperature(z, y) == pytest.approx(expected, rel=1e-6)


def test_fit_matches_a_brute_force_grid():
    z, y = _logits(seed=1)
    grid = np.exp(np.linspace(math.log(0.2), math.log(10), 4001))
    best = grid[np.argmin([temperature_nll(z, y, t) for t in grid])]
    t = fit_temperature(z, y)
    assert t == pytest.approx(best, rel=2e-3)  # grid step: 0.1% in T
    assert temperature_nll(z, y, t) <= min(temperature_nll(z, y, best), temperature_nll(z, y, 1.0)) + 1e-12


def test_calibrated_logits_fit_t_near_one_and_scaling_invariance():
    """Labels drawn from softmax(z) itself: the NLL-optimal T is 1 up to sampling noise. Logits
    multiplied by c fit T * c (the fit sees only z / T)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20000, 4)) * 2
    p = np.exp(log_softmax(z))
    y = (rng.uniform(size=(len(z), 1)) > p.cumsum(1)).sum(1)
    t = fit_temperature(z, y)
    assert t == pytest.approx(1.0, abs=0.03)
    for c in (0.5, 3.0):
        assert fit_temperature(z * c, y) == pytest.approx(t * c, rel=1e-6)


def test_fit_against_scipy_bounded_brent():
    """An independent optimiser: scipy's bounded Brent on the same NLL written with torch."""
    opt = pytest.importorskip("scipy.optimize")
    z, y = _logits(seed=2)
    zt, yt = torch.from_numpy(z), torch.from_numpy(y)
    f = lambda log_t: torch.nn.functional.cross_entropy(zt / math.exp(log_t), yt).item()  # noqa: E731
    ref = math.exp(opt.minimize_scalar(f, bounds=tuple(map(math.log, T_BOUNDS)), method="bounded",
                                       options={"xatol": 1e-9}).x)
    assert fit_temperature(z, y) == pytest.approx(ref, rel=1e-5)


def test_fit_against_netcal_temperature_scaling():
    """netcal's TemperatureScaling (the 'mle' fit) takes probabilities and works on their logs:
    log_softmax differs from the logits by a per-row constant, so its temperature is the same."""
    pytest.importorskip("netcal")
    from netcal.scaling import TemperatureScaling
    z, y = _logits(n=600, seed=3)
    ts = TemperatureScaling()
    ts.fit(np.exp(log_softmax(z)), y)
    ours = fit_temperature(z, y)
    theirs = np.exp(log_softmax(z, ours))
    assert ts.transform(np.exp(log_softmax(z))) == pytest.approx(theirs, abs=1e-3)


def test_fit_refuses_bad_input():
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1, 1]), bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match="temperature"):
        temperature_nll(np.zeros((3, 2)), np.array([0, 1, 1]), 0.0)


# ----------------------------------------------------------------------------- cross-fitting
def test_cross_fit_scales_each_fold_with_the_other_folds_temperature():
    z, y = _logits(n=101, seed=4)
    even, odd = cross_fit_folds(101)
    assert even.tolist() == list(range(0, 101, 2)) and odd.tolist() == list(range(1, 101, 2))
    logp, (t0, t1) = cross_fit_log_probs(z, y)
    assert t0 == pytest.approx(fit_temperature(z[odd], y[odd]))
    assert t1 == pytest.approx(fit_temperature(z[even], y[even]))
    assert np.allclose(logp[even], log_softmax(z[even], t0))
    assert np.allclose(logp[odd], log_softmax(z[odd], t1))


def test_temperature_scaled_records_fit_source_and_keeps_top1():
    z, y = _logits(n=300, seed=5)
    raw, _ = classification_metrics(np.exp(log_softmax(z)), y, extra=True)
    cross = temperature_scaled(z, y, split="test")
    assert cross["ts_fit"] == "test-2fold" and len(cross["fold_temperatures"]) == 2 and not cross["at_bound"]
    assert cross["temperature"] == pytest.approx(math.sqrt(math.prod(cross["fold_temperatures"])))
    fz, fy = _logits(n=300, seed=6)
    held = temperature_scaled(z, y, fit_logits=fz, fit_labels=fy, split="test")
    assert held["ts_fit"] == "holdout" and held["temperature"] == pytest.approx(fit_temperature(fz, fy))
    for r in (cross, held):
        m = r["metrics"]
        assert set(m) == set(raw)
        assert m["top1_err"] == raw["top1_err"] and m["top5_err"] == raw["top5_err"]
        assert r["temperature"] > 1  # the logits above are over-confident
        assert m["nll"] < raw["nll"] and m["ece"] < raw["ece"]
    with pytest.raises(ValueError, match="together"):
        temperature_scaled(z, y, fit_logits=fz)


def test_identity_temperature_reproduces_raw_metrics():
    z, y = _logits(n=200, seed=7)
    raw, bins = classification_metrics(np.exp(log_softmax(z)), y, extra=True)
    again, bins2 = classification_metrics(np.exp(log_softmax(z, 1.0)), y, extra=True)
    assert again == raw and bins2 == bins


# ----------------------------------------------------------------------------- AUGRC
def test_augrc_hand_worked_rankings():
    # confidences (max prob) 0.9 right, 0.8 wrong, 0.7 right, 0.6 wrong -> errors among the top k: 0, 1, 1, 2
    # generalized risk e_k / N = 0, 1/4, 1/4, 2/4; AUGRC = mean = 1/4 -> 250 (x1000)
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    y = np.array([0, 0, 0, 0])
    assert augrc(p, y) == pytest.approx(250.0)
    # two right then two wrong (0.9, 0.7, 0.6, 0.55): errors 0, 0, 1, 2 -> 3/16
    assert augrc(np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6], [0.45, 0.55]]), y) == pytest.approx(187.5)
    # AURC of the first ranking for contrast: risks 0, 1/2, 1/3, 1/2 -> 1000 * (4/3) / 4
    assert aurc(p, y) == pytest.approx(1000 / 3)
    assert augrc(np.eye(3), np.arange(3)) == 0.0


def test_augrc_of_a_constant_confidence_is_err_times_half_of_1_plus_1_over_n():
    p = np.tile([0.6, 0.4], (10, 1))
    y = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0])  # 3 errors; ties in dataset order
    e = np.cumsum(y == 1)
    assert augrc(p, y) == pytest.approx(1000 * e.sum() / 100)


def _torch_uncertainty_risk_coverage():
    """torch-uncertainty's metric module (risk_coverage.py), loaded by itself: the package's
    __init__ imports `lightning`, which torch-uncertainty does not declare."""
    spec = importlib.util.find_spec("torch_uncertainty")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch-uncertainty not installed")
    from pathlib import Path
    path = Path(list(spec.submodule_search_locations)[0]) / "metrics/classification/risk_coverage.py"
    mspec = importlib.util.spec_from_file_location("_tu_risk_coverage", path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


def test_augrc_against_torch_uncertainty():
    """torch-uncertainty's AUGRC integrates the same generalized risk g_k = e_k / N with the
    trapezoid rule over coverage k/N, k = 1..N, and divides by (1 - 1/N); ours is the mean of
    g_k (its docstring's sum). So ours = theirs * (1 - 1/N) + (g_1 + g_N) / (2N), exactly."""
    tu = _torch_uncertainty_risk_coverage()
    z, y = _logits(n=257, seed=8)
    p = torch.softmax(torch.from_numpy(z), 1)
    metric = tu.AUGRC()
    metric.update(p, torch.from_numpy(y))
    theirs = metric.compute().item()
    n = len(y)
    wrong = (p.argmax(1).numpy() != y)
    e = np.cumsum(wrong[np.argsort(-p.max(1).values.numpy(), kind="stable")])
    g1, gn = e[0] / n, e[-1] / n
    # (their integration runs partly in float32: agreement to ~1e-8)
    assert augrc(p, y) / 1000 == pytest.approx(theirs * (1 - 1 / n) + (g1 + gn) / (2 * n), rel=1e-7)


# ----------------------------------------------------------------------------- SmoothECE
def test_smooth_ece_is_relplots_smece_of_the_top_label():
    relplot = pytest.importorskip("relplot")
    z, y = _logits(n=500, seed=9)
    f, hit = relplot.multiclass_logits_to_confidences(z, y)  # relplot's own multiclass example
    assert smooth_ece(np.exp(log_softmax(z)), y) == pytest.approx(100 * relplot.smECE(f, hit), rel=1e-9)


def test_smooth_ece_hand_cases():
    """A constant confidence 0.9 right half of the time: the smoothed residual is 0.4 at every
    point whatever the bandwidth, so SmoothECE = 40%. Labels drawn from the confidences
    themselves (relplot's calibrated example): close to 0."""
    pytest.importorskip("relplot")
    p = np.tile([0.9, 0.1], (1000, 1))
    y = np.r_[np.zeros(500, int), np.ones(500, int)]
    assert smooth_ece(p, y) == pytest.approx(40.0, abs=1e-4)
    rng = np.random.default_rng(0)
    f = rng.uniform(0.5, 1.0, 20000)
    right = rng.uniform(size=len(f)) < f
    p = np.stack([f, 1 - f], 1)
    assert smooth_ece(p, np.where(right, 0, 1)) < 1.0


# ----------------------------------------------------------------------------- bin edges
BINNED = {
    "ece": lambda p, y: expected_calibration_error(p, y, 10),
    "ece15": lambda p, y: expected_calibration_error(p, y, 15),
    "adaece": lambda p, y: adaptive_ece(p, y, 15),
    "cwece": lambda p, y: classwise_ece(p, y, 15),
    # confidence and hit pairs (detection's D-ECE): the top-label confidence and correctness
    "binned": lambda p, y: binned_calibration_error(p.max(1), p.argmax(1) == y, 10),
}


@pytest.mark.parametrize("name", sorted(BINNED))
def test_confidence_exactly_one_and_zero_are_binned(name):
    """A confidence of exactly 1.0 lands in the last bin, 0.0 in the first (torchmetrics issue
    #3510: a 1.0 fell outside every bin). Predictions of probability exactly 1.0, all right, are
    perfectly calibrated: every binned ECE is 0; all wrong, every one is 100."""
    p = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert BINNED[name](p, np.array([0, 1, 0])) == pytest.approx(0.0)
    wrong = BINNED[name](p, np.array([1, 0, 1]))
    assert wrong == pytest.approx(100.0)


def test_reliability_bins_put_one_in_the_last_bin_and_zero_in_the_first():
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    bins = reliability_bins(p, np.array([0, 1]), 10)
    assert bins["count"][-1] == 2 and sum(bins["count"]) == 2
    # classwise: the 0.0 entries go to the first bin (the per-class ECE then sees them)
    assert classwise_ece(p, np.array([0, 1]), 10) == 0.0


def test_binned_calibration_error_hand_case_and_bad_input():
    # bins (lo, hi] of 10: 1.0 and 0.95 in the last, 0.3 in (0.2, 0.3], 0.0 in the first
    conf = np.array([1.0, 0.95, 0.3, 0.0])
    hit = np.array([1, 0, 0, 1])
    assert binned_calibration_error(conf, hit) == pytest.approx(100 * (2 * abs(0.5 - 0.975) + 0.3 + 1.0) / 4)
    with pytest.raises(ValueError, match="confidences in"):
        binned_calibration_error(np.array([1.5]), np.array([1]))
    with pytest.raises(ValueError, match="as many hits"):
        binned_calibration_error(np.array([0.5, 0.2]), np.array([1]))


def test_smooth_ece_without_relplot_is_nan_with_a_warning(monkeypatch):
    """A machine without relplot still evaluates: SmoothECE is NaN (null in the log), said."""
    import sys
    monkeypatch.setitem(sys.modules, "relplot", None)  # import relplot -> ImportError
    with pytest.warns(UserWarning, match="relplot"):
        assert math.isnan(smooth_ece(np.eye(3), np.arange(3)))


def test_a_fit_set_without_errors_drives_t_to_the_lower_bound_and_says_so():
    """Every prediction right: the NLL falls as T -> 0, no finite optimum; the fit stops at the
    search's lower bound and the record says at_bound."""
    z = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.5, 1.5]])
    y = np.array([0, 1, 0, 1])
    assert fit_temperature(z, y) == pytest.approx(T_BOUNDS[0], rel=1e-6)
    assert temperature_scaled(z, y)["at_bound"]
