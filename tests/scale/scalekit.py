"""Helpers for the scale tests: data with ties, CTR-like scores, weights and one-class slices,
and the comparison of a scaled result with the in-memory engine's."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pandas as pd

from testkit import ROOT

sys.path.insert(0, str(ROOT / "tests" / "gates"))
from gatekit import baseline_subject, policy, small_registry, subject  # noqa: E402

__all__ = ["frame", "compare", "same_numbers", "KW", "METRICS", "baseline_subject", "policy",
           "small_registry", "subject"]

METRICS = ["count", "weight", "base_rate", "mean_score", "auc", "pr_auc", "log_loss", "brier",
           "calibration_slope", "calibration_intercept", "ece", "precision", "recall", "f1",
           "fpr", "precision@0.3"]


def frame(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Two models on the same rows: ``cand`` rounded to 3 decimals (heavy ties), ``base``
    CTR-like (clustered near 0, continuous); exponential weights with some zeros; slice
    ``country`` with a missing value and a one-class slice (``XX``, positives only); group
    ``age``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.08).astype(np.int64)
    cand = np.clip(rng.normal(0.15 + 0.35 * y, 0.12), 0, 1).round(3)
    base = rng.beta(0.6 + 1.5 * y, 25.0)
    country = rng.choice(np.array(["US", "DE", "FR", None], dtype=object), n, p=[.5, .3, .15, .05])
    country[:40] = "XX"
    y[:40] = 1
    w = rng.exponential(1.0, n)
    w[rng.random(n) < 0.01] = 0.0
    return pd.DataFrame({
        "label": y, "cand": cand, "base": base, "w": w, "country": country,
        "device": rng.choice(["ios", "android"], n), "age": rng.choice(["a", "b", "c"], n)})


KW: dict[str, Any] = dict(
    label="label", scores={"candidate": "cand", "baseline": "base"}, weight="w",
    slice_columns=["country", "device"], crosses=[("country", "device")], group_columns=["age"],
    metrics=METRICS, group_metrics=["precision", "auc", "log_loss"])


def close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(a))


def compare(ref, got, tol: float = 1e-9, interval_tol: float = 1e-6) -> list[str]:
    """Every way ``got`` (scaled) disagrees with ``ref`` (in memory): exact values to ``tol``,
    bounded ones within their bound, intervals (where computed as in memory) to
    ``interval_tol``; also slice names, sizes and group gaps."""
    problems = []
    if [s.name for s in ref.slices] != [s.name for s in got.slices]:
        return [f"slices differ: {ref.names()} vs {got.names()}"]
    for s1, s2 in zip(ref.slices, got.slices, strict=True):
        if s1.n != s2.n:
            problems.append(f"{s1.name}: n {s1.n} vs {s2.n}")
        pairs = [(m, k, s1.metrics[m][k], s2.metrics[m][k]) for m in s1.metrics
                 for k in s1.metrics[m]]
        pairs += [(f"delta:{m}", k, s1.deltas[m][k], s2.deltas[m][k]) for m in s1.deltas
                  for k in s1.deltas[m]]
        for col, br in s1.groups.items():
            for m, gaps in br.gaps.items():
                pairs += [(f"gap:{col}:{m}", k, g, s2.groups[col].gaps[m][k])
                          for k, g in gaps.items()]
        for who, key, a, b in pairs:
            where = f"{s1.name} {who} {key}"
            if a.defined != b.defined:
                problems.append(f"{where}: defined {a.defined} vs {b.defined} ({a.reason} / "
                                f"{b.reason})")
                continue
            if not a.defined:
                continue
            bound = float(getattr(b, "bound", 0.0) or 0.0)
            if getattr(b, "exact", True):
                if not close(a.value, b.value, tol):
                    problems.append(f"{where}: {a.value!r} vs {b.value!r} (reported exact)")
            elif abs(a.value - b.value) > bound + tol:
                problems.append(f"{where}: {a.value!r} vs {b.value!r} outside bound {bound:g}")
            if getattr(b, "note", None) is None and getattr(b, "exact", True) and \
                    not who.startswith("gap") and not math.isnan(a.lo):
                if not (close(a.lo, b.lo, interval_tol) and close(a.hi, b.hi, interval_tol)):
                    problems.append(f"{where}: interval [{a.lo}, {a.hi}] vs [{b.lo}, {b.hi}]")
    return problems


def same_numbers(r1, r2, tol: float = 1e-9) -> list[str]:
    """Two scaled results of the same spec: every value, bound and interval to ``tol``."""
    out = []
    for s1, s2 in zip(r1.slices, r2.slices, strict=True):
        for m in s1.metrics:
            for k, a in s1.metrics[m].items():
                b = s2.metrics[m][k]
                for f in ("value", "lo", "hi", "bound"):
                    x, z = getattr(a, f), getattr(b, f)
                    if not close(float(x), float(z), tol):
                        out.append(f"{s1.name} {m} {k} {f}: {x!r} vs {z!r}")
    return out
