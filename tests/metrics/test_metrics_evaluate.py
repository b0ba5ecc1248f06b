"""evaluate_predictions: slicing, selection, deltas, protected groups, JSON output, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from sklearn import metrics as skm

from mlreg.errors import InputError
from mlreg.metrics import (
    MetricValue,
    evaluate_predictions,
    register_metric,
    resolve_metric,
)
from mlreg.metrics import binary as B
from mlreg.metrics.registry import REGISTRY


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n = 6000
    s = rng.beta(1.2, 12, n)
    sb = np.clip(s * np.exp(rng.normal(0, 0.4, n)), 0, 1)
    y = (rng.random(n) < s).astype(int)
    country = rng.choice(["US", "DE", "FR", "BR"], n, p=[0.5, 0.25, 0.2, 0.05])
    device = rng.choice(["ios", "android", "web"], n)
    y[(country == "BR") & (device == "web")] = 0  # a one-class cross slice
    return pd.DataFrame({
        "label": y, "score_candidate": s, "score_baseline": sb, "country": country,
        "device": device, "gender": rng.choice(["f", "m", "x"], n, p=[0.45, 0.45, 0.1]),
        "w": rng.exponential(1, n),
    })


SCORES = {"candidate": "score_candidate", "baseline": "score_baseline"}


@pytest.fixture(scope="module", params=[False, True], ids=["numpy", "compiled"])
def result(frame, request):
    """The evaluation on the numpy passes and on the compiled kernels (used on larger inputs):
    every test on it checks both."""
    from testkit import engine_path

    with pytest.MonkeyPatch.context() as mp:
        engine_path(mp, request.param)
        return evaluate_predictions(
            frame, label="label", scores=SCORES, slice_columns=["country", "device"],
            crosses=[("country", "device")], group_columns=["gender"],
            metrics=["count", "auc", "pr_auc", "log_loss", "calibration_slope", "ece",
                     "precision@0.2", "recall", "f1@0.1", "base_rate"],
            bootstrap_replicates=60)


def test_slice_names_and_order(result):
    names = result.names()
    assert names[0] == "overall"
    assert names[1:5] == ["country=BR", "country=DE", "country=FR", "country=US"]
    assert "device=ios" in names
    assert "country=US,device=ios" in names
    assert result.slice("country=BR,device=web").slicing == "cross"
    assert result.overall.key == ()
    assert result.slice((("country", "US"),)).name == "country=US"


def test_values_match_sklearn_per_slice(result, frame):
    for name in ["overall", "country=DE", "device=web", "country=US,device=android"]:
        sl = result.slice(name)
        mask = np.ones(len(frame), dtype=bool)
        for col, val in sl.key:
            mask &= (frame[col] == val).to_numpy()
        sub = frame[mask]
        for model, col in SCORES.items():
            m = sl.metrics[model]
            assert m["count"].value == len(sub)
            assert m["auc"].value == pytest.approx(skm.roc_auc_score(sub.label, sub[col]),
                                                   abs=1e-10)
            assert m["pr_auc"].value == pytest.approx(
                skm.average_precision_score(sub.label, sub[col]), abs=1e-10)
            assert m["log_loss"].value == pytest.approx(skm.log_loss(sub.label, sub[col]),
                                                        rel=1e-10)
            pred = (sub[col] >= 0.2).astype(int)
            assert m["precision@0.2"].value == pytest.approx(
                skm.precision_score(sub.label, pred, zero_division=np.nan), abs=1e-10)
            assert m["recall"].value == pytest.approx(
                skm.recall_score(sub.label, (sub[col] >= 0.5).astype(int)), abs=1e-10)
            assert m["auc"].method == "delong" and m["auc"].lo < m["auc"].value < m["auc"].hi
        d = sl.deltas["candidate"]["auc"]
        assert d.value == pytest.approx(sl.metrics["candidate"]["auc"].value
                                        - sl.metrics["baseline"]["auc"].value)
        assert d.method == "delong" and d.lo < d.value < d.hi
        assert sl.deltas["candidate"]["count"].value == 0.0


def test_one_class_slice_is_reported_undefined(result):
    sl = result.slice("country=BR,device=web")
    auc = sl.metrics["candidate"]["auc"]
    assert math.isnan(auc.value) and "no positives" in auc.reason
    assert not sl.deltas["candidate"]["auc"].defined


def test_counts_add_up(result, frame):
    for col in ["country", "device"]:
        total = sum(s.n for s in result.slices if s.columns == (col,))
        assert total == len(frame)
    assert sum(s.n for s in result.by_slicing("cross")) == len(frame)


def test_group_gap_matches_fairlearn(result, frame):
    for name in ["overall", "country=US"]:
        sl = result.slice(name)
        mask = np.ones(len(frame), dtype=bool)
        for col, val in sl.key:
            mask &= (frame[col] == val).to_numpy()
        sub = frame[mask]
        pred = (sub.score_candidate >= 0.2).astype(int)
        mf = MetricFrame(metrics=skm.precision_score, y_true=sub.label, y_pred=pred,
                         sensitive_features=sub.gender)
        gap = sl.groups["gender"].gaps["candidate"]["precision@0.2"]
        assert gap.value == pytest.approx(mf.difference(method="between_groups"), abs=1e-12)
        assert gap.method == "poisson_bootstrap" and gap.lo <= gap.hi
        assert gap.max_group == mf.by_group.idxmax() and gap.min_group == mf.by_group.idxmin()
        groups = sl.groups["gender"].groups
        assert sum(g["n"] for g in groups.values()) == sl.n
        for g, val in mf.by_group.items():
            assert groups[g]["metrics"]["candidate"]["precision@0.2"].value == pytest.approx(val)
        auc_gap = sl.groups["gender"].gaps["candidate"]["auc"]
        assert auc_gap.method == "parametric_bootstrap"


def test_to_dict_is_json_serialisable_with_nan_as_none(result):
    d = result.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    br = next(s for s in back["slices"] if s["name"] == "country=BR,device=web")
    assert br["metrics"]["candidate"]["auc"]["value"] is None
    assert br["metrics"]["candidate"]["auc"]["reason"]
    assert back["slices"][0]["name"] == "overall"
    assert back["settings"]["bootstrap"]["replicates"] == 60
    assert len(back["slices"][0]["reliability"]["candidate"]) == 10


def test_top_n_and_min_size(frame):
    res = evaluate_predictions(frame, label="label", scores=SCORES,
                               slice_columns=["country", "device"], top_n=3,
                               metrics=["count", "auc"])
    cols = res.by_slicing("column")
    assert len(cols) == 3
    assert [s.name for s in res.top_slices(2)] == ["country=US", cols[1].name if
                                                    cols[1].traffic_rank == 2 else
                                                    cols[0].name]
    assert res.top_slices(1)[0].name == "country=US" and res.top_slices(1)[0].traffic_rank == 1
    assert res.excluded["outside_top_n"] == 4
    res = evaluate_predictions(frame, label="label", scores=SCORES, slice_columns=["country"],
                               crosses=[("country", "device")], min_size=500,
                               metrics=["count"])
    assert all(s.n >= 500 for s in res.slices)
    assert "country=BR" not in res.names()
    assert res.excluded["below_min_size"] > 0


def test_weighted_traffic_and_metrics(frame):
    res = evaluate_predictions(frame, label="label", scores=SCORES, weight="w",
                               slice_columns=["device"], traffic="weight",
                               metrics=["weight", "auc", "log_loss"])
    sub = frame[frame.device == "ios"]
    sl = res.slice("device=ios")
    assert sl.weight == pytest.approx(sub.w.sum())
    assert sl.metrics["candidate"]["auc"].value == pytest.approx(
        skm.roc_auc_score(sub.label, sub.score_candidate, sample_weight=sub.w), abs=1e-10)
    ranks = sorted((s.traffic_rank, s.weight) for s in res.by_slicing("column"))
    assert [w for _, w in ranks] == sorted([w for _, w in ranks], reverse=True)


def test_default_baseline_and_no_baseline(frame):
    res = evaluate_predictions(frame, label="label", scores=SCORES, metrics=["auc"])
    assert res.baseline == "baseline" and set(res.overall.deltas) == {"candidate"}
    res = evaluate_predictions(frame, label="label", scores={"only": "score_candidate"},
                               metrics=["auc"])
    assert res.baseline is None and res.overall.deltas == {}


def test_threshold_parameter_and_naming(frame):
    res = evaluate_predictions(frame, label="label", scores=SCORES, threshold=0.1,
                               metrics=["precision", "precision@0.1", "tpr@0.3"])
    m = res.overall.metrics["candidate"]
    assert m["precision"].value == m["precision@0.1"].value
    assert m["tpr@0.3"].value == pytest.approx(
        skm.recall_score(frame.label, frame.score_candidate >= 0.3))
    assert resolve_metric("precision@0.25").threshold == 0.25
    assert resolve_metric("ndcg@10").k == 10


def test_custom_metric_registration(frame):
    def mean_label_minus_score(data, **_):
        w = np.ones(len(data.label)) if data.weight is None else data.weight
        v = float(np.sum(w * (data.label - data.score)) / np.sum(w))
        return MetricValue(v, v - 0.01, v + 0.01, "custom", None, len(data.label))

    register_metric("calib_bias", mean_label_minus_score, higher_is_better=None,
                    kind="calibration", replace=True)
    try:
        res = evaluate_predictions(frame.iloc[:800], label="label", scores=SCORES,
                                   slice_columns=["device"], metrics=["calib_bias", "auc"],
                                   bootstrap_replicates=20)
        sub = frame.iloc[:800]
        v = res.overall.metrics["candidate"]["calib_bias"]
        assert v.value == pytest.approx((sub.label - sub.score_candidate).mean())
        d = res.overall.deltas["candidate"]["calib_bias"]
        assert d.value == pytest.approx((sub.score_baseline - sub.score_candidate).mean())
        assert d.method == "poisson_bootstrap" and d.lo <= d.value <= d.hi
    finally:
        REGISTRY.pop("calib_bias", None)


@pytest.mark.parametrize("kwargs,match", [
    (dict(label="nope"), "label column"),
    (dict(scores={"a": "missing"}), "score column"),
    (dict(metrics=["auc", "bogus"]), "unknown metric"),
    (dict(metrics=["auc", "auc"]), "twice"),
    (dict(metrics=["ndcg@5"]), "query"),
    (dict(slice_columns=["nope"]), "slice column"),
    (dict(baseline="other"), "baseline"),
    (dict(metrics=["precision@1.5"]), "threshold"),
    (dict(top_n=-1), "top_n"),
    (dict(traffic="bytes"), "traffic"),
])
def test_bad_arguments_raise_input_error(frame, kwargs, match):
    args = dict(label="label", scores=SCORES)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        evaluate_predictions(frame.iloc[:200], **args)


def test_bad_values_raise_input_error(frame):
    bad = frame.iloc[:100].copy()
    bad.loc[bad.index[3], "label"] = 2
    with pytest.raises(InputError, match="0/1"):
        evaluate_predictions(bad, label="label", scores=SCORES)
    bad = frame.iloc[:100].copy()
    bad.loc[bad.index[3], "score_candidate"] = np.nan
    with pytest.raises(InputError, match="missing"):
        evaluate_predictions(bad, label="label", scores=SCORES)
    bad = frame.iloc[:100].copy()
    bad.loc[bad.index[3], "score_candidate"] = 1.5
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        evaluate_predictions(bad, label="label", scores=SCORES)
    with pytest.raises(InputError, match="no rows"):
        evaluate_predictions(frame.iloc[:0], label="label", scores=SCORES)


def test_missing_slice_values_form_a_null_slice(frame):
    df = frame.iloc[:500].copy()
    df["region"] = np.where(np.arange(500) % 5 == 0, None, "eu")
    res = evaluate_predictions(df, label="label", scores=SCORES, slice_columns=["region"],
                               metrics=["count"])
    assert res.slice("region=null").n == 100
    assert res.slice("region=eu").n == 400


def test_reference_and_engine_agree_through_the_api(frame):
    res = evaluate_predictions(frame, label="label", scores=SCORES, weight="w",
                               slice_columns=["device"], metrics=["calibration_intercept",
                                                                 "brier", "fpr@0.1"])
    sub = frame[frame.device == "web"]
    m = res.slice("device=web").metrics["candidate"]
    ref = B.calibration_intercept(sub.label, sub.score_candidate, sub.w)
    assert m["calibration_intercept"].value == pytest.approx(ref.value, abs=1e-9)
    assert m["calibration_intercept"].lo == pytest.approx(ref.lo, abs=1e-8)
    assert m["brier"].value == pytest.approx(
        skm.brier_score_loss(sub.label, sub.score_candidate, sample_weight=sub.w))


def test_group_breakdown_on_overall_and_too_many_thresholds(frame):
    res = evaluate_predictions(frame, label="label", scores=SCORES, group_columns=["gender"],
                               metrics=["count", "base_rate"], group_metrics=["count"])
    gb = res.overall.groups["gender"]
    assert sum(g["n"] for g in gb.groups.values()) == len(frame)
    assert gb.gaps["candidate"]["count"].method == "exact"
    with pytest.raises(InputError, match="thresholds"):
        evaluate_predictions(frame.iloc[:100], label="label", scores=SCORES,
                             metrics=[f"precision@{t / 20}" for t in range(17)])


def test_excluded_slices_are_not_computed_but_counted(frame):
    res = evaluate_predictions(frame, label="label", scores=SCORES,
                               slice_columns=["country", "device"], crosses=[("country", "device")],
                               min_size=400, top_n=4, metrics=["count", "auc", "ece"])
    names = res.names()
    assert not any("__excluded__" in n for n in names)
    full = evaluate_predictions(frame, label="label", scores=SCORES,
                                slice_columns=["country", "device"],
                                crosses=[("country", "device")], metrics=["count", "auc", "ece"])
    for s in res.slices:
        ref = full.slice(s.name)
        assert s.n == ref.n and s.traffic_rank == ref.traffic_rank
        assert s.metrics["candidate"]["auc"].value == ref.metrics["candidate"]["auc"].value
        assert s.metrics["candidate"]["ece"].lo == pytest.approx(
            ref.metrics["candidate"]["ece"].lo)
    kept_cross = [s for s in full.by_slicing("cross") if s.n >= 400]
    assert len(res.by_slicing("cross")) == len(kept_cross)
    assert sum(res.excluded.values()) == len(full.slices) - len(res.slices)


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint16", "int64", "uint64"])
def test_factorize_small_integer_columns_matches_pandas(dtype):
    """The counting path for integer slice columns gives pandas' sorted codes and values."""
    from mlreg.metrics.slicing import factorize

    rng = np.random.default_rng(len(dtype))
    lo = 0 if dtype.startswith("u") else -100
    values = rng.integers(lo, 100, 5000).astype(dtype)
    values[:3] = [lo + 7, 99, lo + 7]
    series = pd.Series(values)
    codes, uniq = factorize(series)
    ref_codes, ref_uniq = pd.factorize(series, sort=True)
    assert np.array_equal(codes.astype(np.int64), ref_codes)
    assert uniq == [int(v) for v in ref_uniq] and all(type(v) is int for v in uniq)
