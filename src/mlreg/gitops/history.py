"""What served where, when: a service's history from the git log of the deployment manifests.

History is the first-parent chain of the main branch (one commit per landed change with squash
merges), ordered by the commit graph and never by timestamps. For each commit the manifest blobs
are compared with its first parent's, so a merge commit counts as the change it brought in (the
``-m 1`` view) and commits on side branches are not mistaken for landed changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mlreg.errors import InputError
from mlreg.gitio import git
from mlreg.gitops.gitutil import BlobReader, first_parent_commits
from mlreg.gitops.manifest import services_of

__all__ = ["ServiceChangeCommit", "service_changes", "stable_versions_served", "manifest_blobs"]


@dataclass(frozen=True)
class ServiceChangeCommit:
    """A commit on the first-parent chain that changed one service's entry."""

    commit: str
    parent: str | None
    before: dict | None  # the entry at the first parent (None: service absent)
    after: dict | None  # the entry at the commit (None: service removed)


def manifest_blobs(repo: str, commits: Sequence[str], paths: Sequence[str]
                   ) -> dict[str, tuple[str | None, ...]]:
    """commit -> the blob ids of ``paths`` at that commit (None where absent), in one
    ``git cat-file --batch-check`` process."""
    if not commits:
        return {}
    names = [f"{c}:{p}" for c in commits for p in paths]
    out = git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype)",
              input=("\n".join(names) + "\n").encode("utf-8", "surrogateescape")).stdout
    lines = out.decode().splitlines()
    result: dict[str, tuple[str | None, ...]] = {}
    for i, c in enumerate(commits):
        ids = []
        for j in range(len(paths)):
            parts = lines[i * len(paths) + j].split()
            ids.append(parts[0] if len(parts) == 2 and parts[1] == "blob" else None)
        result[c] = tuple(ids)
    return result


class _Entries:
    """The services of a set of manifest blobs, parsed once per distinct blob."""

    def __init__(self, reader: BlobReader, paths: Sequence[str]) -> None:
        self.reader = reader
        self.paths = paths
        self._cache: dict[tuple[str | None, ...], dict[str, dict] | None] = {}

    def services(self, blobs: tuple[str | None, ...]) -> dict[str, dict] | None:
        """Merged services of the manifests; None when one cannot be parsed (history may hold
        files an older or broken version wrote: they are skipped, not fatal)."""
        if blobs not in self._cache:
            merged: dict[str, dict] = {}
            ok = True
            for path, blob in zip(self.paths, blobs, strict=True):
                if blob is None:
                    continue
                data = self.reader.read_object(blob)
                try:
                    for name, entry in services_of(data or b"", path).items():
                        merged.setdefault(name, entry)
                except InputError:
                    ok = False
            self._cache[blobs] = merged if ok else None
        return self._cache[blobs]


def _walk(repo: str, rev: str, paths: Sequence[str]
          ) -> Iterator[tuple[str, str | None, tuple, tuple]]:
    """(commit, first parent, blobs at commit, blobs at parent) for each first-parent commit
    whose manifest blobs differ from its parent's, newest first."""
    chain = first_parent_commits(repo, rev)
    blobs = manifest_blobs(repo, chain, paths)
    empty: tuple[str | None, ...] = tuple(None for _ in paths)
    for i, c in enumerate(chain):
        parent = chain[i + 1] if i + 1 < len(chain) else None
        mine = blobs[c]
        theirs = blobs[parent] if parent else empty
        if mine != theirs:
            yield c, parent, mine, theirs


def service_changes(repo: str, rev: str, paths: Sequence[str], service: str
                    ) -> list[ServiceChangeCommit]:
    """Every first-parent commit up to ``rev`` that changed ``service``'s entry, newest first."""
    out = []
    with BlobReader(repo) as reader:
        entries = _Entries(reader, paths)
        for c, parent, mine, theirs in _walk(repo, rev, paths):
            now, before = entries.services(mine), entries.services(theirs)
            if now is None or before is None:
                continue
            if now.get(service) != before.get(service):
                out.append(ServiceChangeCommit(c, parent, before.get(service), now.get(service)))
    return out


def stable_versions_served(repo: str, rev: str, paths: Sequence[str], service: str
                           ) -> dict[str, str]:
    """``(model@)version -> the first-parent commit`` for every version that was the stable
    version of ``service`` at some commit up to ``rev`` (the latest such commit)."""
    served: dict[str, str] = {}
    chain = first_parent_commits(repo, rev)
    blobs = manifest_blobs(repo, chain, paths)
    with BlobReader(repo) as reader:
        entries = _Entries(reader, paths)
        for c in chain:
            services = entries.services(blobs[c])
            entry = (services or {}).get(service)
            if entry and isinstance(entry, dict) and entry.get("stable"):
                served.setdefault(f"{entry.get('model')}@{entry['stable']}", c)
    return served
