"""Adapter from the metrics engine (:func:`mlreg.metrics.evaluate_predictions`) to the gates'
:class:`~mlreg.gates.inputs.Evidence`.

One engine call on the joined table computes every metric the policy's metric gates name, on
the overall slice, every value of the model's slice columns (and of any column a gate names),
every declared cross, with the paired delta candidate - baseline and, for gap gates, the
metric per protected group with the between-groups gap and its interval. The gates then choose
their slices from that (:func:`mlreg.gates.evaluate.select_slices`).

Metric keys: a thresholded metric is requested as ``precision@0.5`` (the gate's threshold or
``evaluation.threshold``), a ranking metric as ``ndcg@20`` (the gate's ``k``); the evidence is
keyed by ``(metric, threshold, slice)`` with ranking metrics named ``ndcg@20``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlreg.errors import InputError
from mlreg.gates.evaluate import metric_id
from mlreg.gates.inputs import Estimate, Evidence, GroupStats, SliceStats, parse_slice_key
from mlreg.gates.policy import Policy, rule_of

__all__ = ["compute_evidence", "evidence_from_result", "known_metrics", "Plan", "ENGINE"]

ENGINE = "mlreg.metrics.evaluate_predictions"


def known_metrics() -> frozenset[str]:
    """Metric names (and aliases) the engine computes."""
    from mlreg.metrics import available_metrics, get_metric

    names = set(available_metrics())
    for n in list(names):
        names.update(get_metric(n).aliases)
    return frozenset(names)


def _request_key(metric: str, thr: float | None) -> str:
    return metric if thr is None else f"{metric}@{thr!r}"


class Plan:
    """What one engine call must compute for a policy, given the table's columns."""

    def __init__(self, policy: Policy, model_info: Mapping[str, Any], columns: set[str]) -> None:
        ev = policy.evaluation
        known = known_metrics()
        slice_cols: list[str] = list(model_info.get("slice_columns") or [])
        crosses: list[tuple[str, ...]] = [tuple(c) for c in model_info.get("slice_crosses") or []]
        groups: list[str] = []
        self.metrics: dict[str, tuple[str, float | None]] = {}  # request key -> evidence key
        self.group_metrics: list[str] = []
        for gate in policy.gates:
            if gate.get("type", "metric") != "metric":
                continue
            metric, thr = metric_id(gate, ev)
            if metric.partition("@")[0] not in known:
                continue  # the decision reports the unknown metric
            key = _request_key(metric, thr)
            self.metrics[key] = (metric, thr)
            spec = gate.get("slices")
            if isinstance(spec, dict) and spec.get("column"):
                slice_cols.append(spec["column"])
            if isinstance(spec, dict) and spec.get("cross"):
                crosses.append(tuple(spec["cross"]))
            for name in spec if isinstance(spec, list) else []:
                try:
                    parts = parse_slice_key(name)
                except ValueError:
                    continue  # the decision reports the slice as absent
                if len(parts) == 1:
                    slice_cols.append(parts[0][0])
                elif parts:
                    crosses.append(tuple(c for c, _ in parts))
            if rule_of(gate) == "max_group_gap":
                groups.extend(gate.get("groups") or model_info.get("protected_columns") or [])
                if key not in self.group_metrics:
                    self.group_metrics.append(key)
        self.slice_columns = [c for c in dict.fromkeys(slice_cols) if c in columns]
        self.crosses = [c for c in dict.fromkeys(crosses) if all(x in columns for x in c)]
        self.group_columns = [c for c in dict.fromkeys(groups) if c in columns]


def _f(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _est(mv: Any) -> Estimate:
    value = _f(mv.value)
    return Estimate(value=value, lo=_f(mv.lo), hi=_f(mv.hi),
                    undefined=None if value is not None else (mv.reason or "undefined"))


def compute_evidence(table: Any, *, label: str, score: str, baseline_score: str | None,
                     weight: str | None, policy: Policy, model_info: Mapping[str, Any],
                     id_column: str | None = None, query_column: str | None = None,
                     baseline_problem: str | None = None, engine: str = "memory",
                     engine_options: Mapping[str, Any] | None = None,
                     notes: list[str] | None = None) -> Evidence:
    """Evidence for every metric gate of ``policy`` on ``table`` (a pandas DataFrame holding
    the label, the candidate's score, optionally the baseline's score on the same rows, the
    weight, the query id and the slice and group columns).

    Predictions the engine refuses (scores outside [0, 1], labels other than 0/1, missing
    values) become ``unavailable`` evidence with the engine's reason: every metric gate fails.
    ``engine`` other than ``memory`` computes the same evidence with a scale engine
    (:func:`mlreg.scale.gating.scaled_evidence`; ``engine_options`` from ``mlreg.yaml``'s
    ``evaluation``); it appends a line naming the engine and its bounds to ``notes``.
    """
    from mlreg.metrics import evaluate_predictions

    ev = policy.evaluation
    plan = Plan(policy, model_info, set(map(str, table.columns)))
    scores = {"candidate": score}
    if baseline_score:
        scores["baseline"] = baseline_score
    common = {"rows": int(len(table)), "baseline_problem": baseline_problem,
              "metrics_known": known_metrics(), "engine": ENGINE}
    args = dict(
        label=label, scores=scores, baseline="baseline" if baseline_score else None,
        weight=weight, slice_columns=plan.slice_columns, crosses=plan.crosses,
        group_columns=plan.group_columns if plan.group_metrics else (),
        metrics=list(plan.metrics) or ["count"], group_metrics=plan.group_metrics or None,
        threshold=float(ev["threshold"]), traffic=ev["traffic"],
        confidence=float(ev["confidence"]),
        bootstrap_replicates=int(ev["bootstrap_replicates"]), bootstrap_seed=int(ev["seed"]))
    try:
        if engine != "memory":
            from mlreg.scale.gating import scaled_evidence

            return scaled_evidence(table, engine=engine, options=engine_options, policy=policy,
                                   plan=plan, model_info=model_info, common=common, notes=notes,
                                   **args)
        res = evaluate_predictions(
            table, query=query_column if query_column in table.columns else None,
            id_column=id_column if id_column in table.columns else None, **args)
    except InputError as exc:
        return Evidence(unavailable=f"the metrics engine refused the predictions: {exc}",
                        **common)  # type: ignore[arg-type]
    return evidence_from_result(res, plan, common)


def evidence_from_result(res: Any, plan: Plan, common: Mapping[str, Any]) -> Evidence:
    """The gates' Evidence from an EvaluationResult (in-memory or scaled) computed for ``plan``."""
    from mlreg.metrics.results import render_value

    slices: dict[str, SliceStats] = {}
    cand: dict = {}
    base: dict = {}
    deltas: dict = {}
    groups: dict = {}
    for s in res.slices:
        slices[s.name] = SliceStats(key=s.name, columns=s.columns, n=int(s.n),
                                    weight=_f(s.weight))
        for req, (metric, thr) in plan.metrics.items():
            k = (metric, thr, s.name)
            if req in s.metrics.get("candidate", {}):
                cand[k] = _est(s.metrics["candidate"][req])
            if req in s.metrics.get("baseline", {}):
                base[k] = _est(s.metrics["baseline"][req])
            if req in s.deltas.get("candidate", {}):
                deltas[k] = _est(s.deltas["candidate"][req])
        for col, br in s.groups.items():
            for req in plan.group_metrics:
                metric, thr = plan.metrics[req]
                values, sizes = {}, {}
                for g, entry in br.groups.items():
                    mv = entry["metrics"].get("candidate", {}).get(req)
                    if mv is not None:
                        values[render_value(g)] = _est(mv)
                        sizes[render_value(g)] = int(entry["n"])
                gap = br.gaps.get("candidate", {}).get(req)
                groups[(metric, thr, s.name, col)] = GroupStats(
                    column=col, values=values, sizes=sizes,
                    gap=_est(gap) if gap is not None else None)
    return Evidence(slices=slices, candidate=cand, baseline=base, deltas=deltas, groups=groups,
                    **common)  # type: ignore[arg-type]
