"""The driver: passes on an engine, cells merged and decided with one code path.

:func:`evaluate_at_scale` is :func:`mlreg.metrics.evaluate_predictions` for data that does not
fit (or does not live) in this process. Same arguments, same result type
(:class:`~mlreg.scale.results.ScaledResult` is an ``EvaluationResult`` whose values carry
``bound``/``exact``/``note``), computed in passes over the rows by an engine:

1. **pass 1** - the cell table (:mod:`mlreg.scale.cells`), merged and decoded here;
2. **the exact pass** (when the calibration fit or a paired AUC interval is asked for and the
   engine has rows) - one Newton step per slice over the rows, and the paired moments;
3. **refinement** (only when ``refine`` names undecided slices) - the AUC units of just those
   slices split finer, until the bound no longer leaves the verdict open or is exhausted.

Everything after pass 1 is decided here from small tables, so every engine gives the same
numbers: exact metrics to rounding, bounded ones within their bound.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlreg.errors import InputError
from mlreg.metrics import DEFAULT_METRICS, MetricRequest, resolve_metric
from mlreg.metrics.evaluate import check_options, count_replicates
from mlreg.metrics.intervals import percentile_interval, z_value
from mlreg.metrics.results import MetricValue, PairedDelta, ReliabilityBin, render_key
from mlreg.scale.cells import Decoded, decode_cells
from mlreg.scale.compute import Partition, Pass2Sums, SlicingMetrics, compute_slicing, partition
from mlreg.scale.engines import Engine, open_engine
from mlreg.scale.passes import Pass2Request, RefineItem, RefineRequest, SlicingParams
from mlreg.scale.results import (
    BoundedGapValue,
    BoundedMetricValue,
    BoundedPairedDelta,
    ScaledResult,
    ScaleInfo,
)
from mlreg.scale.spec import DEFAULT_BUCKETS, DEFAULT_LOGIT_RANGE, Spec

__all__ = ["evaluate_at_scale", "Undecided", "SCALE_METRICS"]

#: metrics the scale engines compute (the in-memory engine's binary metrics)
SCALE_METRICS = frozenset({
    "count", "weight", "base_rate", "mean_score", "auc", "pr_auc", "log_loss", "brier",
    "calibration_slope", "calibration_intercept", "ece", "precision", "recall", "tpr", "fpr",
    "f1",
})
_KERNEL = {
    "auc": "auc", "pr_auc": "pr_auc", "log_loss": "log_loss", "brier": "brier",
    "mean_score": "mean_score", "calibration_slope": "calibration",
    "calibration_intercept": "calibration", "ece": "ece",
}
_COUNT_METRICS = ("precision", "recall", "tpr", "fpr", "f1", "base_rate")
_REFINABLE = ("auc", "pr_auc")
SUBCELL_BUDGET = 1_000_000
MAX_EXACT_PASSES = 3


@dataclass(frozen=True)
class Undecided:
    """A value whose verdict its bound leaves open: refine ``metric`` of ``models`` on slice
    ``slice`` (a slice name as results render them; a protected-group value inside a slice is
    named with the group appended: ``country=US,age_band=18-25``)."""

    slice: str
    metric: str
    models: tuple[str, ...]


RefineFn = Callable[[ScaledResult], Iterable[Undecided]]


def _engine_key(req: MetricRequest) -> str:
    if req.spec.param == "threshold":
        return f"{req.name}@{req.threshold!r}"
    return req.name


def _requests(names: Sequence[str], threshold: float) -> list[MetricRequest]:
    if isinstance(names, str):
        names = [names]
    out, seen = [], set()
    for name in names:
        req = resolve_metric(name, threshold=threshold)
        if req.key in seen:
            raise InputError(f"metric {name!r} is requested twice")
        seen.add(req.key)
        out.append(req)
    return out


def evaluate_at_scale(
    source: Any,
    *,
    engine: str | Engine = "stream",
    label: str,
    scores: Mapping[str, str] | Sequence[str] | str,
    baseline: str | None = None,
    weight: str | None = None,
    slice_columns: Sequence[str] = (),
    crosses: Sequence[Sequence[str]] = (),
    group_columns: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    group_metrics: Sequence[str] | None = None,
    threshold: float = 0.5,
    top_n: int | None = None,
    traffic: str = "count",
    min_size: int | None = None,
    n_bins: int = 10,
    confidence: float = 0.95,
    bootstrap_replicates: int = 200,
    bootstrap_seed: int = 0,
    buckets: float = DEFAULT_BUCKETS,
    logit_range: float = DEFAULT_LOGIT_RANGE,
    exact_pass: str = "auto",
    refine: RefineFn | None = None,
    max_refine_passes: int = 4,
    options: Mapping[str, Any] | None = None,
) -> ScaledResult:
    """Evaluate predictions in passes on ``engine`` (see the module docstring).

    ``source``: for ``stream``/``duckdb``/``spark`` a Parquet file, directory, glob or list of
    files (local or object store URI), a pandas DataFrame or an Arrow table; for ``cells`` a
    cell table (Arrow table or Parquet path). Other arguments as
    :func:`mlreg.metrics.evaluate_predictions`, plus ``buckets`` (logit buckets per unit of
    logit; the AUC bound is about 0.075 / buckets) and ``logit_range`` (the histogram's span), ``exact_pass`` (``auto``: run it when the calibration fit or a paired AUC
    interval needs it and the engine has rows; ``never``) and ``refine`` (a function naming the
    :class:`Undecided` values of a preliminary result; see :mod:`mlreg.scale.gating`).
    Ranking and custom metrics are not computed (they are undefined with a reason).
    """
    check_options(traffic, top_n, min_size, threshold, confidence)
    if exact_pass not in ("auto", "never"):
        raise InputError("exact_pass must be 'auto' or 'never'")
    requests = _requests(DEFAULT_METRICS if metrics is None else metrics, threshold)
    group_requests = requests if group_metrics is None else _requests(group_metrics, threshold)
    thresholds = sorted({r.threshold for r in requests + group_requests
                         if r.threshold is not None and r.name in SCALE_METRICS})
    spec = Spec.build(label=label, scores=scores, baseline=baseline, weight=weight,
                      slice_columns=slice_columns, crosses=crosses,
                      group_columns=group_columns if group_columns else (),
                      thresholds=thresholds, n_bins=n_bins, buckets=buckets,
                      logit_range=logit_range)
    want = frozenset(_KERNEL[r.name] for r in requests + group_requests if r.name in _KERNEL)
    eng = engine if not isinstance(engine, str) else open_engine(engine, source, options)
    run = _Run(spec, eng, requests, group_requests, want, dict(
        threshold=float(threshold), top_n=top_n, traffic=traffic, min_size=min_size,
        n_bins=n_bins, confidence=confidence, replicates=int(bootstrap_replicates),
        seed=int(bootstrap_seed)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return run.execute(exact_pass, refine, max_refine_passes)
    finally:
        if isinstance(engine, str):
            eng.close()


class _Run:
    def __init__(self, spec: Spec, eng: Engine, requests, group_requests, want, cfg) -> None:
        self.spec = spec
        self.eng = eng
        self.requests = requests
        self.group_requests = group_requests
        self.want = want
        self.cfg = cfg
        self.z = z_value(cfg["confidence"])
        self.pass2: dict[tuple[int, str], Pass2Sums] = {}
        self.parts: dict[tuple[int, str], Partition] = {}
        self.info = ScaleInfo(engine=getattr(eng, "name", type(eng).__name__),
                              buckets=spec.buckets, logit_range=spec.logit_range)
        self.decoded: Decoded | None = None
        self.metrics: list[SlicingMetrics] = []
        self._refined: dict[str, set] = {}

    # ------------------------------------------------------------------ passes

    def execute(self, exact_pass: str, refine: RefineFn | None, max_passes: int) -> ScaledResult:
        t = time.perf_counter()
        table = self.eng.pass1(self.spec)
        self.info.seconds["pass1"] = time.perf_counter() - t
        self.info.cells = int(table.num_rows)
        self.info.passes.append("pass 1")
        self.decoded = decode_cells(self.spec, table)
        del table
        _release()
        if self.want & {"auc", "pr_auc"}:
            for sc in self.decoded.slicings:
                for m, mc in sc.models.items():
                    self.parts[(sc.index, m)] = partition(mc)
        self._compute_all()
        if exact_pass == "auto" and getattr(self.eng, "supports_exact", False):
            for _ in range(MAX_EXACT_PASSES):
                req = self._pass2_request()
                if req is None:
                    break
                t = time.perf_counter()
                self.pass2 = self.eng.pass2(self.spec, req)
                self._snapshot_auc()
                self.info.seconds["exact_pass"] = self.info.seconds.get("exact_pass", 0.0) + (
                    time.perf_counter() - t)
                self.info.passes.append("exact pass")
                self._compute_all()
                if not self._fit_open():
                    break
        result = self._assemble()
        if refine is None:
            return result
        for _ in range(max(0, int(max_passes))):
            todo = list(refine(result))
            if not todo or not getattr(self.eng, "supports_exact", False):
                break
            t = time.perf_counter()
            changed = self._refine(todo)
            self.info.seconds["refine"] = self.info.seconds.get("refine", 0.0) + (
                time.perf_counter() - t)
            if not changed:
                break
            self.info.passes.append("refine")
            result = self._assemble()
        return result

    def _compute_all(self, only: set[int] | None = None) -> None:
        assert self.decoded is not None
        cfg = self.cfg
        warm = None
        if self.metrics and "calibration" in self.want:
            ov = self.metrics[0].models
            warm = {m: np.repeat(ov[m].theta[:1], 1, axis=0) for m in ov if ov[m].theta is not None}
        out = list(self.metrics) if self.metrics else [None] * len(self.decoded.slicings)
        for sc in self.decoded.slicings:
            if only is not None and sc.index not in only:
                continue
            w = None
            if warm is not None:
                w = {m: np.repeat(th, sc.K, axis=0) for m, th in warm.items()}
            parts = {m: self.parts[(sc.index, m)] for m in sc.models
                     if (sc.index, m) in self.parts}
            p2 = {m: self.pass2[(sc.index, m)] for m in sc.models if (sc.index, m) in self.pass2}
            out[sc.index] = compute_slicing(
                sc, parts, z=self.z, confidence=cfg["confidence"],
                thresholds=self.spec.thresholds, n_bins=self.spec.n_bins,
                replicates=cfg["replicates"], seed=cfg["seed"], want=self.want,
                baseline=self.spec.baseline, pass2=p2, warm=w)
        self.metrics = out  # type: ignore[assignment]

    def _snapshot_auc(self) -> None:
        """Keep the placement moments the AUC cross moments were computed with."""
        for sm in self.metrics:
            for m, mm in sm.models.items():
                p2 = self.pass2.get((sm.cells.index, m))
                if p2 is not None and mm.auc is not None:
                    p2.auc_mom = mm.mean_moments["auc"]
                    p2.auc_exact = mm.auc.exact

    def _start(self, model: str) -> np.ndarray:
        th = self.metrics[0].models[model].theta
        if th is not None and np.all(np.isfinite(th[0])):
            return th[0]
        return np.array([0.0, 1.0])

    def _fit_open(self) -> bool:
        """Some polished fit still moved by more than POLISHED_STEP in its Newton step."""
        for sm in self.metrics:
            for mm in sm.models.values():
                col = mm.columns.get("calibration_slope")
                if col is not None and np.any(np.nan_to_num(col.bound) > 0):
                    return True
        return False

    def _pass2_request(self) -> Pass2Request | None:
        spec = self.spec
        newton = tuple(spec.models) if "calibration" in self.want else ()
        sandwich = tuple(spec.others) if "calibration" in self.want else ()
        auc_cross = tuple(spec.others) if "auc" in self.want else ()
        if not (newton or sandwich or auc_cross):
            return None
        params = []
        for sm in self.metrics:
            sc = sm.cells
            sp = SlicingParams(sc.index, sc.columns, [tuple(v for _, v in key) for key in sc.keys])
            for m, mm in sm.models.items():
                if mm.theta is not None:
                    th = mm.theta.copy()
                    bad = ~np.all(np.isfinite(th), axis=1)
                    th[bad] = self._start(m)
                    sp.theta[m] = th
                if auc_cross and mm.auc is not None:
                    pt = self.parts[(sc.index, m)]
                    keys = pt.k * spec.ext_size + pt.ext
                    sp.place[m] = (keys, mm.auc.vp, mm.auc.vn)
            params.append(sp)
        return Pass2Request(params, newton, sandwich, auc_cross)

    def _refine(self, todo: list[Undecided]) -> bool:
        assert self.decoded is not None
        where: dict[str, tuple[int, int]] = {}
        for sc in self.decoded.slicings:
            for k, key in enumerate(sc.keys):
                where.setdefault(render_key(key), (sc.index, k))
        wanted: dict[tuple[int, str, int], set[str]] = {}
        for u in todo:
            metric = u.metric.partition("@")[0]
            if metric not in _REFINABLE or u.slice not in where:
                continue
            si, k = where[u.slice]
            for m in u.models:
                if (si, m) in self.parts:
                    wanted.setdefault((si, m, k), set()).add(metric)
        items: list[RefineItem] = []
        index: list[tuple[int, str, int]] = []  # (slicing, model, unit position)
        for (si, m, k), names in wanted.items():
            sc = self.decoded.slicings[si]
            pt = self.parts[(si, m)]
            need = np.zeros(pt.k.shape[0], dtype=bool)
            if "auc" in names:
                need |= ~pt.resolved()
            if "pr_auc" in names:
                need |= ~pt.tie_single() & (pt.p > 0)
            units = np.flatnonzero((pt.k == k) & need)
            for i in units:
                items.append(RefineItem(si, sc.columns, tuple(v for _, v in sc.keys[k]), k, m,
                                        int(pt.ext[i]), float(pt.lo[i]), float(pt.hi[i]), 1))
                index.append((si, m, int(i)))
            if units.size:
                for name in names:
                    self._refined.setdefault(name, set()).add((si, m, k))
        if not items:
            return False
        sub = int(min(1000, max(2, SUBCELL_BUDGET // len(items))))
        items = [RefineItem(it.slicing, it.columns, it.key, it.k, it.model, it.ext, it.lo, it.hi,
                            sub) for it in items]
        table = self.eng.refine(self.spec, RefineRequest(items))
        cols = {c: np.asarray(table.column(c).to_pylist(), dtype=np.float64) for c in
                ("item", "sub", "label", "w", "w2", "s_min", "s_max")}
        item = cols["item"].astype(np.int64)
        by_part: dict[tuple[int, str], list[int]] = {}
        for j, (si, m, _) in enumerate(index):
            by_part.setdefault((si, m), []).append(j)
        for (si, m), js in by_part.items():
            pt = self.parts[(si, m)]
            rows = np.flatnonzero(np.isin(item, np.asarray(js, dtype=np.int64)))
            sub_pt = _sub_partition(items, item[rows], cols["sub"][rows].astype(np.int64),
                                    cols["label"][rows].astype(np.int64), cols["w"][rows],
                                    cols["w2"][rows], cols["s_min"][rows], cols["s_max"][rows])
            self.parts[(si, m)] = pt.replace(np.asarray([index[j][2] for j in js]), sub_pt)
        self._compute_all(only={si for si, _ in by_part})
        return True

    # ------------------------------------------------------------------ assembly

    def _assemble(self) -> ScaledResult:
        assert self.decoded is not None
        cfg = self.cfg
        spec = self.spec
        results = []
        excluded = {"below_min_size": 0, "outside_top_n": 0}
        traffic_list = []
        for sm in self.metrics:
            if sm.cells.kind != "column":
                continue
            for k in range(sm.cells.K):
                if cfg["traffic"] == "weight" and spec.weight is not None:
                    t = float(sm.stats.W[k])
                else:
                    t = float(sm.stats.n[k])
                traffic_list.append((-t, sm.cells.index, k))
        traffic_list.sort()
        rank = {(si, k): i + 1 for i, (_, si, k) in enumerate(traffic_list)}
        want_rel = any(r.name == "ece" for r in self.requests)
        groups_of: dict[tuple[int, str], SlicingMetrics] = {}
        for sm in self.metrics:
            if sm.cells.kind == "group":
                groups_of[(sm.cells.parent, sm.cells.columns[-1])] = sm  # type: ignore[index]
        from mlreg.metrics.results import SliceResult

        self._bounds: dict[str, float] = {}
        self._exact: dict[str, bool] = {}
        for sm in self.metrics:
            sc = sm.cells
            if sc.kind == "group":
                continue
            for k in range(sc.K):
                n_k = int(sm.stats.n[k])
                if sc.kind != "overall":
                    if cfg["min_size"] is not None and n_k < cfg["min_size"]:
                        excluded["below_min_size"] += 1
                        continue
                    if (sc.kind == "column" and cfg["top_n"] is not None
                            and rank[(sc.index, k)] > cfg["top_n"]):
                        excluded["outside_top_n"] += 1
                        continue
                metrics, deltas = self._slice_metrics(sm, k, self.requests)
                res = SliceResult(sc.kind, tuple(sc.keys[k]), n_k, float(sm.stats.W[k]), metrics,
                                  deltas, traffic_rank=rank.get((sc.index, k)))
                if want_rel:
                    nb = spec.n_bins
                    for m, mm in sm.models.items():
                        rel = mm.reliability
                        if rel:
                            res.reliability[m] = [
                                ReliabilityBin(j / nb, (j + 1) / nb, int(rel["count"][k, j]),
                                               float(rel["weight"][k, j]),
                                               float(rel["mean_score"][k, j]),
                                               float(rel["mean_label"][k, j]))
                                for j in range(nb)]
                for gc in spec.group_columns:
                    res.groups[gc] = self._groups(sc.index, k, gc, groups_of.get((sc.index, gc)))
                results.append(res)
        info = self.info
        info.max_bound = dict(self._bounds)
        info.exact = dict(self._exact)
        info.refined = {r.key: len({(si, k) for si, _, k in self._refined[r.name]})
                        for r in self.requests if self._refined.get(r.name)}
        n_total = int(self.metrics[0].stats.n[0])
        w_total = float(self.metrics[0].stats.W[0])
        return ScaledResult(
            models=spec.models, baseline=spec.baseline,
            metrics=tuple(r.key for r in self.requests), n=n_total, weight=w_total,
            slices=results,
            settings={
                "label": spec.label, "weight": spec.weight, "scores": dict(spec.scores),
                "slice_columns": list(spec.slice_columns),
                "crosses": [list(c) for c in spec.crosses],
                "group_columns": list(spec.group_columns), "query": None,
                "threshold": cfg["threshold"], "thresholds": list(spec.thresholds),
                "n_bins": spec.n_bins, "confidence": cfg["confidence"],
                "bootstrap": {"replicates": cfg["replicates"], "seed": cfg["seed"]},
                "top_n": cfg["top_n"], "traffic": cfg["traffic"], "min_size": cfg["min_size"],
                "engine": info.engine, "buckets": spec.buckets, "logit_range": spec.logit_range,
            },
            excluded=excluded, warnings=[], scale=info)

    def _note_bound(self, key: str, value: Any) -> None:
        b = getattr(value, "bound", 0.0)
        if value.defined and b is not None and math.isfinite(b):
            self._bounds[key] = max(self._bounds.get(key, 0.0), float(b))
            self._exact[key] = self._exact.get(key, True) and bool(getattr(value, "exact", True))
        else:
            self._bounds.setdefault(key, 0.0)
            self._exact.setdefault(key, True)

    def _value(self, sm: SlicingMetrics, model: str, req: MetricRequest, k: int,
               record: bool = True) -> MetricValue:
        if req.name not in SCALE_METRICS:
            return MetricValue.undefined(
                f"{req.name} is not computed by the scale engines (use the in-memory engine)",
                int(sm.stats.n[k]))
        col = sm.models[model].columns[_engine_key(req)]
        v = float(col.value[k])
        bound = 0.0 if col.bound is None else float(col.bound[k])
        if not math.isfinite(bound):
            bound = 0.0 if not math.isfinite(v) else bound
        note = None if col.note is None else col.note[k]
        mv = BoundedMetricValue(v, float(col.lo[k]), float(col.hi[k]),
                                col.method if math.isfinite(v) else None, col.reason[k],
                                int(col.n[k]), bound, bound == 0.0, note)
        if record:
            self._note_bound(req.key, mv)
        return mv

    def _delta(self, sm: SlicingMetrics, model: str, req: MetricRequest, k: int) -> PairedDelta:
        if req.name not in SCALE_METRICS:
            return PairedDelta.undefined(f"{req.name} is not computed by the scale engines")
        if req.spec.score_free:
            return BoundedPairedDelta(0.0, 0.0, 0.0, "exact", None)
        dc = sm.models[model].deltas[_engine_key(req)]
        v = float(dc.value[k])
        if not math.isfinite(v):
            return PairedDelta.undefined(dc.reason[k] or "undefined")
        bound = 0.0 if dc.bound is None else float(dc.bound[k])
        note = None if dc.note is None else dc.note[k]
        return BoundedPairedDelta(v, float(dc.lo[k]), float(dc.hi[k]), dc.method, None, bound,
                                  bound == 0.0, note)

    def _slice_metrics(self, sm: SlicingMetrics, k: int, reqs: list[MetricRequest]):
        models = self.spec.models
        others = self.spec.others
        metrics = {m: {} for m in models}
        deltas = {m: {} for m in others}
        for r in reqs:
            for m in models:
                metrics[m][r.key] = self._value(sm, m, r, k)
            for m in others:
                deltas[m][r.key] = self._delta(sm, m, r, k)
        return metrics, deltas

    def _groups(self, si: int, k: int, column: str, gsm: SlicingMetrics | None):
        from mlreg.metrics.results import GroupBreakdown

        gb = GroupBreakdown(column)
        if gsm is None:
            return gb
        sc = gsm.cells
        members = np.flatnonzero(sc.parent_code == k)
        reqs = [r for r in self.group_requests if r.name in SCALE_METRICS]
        for gi in members:
            gval = sc.keys[gi][-1][1]
            gb.groups[gval] = {
                "n": int(gsm.stats.n[gi]), "weight": float(gsm.stats.W[gi]),
                "metrics": {m: {r.key: self._value(gsm, m, r, gi) for r in reqs}
                            for m in self.spec.models}}
        for m in self.spec.models:
            gb.gaps[m] = {}
            for ri, r in enumerate(reqs):
                gb.gaps[m][r.key] = self._gap(gsm, m, r, members, (si, k, ri))
        return gb

    def _gap(self, gsm: SlicingMetrics, model: str, req: MetricRequest, members: np.ndarray,
             salt: tuple[int, int, int]) -> BoundedGapValue:
        cfg = self.cfg
        col = gsm.models[model].columns[_engine_key(req)]
        vals = col.value[members]
        bnds = np.nan_to_num(col.bound[members]) if col.bound is not None else np.zeros(len(members))
        ok = np.isfinite(vals)
        keys = [gsm.cells.keys[g][-1][1] for g in members]
        if not ok.any():
            return BoundedGapValue(float("nan"), reason="no group with a defined value",
                                   n_groups=int(len(members)))
        dv, db = vals[ok], bnds[ok]
        gmax, gmin = int(np.argmax(dv)), int(np.argmin(dv))
        okk = [keys[i] for i in np.flatnonzero(ok)]
        value = float(dv[gmax] - dv[gmin])
        hi_gap = float(np.max(dv + db) - np.min(dv - db))
        lo_gap = max(0.0, float(np.max(dv - db) - np.min(dv + db)))
        bound = max(hi_gap - value, value - lo_gap)
        reason = "only one group with a defined value" if dv.shape[0] < 2 else None
        lo = hi = float("nan")
        method = None
        if req.name in ("count", "weight"):
            lo = hi = value
            method = "exact"
        elif dv.shape[0] >= 2:
            rng = np.random.default_rng([cfg["seed"], *salt, 7])
            R = cfg["replicates"]
            if req.name in _COUNT_METRICS:
                reps = count_replicates(gsm, model, req, members, rng, R)
                method = "poisson_bootstrap"
            else:
                se = col.se[members] if col.se is not None else (
                    (col.hi[members] - col.lo[members]) / (2 * self.z))
                se = np.where(np.isfinite(se), se, 0.0)
                reps = vals[None, :] + rng.standard_normal((R, len(members))) * se[None, :]
                reps = np.where(np.isfinite(vals)[None, :], reps, np.nan)
                method = "parametric_bootstrap"
            gaps = np.nanmax(reps, axis=1) - np.nanmin(reps, axis=1)
            lo, hi = percentile_interval(gaps, cfg["confidence"])
        notes = [n for n in (col.note[g] for g in members) if n] if col.note else []
        return BoundedGapValue(value, lo, hi, method, reason, okk[gmax], okk[gmin], int(ok.sum()),
                               bound, bound == 0.0, notes[0] if notes else None)


def _release() -> None:
    """Hand freed Arrow buffers back to the system (the cell table is gone after decoding)."""
    import gc

    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):  # pragma: no cover - older pyarrow
        pass


def _sub_partition(items: list[RefineItem], item: np.ndarray, sub: np.ndarray,
                   label: np.ndarray, w: np.ndarray, w2: np.ndarray, smin: np.ndarray,
                   smax: np.ndarray) -> Partition:
    """Sub-units (one per item and sub-bucket, both labels) as a Partition fragment."""
    key = item * (1 << 20) + sub
    order = np.lexsort((label, key))
    key, label, w, w2, smin, smax, item = (a[order] for a in (key, label, w, w2, smin, smax,
                                                                item))
    new = np.concatenate(([True], key[1:] != key[:-1])) if key.size else np.zeros(0, bool)
    uid = np.cumsum(new) - 1
    U = int(uid[-1]) + 1 if uid.size else 0
    pos = label == 1
    pmin = np.full(U, np.nan)
    pmax = np.full(U, np.nan)
    nmin = np.full(U, np.nan)
    nmax = np.full(U, np.nan)
    pmin[uid[pos]] = smin[pos]
    pmax[uid[pos]] = smax[pos]
    nmin[uid[~pos]] = smin[~pos]
    nmax[uid[~pos]] = smax[~pos]
    first = np.flatnonzero(new)
    its = item[first]
    lo = np.fmin(pmin, nmin)
    return Partition(
        k=np.array([items[i].k for i in its], dtype=np.int64),
        ext=np.array([items[i].ext for i in its], dtype=np.int64),
        sec=np.where(np.isnan(lo), np.array([items[i].lo for i in its]), lo),
        p=np.bincount(uid, np.where(pos, w, 0.0), minlength=U),
        n=np.bincount(uid, np.where(pos, 0.0, w), minlength=U),
        w2p=np.bincount(uid, np.where(pos, w2, 0.0), minlength=U),
        w2n=np.bincount(uid, np.where(pos, 0.0, w2), minlength=U),
        pmin=pmin, pmax=pmax, nmin=nmin, nmax=nmax)
