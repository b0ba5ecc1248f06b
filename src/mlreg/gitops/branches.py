"""What promote and rollback share: the main revision, a one-commit branch, a push, a PR.

:func:`publish` is idempotent: a branch that already holds the same change (locally or on
``origin``) is reused, a pull request already open for it is found instead of opening another.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlreg.errors import NotFound, RegistryError
from mlreg.gitops.gitutil import (
    RegistryLocation,
    branch_commit,
    fetch_branch,
    has_remote,
    is_ancestor,
    parents,
    push_branch,
    rev_parse,
    update_branch,
)

__all__ = ["MainRevision", "main_revision", "Published", "publish", "changed_paths",
           "settings_of"]


@dataclass(frozen=True)
class MainRevision:
    """The revision promote and rollback start from: ``origin/<main>`` (fetched) or ``<main>``."""

    branch: str  # "main"
    ref: str  # "origin/main" or "main"
    commit: str
    remote: bool


def settings_of(path: str) -> dict:
    """mlreg.yaml of the working tree (for main_branch and forge: which branch, which forge)."""
    from mlreg.registry import Registry

    with Registry.open(path) as reg:
        return dict(reg.settings())


def main_revision(loc: RegistryLocation, settings: Mapping[str, Any]) -> MainRevision:
    branch = settings.get("main_branch") or "main"
    if has_remote(loc.repo):
        commit = fetch_branch(loc.repo, branch)
        if commit is None:
            raise NotFound(f"the remote 'origin' has no branch {branch!r} (main_branch in "
                           "mlreg.yaml)")
        return MainRevision(branch, f"origin/{branch}", commit, True)
    commit = rev_parse(loc.repo, f"refs/heads/{branch}")
    if commit is None:
        raise NotFound(f"no branch {branch!r} in {loc.repo} (main_branch in mlreg.yaml)")
    return MainRevision(branch, branch, commit, False)


def changed_paths(repo: str, commit: str, parent: str) -> list[str]:
    from mlreg.gitio import git

    out = git(repo, "diff-tree", "-r", "--no-commit-id", "--name-only", "-z", parent, commit)
    return [p.decode("utf-8", "surrogateescape") for p in out.stdout.split(b"\0") if p]


@dataclass
class Published:
    """Where a change went: the branch and its commit, whether it was pushed, the PR."""

    branch: str
    commit: str
    reused: bool = False  # the branch already held this change
    pushed: bool = False
    remote: bool = False
    pr_number: int | None = None
    pr_url: str | None = None
    pr_existing: bool = False
    forge: str = ""  # which forge, or why none
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"branch": self.branch, "commit": self.commit, "reused": self.reused,
                "pushed": self.pushed, "remote": self.remote, "pr_number": self.pr_number,
                "pr_url": self.pr_url, "pr_existing": self.pr_existing, "forge": self.forge,
                "notes": self.notes}


def publish(loc: RegistryLocation, main: MainRevision, branch: str, *,
            make_commit: Callable[[], str], holds_change: Callable[[str], bool],
            allowed_paths: set[str], title: str, body: str, forge: Any | None,
            forge_note: str) -> Published:
    """Make (or find) the one-commit branch, push it to origin, open (or find) its PR.

    ``holds_change(commit)`` says whether an existing branch tip already holds the change;
    ``make_commit()`` builds the commit on ``main.commit``. ``allowed_paths`` are the only files
    the commit may touch (checked for a reused branch too).
    """
    repo = loc.repo
    local = branch_commit(repo, branch)
    remote = fetch_branch(repo, branch) if main.remote else None
    existing = local or remote
    reused = False
    if existing is not None:
        ok, why = _reusable(repo, existing, main.commit, holds_change, allowed_paths)
        if not ok:
            raise RegistryError(
                f"branch {branch} already exists ({existing[:12]}) and {why}: merge or close its "
                f"pull request, or delete it (git branch -D {branch}"
                + (f"; git push origin --delete {branch}" if remote else "") + ")")
        commit = existing
        reused = True
        if local is None:
            update_branch(repo, branch, commit)
        elif remote is not None and remote != local and is_ancestor(repo, local, remote):
            commit = remote
            update_branch(repo, branch, commit, local)
    else:
        commit = make_commit()
        update_branch(repo, branch, commit)
    out = Published(branch, commit, reused=reused, remote=main.remote, forge=forge_note)
    if main.remote and remote != commit:
        push_branch(repo, branch)
        out.pushed = True
    elif main.remote:
        out.pushed = True  # origin already has it
    if forge is not None:
        found = forge.find_open_pr(branch)
        if found is not None:
            out.pr_number, out.pr_url, out.pr_existing = found.number, found.url, True
        else:
            ref = forge.open_pr(main.branch, branch, title, body)
            out.pr_number, out.pr_url = ref.number, ref.url
    return out


def _reusable(repo: str, commit: str, main: str, holds_change: Callable[[str], bool],
              allowed: set[str]) -> tuple[bool, str]:
    ps = parents(repo, commit)
    if len(ps) != 1:
        return False, "its tip is not a single commit"
    if not is_ancestor(repo, ps[0], main):
        return False, "it does not start from the main branch"
    touched = set(changed_paths(repo, commit, ps[0]))
    if not touched <= allowed:
        return False, f"its commit touches {', '.join(sorted(touched - allowed)[:3])}"
    if not holds_change(commit):
        return False, "it holds a different change"
    return True, ""


def env_or_os(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env
