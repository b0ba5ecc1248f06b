"""The vectorised engine reproduces the reference single-slice metrics, intervals and deltas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlreg.metrics import binary as B
from mlreg.metrics.engine import Engine, EngineSettings, sort_permutation
from mlreg.metrics.intervals import row_buckets
from mlreg.metrics.slicing import Slicing, overall_slicing

REPS, NB = 40, 64
THS = (0.5, 0.3)
METRICS = {
    "auc": lambda y, s, w, **k: B.roc_auc(y, s, w),
    "pr_auc": lambda y, s, w, **k: B.pr_auc(y, s, w),
    "log_loss": lambda y, s, w, **k: B.log_loss(y, s, w),
    "brier": lambda y, s, w, **k: B.brier(y, s, w),
    "mean_score": lambda y, s, w, **k: B.mean_score(y, s, w),
    "calibration_slope": lambda y, s, w, **k: B.calibration_slope(y, s, w),
    "calibration_intercept": lambda y, s, w, **k: B.calibration_intercept(y, s, w),
    "ece": lambda y, s, w, buckets: B.expected_calibration_error(
        y, s, w, buckets=buckets, replicates=REPS, n_buckets=NB),
    "precision@0.5": lambda y, s, w, **k: B.precision(y, s, w, threshold=0.5),
    "recall@0.3": lambda y, s, w, **k: B.recall(y, s, w, threshold=0.3),
    "tpr@0.5": lambda y, s, w, **k: B.tpr(y, s, w, threshold=0.5),
    "fpr@0.3": lambda y, s, w, **k: B.fpr(y, s, w, threshold=0.3),
    "f1@0.5": lambda y, s, w, **k: B.f1(y, s, w, threshold=0.5),
    "base_rate": lambda y, s, w, **k: B.base_rate(y, s, w),
}
#: both implementations of the engine's passes: numpy pieces and the compiled kernels
KERNELS = ["numpy", "numba"]
DELTAS = ["auc", "pr_auc", "log_loss", "brier", "mean_score", "calibration_slope",
          "calibration_intercept", "ece", "precision", "recall", "fpr", "f1"]


def _close(a: float, b: float, tol: float = 1e-8) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(b))


def _data(n, k, weighted, ties, ctr, seed):
    rng = np.random.default_rng(seed)
    sa = rng.beta(1, 40, n) if ctr else rng.random(n)
    if ties:
        sa = np.round(sa, 2)
    sb = np.clip(sa + rng.normal(0, 0.1, n), 0, 1)
    if ties:
        sb = np.round(sb, 2)
    y = (rng.random(n) < np.clip(sa * (3 if ctr else 1), 0, 1)).astype(np.int8)
    w = rng.exponential(1, n) if weighted else None
    codes = rng.integers(0, k, n).astype(np.uint8)
    y[codes == k - 1] = 0  # one slice holds negatives only
    return y, sa, sb, w, codes


@pytest.mark.parametrize("n,k,weighted,ties,ctr,piece", [
    (1500, 4, False, False, False, 1 << 16),
    (1500, 4, True, True, False, 1 << 16),
    (3000, 3, False, True, False, 200),   # large slices split into pieces (carried sums)
    (3000, 3, True, False, True, 150),
    (2000, 1, False, False, True, 300),   # overall slicing, split
    (2000, 1, True, True, False, 1 << 16),
])
@pytest.mark.parametrize("kernel", KERNELS)
def test_engine_matches_reference(n, k, weighted, ties, ctr, piece, kernel):
    y, sa, sb, w, codes = _data(n, k, weighted, ties, ctr, seed=n + k)
    if k == 1:
        sl = overall_slicing(n)
    else:
        sl = Slicing("column", ("c",), codes, [(("c", j),) for j in range(k)],
                     np.bincount(codes, minlength=k))
    buckets = row_buckets([y, sa, sb], 0, NB)
    settings = EngineSettings(thresholds=THS, piece_rows=piece, replicates=REPS, n_buckets=NB,
                              kernel=kernel)
    out = Engine(y, w, {"cand": sa, "base": sb}, "base", settings, buckets).run(sl)
    bad = []
    for j in range(k):
        m = codes == j if k > 1 else np.ones(n, dtype=bool)
        yy, ww, bk = y[m], (None if w is None else w[m]), buckets[m]
        for model, s in (("cand", sa[m]), ("base", sb[m])):
            cols = out.models[model].columns
            for name, fn in METRICS.items():
                ref = fn(yy, s, ww, buckets=bk)
                col = cols[name]
                for attr in ("value", "lo", "hi"):
                    if not _close(getattr(col, attr)[j], getattr(ref, attr)):
                        bad.append((j, model, name, attr, getattr(col, attr)[j],
                                    getattr(ref, attr)))
                assert (ref.reason or None) == col.reason[j], (name, j)
            rel = B.reliability_curve(yy, s, ww)
            assert np.allclose(out.models[model].reliability["weight"][j],
                               [b.weight for b in rel])
        for name in DELTAS:
            for t in (THS if name in ("precision", "recall", "fpr", "f1") else (None,)):
                key = name if t is None else f"{name}@{t}"
                ref = B.paired_delta(name, yy, sa[m], sb[m], ww, threshold=t or 0.5,
                                     buckets=bk, replicates=REPS, n_buckets=NB)
                dc = out.models["cand"].deltas[key]
                # the sandwich uses the Hessian of the last Newton iterate (step < 1e-7)
                tol = 1e-6 if name.startswith("calibration") else 1e-8
                for attr in ("value", "lo", "hi"):
                    if not _close(getattr(dc, attr)[j], getattr(ref, attr), tol):
                        bad.append((j, "delta", key, attr, getattr(dc, attr)[j],
                                    getattr(ref, attr)))
    assert not bad, bad[:10]


@pytest.mark.parametrize("kernel", KERNELS)
def test_one_class_slice_reports_reason(kernel):
    y, sa, sb, w, codes = _data(1200, 3, False, False, False, seed=1)
    sl = Slicing("column", ("c",), codes, [(("c", j),) for j in range(3)], np.bincount(codes))
    out = Engine(y, w, {"m": sa}, None, EngineSettings(thresholds=(0.5,), kernel=kernel)).run(sl)
    auc = out.models["m"].columns["auc"]
    assert math.isnan(auc.value[2]) and auc.reason[2] == B.NO_POS
    assert math.isfinite(auc.value[0]) and auc.reason[0] is None
    assert out.models["m"].columns["calibration_slope"].reason[2] == B.NO_POS


@pytest.mark.parametrize("kernel", KERNELS)
def test_separable_slice_falls_back_cleanly(kernel):
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 1, 0], dtype=np.int8)
    s = np.array([.1, .2, .3, .7, .8, .9, .4, .35, .6, .65, .2, .3])
    codes = np.array([0] * 6 + [1] * 6, dtype=np.uint8)
    sl = Slicing("column", ("c",), codes, [(("c", 0),), (("c", 1),)], np.array([6, 6]))
    out = Engine(y, None, {"m": s}, None, EngineSettings(thresholds=(), kernel=kernel)).run(sl)
    col = out.models["m"].columns["calibration_slope"]
    assert col.reason[0] == B.SEPARABLE and math.isnan(col.value[0])
    ref = B.calibration_slope(y[6:], s[6:])
    assert col.value[1] == pytest.approx(ref.value, rel=1e-8)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 5000])
def test_sort_permutation_is_an_exact_stable_argsort(n):
    rng = np.random.default_rng(n)
    s = rng.random(n)
    s[: n // 3] = np.round(s[: n // 3], 1)  # heavy ties
    if n > 10:
        s[5] = s[6] + 1e-13  # collide in the truncated bits
        s[7] = 0.0
        s[8] = -0.0
        s[9] = 1.0
    perm = sort_permutation(s)
    assert np.array_equal(perm, np.argsort(s, kind="stable")) or np.array_equal(
        s[perm], np.sort(s))
    ss = s[perm]
    assert np.all(ss[1:] >= ss[:-1])
    # ties keep row order
    same = ss[1:] == ss[:-1]
    assert np.all(perm[1:][same] > perm[:-1][same])


def test_sort_permutation_repairs_collisions():
    base = 0.25
    s = np.array([base + 3e-17 * i for i in range(50)][::-1] + [base], dtype=np.float64)
    s = np.nextafter(np.full(40, base), 1.0)
    s = np.concatenate([s, [base], np.nextafter(s, 1.0)])[::-1].copy()
    perm = sort_permutation(np.tile(s, 10))
    ss = np.tile(s, 10)[perm]
    assert np.all(ss[1:] >= ss[:-1])


@pytest.mark.parametrize("kernel", KERNELS)
def test_candidate_equal_to_baseline_has_zero_deltas(kernel):
    y, sa, _, w, codes = _data(2000, 3, True, True, False, seed=3)
    sl = Slicing("column", ("c",), codes, [(("c", j),) for j in range(3)], np.bincount(codes))
    buckets = row_buckets([y, sa], 0, NB)
    settings = EngineSettings(thresholds=THS, replicates=REPS, n_buckets=NB, piece_rows=300,
                              kernel=kernel)
    out = Engine(y, w, {"cand": sa, "base": sa.copy()}, "base", settings, buckets).run(sl)
    for key, dc in out.models["cand"].deltas.items():
        ok = np.isfinite(dc.value)
        assert np.all(dc.value[ok] == 0.0), key
        assert np.all(dc.lo[ok] == 0.0) and np.all(dc.hi[ok] == 0.0), key


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("steep", [0.5, 25.0])
def test_calibration_cells_and_exact_fallback_match_reference(steep, kernel):
    """Slopes up to 16 use the logit-cell fit; steeper ones take the exact row passes."""
    rng = np.random.default_rng(11)
    n = 3000
    z = rng.normal(-1.0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int8)
    s = 1 / (1 + np.exp(-z / steep))  # fitted slope ~ steep
    codes = rng.integers(0, 3, n).astype(np.uint8)
    sl = Slicing("column", ("c",), codes, [(("c", j),) for j in range(3)], np.bincount(codes))
    settings = EngineSettings(thresholds=(), piece_rows=700, kernel=kernel)
    out = Engine(y, None, {"m": s}, None, settings).run(sl)
    col = out.models["m"].columns["calibration_slope"]
    for j in range(3):
        ref = B.calibration_slope(y[codes == j], s[codes == j])
        assert col.value[j] == pytest.approx(ref.value, rel=1e-9)
        assert col.lo[j] == pytest.approx(ref.lo, rel=1e-8)
        assert abs(col.value[j] - steep) < 0.3 * steep


def test_sparse_ece_bootstrap_matches_dense(monkeypatch):
    """Many slices switch the ECE bootstrap to sparse bucket sums; same replicates."""
    import mlreg.metrics.engine as engine_mod

    y, sa, sb, w, codes = _data(3000, 6, True, False, False, seed=8)
    sl = Slicing("column", ("c",), codes, [(("c", j),) for j in range(6)], np.bincount(codes))
    buckets = row_buckets([y, sa, sb], 0, NB)
    settings = EngineSettings(thresholds=(0.5,), replicates=REPS, n_buckets=NB, piece_rows=400)
    dense = Engine(y, w, {"cand": sa, "base": sb}, "base", settings, buckets).run(sl)
    monkeypatch.setattr(engine_mod, "DENSE_ECE_CELLS", 0)
    sparse = Engine(y, w, {"cand": sa, "base": sb}, "base", settings, buckets).run(sl)
    for model in ("cand", "base"):
        a, b = dense.models[model].columns["ece"], sparse.models[model].columns["ece"]
        np.testing.assert_allclose(a.lo, b.lo, rtol=1e-10)
        np.testing.assert_allclose(a.hi, b.hi, rtol=1e-10)
    da, db = dense.models["cand"].deltas["ece"], sparse.models["cand"].deltas["ece"]
    np.testing.assert_allclose(da.lo, db.lo, rtol=1e-10, atol=1e-15)


def _compare_outputs(a, b, tol=1e-9) -> list:
    bad = []
    for model, ma in a.models.items():
        mb = b.models[model]
        for kind in ("columns", "deltas"):
            for key, ca in getattr(ma, kind).items():
                cb = getattr(mb, kind)[key]
                for attr in ("value", "lo", "hi"):
                    for j, (u, v) in enumerate(zip(getattr(ca, attr), getattr(cb, attr),
                                                   strict=True)):
                        if not _close(float(u), float(v), tol):
                            bad.append((model, kind, key, attr, j, u, v))
                assert ca.reason == cb.reason, (model, key)
    return bad


@pytest.mark.parametrize("weighted,ties,ctr", [(False, True, True), (True, False, False)])
def test_compiled_kernels_match_numpy_passes_on_many_slicings(weighted, ties, ctr):
    """Three models, the overall slicing, two columns and a cross in one compiled run."""
    rng = np.random.default_rng(21)
    y, sa, sb, w, codes = _data(4000, 5, weighted, ties, ctr, seed=21)
    sc = np.clip(sb + rng.normal(0, 0.05, sb.shape[0]), 0, 1)
    other = rng.integers(0, 3, y.shape[0]).astype(np.uint8)
    cross = (codes.astype(np.int64) * 3 + other).astype(np.uint8)
    slicings = [overall_slicing(y.shape[0])] + [
        Slicing("column", (name,), c, [((name, j),) for j in range(k)],
                np.bincount(c, minlength=k))
        for name, c, k in (("c", codes, 5), ("d", other, 3), ("cd", cross, 15))]
    buckets = row_buckets([y, sa, sb], 0, NB)
    scores = {"cand": sa, "base": sb, "third": sc}
    out = {}
    for kernel in KERNELS:
        settings = EngineSettings(thresholds=THS, replicates=REPS, n_buckets=NB, kernel=kernel)
        out[kernel] = Engine(y, w, scores, "base", settings, buckets).run_many(slicings)
    bad = []
    for a, b in zip(out["numpy"], out["numba"], strict=True):
        bad += _compare_outputs(a, b, 1e-9)
    assert not bad, bad[:10]


def test_compiled_batches_and_fallback_give_the_same_numbers(monkeypatch):
    """A small store budget splits the slicings into batches; a slicing whose dense ECE sums
    exceed the limit goes through the numpy passes; calibration cells sized per slice by a
    pass over the rows. None of it changes a number."""
    import mlreg.metrics.compiled as compiled_mod

    y, sa, sb, w, codes = _data(3000, 4, True, True, False, seed=5)
    slicings = [overall_slicing(y.shape[0]),
                Slicing("column", ("c",), codes, [(("c", j),) for j in range(4)],
                        np.bincount(codes, minlength=4))]
    buckets = row_buckets([y, sa, sb], 0, NB)
    settings = EngineSettings(thresholds=THS, replicates=REPS, n_buckets=NB, kernel="numba")
    whole = Engine(y, w, {"cand": sa, "base": sb}, "base", settings, buckets).run_many(slicings)
    monkeypatch.setattr(compiled_mod, "STORE_BUDGET", 1)
    monkeypatch.setattr(compiled_mod, "DENSE_ECE_CELLS", 2 * 10 * NB)
    monkeypatch.setattr(compiled_mod, "_DENSE_CELLS", 0)  # per-slice cell ranges
    split = Engine(y, w, {"cand": sa, "base": sb}, "base", settings, buckets).run_many(slicings)
    bad = []
    for a, b in zip(whole, split, strict=True):
        bad += _compare_outputs(a, b, 1e-9)
    assert not bad, bad[:10]


@pytest.mark.parametrize("compiled", [True, False])
def test_point_estimates_only_keep_every_value_and_drop_every_interval(compiled, monkeypatch):
    """``intervals=False``: the same values (compiled kernels skip the interval work), and no
    interval, method or delta interval anywhere."""
    import pandas as pd

    from mlreg.metrics import evaluate_predictions
    from testkit import engine_path

    engine_path(monkeypatch, compiled)

    y, sa, sb, w, codes = _data(3000, 4, True, True, False, seed=9)
    groups = np.random.default_rng(9).integers(0, 2, y.shape[0])
    df = pd.DataFrame({"y": y, "a": sa, "b": sb, "w": w, "c": codes, "g": groups})
    kw = dict(label="y", scores={"candidate": "a", "baseline": "b"}, weight="w",
              slice_columns=["c"], group_columns=["g"], bootstrap_replicates=REPS,
              bootstrap_buckets=NB)
    full = evaluate_predictions(df, **kw)
    point = evaluate_predictions(df, intervals=False, **kw)
    assert point.settings["intervals"] is False
    for fs, ps in zip(full.slices, point.slices, strict=True):
        for table in ("metrics", "deltas"):
            for model, per in getattr(fs, table).items():
                for key, v in per.items():
                    pv = getattr(ps, table)[model][key]
                    assert _close(pv.value, v.value, 1e-9), (table, model, key)
                    assert math.isnan(pv.lo) and math.isnan(pv.hi) and pv.method is None
        for gc, gb in ps.groups.items():
            for per_model in gb.gaps.values():
                assert all(math.isnan(v.lo) for v in per_model.values())
            for per_group in gb.groups.values():
                for per in per_group["metrics"].values():
                    assert all(math.isnan(v.hi) for v in per.values()), gc


def test_big_buffers_are_plain_writable_arrays():
    """Large kernel buffers come from a populated anonymous mapping (or np.empty elsewhere)."""
    from mlreg.metrics.compiled import big_empty

    a = big_empty((3_000_000, 2), np.float64)  # 48 MB: above the mapping threshold
    assert a.shape == (3_000_000, 2) and a.dtype == np.float64 and a.flags.c_contiguous
    a[:] = 1.5
    assert a.sum() == 9_000_000.0
    small = big_empty((10, 3), np.int32)
    assert small.shape == (10, 3) and small.dtype == np.int32


def test_compiled_kernels_on_extreme_and_constant_scores():
    """Scores of exactly 0 and 1 (logits clipped), a slice whose scores are all equal (its
    calibration is undefined: constant) and zero weights: the same as the numpy passes."""
    rng = np.random.default_rng(17)
    n = 3000
    s = rng.random(n)
    s[:300] = 0.0
    s[300:600] = 1.0
    codes = rng.integers(0, 3, n).astype(np.uint8)
    s[codes == 2] = 0.25  # one slice with a single score value
    y = (rng.random(n) < np.clip(s, 0.05, 0.95)).astype(np.int8)
    w = rng.exponential(1, n)
    w[::7] = 0.0
    sb = np.clip(s + rng.normal(0, 0.1, n), 0, 1)
    slicings = [overall_slicing(n), Slicing("column", ("c",), codes,
                                            [(("c", j),) for j in range(3)],
                                            np.bincount(codes, minlength=3))]
    buckets = row_buckets([y, s, sb], 0, NB)
    out = {}
    for kernel in KERNELS:
        settings = EngineSettings(thresholds=THS, replicates=REPS, n_buckets=NB, kernel=kernel)
        out[kernel] = Engine(y, w, {"cand": s, "base": sb}, "base", settings,
                             buckets).run_many(slicings)
    col = out["numba"][1].models["cand"].columns["calibration_slope"]
    assert col.reason[2] == B.CONSTANT and math.isnan(col.value[2])
    bad = []
    for a, b in zip(out["numpy"], out["numba"], strict=True):
        bad += _compare_outputs(a, b, 1e-9)
    assert not bad, bad[:10]


def test_auto_compiles_only_where_it_pays(tmp_path):
    """With numba's cache cold, "auto" keeps mid-size inputs on the numpy passes (compiling
    would cost more than it saves) and sends large ones to the kernels; after warm_up() the
    mid-size ones use them too, and so does a later process that finds them on disk."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        import numpy as np
        from mlreg.metrics import kernel as KN
        from mlreg.metrics.engine import (COMPILED_COLD_MIN_ROWS, COMPILED_MIN_ROWS, Engine,
                                          EngineSettings)
        def compiled(n):
            return Engine(np.zeros(n, np.int8), None, {"m": np.zeros(n)}, None,
                          EngineSettings()).compiled()
        print(compiled(COMPILED_MIN_ROWS), compiled(COMPILED_COLD_MIN_ROWS), compiled(1000))
        if sys.argv[1] == "warm-up":
            KN.warm_up()
            print(compiled(COMPILED_MIN_ROWS), compiled(1000))
    """)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}

    def run(arg):
        res = subprocess.run([sys.executable, "-c", code, arg], env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return res.stdout.split()

    assert run("warm-up") == ["False", "True", "False", "True", "False"]
    assert run("-") == ["True", "True", "False"]  # the kernels found in the cache
