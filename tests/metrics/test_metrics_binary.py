"""Reference binary metrics against scikit-learn, including ties, CTR-like scores and weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from mlreg.errors import InputError
from mlreg.metrics import binary as B

CASES = ["plain", "ties", "ctr", "weighted", "weighted_ties"]


def make(case: str, n: int = 1500, seed: int = 0):
    rng = np.random.default_rng(seed + CASES.index(case))
    if case == "ctr":
        s = rng.beta(1, 50, n)
    else:
        s = rng.random(n)
    if "ties" in case:
        s = np.round(s, 2)
    y = (rng.random(n) < np.clip(1.5 * s, 0, 1)).astype(int)
    w = rng.exponential(1.0, n) if "weighted" in case else None
    return y, s, w


@pytest.mark.parametrize("case", CASES)
def test_ranking_metrics_match_sklearn(case):
    y, s, w = make(case)
    assert B.roc_auc(y, s, w).value == pytest.approx(
        skm.roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    assert B.pr_auc(y, s, w).value == pytest.approx(
        skm.average_precision_score(y, s, sample_weight=w), abs=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_losses_match_sklearn(case):
    y, s, w = make(case)
    assert B.log_loss(y, s, w).value == pytest.approx(
        skm.log_loss(y, s, sample_weight=w), rel=1e-12)
    assert B.brier(y, s, w).value == pytest.approx(
        skm.brier_score_loss(y, s, sample_weight=w), rel=1e-12)


def test_log_loss_clips_like_sklearn():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.0, 1.0, 1.0, 0.0])  # two certain mistakes, two certain hits
    assert B.log_loss(y, s).value == pytest.approx(skm.log_loss(y, s), rel=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("threshold", [0.05, 0.5])
def test_thresholded_metrics_match_sklearn(case, threshold):
    y, s, w = make(case)
    pred = (s >= threshold).astype(int)
    if pred.sum() == 0:
        assert not B.precision(y, s, w, threshold=threshold).defined
        return
    assert B.precision(y, s, w, threshold=threshold).value == pytest.approx(
        skm.precision_score(y, pred, sample_weight=w), abs=1e-12)
    assert B.recall(y, s, w, threshold=threshold).value == pytest.approx(
        skm.recall_score(y, pred, sample_weight=w), abs=1e-12)
    assert B.f1(y, s, w, threshold=threshold).value == pytest.approx(
        skm.f1_score(y, pred, sample_weight=w), abs=1e-12)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, sample_weight=w).ravel()
    assert B.fpr(y, s, w, threshold=threshold).value == pytest.approx(fp / (fp + tn), abs=1e-12)
    assert B.tpr(y, s, w, threshold=threshold).value == pytest.approx(tp / (tp + fn), abs=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_calibration_fit_matches_sklearn_logistic_regression(case):
    y, s, w = make(case, n=1200)
    fit = B.fit_calibration(y, s, w)
    assert fit.converged
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
    lr.fit(B.logit(s)[:, None], y, sample_weight=w)
    assert fit.slope == pytest.approx(lr.coef_[0, 0], abs=1e-6)
    assert fit.intercept == pytest.approx(lr.intercept_[0], abs=1e-6)
    # the Fisher interval is the inverse Hessian at the optimum
    mv = B.calibration_slope(y, s, w)
    assert mv.method == "fisher"
    assert (mv.hi - mv.lo) / 2 == pytest.approx(1.959963984540054 * math.sqrt(fit.cov[1, 1]))


def test_base_rate_and_counts():
    y, s, w = make("weighted")
    assert B.base_rate(y, s, w).value == pytest.approx(np.average(y, weights=w), rel=1e-12)
    assert B.count(y).value == len(y)
    assert B.weight_sum(y, s, w).value == pytest.approx(w.sum())


def test_ece_and_reliability_by_hand():
    y = np.array([0, 1, 1, 0, 1, 0])
    s = np.array([0.05, 0.15, 0.55, 0.5, 1.0, 0.95])
    rel = B.reliability_curve(y, s, n_bins=10)
    assert [b.count for b in rel] == [1, 1, 0, 0, 0, 2, 0, 0, 0, 2]
    assert rel[5].mean_score == pytest.approx(0.525)
    assert rel[5].mean_label == pytest.approx(0.5)
    assert math.isnan(rel[2].mean_score)
    expected = (abs(0 - 0.05) + abs(1 - 0.15) + abs(1 - 1.05) + abs(1 - 1.95)) / 6
    ece = B.expected_calibration_error(y, s, replicates=50)
    assert ece.value == pytest.approx(expected)
    assert ece.method == "poisson_bootstrap"
    assert ece.lo <= ece.hi


def test_one_class_slice_is_undefined_with_reason():
    y = np.zeros(50, dtype=int)
    s = np.linspace(0, 1, 50)
    for fn in (B.roc_auc, B.pr_auc, B.calibration_slope, B.calibration_intercept):
        mv = fn(y, s)
        assert math.isnan(mv.value)
        assert mv.reason and "class" in mv.reason
    assert "no positives" in B.roc_auc(y, s).reason
    assert "no negatives" in B.roc_auc(1 - y, s).reason
    # defined on one class
    assert math.isfinite(B.log_loss(y, s).value)
    assert math.isfinite(B.brier(y, s).value)


def test_no_predicted_positives_precision_undefined():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4])
    mv = B.precision(y, s, threshold=0.9)
    assert math.isnan(mv.value) and mv.reason == B.NO_PRED_POS
    assert B.recall(y, s, threshold=0.9).value == 0.0


def test_separable_and_constant_scores_give_reasons():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    mv = B.calibration_slope(y, s)
    assert math.isnan(mv.value) and "separates" in mv.reason
    assert "separates" in B.calibration_slope(1 - y, s).reason
    mv = B.calibration_slope(np.array([0, 1, 0, 1]), np.full(4, 0.3))
    assert math.isnan(mv.value) and "constant" in mv.reason


def test_auc_interval_is_delong():
    """Unweighted: the influence variance equals DeLong's with (m-1, n-1) denominators."""
    y, s, _ = make("ties", n=300)
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10 = psi.mean(axis=1)
    v01 = psi.mean(axis=0)
    var = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
    mv = B.roc_auc(y, s)
    assert mv.value == pytest.approx(auc)
    assert (mv.hi - mv.lo) / 2 == pytest.approx(1.959963984540054 * math.sqrt(var), rel=1e-9)


def test_pr_auc_influence_matches_finite_differences():
    y, s, w = make("weighted_ties", n=400)
    lin = B.pr_auc_linearized(y, s, w)
    total = w.sum()
    eps = 1e-7
    for i in [0, 3, int(np.argmax(y)), int(np.argmin(y))]:
        w2 = (1 - eps) * w
        w2[i] += eps * total
        fd = (B.pr_auc_linearized(y, s, w2).value - lin.value) / eps
        assert fd == pytest.approx(lin.phi[i], rel=1e-3, abs=1e-4)


def test_paired_delta_of_identical_models_is_exactly_zero():
    y, s, w = make("weighted_ties", n=500)
    for name in ["auc", "pr_auc", "log_loss", "brier", "calibration_slope", "ece", "precision",
                 "f1", "fpr", "recall", "count", "base_rate"]:
        d = B.paired_delta(name, y, s, s.copy(), w, replicates=30)
        assert d.value == 0.0 and d.lo == 0.0 and d.hi == 0.0, name


def test_paired_delta_auc_matches_paired_delong():
    y, s, _ = make("plain", n=400)
    rng = np.random.default_rng(5)
    s2 = np.clip(s + rng.normal(0, 0.2, s.shape[0]), 0, 1)

    def placements(sc):
        pos, neg = sc[y == 1], sc[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    a1, v10a, v01a = placements(s)
    a2, v10b, v01b = placements(s2)
    var = np.var(v10a - v10b, ddof=1) / len(v10a) + np.var(v01a - v01b, ddof=1) / len(v01a)
    d = B.paired_delta("auc", y, s, s2)
    assert d.value == pytest.approx(a1 - a2)
    assert (d.hi - d.lo) / 2 == pytest.approx(1.959963984540054 * math.sqrt(var), rel=1e-9)


@pytest.mark.parametrize("bad", [
    dict(y=[0, 2, 1], s=[0.1, 0.2, 0.3]),
    dict(y=[0, 1, 1], s=[0.1, 1.2, 0.3]),
    dict(y=[0, 1, 1], s=[0.1, np.nan, 0.3]),
    dict(y=[0, 1], s=[0.1, 0.2, 0.3]),
    dict(y=[0, 1, 1], s=[0.1, 0.2, 0.3], w=[1, -1, 1]),
])
def test_bad_input_raises_input_error(bad):
    with pytest.raises(InputError):
        B.roc_auc(np.array(bad["y"]), np.array(bad["s"]), bad.get("w"))
