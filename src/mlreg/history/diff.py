"""The lineage difference between two versions, for root-cause analysis.

"The canary shows -3% CTR: which data snapshot, feature transform version and environment
produced the candidate and the baseline?" :func:`lineage_diff` answers with every field that
differs between the two records, and nothing else, grouped the way people reason about it::

    identity, artifacts, code, data, features, hyperparameters, seeds, environment, hardware,
    metrics, evaluation, operational, other

By construction: both records are flattened to leaves (scalars, and lists of scalars taken
whole), list items are matched by identity rather than position (data snapshots by ``role``,
artifacts and features by ``name``; position only when no identity is unique), and every leaf
whose value differs or exists on one side only is one :class:`FieldChange`. The groups then only
summarise those changes (snapshots added/removed/changed, feature definitions changed, packages
added/removed/changed, metric deltas). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldChange", "LineageDiff", "lineage_diff", "GROUPS", "flatten"]

GROUPS = ("identity", "artifacts", "code", "data", "features", "hyperparameters", "seeds",
          "environment", "hardware", "metrics", "evaluation", "operational", "other")
_GROUP_OF = {
    "schema": "identity", "model": "identity", "version": "identity", "created": "identity",
    "owner": "identity", "description": "identity", "parent": "identity", "tags": "identity",
    "artifacts": "artifacts", "code": "code", "data": "data", "features": "features",
    "hyperparameters": "hyperparameters", "seeds": "seeds", "environment": "environment",
    "hardware": "hardware", "metrics": "metrics", "evaluation": "evaluation",
    "operational": "operational",
}
# Which field identifies an item of a list, by the list's path (the first unique one wins).
_IDENTITY = {"data": ("role", "name", "uri"), "artifacts": ("name", "target", "uri"),
             "features": ("name",)}
_DEFAULT_IDENTITY = ("name", "role", "id", "key")


@dataclass(frozen=True)
class FieldChange:
    """One leaf that differs. ``path`` names list items by identity (``data[train].uri``);
    ``pointer_a``/``pointer_b`` are JSON pointers into each record (None on the absent side)."""

    group: str
    path: str
    status: str  # changed | added | removed
    a: Any
    b: Any
    pointer_a: str | None
    pointer_b: str | None

    @property
    def delta(self) -> float | None:
        if _is_num(self.a) and _is_num(self.b):
            from decimal import Decimal

            # The decimal difference of the numbers as written (0.0712 - 0.0745 = -0.0033).
            return float(Decimal(repr(self.b)) - Decimal(repr(self.a)))
        return None

    def to_dict(self) -> dict:
        return {"group": self.group, "path": self.path, "status": self.status, "a": self.a,
                "b": self.b, "delta": self.delta, "pointer_a": self.pointer_a,
                "pointer_b": self.pointer_b}


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _esc(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _list_keys(items: list, path: str, other: list | None) -> list[str] | None:
    """The identity key of each item (``train``), or None to match by position."""
    root = path.split(".")[0].split("[")[0]
    for field in _IDENTITY.get(root if root == path else "", _DEFAULT_IDENTITY):
        keys = []
        for lst in (items, other or []):
            ks = [it.get(field) for it in lst if isinstance(it, dict)]
            if len(ks) != len(lst) or any(not isinstance(k, (str, int)) or isinstance(k, bool)
                                          for k in ks) or len(set(ks)) != len(ks):
                break
            keys.append(ks)
        else:
            return [str(k) for k in keys[0]]
    return None


def flatten(value: Any, path: str = "", pointer: str = "", other: Any = None
            ) -> dict[str, tuple[str, Any]]:
    """``{display path: (JSON pointer, leaf value)}``; ``other`` is the same node of the other
    record, so that list items are keyed the same way on both sides."""
    out: dict[str, tuple[str, Any]] = {}
    if isinstance(value, dict):
        if not value:
            out[path] = (pointer or "/", value)
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            out.update(flatten(v, sub, f"{pointer}/{_esc(k)}",
                               other.get(k) if isinstance(other, dict) else None))
        return out
    if isinstance(value, list) and value and all(isinstance(it, dict) for it in value):
        keys = _list_keys(value, path, other if isinstance(other, list) else None)
        other_by_key: dict[str, Any] = {}
        if isinstance(other, list) and keys is not None:
            okeys = _list_keys(other, path, value)
            if okeys is not None:
                other_by_key = dict(zip(okeys, other, strict=True))
        for i, item in enumerate(value):
            key = keys[i] if keys is not None else str(i)
            o = other_by_key.get(key) if keys is not None else (
                other[i] if isinstance(other, list) and i < len(other) else None)
            out.update(flatten(item, f"{path}[{key}]", f"{pointer}/{i}", o))
        return out
    out[path] = (pointer or "/", value)
    return out


@dataclass
class LineageDiff:
    """Every changed field of B against A, and grouped summaries of them."""

    a: str
    b: str
    changes: list[FieldChange]

    def group(self, name: str) -> list[FieldChange]:
        return [c for c in self.changes if c.group == name]

    def groups(self) -> dict[str, list[FieldChange]]:
        out: dict[str, list[FieldChange]] = {}
        for g in GROUPS:
            found = self.group(g)
            if found:
                out[g] = found
        return out

    def summaries(self) -> dict[str, list[str]]:
        return {g: _summary(g, cs) for g, cs in self.groups().items()}

    def to_dict(self) -> dict:
        groups = self.groups()
        return {
            "schema": "mlreg/diff/v1", "a": self.a, "b": self.b,
            "changed_fields": len(self.changes),
            "unchanged_groups": [g for g in GROUPS if g not in groups and g != "other"],
            "groups": {g: {"summary": _summary(g, cs), "changes": [c.to_dict() for c in cs]}
                       for g, cs in groups.items()},
            "changes": [c.to_dict() for c in self.changes],
        }


def lineage_diff(a: Mapping[str, Any], b: Mapping[str, Any], *, label_a: str | None = None,
                 label_b: str | None = None) -> LineageDiff:
    """Every leaf that differs between records ``a`` and ``b`` (see the module docstring)."""
    fa = flatten(dict(a), other=dict(b))
    fb = flatten(dict(b), other=dict(a))
    changes = []
    order = list(fb) + [k for k in fa if k not in fb]
    for path in order:
        in_a, in_b = path in fa, path in fb
        va = fa[path][1] if in_a else None
        vb = fb[path][1] if in_b else None
        if in_a and in_b and _same(va, vb):
            continue
        top = path.split(".")[0].split("[")[0]
        status = "changed" if in_a and in_b else ("added" if in_b else "removed")
        changes.append(FieldChange(
            group=_GROUP_OF.get(top, "other"), path=path, status=status, a=va, b=vb,
            pointer_a=fa[path][0] if in_a else None, pointer_b=fb[path][0] if in_b else None))
    changes.sort(key=lambda c: GROUPS.index(c.group))
    la = label_a or f"{a.get('model')}@{a.get('version')}"
    lb = label_b or f"{b.get('model')}@{b.get('version')}"
    return LineageDiff(la, lb, changes)


def _same(x: Any, y: Any) -> bool:
    # 1 and 1.0 are the same number, True and 1 are not the same value.
    if isinstance(x, bool) or isinstance(y, bool):
        return type(x) is type(y) and x == y
    return x == y


def _show(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x if len(x) <= 80 else x[:77] + "..."
    return str(x)


def _item_changes(changes: list[FieldChange], prefix: str) -> dict[str, list[FieldChange]]:
    out: dict[str, list[FieldChange]] = {}
    for c in changes:
        if c.path.startswith(prefix + "["):
            key = c.path[len(prefix) + 1:].split("]", 1)[0]
            out.setdefault(key, []).append(c)
    return out


def _summary(group: str, changes: list[FieldChange]) -> list[str]:
    lines: list[str] = []
    if group in ("data", "features", "artifacts"):
        what = {"data": "snapshot", "features": "definition", "artifacts": "artifact"}[group]
        for key, cs in _item_changes(changes, group).items():
            statuses = {c.status for c in cs}
            if statuses == {"added"}:
                uri = next((c.b for c in cs if c.path.endswith("].uri")), None)
                lines.append(f"{what} {key} added" + (f": {uri}" if uri else ""))
            elif statuses == {"removed"}:
                uri = next((c.a for c in cs if c.path.endswith("].uri")), None)
                lines.append(f"{what} {key} removed" + (f": {uri}" if uri else ""))
            else:
                fields = ", ".join(f"{c.path.split('].', 1)[-1]} {_show(c.a)} -> {_show(c.b)}"
                                   for c in cs if c.path.split('].', 1)[-1] in
                                   ("uri", "version", "sha256", "version_id", "etag",
                                    "snapshot_id", "rows", "source"))
                lines.append(f"{what} {key} changed" + (f": {fields}" if fields else
                                                        f" ({len(cs)} field(s))"))
        return lines
    if group == "environment":
        pk = "environment.packages.list."
        added = [c for c in changes if c.path.startswith(pk) and c.status == "added"]
        removed = [c for c in changes if c.path.startswith(pk) and c.status == "removed"]
        changed = [c for c in changes if c.path.startswith(pk) and c.status == "changed"]
        if added:
            lines.append("packages added: " + ", ".join(
                f"{c.path[len(pk):]}=={c.b}" for c in added))
        if removed:
            lines.append("packages removed: " + ", ".join(
                f"{c.path[len(pk):]}=={c.a}" for c in removed))
        if changed:
            lines.append("packages changed: " + ", ".join(
                f"{c.path[len(pk):]} {c.a} -> {c.b}" for c in changed))
        for c in changes:
            if not c.path.startswith(pk):
                lines.append(f"{c.path.removeprefix('environment.')}: {_show(c.a)} -> "
                             f"{_show(c.b)}")
        return lines
    for c in changes:
        d = c.delta
        extra = f" ({d:+.6g})" if d is not None and group in ("metrics", "operational",
                                                                "hyperparameters") else ""
        path = c.path.split(".", 1)[1] if "." in c.path and group != "identity" else c.path
        lines.append(f"{path}: {_show(c.a)} -> {_show(c.b)}{extra}")
    return lines
