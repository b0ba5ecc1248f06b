"""The I/O-level calls behind ``mlreg diff`` and ``mlreg online``: resolve names in a registry,
read records and online results, then call the pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlreg.errors import InputError, NotFound
from mlreg.history.diff import lineage_diff
from mlreg.history.online import build_online, online_results, write_online

__all__ = ["resolve_pair", "diff_refs", "online_table", "record_online", "OnlineTarget",
           "resolve_online_target"]


def resolve_pair(registry: Any, a: str, b: str | None) -> tuple[tuple[str, str], tuple[str, str],
                                                                  str | None]:
    """Two (model, version) pairs from ``A B`` (each MODEL@VERSION, MODEL@latest or a service's
    stable), or from a service alone: its stable against its canary. Also a note on what was
    chosen, or None."""
    ra = registry.resolve(a)
    if b is None:
        dep = ra.deployment
        if dep is None:
            raise InputError(f"name two versions to compare (e.g. {a} {ra.model}@latest), or a "
                             "service with a canary")
        if not dep.canary:
            raise InputError(f"service {a!r} has no canary; name a second version to compare "
                             f"{ra.model}@{ra.version} with")
        return ((dep.model, dep.stable), (dep.model, dep.canary),
                f"service {a}: stable {dep.stable} vs canary {dep.canary} at "
                f"{dep.canary_percent:g}%")
    rb = registry.resolve(b)
    return (ra.model, ra.version), (rb.model, rb.version), None


def online_table(results: Sequence[Mapping[str, Any]], versions: Sequence[tuple[str, str]]
                 ) -> list[dict]:
    """Online results of the given versions, one row per (version, experiment)."""
    rows = []
    wanted = set(versions)
    for r in results:
        if (r.get("model"), r.get("version")) in wanted:
            rows.append({k: r.get(k) for k in ("model", "version", "experiment", "service",
                                               "surface", "baseline", "traffic_percent",
                                               "start", "end", "metrics", "path")})
    return rows


def diff_refs(registry: Any, a: str, b: str | None = None) -> dict:
    """The lineage diff of two versions (:func:`resolve_pair`), with both versions' online
    results beside it (``mlreg/diff/v1``)."""
    (ma, va), (mb, vb), note = resolve_pair(registry, a, b)
    rec_a = registry.record(ma, va)
    rec_b = registry.record(mb, vb)
    out = lineage_diff(rec_a, rec_b).to_dict()
    out["note"] = note
    models = {ma, mb}
    results = [r for m in sorted(models) for r in online_results(registry, m)]
    out["online"] = online_table(results, [(ma, va), (mb, vb)])
    return out


@dataclass(frozen=True)
class OnlineTarget:
    model: str
    version: str
    service: str
    surface: str | None
    baseline: str | None
    note: str | None


def resolve_online_target(registry: Any, name: str, service: str | None) -> OnlineTarget:
    """The version an online result is for. NAME is MODEL@VERSION (``--service`` required
    unless exactly one service runs that model), or a SERVICE: its canary when it has one (an
    online experiment usually measures the canary against the stable), else its stable."""
    deps = registry.deployments()
    if "@" not in name:
        dep = deps.get(name)
        if dep is None:
            raise NotFound(f"{name!r} is not a service in the deployment manifest; name the "
                           "version as MODEL@VERSION")
        if service is not None and service != name:
            raise InputError(f"{name} is a service; --service {service} names another one")
        version = dep.canary or dep.stable
        note = (f"{name}: the canary {dep.model}@{dep.canary}" if dep.canary
                else f"{name}: the stable {dep.model}@{dep.stable} (no canary)")
        return OnlineTarget(dep.model, version, name, dep.surface,
                            dep.stable if dep.canary else None, note)
    resolved = registry.resolve(name)
    if service is None:
        running = sorted(s for s, d in deps.items() if d.model == resolved.model)
        if len(running) != 1:
            raise InputError(f"name the service the experiment ran on (--service); "
                             f"{resolved.model} serves: {', '.join(running) or 'none'}")
        service = running[0]
    dep = deps.get(service)
    baseline = None
    if dep is not None and dep.model == resolved.model and dep.stable != resolved.version:
        baseline = dep.stable
    return OnlineTarget(resolved.model, resolved.version, service,
                        dep.surface if dep is not None else None, baseline,
                        None if dep is not None else
                        f"service {service!r} is not in the deployment manifest now")


def record_online(registry: Any, name: str, *, experiment: str, service: str | None,
                  metrics: Mapping[str, float], intervals: Mapping[str, Sequence[float]]
                  | None = None, traffic_percent: float | None = None,
                  start: str | None = None, end: str | None = None,
                  baseline: str | None = None, source: str | None = None,
                  notes: str | None = None, recorded_by: str | None = None
                  ) -> tuple[str, dict, OnlineTarget]:
    """Validate and write one online result into a working-tree registry; returns (path,
    document, target). Refuses to overwrite an existing result."""
    if registry.root is None:
        raise InputError("online results are written to a working tree, not a revision")
    target = resolve_online_target(registry, name, service)
    doc = build_online(model=target.model, version=target.version, experiment=experiment,
                       service=target.service, metrics=metrics, intervals=intervals,
                       traffic_percent=traffic_percent, start=start, end=end,
                       baseline=baseline or target.baseline, surface=target.surface,
                       source=source, notes=notes, recorded_by=recorded_by)
    return write_online(registry.root, doc), doc, target
