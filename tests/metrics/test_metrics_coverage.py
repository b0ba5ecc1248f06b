"""Seeded simulation: 95% intervals cover the truth about 95% of the time.

Binormal model: y ~ Bernoulli(pi), x | y ~ N(d * y, 1), score = expit(x). Then the true AUC is
Phi(d / sqrt(2)) and logit P(y=1 | x) = logit(pi) - d^2 / 2 + d * x exactly, so the true
calibration slope on logit(score) is d. A baseline scored on x + N(0, s^2) noise has AUC
Phi(d / sqrt(2 (1 + s^2))), which gives the truth of the paired AUC delta. The 200 simulations
are 200 slices of one evaluation.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from mlreg.metrics import evaluate_predictions

SIMS, ROWS, PI, D, NOISE = 200, 1500, 0.3, 1.2, 0.8


def test_interval_coverage_near_95_percent():
    rng = np.random.default_rng(2024)
    n = SIMS * ROWS
    y = (rng.random(n) < PI).astype(int)
    x = rng.normal(D * y, 1.0)
    xb = x + rng.normal(0, NOISE, n)
    df = pd.DataFrame({"y": y, "a": 1 / (1 + np.exp(-x)), "b": 1 / (1 + np.exp(-xb)),
                       "sim": np.repeat(np.arange(SIMS), ROWS)})
    res = evaluate_predictions(df, label="y", scores={"candidate": "a", "baseline": "b"},
                               slice_columns=["sim"],
                               metrics=["auc", "calibration_slope", "calibration_intercept"])
    phi = NormalDist().cdf
    truth = {"auc": phi(D / math.sqrt(2)), "calibration_slope": D,
             "calibration_intercept": math.log(PI / (1 - PI)) - D * D / 2}
    true_delta = phi(D / math.sqrt(2)) - phi(D / math.sqrt(2 * (1 + NOISE**2)))
    sims = res.by_slicing("column")
    assert len(sims) == SIMS
    for metric, value in truth.items():
        hits = [s.metrics["candidate"][metric].lo <= value <= s.metrics["candidate"][metric].hi
                for s in sims]
        coverage = sum(hits) / SIMS
        assert 0.90 <= coverage <= 0.99, (metric, coverage)
    hits = [s.deltas["candidate"]["auc"].lo <= true_delta <= s.deltas["candidate"]["auc"].hi
            for s in sims]
    assert 0.90 <= sum(hits) / SIMS <= 0.99, sum(hits) / SIMS
