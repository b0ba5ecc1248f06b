"""Helpers shared by the lineage tests (a uniquely named module: conftest.py is not importable
by name when several test folders have one)."""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GIT_ENV = {"GIT_AUTHOR_NAME": "Lineage Test", "GIT_AUTHOR_EMAIL": "ml@example.com",
           "GIT_COMMITTER_NAME": "Lineage Test", "GIT_COMMITTER_EMAIL": "ml@example.com"}
# Variables that would leak the CI this suite runs in into the records under test.
CI_VARS = ("GITHUB_RUN_ID", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL", "GITHUB_RUN_ATTEMPT",
           "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_JOB_URL", "BUILDKITE_BUILD_URL",
           "BUILD_URL", "CIRCLE_BUILD_URL", "BUILD_BUILDID", "MLREG_IMAGE_DIGEST",
           "MLREG_REGISTRY")


def git(repo: str, *args: str) -> str:
    proc = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, check=True)
    return proc.stdout.strip()


def run_job(repo: str, lake: str, out: str, *, env: dict | None = None,
            python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    """Run the committed training job in ``repo`` as its own process."""
    script = os.path.join(repo, "training", "train_job.py")
    return subprocess.run([python, script, repo, lake, out], capture_output=True, text=True,
                          cwd=repo, env={**os.environ, **(env or {})}, check=False)


def cli(capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001 - pytest's capsys
    """Run ``mlreg ARGS`` in-process through the real entry point; (exit code, stdout, stderr)."""
    from mlreg.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
