"""Version numbers: the next integer over the working tree and main; a clash is a clear error."""

from __future__ import annotations

import os

import pytest
from lineage_helpers import git

from mlreg.errors import RegistryError
from mlreg.lineage import capture
from mlreg.lineage.versions import next_version, plan_version


@pytest.mark.parametrize("versions, expected", [
    ([], "1"),
    (["1", "2"], "3"),
    (["9", "10"], "11"),  # natural order, not string order
    (["1.2", "1.10"], "2"),
    (["2", "2.1"], "3"),
    (["126", "127", "exp"], "128"),
])
def test_next_version(versions, expected):
    assert next_version(versions) == expected


def touch(repo: str, *rels: str) -> None:
    for rel in rels:
        path = os.path.join(repo, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write("placeholder\n")


@pytest.fixture
def branched(repo) -> str:
    """main has fraud@1 and fraud@2; the working tree is a branch made when main had only 1."""
    touch(repo, "models/fraud/1.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "fraud 1")
    git(repo, "checkout", "-q", "-b", "experiment")
    git(repo, "checkout", "-q", "main")
    touch(repo, "models/fraud/2.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "fraud 2 (another job, merged)")
    git(repo, "checkout", "-q", "experiment")
    assert not os.path.exists(os.path.join(repo, "models/fraud/2.yaml"))
    return repo


def test_next_number_skips_what_main_already_has(branched):
    plan = plan_version(branched, "fraud")
    assert plan.version == "3"
    assert plan.working == ("1",) and set(plan.at_main) == {"1", "2"}


def test_a_version_taken_at_main_is_a_clear_error(branched):
    with pytest.raises(RegistryError) as err:
        plan_version(branched, "fraud", requested="2")
    msg = str(err.value)
    assert "fraud@2 already exists at main" in msg
    assert "models/fraud/2.yaml" in msg and "not in this working tree" in msg
    assert err.value.exit_code == 2


def test_capture_refuses_the_clash_before_training(branched):
    with pytest.raises(RegistryError, match="already exists at main"):
        capture("fraud", registry=branched, version="2", code_dir=branched)
    assert not os.path.exists(os.path.join(branched, "models/fraud/2.yaml"))


def test_origin_main_counts_too(branched):
    git(branched, "checkout", "-q", "-b", "scratch", "main")
    touch(branched, "models/fraud/5.yaml")
    git(branched, "add", "-A")
    git(branched, "commit", "-q", "-m", "fraud 5 on the remote")
    git(branched, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(branched, "checkout", "-q", "experiment")
    git(branched, "branch", "-D", "scratch")
    assert plan_version(branched, "fraud").version == "6"
    with pytest.raises(RegistryError, match=r"fraud@5 already exists at origin/main"):
        plan_version(branched, "fraud", requested="5")


def test_an_existing_version_in_the_tree_is_refused(branched):
    with pytest.raises(RegistryError, match="fraud@1 already exists"):
        plan_version(branched, "fraud", requested="1")


def test_explicit_version_and_other_main_branch_names(repo):
    assert plan_version(repo, "fraud", requested="2024.01.25").version == "2024.01.25"
    touch(repo, "models/fraud/7.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "7")
    git(repo, "branch", "-m", "main", "trunk")
    git(repo, "checkout", "-q", "-b", "work")
    os.remove(os.path.join(repo, "models/fraud/7.yaml"))
    assert plan_version(repo, "fraud").version == "1"  # 'main' does not exist here
    assert plan_version(repo, "fraud", main_branch="trunk").version == "8"


def test_a_registry_outside_git_counts_its_files(tmp_path):
    root = tmp_path / "plain"
    (root / "models" / "m").mkdir(parents=True)
    (root / "mlreg.yaml").write_text("schema: mlreg/settings/v1\nartifact_store: store\n")
    (root / "models" / "m" / "4.yaml").write_text("x\n")
    assert plan_version(str(root), "m").version == "5"
