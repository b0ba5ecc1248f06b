"""Reading history from git in bulk: one ``git log`` pass, one ``git cat-file --batch`` process.

:func:`log_changes` walks the first-parent chain of a revision (the history of ``main`` as it
landed: squash merges, merge commits and direct pushes alike) in commit order, oldest first, and
returns for each commit that touched the given paths its metadata and the raw list of changed
files with their old and new blob ids. Merge commits are diffed against their first parent
(``--diff-merges=first-parent``), which is exactly "what this merge changed on main". Commit
dates are carried along for display and for ``--at`` queries; they never order anything.

Blob contents are read through one :class:`BlobReader` (``git cat-file --batch``), so reading
2,000 manifest versions costs one process, not 2,000.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from mlreg.errors import GitError
from mlreg.gitio import CatFile, git

__all__ = ["Change", "Commit", "log_changes", "iter_log_batches", "chain_dates", "side_commits",
           "BlobReader"]

_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
# Header fields of one commit, each NUL-terminated (the message is the last).
_FORMAT = "%x01%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x00"
_FIELDS = 9


@dataclass(frozen=True, slots=True)
class Change:
    """One changed file of a commit: status A (added), M, D, T; blob ids None when absent."""

    status: str
    path: str
    old_blob: str | None
    new_blob: str | None


@dataclass(slots=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    author: str
    author_email: str
    author_date: str
    committer: str
    committer_email: str
    commit_date: str
    message: str
    changes: list[Change] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0].strip()

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


def _blob(text: str) -> str | None:
    return None if not text.strip("0") else text


def parse_log(raw: bytes) -> list[Commit]:
    """Parse the output of ``git log -z --raw --format=_FORMAT`` (see :func:`log_changes`).

    The bytes are decoded once (paths keep undecodable bytes as surrogates, as ``os`` does);
    a message that is not UTF-8 is re-decoded with replacement characters.
    """
    tokens = raw.decode("utf-8", "surrogateescape").split("\0")
    out: list[Commit] = []
    i, n = 0, len(tokens)
    current: Commit | None = None
    while i < n:
        tok = tokens[i]
        if tok.startswith("\x01"):
            f = [tok[1:], *tokens[i + 1: i + _FIELDS]]
            if len(f) < _FIELDS:
                raise GitError("git log output ended in the middle of a commit header")
            message = f[8]
            if not message.isascii():
                message = message.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            current = Commit(f[0], tuple(f[1].split()), f[2], f[3], f[4], f[5], f[6], f[7],
                             message)
            out.append(current)
            i += _FIELDS
            continue
        if tok and tok[0] == "\n":
            tok = tok.lstrip("\n")
        if tok.startswith(":") and current is not None:
            meta = tok[1:].split()
            path = tokens[i + 1] if i + 1 < n else ""
            # meta: old_mode new_mode old_blob new_blob status
            current.changes.append(Change(meta[4][:1], path, _blob(meta[2]), _blob(meta[3])))
            i += 2
            continue
        i += 1
    return out


def _log_args(rev: str, paths: list[str]) -> list[str]:
    return ["log", "--first-parent", "--diff-merges=first-parent", "--reverse", "--raw", "-z",
            "--no-renames", "--no-abbrev", "--relative", f"--format={_FORMAT}",
            "--end-of-options", rev, "--", *paths]


def log_changes(repo: str, rev: str, paths: list[str]) -> list[Commit]:
    """Every commit on the first-parent chain of ``rev`` that changed one of ``paths``
    (relative to ``repo``), oldest first, with its changed files.

    One ``git log`` process. Renames are reported as a delete and an add (records never move).
    """
    return parse_log(git(repo, *_log_args(rev, paths)).stdout)


def iter_log_batches(repo: str, rev: str, paths: list[str], chunk: int = 1 << 16
                     ) -> Iterator[list[Commit]]:
    """:func:`log_changes` as a stream of batches, yielded while git is still walking, so the
    caller's work overlaps git's."""
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(["git", "-C", repo, *_log_args(rev, paths)],
                            stdout=subprocess.PIPE, stderr=errors, env={**os.environ, **_ENV})
    assert proc.stdout is not None
    buf = b""
    try:
        while True:
            data = proc.stdout.read1(chunk)
            if not data:
                break
            buf += data
            # Everything before the last commit marker is complete (a marker starts a header).
            cut = buf.rfind(b"\x01")
            if cut > 0:
                yield parse_log(buf[:cut])
                buf = buf[cut:]
        if buf:
            yield parse_log(buf)
        if proc.wait() != 0:
            errors.seek(0)
            msg = errors.read().decode("utf-8", "replace").strip().splitlines()
            raise GitError(f"git log failed: {msg[-1] if msg else f'exit {proc.returncode}'}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        errors.close()


def chain_dates(repo: str, rev: str) -> list[tuple[str, int]]:
    """(commit, committer time as a Unix timestamp) along the first-parent chain, oldest first."""
    proc = git(repo, "log", "--first-parent", "--reverse", "--format=%H %ct", "--end-of-options",
               rev)
    out = []
    for line in proc.stdout.decode().splitlines():
        sha, _, ts = line.partition(" ")
        out.append((sha, int(ts)))
    return out


def side_commits(repo: str, rev: str, chain: set[str]) -> dict[str, list[tuple[str, str]]]:
    """For each merge commit on the chain, the commits it brought in (newest first) with their
    messages: ``{merge: [(sha, message), ...]}``. One ``git log`` over the whole history.

    Used to find a revert (and its reason) made on a branch that landed through a merge commit,
    and to map a reverted branch commit to the merge that put it on main.
    """
    proc = git(repo, "log", "--topo-order", "--format=%x01%H%x00%P%x00%B%x00", "--end-of-options",
               rev)
    parents: dict[str, list[str]] = {}
    messages: dict[str, str] = {}
    for chunk in proc.stdout.split(b"\x01")[1:]:
        parts = chunk.split(b"\0")
        if len(parts) < 3:
            continue
        sha = parts[0].decode()
        parents[sha] = parts[1].decode().split()
        messages[sha] = parts[2].decode("utf-8", "replace")
    out: dict[str, list[tuple[str, str]]] = {}
    seen: set[str] = set()
    for merge in chain:
        ps = parents.get(merge, [])
        if len(ps) < 2:
            continue
        stack = list(ps[1:])
        found: list[tuple[str, str]] = []
        while stack:
            c = stack.pop()
            if c in chain or c in seen or c not in parents:
                continue
            seen.add(c)
            found.append((c, messages.get(c, "")))
            stack.extend(parents[c])
        out[merge] = found
    return out


class BlobReader(CatFile):
    """Blob contents through one long-lived ``git cat-file --batch`` process."""

    def read(self, blob: str) -> bytes:  # type: ignore[override]
        return self.read_many([blob])[0]


