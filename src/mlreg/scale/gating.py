"""Gates on bounded numbers: refine what the bound leaves open, fail what stays open.

A bounded value (AUC from a histogram, a calibration fit from bucket means) is a range
``[value - bound, value + bound]`` that holds the exact metric. A gate row is *decided* when
its verdict is the same for every exact value in those ranges. Verdict regions of the policy
rules are intervals of one number (a value, a delta, a gap, an interval end), so checking the
two extremes decides it: the policy is evaluated (by the pure :func:`mlreg.gates.evaluate`) on
the nominal evidence and on the evidence pushed to each end of the bounds (candidate up and
baseline down, and the reverse; group gaps widened and narrowed to their extremes); a row
whose verdict differs is undecided.

:func:`scaled_evidence` runs an engine with a refinement callback that asks for just the
undecided slices to be refined (finer AUC buckets, see :mod:`mlreg.scale.passes`), and
replaces whatever stays undecided by an undefined value whose reason names the bound and the
gate, so the gate fails with that reason. It returns the gates' ``Evidence`` and a line for
the report naming the engine and the bound it used for each metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlreg.errors import InputError
from mlreg.scale.driver import Undecided, evaluate_at_scale
from mlreg.scale.results import ScaledResult, bound_of

__all__ = ["scaled_evidence", "undecided_rows"]


def _canonical(metric: str) -> str:
    from mlreg.metrics import get_metric

    try:
        return get_metric(metric.partition("@")[0]).name
    except InputError:
        return metric


def _bounds(res: ScaledResult, plan: Any) -> dict[tuple, float]:
    """Bound of every number the evidence holds, keyed like the evidence."""
    from mlreg.metrics.results import render_value

    out: dict[tuple, float] = {}
    for s in res.slices:
        for req, (metric, thr) in plan.metrics.items():
            k = (metric, thr, s.name)
            c = s.metrics.get("candidate", {}).get(req)
            b = s.metrics.get("baseline", {}).get(req)
            d = s.deltas.get("candidate", {}).get(req)
            for tag, v in (("c", c), ("b", b), ("d", d)):
                if v is not None and bound_of(v) > 0:
                    out[(tag,) + k] = bound_of(v)
        for col, br in s.groups.items():
            for req in plan.group_metrics:
                metric, thr = plan.metrics[req]
                for g, entry in br.groups.items():
                    mv = entry["metrics"].get("candidate", {}).get(req)
                    if mv is not None and bound_of(mv) > 0:
                        out[("g", metric, thr, s.name, col, render_value(g))] = bound_of(mv)
    return out


def _shift_est(est: Any, delta: float) -> Any:
    if est is None or not est.defined or delta == 0:
        return est

    def mv(x):
        return None if x is None else float(x) + delta

    return replace(est, value=mv(est.value), lo=mv(est.lo), hi=mv(est.hi))


def _shifted(ev: Any, bounds: Mapping[tuple, float], sign: int) -> Any:
    """The evidence with every bounded value at one end of its range: ``sign=+1`` moves the
    candidate and the delta up, the baseline down and widens group gaps; ``-1`` the reverse."""
    from mlreg.gates.inputs import Estimate, GroupStats

    cand = {k: _shift_est(v, sign * bounds.get(("c",) + k, 0.0)) for k, v in ev.candidate.items()}
    base = {k: _shift_est(v, -sign * bounds.get(("b",) + k, 0.0)) for k, v in ev.baseline.items()}
    deltas = {k: _shift_est(v, sign * bounds.get(("d",) + k, 0.0)) for k, v in ev.deltas.items()}
    groups = {}
    for key, gs in ev.groups.items():
        vals = {g: e for g, e in gs.values.items()}
        bs = {g: bounds.get(("g",) + key + (g,), 0.0) for g in vals}
        defined = {g: float(e.value) for g, e in vals.items() if e.defined}
        if not any(bs.values()) or len(defined) < 2:
            groups[key] = gs
            continue
        new: dict[str, Estimate] = dict(vals)
        if sign > 0:  # widest gap: the top group up, the bottom group down
            top = max(defined, key=lambda g: defined[g] + bs[g])
            bot = min(defined, key=lambda g: defined[g] - bs[g])
            new[top] = _shift_est(vals[top], bs[top])
            new[bot] = _shift_est(vals[bot], -bs[bot])
        else:  # narrowest gap: every group pulled toward the common window
            lo = min(defined[g] + bs[g] for g in defined)
            hi = max(defined[g] - bs[g] for g in defined)
            for g, v in defined.items():
                if hi <= lo:
                    target = min(max((lo + hi) / 2, v - bs[g]), v + bs[g])
                else:
                    target = min(max(v, lo), hi)
                    target = min(max(target, v - bs[g]), v + bs[g])
                new[g] = _shift_est(vals[g], target - v)
        groups[key] = GroupStats(column=gs.column, values=new, sizes=gs.sizes, gap=gs.gap)
    return replace(ev, candidate=cand, baseline=base, deltas=deltas, groups=groups)


def _verdicts(policy: Any, ev: Any, model_info: Mapping[str, Any]) -> dict[tuple, Any]:
    from mlreg.gates.evaluate import evaluate
    from mlreg.gates.inputs import Subject

    cand = Subject("candidate", "0", {}, "0" * 64)
    base = Subject("baseline", "0", {}, "0" * 64) if ev.baseline else None
    result = evaluate(policy, cand, base, ev, model_info=model_info)
    out = {}
    for g in result.gates:
        if g.type != "metric":
            continue
        for r in g.rows:
            out[(g.id, r.item)] = (r.verdict, g.metric, g.threshold, r.kind)
    return out


def undecided_rows(policy: Any, ev: Any, bounds: Mapping[tuple, float],
                   model_info: Mapping[str, Any]) -> list[tuple[str, str, float | None, str, str]]:
    """``(gate id, metric, threshold, row item, row kind)`` of every row whose verdict some
    exact values within the bounds would change."""
    if not bounds:
        return []
    nominal = _verdicts(policy, ev, model_info)
    out = []
    for sign in (1, -1):
        other = _verdicts(policy, _shifted(ev, bounds, sign), model_info)
        for key, (verdict, metric, thr, kind) in nominal.items():
            alt = other.get(key)
            if alt is not None and alt[0] != verdict:
                row = (key[0], metric, thr, key[1], kind)
                if row not in out:
                    out.append(row)
    return out


def _targets(rows, ev: Any, bounds: Mapping[tuple, float]) -> list[Undecided]:
    from mlreg.gates.inputs import OVERALL

    out: list[Undecided] = []
    for _, metric, thr, item, kind in rows:
        name = _canonical(metric)
        if kind == "group":
            slice_name, _, col = item.rpartition(" by ")
            for key in bounds:
                if key[0] == "g" and key[1:5] == (metric, thr, slice_name, col):
                    g = key[5]
                    full = f"{col}={g}" if slice_name == OVERALL else f"{slice_name},{col}={g}"
                    out.append(Undecided(full, name, ("candidate",)))
            continue
        models = tuple(m for m, tag in (("candidate", "c"), ("baseline", "b"))
                       if bounds.get((tag, metric, thr, item), 0.0) > 0)
        if models:
            out.append(Undecided(item, name, models))
    return out


def scaled_evidence(table: Any, *, engine: str, options: Mapping[str, Any] | None, policy: Any,
                    plan: Any, model_info: Mapping[str, Any], common: dict,
                    notes: list[str] | None, **kwargs: Any) -> Any:
    """Gate evidence computed by a scale engine (see the module docstring)."""
    from mlreg.gates.engine import evidence_from_result
    from mlreg.gates.inputs import Estimate, GroupStats

    options = dict(options or {})
    source = table
    if engine == "cells":
        source = options.get("cells")
        if not source:
            raise InputError("the cells engine needs a cell table (--cells FILE.parquet)")
    common = {**common, "engine": f"mlreg.scale:{engine}"}

    def refine(res: ScaledResult):
        ev = evidence_from_result(res, plan, common)
        rows = undecided_rows(policy, ev, _bounds(res, plan), model_info)
        return _targets(rows, ev, _bounds(res, plan))

    scale_args = {k: options[k] for k in ("buckets", "logit_range") if options.get(k)}
    res = evaluate_at_scale(source, engine=engine, options=options, refine=refine,
                            **scale_args, **kwargs)
    ev = evidence_from_result(res, plan, common)
    bounds = _bounds(res, plan)
    rows = undecided_rows(policy, ev, bounds, model_info)
    if rows:
        why = ("the cell table cannot be refined (no rows)" if engine == "cells"
               else "refinement could not narrow it further")
        cand, base, deltas = dict(ev.candidate), dict(ev.baseline), dict(ev.deltas)
        groups = dict(ev.groups)
        for gate_id, metric, thr, item, kind in rows:
            def mark(store, tag, key, gate_id=gate_id, metric=metric):
                est = store.get(key)
                b = bounds.get((tag,) + key, 0.0)
                if est is None or not est.defined or b <= 0:
                    return
                store[key] = Estimate(None, undefined=(
                    f"{metric} {float(est.value):.6g} +/- {b:.2g} (bound of the {engine} "
                    f"engine's logit histogram, R={res.scale.buckets:g}/unit): the verdict of gate "
                    f"{gate_id!r} could flip within the bound and {why}"))
            if kind == "group":
                slice_name, _, col = item.rpartition(" by ")
                gkey = (metric, thr, slice_name, col)
                gs = groups.get(gkey)
                if gs is not None:
                    vals = dict(gs.values)
                    for g in vals:
                        b = bounds.get(("g",) + gkey + (g,), 0.0)
                        if b > 0 and vals[g].defined:
                            vals[g] = Estimate(None, undefined=(
                                f"{metric} {float(vals[g].value):.6g} +/- {b:.2g}: the verdict "
                                f"of gate {gate_id!r} could flip within the bound and {why}"))
                    groups[gkey] = GroupStats(gs.column, vals, gs.sizes, gs.gap)
                continue
            key = (metric, thr, item)
            mark(cand, "c", key)
            mark(base, "b", key)
            mark(deltas, "d", key)
        ev = replace(ev, candidate=cand, baseline=base, deltas=deltas, groups=groups)
    if notes is not None and res.scale is not None:
        line = res.scale.describe(list(plan.metrics))
        if rows:
            line += f"; {len(rows)} gate row(s) left undecided by the bound fail"
        notes.append(line)
    return ev
