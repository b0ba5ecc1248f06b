"""Metrics from merged cells: every built-in binary metric for every slice, with its bound.

Exact from the cells (same formulas as the in-memory engine, to rounding): count, weight,
base rate, mean score, log loss, Brier score, ECE and the reliability curve, precision, recall,
TPR, FPR and F1 at every threshold, and their intervals; paired deltas of all of these
(from the joint ``pair`` cells). Bounded: ROC AUC, average precision and (until the exact
Newton pass has run) the calibration fit.

ROC AUC from a histogram, and why its bound is rigorous
-------------------------------------------------------
Order the *units* of a slice (cells of one ``ext``, or the sub-cells a refinement pass split
them into) by score: every score of a lower unit is strictly below every score of a higher one
(``ext`` is a non-decreasing function of the score). With ``p_u``, ``n_u`` the positive and
negative weight of unit ``u`` and ``P``, ``N`` the slice's totals,

    AUC = (1 / PN) * sum_u p_u * (N_below(u) + c_u),

where ``N_below(u)`` (the negatives in lower units) is exact and ``c_u`` is what the pairs
*inside* the unit contribute per unit of positive weight: ``sum_{i pos, j neg in u} w_i w_j
([s_i > s_j] + [s_i = s_j]/2) / p_u``. That inner sum lies in ``[0, p_u n_u]`` whatever the
scores inside the unit are. The cells record the min and max score of each label in the unit,
which often settles it exactly: one distinct score in the unit (every pair ties: ``n_u / 2``),
every negative below every positive (``n_u``), every positive below every negative (0), or one
class absent (no pairs). Otherwise the histogram takes the midpoint ``n_u / 2``, which is off by
at most half of the unit's pairs, so

    |AUC - AUC_hist| <= sum_{u unresolved} p_u n_u / (2 P N)        (the reported bound).

The same placements give DeLong's variance; it is exact when every unit is resolved and
otherwise computed with the midpoint placements (reported as approximate). Average precision
treats a unit as one tie block; for an unresolved unit the precision at any of its positives
lies between ``TP0 / (N0 + p_u + n_u)`` and ``(TP0 + p_u) / (N0 + p_u)`` (``TP0``, ``N0`` the
positive and total weight of higher units), which bounds its contribution.

Calibration fitted on bucket means
----------------------------------
The logistic fit on the cells replaces each row's logit by its cell's mean. Within a cell of
logit variance ``v_c`` (exact, from ``sum w x^2``) the score equations move by at most
``|Dg0| <= 0.0481 b^2 sum v_c`` and ``|Dg1| <= 0.25 |b| sum v_c + 0.0481 b^2 sum (|xbar_c| +
d_c) v_c`` (``|sigma''| <= 0.0962``; ``d_c`` the cell's logit spread), and the estimate by
about ``|H^-1| |Dg|``: the first-order bound reported until an exact Newton pass over the rows
(:mod:`mlreg.scale.passes`) replaces the fit. A Newton step of at most :data:`POLISHED_STEP`
leaves an error of the order of its square (quadratic convergence, ~1e-10 here): the polished
fit is reported exact; a larger step (a poor start on a small slice) triggers another pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlreg.metrics import binary as B
from mlreg.metrics.engine import class_reasons, paired_threshold_ss
from mlreg.metrics.intervals import (
    kish_n,
    normal_interval,
    percentile_interval,
    small_sample_factor,
    wilson,
)
from mlreg.scale.cells import ModelCells, PairCells, SlicingCells

__all__ = ["Col", "DCol", "Stats", "Partition", "Pass2Sums", "SlicingMetrics",
           "slice_stats", "partition", "compute_slicing", "SIGMA2_MAX", "POLISHED_STEP"]

SIGMA2_MAX = 0.0962250448649376  # max |sigma''(t)| = 1 / (6 sqrt 3)
#: a Newton step this small leaves an error ~ step^2 (quadratic convergence): below 1e-9
POLISHED_STEP = 1e-5
APPROX_AUC = "DeLong from bucket placements (approximate: some buckets hold unresolved ties)"
APPROX_AP = "influence function with buckets as tie blocks (approximate)"
APPROX_ECE = ("normal bootstrap of the bins' residual sums (approximate: the bucketed Poisson "
              "bootstrap needs the rows)")
UNPAIRED = "conservative: paired covariance not computed, |delta| interval from se_a + se_b"


@dataclass
class Col:
    """One metric over the K slices of a slicing (like the in-memory engine's ``Column``),
    plus ``bound`` (max abs error of ``value``; 0 where exact) and ``note`` (why the interval
    is approximate, None when it is computed as the in-memory engine computes it)."""

    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    method: str | None
    n: np.ndarray
    reason: list[str | None]
    se: np.ndarray | None = None
    bound: np.ndarray | None = None
    note: list[str | None] | None = None


@dataclass
class DCol:
    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    method: str | None
    reason: list[str | None]
    bound: np.ndarray | None = None
    note: list[str | None] | None = None


@dataclass
class Stats:
    K: int
    n: np.ndarray
    W: np.ndarray
    W2: np.ndarray
    Wpos: np.ndarray
    Wneg: np.ndarray
    W2pos: np.ndarray
    W2neg: np.ndarray


def _safe(d):
    return np.where(d > 0, d, 1.0)


def _div(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / _safe(den), np.nan)


def _centered(m2, m1, w2, c):
    out = m2 - 2 * c * m1 + c * c * w2
    scale = np.abs(m2) + c * c * np.abs(w2)
    return np.where(out > 1e-12 * scale, out, 0.0)


def _bc(k: np.ndarray, v: np.ndarray, K: int) -> np.ndarray:
    return np.bincount(k, v, minlength=K)[:K]


def slice_stats(mc: ModelCells, K: int) -> Stats:
    pos = mc.label == 1
    w, w2 = mc.v["w"], mc.v["w2"]
    n = np.rint(_bc(mc.k, mc.v["n"], K)).astype(np.int64)
    Wpos = _bc(mc.k, np.where(pos, w, 0.0), K)
    Wneg = _bc(mc.k, np.where(pos, 0.0, w), K)
    W2pos = _bc(mc.k, np.where(pos, w2, 0.0), K)
    W2neg = _bc(mc.k, np.where(pos, 0.0, w2), K)
    return Stats(K, n, Wpos + Wneg, W2pos + W2neg, Wpos, Wneg, W2pos, W2neg)


# --------------------------------------------------------------------------- units


@dataclass
class Partition:
    """The ordered units of every slice of one model and slicing (sorted by k, ext, sec).

    ``sec`` orders the sub-units a refinement pass put in place of one unit (their min score);
    ``lo``/``hi`` are the unit's score range over rows with positive weight (both labels).
    """

    k: np.ndarray
    ext: np.ndarray
    sec: np.ndarray
    p: np.ndarray
    n: np.ndarray
    w2p: np.ndarray
    w2n: np.ndarray
    pmin: np.ndarray
    pmax: np.ndarray
    nmin: np.ndarray
    nmax: np.ndarray

    @property
    def lo(self) -> np.ndarray:
        return np.fmin(self.pmin, self.nmin)

    @property
    def hi(self) -> np.ndarray:
        return np.fmax(self.pmax, self.nmax)

    def resolved(self) -> np.ndarray:
        """Units whose inner pairs are known exactly (see the module docstring)."""
        has_p = self.p > 0
        has_n = self.n > 0
        with np.errstate(invalid="ignore"):
            single = (self.pmin == self.pmax) & (self.nmin == self.nmax) & (self.pmin == self.nmin)
            up = self.nmax < self.pmin
            down = self.pmax < self.nmin
        return ~(has_p & has_n) | single | up | down

    def tie_single(self) -> np.ndarray:
        """Units holding one distinct score (over rows of positive weight)."""
        with np.errstate(invalid="ignore"):
            lo, hi = self.lo, self.hi
            return (lo == hi) | ~((self.p > 0) | (self.n > 0))

    def replace(self, index: np.ndarray, sub: Partition) -> Partition:
        """This partition with the units at ``index`` replaced by ``sub`` (their sub-units)."""
        keep = np.ones(self.k.shape[0], dtype=bool)
        keep[index] = False
        parts = [self._take(keep), sub]
        merged = Partition(*(np.concatenate([getattr(p, f) for p in parts])
                             for f in self.__dataclass_fields__))
        order = np.lexsort((merged.sec, merged.ext, merged.k))
        return merged._take(order)

    def _take(self, sel) -> Partition:
        return Partition(*(getattr(self, f)[sel] for f in self.__dataclass_fields__))


def partition(mc: ModelCells) -> Partition:
    """Units of pass-1 cells: one per (slice, ext), both labels together."""
    k, ext = mc.k, mc.ext
    new = np.concatenate(([True], (k[1:] != k[:-1]) | (ext[1:] != ext[:-1])))
    uid = np.cumsum(new) - 1
    U = int(uid[-1]) + 1 if uid.size else 0
    pos = mc.label == 1
    w, w2 = mc.v["w"], mc.v["w2"]
    smin, smax = mc.v["s_min"], mc.v["s_max"]
    pmin = np.full(U, np.nan)
    pmax = np.full(U, np.nan)
    nmin = np.full(U, np.nan)
    nmax = np.full(U, np.nan)
    pmin[uid[pos]] = smin[pos]
    pmax[uid[pos]] = smax[pos]
    nmin[uid[~pos]] = smin[~pos]
    nmax[uid[~pos]] = smax[~pos]
    starts = np.flatnonzero(new)
    lo = np.fmin(pmin, nmin)
    return Partition(
        k=k[starts], ext=ext[starts], sec=np.where(np.isnan(lo), -np.inf, lo),
        p=np.bincount(uid, np.where(pos, w, 0.0), minlength=U),
        n=np.bincount(uid, np.where(pos, 0.0, w), minlength=U),
        w2p=np.bincount(uid, np.where(pos, w2, 0.0), minlength=U),
        w2n=np.bincount(uid, np.where(pos, 0.0, w2), minlength=U),
        pmin=pmin, pmax=pmax, nmin=nmin, nmax=nmax)


def _seg_cumsum(k: np.ndarray, v: np.ndarray, K: int) -> np.ndarray:
    """Inclusive cumulative sum of ``v`` within each slice (rows sorted by slice)."""
    cs = np.cumsum(v)
    totals = _bc(k, v, K)
    before = np.concatenate(([0.0], np.cumsum(totals)[:-1]))
    return cs - before[k]


@dataclass
class AucParts:
    num: np.ndarray
    bound: np.ndarray
    unresolved: np.ndarray  # per unit
    vp: np.ndarray  # placement of the unit's positives
    vn: np.ndarray  # placement of the unit's negatives
    exact: np.ndarray  # per slice


def auc_parts(pt: Partition, st: Stats) -> AucParts:
    K = st.K
    k = pt.k
    p, n = pt.p, pt.n
    n_below = _seg_cumsum(k, n, K) - n
    p_above = st.Wpos[k] - _seg_cumsum(k, p, K)
    with np.errstate(invalid="ignore"):
        up = pt.nmax < pt.pmin
        down = pt.pmax < pt.nmin
    res = pt.resolved()
    frac = np.where(up, 1.0, np.where(down, 0.0, 0.5))
    cp = frac * n  # negatives of the unit below its positives
    cn = frac * p  # positives of the unit above its negatives
    unresolved = ~res
    num = _bc(k, p * (n_below + cp), K)
    bound_num = _bc(k, np.where(unresolved, 0.5 * p * n, 0.0), K)
    denom = st.Wpos * st.Wneg
    vp = (n_below + cp) / _safe(st.Wneg[k])
    vn = (p_above + cn) / _safe(st.Wpos[k])
    exact = _bc(k, unresolved.astype(np.float64), K) == 0
    return AucParts(num, _div(bound_num, denom), unresolved, vp, vn, exact)


# --------------------------------------------------------------------------- pass 2 inputs


@dataclass
class Pass2Sums:
    """What the exact pass returned for one model and slicing (arrays over slices)."""

    theta0: np.ndarray | None = None  # (K, 2) the fit it linearised at
    newton: np.ndarray | None = None  # (K, 5): H00, H01, H11, g0, g1 at theta0
    # paired with the baseline (this model = a):
    sand: np.ndarray | None = None  # (K, 10) see passes.SAND_COLUMNS
    auc_x: np.ndarray | None = None  # (K, 2): sum_pos w2 Va Vb, sum_neg w2 Va Vb
    # the placements' own moments and exactness when the pass ran (refinement may change the
    # units later; the paired variance keeps using the placements the cross moments used)
    auc_mom: np.ndarray | None = None  # (K, 4) m1p, m2p, m1n, m2n of this model
    auc_exact: np.ndarray | None = None  # (K,) bool


# --------------------------------------------------------------------------- per slicing


@dataclass
class ModelMetrics:
    columns: dict[str, Col] = field(default_factory=dict)
    deltas: dict[str, DCol] = field(default_factory=dict)
    reliability: dict[str, np.ndarray] = field(default_factory=dict)
    cells: dict[float, tuple] = field(default_factory=dict)  # threshold -> (cw, c2, cn)
    theta: np.ndarray | None = None
    cov: np.ndarray | None = None  # (K, 3): cov00, cov01, cov11
    auc: AucParts | None = None
    ece_reps: np.ndarray | None = None
    mean_moments: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class SlicingMetrics:
    cells: SlicingCells
    stats: Stats
    models: dict[str, ModelMetrics]


class _Ctx:
    def __init__(self, z, confidence, thresholds, n_bins, replicates, seed, want):
        self.z = z
        self.confidence = confidence
        self.thresholds = thresholds
        self.n_bins = n_bins
        self.replicates = replicates
        self.seed = seed
        self.want = want


def compute_slicing(sc: SlicingCells, parts: dict[str, Partition], *, z: float,
                    confidence: float, thresholds: tuple[float, ...], n_bins: int,
                    replicates: int, seed: int, want: frozenset[str], baseline: str | None,
                    pass2: dict[str, Pass2Sums] | None = None,
                    warm: dict[str, np.ndarray] | None = None) -> SlicingMetrics:
    """Every metric of ``want`` (kernel names: auc, pr_auc, log_loss, brier, mean_score,
    calibration, ece) plus counts and thresholded metrics, per model, with deltas."""
    ctx = _Ctx(z, confidence, thresholds, n_bins, replicates, seed, want)
    first = next(iter(sc.models.values()))
    st = slice_stats(first, sc.K)
    pass2 = pass2 or {}
    out: dict[str, ModelMetrics] = {}
    order = ([baseline] if baseline else []) + [m for m in sc.models if m != baseline]
    for m in order:
        mc = sc.models[m]
        mm = ModelMetrics()
        _counts(mm, st, ctx)
        if "auc" in want or "pr_auc" in want:
            pt = parts[m]
            if "auc" in want:
                _auc(mm, pt, st, ctx)
            if "pr_auc" in want:
                _ap(mm, pt, st, ctx)
        for name in ("log_loss", "brier", "mean_score"):
            if name in want:
                _mean(mm, mc, st, name, ctx)
        if "calibration" in want:
            _calibration(mm, mc, st, ctx, pass2.get(m), (warm or {}).get(m))
        if "ece" in want:
            _ece(mm, mc, st, ctx, sc.index)
        if thresholds:
            _thresholds(mm, mc, st, ctx)
        out[m] = mm
        if baseline and m != baseline:
            _deltas(mm, out[baseline], sc.pairs.get(m), mc, sc.models[baseline], st, ctx,
                    pass2.get(m), pass2.get(baseline))
    return SlicingMetrics(sc, st, out)


def _zero(K):
    return np.zeros(K)


def _counts(mm: ModelMetrics, st: Stats, ctx: _Ctx) -> None:
    nf = st.n.astype(np.float64)
    none = [None] * st.K
    mm.columns["count"] = Col(nf, nf, nf, "exact", st.n, none, bound=_zero(st.K))
    mm.columns["weight"] = Col(st.W, st.W, st.W, "exact", st.n, none, bound=_zero(st.K))
    br = _div(st.Wpos, st.W)
    lo, hi = wilson(br, kish_n(st.W, st.W2), ctx.z)
    reasons = [B.NO_WEIGHT if st.W[k] <= 0 else None for k in range(st.K)]
    se = np.sqrt(np.maximum(np.nan_to_num(br * (1 - br)), 0) / _safe(kish_n(st.W, st.W2)))
    mm.columns["base_rate"] = Col(br, lo, hi, "wilson", st.n, reasons, se, _zero(st.K))


def _normal(value, var, z, lower=None, upper=None):
    se = np.sqrt(np.maximum(var, 0.0))
    lo, hi = normal_interval(value, se, z, lower, upper)
    return lo, hi, se


def _auc(mm: ModelMetrics, pt: Partition, st: Stats, ctx: _Ctx) -> None:
    a = auc_parts(pt, st)
    mm.auc = a
    reasons = class_reasons(st)
    ok = np.array([r is None for r in reasons])
    A = np.where(ok, a.num / _safe(st.Wpos * st.Wneg), np.nan)
    k = pt.k
    K = st.K
    m1p, m2p = _bc(k, pt.w2p * a.vp, K), _bc(k, pt.w2p * a.vp ** 2, K)
    m1n, m2n = _bc(k, pt.w2n * a.vn, K), _bc(k, pt.w2n * a.vn ** 2, K)
    var = _auc_var(st, m1p, m2p, m1n, m2n, A)
    lo, hi, se = _normal(A, var, ctx.z, 0.0, 1.0)
    bound = np.where(ok, a.bound, np.nan)
    notes = [None if (a.exact[i] or not ok[i]) else APPROX_AUC for i in range(K)]
    mm.columns["auc"] = Col(A, lo, hi, "delong", st.n, reasons, se, bound, notes)
    mm.mean_moments["auc"] = np.stack([m1p, m2p, m1n, m2n], axis=1)


def _auc_var(st, m1p, m2p, m1n, m2n, center):
    c = np.nan_to_num(center)
    cp = np.nan_to_num(small_sample_factor(st.Wpos, st.W2pos), nan=1.0)
    cn = np.nan_to_num(small_sample_factor(st.Wneg, st.W2neg), nan=1.0)
    sp = _centered(m2p, m1p, st.W2pos, c)
    sn = _centered(m2n, m1n, st.W2neg, c)
    return cp * sp / _safe(st.Wpos) ** 2 + cn * sn / _safe(st.Wneg) ** 2


def _ap(mm: ModelMetrics, pt: Partition, st: Stats, ctx: _Ctx) -> None:
    K = st.K
    k = pt.k
    p, n = pt.p, pt.n
    t = p + n
    tp_ge = st.Wpos[k] - _seg_cumsum(k, p, K) + p
    n_ge = st.W[k] - _seg_cumsum(k, t, K) + t
    prec = _div(tp_ge, n_ge)
    prec = np.where(n_ge > 0, prec, 0.0)
    est = p * prec
    tp0 = tp_ge - p
    n0 = n_ge - t
    single = pt.tie_single() | (p <= 0)
    lo_u = p * _div(tp0, n0 + p + n)
    lo_u = np.where(np.isfinite(lo_u), lo_u, 0.0)
    hi_u = p * np.where(n0 + p > 0, (tp0 + p) / _safe(n0 + p), 0.0)
    bnd_u = np.where(single, 0.0, np.maximum(est - lo_u, hi_u - est))
    reasons = class_reasons(st, need_negatives=False)
    ok = np.array([r is None for r in reasons])
    ap = np.where(ok, _bc(k, est, K) / _safe(st.Wpos), np.nan)
    bound = np.where(ok, _bc(k, bnd_u, K) / _safe(st.Wpos), np.nan)
    # influence values with units as tie blocks (ascending order within a slice)
    q1 = np.where(n_ge > 0, p / _safe(n_ge), 0.0)
    c1 = _seg_cumsum(k, q1, K)
    c2 = _seg_cumsum(k, q1 * prec, K)
    u_pos = prec + c1 - c2
    u_neg = -c2
    c = np.nan_to_num(ap)
    s = _bc(k, pt.w2p * (u_pos - c[k]) ** 2 + pt.w2n * u_neg ** 2, K)
    call = np.nan_to_num(small_sample_factor(st.W, st.W2), nan=1.0)
    var = call * s / _safe(st.Wpos) ** 2
    lo, hi, se = _normal(ap, var, ctx.z, 0.0, 1.0)
    exact = _bc(k, (~single).astype(np.float64), K) == 0
    notes = [None if (exact[i] or not ok[i]) else APPROX_AP for i in range(K)]
    mm.columns["pr_auc"] = Col(ap, lo, hi, "influence", st.n, reasons, se, bound, notes)


def _mean_sums(mc: ModelCells, name: str, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sum w v, sum w^2 v, sum w^2 v^2) per slice of a per-row value v."""
    v = mc.v
    y = mc.label.astype(np.float64)
    if name == "log_loss":
        a, b, c = v["w_ll"], v["w2_ll"], v["w2_ll2"]
    elif name == "brier":
        a, b, c = v["w_r2"], v["w2_r2"], v["w2_r4"]
    else:  # mean score: s = y - r
        a = y * v["w"] - v["w_r"]
        b = y * v["w2"] - v["w2_r"]
        c = y * v["w2"] - 2 * y * v["w2_r"] + v["w2_r2"]
    return _bc(mc.k, a, K), _bc(mc.k, b, K), _bc(mc.k, c, K)


def _mean(mm: ModelMetrics, mc: ModelCells, st: Stats, name: str, ctx: _Ctx) -> None:
    K = st.K
    s1, s2, s3 = _mean_sums(mc, name, K)
    reasons = [B.NO_ROWS if st.n[k] == 0 else (B.NO_WEIGHT if st.W[k] <= 0 else None)
               for k in range(K)]
    mean = _div(s1, st.W)
    call = np.nan_to_num(small_sample_factor(st.W, st.W2), nan=1.0)
    c = np.nan_to_num(mean)
    var = call * _centered(s3, s2, st.W2, c) / _safe(st.W) ** 2
    upper = None if name == "log_loss" else 1.0
    lo, hi, se = _normal(mean, var, ctx.z, 0.0, upper)
    mm.columns[name] = Col(mean, lo, hi, "normal", st.n, reasons, se, _zero(K))
    mm.mean_moments[name] = np.stack([s1, s2, s3], axis=1)


# --------------------------------------------------------------------------- calibration


def _calibration(mm: ModelMetrics, mc: ModelCells, st: Stats, ctx: _Ctx, p2: Pass2Sums | None,
                 warm: np.ndarray | None) -> None:
    K = st.K
    reasons = class_reasons(st)
    k = mc.k
    pos = mc.label == 1
    smin, smax = mc.v["s_min"], mc.v["s_max"]
    has = np.isfinite(smin)

    def red(fn, vals, mask, fill):
        out = np.full(K, fill)
        sel = mask & has
        fn.at(out, k[sel], vals[sel])
        return out

    lo_all = red(np.minimum, smin, np.ones_like(pos), np.inf)
    hi_all = red(np.maximum, smax, np.ones_like(pos), -np.inf)
    pmin = red(np.minimum, smin, pos, np.inf)
    pmax = red(np.maximum, smax, pos, -np.inf)
    nmin = red(np.minimum, smin, ~pos, np.inf)
    nmax = red(np.maximum, smax, ~pos, -np.inf)
    lg = lambda v: B.logit(np.clip(v, 0.0, 1.0))  # noqa: E731 - monotone, as the rows see it
    for i in range(K):
        if reasons[i] is not None:
            continue
        if lg(lo_all[i]) == lg(hi_all[i]):
            reasons[i] = B.CONSTANT
        elif lg(nmax[i]) <= lg(pmin[i]) or lg(pmax[i]) <= lg(nmin[i]):
            reasons[i] = B.SEPARABLE
    theta = np.full((K, 2), np.nan)
    cov = np.full((K, 3), np.nan)
    bound = np.full((K, 2), np.nan)
    notes: list[str | None] = [None] * K
    w = mc.v["w"]
    with np.errstate(divide="ignore", invalid="ignore"):
        xbar = np.where(w > 0, mc.v["w_x"] / np.where(w > 0, w, 1.0), 0.0)
        var_c = np.maximum(mc.v["w_x2"] - w * xbar * xbar, 0.0)
    spread = np.abs(lg(np.nan_to_num(smax, nan=0.5)) - lg(np.nan_to_num(smin, nan=0.5)))
    polished = p2 is not None and p2.newton is not None
    starts = np.searchsorted(k, np.arange(K + 1))
    for i in range(K):
        if reasons[i] is not None:
            continue
        if polished:
            H00, H01, H11, g0, g1 = p2.newton[i]
            det = H00 * H11 - H01 * H01
            t0 = p2.theta0[i]
            if not (math.isfinite(det) and det > 0 and np.all(np.isfinite(t0))):
                reasons[i] = B.NOT_CONVERGED
                continue
            step = np.array([H11 * g0 - H01 * g1, H00 * g1 - H01 * g0]) / det
            theta[i] = t0 + step
            cov[i] = (H11 / det, -H01 / det, H00 / det)
            bound[i] = 0.0 if np.max(np.abs(step)) <= POLISHED_STEP else np.abs(step)
            continue
        a, b = starts[i], starts[i + 1]
        sel = slice(a, b)
        keep = w[sel] > 0
        start = tuple(warm[i]) if warm is not None and np.all(np.isfinite(warm[i])) else (0.0, 1.0)
        fit = _fit_cells(xbar[sel][keep], mc.label[sel][keep], w[sel][keep], start)
        if fit is None:
            reasons[i] = ("calibration fit on bucket means failed (all rows in one bucket); "
                          "the exact pass is needed")
            continue
        theta[i], cv = fit
        cov[i] = (cv[0, 0], cv[0, 1], cv[1, 1])
        sv = var_c[sel][keep]
        xb = np.abs(xbar[sel][keep])
        bb = abs(theta[i][1])
        dg0 = 0.5 * SIGMA2_MAX * bb * bb * sv.sum()
        dg1 = 0.25 * bb * sv.sum() + 0.5 * SIGMA2_MAX * bb * bb * ((xb + spread[sel][keep]) * sv).sum()
        bound[i] = (abs(cv[0, 0]) * dg0 + abs(cv[0, 1]) * dg1,
                    abs(cv[0, 1]) * dg0 + abs(cv[1, 1]) * dg1)
        notes[i] = "Fisher information at the bucket-mean fit"
    good = np.array([r is None for r in reasons])
    val_a = np.where(good, theta[:, 0], np.nan)
    val_b = np.where(good, theta[:, 1], np.nan)
    lo_a, hi_a, se_a = _normal(val_a, np.where(good, cov[:, 0], np.nan), ctx.z)
    lo_b, hi_b, se_b = _normal(val_b, np.where(good, cov[:, 2], np.nan), ctx.z)
    mm.columns["calibration_intercept"] = Col(val_a, lo_a, hi_a, "fisher", st.n, list(reasons),
                                              se_a, np.where(good, bound[:, 0], np.nan), notes)
    mm.columns["calibration_slope"] = Col(val_b, lo_b, hi_b, "fisher", st.n, list(reasons), se_b,
                                          np.where(good, bound[:, 1], np.nan), notes)
    mm.theta = np.stack([val_a, val_b], axis=1)
    mm.cov = cov


def _fit_cells(x, y, w, start) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted logistic fit on cell means (Newton with line search, no separation checks:
    those were made on the true score ranges)."""
    if x.size == 0 or x.min() == x.max():
        return None
    yf = y.astype(np.float64)
    theta = np.array(start, dtype=np.float64)

    def loglik(t):
        eta = t[0] + t[1] * x
        return float(np.sum(w * (yf * eta - np.logaddexp(0.0, eta))))

    ll = loglik(theta)
    for _ in range(100):
        with np.errstate(over="ignore"):
            mu = 1.0 / (1.0 + np.exp(-(theta[0] + theta[1] * x)))
        v = w * mu * (1.0 - mu)
        r = w * (yf - mu)
        g = np.array([r.sum(), (r * x).sum()])
        h00, h01, h11 = v.sum(), (v * x).sum(), (v * x * x).sum()
        det = h00 * h11 - h01 * h01
        if not (math.isfinite(det) and det > 0):
            return None
        step = np.array([h11 * g[0] - h01 * g[1], h00 * g[1] - h01 * g[0]]) / det
        t = 1.0
        while True:
            cand = theta + t * step
            new = loglik(cand)
            if new >= ll - 1e-12 * max(1.0, abs(ll)) or t < 1e-10:
                break
            t *= 0.5
        if t < 1e-10:
            return None
        theta, ll = cand, new
        if t == 1.0 and np.max(np.abs(step)) <= 1e-12 * (1.0 + np.max(np.abs(theta))):
            break
    with np.errstate(over="ignore"):
        mu = 1.0 / (1.0 + np.exp(-(theta[0] + theta[1] * x)))
    v = w * mu * (1.0 - mu)
    h = np.array([[v.sum(), (v * x).sum()], [(v * x).sum(), (v * x * x).sum()]])
    det = h[0, 0] * h[1, 1] - h[0, 1] ** 2
    if not (math.isfinite(det) and det > 0):
        return None
    return theta, np.linalg.inv(h)


# --------------------------------------------------------------------------- ECE


def _ece(mm: ModelMetrics, mc: ModelCells, st: Stats, ctx: _Ctx, salt: int) -> None:
    K, nb = st.K, ctx.n_bins
    key = mc.k * nb + mc.bin
    size = K * nb
    y = mc.label.astype(np.float64)
    w = mc.v["w"]
    cnt = np.bincount(key, mc.v["n"], minlength=size).reshape(K, nb)
    ws = np.bincount(key, w, minlength=size).reshape(K, nb)
    wsc = np.bincount(key, y * w - mc.v["w_r"], minlength=size).reshape(K, nb)
    wy = np.bincount(key, y * w, minlength=size).reshape(K, nb)
    resid = np.bincount(key, mc.v["w_r"], minlength=size).reshape(K, nb)
    var = np.bincount(key, mc.v["w2_r2"], minlength=size).reshape(K, nb)
    ece = _div(np.abs(resid).sum(axis=1), st.W)
    rng = np.random.default_rng([ctx.seed, 1117, salt])
    R = ctx.replicates
    draws = rng.standard_normal((R, K, nb)) * np.sqrt(np.maximum(var, 0.0))[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = (np.abs(resid[None] + draws).sum(axis=2) / _safe(st.W)[None]).T
    reps = np.where((st.W > 0)[:, None], reps, np.nan)
    lo, hi = percentile_interval(reps, ctx.confidence, axis=1)
    reasons = [B.NO_ROWS if st.n[k] == 0 else (B.NO_WEIGHT if st.W[k] <= 0 else None)
               for k in range(K)]
    notes: list[str | None] = [APPROX_ECE if r is None else None for r in reasons]
    mm.columns["ece"] = Col(ece, lo, hi, "normal_bootstrap", st.n, reasons, None, _zero(K), notes)
    mm.ece_reps = reps
    with np.errstate(divide="ignore", invalid="ignore"):
        mm.reliability = {"count": np.rint(cnt).astype(np.int64), "weight": ws,
                          "mean_score": np.where(ws > 0, wsc / _safe(ws), np.nan),
                          "mean_label": np.where(ws > 0, wy / _safe(ws), np.nan)}


# --------------------------------------------------------------------------- thresholds


def _confusion(mc: ModelCells, K: int, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cell = (mc.side > j).astype(np.int64) * 2 + mc.label  # 0 tn, 1 fn, 2 fp, 3 tp
    key = mc.k * 4 + cell
    cw = np.bincount(key, mc.v["w"], minlength=4 * K).reshape(K, 4)
    c2 = np.bincount(key, mc.v["w2"], minlength=4 * K).reshape(K, 4)
    cn = np.rint(np.bincount(key, mc.v["n"], minlength=4 * K)).astype(np.int64).reshape(K, 4)
    return cw, c2, cn


def _thresholds(mm: ModelMetrics, mc: ModelCells, st: Stats, ctx: _Ctx) -> None:
    z = ctx.z
    K = st.K
    call = np.nan_to_num(small_sample_factor(st.W, st.W2), nan=1.0)
    for j, t in enumerate(ctx.thresholds):
        cw, c2, cn = _confusion(mc, K, j)
        mm.cells[t] = (cw, c2, cn)
        tp, fp, fn, tn = cw[:, 3], cw[:, 2], cw[:, 1], cw[:, 0]
        specs = {
            "precision": (tp, tp + fp, c2[:, 3] + c2[:, 2], cn[:, 3] + cn[:, 2], B.NO_PRED_POS),
            "recall": (tp, tp + fn, c2[:, 3] + c2[:, 1], cn[:, 3] + cn[:, 1], B.NO_POS),
            "fpr": (fp, fp + tn, c2[:, 2] + c2[:, 0], cn[:, 2] + cn[:, 0], B.NO_NEG),
        }
        for name, (num, den, den2, nn, why) in specs.items():
            p = _div(num, den)
            neff = kish_n(den, den2)
            lo, hi = wilson(p, neff, z)
            reasons = [why if den[k] <= 0 else None for k in range(K)]
            se = np.sqrt(np.maximum(np.nan_to_num(p * (1 - p)), 0) / _safe(neff))
            col = Col(p, lo, hi, "wilson", nn, reasons, se, _zero(K))
            mm.columns[f"{name}@{t!r}"] = col
            if name == "recall":
                mm.columns[f"tpr@{t!r}"] = col
        den = 2 * tp + fp + fn
        f1 = _div(2 * tp, den)
        reasons = [B.NO_F1 if den[k] <= 0 else None for k in range(K)]
        f = np.nan_to_num(f1)
        phi = np.stack([np.zeros(K), -f, -f, 2 - 2 * f], axis=1) * (st.W / _safe(den))[:, None]
        var = call * (c2 * phi * phi).sum(axis=1) / _safe(st.W) ** 2
        lo, hi, se = _normal(f1, var, z, 0.0, 1.0)
        mm.columns[f"f1@{t!r}"] = Col(f1, lo, hi, "normal", st.n, reasons, se, _zero(K))


# --------------------------------------------------------------------------- deltas


def _deltas(mm: ModelMetrics, bm: ModelMetrics, pc: PairCells | None, mc: ModelCells,
            bc: ModelCells, st: Stats, ctx: _Ctx, p2: Pass2Sums | None,
            base_p2: Pass2Sums | None = None) -> None:
    K = st.K
    z = ctx.z
    call = np.nan_to_num(small_sample_factor(st.W, st.W2), nan=1.0)
    zero = _zero(K)
    for name in ("count", "weight", "base_rate"):
        mm.deltas[name] = DCol(zero, zero, zero, "exact", [None] * K, zero)

    def unpaired(name: str, method: str, reasons, d, bound, extra_note=UNPAIRED):
        ca, cb = mm.columns[name], bm.columns[name]
        se = np.nan_to_num(ca.se, nan=np.inf) + np.nan_to_num(cb.se, nan=np.inf)
        lo, hi = normal_interval(d, se, z)
        return DCol(d, lo, hi, method, reasons, bound, [extra_note] * K)

    for name in ("auc", "pr_auc"):
        if name not in mm.columns:
            continue
        ca, cb = mm.columns[name], bm.columns[name]
        d = ca.value - cb.value
        reasons = [ca.reason[k] or cb.reason[k] for k in range(K)]
        bound = ca.bound + cb.bound
        method = "delong" if name == "auc" else "influence"
        if name == "auc" and p2 is not None and p2.auc_x is not None and \
                p2.auc_mom is not None and base_p2 is not None and base_p2.auc_mom is not None:
            ma, mb = p2.auc_mom, base_p2.auc_mom
            dd = np.nan_to_num(d)
            sp = (ma[:, 1] + mb[:, 1] - 2 * p2.auc_x[:, 0] - 2 * dd * (ma[:, 0] - mb[:, 0])
                  + dd * dd * st.W2pos)
            sn = (ma[:, 3] + mb[:, 3] - 2 * p2.auc_x[:, 1] - 2 * dd * (ma[:, 2] - mb[:, 2])
                  + dd * dd * st.W2neg)
            cp = np.nan_to_num(small_sample_factor(st.Wpos, st.W2pos), nan=1.0)
            cn = np.nan_to_num(small_sample_factor(st.Wneg, st.W2neg), nan=1.0)
            var = (cp * np.maximum(sp, 0.0) / _safe(st.Wpos) ** 2
                   + cn * np.maximum(sn, 0.0) / _safe(st.Wneg) ** 2)
            lo, hi, _ = _normal(d, var, z)
            exact = p2.auc_exact & base_p2.auc_exact
            notes = [None if exact[k] else APPROX_AUC for k in range(K)]
            mm.deltas[name] = DCol(d, lo, hi, method, reasons, bound, notes)
        else:
            mm.deltas[name] = unpaired(name, method, reasons, d, bound)

    cross = {}
    if pc is not None:
        for c in ("x_rr", "x_ll", "x_bb"):
            cross[c] = _bc(pc.k, pc.v[c], K)
    for name, xc in (("log_loss", "x_ll"), ("brier", "x_bb"), ("mean_score", "x_rr")):
        if name not in mm.columns:
            continue
        ca, cb = mm.columns[name], bm.columns[name]
        d = ca.value - cb.value
        reasons = [ca.reason[k] or cb.reason[k] for k in range(K)]
        if xc not in cross:
            mm.deltas[name] = unpaired(name, "normal", reasons, d, zero)
            continue
        if name == "mean_score":
            # s_a - s_b = r_b - r_a
            sa = _bc(mc.k, mc.v["w2_r"], K)
            sb = _bc(bc.k, bc.v["w2_r"], K)
            qa = _bc(mc.k, mc.v["w2_r2"], K)
            qb = _bc(bc.k, bc.v["w2_r2"], K)
            lin = sb - sa
        else:
            ma, mb = mm.mean_moments[name], bm.mean_moments[name]
            lin = ma[:, 1] - mb[:, 1]
            qa, qb = ma[:, 2], mb[:, 2]
        dd = np.nan_to_num(d)
        m2 = qa + qb - 2 * cross[xc]
        ss = _centered(m2, lin, st.W2, dd)
        var = call * ss / _safe(st.W) ** 2
        lo, hi, _ = _normal(d, var, z)
        mm.deltas[name] = DCol(d, lo, hi, "normal", reasons, zero)

    if "calibration_slope" in mm.columns:
        for name, j in (("calibration_intercept", 0), ("calibration_slope", 1)):
            ca, cb = mm.columns[name], bm.columns[name]
            d = ca.value - cb.value
            reasons = [ca.reason[k] or cb.reason[k] for k in range(K)]
            bound = ca.bound + cb.bound
            if p2 is not None and p2.sand is not None and mm.cov is not None:
                var = call * _sandwich(p2.sand, mm.cov, bm.cov, j, st.W) / _safe(st.W) ** 2
                lo, hi, _ = _normal(d, var, z)
                mm.deltas[name] = DCol(d, lo, hi, "sandwich", reasons, bound, [None] * K)
            else:
                mm.deltas[name] = unpaired(name, "sandwich", reasons, d, bound)

    if "ece" in mm.columns:
        ca, cb = mm.columns["ece"], bm.columns["ece"]
        d = ca.value - cb.value
        reasons = [ca.reason[k] or cb.reason[k] for k in range(K)]
        lo, hi = percentile_interval(mm.ece_reps - bm.ece_reps, ctx.confidence, axis=1)
        mm.deltas["ece"] = DCol(d, lo, hi, "normal_bootstrap", reasons, zero,
                                [APPROX_ECE + "; models drawn independently"] * K)

    if ctx.thresholds and pc is not None:
        _threshold_deltas(mm, bm, pc, st, ctx, call)


def _sandwich(sand: np.ndarray, cova: np.ndarray, covb: np.ndarray, j: int,
              W: np.ndarray) -> np.ndarray:
    """``sum w^2 (phi_a[j] - phi_b[j])^2`` with ``phi = W [r, r x] @ cov`` from the moments
    of the exact pass (columns of :data:`mlreg.scale.passes.SAND_COLUMNS`)."""
    aa0, aa1, aa2, bb0, bb1, bb2, ab00, ab10, ab01, ab11 = sand.T
    ca = np.stack([cova[:, 0], cova[:, 1]], axis=1) if j == 0 else \
        np.stack([cova[:, 1], cova[:, 2]], axis=1)
    cb = np.stack([covb[:, 0], covb[:, 1]], axis=1) if j == 0 else \
        np.stack([covb[:, 1], covb[:, 2]], axis=1)
    # phi_a[j] / W = ca0 r_a + ca1 r_a x_a ; same for b
    a0, a1 = ca[:, 0], ca[:, 1]
    b0, b1 = cb[:, 0], cb[:, 1]
    sa = a0 * a0 * aa0 + 2 * a0 * a1 * aa1 + a1 * a1 * aa2
    sb = b0 * b0 * bb0 + 2 * b0 * b1 * bb1 + b1 * b1 * bb2
    sab = a0 * b0 * ab00 + a1 * b0 * ab10 + a0 * b1 * ab01 + a1 * b1 * ab11
    return np.maximum(sa + sb - 2 * sab, 0.0) * W * W


def _threshold_deltas(mm, bm, pc: PairCells, st: Stats, ctx: _Ctx, call) -> None:
    K = st.K
    for j, t in enumerate(ctx.thresholds):
        c8 = (pc.side > j).astype(np.int64) * 4 + (pc.side_b > j).astype(np.int64) * 2 + pc.label
        w8 = np.bincount(pc.k * 8 + c8, pc.v["w2"], minlength=8 * K).reshape(K, 8)
        for name in ("precision", "recall", "fpr", "f1"):
            key = f"{name}@{t!r}"
            ca, cb = mm.columns[key], bm.columns[key]
            d = ca.value - cb.value
            ss = paired_threshold_ss(name, w8, st.W, ca.value, mm.cells[t][0], cb.value,
                                     bm.cells[t][0])
            var = call * ss / _safe(st.W) ** 2
            lo, hi, _ = _normal(d, var, ctx.z)
            reasons = [ca.reason[k] or cb.reason[k] for k in range(K)]
            dc = DCol(d, lo, hi, "normal", reasons, _zero(K))
            mm.deltas[key] = dc
            if name == "recall":
                mm.deltas[f"tpr@{t!r}"] = dc
