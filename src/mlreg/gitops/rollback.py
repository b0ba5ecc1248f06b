"""``rollback``: revert the commit that put a service's current version in place, as a PR.

    outcome = rollback("registry/", "fraud-scoring", reason="p99 latency spike")
    outcome.target           # the promotion commit being reverted
    outcome.published        # branch, commit, PR

The promotion commit is the latest commit on the main branch's first-parent history that changed
the service's manifest entry (with squash merges: the promotion PR's commit). The revert is
git's: a three-way merge (``git merge-file``) of the manifest with the promotion commit as base
and its first parent as the other side (``git revert -m 1`` for a merge commit), and a message
carrying git's own ``This reverts commit <sha>.`` line plus the reason. Only the deployment
manifest is reverted: records that commit added stay (merged records are immutable).

Refused, with the commit named: a promotion superseded by a later change to the same service
(``commit=`` an older one); a latest change that is itself a rollback (roll forward with
``mlreg promote`` instead); a commit that changed other services as well (reverting it would roll
them back too); a revert that conflicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlreg.errors import NotFound, RegistryError
from mlreg.gitops.branches import (
    MainRevision,
    Published,
    env_or_os,
    main_revision,
    publish,
    settings_of,
)
from mlreg.gitops.forgeconf import forge_from_settings
from mlreg.gitops.gitutil import (
    BlobReader,
    commit_files,
    commit_message,
    merge_file,
    parents,
    registry_location,
    rev_parse,
)
from mlreg.gitops.history import ServiceChangeCommit, service_changes
from mlreg.gitops.manifest import ServiceState, entry_state, services_of
from mlreg.names import check_name
from mlreg.reports.markdown_safe import code_span, escape_md

__all__ = ["RollbackOutcome", "rollback", "find_promotion", "REVERT_LINE"]

REVERT_LINE = "This reverts commit {sha}."


@dataclass
class RollbackOutcome:
    service: str
    target: str  # the commit being reverted
    target_subject: str
    current: ServiceState | None
    restored: ServiceState | None
    main: MainRevision
    message: str
    title: str
    published: Published | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "service": self.service, "reverts": self.target, "reverts_subject": self.target_subject,
            "current": self.current.describe() if self.current else None,
            "restored": self.restored.describe() if self.restored else None,
            "main": self.main.ref, "main_commit": self.main.commit, "title": self.title,
            "message": self.message,
            "published": self.published.to_dict() if self.published else None,
            "notes": self.notes,
        }


def _subject(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""


def find_promotion(history: list[ServiceChangeCommit], service: str, commit: str | None,
                   messages: Mapping[str, str]) -> ServiceChangeCommit:
    """The change to revert (pure): the latest, or ``commit`` if nothing superseded it."""
    if not history:
        raise NotFound(f"service {service!r} has no history on the main branch")
    if commit is None:
        target = history[0]
        msg = messages.get(target.commit, "")
        if "This reverts commit " in msg:
            raise RegistryError(
                f"the latest change to {service} ({target.commit[:12]}: "
                f"{_subject(msg)!r}) is already a rollback; to go further back, promote the "
                "version you want (mlreg promote SERVICE MODEL@VERSION): the gate treats a "
                "version that served before as a rollback")
        return target
    for i, change in enumerate(history):
        if change.commit == commit:
            if i > 0:
                later = history[i - 1]
                raise RegistryError(
                    f"commit {commit[:12]} was superseded: {later.commit[:12]} "
                    f"({_subject(messages.get(later.commit, ''))!r}) changed {service} again "
                    f"afterwards{f' (and {i - 1} later change(s))' if i > 1 else ''}; "
                    "reverting it now would not restore what it replaced")
            return change
    raise RegistryError(f"commit {commit[:12]} did not change service {service} on the main "
                        "branch's history")


def rollback(path: str, service: str, *, reason: str | None = None, commit: str | None = None,
             forge: Any = "auto", env: Mapping[str, str] | None = None) -> RollbackOutcome:
    """Open the rollback of ``service``; see the module docstring."""
    from mlreg.registry import Registry

    check_name(service, "service")
    loc = registry_location(path)
    settings = settings_of(path)
    main = main_revision(loc, settings)
    with Registry.open(path, main.commit) as reg:
        manifests = reg.manifests()
        settings_main = dict(reg.settings())
        deps = reg.deployments()
    if service not in deps:
        raise NotFound(f"service {service!r} is not deployed on {main.ref} "
                       f"(services: {', '.join(sorted(deps)) or 'none'})")
    paths = [loc.path(m) for m in manifests]
    history = service_changes(loc.repo, main.commit, paths, service)
    wanted = None
    if commit is not None:
        wanted = rev_parse(loc.repo, commit)
        if wanted is None:
            raise NotFound(f"commit {commit!r} not found")
    messages = {h.commit: commit_message(loc.repo, h.commit) for h in history[:50]}
    if wanted is not None and wanted not in messages:
        messages[wanted] = commit_message(loc.repo, wanted)
    target = find_promotion(history, service, wanted, messages)
    if target.before is None:
        raise RegistryError(f"{target.commit[:12]} created service {service}; a rollback would "
                            "remove it: remove a service with a reviewed change instead")
    if target.parent is None:
        raise RegistryError(f"{target.commit[:12]} is the first commit; nothing to revert to")
    ps = parents(loc.repo, target.commit)
    files: dict[str, bytes] = {}
    with BlobReader(loc.repo) as reader:
        for mpath in paths:
            at_commit = reader.read(target.commit, mpath)
            at_parent = reader.read(target.parent, mpath)
            if at_commit == at_parent:
                continue
            before_s = services_of(at_parent or b"services: {}\n", mpath)
            after_s = services_of(at_commit or b"services: {}\n", mpath)
            others = sorted(s for s in set(before_s) | set(after_s)
                            if s != service and before_s.get(s) != after_s.get(s))
            if others:
                raise RegistryError(
                    f"{target.commit[:12]} changed {service} and also {', '.join(others)}: "
                    f"reverting it would roll those back too; promote {service}'s previous "
                    "version instead (mlreg promote SERVICE MODEL@VERSION)")
            ours = reader.read(main.commit, mpath)
            if ours is None or at_commit is None or at_parent is None:
                raise RegistryError(f"{mpath} was created or deleted by {target.commit[:12]}: "
                                    "not a promotion to revert")
            merged, conflicts = merge_file(ours, at_commit, at_parent,
                                           (main.ref, target.commit[:12], "parent"))
            if conflicts:
                raise RegistryError(
                    f"reverting {target.commit[:12]} conflicts with later changes in {mpath} "
                    f"({conflicts} conflict(s)): keep one block per service, separated by a "
                    "blank line, so that services never share lines")
            files[mpath] = merged
    restored_entry = None
    for mpath, data in files.items():
        restored_entry = services_of(data, mpath).get(service) or restored_entry
    restored = entry_state(restored_entry)
    if _norm(restored_entry) != _norm(target.before):
        raise RegistryError(f"reverting {target.commit[:12]} would not restore {service} as it "
                            "was before that commit; promote the previous version instead")
    current = entry_state(deps[service].to_dict() | {
        "canary": {"version": deps[service].canary, "percent": deps[service].canary_percent}
        if deps[service].canary else None})
    original = commit_message(loc.repo, target.commit)
    subject = _subject(original)
    message = _message(subject, target.commit, ps, service, current, restored, reason)
    title = (f"Roll back {service}: {current.describe() if current else '?'} → "
             f"{restored.describe() if restored else '?'}")
    out = RollbackOutcome(service, target.commit, subject, current, restored, main, message,
                          title)
    touched = set(_touched(loc.repo, target.commit, target.parent))
    kept = sorted(touched - set(paths))
    if kept:
        out.notes.append(f"only the deployment manifest is reverted; {len(kept)} other file(s) "
                         f"{target.commit[:12]} changed stay (merged records are immutable)")

    def holds_change(commit: str) -> bool:
        with BlobReader(loc.repo) as r:
            for mpath in files:
                data = r.read(commit, mpath)
                try:
                    if data is None or _norm(services_of(data, mpath).get(service)) != \
                            _norm(target.before):
                        return False
                except Exception:  # noqa: BLE001 - an unreadable tip is "not ours"
                    return False
        return True

    if forge == "auto":
        forge_obj, forge_note = forge_from_settings(settings_main or settings, env_or_os(env))
    else:
        forge_obj, forge_note = forge, "the forge given" if forge is not None else "no forge"
    branch = f"mlreg/rollback/{service}-{target.commit[:12]}"
    body = _body(title, service, target.commit, subject, current, restored, reason, out.notes)
    out.published = publish(
        loc, main, branch,
        make_commit=lambda: commit_files(loc.repo, main.commit, files, message),
        holds_change=holds_change, allowed_paths=set(files), title=title, body=body,
        forge=forge_obj, forge_note=forge_note)
    return out


def _touched(repo: str, commit: str, parent: str) -> list[str]:
    from mlreg.gitops.branches import changed_paths

    return changed_paths(repo, commit, parent)


def _norm(entry: Mapping[str, Any] | None) -> Any:
    from mlreg.gitops.changes import _norm as norm

    return norm(entry)


def _message(subject: str, sha: str, ps: list[str], service: str, current: ServiceState | None,
             restored: ServiceState | None, reason: str | None) -> str:
    # git revert's own wording (sequencer.c): the subject line and the "This reverts" line.
    if len(ps) > 1:
        reverts = f"This reverts commit {sha}, reversing\nchanges made to {ps[0]}."
    else:
        reverts = REVERT_LINE.format(sha=sha)
    lines = [f'Revert "{subject}"', "", reverts, "",
             f"Roll back {service}: {current.describe() if current else '?'} -> "
             f"{restored.describe() if restored else '?'}"]
    if reason:
        lines.append(f"Reason: {' '.join(reason.split())}")
    return "\n".join(lines) + "\n"


def _body(title: str, service: str, sha: str, subject: str, current: ServiceState | None,
          restored: ServiceState | None, reason: str | None, notes: list[str]) -> str:
    e = escape_md
    lines = [f"## {e(title)}", "",
             f"Reverts {code_span(sha[:12], in_table=False)} ({e(subject, max_chars=200)}).", "",
             "| | |", "|---|---|",
             f"| service | {e(service)} |",
             f"| serving now | {e(current.describe()) if current else '–'} |",
             f"| after the rollback | {e(restored.describe()) if restored else '–'} |", ""]
    if reason:
        lines += [f"**Reason:** {e(reason, max_chars=1000)}", ""]
    lines += [f"- {e(n)}" for n in notes]
    lines += ["", "The gate treats a return to a version that served before as a rollback: only "
              "the policy's rollback gates (integrity and lineage by default) block."]
    return "\n".join(lines) + "\n"
