"""Helpers shared by the tests (imported as ``testkit``; conftest files only hold fixtures)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

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




def engine_path(mp, compiled: bool) -> None:
    """Make evaluate_predictions (and the gate) run on the compiled kernels (``compiled``) or on
    the numpy passes, whatever the input size and numba's cache (``mp``: a MonkeyPatch)."""
    import mlreg.metrics.engine as engine_mod

    bound = 0 if compiled else 10**12
    mp.setattr(engine_mod, "COMPILED_MIN_ROWS", bound)
    mp.setattr(engine_mod, "COMPILED_COLD_MIN_ROWS", bound)
