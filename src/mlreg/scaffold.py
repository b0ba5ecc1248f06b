"""``mlreg init``: scaffold an empty registry from the templates shipped in the package.

All target paths are checked before anything is written, so a refusal leaves no half-made
registry behind.
"""

from __future__ import annotations

import os
from importlib import resources

from mlreg.errors import RegistryError

__all__ = ["init_registry", "template_files"]

# template file -> path in the registry
_RENAMES = {"gitignore": ".gitignore"}


def template_files() -> dict[str, bytes]:
    """Registry-relative path -> content of every template file."""
    out: dict[str, bytes] = {}
    root = resources.files("mlreg.templates").joinpath("registry")

    def walk(node, prefix: str) -> None:  # noqa: ANN001 - importlib Traversable
        for child in node.iterdir():
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, rel + "/")
            elif not child.name.endswith((".pyc",)):
                out[_RENAMES.get(rel, rel)] = child.read_bytes()

    walk(root, "")
    return out


def init_registry(directory: str, *, store: str = ".mlreg-store", owners: list[str] | None = None,
                  repo: str | None = None) -> list[str]:
    """Create the registry files in ``directory``; return the paths written."""
    from mlreg.gitio import git, toplevel
    from mlreg.names import uri_problem

    problem = uri_problem(store)
    if problem:
        raise RegistryError(f"--store: {problem}")
    files = template_files()
    files["models/.gitkeep"] = b""
    settings = files["mlreg.yaml"].decode()
    settings = settings.replace("artifact_store: .mlreg-store", f"artifact_store: {store}")
    if owners:
        settings += "platform_owners:\n" + "".join(f"  - '{o}'\n" for o in owners)
    if repo:
        settings += f"forge:\n  type: github\n  repo: {repo}\n  token_env: GITHUB_TOKEN\n"
    files["mlreg.yaml"] = settings.encode()
    from mlreg.gitops.codeowners import render_codeowners
    from mlreg.yamlio import load_yaml_text

    if owners or repo:
        from mlreg.records import check_document

        check_document(load_yaml_text(files["mlreg.yaml"], "mlreg.yaml"), "settings")
    # CODEOWNERS from the settings just written, so --owner takes effect at once.
    files[".github/CODEOWNERS"] = render_codeowners(
        load_yaml_text(files["mlreg.yaml"], "mlreg.yaml").data, {}).encode()
    if not store.startswith((".mlreg-store",)) and ".gitignore" in files:
        del files[".gitignore"]

    existing = [p for p in files if os.path.lexists(os.path.join(directory, p))]
    if existing:
        raise RegistryError(f"{directory}: refusing to overwrite existing "
                            f"{', '.join(sorted(existing))} (init only creates new files)")
    os.makedirs(directory, exist_ok=True)
    if toplevel(directory) is None:
        git(directory, "init", "-q", "-b", "main")
    written = []
    for rel in sorted(files):
        full = os.path.join(directory, *rel.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "xb") as fh:
            fh.write(files[rel])
        written.append(rel)
    return written
