"""Ranking metrics per query: precision@k, recall@k, NDCG@k and MRR, averaged over queries.

Rows are grouped into queries (optionally within slices); inside a query, rows are ranked by score
descending. Ties are handled the way scikit-learn's ``ndcg_score`` does by default
(``ignore_ties=False``): every item of a block of tied scores receives the block's average gain,
which equals the expectation over all orders of the tied items. The same expectation is used for
precision@k and recall@k (the expected number of relevant items in the first k) and for MRR (the
expected reciprocal rank of the first relevant item under a random order of ties).

* relevance: graded (any value >= 0) for NDCG, with scikit-learn's linear gain ``rel /
  log2(rank + 1)``; ``rel > 0`` counts as relevant for the other metrics.
* ``precision_at_k`` divides by ``k`` (not by the query length); ``k=None`` means the whole list.
* a query with no relevant item scores 0 for precision@k, NDCG (scikit-learn's convention) and
  MRR, and is left out of recall@k (undefined there).
* the slice value is the unweighted mean over its queries; row weights are ignored. Intervals come
  from the bucketed Poisson bootstrap with queries as the resampled units.
"""

from __future__ import annotations

import math

import numpy as np

from mlreg.errors import InputError
from mlreg.metrics.intervals import (
    DEFAULT_BUCKETS,
    DEFAULT_REPLICATES,
    percentile_interval,
    poisson_replicates,
    row_buckets,
)
from mlreg.metrics.results import MetricValue, PairedDelta

__all__ = ["RANKING_METRICS", "query_metrics", "ranking_metric", "ranking_delta", "query_units"]

RANKING_METRICS = ("precision_at_k", "recall_at_k", "ndcg", "mrr")


def query_units(*codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Combine integer code arrays into dense unit codes (0..U-1) in lexicographic order."""
    combined = np.zeros(codes[0].shape[0], dtype=np.int64)
    for c in codes:
        c = np.asarray(c, dtype=np.int64)
        k = int(c.max()) + 1 if c.size else 1
        combined = combined * k + c
    uniq, inv = np.unique(combined, return_inverse=True)
    return inv.astype(np.int64), int(uniq.shape[0])


def _discount_cumsum(length: int) -> np.ndarray:
    d = np.zeros(length + 1)
    d[1:] = np.cumsum(1.0 / np.log2(np.arange(length) + 2.0))
    return d


def _expected_reciprocal(a: int, m: int, r: int, k: int | None) -> float:
    """E[1 / (a + J)] where J is the 1-based rank of the first of r relevant items among m
    randomly ordered tied items placed after a items; 0 beyond the cut-off k."""
    total = 0.0
    denom = math.comb(m, r)
    for j in range(1, m - r + 2):
        rank = a + j
        if k is not None and rank > k:
            break
        total += math.comb(m - j, r - 1) / denom / rank
    return total


def query_metrics(units: np.ndarray, n_units: int, relevance: np.ndarray, score: np.ndarray,
                  k: int | None) -> dict[str, np.ndarray]:
    """Per-unit (query) metrics. Returns arrays of length ``n_units``: ``precision_at_k``,
    ``recall_at_k`` (NaN without relevant items), ``ndcg``, ``mrr``, and ``n_relevant``."""
    units = np.asarray(units, dtype=np.int64)
    rel = np.asarray(relevance, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    n = units.shape[0]
    if k is not None and k < 1:
        raise InputError("k must be a positive integer")
    order = np.lexsort((-s, units))
    u = units[order]
    ss = s[order]
    rr = rel[order]
    sizes = np.bincount(u, minlength=n_units)
    starts = np.zeros(n_units + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    pos = np.arange(n, dtype=np.int64) - starts[u]
    newb = np.ones(n, dtype=bool)
    if n > 1:
        newb[1:] = (ss[1:] != ss[:-1]) | (u[1:] != u[:-1])
    bstart = np.flatnonzero(newb)
    bunit = u[bstart]
    bsize = np.diff(np.append(bstart, n))
    ba = pos[bstart]  # block start position within its query
    bid = np.cumsum(newb) - 1
    is_rel = (rr > 0).astype(np.float64)
    bgain = np.bincount(bid, rr, minlength=bstart.shape[0])
    brel = np.bincount(bid, is_rel, minlength=bstart.shape[0])
    maxlen = int(sizes.max()) if n else 0
    cut = maxlen if k is None else int(k)
    disc = _discount_cumsum(max(maxlen, cut))
    lo = np.minimum(ba, cut)
    hi = np.minimum(ba + bsize, cut)
    covered = (hi - lo).astype(np.float64)
    dcg = np.bincount(bunit, bgain / bsize * (disc[hi] - disc[lo]), minlength=n_units)
    hits = np.bincount(bunit, brel / bsize * covered, minlength=n_units)
    n_rel = np.bincount(u, is_rel, minlength=n_units)
    # ideal DCG: relevance sorted descending within each unit
    iorder = np.lexsort((-rr, u))
    ir = rr[iorder]
    ipos = pos  # positions are the same layout (units contiguous, same sizes)
    idisc = np.where(ipos < cut, 1.0 / np.log2(ipos + 2.0), 0.0)
    idcg = np.bincount(u, ir * idisc, minlength=n_units)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndcg = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)
        denom_k = np.full(n_units, float(cut)) if k is not None else sizes.astype(np.float64)
        prec = np.where(denom_k > 0, hits / np.where(denom_k > 0, denom_k, 1.0), 0.0)
        rec = np.where(n_rel > 0, hits / np.where(n_rel > 0, n_rel, 1.0), np.nan)
    # MRR: first block holding a relevant item in each unit
    mrr = np.zeros(n_units)
    relblocks = np.flatnonzero(brel > 0)
    if relblocks.size:
        first_unit, first_idx = np.unique(bunit[relblocks], return_index=True)
        fb = relblocks[first_idx]
        a = ba[fb]
        m = bsize[fb]
        r = brel[fb].astype(np.int64)
        simple = (m == 1) | (r == m)
        val = np.where(simple, 1.0 / (a + 1.0), 0.0)
        if k is not None:
            val = np.where(simple & (a + 1 > k), 0.0, val)
        for i in np.flatnonzero(~simple):
            val[i] = _expected_reciprocal(int(a[i]), int(m[i]), int(r[i]), k)
        mrr[first_unit] = val
    return {"precision_at_k": prec, "recall_at_k": rec, "ndcg": ndcg, "mrr": mrr,
            "n_relevant": n_rel, "size": sizes}


def _bucket_means(values: np.ndarray, ubuckets: np.ndarray, reps: np.ndarray,
                  n_buckets: int) -> np.ndarray:
    ok = np.isfinite(values)
    sums = np.bincount(ubuckets[ok], values[ok], minlength=n_buckets)
    cnts = np.bincount(ubuckets[ok], minlength=n_buckets).astype(np.float64)
    num = reps @ sums
    den = reps @ cnts
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def aggregate_queries(values: np.ndarray, ubuckets: np.ndarray, reps: np.ndarray,
                      n_buckets: int, confidence: float, name: str) -> MetricValue:
    """Mean of the defined per-query values with a bucketed Poisson-bootstrap interval."""
    ok = np.isfinite(values)
    nq = int(ok.sum())
    if nq == 0:
        why = "no query with a relevant item" if name == "recall_at_k" else "no queries"
        return MetricValue.undefined(why, 0)
    value = float(values[ok].mean())
    lo, hi = percentile_interval(_bucket_means(values, ubuckets, reps, n_buckets), confidence)
    return MetricValue(value, lo, hi, "poisson_bootstrap", None, nq)


def delta_queries(va: np.ndarray, vb: np.ndarray, ubuckets: np.ndarray, reps: np.ndarray,
                  n_buckets: int, confidence: float) -> PairedDelta:
    ok = np.isfinite(va) & np.isfinite(vb)
    if not ok.any():
        return PairedDelta.undefined("no query where both models are defined")
    d = np.where(ok, va - vb, np.nan)
    value = float(np.mean(va[ok]) - np.mean(vb[ok]))
    lo, hi = percentile_interval(_bucket_means(d, ubuckets, reps, n_buckets), confidence)
    return PairedDelta(value, lo, hi, "poisson_bootstrap", None)


def _unit_setup(query, relevance, score):
    q = np.asarray(query)
    rel = np.asarray(relevance, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    if not (q.shape[0] == rel.shape[0] == s.shape[0]):
        raise InputError("query, relevance and score differ in length")
    if rel.size and (not np.all(np.isfinite(rel)) or rel.min() < 0):
        raise InputError("relevance must be finite and >= 0")
    codes, uniq_idx = np.unique(q, return_inverse=True)
    return codes, uniq_idx.astype(np.int64), rel, s


def ranking_metric(name: str, query, relevance, score, *, k: int | None = None,
                   confidence: float = 0.95, replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                   n_buckets: int = DEFAULT_BUCKETS) -> MetricValue:
    """One ranking metric over the queries of one slice (reference single-slice form)."""
    if name not in RANKING_METRICS:
        raise KeyError(name)
    uniq, units, rel, s = _unit_setup(query, relevance, score)
    if units.size == 0:
        return MetricValue.undefined("empty slice", 0)
    per = query_metrics(units, uniq.shape[0], rel, s, k)
    ub = row_buckets([uniq], seed, n_buckets).astype(np.int64)
    reps = poisson_replicates(seed, replicates, n_buckets)
    return aggregate_queries(per[name], ub, reps, n_buckets, confidence, name)


def ranking_delta(name: str, query, relevance, score_model, score_baseline, *,
                  k: int | None = None, confidence: float = 0.95,
                  replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                  n_buckets: int = DEFAULT_BUCKETS) -> PairedDelta:
    uniq, units, rel, sa = _unit_setup(query, relevance, score_model)
    sb = np.asarray(score_baseline, dtype=np.float64)
    pa = query_metrics(units, uniq.shape[0], rel, sa, k)[name]
    pb = query_metrics(units, uniq.shape[0], rel, sb, k)[name]
    ub = row_buckets([uniq], seed, n_buckets).astype(np.int64)
    reps = poisson_replicates(seed, replicates, n_buckets)
    return delta_queries(pa, pb, ub, reps, n_buckets, confidence)
