"""Online results: what an A/B test or a canary measured for one version on one service.

Offline metrics can lie (the seed: precision@10 of 0.85 on replay logs, 0.78 in production), so a
version's online results live next to its record, append-only::

    models/<model>/online/<experiment>.yaml       schema mlreg/online/v1

    schema: mlreg/online/v1
    model: recsys
    version: '42'
    experiment: ab-0304-homepage
    service: homepage
    surface: homepage
    baseline: '41'                 # the control arm
    traffic_percent: 5
    start: '2024-03-04T00:00:00Z'
    end: '2024-03-11T00:00:00Z'
    recorded: '2024-03-11T09:00:00Z'
    metrics:
      ctr_lift: {value: 0.012, interval: [0.004, 0.020]}
      watch_time_lift: {value: 0.006, interval: [-0.001, 0.013]}

One file per experiment and service (an experiment that ran on three surfaces is three files,
e.g. ``ab-0304-homepage``). Lifts are fractions: -0.03 is a 3% drop.

Online gates (a policy's ``online:`` list; see :func:`check_online`) hold a canary back::

    online:
      - metric: ctr_lift
        min: -0.005
        use_interval: true         # the interval's lower end must clear -0.5%
      - metric: p99_latency_ms
        max: 100
        services: [fraud-scoring]  # optional: only these services
      - id: watch-time
        metric: watch_time_lift
        min: 0
        blocking: false            # shown, never blocks
        min_traffic_percent: 1     # optional: results on less traffic do not count
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mlreg.errors import InputError, RegistryError
from mlreg.names import check_name, check_version
from mlreg.records import check_document
from mlreg.yamlio import dump_yaml, load_yaml_text

__all__ = [
    "ONLINE_SCHEMA",
    "online_path",
    "build_online",
    "write_online",
    "load_online_bytes",
    "online_results",
    "offline_metrics",
    "check_online",
    "parse_metric_args",
    "parse_interval_args",
]

ONLINE_SCHEMA = "mlreg/online/v1"


def online_path(model: str, experiment: str) -> str:
    return f"models/{check_name(model, 'model')}/online/{check_name(experiment, 'experiment')}.yaml"


def _iso(value: str | datetime | None, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        from mlreg.history.timeline import parse_when

        if len(value.strip()) == 10:  # a date alone: its start, for an experiment window
            value = datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)
        else:
            value = parse_when(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_metric_args(items: Sequence[str]) -> dict[str, float]:
    """``["ctr_lift=-0.03", "watch_time_lift=0.01"]`` -> ``{"ctr_lift": -0.03, ...}``."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--metric {item!r}: write NAME=VALUE, e.g. ctr_lift=-0.03")
        if name in out:
            raise InputError(f"--metric {name} is given twice")
        out[name] = _number(value, f"--metric {name}")
    return out


def parse_interval_args(items: Sequence[str]) -> dict[str, list[float]]:
    """``["ctr_lift=-0.045,-0.015"]`` -> ``{"ctr_lift": [-0.045, -0.015]}``."""
    out: dict[str, list[float]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        parts = value.split(",")
        if not sep or len(parts) != 2:
            raise InputError(f"--interval {item!r}: write NAME=LOW,HIGH, e.g. "
                             "ctr_lift=-0.045,-0.015")
        out[name.strip()] = [_number(p, f"--interval {name}") for p in parts]
    return out


def _number(text: str, where: str) -> float:
    try:
        x = float(text.strip().rstrip("%")) / (100 if text.strip().endswith("%") else 1)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return int(x) if x.is_integer() and "." not in text and "e" not in text.lower() else x


def build_online(*, model: str, version: str, experiment: str, service: str,
                 metrics: Mapping[str, float], intervals: Mapping[str, Sequence[float]] | None
                 = None, traffic_percent: float | None = None, start: str | datetime | None
                 = None, end: str | datetime | None = None, baseline: str | None = None,
                 surface: str | None = None, source: str | None = None,
                 notes: str | None = None, recorded_by: str | None = None,
                 recorded: str | datetime | None = None) -> dict:
    """A validated ``mlreg/online/v1`` document (InputError/SchemaError when it is not)."""
    check_name(model, "model")
    check_version(version)
    check_name(experiment, "experiment")
    check_name(service, "service")
    if not metrics:
        raise InputError("an online result needs at least one metric (--metric NAME=VALUE)")
    intervals = dict(intervals or {})
    unknown = sorted(set(intervals) - set(metrics))
    if unknown:
        raise InputError(f"--interval for {', '.join(unknown)} without a --metric value")
    doc: dict[str, Any] = {"schema": ONLINE_SCHEMA, "model": model, "version": version,
                           "experiment": experiment, "service": service}
    if surface:
        doc["surface"] = surface
    if baseline:
        doc["baseline"] = check_version(baseline)
    if traffic_percent is not None:
        doc["traffic_percent"] = traffic_percent
    s, e = _iso(start, "start"), _iso(end, "end")
    if s:
        doc["start"] = s
    if e:
        doc["end"] = e
    if s and e and e < s:
        raise InputError(f"the experiment ends ({e}) before it starts ({s})")
    doc["recorded"] = _iso(recorded or datetime.now(UTC), "recorded")
    if recorded_by:
        doc["recorded_by"] = recorded_by
    out_metrics: dict[str, dict] = {}
    for name, value in metrics.items():
        entry: dict[str, Any] = {"value": value}
        if name in intervals:
            lo, hi = intervals[name]
            if lo > hi:
                raise InputError(f"--interval {name}: the lower end {lo} is above the upper end "
                                 f"{hi}")
            if not lo <= value <= hi:
                raise InputError(f"--interval {name}: [{lo}, {hi}] does not contain the value "
                                 f"{value}")
            entry["interval"] = [lo, hi]
        out_metrics[name] = entry
    doc["metrics"] = out_metrics
    if source:
        doc["source"] = source
    if notes:
        doc["notes"] = notes
    text = dump_yaml(doc)
    check_document(load_yaml_text(text, online_path(model, experiment)), "online")
    return doc


def write_online(root: str, doc: Mapping[str, Any]) -> str:
    """Write ``doc`` to ``models/<model>/online/<experiment>.yaml`` under ``root``; refuse to
    overwrite (results are append-only). Returns the relative path."""
    rel = online_path(doc["model"], doc["experiment"])
    full = os.path.join(root, *rel.split("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    try:
        with open(full, "x", encoding="utf-8") as fh:
            fh.write(dump_yaml(dict(doc)))
    except FileExistsError:
        raise RegistryError(f"{rel} already exists: online results are append-only (fix: record "
                            "a correction under a new experiment id)") from None
    return rel


def load_online_bytes(raw: bytes, where: str) -> dict:
    """A validated online result from file bytes (LoadError/SchemaError)."""
    loaded = load_yaml_text(raw, where)
    check_document(loaded, "online")
    return loaded.data


def online_results(registry: Any, model: str | None = None) -> list[dict]:
    """Every online result of ``model`` (or of all models) in a registry, each with ``path``.

    An invalid file raises (``mlreg validate`` names it); a file whose model does not match its
    folder raises RegistryError.
    """
    out = []
    for f in registry.files():
        parts = f.split("/")
        if len(parts) != 4 or parts[0] != "models" or parts[2] != "online" \
                or not f.endswith(".yaml"):
            continue
        if model is not None and parts[1] != model:
            continue
        doc = dict(registry.load(f, "online").data)
        if doc.get("model") != parts[1] or doc.get("experiment") != parts[3][:-5]:
            raise RegistryError(f"{f}: says model {doc.get('model')!r} experiment "
                                f"{doc.get('experiment')!r}; the path must be models/<model>/"
                                "online/<experiment>.yaml")
        doc["path"] = f
        out.append(doc)
    out.sort(key=_result_order)
    return out


def _result_order(r: Mapping[str, Any]) -> tuple:
    return (r.get("end") or r.get("start") or r.get("recorded") or "", r.get("recorded") or "",
            r.get("experiment") or "")


def offline_metrics(raw: bytes, where: str) -> dict[str, float] | None:
    """``{"validation.auc": 0.9, ...}``: a record's own numeric metrics, flattened (None when
    the record cannot be read)."""
    try:
        data = load_yaml_text(raw, where).data
    except InputError:
        return None
    return flat_metrics(data)


def flat_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    metrics = record.get("metrics") or {}
    for split in ("validation", "training"):
        for k, v in (metrics.get(split) or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{split}.{k}"] = v
    return out


# ----------------------------------------------------------------------------- online gates
def _rule_problem(rule: Any, i: int) -> str | None:
    if not isinstance(rule, Mapping):
        return f"online rule {i + 1} is not a mapping"
    metric = rule.get("metric")
    if not isinstance(metric, str) or not metric:
        return f"online rule {i + 1} names no metric"
    known = {"id", "metric", "min", "max", "use_interval", "blocking", "services",
             "min_traffic_percent", "description", "category"}
    extra = sorted(set(rule) - known)
    if extra:
        return f"online rule {i + 1} ({metric}) has unknown key(s): {', '.join(extra)}"
    if "min" not in rule and "max" not in rule:
        return f"online rule {i + 1} ({metric}) has neither min nor max"
    for k in ("min", "max", "min_traffic_percent"):
        if k in rule and (isinstance(rule[k], bool) or not isinstance(rule[k], (int, float))
                          or not math.isfinite(rule[k])):
            return f"online rule {i + 1} ({metric}): {k} must be a finite number"
    return None


def _row(item: str, verdict: str, reason: str, category: str, blocking: bool, **nums: Any
         ) -> dict:
    row = {"item": item, "kind": "check", "category": category, "verdict": verdict,
           "blocking": blocking, "reason": reason, "n": None, "weight": None,
           "candidate": None, "candidate_interval": None, "baseline": None,
           "baseline_interval": None, "delta": None, "delta_interval": None, "observed": None,
           "observed_interval": None, "lower": None, "upper": None, "groups": None}
    row.update(nums)
    return row


def _describe_rule(rule: Mapping[str, Any]) -> str:
    parts = []
    if "min" in rule:
        parts.append(f">= {rule['min']:g}")
    if "max" in rule:
        parts.append(f"<= {rule['max']:g}")
    text = f"online {rule['metric']} " + " and ".join(parts)
    if rule.get("use_interval"):
        text += " (interval)"
    return text


def check_online(rules: Sequence[Mapping[str, Any]] | None, results: Sequence[Mapping[str, Any]],
                 service: str, version: str, *, model: str | None = None) -> list[dict]:
    """Judge ``version`` on ``service`` against online gate ``rules``. Pure: no I/O.

    ``rules``: a policy's ``online:`` list (module docstring). ``results``: online result
    documents (``mlreg/online/v1`` dicts, e.g. from :func:`online_results`); only those for this
    version (and ``model``, when given) on ``service`` count, and of those the latest (by end,
    start, then recorded date) that reports the rule's metric (on at least
    ``min_traffic_percent``) is judged.

    Returns one dict per rule in the shape of a gate of ``mlreg/result/v1`` (``GateOutcome
    .to_dict()``: id, type ``online``, category, metric, rule, use_interval, blocking, verdict,
    reason, matched, rows_total, rows) with one row (kind ``check``): ``candidate`` the value,
    ``candidate_interval``, ``observed`` the number judged (the interval's end with
    ``use_interval``), ``lower``/``upper`` the bar. Fail closed: no result, a missing metric, a
    missing interval with ``use_interval``, or a bad rule fails with its reason. A rule with
    ``blocking: false`` that fails has verdict ``info``.
    """
    out: list[dict] = []
    mine = [r for r in results if r.get("service") == service and r.get("version") == version
            and (model is None or r.get("model") == model)]
    mine.sort(key=_result_order)
    for i, rule in enumerate(rules or []):
        problem = _rule_problem(rule, i)
        metric = rule.get("metric") if isinstance(rule, Mapping) else None
        gid = (rule.get("id") if isinstance(rule, Mapping) else None) or \
            f"online-{str(metric or i + 1).replace('_', '-')}"
        blocking = bool(rule.get("blocking", True)) if isinstance(rule, Mapping) else True
        category = (rule.get("category") if isinstance(rule, Mapping) else None) or (
            "operational" if metric and "latency" in str(metric) else "metric")
        gate = {"id": gid, "type": "online", "category": category,
                "metric": metric if isinstance(metric, str) else None, "threshold": None,
                "slices": service, "rule": "", "use_interval": False, "blocking": blocking,
                "verdict": "fail", "reason": "", "matched": 0, "rows_total": 1, "rows": []}
        who = f"{model + '@' if model else 'version '}{version} on {service}"
        if problem:
            gate.update(rule="invalid rule", reason=problem,
                        rows=[_row(service, "fail", problem, category, blocking)])
            out.append(_finish(gate))
            continue
        gate["rule"] = _describe_rule(rule)
        gate["use_interval"] = bool(rule.get("use_interval"))
        services = rule.get("services")
        if services and service not in services:
            reason = f"applies to {', '.join(services)} only"
            gate.update(verdict="skip", reason=reason,
                        rows=[_row(service, "skip", reason, category, blocking)])
            out.append(gate)
            continue
        floor = rule.get("min_traffic_percent")
        usable = [r for r in mine if metric in (r.get("metrics") or {})
                  and (floor is None or (r.get("traffic_percent") or 0) >= floor)]
        if not usable:
            if not mine:
                reason = (f"no online result for {who} (record one: mlreg online "
                          f"{model or 'MODEL'}@{version} --experiment ID --service {service} "
                          f"--metric {metric}=VALUE)")
            elif floor is not None and any(metric in (r.get("metrics") or {}) for r in mine):
                reason = (f"no online result for {who} on at least {floor:g}% of traffic "
                          f"reports {metric}")
            else:
                reason = (f"the online results for {who} "
                          f"({', '.join(r.get('experiment', '?') for r in mine)}) do not report "
                          f"{metric}")
            gate.update(reason=reason, rows=[_row(service, "fail", reason, category, blocking)])
            out.append(_finish(gate))
            continue
        res = usable[-1]
        m = res["metrics"][metric]
        value = m.get("value")
        interval = m.get("interval")
        item = f"{service}: experiment {res.get('experiment')}"
        if res.get("traffic_percent") is not None:
            item += f" ({res['traffic_percent']:g}% traffic)"
        lo_bar, hi_bar = rule.get("min"), rule.get("max")
        nums = {"candidate": value, "candidate_interval": interval, "lower": lo_bar,
                "upper": hi_bar, "n": m.get("n")}
        gate["matched"] = 1
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or not math.isfinite(value):
            reason = f"{metric} of experiment {res.get('experiment')} is not a finite number"
            gate.update(reason=reason, rows=[_row(item, "fail", reason, category, blocking,
                                                  **nums)])
            out.append(_finish(gate))
            continue
        if rule.get("use_interval") and not (isinstance(interval, list) and len(interval) == 2):
            reason = (f"{metric} of experiment {res.get('experiment')} has no interval, and the "
                      "rule judges the interval")
            gate.update(reason=reason, rows=[_row(item, "fail", reason, category, blocking,
                                                  **nums)])
            out.append(_finish(gate))
            continue
        from mlreg.gates.exact import ge, le

        fails = []
        observed = value
        if lo_bar is not None:
            x = interval[0] if rule.get("use_interval") else value
            observed = x
            if not ge(x, lo_bar):
                what = "its interval's lower end" if rule.get("use_interval") else "it"
                fails.append(f"{metric} {value:g} is below the minimum {lo_bar:g} "
                             f"({what}: {x:g})" if rule.get("use_interval")
                             else f"{metric} {value:g} is below the minimum {lo_bar:g}")
        if hi_bar is not None:
            x = interval[1] if rule.get("use_interval") else value
            if lo_bar is None:
                observed = x
            if not le(x, hi_bar):
                fails.append(f"{metric} {value:g} is above the maximum {hi_bar:g} "
                             f"(interval's upper end: {x:g})" if rule.get("use_interval")
                             else f"{metric} {value:g} is above the maximum {hi_bar:g}")
        nums["observed"] = observed
        if rule.get("use_interval"):
            nums["observed_interval"] = interval
        if fails:
            reason = "; ".join(fails) + f" (experiment {res.get('experiment')})"
            gate.update(reason=reason, rows=[_row(item, "fail", reason, category, blocking,
                                                  **nums)])
            out.append(_finish(gate))
        else:
            reason = f"{metric} {value:g} meets {gate['rule'][len('online ' + metric) + 1:]} " \
                     f"(experiment {res.get('experiment')})"
            gate.update(verdict="pass", reason=reason,
                        rows=[_row(item, "pass", reason, category, blocking, **nums)])
            out.append(gate)
    return out


def _finish(gate: dict) -> dict:
    """A failing gate that does not block is ``info`` (the gates' convention)."""
    if not gate["blocking"]:
        gate["verdict"] = "info"
        gate["reason"] = f"not blocking: {gate['reason']}"
        for row in gate["rows"]:
            if row["verdict"] == "fail":
                row["verdict"] = "info"
                row["reason"] = f"not blocking: {row['reason']}"
    return gate


