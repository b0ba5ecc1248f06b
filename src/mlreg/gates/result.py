"""The decision record: what :func:`mlreg.gates.evaluate` returns, and its JSON form.

    GateResult                    verdict (pass | fail), mode, promotion, digests, notes
    ├── candidate / baseline      SubjectRef: model, version, record path and sha256
    ├── policy                    sha256 of the merged policy, source files with their sha256
    ├── files                     FileCheck per artifact and predictions file (store hashes)
    └── gates: [GateOutcome]      id, type, category, rule text, verdict, reason, matched
        └── rows: [Row]           one per slice / group column / artifact / check:
                                  candidate, baseline, delta (each with its interval), n,
                                  observed (the number judged) against [lower, upper],
                                  verdict (pass | fail | skip | info), reason, blocking

Verdicts: ``fail`` always blocks; a failing row that does not block (a gate with
``blocking: false``, or a metric gate during a rollback) is ``info`` and its reason starts with
"not blocking"; ``skip`` is a row that was not judged, with the reason (bootstrap, a slice under
the minimum size, a target the model does not deploy to). The overall verdict is ``fail`` when
any row fails.

``to_json_dict`` is the JSON form, schema ``mlreg/result/v1`` (``mlreg/schemas/result.v1.json``);
``validate_result`` checks a document against it (for CI artifacts read back as untrusted data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlreg.errors import SchemaError

__all__ = [
    "Verdict",
    "SCHEMA_KEY",
    "Row",
    "GroupValue",
    "GateOutcome",
    "SubjectRef",
    "GateResult",
    "validate_result",
]

Verdict = Literal["pass", "fail", "skip", "info"]
SCHEMA_KEY = "mlreg/result/v1"

# Bounds that keep a result small and safe to re-read; the schema states the same numbers.
MAX_TEXT = 2000
MAX_NAME = 512
MAX_ROWS = 5000
MAX_GATES = 200


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def _pair(p: tuple[float, float] | None) -> list[float] | None:
    if p is None:
        return None
    lo, hi = _num(p[0]), _num(p[1])
    return [lo, hi] if lo is not None and hi is not None else None


def _text(s: str | None, cap: int = MAX_TEXT) -> str | None:
    if s is None:
        return None
    return s if len(s) <= cap else s[: cap - 1] + "\u2026"


@dataclass(frozen=True)
class GroupValue:
    """One group's metric inside a gap row."""

    group: str
    n: int | None
    value: float | None
    interval: tuple[float, float] | None = None
    included: bool = True

    def to_dict(self) -> dict:
        return {"group": _text(self.group, MAX_NAME), "n": self.n, "value": _num(self.value),
                "interval": _pair(self.interval), "included": self.included}


@dataclass
class Row:
    """One judged item of a gate: a slice, a slice x group column, an artifact or a check.

    ``observed`` is the number compared with the inclusive bar ``[lower, upper]`` (a value, a
    delta, a gap, megabytes or milliseconds); ``observed_interval`` its interval. For a relative
    change ``observed`` is the relative delta and the bar is relative too.
    """

    item: str
    kind: str  # slice | group | artifact | latency | check
    verdict: Verdict
    reason: str
    category: str = "metric"
    blocking: bool = True
    n: int | None = None
    weight: float | None = None
    candidate: float | None = None
    candidate_interval: tuple[float, float] | None = None
    baseline: float | None = None
    baseline_interval: tuple[float, float] | None = None
    delta: float | None = None
    delta_interval: tuple[float, float] | None = None
    observed: float | None = None
    observed_interval: tuple[float, float] | None = None
    lower: float | None = None
    upper: float | None = None
    groups: list[GroupValue] | None = None

    def to_dict(self) -> dict:
        return {
            "item": _text(self.item, MAX_NAME), "kind": self.kind, "category": self.category,
            "verdict": self.verdict, "blocking": self.blocking, "reason": _text(self.reason),
            "n": self.n, "weight": _num(self.weight),
            "candidate": _num(self.candidate), "candidate_interval": _pair(self.candidate_interval),
            "baseline": _num(self.baseline), "baseline_interval": _pair(self.baseline_interval),
            "delta": _num(self.delta), "delta_interval": _pair(self.delta_interval),
            "observed": _num(self.observed), "observed_interval": _pair(self.observed_interval),
            "lower": _num(self.lower), "upper": _num(self.upper),
            "groups": None if self.groups is None else [g.to_dict() for g in self.groups[:100]],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Row:
        """A row from its ``to_dict`` form (e.g. an online gate's row from
        :func:`mlreg.history.online.check_online`)."""
        def pair(p: Any) -> tuple[float, float] | None:
            return (p[0], p[1]) if p is not None else None

        groups = d.get("groups")
        return cls(
            item=d["item"], kind=d["kind"], verdict=d["verdict"], reason=d["reason"],
            category=d.get("category", "metric"), blocking=d.get("blocking", True),
            n=d.get("n"), weight=d.get("weight"), candidate=d.get("candidate"),
            candidate_interval=pair(d.get("candidate_interval")), baseline=d.get("baseline"),
            baseline_interval=pair(d.get("baseline_interval")), delta=d.get("delta"),
            delta_interval=pair(d.get("delta_interval")), observed=d.get("observed"),
            observed_interval=pair(d.get("observed_interval")), lower=d.get("lower"),
            upper=d.get("upper"),
            groups=None if groups is None else [
                GroupValue(g["group"], g.get("n"), g.get("value"), pair(g.get("interval")),
                           g.get("included", True)) for g in groups])


@dataclass
class GateOutcome:
    """One gate of the policy and its rows."""

    id: str
    type: str
    category: str
    rule: str  # human text: "change >= +0.005 vs baseline"
    verdict: Verdict
    reason: str
    rows: list[Row] = field(default_factory=list)
    metric: str | None = None
    threshold: float | None = None
    slices: str | None = None  # the slice selection, as text
    matched: int = 0  # slices (or items) the gate matched
    use_interval: bool = False
    blocking: bool = True

    @property
    def failed_rows(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "fail"]

    def to_dict(self) -> dict:
        return {
            "id": self.id, "type": self.type, "category": self.category,
            "metric": self.metric, "threshold": _num(self.threshold),
            "slices": _text(self.slices, MAX_NAME), "rule": _text(self.rule, MAX_NAME),
            "use_interval": self.use_interval, "blocking": self.blocking,
            "verdict": self.verdict, "reason": _text(self.reason), "matched": self.matched,
            "rows_total": len(self.rows),
            "rows": [r.to_dict() for r in _capped_rows(self.rows)],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateOutcome:
        """A gate from its ``to_dict`` form (``rows_total`` is recomputed from the rows)."""
        return cls(id=d["id"], type=d["type"], category=d["category"], rule=d.get("rule", ""),
                   verdict=d["verdict"], reason=d.get("reason", ""),
                   rows=[Row.from_dict(r) for r in d.get("rows") or []],
                   metric=d.get("metric"), threshold=d.get("threshold"), slices=d.get("slices"),
                   matched=d.get("matched", 0), use_interval=d.get("use_interval", False),
                   blocking=d.get("blocking", True))


def _capped_rows(rows: list[Row]) -> list[Row]:
    """At most MAX_ROWS rows, failing ones kept first (the JSON never silently drops a failure
    in favour of a pass)."""
    if len(rows) <= MAX_ROWS:
        return rows
    order = {"fail": 0, "info": 1, "skip": 2, "pass": 3}
    return sorted(rows, key=lambda r: order[r.verdict])[:MAX_ROWS]


@dataclass(frozen=True)
class SubjectRef:
    model: str
    version: str
    path: str
    record_sha256: str

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "path": _text(self.path, MAX_NAME),
                "record_sha256": self.record_sha256}


@dataclass
class GateResult:
    """The whole decision. ``verdict`` is ``fail`` when any row fails (see module docstring)."""

    verdict: Literal["pass", "fail"]
    mode: str
    promotion: Mapping[str, Any]
    candidate: SubjectRef
    baseline: SubjectRef | None
    policy_sha256: str
    policy_sources: list[dict]
    files: list[dict]
    gates: list[GateOutcome]
    evaluation: Mapping[str, Any]
    notes: list[str] = field(default_factory=list)
    tool: str = "mlreg"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def summary(self) -> dict:
        counts = {"pass": 0, "fail": 0, "skip": 0, "info": 0}
        for g in self.gates:
            counts[g.verdict] += 1
        rows = sum(len(g.rows) for g in self.gates)
        failing = sum(len(g.failed_rows) for g in self.gates)
        return {"gates": len(self.gates), "passed": counts["pass"], "failed": counts["fail"],
                "skipped": counts["skip"], "info": counts["info"], "rows": rows,
                "failing_rows": failing}

    def to_json_dict(self) -> dict:
        return {
            "schema": SCHEMA_KEY,
            "tool": _text(self.tool, 64),
            "verdict": self.verdict,
            "mode": self.mode,
            "promotion": _capped(self.promotion, {"target": 64}, MAX_NAME),
            "candidate": self.candidate.to_dict(),
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "policy": {"sha256": self.policy_sha256,
                       "sources": [_capped(x, {}, MAX_NAME) for x in self.policy_sources[:20]]},
            "files": [_capped(f, {"name": 128, "uri": 2048}, MAX_TEXT) for f in self.files[:200]],
            "evaluation": _capped(self.evaluation, {"engine": 128, "snapshot": 2048}, MAX_TEXT),
            "summary": self.summary(),
            "notes": [_text(n) for n in self.notes[:50]],
            "gates": [g.to_dict() for g in self.gates[:MAX_GATES]],
        }


def _capped(d: Mapping[str, Any], caps: Mapping[str, int], default: int) -> dict:
    """``d`` with every string cut to the length the schema allows for its key."""
    return {k: _text(v, caps.get(k, default)) if isinstance(v, str) else v for k, v in d.items()}


def validate_result(doc: Any, path: str = "<result>") -> None:
    """Raise SchemaError listing every way ``doc`` violates ``mlreg/result/v1``."""
    from mlreg.records import violations

    found = violations(doc, "result")
    if found:
        raise SchemaError(path, "result", found)
