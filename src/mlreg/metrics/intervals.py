"""Interval machinery: normal quantiles, Wilson intervals, linearisation (influence-function)
variances, and the seeded, vectorised, bucketed Poisson bootstrap.

Bootstrap design. Each row is hashed into one of ``B`` buckets (``B = 1024`` by default) by its
content (label and score bits, or an example id when one is given), so the assignment does not
depend on row order. Replicate ``r`` gives every bucket ``b`` the weight ``P[r, b] ~ Poisson(1)``
drawn from ``numpy.random.default_rng(seed)``; a row's replicate weight is its own weight times
its bucket's. When a slice has fewer rows than buckets this is (up to hash collisions) the row
level Poisson bootstrap; on large slices it is the bucketed ("random groups") Poisson bootstrap
used at scale, whose variance estimate has about ``B`` degrees of freedom. Any statistic that is
a function of per-bucket sums is bootstrapped with one small matrix product per slice.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = [
    "z_value",
    "wilson",
    "normal_interval",
    "kish_n",
    "linearized_variance",
    "splitmix64",
    "row_buckets",
    "poisson_replicates",
    "percentile_interval",
    "DEFAULT_BUCKETS",
    "DEFAULT_REPLICATES",
]

DEFAULT_BUCKETS = 1024
DEFAULT_REPLICATES = 200

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def z_value(confidence: float) -> float:
    """Two-sided standard-normal quantile for ``confidence`` (0.95 -> 1.95996...)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie in (0, 1)")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def kish_n(w_sum: float | np.ndarray, w2_sum: float | np.ndarray) -> float | np.ndarray:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` (0 where ``sum w^2`` is 0)."""
    w_sum = np.asarray(w_sum, dtype=np.float64)
    w2_sum = np.asarray(w2_sum, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(w2_sum > 0, w_sum * w_sum / np.where(w2_sum > 0, w2_sum, 1.0), 0.0)
    return out if out.ndim else float(out)


def wilson(p: float | np.ndarray, n: float | np.ndarray, z: float) -> tuple:
    """Wilson score interval of a proportion ``p`` observed on (effective) ``n`` trials.

    Works elementwise on arrays. Returns ``(lo, hi)``; NaN where ``n <= 0`` or ``p`` is NaN.
    """
    p = np.asarray(p, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    ok = (n > 0) & np.isfinite(p)
    ns = np.where(ok, n, 1.0)
    ps = np.clip(np.where(ok, p, 0.5), 0.0, 1.0)
    z2 = z * z
    denom = 1.0 + z2 / ns
    center = (ps + z2 / (2.0 * ns)) / denom
    half = z * np.sqrt(np.maximum(ps * (1.0 - ps) / ns + z2 / (4.0 * ns * ns), 0.0)) / denom
    lo = np.where(ok, np.where(ps <= 0.0, 0.0, np.clip(center - half, 0.0, 1.0)), np.nan)
    hi = np.where(ok, np.where(ps >= 1.0, 1.0, np.clip(center + half, 0.0, 1.0)), np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def normal_interval(value, se, z: float, lower: float | None = None,
                    upper: float | None = None) -> tuple:
    """``value -/+ z * se``, optionally clipped to ``[lower, upper]``; elementwise on arrays."""
    value = np.asarray(value, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    lo = value - z * se
    hi = value + z * se
    if lower is not None or upper is not None:
        lo = np.clip(lo, lower, upper)
        hi = np.clip(hi, lower, upper)
    bad = ~(np.isfinite(value) & np.isfinite(se))
    lo = np.where(bad, np.nan, lo)
    hi = np.where(bad, np.nan, hi)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def small_sample_factor(w_sum, w2_sum):
    """``n_eff / (n_eff - 1)`` with the Kish ``n_eff``; the usual unbiasing of a variance."""
    n = np.asarray(kish_n(w_sum, w2_sum), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(n > 1.0, n / np.where(n > 1.0, n - 1.0, 1.0), np.nan)
    return out if out.ndim else float(out)


def linearized_variance(phi: np.ndarray, w: np.ndarray | None = None,
                        strata: np.ndarray | None = None) -> float:
    """Variance of a statistic from its influence values.

    With ``theta_hat - theta ~ sum_i w_i phi_i / W``, the variance is
    ``sum_s c_s * sum_{i in s} w_i^2 phi_i^2 / W^2`` where ``c_s = n_s/(n_s-1)`` (Kish ``n_s``)
    corrects each stratum (the two classes for AUC, which reproduces DeLong's variance exactly on
    unweighted data; one stratum otherwise).
    """
    phi = np.asarray(phi, dtype=np.float64)
    w = np.ones_like(phi) if w is None else np.asarray(w, dtype=np.float64)
    total = float(w.sum())
    if total <= 0:
        return float("nan")
    if strata is None:
        strata = np.zeros(phi.shape[0], dtype=np.int64)
    var = 0.0
    for s in np.unique(strata):
        m = strata == s
        ws = w[m]
        c = small_sample_factor(ws.sum(), (ws * ws).sum())
        if not math.isfinite(c):
            c = 1.0
        var += c * float(np.sum((ws * phi[m]) ** 2))
    return var / (total * total)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def _as_hash_input(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        a = np.ascontiguousarray(arr, dtype=np.float64) + 0.0  # -0.0 -> 0.0
        return a.view(np.uint64)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64).view(np.uint64)
    import pandas as pd  # object / string ids

    return pd.util.hash_array(np.asarray(arr, dtype=object)).astype(np.uint64)


def row_buckets(columns: list[np.ndarray], seed: int = 0,
                n_buckets: int = DEFAULT_BUCKETS) -> np.ndarray:
    """Bucket of every row in ``[0, n_buckets)`` from a hash of the given columns' values.

    Identical rows share a bucket, so the assignment is independent of row order.
    """
    if not columns:
        raise ValueError("row_buckets needs at least one column")
    n = len(columns[0])
    dtype = np.uint16 if n_buckets <= 65536 else np.uint32
    out = np.empty(n, dtype=dtype)
    h0 = np.uint64((int(seed) * 0x9E3779B97F4A7C15) % 2**64)
    step = 1 << 18  # chunked: large temporaries cost page faults
    for a in range(0, n, step):
        e = min(a + step, n)
        h = np.full(e - a, h0, dtype=np.uint64)
        for col in columns:
            with np.errstate(over="ignore"):
                h = splitmix64(h ^ _as_hash_input(col[a:e]))
        out[a:e] = h % np.uint64(n_buckets)
    return out


def poisson_replicates(seed: int, replicates: int, n_buckets: int) -> np.ndarray:
    """The ``(replicates, n_buckets)`` matrix of Poisson(1) bucket weights for ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.poisson(1.0, size=(int(replicates), int(n_buckets))).astype(np.float64)


def percentile_interval(reps: np.ndarray, confidence: float, axis: int = 0) -> tuple:
    """Percentile interval of bootstrap replicates along ``axis`` (NaN replicates ignored;
    linear interpolation, numpy's default). NaN where fewer than half are finite."""
    reps = np.moveaxis(np.asarray(reps, dtype=np.float64), axis, -1)
    alpha = 1.0 - confidence
    finite = np.isfinite(reps)
    cnt = finite.sum(axis=-1)
    srt = np.sort(np.where(finite, reps, np.inf), axis=-1)  # non-finite last
    out = []
    for q in (alpha / 2, 1 - alpha / 2):
        pos = q * np.maximum(cnt - 1, 0)
        lo_i = np.floor(pos).astype(np.int64)
        hi_i = np.minimum(lo_i + 1, np.maximum(cnt - 1, 0))
        frac = pos - lo_i
        a = np.take_along_axis(srt, lo_i[..., None], axis=-1)[..., 0]
        b = np.take_along_axis(srt, hi_i[..., None], axis=-1)[..., 0]
        with np.errstate(invalid="ignore"):
            v = a + (b - a) * frac
        out.append(np.where((cnt * 2 >= reps.shape[-1]) & (cnt > 0), v, np.nan))
    lo, hi = out
    if np.ndim(lo) == 0:
        return float(lo), float(hi)
    return lo, hi
