"""Adapter from the metrics engine (:mod:`mlreg.metrics`) to the gates' :class:`Evidence`.

The gates need, for the slices a policy selects: each model's metric with its interval, the
paired delta candidate - baseline with its interval (change rules), and per protected group the
metric (gap rules). :func:`compute_evidence` first sizes every slice (cheap), then asks, gate by
gate, which slices the gate selects (:func:`mlreg.gates.evaluate.select_slices`, the function
the decision itself uses) and computes only those numbers: a gate on the overall AUC costs one
AUC, not one per slice.

The numbers come from the engine's single-slice definitions (:mod:`mlreg.metrics.binary`, the
reference the engine's vectorised kernels are tested against). Gap intervals are not computed
here; a ``max_group_gap`` gate with ``use_interval`` fails with "no interval" until they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlreg.gates.evaluate import metric_id, select_slices
from mlreg.gates.inputs import (
    Estimate,
    Evidence,
    GroupStats,
    SliceStats,
    parse_slice_key,
    slice_key,
)
from mlreg.gates.policy import Policy, rule_of

__all__ = ["compute_evidence", "evaluate_table", "known_metrics", "Plan", "DEFAULT_METRICS"]

_REFERENCE = {
    "auc": "roc_auc", "pr_auc": "pr_auc", "log_loss": "log_loss", "brier": "brier",
    "calibration_slope": "calibration_slope", "calibration_intercept": "calibration_intercept",
    "ece": "expected_calibration_error", "precision": "precision", "recall": "recall",
    "tpr": "tpr", "fpr": "fpr", "f1": "f1", "base_rate": "base_rate", "count": "count",
    "mean_score": "mean_score",
}
_THRESHOLDED = {"precision", "recall", "tpr", "fpr", "f1"}


def known_metrics() -> frozenset[str]:
    """Metric names the gates can compute."""
    return frozenset(_REFERENCE)


class Plan:
    """Which slicings a policy needs (columns, crosses, group columns) given the table's columns."""

    def __init__(self, policy: Policy, model_info: Mapping[str, Any], columns: set[str]) -> None:
        slice_cols: list[str] = list(model_info.get("slice_columns") or [])
        crosses: list[tuple[str, ...]] = [tuple(c) for c in model_info.get("slice_crosses") or []]
        groups: list[str] = []
        for gate in policy.gates:
            if gate.get("type", "metric") != "metric":
                continue
            spec = gate.get("slices")
            if isinstance(spec, dict) and spec.get("column"):
                slice_cols.append(spec["column"])
            if isinstance(spec, dict) and spec.get("cross"):
                crosses.append(tuple(spec["cross"]))
            for key in spec if isinstance(spec, list) else []:
                try:
                    parts = parse_slice_key(key)
                except ValueError:
                    continue  # the gate reports the slice as absent
                if len(parts) == 1:
                    slice_cols.append(parts[0][0])
                elif parts:
                    crosses.append(tuple(c for c, _ in parts))
            if rule_of(gate) == "max_group_gap":
                groups.extend(gate.get("groups") or model_info.get("protected_columns") or [])
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
    return Estimate(value=value, lo=_f(getattr(mv, "lo", None)), hi=_f(getattr(mv, "hi", None)),
                    undefined=None if value is not None else (getattr(mv, "reason", None)
                                                              or "undefined"))


def _render(value: Any) -> str:
    from mlreg.metrics.results import render_value

    return render_value(value)


class _Data:
    """Label, weight and settings shared by every metric call on one table."""

    def __init__(self, table: Any, label: str, weight: str | None, confidence: float,
                 seed: int, replicates: int) -> None:
        import numpy as np

        self.table = table
        self.y = table[label].to_numpy()
        self.w = table[weight].to_numpy(dtype=np.float64) if weight else None
        self.conf, self.seed, self.reps = confidence, seed, replicates

    def scores(self, column: str) -> Any:
        import numpy as np

        return self.table[column].to_numpy(dtype=np.float64)

    def _w(self, rows: Any) -> Any:
        return self.w[rows] if self.w is not None else None

    def metric(self, name: str, thr: float | None, rows: Any, scores: Any) -> Any:
        """The engine's MetricValue of ``name`` on ``rows``."""
        from mlreg.metrics import binary

        kw: dict[str, Any] = {} if name == "count" else {"confidence": self.conf}
        if name in _THRESHOLDED:
            kw["threshold"] = thr
        if name == "ece":
            kw.update(replicates=self.reps, seed=self.seed)
        return getattr(binary, _REFERENCE[name])(self.y[rows], scores[rows], self._w(rows), **kw)

    def delta(self, name: str, thr: float | None, rows: Any, a: Any, b: Any) -> Any:
        """The engine's PairedDelta ``a - b`` on the same rows."""
        from mlreg.metrics import binary

        kw: dict[str, Any] = {"confidence": self.conf, "seed": self.seed,
                              "replicates": self.reps}
        if thr is not None:
            kw["threshold"] = thr
        return binary.paired_delta(name, self.y[rows], a[rows], b[rows], self._w(rows), **kw)

    def slices(self, columns: list[str], crosses: list[tuple[str, ...]]
               ) -> list[tuple[str, tuple[str, ...], Any]]:
        """(key, columns, rows) of the overall slice, every value of each column and cross."""
        import numpy as np

        out: list[tuple[str, tuple[str, ...], Any]] = [("overall", (), np.arange(len(self.y)))]
        for cols in [(c,) for c in columns] + [tuple(c) for c in crosses]:
            grouped = self.table.groupby(list(cols), sort=True, dropna=False).indices
            for values, rows in grouped.items():
                values = values if isinstance(values, tuple) else (values,)
                key = slice_key([(c, _render(v)) for c, v in zip(cols, values, strict=True)])
                out.append((key, cols, np.asarray(rows)))
        return out

    def groups(self, column: str, rows: Any) -> list[tuple[str, Any]]:
        """(group value, rows) of ``column`` inside ``rows``."""
        import numpy as np

        sub = self.table[column].iloc[rows]
        return [(_render(g), rows[np.asarray(grows)])
                for g, grows in sub.groupby(sub, sort=True, dropna=False).indices.items()]


def compute_evidence(table: Any, *, label: str, score: str, baseline_score: str | None,
                     weight: str | None, policy: Policy, model_info: Mapping[str, Any],
                     baseline_problem: str | None = None) -> Evidence:
    """Evidence for every metric gate of ``policy`` on ``table`` (a pandas DataFrame holding
    the label, the candidate's score, optionally the baseline's score on the same rows, the
    weight, and the slice and group columns)."""
    import numpy as np

    ev = policy.evaluation
    data = _Data(table, label, weight, float(ev["confidence"]), int(ev["seed"]),
                 int(ev["bootstrap_replicates"]))
    plan = Plan(policy, model_info, set(map(str, table.columns)))
    s_all = data.scores(score)
    b_all = data.scores(baseline_score) if baseline_score else None
    rows_of: dict[str, np.ndarray] = {}
    slices: dict[str, SliceStats] = {}
    for key, cols, rows in data.slices(plan.slice_columns, plan.crosses):
        rows_of[key] = rows
        w = data._w(rows)
        slices[key] = SliceStats(key=key, columns=cols, n=int(len(rows)),
                                 weight=float(w.sum()) if w is not None else float(len(rows)),
                                 positives=float(np.sum(data.y[rows])))
    sized = Evidence(slices=slices)

    cand: dict = {}
    base: dict = {}
    deltas: dict = {}
    groups: dict = {}
    known = known_metrics()
    for gate in policy.gates:
        if gate.get("type", "metric") != "metric":
            continue
        name, thr = metric_id(gate, ev)
        if name not in known:
            continue  # the decision reports the unknown metric
        rule = rule_of(gate)
        keys, _, _ = select_slices(gate.get("slices", "overall"), sized, ev,
                                   model_info.get("slice_columns"))
        for key in keys:
            rows = rows_of.get(key)
            if rows is None:
                continue  # named slice absent from the data: the decision reports it
            k = (name, thr, key)
            if k not in cand:
                cand[k] = _est(data.metric(name, thr, rows, s_all))
                if b_all is not None:
                    base[k] = _est(data.metric(name, thr, rows, b_all))
            if rule == "change" and b_all is not None and k not in deltas:
                deltas[k] = _est(data.delta(name, thr, rows, s_all, b_all))
            if rule != "max_group_gap":
                continue
            for col in gate.get("groups") or model_info.get("protected_columns") or []:
                if col not in plan.group_columns or (name, thr, key, col) in groups:
                    continue
                per = data.groups(col, rows)
                groups[(name, thr, key, col)] = GroupStats(
                    column=col, values={g: _est(data.metric(name, thr, gr, s_all))
                                        for g, gr in per},
                    sizes={g: int(len(gr)) for g, gr in per})
    return Evidence(slices=slices, candidate=cand, baseline=base, deltas=deltas, groups=groups,
                    rows=int(len(table)), baseline_problem=baseline_problem,
                    metrics_known=known, engine="mlreg.metrics (per-slice reference functions)")


DEFAULT_METRICS = ("count", "base_rate", "auc", "pr_auc", "log_loss", "brier",
                   "calibration_slope", "calibration_intercept", "ece", "precision", "recall",
                   "f1")


def evaluate_table(table: Any, *, label: str, scores: list[str], weight: str | None = None,
                   slice_columns: list[str] = (), crosses: list[tuple[str, ...]] = (),
                   group_columns: list[str] = (), metrics: tuple[str, ...] = DEFAULT_METRICS,
                   threshold: float = 0.5, confidence: float = 0.95, seed: int = 0,
                   replicates: int = 200) -> dict:
    """Every metric of every score column on every slice, as JSON-ready data (``mlreg
    evaluate``). With two or more score columns, ``deltas["a-b"]`` holds the paired delta of
    the first column ``a`` minus each later column ``b`` (candidate first), on the same rows;
    ``groups[col]`` the metrics per group and the max - min gap across groups."""
    from mlreg.errors import InputError

    unknown = [m for m in metrics if m not in _REFERENCE]
    if unknown:
        raise InputError(f"unknown metric(s): {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(_REFERENCE))})")
    needed = [label, *scores, *([weight] if weight else []), *slice_columns, *group_columns,
              *(c for cr in crosses for c in cr)]
    missing = [c for c in dict.fromkeys(needed) if c not in table.columns]
    if missing:
        raise InputError(f"no column(s) {', '.join(map(repr, missing))} in the predictions "
                         f"(columns: {', '.join(map(str, list(table.columns)[:30]))})")
    data = _Data(table, label, weight, confidence, seed, replicates)
    s_all = {c: data.scores(c) for c in scores}

    def values(rows: Any) -> dict:
        out = {}
        for c in scores:
            try:
                out[c] = {m: data.metric(m, threshold, rows, s_all[c]).to_dict()
                          for m in metrics}
            except InputError as exc:
                raise InputError(f"column {c!r}: {exc}") from None
        return out

    out_slices = []
    for key, _, rows in data.slices(list(slice_columns), list(crosses)):
        entry: dict[str, Any] = {"slice": key, "n": int(len(rows)), "metrics": values(rows)}
        if len(scores) > 1:
            first = scores[0]
            entry["deltas"] = {
                f"{first}-{other}": {m: data.delta(m, threshold, rows, s_all[first],
                                                   s_all[other]).to_dict() for m in metrics}
                for other in scores[1:]}
        if group_columns:
            entry["groups"] = {}
            for col in group_columns:
                per = {g: {"n": int(len(gr)), "metrics": values(gr)}
                       for g, gr in data.groups(col, rows)}
                entry["groups"][col] = {"groups": per, "gaps": {
                    c: {m: _gap([(g, p["metrics"][c][m]["value"]) for g, p in per.items()])
                        for m in metrics} for c in scores}}
        out_slices.append(entry)
    return {"rows": int(len(table)), "label": label, "scores": list(scores), "weight": weight,
            "threshold": threshold, "confidence": confidence, "metrics": list(metrics),
            "slices": out_slices}


def _gap(values: list[tuple[str, float | None]]) -> dict | None:
    """max - min across the groups with a defined value (None with fewer than two)."""
    defined = [(g, v) for g, v in values if v is not None]
    if len(defined) < 2:
        return None
    hi, lo = max(defined, key=lambda t: t[1]), min(defined, key=lambda t: t[1])
    return {"value": hi[1] - lo[1], "max_group": hi[0], "min_group": lo[0]}
