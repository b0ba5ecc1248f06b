"""The PR gate: evaluate everything a pull request changes between two revisions, from git alone.

    result = gate_revisions("path/to/registry", base="origin/main", head="HEAD")
    result.verdict           # "pass" | "fail"
    result.to_json_dict()    # schema mlreg/pr-gate/v1 (see mlreg.gitops.prresult)

Both trees are read through git (no checkout). The changes are those of ``head`` since its merge
base with ``base`` (what the PR did, even when its branch is behind), judged against what serves
at ``base``:

* a new record is validated (the whole head registry must validate: an invalid file is exit 2,
  listing every problem) and lineage-gated, unless the PR also promotes it (then the promotion's
  gate covers it);
* an edited or deleted record that exists at base is refused, naming the file: merged records
  are immutable (an online fact file may only grow by appending);
* each changed service in the deployment manifest becomes promotions
  (:func:`mlreg.gitops.changes.plan_promotions`), each gated by
  :func:`mlreg.gates.gate_promotion` with the registry at ``head`` as the candidate side and the
  registry at ``base`` as the baseline side and the rules in force; a canary at base made stable
  is also judged by the policy's online gates on its online results read from ``head`` (a PR
  may add the result it promotes on; :mod:`mlreg.gates.online`);
* a PR that changes nothing the registry cares about passes and says so.

A shallow clone, a revision that cannot be found, or revisions without a common history raise
InputError (exit 2): never a silent pass.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlreg import __version__
from mlreg.errors import InputError, NotFound, RegistryError
from mlreg.gitio import GitTree, resolve_commit
from mlreg.gitops.changes import (
    FileChange,
    PlannedPromotion,
    file_changes,
    plan_promotions,
    service_changes,
)
from mlreg.gitops.gitutil import BlobReader, check_full_history, merge_base, registry_location
from mlreg.gitops.history import stable_versions_served
from mlreg.registry import SETTINGS_FILE, Registry

__all__ = ["ChangeOutcome", "PRGateResult", "InvalidHead", "gate_revisions"]


class InvalidHead(InputError):
    """Files at the head revision do not validate; ``problems`` lists every one."""

    def __init__(self, rev: str, problems: list[Any]) -> None:
        self.rev = rev
        self.problems = problems
        files = sorted({p.file for p in problems})
        shown = "; ".join(f"{p.file} {p.path}: {p.message}" for p in problems[:10])
        more = f"; ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} problem(s) in {len(files)} file(s) at {rev}: "
                         f"{shown}{more}")

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "message": str(self),
                "problems": [p.to_dict() for p in self.problems]}


@dataclass
class ChangeOutcome:
    """One change of the PR and what the gate says about it.

    ``kind``: record, online, model, policy, settings, manifest (a file) or promotion (a service);
    ``verdict``: pass, fail (blocks) or info (shown, e.g. a policy edit reviewed by its owners);
    ``result`` indexes ``PRGateResult.results`` when a gate ran for it.
    """

    kind: str
    subject: str
    status: str
    verdict: str
    reason: str
    result: int | None = None
    promotion: PlannedPromotion | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "subject": self.subject, "status": self.status,
                "verdict": self.verdict, "reason": self.reason, "result": self.result,
                "promotion": self.promotion.to_dict() if self.promotion else None}


@dataclass
class PRGateResult:
    """Everything the PR gate decided. ``verdict`` is fail when any change fails."""

    base_rev: str
    base_commit: str
    head_rev: str
    head_commit: str
    merge_base: str
    changes: list[ChangeOutcome] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # GateResult objects
    ignored: int = 0  # files outside the registry's concern
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "fail" if any(c.verdict == "fail" for c in self.changes) else "pass"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_json_dict(self) -> dict:
        from mlreg.gitops.prresult import pr_document

        return pr_document(self)


def _entries(repo: str, commit: str, prefix: str) -> dict[str, str]:
    tree = GitTree(repo, commit)
    try:
        n = len(prefix)
        return {p[n:]: e.blob for p, e in tree.entries().items() if p.startswith(prefix)}
    finally:
        tree.close()


def _open(path: str, rev: str) -> Registry | None:
    try:
        return Registry.open(path, rev)
    except NotFound as exc:
        if "not an mlreg registry" in str(exc):
            return None
        raise


def _services(reg: Registry | None) -> dict[str, dict]:
    if reg is None:
        return {}
    out = {}
    for name, dep in reg.deployments().items():
        entry: dict[str, Any] = {"model": dep.model, "stable": dep.stable}
        if dep.canary:
            entry["canary"] = {"version": dep.canary, "percent": dep.canary_percent}
        if dep.target is not None:
            entry["target"] = dep.target
        if dep.surface is not None:
            entry["surface"] = dep.surface
        out[name] = entry
    return out


def _manifests(reg: Registry | None) -> list[str]:
    if reg is None:
        return []
    try:
        return reg.manifests()
    except InputError:
        return ["production.yaml"]


def gate_revisions(path: str, base: str, head: str, *, files: Any = None) -> PRGateResult:
    """Gate the changes of ``head`` (since its merge base with ``base``) against ``base``.

    ``path`` is the registry directory (in a git work tree; nothing is checked out). ``files``
    is passed to :func:`mlreg.gates.gate_promotion` (tests inject a store).
    """
    from mlreg.validate import validate_registry

    loc = registry_location(path)
    check_full_history(loc.repo)
    base_commit = resolve_commit(path, base)
    head_commit = resolve_commit(path, head)
    mb = merge_base(loc.repo, base_commit, head_commit)
    if mb is None:
        raise RegistryError(f"{base} and {head} share no history: cannot tell what {head} "
                            "changes (fetch the full history of both)")
    head_reg = _open(path, head_commit)
    if head_reg is None:
        raise NotFound(f"{head}: not an mlreg registry (no {SETTINGS_FILE} at "
                       f"{loc.prefix or '.'})")
    base_reg = _open(path, base_commit)
    mb_reg = _open(path, mb) if mb != base_commit else base_reg
    result = PRGateResult(base, base_commit, head, head_commit, mb)
    try:
        problems, _ = validate_registry(head_reg)
        if problems:
            raise InvalidHead(head, problems)
        if base_reg is None:
            result.notes.append(f"{base} holds no registry: every service is a bootstrap and "
                                "the policies come from the head revision")
        if mb != base_commit:
            result.notes.append(f"{head} is behind {base}: judging the changes {head} made "
                                f"since their merge base {mb[:12]}")
        _gate(loc, result, base_reg, head_reg, mb_reg, files)
    finally:
        for reg in {id(r): r for r in (head_reg, base_reg, mb_reg) if r is not None}.values():
            reg.close()
    return result


def _gate(loc: Any, result: PRGateResult, base_reg: Registry | None, head_reg: Registry,
          mb_reg: Registry | None, files: Any) -> None:
    manifests = sorted(set(_manifests(head_reg)) | set(_manifests(base_reg)))
    base_files = _entries(loc.repo, result.base_commit, loc.prefix)
    mb_files = (base_files if result.merge_base == result.base_commit
                else _entries(loc.repo, result.merge_base, loc.prefix))
    head_files = _entries(loc.repo, result.head_commit, loc.prefix)
    changes = file_changes(mb_files, head_files, manifests)
    outside = [c for c in changes if c.kind == "other"]
    result.ignored = len(outside)
    new_records: list[FileChange] = []
    with BlobReader(loc.repo) as reader:
        for ch in changes:
            if ch.kind == "record":
                outcome = _record_change(ch, base_files, head_files)
                if outcome is None:
                    new_records.append(ch)
                else:
                    result.changes.append(outcome)
            elif ch.kind == "online":
                result.changes.append(_online_change(ch, base_files, reader, loc, result))
            elif ch.kind in ("model", "policy", "settings"):
                result.changes.append(_info_change(ch))
            elif ch.kind == "manifest":
                result.changes.append(ChangeOutcome(
                    "manifest", ch.path, ch.status, "info",
                    "deployment manifest changed: each changed service is gated below"))

    # Promotions: services whose entry the head side changed, judged against base.
    base_services, head_services = _services(base_reg), _services(head_reg)
    mb_services = base_services if mb_reg is base_reg else _services(mb_reg)
    promoted: set[tuple[str, str]] = set()
    paths = [loc.path(m) for m in manifests]
    for sc in service_changes(base_services, head_services, mb_services):
        served: dict[str, str] | None = None

        def served_before(model: str, version: str, _svc: str = sc.service) -> bool:
            nonlocal served
            if served is None:
                served = stable_versions_served(loc.repo, result.base_commit, paths, _svc)
            return f"{model}@{version}" in served

        planned = plan_promotions(sc, served_before)
        if not planned:
            what = "removed" if sc.after is None else "changed (no version change)"
            result.changes.append(ChangeOutcome(
                "promotion", sc.service, "removed" if sc.after is None else "modified", "info",
                f"service {sc.service} {what}: nothing new serves, nothing to gate"))
            continue
        for p in planned:
            gres = _gate_one(p, head_reg, base_reg, files)
            result.results.append(gres)
            promoted.add((p.model, p.to_version))
            verdict = "pass" if gres.passed else "fail"
            s = gres.summary()
            if gres.passed:
                reason = f"{p.why}; {s['passed']} of {s['gates']} gates passed" + "".join(
                    f", {s[k]} {what}" for k, what in (("skipped", "skipped"),
                                                        ("info", "shown, not blocking"))
                    if s[k])
            else:
                reason = (f"{p.why}; {s['failed']} of {s['gates']} gates failed, "
                          f"{s['failing_rows']} failing row(s)")
                online = [g.reason for g in gres.gates if g.type == "online" and g.verdict == "fail"]
                if online:  # the canary -> stable move: its online result says why (roll back)
                    reason += "; online: " + "; ".join(online)
            result.changes.append(ChangeOutcome("promotion", sc.service, p.change, verdict,
                                                reason, len(result.results) - 1, p))

    # New records the PR does not promote: validated (above) and lineage-gated.
    for ch in new_records:
        assert ch.model is not None and ch.version is not None
        if (ch.model, ch.version) in promoted:
            result.changes.append(ChangeOutcome(
                "record", ch.path, "added", "pass",
                f"new record {ch.model}@{ch.version}: gated with its promotion"))
            continue
        gres = _lineage_only(ch.model, ch.version, head_reg, base_reg, files)
        result.results.append(gres)
        result.changes.append(ChangeOutcome(
            "record", ch.path, "added", "pass" if gres.passed else "fail",
            f"new record {ch.model}@{ch.version}: valid; lineage and integrity gates "
            + ("passed" if gres.passed else "failed"), len(result.results) - 1))
    if not result.changes:
        result.notes.append("this change touches nothing the registry gates"
                            + (f" ({result.ignored} other file(s) changed)" if result.ignored
                               else "") + ": pass")


def _record_change(ch: FileChange, base_files: Mapping[str, str],
                   head_files: Mapping[str, str]) -> ChangeOutcome | None:
    """None for a new record; a refusal for an edit or deletion of a record base holds."""
    at_base = base_files.get(ch.path)
    if ch.status == "added":
        if at_base is None:
            return None
        if at_base == head_files.get(ch.path):
            return ChangeOutcome("record", ch.path, "added", "pass",
                                 "already merged with the same content")
        return ChangeOutcome(
            "record", ch.path, "modified", "fail",
            f"{ch.model}@{ch.version} already exists at base with different content: merged "
            "records are immutable (fix: record a new version)")
    if at_base is None:  # changed on the branch, but base never had it
        if ch.status == "deleted":
            return ChangeOutcome("record", ch.path, "deleted", "info",
                                 "deleted a record that base does not hold")
        return None
    verb = "edits" if ch.status == "modified" else "deletes"
    return ChangeOutcome(
        "record", ch.path, ch.status, "fail",
        f"this change {verb} {ch.path}, a merged record: merged records are immutable (fix: "
        "record a new version; facts learned later go into models/<model>/online/)")


def _online_change(ch: FileChange, base_files: Mapping[str, str], reader: BlobReader, loc: Any,
                   result: PRGateResult) -> ChangeOutcome:
    at_base = base_files.get(ch.path)
    if ch.status == "added" or at_base is None:
        return ChangeOutcome("online", ch.path, ch.status, "pass", "new online fact file (valid)")
    if ch.status == "deleted":
        return ChangeOutcome("online", ch.path, "deleted", "fail",
                             f"this change deletes {ch.path}: online fact files are append-only")
    old = reader.read(result.base_commit, loc.path(ch.path)) or b""
    new = reader.read(result.head_commit, loc.path(ch.path)) or b""
    if new.startswith(old):
        return ChangeOutcome("online", ch.path, "modified", "pass", "facts appended (valid)")
    return ChangeOutcome("online", ch.path, "modified", "fail",
                         f"this change rewrites {ch.path}: online fact files are append-only "
                         "(add lines at the end)")


def _info_change(ch: FileChange) -> ChangeOutcome:
    what = {
        "model": "model settings changed (reviewed by the model's code owners)",
        "policy": "policy changed: this change is judged by the policies at base; the new rules "
                  "apply from the next change on (reviewed by the platform owners)",
        "settings": "registry settings changed (reviewed by the platform owners)",
    }[ch.kind]
    return ChangeOutcome(ch.kind, ch.path, ch.status, "info", what)


def _gate_one(p: PlannedPromotion, head_reg: Registry, base_reg: Registry | None,
              files: Any) -> Any:
    from mlreg.gates.inputs import Promotion
    from mlreg.gates.run import gate_promotion

    promotion = Promotion(model=p.model, to_version=p.to_version, service=p.service,
                          from_version=p.from_version, from_model=p.from_model,
                          canary_percent=p.canary_percent, mode=p.mode, target=p.target)
    return gate_promotion(head_reg, base_reg, promotion, files=files)


def _lineage_only(model: str, version: str, head_reg: Registry, base_reg: Registry | None,
                  files: Any) -> Any:
    """A new record that nothing promotes: the policy's lineage gates only (integrity included),
    under the rules at base."""
    from mlreg.gates.evaluate import evaluate
    from mlreg.gates.files import FileAccess
    from mlreg.gates.inputs import Evidence, Promotion, Verification
    from mlreg.gates.policy import Policy, load_policy
    from mlreg.gates.run import load_subject

    rules = base_reg if base_reg is not None else head_reg
    policy = load_policy(rules, model)
    lineage = [g for g in policy.gates if g.get("type") == "lineage"]
    if not lineage:
        lineage = [{"id": "lineage", "type": "lineage",
                    "require": ["code", "data", "environment", "seeds", "evaluation"],
                    "verify_artifacts": True}]
    narrowed = Policy({**policy.data, "gates": lineage}, policy.sources)
    subject = load_subject(head_reg, model, version)
    access = files or FileAccess(head_reg)
    checks = [access.check("candidate", a["name"], a) for a in subject.record.get("artifacts")
              or []]
    preds = (subject.record.get("evaluation") or {}).get("predictions")
    if preds:
        checks.append(access.check("candidate", "predictions", preds))
    info: dict = {}
    for reg in (rules, head_reg):
        try:
            info = dict(reg.model_info(model))
            break
        except InputError:
            continue
    result = evaluate(narrowed, subject, None, Evidence(unavailable="not a promotion: no metrics"),
                      Verification(tuple(checks)), mode="bootstrap",
                      promotion=Promotion(model=model, to_version=version, mode="bootstrap"),
                      model_info=info, tool=f"mlreg {__version__}")
    result.notes = [f"new record {model}@{version}, not promoted by this change: its lineage "
                    "and integrity gates only (metric gates run when it is promoted)"]
    return result


def default_summary_path() -> str | None:
    """``$GITHUB_STEP_SUMMARY`` when running in GitHub Actions."""
    return os.environ.get("GITHUB_STEP_SUMMARY") or None
