"""The timeline: registrations, promotions, canary changes, rollbacks and online results, from git.

    tl = timeline(".")                      # the first-parent history of main
    tl.events                               # [Event], in commit order
    tl.select("fraud-scoring")              # one service's events (or a model's, or model@version)
    serving_at(".", "2024-01-26T12:00Z")    # what served each service at that moment

Sources (DESIGN.md §1): the deployment manifest's history says what served where and when; an
added ``models/<m>/<v>.yaml`` is a registration; an added ``models/<m>/online/<id>.yaml`` is an
online result. Everything comes from one ``git log`` pass over the first-parent chain (the
history as it landed on main, squash merges and merge commits alike) plus one ``git cat-file
--batch`` process for the manifest versions. Order is commit order; dates are shown, never
sorted on.

How a manifest change becomes events, per service (before -> after):

* absent -> present: ``promotion`` with action ``deploy`` (the first deployment);
* present -> absent: ``retirement``;
* in a revert commit (git's ``This reverts commit <sha>.`` line, in the commit or, for a merge
  commit, in a commit it merged) or a commit whose subject starts with Revert/Rollback:
  ``rollback``, with the reverted commit and the reason (the message's free text, or its
  ``Reason:`` line);
* the stable version changes: ``promotion`` (action ``promote``, or ``canary-promote`` when the
  old canary became stable);
* only the canary changes: ``canary`` with action ``start``, ``change`` or ``end``;
* anything else (surface, target): ``edit``.

``from_version``/``to_version`` of a deployment event are the version that lost traffic and the
version that gained it. The PR number comes from a squash-merge subject (``... (#123)``) or a merge
commit (``Merge pull request #123 ...``).
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from mlreg.errors import GitError, InputError, MlregError, NotFound
from mlreg.gitio import git, resolve_commit
from mlreg.history.gitlog import (
    BlobReader,
    Change,
    Commit,
    chain_dates,
    iter_log_batches,
    side_commits,
)
from mlreg.history.manifest import ManifestReader, ServiceState
from mlreg.names import VERSION_PATTERN

__all__ = [
    "Event",
    "Timeline",
    "AsOf",
    "timeline",
    "serving_at",
    "parse_when",
    "default_rev",
    "parse_message",
    "Message",
    "metric_text",
]

_RECORD = re.compile(r"^models/([^/]+)/([^/]+)\.yaml$")
_ONLINE = re.compile(r"^models/([^/]+)/online/([^/]+)\.yaml$")
_VERSION = re.compile(VERSION_PATTERN)
_PR_SQUASH = re.compile(r"\(#(\d+)\)\s*$")
_PR_MERGE = re.compile(r"^Merge pull request #(\d+)\b")
_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,64})\b")
_REVERT_SUBJECT = re.compile(r"^\s*(revert\b|rollback\b|roll back\b|roll-back\b)", re.I)
_REASON = re.compile(r"^\s*(?:rollback[ -])?reason:\s*(.+)$", re.I)
# Trailers, and the structured lines ``mlreg promote``/``rollback`` write, are not a reason.
_TRAILER = re.compile(r"^(Signed-off-by|Co-authored-by|Reviewed-by|Acked-by|Tested-by|"
                      r"Change-Id|Reported-by|Helped-by|Cc|Service|Before|After|Record|Note):\s",
                      re.I)


@dataclass(frozen=True)
class Message:
    """What a commit message says: subject, PR number, reverted commit, free-text reason."""

    subject: str
    pr: int | None
    reverts: str | None
    reason: str | None


def parse_message(message: str) -> Message:
    """Subject, PR number, reverted commit and reason of a commit message."""
    stripped = message.strip("\n")
    if "\n" not in stripped and "This reverts" not in stripped:  # a subject alone (most)
        m = _PR_SQUASH.search(stripped) or _PR_MERGE.match(stripped)
        return Message(stripped.strip(), int(m.group(1)) if m else None, None, None)
    lines = stripped.split("\n")
    subject = lines[0].strip() if lines else ""
    pr = None
    m = _PR_SQUASH.search(subject) or _PR_MERGE.match(subject)
    if m:
        pr = int(m.group(1))
    reverts_m = _REVERTS.search(message)
    reverts = reverts_m.group(1) if reverts_m else None
    reason = None
    body = lines[1:]
    for line in body:
        rm = _REASON.match(line)
        if rm:
            reason = rm.group(1).strip()
            break
    if reason is None:
        text = "\n".join(body)
        # git revert's own sentence, including the merge form "..., reversing\nchanges made to X."
        text = re.sub(r"This reverts commit [0-9a-f]{7,64}(,\s*reversing\s+changes made to "
                      r"[0-9a-f]{7,64})?\.?", "", text)
        kept = [ln.rstrip() for ln in text.split("\n") if not _TRAILER.match(ln.strip())]
        free = "\n".join(kept).strip()
        reason = re.sub(r"\n{3,}", "\n\n", free) or None
    return Message(subject=subject, pr=pr, reverts=reverts, reason=reason)


@dataclass(slots=True)
class Event:
    """One thing that happened, at one commit. See the module docstring for the kinds."""

    kind: str
    commit: str
    position: int  # index of the commit on the first-parent chain (0 = the root)
    date: str  # committer date (when it landed), ISO 8601
    author: str
    author_email: str
    committer: str
    subject: str
    pr: int | None = None
    reason: str | None = None
    action: str | None = None
    service: str | None = None
    model: str | None = None
    version: str | None = None  # the version the event is about (registered, gaining traffic)
    from_version: str | None = None  # deployments: the version that lost traffic
    to_version: str | None = None  # deployments: the version that gained traffic
    from_model: str | None = None
    surface: str | None = None
    before: ServiceState | None = None
    after: ServiceState | None = None
    reverts: str | None = None
    reverted_commit: str | None = None  # the chain commit the revert undid, when found
    path: str | None = None
    online: dict | None = None  # online results: experiment, service, metrics, offline metrics
    error: str | None = None

    def versions(self) -> set[str]:
        out = {v for v in (self.version, self.from_version, self.to_version) if v}
        for st in (self.before, self.after):
            if st is not None:
                out.add(st.stable)
                if st.canary:
                    out.add(st.canary)
        return out

    def models(self) -> set[str]:
        out = {m for m in (self.model, self.from_model) if m}
        for st in (self.before, self.after):
            if st is not None:
                out.add(st.model)
        return out

    def describe(self) -> str:
        """One line for people."""
        if self.kind == "registration":
            return f"registered {self.model}@{self.version}"
        if self.kind == "record_edit":
            return f"{self.path}: {self.action} (records and online results are append-only)"
        if self.kind == "online":
            o = self.online or {}
            metrics = ", ".join(metric_text(k, v) for k, v in (o.get("metrics") or {}).items())
            return (f"online result {self.model}@{self.version} on {o.get('service')} "
                    f"(experiment {o.get('experiment')}): {metrics or self.error or '-'}")
        if self.kind == "manifest_error":
            return f"{self.path}: not a valid manifest: {self.error}"
        b, a = self.before, self.after
        svc = self.service
        if self.kind == "retirement" and b is not None:
            return f"{svc}: retired (was {b.model}@{b.stable})"
        if a is None:
            return f"{svc}: changed"
        canary = f", canary {a.canary} at {a.canary_percent:g}%" if a.canary else ""
        if self.kind == "rollback":
            return (f"{svc}: rolled back {self.from_model or a.model}@{self.from_version} -> "
                    f"{a.model}@{self.to_version} (stable {a.stable}{canary})")
        if self.action == "deploy":
            return f"{svc}: first deployment of {a.model}@{a.stable}{canary}"
        if self.kind == "promotion":
            frm = f"{self.from_model}@" if self.from_model and self.from_model != a.model else ""
            how = " (canary promoted)" if self.action == "canary-promote" else ""
            return f"{svc}: {a.model} {frm}{self.from_version} -> {a.stable}{how}{canary}"
        if self.kind == "canary" and b is not None:
            if self.action == "start":
                return (f"{svc}: canary {a.model}@{a.canary} at {a.canary_percent:g}% "
                        f"(stable {a.stable})")
            if self.action == "end":
                return f"{svc}: canary {b.canary} ended (stable {a.stable})"
            return (f"{svc}: canary {b.canary} at {b.canary_percent:g}% -> {a.canary} at "
                    f"{a.canary_percent:g}% (stable {a.stable})")
        return f"{svc}: {a.model}@{a.stable}{canary} ({self.action or 'edited'})"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "action": self.action, "commit": self.commit,
            "position": self.position, "date": self.date, "author": self.author,
            "author_email": self.author_email, "committer": self.committer, "pr": self.pr,
            "subject": self.subject, "reason": self.reason, "service": self.service,
            "model": self.model, "version": self.version, "from_version": self.from_version,
            "to_version": self.to_version, "from_model": self.from_model,
            "surface": self.surface,
            "before": self.before.to_dict() if self.before else None,
            "after": self.after.to_dict() if self.after else None,
            "reverts": self.reverts, "reverted_commit": self.reverted_commit,
            "path": self.path, "online": self.online, "error": self.error,
            "summary": self.describe(),
        }


def metric_text(name: str, m: dict) -> str:
    """``ctr_lift -3.00% [-4.50%, -1.50%]``: lifts and rates as percentages."""
    v = m.get("value")
    iv = m.get("interval")
    pct = name.endswith(("_lift", "_rate")) or name in ("ctr", "lift")
    def f(x: float) -> str:
        return f"{x * 100:+.2f}%" if pct else f"{x:g}"
    text = f"{name} {f(v)}" if isinstance(v, (int, float)) else f"{name} ?"
    if isinstance(iv, list) and len(iv) == 2:
        text += f" [{f(iv[0])}, {f(iv[1])}]"
    return text


@dataclass
class Timeline:
    """Every event of a registry's history, in commit order."""

    rev: str
    head: str
    manifests: list[str]
    events: list[Event] = field(default_factory=list)
    commits: int = 0  # commits that touched the registry's files
    chain: int = 0  # commits on the first-parent chain

    def services(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.events:
            if e.service and e.kind not in ("online",):
                seen[e.service] = None
        return list(seen)

    def models(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.events:
            for m in sorted(e.models()):
                seen[m] = None
        return list(seen)

    def select(self, target: str | None = None, *, kinds: Iterable[str] | None = None
               ) -> list[Event]:
        """Events about ``target``: a service, a model, or ``model@version`` (None: all).

        A name that is both a service and a model means the service. NotFound when the name
        appears nowhere in the history.
        """
        wanted = set(kinds) if kinds else None
        events = [e for e in self.events if wanted is None or e.kind in wanted]
        if target is None:
            return events
        if "@" in target:
            model, _, version = target.partition("@")
            return [e for e in events if model in e.models() and version in e.versions()
                    and (e.kind not in ("registration", "online") or e.version == version)]
        if target in self.services():
            return [e for e in events if e.service == target]
        if target in self.models():
            return [e for e in events if target in e.models()]
        raise NotFound(f"{target!r} is neither a service nor a model in the history of "
                       f"{self.rev} (services: {', '.join(self.services()) or 'none'}; "
                       f"models: {', '.join(self.models()) or 'none'})")

    def to_dict(self, events: list[Event] | None = None) -> dict:
        return {"schema": "mlreg/history/v1", "rev": self.rev, "head": self.head,
                "manifests": self.manifests, "commits": self.commits, "chain": self.chain,
                "events": [e.to_dict() for e in (self.events if events is None else events)]}


def default_rev(root: str, main_branch: str | None = None) -> str:
    """The revision whose first-parent chain is "main": the settings' main branch, else its
    remote-tracking branch, else HEAD."""
    branch = main_branch
    if branch is None:
        try:
            from mlreg.registry import Registry

            with Registry.open(root) as reg:
                branch = reg.settings().get("main_branch") or "main"
        except MlregError:
            branch = "main"
    for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
        if git(root, "rev-parse", "--verify", "--quiet", ref, check=False).returncode == 0:
            return ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")
    return "HEAD"


def _manifests_at(root: str, commit: str) -> list[str]:
    """The manifests mlreg.yaml names at ``commit`` (one ``git show``, not a tree listing)."""
    from mlreg.registry import DEFAULT_MANIFEST, SETTINGS_FILE
    from mlreg.yamlio import load_yaml_text

    proc = git(root, "show", f"{commit}:./{SETTINGS_FILE}", check=False)
    if proc.returncode != 0:
        raise NotFound(f"{root}: not an mlreg registry at {commit[:12]} (no {SETTINGS_FILE})")
    try:
        data = load_yaml_text(proc.stdout, f"{commit[:12]}:{SETTINGS_FILE}").data
    except MlregError:
        return [DEFAULT_MANIFEST]
    manifests = data.get("manifests") if isinstance(data, dict) else None
    if isinstance(manifests, list) and all(isinstance(m, str) for m in manifests) and manifests:
        return list(manifests)
    return [DEFAULT_MANIFEST]


def _shares(st: ServiceState | None) -> dict[tuple[str, str], float]:
    if st is None:
        return {}
    out = {(st.model, st.stable): 100.0 - (st.canary_percent or 0.0) if st.canary else 100.0}
    if st.canary:
        key = (st.model, st.canary)
        out[key] = out.get(key, 0.0) + (st.canary_percent or 0.0)
    return out


def _moved(before: ServiceState | None, after: ServiceState | None
           ) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """The (model, version) that lost the most traffic and the one that gained the most."""
    b, a = _shares(before), _shares(after)
    keys = set(b) | set(a)
    delta = {k: a.get(k, 0.0) - b.get(k, 0.0) for k in keys}
    lost = min((k for k in keys if delta[k] < 0), key=lambda k: (delta[k], k), default=None)
    gained = max((k for k in keys if delta[k] > 0), key=lambda k: (delta[k], k), default=None)
    return lost, gained


def _by_prefix(ordered: list[str], prefix: str) -> str | None:
    """The one id in sorted ``ordered`` that starts with ``prefix`` (None: none or several)."""
    i = bisect.bisect_left(ordered, prefix)
    if i < len(ordered) and ordered[i].startswith(prefix):
        if i + 1 < len(ordered) and ordered[i + 1].startswith(prefix):
            return None
        return ordered[i]
    return None


def _deployment_events(before: dict[str, ServiceState], after: dict[str, ServiceState],
                       base: dict, is_rollback: bool, names: list[str] | None = None
                       ) -> list[Event]:
    out = []
    if names is None:
        names = list(after) + [s for s in before if s not in after]
    for svc in names:
        b, a = before.get(svc), after.get(svc)
        if b == a:
            continue
        lost, gained = _moved(b, a)
        ev = Event(**base, service=svc, before=b, after=a,
                   surface=(a or b).surface if (a or b) else None)  # type: ignore[union-attr]
        ev.from_version = lost[1] if lost else None
        ev.to_version = gained[1] if gained else None
        if lost and gained and lost[0] != gained[0]:
            ev.from_model = lost[0]
        ev.model = (a or b).model  # type: ignore[union-attr]
        ev.version = ev.to_version
        if b is None:
            ev.kind, ev.action = "promotion", "deploy"
            ev.to_version = ev.version = a.stable  # type: ignore[union-attr]
        elif a is None:
            ev.kind, ev.action = "retirement", "retire"
            ev.from_version, ev.version = b.stable, b.stable
        elif is_rollback:
            ev.kind = "rollback"
            ev.action = "canary-end" if b.canary and not a.canary and b.stable == a.stable \
                else "revert"
            if ev.to_version is None:
                ev.to_version = a.stable
            ev.version = ev.to_version
        elif b.stable != a.stable or b.model != a.model:
            ev.kind = "promotion"
            ev.action = "canary-promote" if b.canary == a.stable and b.model == a.model \
                else "promote"
            ev.from_version = b.stable if ev.action == "promote" else ev.from_version
            if b.model != a.model:
                ev.from_model = b.model
            ev.to_version = ev.version = a.stable
        elif b.canary != a.canary or b.canary_percent != a.canary_percent:
            ev.kind = "canary"
            ev.action = "start" if not b.canary else ("end" if not a.canary else "change")
            if ev.action == "end":
                ev.from_version, ev.to_version = b.canary, a.stable
            elif ev.action == "start":
                ev.from_version, ev.to_version = a.stable, a.canary
            else:
                ev.from_version, ev.to_version = b.canary, a.canary
            ev.version = ev.to_version
        else:
            ev.kind, ev.action = "edit", "settings"
        out.append(ev)
    return out


class _Builder:
    def __init__(self, root: str, rev: str, manifests: list[str], chain: _Chain) -> None:
        self.chain = chain
        self.commits = 0
        self._last_read: dict[str, str | None] = {}  # manifest -> blob the reader read last
        self.root = root
        self.rev = rev
        self.manifests = manifests
        self.reader = ManifestReader()
        self.blobs = BlobReader(root)
        self.records: dict[tuple[str, str], str] = {}  # (model, version) -> blob of the record
        self._side: dict[str, list[tuple[str, str]]] | None = None
        self._sorted: list[str] | None = None
        self._side_sorted: list[str] | None = None
        self._side_of: dict[str, str] = {}

    def close(self) -> None:
        self.blobs.close()

    def side(self, merge: str) -> list[tuple[str, str]]:
        if self._side is None:
            self._side = side_commits(self.root, self.rev, set(self.chain.positions))
        return self._side.get(merge, [])

    def run(self, batches: Iterable[list[Commit]]) -> list[Event]:
        self.commits = 0
        state: dict[str, dict[str, ServiceState]] = {m: {} for m in self.manifests}
        blocks: dict[str, dict[str, str | None]] = {m: {} for m in self.manifests}
        events: list[Event] = []
        manifest_set = set(self.manifests)
        for batch in batches:
            self.commits += len(batch)
            # The batch's manifest versions in one exchange with cat-file.
            wanted = [ch.new_blob for c in batch for ch in c.changes
                      if ch.new_blob and ch.path in manifest_set]
            contents = dict(zip(wanted, self.blobs.read_many(wanted), strict=True))
            self._commits(batch, contents, state, blocks, events, manifest_set)
        positions = self.chain.positions
        for ev in events:
            ev.position = positions.get(ev.commit, -1)
            if ev.reverts:
                ev.reverted_commit = self._resolve_reverted(ev.reverts, positions)
        return events

    def _commits(self, commits: list[Commit], contents: dict[str, bytes],
                 state: dict[str, dict[str, ServiceState]],
                 blocks: dict[str, dict[str, str | None]], events: list[Event],
                 manifest_set: set[str]) -> None:
        for c in commits:
            msg = parse_message(c.message)
            reverts, reason = msg.reverts, msg.reason
            base = dict(kind="", commit=c.sha, position=-1,
                        date=c.commit_date, author=c.author, author_email=c.author_email,
                        committer=c.committer, subject=msg.subject, pr=msg.pr, reason=reason)
            touched = [ch for ch in c.changes if ch.path in manifest_set]
            if touched and c.is_merge and reverts is None:
                for _sha, side_msg in self.side(c.sha):
                    sm = parse_message(side_msg)
                    if sm.reverts:
                        reverts, base["reason"] = sm.reverts, sm.reason or reason
                        break
            for ch in c.changes:
                if ch.path in manifest_set:
                    continue
                events.extend(self._file_event(ch, base))
            is_rollback = reverts is not None or bool(_REVERT_SUBJECT.match(msg.subject))
            for ch in touched:
                before_all, before_blocks = state[ch.path], blocks[ch.path]
                if ch.new_blob is None:
                    after_all: dict[str, ServiceState] = {}
                    after_blocks: dict[str, str | None] = {}
                else:
                    try:
                        after_all, after_blocks = self.reader.read(contents[ch.new_blob],
                                                                   ch.path)
                    except InputError as exc:
                        events.append(Event(**{**base, "kind": "manifest_error"}, path=ch.path,
                                            error=str(exc)))
                        continue
                # Same block text, same service: only the changed blocks are compared (the
                # reader knows them when it read this version from the previous one).
                if self.reader.changed is not None and ch.old_blob is not None \
                        and self._last_read.get(ch.path) == ch.old_blob:
                    names = self.reader.changed
                else:
                    names = [n for n, t in after_blocks.items()
                             if t is None or before_blocks.get(n) != t] + [
                        n for n in before_all if n not in after_all]
                self._last_read[ch.path] = ch.new_blob
                blocks[ch.path] = after_blocks
                for ev in _deployment_events(before_all, after_all, base, is_rollback, names):
                    if ev.kind == "rollback":
                        ev.reverts = reverts
                    events.append(ev)
                state[ch.path] = after_all

    def _resolve_reverted(self, sha: str | None, positions: dict[str, int]) -> str | None:
        if not sha:
            return None
        if sha in positions:
            return sha
        if self._sorted is None:
            self._sorted = sorted(positions)
        hit = _by_prefix(self._sorted, sha)
        if hit is not None:
            return hit
        if self._side is None:
            self._side = side_commits(self.root, self.rev, set(positions))
        if self._side_sorted is None:
            self._side_of = {s: merge for merge, cs in self._side.items() for s, _ in cs}
            self._side_sorted = sorted(self._side_of)
        hit = _by_prefix(self._side_sorted, sha)
        return self._side_of[hit] if hit is not None else None

    def _file_event(self, ch: Change, base: dict) -> list[Event]:
        m = _RECORD.match(ch.path)
        if m and m.group(2) != "model" and _VERSION.match(m.group(2)):
            model, version = m.group(1), m.group(2)
            if ch.status == "A":
                if ch.new_blob:
                    self.records[(model, version)] = ch.new_blob
                return [Event(**{**base, "kind": "registration"}, action="register", model=model,
                              version=version, path=ch.path)]
            if ch.new_blob:
                self.records[(model, version)] = ch.new_blob
            return [Event(**{**base, "kind": "record_edit"}, model=model, version=version,
                          path=ch.path, action="deleted" if ch.status == "D" else "modified")]
        m = _ONLINE.match(ch.path)
        if not m:
            return []
        model = m.group(1)
        if ch.status != "A" or ch.new_blob is None:
            return [Event(**{**base, "kind": "record_edit"}, model=model, path=ch.path,
                          action="deleted" if ch.status == "D" else "modified")]
        from mlreg.history.online import load_online_bytes, offline_metrics

        ev = Event(**{**base, "kind": "online"}, action="result", model=model, path=ch.path)
        try:
            doc = load_online_bytes(self.blobs.read(ch.new_blob), ch.path)
        except InputError as exc:
            ev.error = str(exc)
            return [ev]
        ev.version, ev.service = doc["version"], doc["service"]
        ev.surface = doc.get("surface")
        offline = None
        blob = self.records.get((model, doc["version"]))
        if blob:
            offline = offline_metrics(self.blobs.read(blob), f"models/{model}/{doc['version']}"
                                      ".yaml")
        ev.online = {k: doc.get(k) for k in ("experiment", "service", "surface", "baseline",
                                             "traffic_percent", "start", "end", "metrics")}
        ev.online["offline"] = offline
        return [ev]


def timeline(root: str = ".", rev: str | None = None) -> Timeline:
    """The events of the registry at ``root`` along the first-parent chain of ``rev`` (default:
    :func:`default_rev`). One ``git log`` and one ``git cat-file`` process."""
    rev = rev or default_rev(root)
    head = resolve_commit(root, rev)
    manifests = _manifests_at(root, head)
    chain = _Chain(root, head)  # walks in parallel with the log below
    builder = _Builder(root, head, manifests, chain)
    try:
        events = builder.run(iter_log_batches(root, head, [*manifests, "models"]))
    finally:
        builder.close()
        chain.close()
    return Timeline(rev=rev, head=head, manifests=manifests, events=events,
                    commits=builder.commits, chain=len(chain.positions))


class _Chain:
    """The first-parent chain's commits and their positions, read by a ``git log`` that runs
    while the changes are being streamed; waited for only when first needed."""

    def __init__(self, root: str, head: str) -> None:
        import subprocess
        import tempfile

        self._out = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            ["git", "-C", root, "log", "--first-parent", "--reverse", "--format=%H",
             "--end-of-options", head], stdout=self._out, stderr=subprocess.DEVNULL,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
        self._positions: dict[str, int] | None = None

    @property
    def positions(self) -> dict[str, int]:
        if self._positions is None:
            if self._proc.wait() != 0:
                raise GitError("git log (first-parent chain) failed")
            self._out.seek(0)
            shas = self._out.read().decode().split()
            self._positions = {sha: i for i, sha in enumerate(shas)}
        return self._positions

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._out.close()


# ------------------------------------------------------------------------------------ as of
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_when(text: str) -> datetime:
    """A moment from ``2024-01-26`` (the END of that day, UTC: everything merged that day
    counts), ``2024-01-26T10:30``, ``2024-01-26 10:30:00+01:00``, ``...Z`` or ``@UNIX``.
    Times without a zone are UTC."""
    t = text.strip()
    try:
        if t.startswith("@"):
            return datetime.fromtimestamp(int(t[1:]), UTC)
        if _DATE_ONLY.match(t):
            day = datetime.fromisoformat(t).date()
            return datetime.combine(day, time(23, 59, 59), UTC)
        dt = datetime.fromisoformat(t.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise InputError(f"{text!r} is not a date: write 2024-01-26, 2024-01-26T10:30Z or "
                         "@<unix seconds>") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class AsOf:
    """What served each service at one moment, read from the manifest at ``commit``."""

    at: str
    rev: str
    commit: str | None
    commit_date: str | None
    services: list[dict]
    note: str | None = None

    def to_dict(self) -> dict:
        return {"schema": "mlreg/serving-at/v1", "at": self.at, "rev": self.rev,
                "commit": self.commit, "commit_date": self.commit_date,
                "services": self.services, "note": self.note}


def serving_at(root: str, when: str | datetime, rev: str | None = None) -> AsOf:
    """What served each service at ``when``: the manifest at the last commit on the first-parent
    chain of ``rev`` (default: main) whose committer date is at or before ``when``, read through
    the registry's one resolver. Each service also says since which event it was in place."""
    moment = parse_when(when) if isinstance(when, str) else when
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    rev = rev or default_rev(root)
    head = resolve_commit(root, rev)
    chain = chain_dates(root, head)
    limit = moment.timestamp()
    chosen, chosen_ts = None, None
    for sha, ts in chain:
        if ts <= limit:
            chosen, chosen_ts = sha, ts
    at = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if chosen is None:
        return AsOf(at, rev, None, None, [], note="before the first commit of the history")
    from mlreg.registry import Registry

    try:
        reg = Registry.open(root, rev=chosen)
    except NotFound:
        return AsOf(at, rev, chosen, _iso(chosen_ts), [],
                    note="the registry did not exist yet at that commit")
    with reg:
        deps = reg.deployments()
    positions = {sha: i for i, (sha, _) in enumerate(chain)}
    since: dict[str, Event] = {}
    tl = timeline(root, chosen)
    for ev in tl.events:
        if ev.service and ev.kind in ("promotion", "canary", "rollback", "edit") \
                and positions.get(ev.commit, -1) <= positions[chosen]:
            since[ev.service] = ev
    services = []
    for name in sorted(deps):
        d = deps[name].to_dict()
        ev = since.get(name)
        d["since"] = None if ev is None else {
            "commit": ev.commit, "date": ev.date, "pr": ev.pr, "kind": ev.kind,
            "action": ev.action, "summary": ev.describe()}
        services.append(d)
    return AsOf(at, rev, chosen, _iso(chosen_ts), services)


def _iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
