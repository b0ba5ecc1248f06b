"""The decision: :func:`evaluate` turns a policy and gathered facts into a :class:`GateResult`.

Pure: no files, no store, no clock, no printing. Everything it needs is an argument, so the
same inputs always give the same decision, and a test can build any situation by hand.
See :mod:`mlreg.gates` for the semantics it implements.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from mlreg.gates.exact import add, dec, is_number, scaled, sub
from mlreg.gates.inputs import (
    OVERALL,
    Estimate,
    Evidence,
    OnlineEvidence,
    Promotion,
    SliceStats,
    Subject,
    Verification,
)
from mlreg.gates.policy import THRESHOLDED, Policy, gate_category, rule_of
from mlreg.gates.result import GateOutcome, GateResult, GroupValue, Row, SubjectRef

__all__ = ["evaluate", "metric_id", "select_slices", "snapshot_identity", "describe_rule",
           "describe_slices"]

_IDENTITY_FIELDS = ("uri", "sha256", "version_id", "etag", "snapshot_id", "partitions", "rows",
                    "size", "files")


# -- formatting ---------------------------------------------------------------------------------

def _fmt(x: float | Decimal | None, sign: bool = False) -> str:
    if x is None:
        return "n/a"
    d = dec(x)
    text = f"{float(d):+.6g}" if sign else f"{float(d):.6g}"
    return text


def _show(x: float | Decimal, bar: Decimal, sign: bool = False) -> str:
    """``x`` rounded, unless rounding would make it look equal to the bar it missed."""
    text = _fmt(x, sign)
    if text == _fmt(bar, sign) and dec(x) != bar:
        exact = format(dec(x), "f")
        return ("+" + exact if sign and dec(x) >= 0 else exact)
    return text


def metric_id(gate: Mapping[str, Any], evaluation: Mapping[str, Any]) -> tuple[str, float | None]:
    """(metric, threshold) of a metric gate: thresholded metrics take the gate's threshold or
    evaluation.threshold; a ranking metric with ``k`` is named ``ndcg@20``; others None."""
    metric = gate["metric"]
    if metric in THRESHOLDED:
        return metric, float(gate.get("threshold", evaluation["threshold"]))
    if gate.get("k") is not None:
        return f"{metric}@{int(gate['k'])}", None
    return metric, None


def describe_rule(gate: Mapping[str, Any]) -> str:
    kind = gate.get("type", "metric")
    if kind == "artifact_size":
        return f"size <= {gate['max_mb']:g} MB for target {gate['target']}"
    if kind == "latency":
        return f"p99 <= {gate['max_p99_ms']:g} ms on {gate['hardware']}"
    if kind == "lineage":
        parts = []
        if gate.get("require"):
            parts.append("required fields")
        if gate.get("immutable_data"):
            parts.append("immutable data")
        if gate.get("verify_artifacts"):
            parts.append("artifacts verified")
        if gate.get("same_eval_snapshot"):
            parts.append("same evaluation data")
        return ", ".join(parts) or "no checks"
    rule = rule_of(gate)
    ci = " (interval)" if gate.get("use_interval") else ""
    if rule == "bound":
        lo, hi = gate.get("min"), gate.get("max")
        if lo is not None and hi is not None:
            return f"{lo:g} <= value <= {hi:g}{ci}"
        return (f"value >= {lo:g}" if lo is not None else f"value <= {hi:g}") + ci
    if rule == "change":
        (k, m), = gate["change"].items()
        op = ">=" if k.startswith("min") else "<="
        rel = " x |baseline|" if k.endswith("relative") else ""
        return f"delta {op} {m:+g}{rel} vs baseline{ci}"
    if rule == "target":
        t = gate["target"]
        return f"{t['value']:g} +/- {t['tolerance']:g}{ci}"
    return f"gap across groups <= {gate['max_group_gap']:g}{ci}"


def describe_slices(spec: Any, evaluation: Mapping[str, Any]) -> str:
    if spec is None or spec == OVERALL:
        return "overall"
    if spec == "all":
        return "all slices"
    if spec == "top":
        return f"top {evaluation['top_n']} slices by {evaluation['traffic']}"
    if isinstance(spec, list):
        return ", ".join(spec[:10]) + (f" (+{len(spec) - 10} more)" if len(spec) > 10 else "")
    if "top" in spec:
        col = f" of {spec['column']}" if spec.get("column") else ""
        return f"top {spec['top']} slices{col} by {evaluation['traffic']}"
    if "column" in spec:
        return f"every {spec['column']} slice"
    if "cross" in spec:
        return "every " + " x ".join(spec["cross"]) + " slice"
    return f"slices with n >= {spec['min_size']}"


# -- slice selection ----------------------------------------------------------------------------

def _traffic(s: SliceStats, evaluation: Mapping[str, Any]) -> float:
    if evaluation["traffic"] == "weight" and s.weight is not None:
        return float(s.weight)
    return float(s.n)


def _by_traffic(slices: list[SliceStats], evaluation: Mapping[str, Any]) -> list[SliceStats]:
    return sorted(slices, key=lambda s: (-_traffic(s, evaluation), s.key))


def select_slices(spec: Any, evidence: Evidence, evaluation: Mapping[str, Any],
                  slice_columns: list[str] | None = None) -> tuple[list[str], bool, str]:
    """(slice keys, explicit?, what was looked for). Explicit keys may be absent from the data.

    ``slice_columns`` (the model's) bound the pool of ``top`` without a column: slices of other
    columns computed for other gates do not compete for the top N.
    """
    all_slices = list(evidence.slices.values())
    singles = [s for s in all_slices if len(s.columns) == 1]
    if spec is None or spec == OVERALL:
        return [OVERALL], True, "the overall slice"
    if spec == "all":
        return [s.key for s in all_slices], False, "any slice"
    if isinstance(spec, list):
        return list(spec), True, "the named slices"
    if spec == "top":
        spec = {"top": evaluation["top_n"]}
    if "top" in spec:
        if spec.get("column"):
            pool = [s for s in singles if s.columns[0] == spec["column"]]
        else:
            pool = [s for s in singles if not slice_columns or s.columns[0] in slice_columns]
        what = f"slices of column {spec['column']!r}" if spec.get("column") else \
            "slices of the model's slice columns"
        return [s.key for s in _by_traffic(pool, evaluation)[: spec["top"]]], False, what
    if "column" in spec:
        pool = [s for s in singles if s.columns[0] == spec["column"]]
        return ([s.key for s in _by_traffic(pool, evaluation)], False,
                f"slices of column {spec['column']!r}")
    if "cross" in spec:
        want = set(spec["cross"])
        pool = [s for s in all_slices if len(s.columns) > 1 and set(s.columns) == want]
        return ([s.key for s in _by_traffic(pool, evaluation)], False,
                "slices of the cross " + " x ".join(spec["cross"]))
    pool = [s for s in all_slices if s.n >= spec["min_size"]]
    return [s.key for s in pool], False, f"slices with at least {spec['min_size']} examples"


# -- judging one number against an inclusive bar ------------------------------------------------

def _judge(what: str, observed: Decimal, interval: tuple[float, float] | None,
           lower: Decimal | None, upper: Decimal | None, use_interval: bool, *,
           sign: bool = False) -> tuple[bool, str]:
    if use_interval:
        if interval is None:
            return False, f"no interval for the {what}; the policy requires the interval to clear the bar"
        lo, hi = interval
        if lower is not None and dec(lo) < lower:
            return False, (f"interval lower end {_show(lo, lower, sign)} < {_fmt(lower, sign)} "
                           f"({what} {_fmt(observed, sign)})")
        if upper is not None and dec(hi) > upper:
            return False, (f"interval upper end {_show(hi, upper, sign)} > {_fmt(upper, sign)} "
                           f"({what} {_fmt(observed, sign)})")
        return True, f"interval [{_fmt(lo, sign)}, {_fmt(hi, sign)}] within the bar"
    if lower is not None and observed < lower:
        return False, f"{what} {_show(observed, lower, sign)} < {_fmt(lower, sign)}"
    if upper is not None and observed > upper:
        return False, f"{what} {_show(observed, upper, sign)} > {_fmt(upper, sign)}"
    if lower is not None and upper is not None:
        return True, f"{_fmt(lower, sign)} <= {what} {_fmt(observed, sign)} <= {_fmt(upper, sign)}"
    if lower is not None:
        return True, f"{what} {_fmt(observed, sign)} >= {_fmt(lower, sign)}"
    return True, f"{what} {_fmt(observed, sign)} <= {_fmt(upper, sign)}"


def _undefined(est: Estimate | None, who: str, metric: str, key: str,
               evidence: Evidence) -> str | None:
    """Why ``est`` cannot be judged, or None when it is a finite number."""
    if est is None:
        if evidence.metrics_known is not None and \
                metric.partition("@")[0] not in evidence.metrics_known:
            known = ", ".join(sorted(evidence.metrics_known))
            return f"unknown metric {metric!r} (the metrics engine computes: {known})"
        return f"the {who} has no {metric} for slice {key!r} (metric missing)"
    if not est.defined:
        why = est.undefined or ("NaN" if est.value is not None else "no value")
        return f"{who} {metric} is undefined on slice {key!r}: {why}"
    return None


# -- metric gates -------------------------------------------------------------------------------

class _Ctx:
    def __init__(self, policy: Policy, candidate: Subject, baseline: Subject | None,
                 evidence: Evidence | None, verification: Verification, mode: str,
                 promotion: Promotion, model_info: Mapping[str, Any]) -> None:
        self.policy = policy
        self.evaluation = policy.evaluation
        self.candidate = candidate
        self.baseline = baseline
        self.evidence = evidence
        self.verification = verification
        self.mode = mode
        self.promotion = promotion
        self.model_info = model_info

    @property
    def bootstrap_reason(self) -> str:
        svc = f" of service {self.promotion.service!r}" if self.promotion.service else ""
        return f"bootstrap: first deployment{svc}, no baseline; change rule skipped"

    def no_baseline_reason(self) -> str | None:
        """Why a comparison with the baseline is impossible (None when it is possible)."""
        if self.baseline is None:
            if self.evidence is not None and self.evidence.baseline_problem:
                return f"no baseline: {self.evidence.baseline_problem}"
            return ("no baseline: nothing to compare with (name one with --baseline or a "
                    "service; the first deployment of a service is an explicit bootstrap)")
        if self.evidence is not None and self.evidence.baseline_problem:
            return f"baseline not comparable: {self.evidence.baseline_problem}"
        return None


def _metric_gate(gate: Mapping[str, Any], ctx: _Ctx) -> GateOutcome:
    ev = ctx.evaluation
    metric, thr = metric_id(gate, ev)
    rule = rule_of(gate)
    use_interval = bool(gate.get("use_interval", False))
    min_size = int(gate.get("min_slice_size", ev["min_slice_size"]))
    out = GateOutcome(
        id=gate["id"], type="metric", category="metric", rule=describe_rule(gate),
        verdict="pass", reason="", metric=metric, threshold=thr,
        slices=describe_slices(gate.get("slices", OVERALL), ev), use_interval=use_interval,
    )
    evidence = ctx.evidence
    if evidence is None or evidence.unavailable:
        why = evidence.unavailable if evidence is not None else "no metrics were computed"
        out.rows.append(Row(item="(all slices)", kind="slice", verdict="fail",
                            reason=f"no metrics: {why}"))
        return _finish(out, f"no metrics: {why}")
    keys, explicit, what = select_slices(gate.get("slices", OVERALL), evidence, ev,
                                         ctx.model_info.get("slice_columns"))
    if rule == "change" and ctx.mode == "bootstrap":
        # Shown, not judged: which slices the rule would apply to, with the candidate's values.
        for key in keys:
            s = evidence.slices.get(key)
            row = Row(item=key, kind="slice", verdict="skip", reason=ctx.bootstrap_reason,
                      n=s.n if s else None, weight=s.weight if s else None)
            _fill_values(row, evidence, metric, thr, key)
            out.rows.append(row)
        out.matched = len(keys)
        out.verdict = "skip"
        out.reason = ctx.bootstrap_reason
        return out
    if not keys:
        out.rows.append(Row(item="(no slice)", kind="slice", verdict="fail",
                            reason=f"matched no slice: looked for {what}"))
        return _finish(out, f"matched no slice: looked for {what}")
    judged = 0
    for key in keys:
        s = evidence.slices.get(key)
        if s is None:
            out.rows.append(Row(item=key, kind="slice", verdict="fail",
                                reason=f"slice {key!r} is not in the evaluation data "
                                "(matched nothing)"))
            continue
        out.matched += 1
        if s.n < min_size:
            row = Row(item=key, kind="slice", verdict="fail" if explicit else "skip",
                      reason=f"n={s.n} < min_slice_size {min_size}: too small to judge",
                      n=s.n, weight=s.weight)
            _fill_values(row, evidence, metric, thr, key)
            out.rows.append(row)
            continue
        judged += 1
        if rule == "max_group_gap":
            out.rows.extend(_gap_rows(gate, ctx, metric, thr, s, use_interval))
        else:
            out.rows.append(_slice_row(gate, ctx, rule, metric, thr, s, use_interval))
    if judged == 0 and not any(r.verdict == "fail" for r in out.rows):
        reason = (f"nothing judged: all {out.matched} matched slices are under "
                  f"min_slice_size {min_size}")
        return _finish(out, reason, force_fail=True)
    return _finish(out)


def _fill_values(row: Row, evidence: Evidence, metric: str, thr: float | None, key: str) -> None:
    c = evidence.candidate.get((metric, thr, key))
    b = evidence.baseline.get((metric, thr, key))
    d = evidence.deltas.get((metric, thr, key))
    if c is not None:
        row.candidate, row.candidate_interval = c.value, c.interval
    if b is not None:
        row.baseline, row.baseline_interval = b.value, b.interval
    if d is not None:
        row.delta, row.delta_interval = d.value, d.interval


def _slice_row(gate: Mapping[str, Any], ctx: _Ctx, rule: str, metric: str, thr: float | None,
               s: SliceStats, use_interval: bool) -> Row:
    evidence = ctx.evidence
    assert evidence is not None
    key = s.key
    row = Row(item=key, kind="slice", verdict="fail", reason="", n=s.n, weight=s.weight)
    _fill_values(row, evidence, metric, thr, key)
    cand = evidence.candidate.get((metric, thr, key))
    problem = _undefined(cand, "candidate", metric, key, evidence)
    if problem:
        row.reason = problem
        return row
    assert cand is not None
    c = dec(cand.value)  # type: ignore[arg-type]
    if rule == "bound":
        lower = dec(gate["min"]) if "min" in gate else None
        upper = dec(gate["max"]) if "max" in gate else None
        row.observed, row.observed_interval = cand.value, cand.interval
        ok, why = _judge(metric, c, cand.interval, lower, upper, use_interval)
    elif rule == "target":
        t = gate["target"]
        lower = sub(t["value"], t["tolerance"])
        upper = add(t["value"], t["tolerance"])
        row.observed, row.observed_interval = cand.value, cand.interval
        ok, why = _judge(metric, c, cand.interval, lower, upper, use_interval)
    else:  # change
        nob = ctx.no_baseline_reason()
        if nob:
            row.reason = nob
            return row
        base = evidence.baseline.get((metric, thr, key))
        problem = _undefined(base, "baseline", metric, key, evidence)
        if problem:
            row.reason = problem
            return row
        assert base is not None
        b = dec(base.value)  # type: ignore[arg-type]
        delta = sub(c, b)
        row.delta = float(delta)
        paired = evidence.deltas.get((metric, thr, key))
        interval = paired.interval if paired is not None else None
        row.delta_interval = interval
        (kind, m), = gate["change"].items()
        relative = kind.endswith("relative")
        if relative:
            if b == 0:
                row.reason = (f"baseline {metric} is 0 on slice {key!r}: a change relative to "
                              "|baseline| is undefined")
                return row
            bar = scaled(m, b)
            row.observed = float(delta / abs(b))
            row.observed_interval = (None if interval is None else
                                     (interval[0] / float(abs(b)), interval[1] / float(abs(b))))
            row.lower = float(m) if kind.startswith("min") else None
            row.upper = float(m) if kind.startswith("max") else None
            lower = bar if kind.startswith("min") else None
            upper = bar if kind.startswith("max") else None
            ok, why = _judge("delta", delta, interval, lower, upper, use_interval, sign=True)
            why = f"{why} (= {float(m):+g} x |baseline {_fmt(b)}|; relative {row.observed:+.4%})"
            row.verdict = "pass" if ok else "fail"
            row.reason = why
            return row
        row.observed, row.observed_interval = row.delta, interval
        lower = dec(m) if kind.startswith("min") else None
        upper = dec(m) if kind.startswith("max") else None
        ok, why = _judge("delta", delta, interval, lower, upper, use_interval, sign=True)
    row.lower = float(lower) if lower is not None else None
    row.upper = float(upper) if upper is not None else None
    row.verdict = "pass" if ok else "fail"
    row.reason = why
    return row


def _gap_rows(gate: Mapping[str, Any], ctx: _Ctx, metric: str, thr: float | None,
              s: SliceStats, use_interval: bool) -> list[Row]:
    evidence = ctx.evidence
    assert evidence is not None
    columns = list(gate.get("groups") or ctx.model_info.get("protected_columns") or [])
    min_group = int(gate.get("min_group_size", ctx.evaluation["min_group_size"]))
    bar = dec(gate["max_group_gap"])
    if not columns:
        return [Row(item=s.key, kind="group", verdict="fail", n=s.n,
                    reason="no group columns: name them in 'groups' or as the model's "
                    "protected_columns")]
    rows = []
    for col in columns:
        row = Row(item=f"{s.key} by {col}", kind="group", verdict="fail", reason="", n=s.n,
                  weight=s.weight, upper=float(bar))
        stats = evidence.groups.get((metric, thr, s.key, col))
        if stats is None:
            row.reason = (f"no {metric} per {col!r} group on slice {s.key!r} "
                          "(column missing from the predictions?)")
            rows.append(row)
            continue
        groups = []
        included: list[tuple[str, Decimal]] = []
        undefined: list[str] = []
        for g in sorted(stats.values, key=str):
            est = stats.values[g]
            size = stats.sizes.get(g)
            keep = size is None or size >= min_group
            groups.append(GroupValue(group=str(g), n=size, value=est.value,
                                     interval=est.interval, included=keep))
            if not keep:
                continue
            if not est.defined:
                undefined.append(f"{g} ({est.undefined or 'undefined'})")
            else:
                included.append((str(g), dec(est.value)))  # type: ignore[arg-type]
        row.groups = groups
        if undefined:
            row.reason = f"{metric} undefined for group(s) of {col}: {', '.join(undefined)}"
            rows.append(row)
            continue
        if len(included) < 2:
            row.reason = (f"fewer than two groups of {col} with at least {min_group} examples: "
                          "no gap to judge")
            rows.append(row)
            continue
        hi_g = max(included, key=lambda t: t[1])
        lo_g = min(included, key=lambda t: t[1])
        gap = sub(hi_g[1], lo_g[1])
        row.observed = float(gap)
        row.observed_interval = stats.gap.interval if stats.gap is not None else None
        ok, why = _judge("gap", gap, row.observed_interval, None, bar, use_interval)
        row.verdict = "pass" if ok else "fail"
        left_out = sum(1 for g in groups if not g.included)
        row.reason = (f"{why} ({hi_g[0]} {_fmt(hi_g[1])} vs {lo_g[0]} {_fmt(lo_g[1])})"
                      + (f"; {left_out} group(s) under {min_group} examples left out"
                         if left_out else ""))
        rows.append(row)
    return rows


def _finish(out: GateOutcome, reason: str | None = None, force_fail: bool = False) -> GateOutcome:
    fails = [r for r in out.rows if r.verdict == "fail"]
    if force_fail or fails:
        out.verdict = "fail"
        out.reason = reason or (f"{len(fails)} of {len(out.rows)} failed; first: "
                                f"{fails[0].item}: {fails[0].reason}")
    elif any(r.verdict == "pass" for r in out.rows):
        out.verdict = "pass"
        judged = sum(1 for r in out.rows if r.verdict == "pass")
        skipped = len(out.rows) - judged
        out.reason = reason or (f"{judged} passed" + (f", {skipped} skipped" if skipped else ""))
    else:
        out.verdict = "skip"
        out.reason = reason or (out.rows[0].reason if out.rows else "nothing to check")
    return out


# -- operational gates --------------------------------------------------------------------------

def _size_gate(gate: Mapping[str, Any], ctx: _Ctx) -> GateOutcome:
    target = gate["target"]
    bar = dec(gate["max_mb"])
    out = GateOutcome(id=gate["id"], type="artifact_size", category="operational",
                      rule=describe_rule(gate), verdict="pass", reason="")
    arts = [a for a in ctx.candidate.record.get("artifacts") or [] if a.get("target") == target]
    declared = [t.get("name") for t in ctx.model_info.get("deployment_targets") or []]
    if not arts:
        deploys = target in declared or ctx.promotion.target == target
        if not deploys:
            out.rows.append(Row(item=target, kind="artifact", verdict="skip",
                                category="operational",
                                reason=f"{ctx.candidate.model} does not deploy to {target!r} "
                                f"(deployment targets: {', '.join(map(str, declared)) or 'none'})"))
            return _finish(out)
        out.rows.append(Row(item=target, kind="artifact", verdict="fail", category="operational",
                            reason=f"no artifact for target {target!r} in {ctx.candidate}"))
        return _finish(out)
    for a in arts:
        out.matched += 1
        check = ctx.verification.find("candidate", a["name"])
        size = a.get("size")
        source = "recorded"
        if check is not None and check.actual_size is not None:
            size, source = check.actual_size, "measured in the store"
        row = Row(item=a["name"], kind="artifact", verdict="fail", reason="",
                  category="operational", upper=float(bar))
        if not isinstance(size, int):
            row.reason = "the artifact has no size"
        else:
            mb = Decimal(size) / Decimal(1_000_000)
            row.observed = float(mb)
            ok, why = _judge("size", mb, None, None, bar, False)
            row.verdict = "pass" if ok else "fail"
            row.reason = f"{why} MB ({size:,} bytes, {source}; {a.get('format', 'format?')})"
        out.rows.append(row)
    return _finish(out)


def _latency_gate(gate: Mapping[str, Any], ctx: _Ctx) -> GateOutcome:
    bar = dec(gate["max_p99_ms"])
    out = GateOutcome(id=gate["id"], type="latency", category="operational",
                      rule=describe_rule(gate), verdict="pass", reason="", matched=1)
    lat = (ctx.candidate.record.get("operational") or {}).get("latency")
    row = Row(item="p99", kind="latency", verdict="fail", reason="", category="operational",
              upper=float(bar))
    if not lat or not is_number(lat.get("p99_ms")):
        row.reason = f"no p99 latency measurement in {ctx.candidate} (operational.latency)"
    else:
        row.observed = float(lat["p99_ms"])
        if lat.get("hardware") != gate["hardware"]:
            row.reason = (f"measured on {lat.get('hardware')!r}, not on the reference hardware "
                          f"{gate['hardware']!r}: p99 {row.observed:g} ms does not count")
        else:
            ok, why = _judge("p99", dec(lat["p99_ms"]), None, None, bar, False)
            row.verdict = "pass" if ok else "fail"
            profile = f", {lat['load_profile']}" if lat.get("load_profile") else ""
            row.reason = f"{why} ms on {lat['hardware']}{profile} (as recorded)"
    out.rows.append(row)
    return _finish(out)


# -- lineage gates ------------------------------------------------------------------------------

def _present(record: Mapping[str, Any], path: str) -> str | None:
    cur: Any = record
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return "missing"
        cur = cur[part]
    if cur is None or cur == "" or cur == [] or cur == {}:
        return "empty"
    return None


def snapshot_identity(snapshot: Mapping[str, Any] | None) -> dict:
    """The fields that identify a data snapshot (two snapshots are the same data iff equal)."""
    return {k: snapshot.get(k) for k in _IDENTITY_FIELDS if snapshot and k in snapshot}


def _lineage_gate(gate: Mapping[str, Any], ctx: _Ctx) -> GateOutcome:
    rec = ctx.candidate.record
    out = GateOutcome(id=gate["id"], type="lineage", category="lineage", rule=describe_rule(gate),
                      verdict="pass", reason="")
    for path in gate.get("require") or []:
        problem = _present(rec, path)
        out.rows.append(Row(item=f"require {path}", kind="check", category="lineage",
                            verdict="fail" if problem else "pass",
                            reason=f"{path} is {problem} in {ctx.candidate}" if problem
                            else f"{path} present"))
    if gate.get("immutable_data"):
        datasets = list(rec.get("data") or [])
        snap = (rec.get("evaluation") or {}).get("snapshot")
        if snap and not any(snapshot_identity(d) == snapshot_identity(snap) for d in datasets):
            datasets.append({"role": "evaluation snapshot", **snap})
        if not datasets:
            out.rows.append(Row(item="data", kind="check", category="lineage", verdict="fail",
                                reason=f"{ctx.candidate} names no data snapshot"))
        for i, d in enumerate(datasets):
            ok = d.get("immutable") is True
            proof = next((f"{k} {str(d[k])[:40]}" for k in
                          ("sha256", "version_id", "etag", "snapshot_id", "partitions") if k in d),
                         "no identity")
            out.rows.append(Row(
                item=f"data[{i}] {d.get('role', '?')}", kind="check", category="lineage",
                verdict="pass" if ok else "fail",
                reason=(f"immutable ({proof}): {d.get('uri')}" if ok else
                        f"not immutable: {d.get('uri')}"
                        + (f" ({d['reason']})" if d.get("reason") else ""))))
    if gate.get("verify_artifacts"):
        files = [("candidate", a["name"], a) for a in rec.get("artifacts") or []]
        preds = (rec.get("evaluation") or {}).get("predictions")
        if preds:
            files.append(("candidate", "predictions", preds))
        if ctx.baseline is not None:
            bpreds = (ctx.baseline.record.get("evaluation") or {}).get("predictions")
            if bpreds:
                files.append(("baseline", "predictions", bpreds))
        for role, name, entry in files:
            check = ctx.verification.find(role, name)
            item = f"{role} {name}" if role != "candidate" or name == "predictions" else name
            if check is None:
                verdict, reason = "fail", f"not verified: {entry.get('uri')} was not hashed"
            elif check.verified:
                verdict, reason = "pass", f"sha256 {check.actual_sha256[:12]}… verified in the store"  # type: ignore[index]
            else:
                verdict, reason = "fail", check.problem or f"{check.status}: {check.uri}"
            out.rows.append(Row(item=item, kind="artifact", category="integrity",
                                verdict=verdict, reason=reason))  # type: ignore[arg-type]
    if gate.get("same_eval_snapshot"):
        row = Row(item="same evaluation data", kind="check", category="lineage", verdict="fail",
                  reason="")
        if ctx.mode == "bootstrap":
            row.verdict, row.reason = "skip", ctx.bootstrap_reason.replace(
                "change rule", "comparison")
        elif ctx.baseline is None:
            row.reason = ctx.no_baseline_reason() or "no baseline"
        else:
            a = (rec.get("evaluation") or {}).get("snapshot")
            b = (ctx.baseline.record.get("evaluation") or {}).get("snapshot")
            if not a or not b:
                who = ctx.candidate if not a else ctx.baseline
                row.reason = f"{who} records no evaluation snapshot"
            elif snapshot_identity(a) != snapshot_identity(b):
                ia, ib = snapshot_identity(a), snapshot_identity(b)
                diff = sorted(k for k in set(ia) | set(ib) if ia.get(k) != ib.get(k))
                row.reason = (f"different evaluation snapshots ({', '.join(diff)} differ): "
                              f"{ctx.candidate} on {a.get('uri')}, {ctx.baseline} on "
                              f"{b.get('uri')}")
            elif ctx.evidence is not None and ctx.evidence.baseline_problem:
                row.reason = ctx.evidence.baseline_problem
            else:
                row.verdict = "pass"
                row.reason = f"both scored on {a.get('uri')}"
        out.rows.append(row)
    if not out.rows:
        out.rows.append(Row(item="(none)", kind="check", category="lineage", verdict="fail",
                            reason="the lineage gate checks nothing (enable at least one check)"))
    out.matched = len(out.rows)
    return _finish(out)


# -- the decision -------------------------------------------------------------------------------

def _apply_blocking(out: GateOutcome, gate: Mapping[str, Any], ctx: _Ctx) -> None:
    """Failing rows that do not block become ``info``; so does the gate when nothing of it
    blocks (an informational gate, or a category a rollback does not gate on)."""
    rollback_blocking = set(ctx.policy.rollback["blocking"])

    def not_blocking(category: str) -> str | None:
        if gate.get("blocking") is False:
            return "the gate is informational (blocking: false)"
        if ctx.mode == "rollback" and category not in rollback_blocking \
                and out.id not in rollback_blocking:
            return (f"rollback: only {', '.join(sorted(rollback_blocking)) or 'nothing'} "
                    "block a rollback")
        return None

    for row in out.rows:
        why = not_blocking(row.category)
        if why is None:
            continue
        row.blocking = False
        if row.verdict == "fail":
            row.verdict = "info"
            row.reason = f"not blocking ({why}): {row.reason}"
    gate_why = not_blocking(out.category)
    out.blocking = gate_why is None or any(r.blocking for r in out.rows)
    if out.verdict == "fail" and not any(r.verdict == "fail" for r in out.rows) \
            and not out.blocking:
        out.verdict = "info"
        out.reason = f"not blocking ({gate_why}): {out.reason}"


def _online_gates(ctx: _Ctx, online: OnlineEvidence, notes: list[str]) -> list[GateOutcome]:
    """The policy's online rules judged on the candidate's online results on the service (a
    canary becoming stable). Fail closed: no result fails. A failing rule that measured a value
    outside its bar is a breach: its reason says the canary should be rolled back, and a note
    names the command."""
    from mlreg.history.online import check_online

    rules = ctx.policy.online
    if not rules:
        return []
    cand = ctx.candidate
    out: list[GateOutcome] = []
    breaches: list[str] = []
    for rule, d in zip(rules, check_online(rules, online.results, online.service, cand.version,
                                           model=cand.model), strict=True):
        gate = GateOutcome.from_dict(d)
        if gate.verdict == "fail" and any(r.observed is not None for r in gate.rows):
            why = f"the reason to roll back the canary {cand} on {online.service}"
            gate.reason = f"{gate.reason}: {why}"
            for row in gate.rows:
                if row.verdict == "fail":
                    row.reason = f"{row.reason}: {why}"
            breaches.append(f"{gate.id}: {d['reason']}")
        _apply_blocking(gate, rule if isinstance(rule, Mapping) else {}, ctx)
        out.append(gate)
    used = sorted({r.get("path") or r.get("experiment") or "?" for r in online.results
                   if r.get("service") == online.service and r.get("version") == cand.version
                   and r.get("model") == cand.model})
    notes.append(f"canary -> stable: {cand} was the canary of {online.service}; online gates "
                 f"judged on " + (", ".join(used) if used else "no online result (fail closed)"))
    notes.extend(f"online result not used: {s}" for s in online.skipped)
    if breaches and any(g.verdict == "fail" for g in out):
        notes.append(f"online gates breached for {cand} on {online.service}, the reason to roll "
                     f"the canary back: {'; '.join(breaches)} (mlreg rollback {online.service} "
                     f"--reason \"online {breaches[0]}\")")
    return out


def _subject_ref(s: Subject) -> SubjectRef:
    return SubjectRef(s.model, s.version, s.path, s.record_sha256)


def evaluate(
    policy: Policy,
    candidate: Subject,
    baseline: Subject | None,
    evidence: Evidence | None,
    verification: Verification | None = None,
    *,
    mode: str = "promotion",
    promotion: Promotion | None = None,
    model_info: Mapping[str, Any] | None = None,
    tool: str = "mlreg",
    online: OnlineEvidence | None = None,
) -> GateResult:
    """Decide a promotion. Pure: the same arguments always give the same result.

    ``policy`` is the merged policy; ``candidate``/``baseline`` the two versions (baseline None
    for a bootstrap or when none could be found); ``evidence`` the metrics engine's results;
    ``verification`` the files hashed in the store; ``mode`` promotion, rollback or bootstrap;
    ``model_info`` the model's model.yaml (protected columns, deployment targets); ``online``
    the online results when the promotion makes the service's canary stable (the policy's
    ``online`` rules are then judged after its gates, see :func:`_online_gates`; None: not a
    canary -> stable move, no online gate).
    Never raises for a missing or bad input value: each becomes a failing row with its reason.
    """
    if mode not in ("promotion", "rollback", "bootstrap"):
        raise ValueError(f"mode must be promotion, rollback or bootstrap, not {mode!r}")
    promotion = promotion or Promotion(
        model=candidate.model, to_version=candidate.version,
        from_version=baseline.version if baseline else None,
        from_model=baseline.model if baseline else None, mode=mode)  # type: ignore[arg-type]
    ctx = _Ctx(policy, candidate, baseline, evidence, verification or Verification(), mode,
               promotion, model_info or {})
    outcomes: list[GateOutcome] = []
    for gate in policy.gates:
        kind = gate.get("type", "metric")
        if kind == "metric":
            out = _metric_gate(gate, ctx)
        elif kind == "artifact_size":
            out = _size_gate(gate, ctx)
        elif kind == "latency":
            out = _latency_gate(gate, ctx)
        else:
            out = _lineage_gate(gate, ctx)
        if out.category != gate_category(gate):  # pragma: no cover - a bug, not an input
            raise AssertionError(f"category of {gate['id']}")
        _apply_blocking(out, gate, ctx)
        outcomes.append(out)
    notes: list[str] = []
    if online is not None:
        outcomes.extend(_online_gates(ctx, online, notes))
    if not outcomes:
        empty = GateOutcome(id="policy", type="policy", category="lineage", rule="at least one gate",
                            verdict="fail", reason="the policy has no gates: nothing would be checked")
        empty.rows.append(Row(item="policy", kind="check", category="lineage", verdict="fail",
                              reason=empty.reason))
        outcomes.append(empty)
    if mode == "bootstrap":
        notes.append(ctx.bootstrap_reason.replace("; change rule skipped",
                                                  ": change rules and comparisons are skipped"))
    if mode == "rollback":
        notes.append("rollback: only " + ", ".join(sorted(policy.rollback["blocking"]))
                     + " gates block; the others are shown")
    if evidence is not None and evidence.baseline_problem:
        notes.append(f"baseline not comparable: {evidence.baseline_problem}")
    failed = any(r.verdict == "fail" for o in outcomes for r in o.rows) or any(
        o.verdict == "fail" for o in outcomes)
    files = [{
        "role": f.role, "name": f.name, "uri": f.uri, "sha256": f.expected_sha256,
        "size": f.expected_size, "actual_sha256": f.actual_sha256, "actual_size": f.actual_size,
        "status": f.status, "problem": f.problem,
    } for f in (verification.files if verification else ())]
    ev = policy.evaluation
    evaluation_info = {
        "rows": evidence.rows if evidence else 0,
        "slices": len(evidence.slices) if evidence else 0,
        "engine": evidence.engine if evidence else None,
        "confidence": ev["confidence"],
        "threshold": ev["threshold"],
        "snapshot": ((candidate.record.get("evaluation") or {}).get("snapshot") or {}).get("uri"),
        "unavailable": evidence.unavailable if evidence else "no metrics were computed",
        "baseline_problem": evidence.baseline_problem if evidence else None,
    }
    return GateResult(
        verdict="fail" if failed else "pass", mode=mode, promotion=promotion.to_dict(),
        candidate=_subject_ref(candidate),
        baseline=_subject_ref(baseline) if baseline else None,
        policy_sha256=policy.digest, policy_sources=[s.to_dict() for s in policy.sources],
        files=files, gates=outcomes, evaluation=evaluation_info, notes=notes, tool=tool,
    )
