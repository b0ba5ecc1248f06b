"""Shared fixtures: real git repositories in temp dirs, the example registry, CLI runner."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PATHS = ["mlreg.yaml", "production.yaml", "policies", "models", "examples/store"]

# Commits made by tests must not depend on the machine's git configuration.
os.environ.update({
    "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
})
os.environ.pop("MLREG_REGISTRY", None)


def git(repo: Path | str, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def copy_example(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for rel in EXAMPLE_PATHS:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture
def example_registry(tmp_path: Path) -> Path:
    """A copy of the example registry at the top of this repository, committed in a git repo."""
    repo = copy_example(tmp_path / "registry")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example registry")
    return repo


def tree_digest(root: Path) -> str:
    """Digest of every file under root (except .git): proves nothing was changed."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if ".git" in path.relative_to(root).parts or not path.is_file():
            continue
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-400:]!r}, err={self.err[-400:]!r})"


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``mlreg ARGS`` in-process through the real entry point (error mapping included)."""
    from mlreg.cli import main

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        old = os.getcwd()
        capsys.readouterr()
        try:
            if cwd is not None:
                os.chdir(cwd)
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            os.chdir(old)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
