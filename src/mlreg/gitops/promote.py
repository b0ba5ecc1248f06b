"""``promote``: a branch, one commit that edits one service's manifest entry, a push, a PR.

    outcome = promote("registry/", "fraud-scoring", "fraud@127", canary=5)
    outcome.action        # "created" | "existing" | "noop"
    outcome.published     # branch, commit, pushed, PR number and URL

Rules (the pure part is :func:`plan_state`):

* the version must exist on the main revision (merge its record first);
* ``canary=P`` sets ``canary: {version, percent: P}`` and keeps the stable; a new service or a
  different model cannot start with a canary;
* promoting the canary's version without ``canary`` makes it stable and removes the canary;
  promoting another model removes the canary (a canary names a version of the service's model);
* promoting what already serves is a no-op (``action="noop"``, exit 0): the desired state holds.

Nothing is checked out: the commit is built from the main revision's tree (see
:mod:`mlreg.gitops.gitutil`), so the working tree, index and HEAD are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlreg.errors import InputError, NotFound, RegistryError
from mlreg.gitops.branches import (
    MainRevision,
    Published,
    env_or_os,
    main_revision,
    publish,
    settings_of,
)
from mlreg.gitops.forgeconf import forge_from_settings, web_url
from mlreg.gitops.gitutil import BlobReader, commit_files, registry_location
from mlreg.gitops.manifest import ServiceState, edit_service, entry_state, services_of
from mlreg.names import check_name, parse_ref
from mlreg.reports.markdown_safe import code_span, escape_md

__all__ = ["PromoteOutcome", "plan_state", "promote", "branch_name", "lineage_summary"]


@dataclass
class PromoteOutcome:
    action: str  # created | existing | noop
    service: str
    model: str
    version: str
    before: ServiceState | None
    after: ServiceState
    main: MainRevision
    manifest: str
    title: str
    published: Published | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "action": self.action, "service": self.service, "model": self.model,
            "version": self.version,
            "before": self.before.describe() if self.before else None,
            "after": self.after.describe(), "main": self.main.ref,
            "main_commit": self.main.commit, "manifest": self.manifest, "title": self.title,
            "published": self.published.to_dict() if self.published else None,
            "notes": self.notes,
        }


def plan_state(current: ServiceState | None, model: str, version: str,
               canary: float | None) -> tuple[ServiceState, list[str]]:
    """The service's state after the promotion, and notes on what else changed (pure)."""
    notes: list[str] = []
    if canary is not None:
        if not 0 < canary <= 100:
            raise InputError(f"--canary {canary:g}: a canary share is a percent in (0, 100]")
        if current is None:
            raise RegistryError("a new service starts with a stable version, not a canary "
                                "(promote without --canary first)")
        if model != current.model:
            raise RegistryError(f"the service serves model {current.model}; a canary is a "
                                f"version of that model, not of {model}")
        if version == current.stable:
            raise RegistryError(f"{model}@{version} is already the stable version")
        return ServiceState(model, current.stable, version, float(canary)), notes
    if current is None:
        return ServiceState(model, version), ["a new service (bootstrap)"]
    if model != current.model:
        if current.canary:
            notes.append(f"the canary {current.model}@{current.canary} is removed (another "
                         "model takes over)")
        return ServiceState(model, version), notes
    if current.canary == version:
        notes.append(f"the canary {model}@{version} becomes stable; the canary is removed")
        return ServiceState(model, version), notes
    if current.canary:
        notes.append(f"the canary {model}@{current.canary} at {current.canary_percent:g}% "
                     "keeps running")
        return ServiceState(model, version, current.canary, current.canary_percent), notes
    return ServiceState(model, version), notes


def branch_name(service: str, model: str, version: str, canary: float | None) -> str:
    name = f"mlreg/promote/{service}-{model}-{version}"
    if canary is not None:
        name += f"-canary{canary:g}"
    return name


def _title(service: str, model: str, version: str, canary: float | None,
           before: ServiceState | None) -> str:
    if canary is not None:
        return f"Promote {model}@{version} to {service} as a {canary:g}% canary"
    if before is None:
        return f"Deploy {model}@{version} to the new service {service}"
    return f"Promote {model}@{version} to {service}"


def promote(path: str, service: str, ref: str, *, canary: float | None = None,
            reason: str | None = None, forge: Any = "auto",
            env: Mapping[str, str] | None = None) -> PromoteOutcome:
    """Open the promotion of ``ref`` (MODEL@VERSION) to ``service``; see the module docstring.

    ``forge="auto"`` builds one from ``mlreg.yaml`` and the token in the environment; pass a
    forge object (tests) or None (never open a PR).
    """
    from mlreg.registry import Registry

    check_name(service, "service")
    parsed = parse_ref(ref)
    if parsed.model is None or parsed.version is None:
        raise InputError(f"{ref!r}: name a version to promote, MODEL@VERSION")
    loc = registry_location(path)
    settings = settings_of(path)
    main = main_revision(loc, settings)
    with Registry.open(path, main.commit) as reg:
        resolved = reg.resolve(f"{parsed.model}@{parsed.version}") if \
            parsed.version == "latest" or parsed.version in reg.versions(parsed.model) else None
        if resolved is None:
            raise NotFound(f"{parsed.model}@{parsed.version} is not on {main.ref}: merge its "
                           f"record (models/{parsed.model}/{parsed.version}.yaml) first")
        model, version = resolved.model, resolved.version
        record = reg.record(model, version)
        record_path = reg.record_path(model, version)
        deployments = reg.deployments()
        dep = deployments.get(service)
        manifest = dep.manifest if dep else reg.manifests()[0]
        settings_main = dict(reg.settings())
    with BlobReader(loc.repo) as reader:
        raw = reader.read(main.commit, loc.path(manifest))
    if raw is None:
        raw = b"schema: mlreg/deployments/v1\nservices: {}\n"
    text = raw.decode("utf-8")
    current = entry_state(services_of(text, manifest).get(service))
    after, notes = plan_state(current, model, version, canary)
    title = _title(service, model, version, canary, current)
    out = PromoteOutcome("noop", service, model, version, current, after, main, manifest, title,
                         notes=notes)
    if current == after:
        out.notes = [f"{service} already serves {after.describe()} on {main.ref}: nothing to "
                     "promote"]
        return out
    new_text = edit_service(text, service, after, path=manifest)
    manifest_path = loc.path(manifest)
    message = _message(title, service, current, after, record_path, reason, notes)

    def holds_change(commit: str) -> bool:
        with BlobReader(loc.repo) as r:
            data = r.read(commit, manifest_path)
        try:
            return data is not None and entry_state(services_of(data, manifest).get(service)) \
                == after
        except InputError:
            return False

    if forge == "auto":
        forge_obj, forge_note = forge_from_settings(settings_main or settings, env_or_os(env))
    else:
        forge_obj, forge_note = forge, "the forge given" if forge is not None else "no forge"
    branch = branch_name(service, model, version, canary)
    body = _body(title, service, current, after, model, version, record, record_path, reason,
                 notes, settings_main or settings, branch)
    out.published = publish(
        loc, main, branch,
        make_commit=lambda: commit_files(loc.repo, main.commit,
                                         {manifest_path: new_text.encode("utf-8")}, message),
        holds_change=holds_change, allowed_paths={manifest_path}, title=title, body=body,
        forge=forge_obj, forge_note=forge_note)
    out.action = "existing" if out.published.reused else "created"
    return out


def _message(title: str, service: str, before: ServiceState | None, after: ServiceState,
             record_path: str, reason: str | None, notes: list[str]) -> str:
    lines = [title, "", f"Service: {service}",
             f"Before: {before.describe() if before else 'not deployed'}",
             f"After: {after.describe()}", f"Record: {record_path}"]
    lines += [f"Note: {n}" for n in notes]
    if reason:
        lines += ["", f"Reason: {' '.join(reason.split())}"]
    return "\n".join(lines) + "\n"


def lineage_summary(record: Mapping[str, Any]) -> list[str]:
    """Markdown lines summarizing a record's lineage (every value escaped)."""
    e = escape_md
    lines = []
    code = record.get("code") or {}
    lines.append(f"- **code**: {e(code.get('repository', '–'))} at "
                 f"{code_span(str(code.get('commit', '–'))[:40], in_table=False)}"
                 + (" (**dirty**)" if code.get("dirty") else ""))
    for d in (record.get("data") or [])[:10]:
        ident = next((f"{k} {code_span(str(d[k])[:64], in_table=False)}" for k in
                      ("sha256", "version_id", "etag", "snapshot_id") if d.get(k)), "no identity")
        rows = f", {d['rows']:,} rows" if isinstance(d.get("rows"), int) else ""
        lines.append(f"- **data** ({e(d.get('role', '?'))}): {e(d.get('uri', '–'), max_chars=200)}"
                     f" · {ident}{rows}" + ("" if d.get("immutable") else " · **not immutable**"))
    feats = record.get("features") or []
    if feats:
        shown = ", ".join(
            e(f.get("name", "?")) + (f" v{e(f['version'])}" if f.get("version") else "")
            for f in feats[:15])
        more = f" and {len(feats) - 15} more" if len(feats) > 15 else ""
        lines.append(f"- **features** ({len(feats)}): {shown}{more}")
    hp = record.get("hyperparameters") or {}
    if hp:
        shown = ", ".join(f"{e(k)}={e(v, max_chars=60)}" for k, v in list(hp.items())[:20])
        lines.append(f"- **hyperparameters**: {shown}" + (" …" if len(hp) > 20 else ""))
    env = record.get("environment") or {}
    pk = env.get("packages") or {}
    py = (env.get("python") or {}).get("version")
    parts = []
    if py:
        parts.append(f"Python {e(py)}")
    if pk.get("sha256"):
        parts.append(f"packages sha256 {code_span(pk['sha256'][:16], in_table=False)}… "
                     f"({pk.get('count', '?')} packages)")
    if env.get("container_image"):
        parts.append(f"image {code_span(env['container_image'][-80:], in_table=False)}")
    if parts:
        lines.append("- **environment**: " + " · ".join(parts))
    gpu = (record.get("hardware") or {}).get("gpu") or {}
    if gpu.get("present"):
        lines.append(f"- **hardware**: {gpu.get('count', 1)} × {e(gpu.get('type', 'GPU'))}")
    ev = record.get("evaluation") or {}
    if ev.get("snapshot"):
        lines.append(f"- **evaluation**: {e((ev['snapshot'] or {}).get('uri', '–'), max_chars=200)}")
    if record.get("parent"):
        lines.append(f"- **parent**: {e(record['model'])}@{e(record['parent'])}")
    return lines


def _body(title: str, service: str, before: ServiceState | None, after: ServiceState, model: str,
          version: str, record: Mapping[str, Any], record_path: str, reason: str | None,
          notes: list[str], settings: Mapping[str, Any], branch: str) -> str:
    e = escape_md
    web = web_url(settings)
    link = (f"[{e(record_path)}]({web}/blob/{settings.get('main_branch') or 'main'}/"
            f"{record_path})" if web else code_span(record_path, in_table=False))
    lines = [f"## {e(title)}", "",
             "| | |", "|---|---|",
             f"| service | {e(service)} |",
             f"| before | {e(before.describe()) if before else 'not deployed (bootstrap)'} |",
             f"| after | {e(after.describe())} |",
             f"| record | {link} |", ""]
    if reason:
        lines += [f"**Reason:** {e(reason, max_chars=1000)}", ""]
    lines += [f"- {e(n)}" for n in notes]
    lines += ["", f"### Lineage of {e(model)}@{e(version)}", "", *lineage_summary(record), "",
              "The gate workflow evaluates this change against what serves at the base branch "
              "and posts the slice tables here. Merging is the approval; reverting the merge "
              f"commit (`mlreg rollback {service}`) is the rollback.", "",
              f"<sub>Opened by mlreg from branch {code_span(branch, in_table=False)}.</sub>"]
    return "\n".join(lines) + "\n"
