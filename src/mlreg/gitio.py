"""The git binary, used as a library: run commands, read trees and blobs at a revision.

Everything goes through the real ``git`` executable (no libgit2): what users run is what we test.
Blobs are read through one long-lived ``git cat-file --batch`` process per repository, so reading
10,000 records costs one process, not 10,000.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from mlreg.errors import GitError, NotFound

__all__ = ["git", "CatFile", "GitTree", "TreeEntry", "resolve_commit", "is_shallow", "toplevel"]

_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def git(repo: str, *args: str, input: bytes | None = None, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``git -C repo args...``; raise GitError with git's own message when it fails."""
    full_env = {**os.environ, **_ENV, **(env or {})}
    try:
        proc = subprocess.run(["git", "-C", repo, *args], input=input, capture_output=True,
                              env=full_env, check=False)
    except FileNotFoundError:
        raise GitError("the git executable was not found on PATH; install git") from None
    if check and proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {msg[-1] if msg else f'exit {proc.returncode}'}")
    return proc


def toplevel(path: str) -> str | None:
    proc = git(path, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip()


def is_shallow(repo: str) -> bool:
    proc = git(repo, "rev-parse", "--is-shallow-repository", check=False)
    return proc.stdout.decode().strip() == "true"


def resolve_commit(repo: str, rev: str) -> str:
    """The full commit id of ``rev``, or NotFound with a hint for shallow clones."""
    if rev.startswith("-"):
        raise NotFound(f"revision {rev!r} is not a valid revision name")
    proc = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}",
               check=False)
    if proc.returncode != 0:
        if toplevel(repo) is None:
            raise NotFound(f"{repo} is not inside a git repository; cannot read revision {rev!r}")
        hint = ""
        if is_shallow(repo):
            hint = (" (this is a shallow clone: fetch the full history, e.g. "
                    "actions/checkout with fetch-depth: 0)")
        raise NotFound(f"revision {rev!r} not found in {repo}{hint}")
    return proc.stdout.decode().strip()


class CatFile:
    """One long-lived ``git cat-file --batch`` process: the single blob reader of mlreg.

    ``read_object`` asks for one object by any name (``REV:PATH`` or an id) and answers None when
    it is missing or not a blob; ``read_many`` pipelines blob ids in batches (no round trip per
    blob; a batch of ids fits in the pipe, so neither side can block the other) and raises when
    one cannot be read.
    """

    def __init__(self, repo: str) -> None:
        self.repo = repo
        self._proc: subprocess.Popen[bytes] | None = None

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                ["git", "-C", self.repo, "cat-file", "--batch"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, **_ENV})
        return self._proc

    def read_object(self, name: str) -> bytes | None:
        if "\n" in name:
            raise ValueError("object names cannot contain a newline")
        proc = self._ensure()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(name.encode("utf-8", "surrogateescape") + b"\n")
        proc.stdin.flush()
        parts = proc.stdout.readline().split()
        if len(parts) != 3:  # "<name> missing" (or ambiguous)
            return None
        if parts[1] != b"blob":
            proc.stdout.read(int(parts[2]) + 1)
            return None
        data = proc.stdout.read(int(parts[2]))
        proc.stdout.read(1)
        return data

    def read_many(self, blobs: list[str], batch: int = 400) -> list[bytes]:
        """The contents of ``blobs``, in order."""
        proc = self._ensure()
        assert proc.stdin is not None and proc.stdout is not None
        out: list[bytes] = []
        for start in range(0, len(blobs), batch):
            part = blobs[start: start + batch]
            proc.stdin.write("".join(f"{b}\n" for b in part).encode())
            proc.stdin.flush()
            for b in part:
                header = proc.stdout.readline().split()
                if len(header) != 3 or header[1] != b"blob":
                    raise GitError(f"git cat-file could not read blob {b}")
                out.append(proc.stdout.read(int(header[2])))
                proc.stdout.read(1)
        return out

    def close(self) -> None:
        if self._proc is not None:
            try:
                if self._proc.stdin:
                    self._proc.stdin.close()
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
            self._proc = None

    def __enter__(self) -> CatFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


@dataclass(frozen=True)
class TreeEntry:
    path: str
    blob: str
    size: int


class GitTree:
    """Read-only view of the files of one commit, without a checkout."""

    def __init__(self, repo: str, commit: str) -> None:
        self.repo = repo
        self.commit = commit
        self._entries: dict[str, TreeEntry] | None = None
        self._cat = CatFile(repo)

    def entries(self) -> dict[str, TreeEntry]:
        if self._entries is None:
            proc = git(self.repo, "ls-tree", "-r", "-z", "--long", "--full-tree", self.commit)
            out: dict[str, TreeEntry] = {}
            for item in proc.stdout.split(b"\0"):
                if not item:
                    continue
                meta, _, path = item.partition(b"\t")
                mode, kind, blob, size = meta.split()
                if kind != b"blob" or mode == b"120000":  # skip submodules and symlinks
                    continue
                p = path.decode("utf-8", "surrogateescape")
                out[p] = TreeEntry(p, blob.decode(), int(size))
            self._entries = out
        return self._entries

    def read(self, path: str) -> bytes | None:
        entry = self.entries().get(path)
        if entry is None:
            return None
        return self.read_blob(entry.blob)

    def read_blob(self, blob: str) -> bytes:
        return self._cat.read_many([blob])[0]

    def close(self) -> None:
        self._cat.close()
