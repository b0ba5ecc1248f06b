"""Interval helpers: Wilson, linearised variance, buckets, replicates, percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from mlreg.metrics.intervals import (
    kish_n,
    linearized_variance,
    percentile_interval,
    poisson_replicates,
    row_buckets,
    wilson,
    z_value,
)


def test_z_value():
    assert z_value(0.95) == pytest.approx(1.959963984540054)
    with pytest.raises(ValueError):
        z_value(1.0)


def test_wilson_known_values():
    lo, hi = wilson(0.5, 100, z_value(0.95))
    assert (lo, hi) == pytest.approx((0.4038315, 0.5961685), abs=1e-6)
    lo, hi = wilson(0.0, 10, z_value(0.95))
    assert lo == 0.0 and hi == pytest.approx(0.2775328, abs=1e-6)
    lo, hi = wilson(np.array([0.2, np.nan]), np.array([50, 0]), 1.96)
    assert np.isfinite(lo[0]) and np.isnan(lo[1])


def test_kish_n():
    assert kish_n(4.0, 4.0) == 4.0
    assert kish_n(np.array([3.0, 0.0]), np.array([5.0, 0.0])).tolist() == [1.8, 0.0]


def test_linearized_variance_of_a_mean():
    x = np.random.default_rng(0).normal(size=500)
    var = linearized_variance(x - x.mean())
    assert var == pytest.approx(x.var(ddof=1) / 500)


def test_row_buckets_depend_on_content_not_order():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    s = rng.random(1000)
    b = row_buckets([y, s], seed=3, n_buckets=64)
    perm = rng.permutation(1000)
    assert np.array_equal(row_buckets([y[perm], s[perm]], seed=3, n_buckets=64), b[perm])
    assert b.max() < 64 and len(np.unique(b)) > 50
    assert not np.array_equal(row_buckets([y, s], seed=4, n_buckets=64), b)
    ids = np.array([f"id{i}" for i in range(1000)], dtype=object)
    assert row_buckets([ids], 0, 16).shape == (1000,)


def test_poisson_replicates_are_seeded():
    a = poisson_replicates(7, 20, 32)
    assert a.shape == (20, 32) and np.array_equal(a, poisson_replicates(7, 20, 32))
    assert a.mean() == pytest.approx(1.0, abs=0.15)


def test_percentile_interval_ignores_nan_and_needs_enough():
    reps = np.concatenate([np.arange(100.0), [np.nan] * 10])
    lo, hi = percentile_interval(reps, 0.9)
    assert lo == pytest.approx(4.95) and hi == pytest.approx(94.05)
    lo, hi = percentile_interval(np.array([1.0] + [np.nan] * 5), 0.9)
    assert np.isnan(lo) and np.isnan(hi)
