"""Shared fixtures: real git repositories in temp dirs, the example registry, CLI runner."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit import CliResult, copy_example, git


@pytest.fixture
def example_registry(tmp_path: Path) -> Path:
    """A copy of the example registry at the top of this repository, committed in a git repo."""
    repo = copy_example(tmp_path / "registry")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example registry")
    return repo


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
