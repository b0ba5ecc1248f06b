"""What a change asks for: file kinds and the promotions a service change becomes (pure)."""

from __future__ import annotations

import pytest

from mlreg.gitops.changes import (
    ServiceChange,
    classify_path,
    file_changes,
    plan_promotions,
    service_changes,
)

MANIFESTS = ["production.yaml"]


@pytest.mark.parametrize("path,kind", [
    ("production.yaml", "manifest"), ("mlreg.yaml", "settings"),
    ("policies/default.yaml", "policy"), ("models/fraud/127.yaml", "record"),
    ("models/fraud/model.yaml", "model"), ("models/fraud/online/ab-2024-02.yaml", "online"),
    ("README.md", "other"), ("src/train.py", "other"), (".github/workflows/x.yml", "other"),
])
def test_classify(path: str, kind: str) -> None:
    assert classify_path(path, MANIFESTS)[0] == kind


def test_file_changes_statuses() -> None:
    base = {"a.yaml": "1", "models/m/1.yaml": "2", "models/m/2.yaml": "3"}
    head = {"a.yaml": "1", "models/m/1.yaml": "9", "models/m/3.yaml": "4"}
    got = [(c.path, c.status, c.kind) for c in file_changes(base, head, MANIFESTS)]
    assert got == [("models/m/1.yaml", "modified", "record"),
                   ("models/m/2.yaml", "deleted", "record"),
                   ("models/m/3.yaml", "added", "record")]


def _svc(stable: str, canary: str | None = None, pct: float | None = None, model: str = "fraud",
         **extra: str) -> dict:
    e = {"model": model, "stable": stable, **extra}
    if canary:
        e["canary"] = {"version": canary, "percent": pct}
    return e


def _plan(before, after, served=()):
    return [(p.change, p.mode, p.from_version, p.to_version, p.canary_percent)
            for p in plan_promotions(ServiceChange("s", before, after),
                                     lambda m, v: f"{m}@{v}" in served)]


def test_promotions_from_service_changes() -> None:
    assert _plan(None, _svc("1")) == [("bootstrap", "bootstrap", None, "1", None)]
    assert _plan(_svc("1"), _svc("2")) == [("stable", "promotion", "1", "2", None)]
    assert _plan(_svc("1"), _svc("1", "2", 5)) == [("canary", "promotion", "1", "2", 5.0)]
    assert _plan(_svc("1", "2", 5), _svc("1", "2", 50)) == [("canary", "promotion", "1", "2",
                                                             50.0)]
    # The canary withdrawn: the stable keeps serving alone, judged as a rollback.
    assert _plan(_svc("1", "2", 5), _svc("1")) == [("canary-removed", "rollback", "2", "1", None)]
    # The canary becomes stable: a promotion with every gate, even if it once served as stable.
    assert _plan(_svc("1", "2", 5), _svc("2"), served={"fraud@2"}) == [
        ("stable", "promotion", "1", "2", None)]
    # Back to a version that was stable before: a rollback.
    assert _plan(_svc("3"), _svc("2"), served={"fraud@2", "fraud@3"}) == [
        ("stable", "rollback", "3", "2", None)]
    # Only the target changed: re-gated for the new target; only a surface: nothing to gate.
    assert _plan(_svc("1", target="server"), _svc("1", target="mobile")) == [
        ("target", "promotion", "1", "1", None)]
    assert _plan(_svc("1", surface="a"), _svc("1", surface="b")) == []
    assert _plan(_svc("1"), None) == []


def test_service_changes_ignore_what_only_base_changed() -> None:
    mb = {"a": _svc("1"), "b": _svc("1")}
    base = {"a": _svc("1"), "b": _svc("5")}  # b moved on main after the branch point
    head = {"a": _svc("2"), "b": _svc("1")}  # the branch changed a only
    got = service_changes(base, head, mb)
    assert [(c.service, c.before["stable"], c.after["stable"]) for c in got] == [("a", "1", "2")]
    assert [c.service for c in service_changes(base, head)] == ["a", "b"]
