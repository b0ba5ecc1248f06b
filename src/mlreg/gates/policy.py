"""Policies: load ``policies/default.yaml`` and ``policies/<model>.yaml``, merge, digest.

Merging (a model policy over the default):

* ``gates``: a model gate with the id of a default gate replaces it in place; ``remove: [id]``
  drops default gates (naming an id the default lacks is an error: a typo must not keep a gate
  silently); every other model gate is appended in its order.
* ``evaluation`` and ``rollback``: merged key by key, the model's keys win; built-in defaults
  (:data:`EVALUATION_DEFAULTS`, :data:`ROLLBACK_DEFAULTS`) are filled in first, so the merged
  policy states every setting the decision used and its digest covers them.
* ``online`` (the online gates of a canary -> stable promotion, see
  :func:`mlreg.history.online.check_online`): a model policy's list replaces the default's as a
  whole (``online: []`` drops the default's rules); it is kept in the merged policy only when
  non-empty, so the digests of policies without online rules do not change.
* ``extends: none`` in a model policy ignores the default policy.

The digest of a policy is the sha256 of its canonical JSON (keys sorted, no whitespace, UTF-8).
No policy at all (neither file) is an error: a registry without gates must not pass everything.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlreg.errors import InputError, SchemaError, Violation

__all__ = [
    "EVALUATION_DEFAULTS",
    "ROLLBACK_DEFAULTS",
    "CATEGORIES",
    "THRESHOLDED",
    "RANKED",
    "Policy",
    "PolicySource",
    "canonical_json",
    "sha256_json",
    "check_policy",
    "merge_policies",
    "load_policy",
    "gate_category",
    "rule_of",
]

EVALUATION_DEFAULTS: dict[str, Any] = {
    "threshold": 0.5,
    "top_n": 5,
    "min_slice_size": 0,
    "min_group_size": 0,
    "confidence": 0.95,
    "traffic": "count",
    "bootstrap_replicates": 200,
    "seed": 0,
}
ROLLBACK_DEFAULTS: dict[str, Any] = {"blocking": ["integrity", "lineage"]}

#: Gate categories; a rollback's ``blocking`` list names categories (or gate ids).
CATEGORIES = ("metric", "operational", "lineage", "integrity")

#: Metrics computed at a decision threshold (the gate's or evaluation.threshold), and ranking
#: metrics cut at ``k`` (the gate's; none means the whole list). Kept in step with the metrics
#: engine's registry by a test; listed here so that loading a policy imports no numpy.
THRESHOLDED = frozenset({"precision", "recall", "f1", "fpr", "tpr"})
RANKED = frozenset({"ndcg", "precision_at_k", "recall_at_k", "mrr"})

_RULES = ("min", "max", "change", "target", "max_group_gap")


def canonical_json(data: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_json(data: Any) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


@dataclass(frozen=True)
class PolicySource:
    """A policy file the merged policy came from, with the sha256 of its bytes."""

    path: str
    sha256: str

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256}


@dataclass(frozen=True)
class Policy:
    """A merged, validated policy. ``data`` is the document the gates read."""

    data: Mapping[str, Any]
    sources: tuple[PolicySource, ...] = field(default=())

    @property
    def gates(self) -> list[dict]:
        return list(self.data.get("gates") or [])

    @property
    def online(self) -> list[dict]:
        """The online gates (judged when a canary becomes stable); empty when none."""
        return list(self.data.get("online") or [])

    @property
    def evaluation(self) -> dict:
        return {**EVALUATION_DEFAULTS, **(self.data.get("evaluation") or {})}

    @property
    def rollback(self) -> dict:
        return {**ROLLBACK_DEFAULTS, **(self.data.get("rollback") or {})}

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of the merged policy."""
        return sha256_json(dict(self.data))

    def gate(self, gate_id: str) -> dict:
        for g in self.gates:
            if g["id"] == gate_id:
                return g
        raise KeyError(gate_id)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], path: str = "<policy>") -> Policy:
        """A single policy document (no default), validated, with defaults filled in."""
        check_policy(doc, path)
        merged = merge_policies(None, doc, model_path=path)
        return cls(merged)


def gate_category(gate: Mapping[str, Any]) -> str:
    kind = gate.get("type", "metric")
    if kind == "metric":
        return "metric"
    if kind in ("artifact_size", "latency"):
        return "operational"
    return "lineage"


def rule_of(gate: Mapping[str, Any]) -> str:
    """The rule of a metric gate: bound, change, target or max_group_gap."""
    present = [r for r in _RULES if r in gate]
    if not present:
        raise ValueError(f"gate {gate.get('id')!r} has no rule")
    return "bound" if present[0] in ("min", "max") else present[0]


def check_policy(doc: Any, path: str = "<policy>") -> None:
    """Validate one policy document: its schema, then what a schema cannot say.

    Raises SchemaError listing every problem: duplicate gate ids, a metric gate with two rules,
    ``min`` above ``max``, ``groups`` or ``min_group_size`` on a gate without ``max_group_gap``,
    ``threshold`` or ``k`` on a metric that takes none.
    """
    from mlreg.records import violations

    if not isinstance(doc, Mapping):
        raise SchemaError(path, "policy", [Violation("$", "must be a YAML mapping")])
    found = violations(dict(doc), "policy")
    if found:
        raise SchemaError(path, "policy", found)
    problems: list[Violation] = []
    seen: dict[str, int] = {}
    for i, gate in enumerate(doc.get("gates") or []):
        where = f"$.gates[{i}]"
        gid = gate["id"]
        if gid in seen:
            problems.append(Violation(f"{where}.id", f"duplicate gate id {gid!r} (first at "
                                      f"$.gates[{seen[gid]}]); ids must be unique"))
        seen.setdefault(gid, i)
        if gate.get("type", "metric") != "metric":
            continue
        rules = [r for r in _RULES if r in gate]
        kinds = {"bound" if r in ("min", "max") else r for r in rules}
        if len(kinds) > 1:
            problems.append(Violation(where, f"gate {gid!r} has {len(kinds)} rules "
                                      f"({', '.join(rules)}); a gate has exactly one rule: "
                                      "split it into several gates"))
        if "min" in gate and "max" in gate and gate["min"] > gate["max"]:
            problems.append(Violation(where, f"min {gate['min']} is above max {gate['max']}"))
        if "max_group_gap" not in gate:
            for key in ("groups", "min_group_size"):
                if key in gate:
                    problems.append(Violation(f"{where}.{key}",
                                              f"{key} only applies to a max_group_gap rule"))
        if "threshold" in gate and gate["metric"] not in THRESHOLDED:
            problems.append(Violation(f"{where}.threshold", f"metric {gate['metric']!r} takes no "
                                      f"threshold (thresholded: {', '.join(sorted(THRESHOLDED))})"))
        if "k" in gate and gate["metric"] not in RANKED:
            problems.append(Violation(f"{where}.k", f"metric {gate['metric']!r} takes no k "
                                      f"(ranking metrics: {', '.join(sorted(RANKED))})"))
    online_seen: dict[str, int] = {}
    for i, rule in enumerate(doc.get("online") or []):
        where = f"$.online[{i}]"
        if "min" in rule and "max" in rule and rule["min"] > rule["max"]:
            problems.append(Violation(where, f"min {rule['min']} is above max {rule['max']}"))
        oid = rule.get("id") or f"online-{rule['metric'].replace('_', '-')}"
        if oid in online_seen:
            problems.append(Violation(f"{where}.id", f"duplicate online gate id {oid!r} (first "
                                      f"at $.online[{online_seen[oid]}]; the default id is "
                                      "online-<metric>): give each rule its own id"))
        online_seen.setdefault(oid, i)
    if problems:
        raise SchemaError(path, "policy", problems)


def merge_policies(default: Mapping[str, Any] | None, model: Mapping[str, Any] | None, *,
                   default_path: str = "policies/default.yaml",
                   model_path: str = "policies/<model>.yaml") -> dict:
    """Merge a model policy over the default policy (both already checked). Pure.

    Either may be None. The result has every evaluation and rollback setting filled in.
    """
    if default is None and model is None:
        raise InputError("no policy: neither policies/default.yaml nor a model policy exists "
                         "(fix: add policies/default.yaml; a registry without gates passes nothing)")
    base = copy.deepcopy(dict(default)) if default is not None else {}
    if model is not None and model.get("extends") == "none":
        base = {}
    gates: list[dict] = list(base.get("gates") or [])
    evaluation = {**EVALUATION_DEFAULTS, **(base.get("evaluation") or {})}
    rollback = {**ROLLBACK_DEFAULTS, **(base.get("rollback") or {})}
    description = base.get("description")
    online = list(base.get("online") or [])
    if model is not None:
        model = copy.deepcopy(dict(model))
        ids = [g["id"] for g in gates]
        unknown = [r for r in model.get("remove") or [] if r not in ids]
        if unknown:
            raise SchemaError(model_path, "policy", [Violation(
                "$.remove", f"names no gate of {default_path if base else 'the default policy'}: "
                f"{', '.join(unknown)} (gates there: {', '.join(ids) or 'none'})")])
        removed = set(model.get("remove") or [])
        gates = [g for g in gates if g["id"] not in removed]
        for g in model.get("gates") or []:
            for i, old in enumerate(gates):
                if old["id"] == g["id"]:
                    gates[i] = g
                    break
            else:
                gates.append(g)
        evaluation.update(model.get("evaluation") or {})
        rollback.update(model.get("rollback") or {})
        if "online" in model:  # the model's list replaces the default's (as audit assumes)
            online = list(model.get("online") or [])
        description = model.get("description", description)
    merged: dict[str, Any] = {"schema": "mlreg/policy/v1"}
    if description is not None:
        merged["description"] = description
    merged["evaluation"] = evaluation
    merged["rollback"] = rollback
    merged["gates"] = gates
    if online:
        merged["online"] = online
    return merged


def load_policy(registry: Any, model: str) -> Policy:
    """The merged policy for ``model`` in ``registry`` (a :class:`mlreg.registry.Registry`).

    Reads ``policies/default.yaml`` and ``policies/<model>.yaml`` at the registry's revision,
    strictly (LoadError/SchemaError on any problem).
    """
    from mlreg.names import check_name
    from mlreg.yamlio import load_yaml_text

    check_name(model, "model")
    docs: dict[str, Any] = {}
    sources: list[PolicySource] = []
    for name in ("default", model):
        rel = f"policies/{name}.yaml"
        raw = registry.read_bytes(rel)
        if raw is None:
            continue
        shown = registry.source.display(rel)
        loaded = load_yaml_text(raw, shown)
        check_policy(loaded.data, shown)
        docs[name] = loaded.data
        sources.append(PolicySource(rel, hashlib.sha256(raw).hexdigest()))
    default = docs.get("default")
    own = docs.get(model) if model != "default" else None
    if own is not None and own.get("extends") == "none":
        sources = [s for s in sources if s.path != "policies/default.yaml"]
    merged = merge_policies(default, own, model_path=f"policies/{model}.yaml")
    return Policy(merged, tuple(sources))
