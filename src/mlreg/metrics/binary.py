"""Binary-classification metrics on one slice, with their intervals (reference implementation).

These functions are the readable, single-slice definitions of every built-in metric; the fast
grouped engine (:mod:`mlreg.metrics.engine`) computes the same numbers for all slices at once and
is tested against them. Inputs: ``y`` labels in {0, 1}, ``score`` in [0, 1], optional ``weight``
>= 0. An undefined metric (AUC with one class, precision with no predicted positives, ...) is a
NaN :class:`~mlreg.metrics.results.MetricValue` with a ``reason``, never an exception; malformed
input raises :class:`mlreg.errors.InputError`.

Definitions (all weighted; unweighted means unit weights):

* ``auc``: Mann-Whitney probability that a positive outscores a negative, ties counting one half
  (equal to scikit-learn's ``roc_auc_score``); interval by DeLong (the influence-function form,
  which generalises DeLong's variance to weights and reduces to it exactly without weights).
* ``pr_auc``: average precision exactly as ``sklearn.metrics.average_precision_score``: the sum
  over distinct score thresholds (descending) of recall increase times precision; interval from
  its influence function (derived for this estimator, tie-aware).
* ``log_loss``: mean of ``-log q`` with ``q`` the predicted probability of the observed class
  clipped to ``[eps, 1 - eps]``, ``eps`` = float64 machine epsilon (scikit-learn's current
  behaviour); defined on one-class slices too. ``brier``: mean of ``(y - score)^2``. Intervals:
  normal, from the per-row variance.
* ``calibration_slope`` / ``calibration_intercept``: the unpenalised logistic regression
  ``logit P(y=1) = intercept + slope * logit(score)`` (scores clipped like log loss), fitted by
  Newton-Raphson to convergence; intervals from the Fisher information (inverse Hessian).
* ``ece``: ``sum_bins |sum w (y - score)| / sum w`` over ``n_bins`` equal-width bins
  ``[j/n, (j+1)/n)`` (the last bin includes 1); interval by the bucketed Poisson bootstrap.
* thresholded (``score >= threshold`` is a positive prediction): ``precision``, ``recall`` (=
  ``tpr``), ``fpr``, ``f1``; Wilson intervals for the proportions (Kish effective n with weights),
  normal from the influence function for F1. ``base_rate``: weighted mean label, Wilson.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlreg.errors import InputError
from mlreg.metrics.intervals import (
    DEFAULT_BUCKETS,
    DEFAULT_REPLICATES,
    kish_n,
    linearized_variance,
    normal_interval,
    percentile_interval,
    poisson_replicates,
    row_buckets,
    wilson,
    z_value,
)
from mlreg.metrics.results import MetricValue, PairedDelta, ReliabilityBin

__all__ = [
    "EPS",
    "Linearized",
    "CalibrationFit",
    "Confusion",
    "check_binary",
    "auc_linearized",
    "pr_auc_linearized",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "fit_calibration",
    "fit_logistic",
    "calibration_slope",
    "calibration_intercept",
    "reliability_curve",
    "expected_calibration_error",
    "confusion",
    "precision",
    "recall",
    "tpr",
    "fpr",
    "f1",
    "base_rate",
    "count",
    "weight_sum",
    "mean_score",
    "paired_delta",
    "logit",
]

EPS = float(np.finfo(np.float64).eps)

NO_ROWS = "empty slice"
NO_POS = "only one class in slice (no positives)"
NO_NEG = "only one class in slice (no negatives)"
NO_WEIGHT = "slice has zero total weight"


# --------------------------------------------------------------------------- input checks


def check_binary(y, score, weight=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate and convert (labels int8 in {0,1}, scores float64 in [0,1], weights float64)."""
    y = np.asarray(y)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise InputError("labels and scores must be one-dimensional")
    if y.shape[0] != s.shape[0]:
        raise InputError(f"labels ({y.shape[0]}) and scores ({s.shape[0]}) differ in length")
    if y.dtype == bool:
        yi = y.astype(np.int8)
    else:
        if y.dtype.kind not in "iuf":
            raise InputError(f"labels must be numeric 0/1, got dtype {y.dtype}")
        if y.size and not np.all((y == 0) | (y == 1)):
            bad = y[~((y == 0) | (y == 1))][:3]
            raise InputError(f"labels must be 0 or 1; found {bad.tolist()}")
        yi = y.astype(np.int8)
    if s.size and not (np.all(np.isfinite(s)) and s.min() >= 0.0 and s.max() <= 1.0):
        raise InputError("scores must be finite numbers in [0, 1]")
    w = None
    if weight is not None:
        w = np.asarray(weight, dtype=np.float64)
        if w.shape != s.shape:
            raise InputError("weights and scores differ in shape")
        if w.size and not (np.all(np.isfinite(w)) and w.min() >= 0.0):
            raise InputError("weights must be finite and >= 0")
    return yi, s, w


def _weights(w: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float64) if w is None else w


def logit(score: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` of scores clipped to ``[EPS, 1 - EPS]``."""
    p = np.clip(np.asarray(score, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def _class_guard(n: int, wsum: float, wpos: float, wneg: float) -> str | None:
    if n == 0:
        return NO_ROWS
    if wsum <= 0:
        return NO_WEIGHT
    if wpos <= 0:
        return NO_POS
    if wneg <= 0:
        return NO_NEG
    return None


@dataclass(frozen=True)
class Linearized:
    """A statistic with its influence values: ``value - truth ~ sum_i w_i phi_i / W``.

    ``strata`` (optional) splits rows for the small-sample variance correction (the classes, for
    AUC). ``phi`` is None when the value is undefined (then ``reason`` says why).
    """

    value: float
    phi: np.ndarray | None
    strata: np.ndarray | None = None
    reason: str | None = None
    n: int = 0

    def variance(self, w: np.ndarray | None) -> float:
        if self.phi is None:
            return float("nan")
        return linearized_variance(self.phi, w, self.strata)


def _undefined_lin(reason: str, n: int) -> Linearized:
    return Linearized(float("nan"), None, None, reason, n)


# --------------------------------------------------------------------------- ranking metrics


def _sorted_blocks(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(s, kind="stable")
    ss = s[order]
    newb = np.ones(ss.shape[0], dtype=bool)
    newb[1:] = ss[1:] != ss[:-1]
    return order, np.cumsum(newb) - 1


def auc_linearized(y, score, weight=None) -> Linearized:
    """ROC AUC (tie-aware Mann-Whitney) and its DeLong influence values."""
    y, s, w = check_binary(y, score, weight)
    n = y.shape[0]
    wv = _weights(w, n)
    wp = wv * y
    wn = wv - wp
    wpos, wneg = float(wp.sum()), float(wn.sum())
    reason = _class_guard(n, wpos + wneg, wpos, wneg)
    if reason:
        return _undefined_lin(reason, n)
    order, bid = _sorted_blocks(s)
    bp = np.bincount(bid, wp[order])
    bn = np.bincount(bid, wn[order])
    neg_below = np.cumsum(bn) - bn
    pos_above = wpos - np.cumsum(bp)
    ys = y[order] == 1
    v_sorted = np.where(ys, (neg_below[bid] + 0.5 * bn[bid]) / wneg,
                        (pos_above[bid] + 0.5 * bp[bid]) / wpos)
    v = np.empty(n)
    v[order] = v_sorted
    auc = float(np.sum(wp * v) / wpos)
    total = wpos + wneg
    phi = np.where(y == 1, (v - auc) * total / wpos, (v - auc) * total / wneg)
    return Linearized(auc, phi, y.astype(np.int64), None, n)


def pr_auc_linearized(y, score, weight=None) -> Linearized:
    """Average precision (scikit-learn's definition) and its influence values."""
    y, s, w = check_binary(y, score, weight)
    n = y.shape[0]
    wv = _weights(w, n)
    wp = wv * y
    total = float(wv.sum())
    wpos = float(wp.sum())
    if n == 0:
        return _undefined_lin(NO_ROWS, n)
    if total <= 0:
        return _undefined_lin(NO_WEIGHT, n)
    if wpos <= 0:
        return _undefined_lin(NO_POS, n)
    order, bid = _sorted_blocks(s)
    bp = np.bincount(bid, wp[order])
    bt = np.bincount(bid, wv[order])
    tp_ge = wpos - (np.cumsum(bp) - bp)
    n_ge = total - (np.cumsum(bt) - bt)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(n_ge > 0, tp_ge / np.where(n_ge > 0, n_ge, 1.0), 0.0)
        q1 = np.where(n_ge > 0, bp / np.where(n_ge > 0, n_ge, 1.0), 0.0)
    ap = float(np.sum(bp * prec) / wpos)
    c1 = np.cumsum(q1)
    c2 = np.cumsum(q1 * prec)
    ys = y[order].astype(np.float64)
    u_sorted = ys * (prec[bid] + c1[bid]) - c2[bid]
    u = np.empty(n)
    u[order] = u_sorted
    pi = wpos / total
    phi = (u - y * ap) / pi
    return Linearized(ap, phi, None, None, n)


def _from_linearized(lin: Linearized, w, confidence: float, method: str,
                     lower: float | None = None, upper: float | None = None) -> MetricValue:
    if lin.phi is None:
        return MetricValue.undefined(lin.reason or "undefined", lin.n)
    se = math.sqrt(max(lin.variance(w), 0.0))
    lo, hi = normal_interval(lin.value, se, z_value(confidence), lower, upper)
    return MetricValue(lin.value, lo, hi, method, None, lin.n)


def roc_auc(y, score, weight=None, *, confidence: float = 0.95) -> MetricValue:
    """ROC AUC with a DeLong interval (clipped to [0, 1])."""
    _, _, w = check_binary(y, score, weight)
    return _from_linearized(auc_linearized(y, score, weight), w, confidence, "delong", 0.0, 1.0)


def pr_auc(y, score, weight=None, *, confidence: float = 0.95) -> MetricValue:
    """Average precision with an influence-function (normal) interval clipped to [0, 1]."""
    _, _, w = check_binary(y, score, weight)
    return _from_linearized(pr_auc_linearized(y, score, weight), w, confidence, "influence",
                            0.0, 1.0)


# --------------------------------------------------------------------------- mean losses


def _row_log_loss(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    q = np.where(y == 1, s, 1.0 - s)
    return -np.log(np.clip(q, EPS, 1.0 - EPS))


def _mean_linearized(values: np.ndarray, w: np.ndarray | None, n: int) -> Linearized:
    wv = _weights(w, n)
    total = float(wv.sum())
    if n == 0:
        return _undefined_lin(NO_ROWS, n)
    if total <= 0:
        return _undefined_lin(NO_WEIGHT, n)
    mean = float(np.sum(wv * values) / total)
    return Linearized(mean, values - mean, None, None, n)


def log_loss_linearized(y, score, weight=None) -> Linearized:
    y, s, w = check_binary(y, score, weight)
    return _mean_linearized(_row_log_loss(y, s), w, y.shape[0])


def brier_linearized(y, score, weight=None) -> Linearized:
    y, s, w = check_binary(y, score, weight)
    return _mean_linearized((y - s) ** 2, w, y.shape[0])


def log_loss(y, score, weight=None, *, confidence: float = 0.95) -> MetricValue:
    """Mean log loss (natural log) with a normal interval."""
    _, _, w = check_binary(y, score, weight)
    return _from_linearized(log_loss_linearized(y, score, weight), w, confidence, "normal", 0.0)


def brier(y, score, weight=None, *, confidence: float = 0.95) -> MetricValue:
    """Brier score with a normal interval."""
    _, _, w = check_binary(y, score, weight)
    return _from_linearized(brier_linearized(y, score, weight), w, confidence, "normal", 0.0, 1.0)


def mean_score(y, score, weight=None, *, confidence: float = 0.95) -> MetricValue:
    """Weighted mean score with a normal interval."""
    y, s, w = check_binary(y, score, weight)
    return _from_linearized(_mean_linearized(s, w, y.shape[0]), w, confidence, "normal", 0.0, 1.0)


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class CalibrationFit:
    """Logistic recalibration fit ``logit P(y=1) = intercept + slope * logit(score)``.

    ``cov`` is the inverse Fisher information; ``phi`` the (n, 2) influence values of
    (intercept, slope) used for paired (sandwich) intervals. On failure both estimates are NaN and
    ``reason`` says why.
    """

    intercept: float
    slope: float
    cov: np.ndarray | None
    converged: bool
    iterations: int
    reason: str | None = None
    phi: np.ndarray | None = None
    n: int = 0


def _expit(eta: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-eta))


def _loglik(theta, x, y, w) -> float:
    eta = theta[0] + theta[1] * x
    return float(np.sum(w * (y * eta - np.logaddexp(0.0, eta))))


SEPARABLE = "calibration fit undefined: the score separates the classes (no finite maximum)"
CONSTANT = "calibration fit undefined: the score is constant in the slice"
NOT_CONVERGED = "calibration fit did not converge"


def separated(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> bool:
    """True when (quasi-)complete separation leaves the logistic fit without a finite maximum:
    every positive's logit is >= every negative's, or <= (rows with zero weight ignored)."""
    keep = w > 0
    pos = x[keep & (y == 1)]
    neg = x[keep & (y == 0)]
    if pos.size == 0 or neg.size == 0:
        return False
    return bool(neg.max() <= pos.min() or pos.max() <= neg.min())


def fit_calibration(y, score, weight=None, *, start: tuple[float, float] = (0.0, 1.0),
                    tol: float = 1e-10, max_iter: int = 100) -> CalibrationFit:
    """Fit the calibration intercept and slope by damped Newton-Raphson (line search)."""
    y, s, w = check_binary(y, score, weight)
    return fit_logistic(logit(s), y, w, start=start, tol=tol, max_iter=max_iter)


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, *,
                 start: tuple[float, float] = (0.0, 1.0), tol: float = 1e-10,
                 max_iter: int = 100) -> CalibrationFit:
    """Unpenalised weighted logistic regression of ``y`` on ``(1, x)`` (the calibration fit on
    precomputed logits); see :func:`fit_calibration`."""
    n = y.shape[0]
    wv = _weights(w, n)
    wpos = float(np.sum(wv * y))
    wneg = float(np.sum(wv)) - wpos
    reason = _class_guard(n, wpos + wneg, wpos, wneg)
    if reason:
        return CalibrationFit(math.nan, math.nan, None, False, 0, reason, None, n)
    xs = x[wv > 0]
    if xs.min() == xs.max():
        return CalibrationFit(math.nan, math.nan, None, False, 0, CONSTANT, None, n)
    if separated(x, y, wv):
        return CalibrationFit(math.nan, math.nan, None, False, 0, SEPARABLE, None, n)
    yf = y.astype(np.float64)
    theta = np.array(start, dtype=np.float64)
    ll = _loglik(theta, x, yf, wv)
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        mu = _expit(theta[0] + theta[1] * x)
        v = wv * mu * (1.0 - mu)
        r = wv * (yf - mu)
        g = np.array([r.sum(), (r * x).sum()])
        h00, h01, h11 = v.sum(), (v * x).sum(), (v * x * x).sum()
        det = h00 * h11 - h01 * h01
        if not (math.isfinite(det) and det > 0):
            break
        step = np.array([h11 * g[0] - h01 * g[1], h00 * g[1] - h01 * g[0]]) / det
        t = 1.0
        while True:
            cand = theta + t * step
            ll_new = _loglik(cand, x, yf, wv)
            if ll_new >= ll - 1e-12 * max(1.0, abs(ll)) or t < 1e-10:
                break
            t *= 0.5
        if t < 1e-10:  # no ascent direction left: numerical trouble, not convergence
            break
        theta = cand
        ll = ll_new
        if t == 1.0 and np.max(np.abs(step)) <= tol * (1.0 + np.max(np.abs(theta))):
            converged = True
            break
        if np.max(np.abs(theta)) > 1e8:
            break
    if not converged:
        return CalibrationFit(math.nan, math.nan, None, False, it, NOT_CONVERGED, None, n)
    mu = _expit(theta[0] + theta[1] * x)
    v = wv * mu * (1.0 - mu)
    h = np.array([[v.sum(), (v * x).sum()], [(v * x).sum(), (v * x * x).sum()]])
    det = h[0, 0] * h[1, 1] - h[0, 1] ** 2
    if not (math.isfinite(det) and det > 0):
        return CalibrationFit(math.nan, math.nan, None, False, it, NOT_CONVERGED, None, n)
    cov = np.linalg.inv(h)
    resid = yf - mu
    total = float(wv.sum())
    design = np.stack([resid, resid * x], axis=1)
    phi = total * design @ cov  # cov is symmetric
    return CalibrationFit(float(theta[0]), float(theta[1]), cov, True, it, None, phi, n)


def _calibration_value(fit: CalibrationFit, which: int, confidence: float) -> MetricValue:
    if not fit.converged or fit.cov is None:
        return MetricValue.undefined(fit.reason or "calibration fit failed", fit.n)
    value = fit.intercept if which == 0 else fit.slope
    se = math.sqrt(max(float(fit.cov[which, which]), 0.0))
    lo, hi = normal_interval(value, se, z_value(confidence))
    return MetricValue(value, lo, hi, "fisher", None, fit.n)


def calibration_slope(y, score, weight=None, *, confidence: float = 0.95) -> MetricValue:
    return _calibration_value(fit_calibration(y, score, weight), 1, confidence)


def calibration_intercept(y, score, weight=None, *, confidence: float = 0.95) -> MetricValue:
    return _calibration_value(fit_calibration(y, score, weight), 0, confidence)


def score_bins(score: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of every score: ``floor(score * n_bins)``, 1.0 in the last bin."""
    b = np.floor(np.asarray(score, dtype=np.float64) * n_bins).astype(np.int64)
    return np.minimum(b, n_bins - 1)


def reliability_curve(y, score, weight=None, *, n_bins: int = 10) -> list[ReliabilityBin]:
    """Per bin: count, weight, weighted mean score and mean label (NaN for empty bins)."""
    y, s, w = check_binary(y, score, weight)
    wv = _weights(w, y.shape[0])
    b = score_bins(s, n_bins)
    cnt = np.bincount(b, minlength=n_bins)
    ws = np.bincount(b, wv, minlength=n_bins)
    wsc = np.bincount(b, wv * s, minlength=n_bins)
    wy = np.bincount(b, wv * y, minlength=n_bins)
    out = []
    for j in range(n_bins):
        ok = ws[j] > 0
        out.append(ReliabilityBin(
            j / n_bins, (j + 1) / n_bins, int(cnt[j]), float(ws[j]),
            float(wsc[j] / ws[j]) if ok else math.nan, float(wy[j] / ws[j]) if ok else math.nan,
        ))
    return out


def _ece_bucket_sums(y, s, wv, buckets, n_bins, n_buckets):
    b = score_bins(s, n_bins)
    key = b * n_buckets + buckets.astype(np.int64)
    sb = np.bincount(key, wv * (y - s), minlength=n_bins * n_buckets).reshape(n_bins, n_buckets)
    wb = np.bincount(buckets.astype(np.int64), wv, minlength=n_buckets)
    return sb, wb


def ece_replicates(sb: np.ndarray, wb: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """ECE under each replicate given per-(bin, bucket) residual sums and per-bucket weights."""
    num = np.abs(reps @ sb.T).sum(axis=1)
    den = reps @ wb
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def expected_calibration_error(
    y, score, weight=None, *, n_bins: int = 10, buckets: np.ndarray | None = None,
    replicates: int = DEFAULT_REPLICATES, seed: int = 0, n_buckets: int = DEFAULT_BUCKETS,
    confidence: float = 0.95,
) -> MetricValue:
    """ECE with a (bucketed) Poisson-bootstrap percentile interval.

    ``buckets`` assigns rows to bootstrap buckets (default: a hash of label and score).
    """
    y, s, w = check_binary(y, score, weight)
    n = y.shape[0]
    wv = _weights(w, n)
    total = float(wv.sum())
    if n == 0:
        return MetricValue.undefined(NO_ROWS, n)
    if total <= 0:
        return MetricValue.undefined(NO_WEIGHT, n)
    b = score_bins(s, n_bins)
    resid = np.bincount(b, wv * (y - s), minlength=n_bins)
    value = float(np.abs(resid).sum() / total)
    if buckets is None:
        buckets = row_buckets([y, s], seed, n_buckets)
    sb, wb = _ece_bucket_sums(y, s, wv, np.asarray(buckets), n_bins, n_buckets)
    reps = ece_replicates(sb, wb, poisson_replicates(seed, replicates, n_buckets))
    lo, hi = percentile_interval(reps, confidence)
    return MetricValue(value, lo, hi, "poisson_bootstrap", None, n)


# --------------------------------------------------------------------------- thresholded


@dataclass(frozen=True)
class Confusion:
    """Weighted confusion counts at a threshold; ``*2`` are sums of squared weights, ``n*``
    unweighted row counts."""

    tp: float
    fp: float
    fn: float
    tn: float
    tp2: float
    fp2: float
    fn2: float
    tn2: float
    ntp: int
    nfp: int
    nfn: int
    ntn: int


def confusion(y, score, weight=None, *, threshold: float = 0.5) -> Confusion:
    y, s, w = check_binary(y, score, weight)
    wv = _weights(w, y.shape[0])
    cell = (s >= threshold).astype(np.int64) * 2 + y  # 0 tn, 1 fn, 2 fp, 3 tp
    ws = np.bincount(cell, wv, minlength=4)
    w2 = np.bincount(cell, wv * wv, minlength=4)
    nc = np.bincount(cell, minlength=4)
    return Confusion(ws[3], ws[2], ws[1], ws[0], w2[3], w2[2], w2[1], w2[0],
                     int(nc[3]), int(nc[2]), int(nc[1]), int(nc[0]))


def _proportion(num: float, den: float, den2: float, n: int, reason: str,
                confidence: float) -> MetricValue:
    if den <= 0:
        return MetricValue.undefined(reason, n)
    p = num / den
    lo, hi = wilson(p, kish_n(den, den2), z_value(confidence))
    return MetricValue(float(p), lo, hi, "wilson", None, n)


NO_PRED_POS = "no predicted positives in slice"


def precision(y, score, weight=None, *, threshold: float = 0.5,
              confidence: float = 0.95) -> MetricValue:
    c = confusion(y, score, weight, threshold=threshold)
    return _proportion(c.tp, c.tp + c.fp, c.tp2 + c.fp2, c.ntp + c.nfp, NO_PRED_POS, confidence)


def recall(y, score, weight=None, *, threshold: float = 0.5,
           confidence: float = 0.95) -> MetricValue:
    c = confusion(y, score, weight, threshold=threshold)
    return _proportion(c.tp, c.tp + c.fn, c.tp2 + c.fn2, c.ntp + c.nfn, NO_POS, confidence)


tpr = recall


def fpr(y, score, weight=None, *, threshold: float = 0.5,
        confidence: float = 0.95) -> MetricValue:
    c = confusion(y, score, weight, threshold=threshold)
    return _proportion(c.fp, c.fp + c.tn, c.fp2 + c.tn2, c.nfp + c.ntn, NO_NEG, confidence)


NO_F1 = "F1 undefined: no positives and no predicted positives in slice"


def f1_linearized(y, score, weight=None, *, threshold: float = 0.5) -> Linearized:
    y, s, w = check_binary(y, score, weight)
    n = y.shape[0]
    wv = _weights(w, n)
    pred = (s >= threshold).astype(np.float64)
    tp = pred * y
    fp = pred * (1 - y)
    fn = (1 - pred) * y
    den = float(np.sum(wv * (2 * tp + fp + fn)))
    if n == 0:
        return _undefined_lin(NO_ROWS, n)
    if den <= 0:
        return _undefined_lin(NO_F1, n)
    f = float(2 * np.sum(wv * tp) / den)
    total = float(wv.sum())
    phi = total * (2 * tp - f * (2 * tp + fp + fn)) / den
    return Linearized(f, phi, None, None, n)


def f1(y, score, weight=None, *, threshold: float = 0.5, confidence: float = 0.95) -> MetricValue:
    _, _, w = check_binary(y, score, weight)
    return _from_linearized(f1_linearized(y, score, weight, threshold=threshold), w, confidence,
                            "normal", 0.0, 1.0)


def base_rate(y, score=None, weight=None, *, confidence: float = 0.95) -> MetricValue:
    y = np.asarray(y)
    y, _, w = check_binary(y, np.zeros(y.shape[0]) if score is None else score, weight)
    wv = _weights(w, y.shape[0])
    if y.shape[0] == 0:
        return MetricValue.undefined(NO_ROWS, 0)
    return _proportion(float(np.sum(wv * y)), float(wv.sum()), float(np.sum(wv * wv)),
                       y.shape[0], NO_WEIGHT, confidence)


def count(y, score=None, weight=None, **_) -> MetricValue:
    n = int(np.asarray(y).shape[0])
    return MetricValue(float(n), float(n), float(n), "exact", None, n)


def weight_sum(y, score=None, weight=None, **_) -> MetricValue:
    n = int(np.asarray(y).shape[0])
    total = float(n if weight is None else np.sum(np.asarray(weight, dtype=np.float64)))
    return MetricValue(total, total, total, "exact", None, n)


# --------------------------------------------------------------------------- paired deltas


def _lin_for(name: str, y, s, w, threshold: float) -> Linearized:
    if name == "auc":
        return auc_linearized(y, s, w)
    if name == "pr_auc":
        return pr_auc_linearized(y, s, w)
    if name == "log_loss":
        return log_loss_linearized(y, s, w)
    if name == "brier":
        return brier_linearized(y, s, w)
    if name == "mean_score":
        yy, ss, ww = check_binary(y, s, w)
        return _mean_linearized(ss, ww, yy.shape[0])
    if name == "f1":
        return f1_linearized(y, s, w, threshold=threshold)
    if name in ("precision", "recall", "tpr", "fpr"):
        yy, ss, ww = check_binary(y, s, w)
        n = yy.shape[0]
        wv = _weights(ww, n)
        pred = (ss >= threshold).astype(np.float64)
        if name == "precision":
            member, hit, reason = pred, yy.astype(np.float64), NO_PRED_POS
        elif name == "fpr":
            member, hit, reason = 1.0 - yy, pred, NO_NEG
        else:
            member, hit, reason = yy.astype(np.float64), pred, NO_POS
        den = float(np.sum(wv * member))
        if den <= 0:
            return _undefined_lin(reason, n)
        p = float(np.sum(wv * member * hit) / den)
        return Linearized(p, float(wv.sum()) * member * (hit - p) / den, None, None, n)
    raise KeyError(name)


LINEARIZED_METHOD = {
    "auc": "delong", "pr_auc": "influence", "log_loss": "normal", "brier": "normal",
    "mean_score": "normal", "f1": "normal", "precision": "normal", "recall": "normal",
    "tpr": "normal", "fpr": "normal",
}


def paired_delta(
    name: str, y, score_model, score_baseline, weight=None, *, threshold: float = 0.5,
    confidence: float = 0.95, n_bins: int = 10, buckets: np.ndarray | None = None,
    replicates: int = DEFAULT_REPLICATES, seed: int = 0, n_buckets: int = DEFAULT_BUCKETS,
) -> PairedDelta:
    """``metric(model) - metric(baseline)`` on the same rows, with a paired interval.

    Linearisable metrics use the influence values of both models on the same rows (paired
    DeLong for AUC, the stacked sandwich for the calibration fit); ECE uses the bucketed Poisson
    bootstrap with shared replicate weights; metrics that do not depend on the scores (count,
    weight, base_rate) have an exact zero delta.
    """
    y, sa, w = check_binary(y, score_model, weight)
    _, sb, _ = check_binary(y, score_baseline, weight)
    z = z_value(confidence)
    if name in ("count", "weight", "base_rate"):
        return PairedDelta(0.0, 0.0, 0.0, "exact", None)
    if name in LINEARIZED_METHOD:
        la = _lin_for(name, y, sa, w, threshold)
        lb = _lin_for(name, y, sb, w, threshold)
        if la.phi is None or lb.phi is None:
            return PairedDelta.undefined(la.reason or lb.reason or "undefined")
        d = la.value - lb.value
        se = math.sqrt(max(linearized_variance(la.phi - lb.phi, w, la.strata), 0.0))
        lo, hi = normal_interval(d, se, z)
        return PairedDelta(d, lo, hi, LINEARIZED_METHOD[name], None)
    if name in ("calibration_slope", "calibration_intercept"):
        which = 1 if name == "calibration_slope" else 0
        fa = fit_calibration(y, sa, w)
        fb = fit_calibration(y, sb, w)
        if fa.phi is None or fb.phi is None:
            return PairedDelta.undefined(fa.reason or fb.reason or "calibration fit failed")
        va = fa.slope if which else fa.intercept
        vb = fb.slope if which else fb.intercept
        d = va - vb
        se = math.sqrt(max(linearized_variance(fa.phi[:, which] - fb.phi[:, which], w), 0.0))
        lo, hi = normal_interval(d, se, z)
        return PairedDelta(d, lo, hi, "sandwich", None)
    if name == "ece":
        ma = expected_calibration_error(y, sa, w, n_bins=n_bins, buckets=buckets,
                                        replicates=replicates, seed=seed, n_buckets=n_buckets)
        mb = expected_calibration_error(y, sb, w, n_bins=n_bins, buckets=buckets,
                                        replicates=replicates, seed=seed, n_buckets=n_buckets)
        if not (ma.defined and mb.defined):
            return PairedDelta.undefined(ma.reason or mb.reason or "undefined")
        if buckets is None:
            buckets = row_buckets([y, sa, sb], seed, n_buckets)
        wv = _weights(w, y.shape[0])
        reps = poisson_replicates(seed, replicates, n_buckets)
        sba, wb = _ece_bucket_sums(y, sa, wv, np.asarray(buckets), n_bins, n_buckets)
        sbb, _ = _ece_bucket_sums(y, sb, wv, np.asarray(buckets), n_bins, n_buckets)
        diff = ece_replicates(sba, wb, reps) - ece_replicates(sbb, wb, reps)
        lo, hi = percentile_interval(diff, confidence)
        return PairedDelta(ma.value - mb.value, lo, hi, "poisson_bootstrap", None)
    raise KeyError(f"no paired delta for metric {name!r}")
