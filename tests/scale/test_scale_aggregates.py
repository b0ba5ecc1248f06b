"""Cells, bounds and the driver on the numpy (stream) engine: the same answers as in memory."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scalekit import KW, compare, frame

from mlreg.errors import InputError
from mlreg.metrics import evaluate_predictions
from mlreg.scale import (
    BoundedMetricValue,
    Spec,
    Undecided,
    decode_cells,
    evaluate_at_scale,
    merge_cells,
)
from mlreg.scale.aggregates import CellAccumulator
from mlreg.scale.cells import plain
from mlreg.scale.compute import auc_parts, partition, slice_stats
from mlreg.scale.engines import CellsEngine, StreamEngine


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return frame()


@pytest.fixture(scope="module")
def mem(df):
    return evaluate_predictions(df, **KW)


@pytest.fixture(scope="module")
def streamed(df):
    return evaluate_at_scale(df, engine="stream", **KW)


def test_stream_agrees_with_memory(mem, streamed) -> None:
    assert compare(mem, streamed) == []
    over = streamed.overall
    # ties (3 decimals) resolve every bucket: exact; CTR-like continuous scores: bounded
    assert over.metrics["candidate"]["auc"].exact
    assert isinstance(over.metrics["baseline"]["auc"], BoundedMetricValue)
    assert 0 < over.metrics["baseline"]["auc"].bound < 1e-3
    for key in ("log_loss", "brier", "precision@0.3", "ece", "calibration_slope"):
        assert over.metrics["baseline"][key].exact, key
    assert streamed.scale.passes == ["pass 1", "exact pass"]
    assert "auc bound <=" in streamed.scale.describe()


def test_one_class_slice_is_undefined_with_the_memory_reason(mem, streamed) -> None:
    a = mem.slice("country=XX").metrics["candidate"]["auc"]
    b = streamed.slice("country=XX").metrics["candidate"]["auc"]
    assert not b.defined and b.reason == a.reason == "only one class in slice (no negatives)"


def test_to_dict_carries_bounds(streamed) -> None:
    d = streamed.to_dict()
    auc = d["slices"][0]["metrics"]["baseline"]["auc"]
    assert set(auc) >= {"value", "lo", "hi", "bound", "exact", "note"}
    assert d["scale"]["engine"] == "stream"


def _cells(df, spec, parts=1):
    tables = []
    for chunk in np.array_split(np.arange(len(df)), parts):
        acc = CellAccumulator(spec)
        acc.add(pa.RecordBatch.from_pandas(df.iloc[chunk], preserve_index=False))
        tables.append(acc.table())
    return merge_cells(tables) if parts > 1 else tables[0]


def _canon(table) -> pd.DataFrame:
    keys = [c for c in table.column_names if c in (
        "kind", "model", "slicing", "v_country", "v_device", "v_age", "bucket", "side", "bin",
        "side_b", "label")]
    out = plain(table).to_pandas().sort_values(keys, na_position="last")
    out = out.reset_index(drop=True)
    return out[sorted(out.columns)]


def test_cells_merge_exactly_and_ignore_row_order(df) -> None:
    spec = Spec.build(label="label", scores={"candidate": "cand", "baseline": "base"},
                      weight="w", slice_columns=["country"], group_columns=["age"],
                      thresholds=[0.3, 0.5])
    whole = _canon(_cells(df, spec))
    merged = _canon(_cells(df, spec, parts=3))
    shuffled = _canon(_cells(df.sample(frac=1.0, random_state=3), spec))
    for other in (merged, shuffled):
        assert list(other.columns) == list(whole.columns)
        assert len(other) == len(whole)
        for c in whole.columns:
            a, b = whole[c], other[c]
            if a.dtype.kind == "f":
                assert np.allclose(a.fillna(-1e300), b.fillna(-1e300), rtol=1e-12, atol=1e-9), c
            else:
                assert a.astype(str).tolist() == b.astype(str).tolist(), c


def test_slice_counts_add_up(streamed) -> None:
    cols = [s for s in streamed.slices if s.slicing == "column" and s.columns == ("country",)]
    assert sum(s.n for s in cols) == streamed.n == 20_000


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.05, 0.2, 1.0]), st.sampled_from([1, 2, 4]))
def test_auc_bound_holds(seed: int, R: float, digits: int) -> None:
    """Few buckets, rounded scores and weights: the exact AUC is always within the bound."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    y = rng.integers(0, 2, n)
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0, 1).round(digits)
    w = rng.choice([0.0, 0.5, 1.0, 3.0], n)
    df = pd.DataFrame({"label": y, "s": s, "w": w})
    spec = Spec.build(label="label", scores="s", weight="w", buckets=R, thresholds=[])
    dec = decode_cells(spec, _cells(df, spec))
    mc = dec.slicings[0].models["s"]
    stt = slice_stats(mc, 1)
    if stt.Wpos[0] <= 0 or stt.Wneg[0] <= 0:
        return
    parts = auc_parts(partition(mc), stt)
    got = parts.num[0] / (stt.Wpos[0] * stt.Wneg[0])
    pos, neg = s[(y == 1) & (w > 0)], s[(y == 0) & (w > 0)]
    wp, wn = w[(y == 1) & (w > 0)], w[(y == 0) & (w > 0)]
    cmp = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    exact = float((wp[:, None] * wn[None, :] * cmp).sum() / (wp.sum() * wn.sum()))
    assert abs(got - exact) <= parts.bound[0] + 1e-12
    if parts.exact[0]:
        assert abs(got - exact) <= 1e-12


def test_few_buckets_bounded_then_refined_to_exact(df, mem) -> None:
    calls = []

    def refine(res):
        calls.append(res.overall.metrics["baseline"]["auc"].bound)
        if res.overall.metrics["candidate"]["auc"].bound > 0 or \
                res.overall.metrics["baseline"]["auc"].bound > 1e-7:
            return [Undecided("overall", "auc", ("candidate", "baseline"))]
        return []

    kw = dict(KW, metrics=["auc", "log_loss"], group_columns=[], crosses=[])
    coarse = evaluate_at_scale(df, engine="stream", buckets=0.5, **kw)
    assert coarse.overall.metrics["candidate"]["auc"].bound > 1e-3
    fine = evaluate_at_scale(df, engine="stream", buckets=0.5, refine=refine, **kw)
    assert compare(evaluate_predictions(df, **kw), fine) == []
    assert "refine" in fine.scale.passes
    assert calls[0] > 1e-3 and fine.overall.metrics["baseline"]["auc"].bound < 1e-7
    assert fine.overall.metrics["candidate"]["auc"].exact  # 3-decimal ties: exact after refining
    assert fine.scale.refined == {"auc": 1}
    # slices nobody asked about keep their coarse bound
    assert fine.slice("country=DE").metrics["baseline"]["auc"].bound > 1e-3


def test_calibration_from_bucket_means_is_within_its_bound(df, mem) -> None:
    kw = dict(KW, metrics=["calibration_slope", "calibration_intercept"], group_columns=[])
    res = evaluate_at_scale(df, engine="stream", exact_pass="never", **kw)
    ref = evaluate_predictions(df, **kw)
    assert compare(ref, res) == []
    v = res.overall.metrics["baseline"]["calibration_slope"]
    # first-order bound, dominated by the edge bucket (4 scores below 1.1e-7): conservative
    assert not v.exact and 0 < v.bound < 1e-2
    assert abs(v.value - ref.overall.metrics["baseline"]["calibration_slope"].value) < 1e-5


def test_cells_engine_reads_a_cell_table(df, tmp_path) -> None:
    from mlreg.scale import write_cells

    kw = dict(KW, group_columns=[], crosses=[])
    spec_table = StreamEngine(df).pass1(Spec.build(
        label="label", scores=kw["scores"], weight="w", slice_columns=kw["slice_columns"],
        thresholds=[0.3, 0.5]))
    path = str(tmp_path / "cells.parquet")
    write_cells(spec_table, path)
    res = evaluate_at_scale(None, engine=CellsEngine(path), **kw)
    assert compare(evaluate_predictions(df, **kw), res) == []
    assert res.scale.passes == ["pass 1"]  # no rows: no exact pass, calibration stays bounded
    assert not res.overall.metrics["candidate"]["calibration_slope"].exact
    with pytest.raises(InputError, match="buckets=100"):
        evaluate_at_scale(None, engine=CellsEngine(path), buckets=100, **kw)
    with pytest.raises(InputError, match="buckets \\(per unit of logit\\)"):
        evaluate_at_scale(None, engine=CellsEngine(path), buckets=0, **kw)


@pytest.mark.parametrize("change, match", [
    ({"cand": 1.5}, "must lie in \\[0, 1\\]"),
    ({"label": 2}, "must hold 0/1"),
    ({"w": -1.0}, "negative values"),
    ({"cand": np.nan}, "missing or infinite"),
])
def test_bad_values_are_refused(df, change, match) -> None:
    bad = df.head(100).copy()
    for col, v in change.items():
        bad.loc[5, col] = v
    with pytest.raises(InputError, match=match):
        evaluate_at_scale(bad, engine="stream", **dict(KW, group_columns=[]))


def test_ranking_metrics_are_undefined_with_a_reason(df) -> None:
    res = evaluate_at_scale(df.head(500), engine="stream", label="label", scores="cand",
                            metrics=["auc", "ndcg@10"])
    v = res.overall.metrics["cand"]["ndcg@10"]
    assert not v.defined and "in-memory engine" in v.reason
    assert math.isfinite(res.overall.metrics["cand"]["auc"].value)


def test_parquet_directory_streams_in_batches(df, tmp_path) -> None:
    d = tmp_path / "preds"
    for i in range(4):
        part = df.iloc[i * 5000:(i + 1) * 5000]
        (d / f"day={i}").mkdir(parents=True)
        part.to_parquet(d / f"day={i}" / "part.parquet", index=False)
    seen = []
    kw = dict(KW, slice_columns=["country", "day"], crosses=[], group_columns=[],
              metrics=["auc", "log_loss", "precision"])
    res = evaluate_at_scale(str(d), engine="stream",
                            options={"batch_rows": 3000, "progress": lambda n, t: seen.append(n)},
                            **kw)
    assert seen.count(20_000) == 2  # pass 1 and the exact pass (paired AUC moments)
    assert [s.name for s in res.slices if s.columns == ("day",)] == [
        "day=0", "day=1", "day=2", "day=3"]
    ref = evaluate_predictions(df.assign(day=np.repeat(np.arange(4), 5000)), **kw)
    assert compare(ref, res) == []
