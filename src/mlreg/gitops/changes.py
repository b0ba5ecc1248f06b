"""What a pull request changes in a registry, as plain data (pure functions, no I/O).

:func:`file_changes` classifies the files that differ between two trees; :func:`service_changes`
finds the services whose manifest entry differs; :func:`plan_promotions` turns one service change
into the promotions to gate. The PR gate (:mod:`mlreg.gitops.prgate`) feeds them from git.

Promotion kinds (``PlannedPromotion.change``):

=================  ============================================================================
``bootstrap``      a new service: its first stable version (explicit, no baseline)
``stable``         a new stable version, gated against the stable served at base
``canary``         a canary version or share set, gated against the stable served at base
``canary-removed`` the canary dropped, stable unchanged: the stable keeps serving alone (a
                   rollback of the canary: only the policy's rollback gates block)
``target``         only the deployment target changed: the stable re-gated for the new target
=================  ============================================================================

A ``stable`` change to a version that was the stable version of that service before (anywhere in
the manifest's first-parent history up to base) is a rollback (``mode="rollback"``). Having served
as a canary does not count: promoting a canary to stable gets every gate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FileKind",
    "FileChange",
    "ServiceChange",
    "PlannedPromotion",
    "classify_path",
    "file_changes",
    "service_changes",
    "plan_promotions",
]

FileKind = Literal["record", "online", "model", "policy", "settings", "manifest", "other"]

_RECORD = re.compile(r"^models/([^/]+)/([^/]+)\.yaml$")
_ONLINE = re.compile(r"^models/([^/]+)/online/.+$")
_POLICY = re.compile(r"^policies/[^/]+\.yaml$")


@dataclass(frozen=True)
class FileChange:
    """One file that differs: ``status`` added, modified or deleted (a rename is both)."""

    path: str
    status: Literal["added", "modified", "deleted"]
    kind: FileKind
    model: str | None = None
    version: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "status": self.status, "kind": self.kind,
                "model": self.model, "version": self.version}


def classify_path(path: str, manifests: Sequence[str]) -> tuple[FileKind, str | None, str | None]:
    """(kind, model, version) of a registry-relative path."""
    if path in manifests:
        return "manifest", None, None
    if path == "mlreg.yaml":
        return "settings", None, None
    if _POLICY.match(path):
        return "policy", None, None
    m = _ONLINE.match(path)
    if m:
        return "online", m.group(1), None
    m = _RECORD.match(path)
    if m:
        if m.group(2) == "model":
            return "model", m.group(1), None
        return "record", m.group(1), m.group(2)
    if path.startswith("models/"):
        return "model", path.split("/")[1] if path.count("/") >= 2 else None, None
    return "other", None, None


def file_changes(base: Mapping[str, str], head: Mapping[str, str],
                 manifests: Sequence[str]) -> list[FileChange]:
    """Files that differ between two trees (path -> blob id), sorted by path."""
    out = []
    for path in sorted(set(base) | set(head)):
        a, b = base.get(path), head.get(path)
        if a == b:
            continue
        status: Literal["added", "modified", "deleted"] = (
            "added" if a is None else "deleted" if b is None else "modified")
        kind, model, version = classify_path(path, manifests)
        out.append(FileChange(path, status, kind, model, version))
    return out


@dataclass(frozen=True)
class ServiceChange:
    """A service whose entry differs: ``before`` at base, ``after`` at head (None: absent)."""

    service: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


def service_changes(base: Mapping[str, Mapping[str, Any]],
                    head: Mapping[str, Mapping[str, Any]],
                    changed_since: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> list[ServiceChange]:
    """Services whose entry at ``head`` differs from ``base``.

    ``changed_since`` (the entries at the merge base of the two revisions) limits this to the
    services the head side changed: when a branch is behind base, a service that only base changed
    is not the PR's change.
    """
    out = []
    for name in sorted(set(base) | set(head)):
        before, after = base.get(name), head.get(name)
        if _norm(before) == _norm(after):
            continue
        if changed_since is not None and _norm(changed_since.get(name)) == _norm(after):
            continue
        out.append(ServiceChange(name, before, after))
    return out


def _norm(entry: Mapping[str, Any] | None) -> Any:
    if entry is None:
        return None
    e = {k: v for k, v in entry.items() if k != "description"}
    canary = e.get("canary")
    if canary:
        e["canary"] = {"version": canary.get("version"),
                       "percent": float(canary["percent"]) if canary.get("percent") is not None
                       else None}
    return e


@dataclass(frozen=True)
class PlannedPromotion:
    """One promotion the PR gate evaluates (see the module docstring for ``change``)."""

    service: str
    model: str
    to_version: str
    from_model: str | None
    from_version: str | None
    canary_percent: float | None
    mode: Literal["promotion", "rollback", "bootstrap"]
    change: Literal["bootstrap", "stable", "canary", "canary-removed", "target"]
    target: str | None = None
    why: str = ""

    def title(self) -> str:
        frm = f"{self.from_model}@{self.from_version}" if self.from_version else "nothing"
        text = f"{self.service}: {frm} → {self.model}@{self.to_version}"
        if self.change == "canary":
            text += f" (canary {self.canary_percent:g}%)"
        elif self.change == "canary-removed":
            text = (f"{self.service}: canary {self.from_model}@{self.from_version} removed, "
                    f"{self.model}@{self.to_version} serves alone")
        elif self.change == "target":
            text += f" (target {self.target})"
        if self.mode == "rollback" and self.change != "canary-removed":
            text += " (rollback)"
        return text

    def to_dict(self) -> dict:
        return {"service": self.service, "model": self.model, "to_version": self.to_version,
                "from_model": self.from_model, "from_version": self.from_version,
                "canary_percent": self.canary_percent, "mode": self.mode,
                "change": self.change, "target": self.target}


def plan_promotions(change: ServiceChange,
                    served_before: Callable[[str, str], bool]) -> list[PlannedPromotion]:
    """The promotions one service change asks for.

    ``served_before(model, version)`` says whether that version was the service's stable version
    at some point of the manifest's history up to base (asked only for changed stables).
    """
    b, a = change.before, change.after
    svc = change.service
    if a is None:
        return []  # a removed service serves nothing new: listed, not gated
    canary = a.get("canary") or {}
    target = a.get("target")
    out: list[PlannedPromotion] = []
    if b is None:
        out.append(PlannedPromotion(svc, a["model"], a["stable"], None, None, None, "bootstrap",
                                    "bootstrap", target, "a new service"))
        if canary.get("version"):
            out.append(PlannedPromotion(svc, a["model"], canary["version"], None, None,
                                        float(canary["percent"]), "bootstrap", "canary", target,
                                        "a new service with a canary"))
        return out
    bcanary = b.get("canary") or {}
    stable_changed = (a["model"], a["stable"]) != (b["model"], b["stable"])
    if stable_changed:
        rollback = served_before(a["model"], a["stable"]) and not (
            a["model"] == b["model"] and a["stable"] == bcanary.get("version"))
        out.append(PlannedPromotion(
            svc, a["model"], a["stable"], b["model"], b["stable"], None,
            "rollback" if rollback else "promotion", "stable", target,
            "a version that served this service before" if rollback else "a new stable version"))
    if canary.get("version"):
        if (canary.get("version"), _pct(canary)) != (bcanary.get("version"), _pct(bcanary)) or \
                a["model"] != b["model"]:
            out.append(PlannedPromotion(
                svc, a["model"], canary["version"], b["model"], b["stable"], _pct(canary),
                "promotion", "canary", target,
                "a canary share changed" if canary.get("version") == bcanary.get("version")
                else "a new canary"))
    elif bcanary.get("version") and not stable_changed:
        out.append(PlannedPromotion(
            svc, a["model"], a["stable"], b["model"], bcanary["version"], None, "rollback",
            "canary-removed", target, "the canary is withdrawn"))
    if not out and target != b.get("target"):
        out.append(PlannedPromotion(svc, a["model"], a["stable"], b["model"], b["stable"], None,
                                    "promotion", "target", target, "the deployment target changed"))
    return out


def _pct(canary: Mapping[str, Any]) -> float | None:
    p = canary.get("percent")
    return float(p) if p is not None else None
