"""Helpers for the PR-flow tests: a bare origin, a working clone, squash merges like GitHub's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from testkit import copy_example


def run_git(repo: Path | str, *args: str, date: str | None = None,
            check: bool = True) -> str:
    env = dict(os.environ)
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


class Flow:
    """``origin`` (bare) and ``work`` (a clone on main) holding a registry."""

    def __init__(self, root: Path, *, example: bool = True, date: str | None = None) -> None:
        self.root = root
        seed = root / "seed"
        if example:
            copy_example(seed)
        else:
            seed.mkdir(parents=True)
        run_git(seed, "init", "-q", "-b", "main")
        run_git(seed, "add", "-A")
        run_git(seed, "commit", "-q", "-m", "registry", date=date)
        self.origin = root / "origin.git"
        run_git(root, "clone", "-q", "--bare", str(seed), str(self.origin))
        self.work = root / "work"
        run_git(root, "clone", "-q", str(self.origin), str(self.work))
        self.prs = 0

    def git(self, *args: str, date: str | None = None) -> str:
        return run_git(self.work, *args, date=date)

    def sha(self, rev: str) -> str:
        return self.git("rev-parse", rev)

    def commit_change(self, branch: str, files: dict[str, str | None], message: str,
                      date: str | None = None) -> str:
        """A PR branch from origin/main with ``files`` written (None deletes), pushed."""
        self.git("fetch", "-q", "origin")
        self.git("checkout", "-q", "-B", branch, "origin/main")
        for rel, text in files.items():
            p = self.work / rel
            if text is None:
                p.unlink()
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, date=date)
        self.git("push", "-q", "-f", "origin", branch)
        self.git("checkout", "-q", "main")
        return self.sha(f"origin/{branch}")

    def squash_merge(self, branch: str, date: str | None = None, number: int | None = None
                     ) -> str:
        """Merge ``origin/<branch>`` into main the way GitHub's squash merge does for a
        one-commit PR: one commit, the PR commit's message with ' (#N)' after the subject."""
        self.prs += 1
        number = number or self.prs
        self.git("fetch", "-q", "origin")
        self.git("checkout", "-q", "main")
        self.git("reset", "-q", "--hard", "origin/main")
        message = self.git("log", "-1", "--format=%B", f"origin/{branch}")
        subject, _, body = message.partition("\n")
        self.git("merge", "-q", "--squash", f"origin/{branch}")
        self.git("commit", "-q", "-m", f"{subject} (#{number})\n{body}", date=date)
        self.git("push", "-q", "origin", "main")
        return self.sha("HEAD")

    def refs(self) -> dict[str, str]:
        out = run_git(self.origin, "for-each-ref", "--format=%(refname:short) %(objectname)",
                      "refs/heads")
        return dict(line.split(" ", 1) for line in out.splitlines())
