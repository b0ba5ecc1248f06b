"""``evaluate_predictions``: every requested metric on every slice, with intervals and deltas."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlreg.errors import InputError
from mlreg.metrics import ranking as RK
from mlreg.metrics.engine import (
    ENGINE_METRICS,
    MAX_THRESHOLDS,
    Column,
    Engine,
    EngineSettings,
    SlicingOutput,
)
from mlreg.metrics.intervals import (
    DEFAULT_BUCKETS,
    DEFAULT_REPLICATES,
    percentile_interval,
    poisson_replicates,
    row_buckets,
    z_value,
)
from mlreg.metrics.registry import DEFAULT_METRICS, MetricRequest, SliceData, resolve_metric
from mlreg.metrics.results import (
    EvaluationResult,
    GapValue,
    GroupBreakdown,
    MetricValue,
    PairedDelta,
    ReliabilityBin,
    SliceResult,
)
from mlreg.metrics.slicing import (
    Slicing,
    column_slicing,
    combine_codes,
    cross_slicing,
    factorize,
    narrow_codes,
    overall_slicing,
)

__all__ = ["evaluate_predictions", "DEFAULT_METRICS"]

_COUNT_METRICS = ("precision", "recall", "tpr", "fpr", "f1", "base_rate")
_KERNEL = {
    "auc": "auc", "pr_auc": "pr_auc", "log_loss": "log_loss", "brier": "brier",
    "mean_score": "mean_score", "calibration_slope": "calibration",
    "calibration_intercept": "calibration", "ece": "ece",
}


def _engine_key(req: MetricRequest) -> str:
    if req.spec.param == "threshold":
        return f"{req.name}@{req.threshold!r}"
    return req.name


def _scores_mapping(scores: Mapping[str, str] | Sequence[str] | str) -> dict[str, str]:
    if isinstance(scores, str):
        return {scores: scores}
    if isinstance(scores, Mapping):
        out = {str(k): str(v) for k, v in scores.items()}
    else:
        out = {str(c): str(c) for c in scores}
    if not out:
        raise InputError("at least one score column is needed")
    return out


def _column(df: pd.DataFrame, name: str, role: str) -> pd.Series:
    if name not in df.columns:
        raise InputError(f"{role} column {name!r} is not in the predictions "
                         f"(columns: {', '.join(map(str, df.columns))})")
    return df[name]


def _numeric(series: pd.Series, role: str) -> np.ndarray:
    if series.dtype == bool:
        return series.to_numpy(dtype=np.float64)
    try:
        arr = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise InputError(f"{role} column {series.name!r} is not numeric") from None
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise InputError(f"{role} column {series.name!r} has {bad} missing or infinite value(s)")
    return arr


def evaluate_predictions(
    df: pd.DataFrame,
    *,
    label: str,
    scores: Mapping[str, str] | Sequence[str] | str,
    baseline: str | None = None,
    weight: str | None = None,
    slice_columns: Sequence[str] = (),
    crosses: Sequence[Sequence[str]] = (),
    group_columns: Sequence[str] = (),
    query: str | None = None,
    relevance: str | None = None,
    id_column: str | None = None,
    metrics: Sequence[str] | None = None,
    group_metrics: Sequence[str] | None = None,
    threshold: float = 0.5,
    top_n: int | None = None,
    traffic: str = "count",
    min_size: int | None = None,
    n_bins: int = 10,
    confidence: float = 0.95,
    bootstrap_replicates: int = DEFAULT_REPLICATES,
    bootstrap_seed: int = 0,
    bootstrap_buckets: int = DEFAULT_BUCKETS,
    n_jobs: int | None = None,
    intervals: bool = True,
) -> EvaluationResult:
    """Evaluate one or more models' predictions on the overall data and on slices.

    ``scores`` maps model name -> score column (``{"candidate": "score_candidate", "baseline":
    "score_baseline"}``); a list of columns names the models after the columns. ``baseline``
    (default: the model named ``"baseline"`` when there is one) is what every other model is
    compared with: each slice then carries ``deltas[model][metric]`` = model - baseline with a
    paired interval. Slicings: overall, every value of each of ``slice_columns``, every present
    combination of each cross in ``crosses``. ``top_n`` keeps only the N column slices with most
    traffic (``traffic="count"`` or ``"weight"``); ``min_size`` drops column and cross slices with
    fewer rows. ``group_columns`` adds, inside every slice, the metrics per protected group and the
    max-min gap across groups (``group_metrics`` defaults to ``metrics``; only the built-in binary
    metrics are broken down by group, ranking and custom metrics are not). Ranking metrics need
    ``query`` (relevance from ``relevance``, default ``label``). ``id_column`` keys the bootstrap
    buckets (default: a hash of label and scores). ``n_jobs`` threads (default: the machine's
    cores, at most 4) share the work: models and fixed row ranges on the compiled kernels,
    slicings on the numpy passes; the numbers do not depend on it. ``intervals=False`` gives point
    estimates only: every ``lo``/``hi`` is NaN and no interval work is done where the compiled
    kernels run (for exploration; gates always evaluate with intervals). Raises
    :class:`mlreg.errors.InputError` on bad input; undefined metrics are NaN values with a reason.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError("predictions must be a pandas DataFrame")
    check_options(traffic, top_n, min_size, threshold, confidence)
    if n_bins < 1 or bootstrap_replicates < 1 or not 1 <= bootstrap_buckets <= 65536:
        raise InputError("n_bins and bootstrap_replicates must be >= 1, bootstrap_buckets in "
                         "[1, 65536]")
    n = len(df)
    if n == 0:
        raise InputError("the predictions hold no rows")
    score_cols = _scores_mapping(scores)
    if baseline is None and "baseline" in score_cols and len(score_cols) > 1:
        baseline = "baseline"
    if baseline is not None and baseline not in score_cols:
        raise InputError(f"baseline {baseline!r} is not one of the models "
                         f"({', '.join(score_cols)})")
    requests = _requests(DEFAULT_METRICS if metrics is None else metrics, threshold)
    group_requests = requests if group_metrics is None else _requests(group_metrics, threshold)
    needs_binary = any(r.spec.kind != "ranking" for r in requests + group_requests)
    needs_ranking = any(r.spec.kind == "ranking" for r in requests + group_requests)
    if needs_ranking and query is None:
        raise InputError("ranking metrics need a query column (query=...)")

    ycol = _numeric(_column(df, label, "label"), "label")
    if needs_binary and not np.all((ycol == 0) | (ycol == 1)):
        bad = np.unique(ycol[(ycol != 0) & (ycol != 1)])[:5].tolist()
        raise InputError(f"label column {label!r} must hold 0/1 values; found {bad}")
    y = ycol.astype(np.int8) if needs_binary else None
    w = None
    if weight is not None:
        w = _numeric(_column(df, weight, "weight"), "weight")
        if np.any(w < 0):
            raise InputError(f"weight column {weight!r} has negative values")
    score_arrays: dict[str, np.ndarray] = {}
    for model, col in score_cols.items():
        s = _numeric(_column(df, col, "score"), "score")
        if needs_binary and (s.min() < 0.0 or s.max() > 1.0):
            raise InputError(f"score column {col!r} must lie in [0, 1] "
                             f"(found [{s.min():g}, {s.max():g}])")
        score_arrays[model] = np.ascontiguousarray(s, dtype=np.float64)

    for c in list(slice_columns) + [c for cr in crosses for c in cr] + list(group_columns):
        _column(df, c, "slice" if c not in group_columns else "group")
    if len(set(slice_columns)) != len(slice_columns):
        raise InputError("slice_columns repeats a column")

    thresholds = sorted({r.threshold for r in requests + group_requests
                         if r.threshold is not None})
    if len(thresholds) > MAX_THRESHOLDS:
        raise InputError(f"at most {MAX_THRESHOLDS} distinct thresholds per evaluation, "
                         f"got {len(thresholds)}")
    if n >= 2**32:
        raise InputError("evaluate_predictions handles fewer than 2**32 rows")
    want = frozenset(_KERNEL[r.name] for r in requests + group_requests if r.name in _KERNEL)
    n_jobs = min(os.cpu_count() or 1, 4) if n_jobs is None else max(1, int(n_jobs))

    with _blas_limit():
        ev = _Evaluation(
            df, n, y, w, score_arrays, baseline, requests, group_requests, tuple(thresholds),
            want, slice_columns, crosses, group_columns, query, relevance, id_column, label,
            weight, score_cols, top_n, traffic, min_size, n_bins, confidence,
            bootstrap_replicates, bootstrap_seed, bootstrap_buckets, n_jobs, threshold,
        )
        ev.intervals = bool(intervals)
        result = ev.run()
    if not intervals:
        _drop_intervals(result)
    return result


def _drop_intervals(result: EvaluationResult) -> None:
    """Point estimates only: blank every interval (and the method that would have made it)."""
    nan = float("nan")
    for sr in result.slices:
        for table in [sr.metrics, sr.deltas] + [g.gaps for g in sr.groups.values()]:
            for per_model in table.values():
                for key, v in per_model.items():
                    per_model[key] = dataclasses.replace(v, lo=nan, hi=nan, method=None)
        for g in sr.groups.values():
            for per_group in g.groups.values():
                for per_model in per_group.get("metrics", {}).values():
                    for key, v in per_model.items():
                        per_model[key] = dataclasses.replace(v, lo=nan, hi=nan, method=None)
    result.settings["intervals"] = False


def check_options(traffic: str, top_n: Any, min_size: Any, threshold: Any,
                  confidence: float) -> None:
    """The slice selection and threshold options every evaluation engine takes (InputError)."""
    if traffic not in ("count", "weight"):
        raise InputError("traffic must be 'count' or 'weight'")
    if top_n is not None and (not isinstance(top_n, (int, np.integer)) or top_n < 0):
        raise InputError("top_n must be a non-negative integer")
    if min_size is not None and min_size < 0:
        raise InputError("min_size must be >= 0")
    if not (isinstance(threshold, (int, float)) and 0.0 <= float(threshold) <= 1.0):
        raise InputError("threshold must lie in [0, 1]")
    if not 0.0 < confidence < 1.0:
        raise InputError("confidence must lie in (0, 1)")


def _requests(names: Sequence[str], threshold: float) -> list[MetricRequest]:
    if isinstance(names, str):
        names = [names]
    out: list[MetricRequest] = []
    seen = set()
    for name in names:
        req = resolve_metric(name, threshold=threshold)
        if req.key in seen:
            raise InputError(f"metric {name!r} is requested twice")
        seen.add(req.key)
        out.append(req)
    return out


def _blas_limit():
    """Cap BLAS threads at one inside the engine (two cores are oversubscribed otherwise)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class _Evaluation:
    def __init__(self, df, n, y, w, scores, baseline, requests, group_requests, thresholds, want,
                 slice_columns, crosses, group_columns, query, relevance, id_column, label,
                 weight, score_cols, top_n, traffic, min_size, n_bins, confidence, replicates,
                 seed, n_buckets, n_jobs, threshold):
        self.df = df
        self.n = n
        self.y = y
        self.w = w
        self.scores = scores
        self.models = tuple(scores)
        self.baseline = baseline
        self.others = [m for m in self.models if m != baseline] if baseline else []
        self.requests = requests
        self.group_requests = group_requests
        self.thresholds = thresholds
        self.want = want
        self.slice_columns = list(slice_columns)
        self.crosses = [tuple(c) for c in crosses]
        self.group_columns = list(group_columns)
        self.query = query
        self.relevance = relevance
        self.id_column = id_column
        self.label = label
        self.weight = weight
        self.score_cols = score_cols
        self.top_n = top_n
        self.traffic = traffic
        self.min_size = min_size
        self.n_bins = n_bins
        self.confidence = confidence
        self.replicates = replicates
        self.seed = seed
        self.n_buckets = n_buckets
        self.n_jobs = n_jobs
        self.threshold = threshold
        self.z = z_value(confidence)
        self.warnings: list[str] = []
        self._factorized: dict[str, tuple[np.ndarray, list[Any]]] = {}
        self.engine: Engine | None = None
        self.intervals = True
        self.buckets = None
        self.reps = None

    # ------------------------------------------------------------------ driver

    def run(self) -> EvaluationResult:
        slicings = [overall_slicing(self.n)]
        for c in self.slice_columns:
            sl = column_slicing(self.df, c)
            self._factorized[c] = (sl.codes, [k[0][1] for k in sl.keys])
            slicings.append(sl)
        for cr in self.crosses:
            slicings.append(cross_slicing(self.df, cr, self._factorized))
        slicings = self._select(slicings)
        engine_reqs = [r for r in self.requests + self.group_requests
                       if r.name in ENGINE_METRICS]
        custom = [r for r in self.requests if r.spec.kind != "ranking"
                  and r.name not in ENGINE_METRICS]
        needs_buckets = ("ece" in self.want and self.intervals) or bool(custom)
        if needs_buckets:
            if self.id_column is not None:
                cols = [_column(self.df, self.id_column, "id").to_numpy()]
            else:
                cols = [self.y] + [self.scores[m] for m in self.models]
            self.buckets = row_buckets(cols, self.seed, self.n_buckets)
            self.reps = poisson_replicates(self.seed, self.replicates, self.n_buckets)
        outputs: list[SlicingOutput | None] = [None] * len(slicings)
        group_outputs: dict[tuple[int, str], tuple[SlicingOutput, np.ndarray]] = {}
        if engine_reqs and self.y is not None:
            settings = EngineSettings(
                thresholds=self.thresholds, want=self.want, n_bins=self.n_bins,
                confidence=self.confidence, replicates=self.replicates, seed=self.seed,
                n_buckets=self.n_buckets, intervals=self.intervals)
            eng = Engine(self.y, self.w, self.scores, self.baseline, settings, self.buckets)
            self.engine = eng
            gwant = frozenset(_KERNEL[r.name] for r in self.group_requests if r.name in _KERNEL)
            group_slicings = {(i, gc): self._group_slicing(sl, gc)
                              for i, sl in enumerate(slicings) for gc in self.group_columns}
            done = eng.run_many(slicings, None, None, n_jobs=self.n_jobs)
            outputs = list(done)
            warm = self._warm(outputs[0])
            if group_slicings:
                keys = list(group_slicings)
                gdone = eng.run_many([group_slicings[k][0] for k in keys], warm, gwant,
                                     n_jobs=self.n_jobs)
                for key, out in zip(keys, gdone, strict=True):
                    group_outputs[key] = (out, group_slicings[key][1])
        ranking = self._ranking(slicings)
        customs = self._custom(slicings, custom)
        return self._assemble(slicings, outputs, group_outputs, ranking, customs)

    def _select(self, slicings: list[Slicing]) -> list[Slicing]:
        """Apply ``min_size`` and ``top_n`` before computing: the rows of excluded slices move
        into one trailing, unreported slice, so nothing is computed for each of them."""
        traffic = []
        for si, sl in enumerate(slicings):
            if sl.kind != "column":
                continue
            if self.traffic == "weight" and self.w is not None:
                tw = np.bincount(sl.codes, self.w, minlength=sl.n_slices)
            else:
                tw = sl.sizes.astype(np.float64)
            traffic.extend((-float(tw[k]), si, k) for k in range(sl.n_slices))
        traffic.sort()
        rank = {(si, k): i + 1 for i, (_, si, k) in enumerate(traffic)}
        self.excluded = {"below_min_size": 0, "outside_top_n": 0}
        out = []
        for si, sl in enumerate(slicings):
            K = sl.n_slices
            ranks = [rank.get((si, k)) for k in range(K)]
            keep = np.ones(K, dtype=bool)
            if sl.kind != "overall":
                if self.min_size is not None:
                    small = sl.sizes < self.min_size
                    self.excluded["below_min_size"] += int(small.sum())
                    keep &= ~small
                if sl.kind == "column" and self.top_n is not None:
                    far = np.array([r is not None and r > self.top_n for r in ranks]) & keep
                    self.excluded["outside_top_n"] += int(far.sum())
                    keep &= ~far
            if keep.all():
                sl.ranks = ranks
                out.append(sl)
                continue
            if not keep.any():
                continue
            kept = np.flatnonzero(keep)
            remap = np.full(K, kept.shape[0], dtype=np.int64)
            remap[kept] = np.arange(kept.shape[0])
            codes = narrow_codes(remap[sl.codes], kept.shape[0] + 1)
            sizes = np.append(sl.sizes[kept], sl.sizes[~keep].sum())
            keys = [sl.keys[k] for k in kept] + [(("__excluded__", None),)]
            out.append(Slicing(sl.kind, sl.columns, codes, keys, sizes, n_report=len(kept),
                               ranks=[ranks[k] for k in kept]))
        return out

    @staticmethod
    def _warm(out: SlicingOutput) -> dict[str, np.ndarray]:
        """The overall calibration fit of every model, to start the slices' fits from."""
        return {m: o.theta[0] for m, o in out.models.items() if o.theta is not None}

    def _group_slicing(self, sl: Slicing, column: str) -> tuple[Slicing, np.ndarray]:
        if column not in self._factorized:
            self._factorized[column] = factorize(self.df[column])
        gcodes, gvals = self._factorized[column]
        base = sl.codes if sl.codes is not None else np.zeros(self.n, dtype=np.uint8)
        codes, combos = combine_codes([(base, sl.n_slices), (gcodes, len(gvals))])
        keys = [tuple(sl.keys[int(a)]) + ((column, gvals[int(b)]),) for a, b in combos]
        sizes = np.bincount(codes, minlength=len(keys)).astype(np.int64)
        return Slicing("group", sl.columns + (column,), codes, keys, sizes), combos

    # ------------------------------------------------------------------ ranking

    def _ranking(self, slicings: list[Slicing]) -> list[dict]:
        reqs = [r for r in self.requests + self.group_requests if r.spec.kind == "ranking"]
        if not reqs:
            return [{} for _ in slicings]
        qcodes, qvals = factorize(_column(self.df, self.query, "query"))
        rel_col = self.relevance if self.relevance is not None else self.label
        rel = _numeric(_column(self.df, rel_col, "relevance"), "relevance")
        if np.any(rel < 0):
            raise InputError(f"relevance column {rel_col!r} has negative values")
        qbuckets_all = row_buckets([np.asarray(qvals, dtype=object)], self.seed,
                                   self.n_buckets).astype(np.int64)
        reps = poisson_replicates(self.seed, self.replicates, self.n_buckets)
        ks = sorted({r.k for r in reqs}, key=lambda k: (k is None, k or 0))
        out = []
        for sl in slicings:
            base = sl.codes if sl.codes is not None else np.zeros(self.n, dtype=np.uint8)
            units, combos = combine_codes([(base, sl.n_slices), (qcodes, len(qvals))])
            U = combos.shape[0]
            uslice = combos[:, 0]
            ubucket = qbuckets_all[combos[:, 1]]
            per_model = {}
            for m in self.models:
                per_model[m] = {k: RK.query_metrics(units.astype(np.int64), U, rel,
                                                    self.scores[m], k) for k in ks}
            res: dict[tuple[str, str], dict[int, Any]] = {}
            for r in reqs:
                for m in self.models:
                    vals = per_model[m][r.k][r.name]
                    res[(m, r.key)] = self._rank_aggregate(vals, uslice, ubucket, reps,
                                                           sl.n_slices, r.name)
                if self.baseline:
                    vb = per_model[self.baseline][r.k][r.name]
                    for m in self.others:
                        va = per_model[m][r.k][r.name]
                        res[("delta:" + m, r.key)] = self._rank_delta(
                            va, vb, uslice, ubucket, reps, sl.n_slices)
            out.append(res)
        return out

    def _rank_aggregate(self, vals, uslice, ubucket, reps, K, name) -> dict[int, MetricValue]:
        NB = self.n_buckets
        ok = np.isfinite(vals)
        cnt = np.bincount(uslice[ok], minlength=K)
        tot = np.bincount(uslice[ok], vals[ok], minlength=K)
        key = uslice[ok] * NB + ubucket[ok]
        sb = np.bincount(key, vals[ok], minlength=K * NB).reshape(K, NB)
        cb = np.bincount(key, minlength=K * NB).reshape(K, NB).astype(np.float64)
        num = sb @ reps.T
        den = cb @ reps.T
        with np.errstate(divide="ignore", invalid="ignore"):
            rep = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        lo, hi = percentile_interval(rep, self.confidence, axis=1)
        out = {}
        for k in range(K):
            if cnt[k] == 0:
                why = "no query with a relevant item" if name == "recall_at_k" else "no queries"
                out[k] = MetricValue.undefined(why, 0)
            else:
                out[k] = MetricValue(float(tot[k] / cnt[k]), float(lo[k]), float(hi[k]),
                                     "poisson_bootstrap", None, int(cnt[k]))
        return out

    def _rank_delta(self, va, vb, uslice, ubucket, reps, K) -> dict[int, PairedDelta]:
        NB = self.n_buckets
        ok = np.isfinite(va) & np.isfinite(vb)
        d = va[ok] - vb[ok]
        cnt = np.bincount(uslice[ok], minlength=K)
        ta = np.bincount(uslice[ok], va[ok], minlength=K)
        tb = np.bincount(uslice[ok], vb[ok], minlength=K)
        key = uslice[ok] * NB + ubucket[ok]
        sb = np.bincount(key, d, minlength=K * NB).reshape(K, NB)
        cb = np.bincount(key, minlength=K * NB).reshape(K, NB).astype(np.float64)
        num = sb @ reps.T
        den = cb @ reps.T
        with np.errstate(divide="ignore", invalid="ignore"):
            rep = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        lo, hi = percentile_interval(rep, self.confidence, axis=1)
        out = {}
        for k in range(K):
            if cnt[k] == 0:
                out[k] = PairedDelta.undefined("no query where both models are defined")
            else:
                out[k] = PairedDelta(float(ta[k] / cnt[k] - tb[k] / cnt[k]), float(lo[k]),
                                     float(hi[k]), "poisson_bootstrap", None)
        return out

    # ------------------------------------------------------------------ custom metrics

    def _custom(self, slicings: list[Slicing], reqs: list[MetricRequest]) -> list[dict]:
        if not reqs:
            return [{} for _ in slicings]
        out = []
        yv = self.y
        qv = None if self.query is None else self.df[self.query].to_numpy()
        for sl in slicings:
            res: dict[tuple[str, str], dict[int, Any]] = {}
            if sl.codes is None:
                groups = [np.arange(self.n)]
            else:
                order = np.argsort(sl.codes, kind="stable")
                bounds = np.concatenate(([0], np.cumsum(sl.sizes)))
                groups = [order[bounds[k]:bounds[k + 1]] for k in range(sl.n_slices)]
            for r in reqs:
                vals: dict[str, dict[int, MetricValue]] = {m: {} for m in self.models}
                groups = groups[:sl.reported]
                for k, rows in enumerate(groups):
                    for m in self.models:
                        vals[m][k] = self._call_custom(r, rows, m, yv, qv, None)
                for m in self.models:
                    res[(m, r.key)] = vals[m]
                if self.baseline:
                    for m in self.others:
                        res[("delta:" + m, r.key)] = {
                            k: self._custom_delta(r, rows, m, yv, qv, vals[m][k],
                                                  vals[self.baseline][k])
                            for k, rows in enumerate(groups)}
            out.append(res)
        return out

    def _slice_data(self, rows, model, yv, qv, weight) -> SliceData:
        return SliceData(
            label=yv[rows], score=self.scores[model][rows],
            weight=weight if weight is not None else (None if self.w is None else self.w[rows]),
            query=None if qv is None else qv[rows], buckets=self.buckets[rows],
            confidence=self.confidence, n_bins=self.n_bins, replicates=self.replicates,
            seed=self.seed, n_buckets=self.n_buckets)

    def _call_custom(self, req, rows, model, yv, qv, weight) -> MetricValue:
        try:
            mv = req.spec.fn(self._slice_data(rows, model, yv, qv, weight), **req.params)
        except InputError:
            raise
        except Exception as exc:  # a custom metric failing is reported, not raised
            return MetricValue.undefined(f"metric raised {type(exc).__name__}: {exc}",
                                         len(rows))
        if not isinstance(mv, MetricValue):
            mv = MetricValue(float(mv), n=len(rows))
        return mv

    def _custom_delta(self, req, rows, model, yv, qv, va, vb) -> PairedDelta:
        if not (va.defined and vb.defined):
            return PairedDelta.undefined(va.reason or vb.reason or "undefined")
        base_w = np.ones(len(rows)) if self.w is None else self.w[rows]
        bk = self.buckets[rows].astype(np.int64)
        diffs = np.empty(self.reps.shape[0])
        for r in range(self.reps.shape[0]):
            wr = base_w * self.reps[r, bk]
            a = self._call_custom(req, rows, model, yv, qv, wr).value
            b = self._call_custom(req, rows, self.baseline, yv, qv, wr).value
            diffs[r] = a - b
        lo, hi = percentile_interval(diffs, self.confidence)
        return PairedDelta(va.value - vb.value, lo, hi, "poisson_bootstrap", None)

    # ------------------------------------------------------------------ assembly

    def _metric_value(self, out: SlicingOutput, model: str, req: MetricRequest,
                      k: int) -> MetricValue:
        col: Column = out.models[model].columns[_engine_key(req)]
        return MetricValue(float(col.value[k]), float(col.lo[k]), float(col.hi[k]),
                           col.method if math.isfinite(col.value[k]) else None,
                           col.reason[k], int(col.n[k]))

    def _delta(self, out: SlicingOutput, model: str, req: MetricRequest, k: int) -> PairedDelta:
        if req.spec.score_free:
            return PairedDelta(0.0, 0.0, 0.0, "exact", None)
        dc = out.models[model].deltas[_engine_key(req)]
        v = float(dc.value[k])
        if not math.isfinite(v):
            return PairedDelta.undefined(dc.reason[k] or "undefined")
        return PairedDelta(v, float(dc.lo[k]), float(dc.hi[k]), dc.method, None)

    def _slice_metrics(self, si: int, k: int, out: SlicingOutput | None, ranking: dict,
                       customs: dict, reqs: list[MetricRequest]):
        metrics: dict[str, dict[str, MetricValue]] = {m: {} for m in self.models}
        deltas: dict[str, dict[str, PairedDelta]] = {m: {} for m in self.others}
        for r in reqs:
            for m in self.models:
                if r.name in ENGINE_METRICS:
                    metrics[m][r.key] = self._metric_value(out, m, r, k)
                elif r.spec.kind == "ranking":
                    metrics[m][r.key] = ranking[(m, r.key)][k]
                else:
                    metrics[m][r.key] = customs[(m, r.key)][k]
            for m in self.others:
                if r.name in ENGINE_METRICS:
                    deltas[m][r.key] = self._delta(out, m, r, k)
                elif r.spec.kind == "ranking":
                    deltas[m][r.key] = ranking[("delta:" + m, r.key)][k]
                else:
                    deltas[m][r.key] = customs[("delta:" + m, r.key)][k]
        return metrics, deltas

    def _assemble(self, slicings, outputs, group_outputs, ranking, customs) -> EvaluationResult:
        results: list[SliceResult] = []
        excluded = self.excluded
        want_rel = any(r.name == "ece" for r in self.requests)
        for si, sl in enumerate(slicings):
            out = outputs[si]
            for k in range(sl.reported):
                n_k = int(sl.sizes[k])
                weight_k = float(out.stats.W[k]) if out is not None else (
                    float(n_k) if self.w is None else float(
                        self.w.sum() if sl.codes is None else self.w[sl.codes == k].sum()))
                metrics, deltas = self._slice_metrics(si, k, out, ranking[si], customs[si],
                                                      self.requests)
                res = SliceResult(sl.kind, tuple(sl.keys[k]), n_k, weight_k, metrics, deltas,
                                  traffic_rank=sl.ranks[k] if sl.ranks else None)
                if want_rel and out is not None:
                    for m in self.models:
                        rel = out.models[m].reliability
                        if rel:
                            res.reliability[m] = [
                                ReliabilityBin(j / self.n_bins, (j + 1) / self.n_bins,
                                               int(rel["count"][k, j]), float(rel["weight"][k, j]),
                                               float(rel["mean_score"][k, j]),
                                               float(rel["mean_label"][k, j]))
                                for j in range(self.n_bins)]
                for gc in self.group_columns:
                    res.groups[gc] = self._groups(si, k, gc, group_outputs.get((si, gc)))
                results.append(res)
        return EvaluationResult(
            models=self.models, baseline=self.baseline,
            metrics=tuple(r.key for r in self.requests), n=self.n,
            weight=float(self.n if self.w is None else self.w.sum()), slices=results,
            settings={
                "label": self.label, "weight": self.weight, "scores": dict(self.score_cols),
                "slice_columns": list(self.slice_columns),
                "crosses": [list(c) for c in self.crosses],
                "group_columns": list(self.group_columns), "query": self.query,
                "threshold": self.threshold, "thresholds": list(self.thresholds),
                "n_bins": self.n_bins, "confidence": self.confidence,
                "bootstrap": {"replicates": self.replicates, "seed": self.seed,
                              "buckets": self.n_buckets, "id_column": self.id_column},
                "top_n": self.top_n, "traffic": self.traffic, "min_size": self.min_size,
            },
            excluded=excluded, warnings=self.warnings)

    # ------------------------------------------------------------------ groups

    def _groups(self, si: int, k: int, column: str, got) -> GroupBreakdown:
        gb = GroupBreakdown(column)
        if got is None:
            return gb
        out, combos = got
        members = np.flatnonzero(combos[:, 0] == k)
        reqs = [r for r in self.group_requests if r.name in ENGINE_METRICS]
        for gi in members:
            gval = out.slicing.keys[gi][-1][1]
            metrics = {m: {r.key: self._metric_value(out, m, r, gi) for r in reqs}
                       for m in self.models}
            gb.groups[gval] = {"n": int(out.stats.n[gi]), "weight": float(out.stats.W[gi]),
                               "metrics": metrics}
        for m in self.models:
            gb.gaps[m] = {}
            for ri, r in enumerate(reqs):
                gb.gaps[m][r.key] = self._gap(out, m, r, members, (si, k, ri))
        return gb

    def _gap(self, out: SlicingOutput, model: str, req: MetricRequest, members: np.ndarray,
             salt: tuple[int, int, int]) -> GapValue:
        if req.spec.score_free and req.name in ("count", "weight"):
            col = out.models[model].columns[req.name]
        else:
            col = out.models[model].columns[_engine_key(req)]
        vals = col.value[members]
        ok = np.isfinite(vals)
        keys = [out.slicing.keys[g][-1][1] for g in members]
        if not ok.any():
            return GapValue(float("nan"), reason="no group with a defined value",
                            n_groups=int(len(members)))
        dv = vals[ok]
        gmax = int(np.argmax(dv))
        gmin = int(np.argmin(dv))
        okk = [keys[i] for i in np.flatnonzero(ok)]
        value = float(dv[gmax] - dv[gmin])
        reason = "only one group with a defined value" if dv.shape[0] < 2 else None
        lo = hi = float("nan")
        method = None
        if req.name in ("count", "weight"):
            lo = hi = value
            method = "exact"
        elif dv.shape[0] >= 2:
            rng = np.random.default_rng([self.seed, *salt, 7])
            R = self.replicates
            if req.name in _COUNT_METRICS:
                reps = count_replicates(out, model, req, members, rng, R)
                method = "poisson_bootstrap"
            else:
                se = col.se[members] if col.se is not None else (
                    (col.hi[members] - col.lo[members]) / (2 * self.z))
                se = np.where(np.isfinite(se), se, 0.0)
                reps = vals[None, :] + rng.standard_normal((R, len(members))) * se[None, :]
                reps = np.where(np.isfinite(vals)[None, :], reps, np.nan)
                method = "parametric_bootstrap"
            with np.errstate(all="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    gaps = np.nanmax(reps, axis=1) - np.nanmin(reps, axis=1)
            lo, hi = percentile_interval(gaps, self.confidence)
        return GapValue(value, lo, hi, method, reason, okk[gmax], okk[gmin], int(ok.sum()))


def count_replicates(out, model, req, members, rng, R) -> np.ndarray:
    """Poisson bootstrap of every group's confusion cells (exact for unweighted data: a
    cell's replicate count is Poisson(count)); weighted cells use the Kish-matched scaled
    Poisson, ``(W2/W) * Poisson(W^2/W2)``. ``out`` is one slicing's statistics, computed in
    memory or by the scale engines from their cells: both paths share this code."""
    if req.name == "base_rate":
        st = out.stats
        cells_w = np.stack([st.Wneg[members], st.Wpos[members]], axis=1)
        cells_w2 = np.stack([st.W2neg[members], st.W2pos[members]], axis=1)
    else:
        cw, c2, _ = out.models[model].cells[req.threshold]
        cells_w, cells_w2 = cw[members], c2[members]
    with np.errstate(divide="ignore", invalid="ignore"):
        neff = np.where(cells_w2 > 0, cells_w ** 2 / np.where(cells_w2 > 0, cells_w2, 1), 0)
        scale = np.where(cells_w > 0, cells_w2 / np.where(cells_w > 0, cells_w, 1), 0)
    draws = rng.poisson(neff[None, :, :], size=(R,) + neff.shape) * scale[None, :, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        if req.name == "base_rate":
            neg, pos = draws[..., 0], draws[..., 1]
            num, den = pos, pos + neg
        else:
            tn, fn, fp, tp = draws[..., 0], draws[..., 1], draws[..., 2], draws[..., 3]
            if req.name == "precision":
                num, den = tp, tp + fp
            elif req.name in ("recall", "tpr"):
                num, den = tp, tp + fn
            elif req.name == "fpr":
                num, den = fp, fp + tn
            else:
                num, den = 2 * tp, 2 * tp + fp + fn
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
