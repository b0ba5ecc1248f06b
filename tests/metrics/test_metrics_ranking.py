"""Ranking metrics per query: NDCG against scikit-learn, the others against brute force over
all orders of tied items (the tie-averaging convention)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score

from mlreg.metrics import evaluate_predictions
from mlreg.metrics.ranking import query_metrics, ranking_metric


def _queries(n_q=40, length=8, ties=False, seed=0):
    rng = np.random.default_rng(seed)
    rel = rng.integers(0, 4, (n_q, length)).astype(float)
    rel[rng.random((n_q, length)) < 0.6] = 0
    s = rng.random((n_q, length))
    if ties:
        s = np.round(s * 3) / 3
    return rel, s


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("k", [None, 1, 3, 10])
def test_ndcg_matches_sklearn(ties, k):
    rel, s = _queries(ties=ties, seed=int(ties))
    n_q, length = rel.shape
    units = np.repeat(np.arange(n_q), length)
    perm = np.random.default_rng(1).permutation(units.size)
    got = query_metrics(units[perm], n_q, rel.ravel()[perm], s.ravel()[perm], k)["ndcg"]
    want = np.array([ndcg_score(rel[i:i + 1], s[i:i + 1], k=k) for i in range(n_q)])
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got.mean() == pytest.approx(ndcg_score(rel, s, k=k), abs=1e-12)


def _brute(rel, s, k):
    """Expected precision@k, recall@k and reciprocal rank over all orders of tied items."""
    n = len(rel)
    blocks = {}
    for i in range(n):
        blocks.setdefault(-s[i], []).append(i)
    keys = sorted(blocks)
    perms = [list(itertools.permutations(blocks[key])) for key in keys]
    tot_p = tot_r = tot_rr = 0.0
    count = 0
    n_rel = int((rel > 0).sum())
    cut = n if k is None else k
    for combo in itertools.product(*perms):
        order = [i for block in combo for i in block]
        hits = sum(rel[i] > 0 for i in order[:cut])
        tot_p += hits / cut
        tot_r += hits / n_rel if n_rel else 0.0
        first = next((r for r, i in enumerate(order) if rel[i] > 0), None)
        tot_rr += 0.0 if first is None or first >= cut else 1.0 / (first + 1)
        count += 1
    return tot_p / count, (tot_r / count if n_rel else math.nan), tot_rr / count


@pytest.mark.parametrize("k", [None, 2, 4])
def test_precision_recall_mrr_expected_over_tie_orders(k):
    rng = np.random.default_rng(k or 0)
    for _ in range(25):
        length = 6
        rel = (rng.random(length) < 0.4).astype(float)
        s = rng.integers(0, 3, length) / 2.0  # heavy ties
        got = query_metrics(np.zeros(length, dtype=np.int64), 1, rel, s, k)
        p, r, rr = _brute(rel, s, k)
        assert got["precision_at_k"][0] == pytest.approx(p)
        assert got["mrr"][0] == pytest.approx(rr)
        if math.isnan(r):
            assert math.isnan(got["recall_at_k"][0])
        else:
            assert got["recall_at_k"][0] == pytest.approx(r)


def test_ranking_through_evaluate_and_deltas():
    rel, s = _queries(n_q=60, length=6, seed=3)
    n_q, length = rel.shape
    s2 = np.clip(s + np.random.default_rng(9).normal(0, 0.3, s.shape), 0, 1)
    df = pd.DataFrame({
        "q": np.repeat([f"q{i:03d}" for i in range(n_q)], length),
        "rel": rel.ravel(), "a": s.ravel(), "b": s2.ravel(),
        "market": np.repeat(np.where(np.arange(n_q) % 3 == 0, "x", "y"), length),
    })
    res = evaluate_predictions(df, label="rel", scores={"candidate": "a", "baseline": "b"},
                               query="q", slice_columns=["market"],
                               metrics=["ndcg@3", "mrr", "precision_at_k@2", "recall_at_k@2"],
                               bootstrap_replicates=50)
    m = res.overall.metrics["candidate"]["ndcg@3"]
    assert m.value == pytest.approx(ndcg_score(rel, s, k=3))
    assert m.n == n_q and m.method == "poisson_bootstrap" and m.lo <= m.value <= m.hi
    d = res.overall.deltas["candidate"]["ndcg@3"]
    assert d.value == pytest.approx(ndcg_score(rel, s, k=3) - ndcg_score(rel, s2, k=3))
    xs = np.arange(n_q) % 3 == 0
    mx = res.slice("market=x").metrics["baseline"]["ndcg@3"]
    assert mx.value == pytest.approx(ndcg_score(rel[xs], s2[xs], k=3))
    single = ranking_metric("ndcg", df.q, df.rel, df.a, k=3, replicates=50)
    assert single.value == pytest.approx(m.value)
