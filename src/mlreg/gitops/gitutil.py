"""Git plumbing for the PR flow: read history, make commits without touching the working tree.

Promote and rollback never check anything out: a commit is built in a temporary index
(``GIT_INDEX_FILE``) from the main revision's tree, written with ``commit-tree`` and pointed at by
a branch with ``update-ref``. The user's working tree, index and HEAD stay exactly as they were.

Paths handed to these helpers are repository-relative (the registry may live in a subfolder; see
:func:`registry_location`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass

from mlreg.errors import DependencyError, GitError, NotFound, RegistryError
from mlreg.gitio import _ENV, CatFile, git, is_shallow, toplevel

__all__ = [
    "RegistryLocation",
    "registry_location",
    "BlobReader",
    "rev_parse",
    "merge_base",
    "is_ancestor",
    "first_parent_commits",
    "parents",
    "commit_message",
    "commit_files",
    "update_branch",
    "branch_commit",
    "has_remote",
    "fetch_branch",
    "remote_branch",
    "push_branch",
    "merge_file",
    "check_full_history",
]

ZERO = "0" * 40


@dataclass(frozen=True)
class RegistryLocation:
    """Where a registry lives: the repository root and the registry's folder inside it."""

    repo: str  # absolute path of the repository's top level
    prefix: str  # "" or "sub/dir/" (with the trailing slash)

    def path(self, relpath: str) -> str:
        """The repository-relative path of a registry-relative path."""
        return f"{self.prefix}{relpath}"


def registry_location(path: str) -> RegistryLocation:
    """The repository holding the registry directory ``path`` (NotFound outside git)."""
    if not os.path.isdir(path):
        raise NotFound(f"{path}: no such directory")
    top = toplevel(path)
    if top is None:
        raise NotFound(f"{path} is not inside a git repository; the PR flow needs git")
    prefix = git(path, "rev-parse", "--show-prefix").stdout.decode().strip()
    return RegistryLocation(top, prefix)


def check_full_history(repo: str) -> None:
    """A shallow clone hides the history the flow reads: refuse it (exit 2), never guess."""
    if is_shallow(repo):
        raise RegistryError(
            f"{repo} is a shallow clone: the gate reads the history of the deployment manifest "
            "and needs all of it (fix: actions/checkout with fetch-depth: 0, or "
            "'git fetch --unshallow')")


class BlobReader(CatFile):
    """Read ``REV:PATH`` blobs through one ``git cat-file --batch`` process."""

    def read(self, rev: str, path: str) -> bytes | None:
        """The bytes of ``path`` at ``rev``; None when it does not exist there."""
        return self.read_object(f"{rev}:{path}")


def rev_parse(repo: str, rev: str) -> str | None:
    """The commit id of ``rev``, or None when it does not name a commit."""
    if rev.startswith("-"):
        return None
    proc = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}",
               check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def merge_base(repo: str, a: str, b: str) -> str | None:
    proc = git(repo, "merge-base", a, b, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def is_ancestor(repo: str, ancestor: str, descendant: str) -> bool:
    return git(repo, "merge-base", "--is-ancestor", ancestor, descendant,
               check=False).returncode == 0


def first_parent_commits(repo: str, rev: str, limit: int | None = None) -> list[str]:
    """The first-parent chain from ``rev`` back to the root, newest first.

    On a branch that only takes squash merges (or merge commits) this is the list of changes as
    they landed, ordered by the commit graph, never by timestamps.
    """
    args = ["rev-list", "--first-parent"]
    if limit is not None:
        args.append(f"--max-count={limit}")
    out = git(repo, *args, rev, "--").stdout.decode().split()
    return out


def parents(repo: str, commit: str) -> list[str]:
    line = git(repo, "rev-list", "--parents", "-n", "1", commit, "--").stdout.decode().split()
    return line[1:]


def commit_message(repo: str, commit: str) -> str:
    return git(repo, "log", "-1", "--format=%B", commit, "--").stdout.decode("utf-8", "replace")


def commit_files(repo: str, parent: str, files: dict[str, bytes], message: str) -> str:
    """A new commit on top of ``parent`` whose tree is ``parent``'s with ``files`` replaced.

    Built in a temporary index: nothing in the working tree, the real index or HEAD changes.
    """
    with tempfile.TemporaryDirectory(prefix="mlreg-index-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        git(repo, "read-tree", parent, env=env)
        for path, data in files.items():
            blob = git(repo, "hash-object", "-w", "--stdin", input=data).stdout.decode().strip()
            ls = git(repo, "ls-tree", parent, "--", path).stdout.decode().split()
            mode = ls[0] if ls else "100644"
            git(repo, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
        tree = git(repo, "write-tree", env=env).stdout.decode().strip()
    proc = git(repo, "commit-tree", tree, "-p", parent, "-F", "-",
               input=message.encode("utf-8"), check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip()
        if "tell me who you are" in msg.lower() or "empty ident" in msg.lower():
            raise RegistryError("git does not know who you are: set user.name and user.email "
                                "(git config --global user.name ...) and run it again")
        raise GitError(f"git commit-tree failed: {msg.splitlines()[-1] if msg else 'error'}")
    return proc.stdout.decode().strip()


def branch_commit(repo: str, branch: str) -> str | None:
    return rev_parse(repo, f"refs/heads/{branch}")


def update_branch(repo: str, branch: str, commit: str, old: str | None = None) -> None:
    """Point ``refs/heads/<branch>`` at ``commit`` (only if it still is at ``old``)."""
    git(repo, "check-ref-format", "--branch", branch)
    git(repo, "update-ref", "-m", "mlreg", f"refs/heads/{branch}", commit, old or ZERO)


def has_remote(repo: str, name: str = "origin") -> bool:
    return git(repo, "remote", "get-url", name, check=False).returncode == 0


def fetch_branch(repo: str, branch: str, remote: str = "origin") -> str | None:
    """Fetch ``branch`` from ``remote`` into ``refs/remotes/<remote>/<branch>``; its commit, or
    None when the remote has no such branch. An unreachable remote is a DependencyError."""
    ls = git(repo, "ls-remote", "--heads", remote, f"refs/heads/{branch}", check=False)
    if ls.returncode != 0:
        msg = ls.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DependencyError(f"cannot reach the git remote {remote!r}: "
                              f"{msg[-1] if msg else 'git ls-remote failed'}")
    if not ls.stdout.strip():
        return None
    proc = git(repo, "fetch", "--quiet", "--no-tags", remote,
               f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}", check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DependencyError(f"git fetch {remote} {branch} failed: "
                              f"{msg[-1] if msg else 'error'}")
    return rev_parse(repo, f"refs/remotes/{remote}/{branch}")


def remote_branch(repo: str, branch: str, remote: str = "origin") -> str | None:
    return rev_parse(repo, f"refs/remotes/{remote}/{branch}")


def push_branch(repo: str, branch: str, remote: str = "origin") -> None:
    proc = git(repo, "push", "--quiet", remote, f"refs/heads/{branch}:refs/heads/{branch}",
               check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DependencyError(f"git push {remote} {branch} failed: "
                              f"{msg[-1] if msg else 'error'}")


def merge_file(ours: bytes, base: bytes, theirs: bytes, labels: tuple[str, str, str]
               ) -> tuple[bytes, int]:
    """Three-way merge of one file with git's own merge (``git merge-file``): the merged bytes
    and the number of conflicts (0 for a clean merge)."""
    with tempfile.TemporaryDirectory(prefix="mlreg-merge-") as tmp:
        names = []
        for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            p = os.path.join(tmp, name)
            with open(p, "wb") as fh:
                fh.write(data)
            names.append(p)
        proc = subprocess.run(
            ["git", "merge-file", "-p", "-L", labels[0], "-L", labels[1], "-L", labels[2],
             *names], capture_output=True, env={**os.environ, **_ENV}, check=False)
    if proc.returncode < 0 or proc.returncode > 127:
        raise GitError(f"git merge-file failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout, proc.returncode
