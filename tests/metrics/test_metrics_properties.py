"""Hypothesis properties of evaluate_predictions: slice counts add up, row order does not
matter, a model compared with itself has every delta exactly zero."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlreg.metrics import evaluate_predictions
from testkit import engine_path

#: run each property on both engine paths: numpy passes, compiled kernels
PATHS = pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "compiled"])

METRICS = ["count", "weight", "base_rate", "mean_score", "auc", "pr_auc", "log_loss", "brier",
           "calibration_slope", "calibration_intercept", "ece", "precision@0.5", "recall@0.3",
           "f1", "fpr"]
SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def frames(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(3, 80))
    ties = draw(st.booleans())
    weighted = draw(st.booleans())
    rng = np.random.default_rng(seed)
    s = rng.random(n)
    if ties:
        s = np.round(s, 1)
    y = (rng.random(n) < s).astype(int)
    df = pd.DataFrame({
        "y": y, "a": s, "b": np.clip(np.round(s + rng.normal(0, 0.2, n), 2), 0, 1),
        "c1": rng.choice(["x", "y", "z"], n), "c2": rng.integers(0, 3, n),
        "w": rng.exponential(1.0, n) if weighted else np.ones(n),
    })
    return df, weighted


def _evaluate(df, weighted, compiled, **kw):
    with pytest.MonkeyPatch.context() as mp:
        engine_path(mp, compiled)
        return evaluate_predictions(
            df, label="y", scores={"candidate": "a", "baseline": "b"},
            weight="w" if weighted else None, slice_columns=["c1", "c2"],
            crosses=[("c1", "c2")], metrics=METRICS, bootstrap_replicates=30,
            bootstrap_buckets=64, **kw)


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat(v, f"{prefix}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _flat(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


@PATHS
@SETTINGS
@given(case=frames())
def test_slice_counts_add_up(case, compiled):
    df, weighted = case
    res = _evaluate(df, weighted, compiled)
    n, total_w = len(df), float(df.w.sum())
    assert res.overall.n == n
    for cols in [("c1",), ("c2",), ("c1", "c2")]:
        group = [s for s in res.slices if s.columns == cols]
        assert sum(s.n for s in group) == n
        assert math.isclose(sum(s.weight for s in group), total_w, rel_tol=1e-9)
        for s in group:
            assert s.metrics["candidate"]["count"].value == s.n


@PATHS
@SETTINGS
@given(case=frames(), seed=st.integers(0, 2**32 - 1))
def test_row_order_does_not_change_any_result(case, seed, compiled):
    df, weighted = case
    perm = np.random.default_rng(seed).permutation(len(df))
    a = dict(_flat(_evaluate(df, weighted, compiled).to_dict()))
    b = dict(_flat(_evaluate(df.iloc[perm].reset_index(drop=True), weighted,
                             compiled).to_dict()))
    assert a.keys() == b.keys()
    for key, va in a.items():
        vb = b[key]
        if isinstance(va, float) and isinstance(vb, float):
            # equal up to floating-point summation order (variances of near-degenerate tiny
            # slices lose a few digits to cancellation)
            assert math.isclose(va, vb, rel_tol=1e-6, abs_tol=1e-9), (key, va, vb)
        else:
            assert va == vb, (key, va, vb)


@PATHS
@SETTINGS
@given(case=frames())
def test_candidate_against_itself_has_every_delta_exactly_zero(case, compiled):
    df, weighted = case
    df = df.assign(b=df.a)
    res = _evaluate(df, weighted, compiled)
    for s in res.slices:
        for metric, d in s.deltas["candidate"].items():
            if d.defined:
                assert d.value == 0.0, (s.name, metric)
                # bootstrap intervals of tiny slices may be unavailable (NaN), never nonzero
                if not (math.isnan(d.lo) and d.method == "poisson_bootstrap"):
                    assert d.lo == 0.0 and d.hi == 0.0, (s.name, metric, d)
            else:
                assert not s.metrics["candidate"][metric].defined, (s.name, metric)
