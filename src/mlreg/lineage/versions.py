"""Version numbers for new records: the next integer, and no silent clash with main.

A new version is one more than the leading integer of the highest existing version (natural
order: 9 < 10, 1.2 < 1.10) among the working tree *and* the registry's main branch
(``main_branch`` in mlreg.yaml, default ``main``, plus ``origin/<main_branch>`` when that ref
exists). Looking at main catches the case of two training jobs on two branches: the second one
would otherwise claim the number the first one already merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlreg.errors import NotFound, RegistryError
from mlreg.names import check_name, check_version, natural_key

__all__ = ["VersionPlan", "plan_version", "existing_versions", "next_version"]

_LEADING_INT = re.compile(r"^(\d+)")


@dataclass(frozen=True)
class VersionPlan:
    """The chosen version and what it was chosen among."""

    model: str
    version: str
    working: tuple[str, ...]
    # version -> (ref name, commit) of the first main ref that has it
    at_main: dict[str, tuple[str, str]] = field(default_factory=dict)


def _main_refs(root: str, main_branch: str) -> list[tuple[str, str]]:
    """``(ref name, commit)`` of ``<main_branch>`` and ``origin/<main_branch>`` that exist."""
    from mlreg.gitio import git, toplevel

    if toplevel(root) is None:
        return []
    out = []
    for name, full in ((main_branch, f"refs/heads/{main_branch}"),
                       (f"origin/{main_branch}", f"refs/remotes/origin/{main_branch}")):
        proc = git(root, "rev-parse", "--verify", "--quiet", f"{full}^{{commit}}", check=False)
        if proc.returncode == 0:
            out.append((name, proc.stdout.decode().strip()))
    return out


def existing_versions(root: str, model: str, *, main_branch: str = "main"
                      ) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Versions of ``model`` in the working tree, and those at the main refs (with the ref)."""
    from mlreg.registry import Registry

    check_name(model, "model")
    with Registry.open(root) as reg:
        working = reg.versions(model)
    at_main: dict[str, tuple[str, str]] = {}
    for ref, commit in _main_refs(root, main_branch):
        try:
            reg = Registry.open(root, rev=commit)
        except NotFound:  # main predates the registry
            continue
        with reg:
            for v in reg.versions(model):
                at_main.setdefault(v, (ref, commit))
    return working, at_main


def next_version(versions: list[str] | set[str]) -> str:
    """One more than the leading integer of the highest version in natural order ("1" if none)."""
    numbered = [v for v in versions if _LEADING_INT.match(v)]
    if not numbered:
        return "1"
    highest = max(numbered, key=natural_key)
    n = int(_LEADING_INT.match(highest).group(1)) + 1  # type: ignore[union-attr]
    taken = set(versions)
    while str(n) in taken:
        n += 1
    return str(n)


def plan_version(root: str, model: str, *, requested: str | None = None,
                 main_branch: str = "main") -> VersionPlan:
    """Choose the version for a new record of ``model``; refuse a clash with main or the tree."""
    working, at_main = existing_versions(root, model, main_branch=main_branch)
    if requested is None:
        version = next_version(set(working) | set(at_main))
    else:
        version = check_version(requested)
    path = f"models/{model}/{version}.yaml"
    if version in working:
        raise RegistryError(f"{model}@{version} already exists ({path}); records are immutable: "
                            "capture a new version instead")
    if version in at_main:
        ref, commit = at_main[version]
        raise RegistryError(
            f"{model}@{version} already exists at {ref} (commit {commit[:12]}: {path}) but not "
            f"in this working tree: another training job has claimed version {version}. Update "
            f"this branch from {ref} and capture again, or choose another version")
    return VersionPlan(model=model, version=version, working=tuple(working), at_main=at_main)
