from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mlreg.errors import InvalidName, NotFound, RegistryError
from mlreg.registry import Registry
from mlreg.validate import validate_registry
from testkit import git


def snapshot(reg: Registry) -> dict:
    """Everything the read API answers, as plain data."""
    versions = reg.version_files()
    return {
        "models": reg.models(),
        "versions": versions,
        "records": {(m, v): reg.record(m, v) for m, vs in versions.items() for v in vs},
        "model_info": {m: reg.model_info(m) for m in reg.models()},
        "deployments": {k: d.to_dict() for k, d in reg.deployments().items()},
        "latest": {m: str(reg.resolve(f"{m}@latest")) for m in versions},
        "services": {s: str(reg.resolve(s)) for s in reg.deployments()},
        "settings": reg.settings(),
        "validate": [p.to_dict() for p in validate_registry(reg)[0]],
        "policies": reg.policy_files(),
    }


def test_reading_a_revision_equals_reading_its_checkout(example_registry: Path,
                                                        tmp_path: Path) -> None:
    repo = example_registry
    first = git(repo, "rev-parse", "HEAD")
    # Move the working tree on: a new version, a promotion, an invalid edit left uncommitted.
    shutil.copy(repo / "models/fraud/127.yaml", repo / "models/fraud/130.yaml")
    text = (repo / "models/fraud/130.yaml").read_text().replace("version: '127'", "version: '130'")
    (repo / "models/fraud/130.yaml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "fraud 130")
    (repo / "production.yaml").write_text(
        (repo / "production.yaml").read_text().replace("stable: '126'", "stable: '130'"))

    checkout = tmp_path / "checkout"
    git(repo, "worktree", "add", "-q", "--detach", str(checkout), first)
    with Registry.open(str(checkout)) as a, Registry.open(str(repo), rev=first) as b:
        assert snapshot(a) == snapshot(b)
    with Registry.open(str(repo), rev="HEAD") as head, Registry.open(str(repo)) as wt:
        assert head.versions("fraud")[-1] == "130" and "127" in head.versions("fraud")
        assert head.deployment("fraud-scoring").stable == "126"
        assert wt.deployment("fraud-scoring").stable == "130"


def test_revision_reads_need_no_checkout_and_one_cat_file(example_registry: Path) -> None:
    with Registry.open(str(example_registry), rev="main") as reg:
        for m, vs in reg.version_files().items():
            for v in vs:
                reg.record(m, v)
        batch = reg.source.tree._cat._proc
        assert batch is not None and batch.poll() is None  # one long-lived process served all


def test_missing_revision_and_shallow_clone_hint(example_registry: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="revision 'nope' not found"):
        Registry.open(str(example_registry), rev="nope")
    git(example_registry, "commit", "-q", "--allow-empty", "-m", "second")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{example_registry}",
                    str(shallow)], check=True)
    with pytest.raises(NotFound, match="shallow clone"):
        Registry.open(str(shallow), rev="HEAD~1")


def test_natural_order_and_latest(example_registry: Path) -> None:
    base = (example_registry / "models/fraud/127.yaml").read_text()
    for v in ("9", "10", "1000", "128"):
        (example_registry / f"models/fraud/{v}.yaml").write_text(
            base.replace("version: '127'", f"version: '{v}'"))
    with Registry.open(str(example_registry)) as reg:
        assert reg.versions("fraud") == ["9", "10", "126", "127", "128", "1000"]
        assert str(reg.resolve("fraud@latest")) == "fraud@1000"


def test_resolve_grammar(example_registry: Path) -> None:
    with Registry.open(str(example_registry)) as reg:
        r = reg.resolve("fraud-scoring")
        assert (r.model, r.version) == ("fraud", "126")
        assert r.deployment is not None and r.deployment.service == "fraud-scoring"
        assert str(reg.resolve("fraud@127")) == "fraud@127"
        with pytest.raises(NotFound, match="known versions: 126, 127"):  # the last five
            reg.resolve("fraud@999")
        with pytest.raises(NotFound, match="is a model, not a service"):
            reg.resolve("fraud")
        with pytest.raises(NotFound, match="neither a service"):
            reg.resolve("nothing-here")
        for bad in ("../etc@1", "fraud@../1", "Fraud@1", "fraud@v1", "a b", ".hidden"):
            with pytest.raises(InvalidName):
                reg.resolve(bad)


def test_record_whose_content_disagrees_with_its_path(example_registry: Path) -> None:
    p = example_registry / "models/fraud/127.yaml"
    p.write_text(p.read_text().replace("version: '127'", "version: '128'"))
    with Registry.open(str(example_registry)) as reg, pytest.raises(RegistryError,
                                                                     match="path says fraud@127"):
        reg.record("fraud", "127")


def test_not_a_registry(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not an mlreg registry"):
        Registry.open(str(tmp_path))


def test_registry_in_a_subfolder_of_the_repository(tmp_path: Path) -> None:
    from testkit import copy_example

    repo = tmp_path / "mono"
    copy_example(repo / "ml" / "registry")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x")
    with Registry.open(str(repo / "ml" / "registry"), rev="HEAD") as reg:
        assert reg.versions("fraud")[:2] == ["126", "127"]
