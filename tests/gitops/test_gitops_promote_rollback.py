"""promote and rollback on real git: idempotent, nothing checked out, refusals that name commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from flowkit import Flow, run_git

from mlreg.errors import NotFound, RegistryError
from mlreg.gitops.manifest import ServiceState, edit_service
from mlreg.gitops.promote import plan_state, promote
from mlreg.gitops.rollback import rollback
from mlreg.registry import Registry


def _deployment(flow: Flow, rev: str, service: str):
    with Registry.open(str(flow.work), rev) as reg:
        return reg.deployment(service)


def test_plan_state_rules() -> None:
    stable = ServiceState("fraud", "126")
    canary = ServiceState("fraud", "126", "127", 5.0)
    assert plan_state(stable, "fraud", "127", 5)[0] == canary
    assert plan_state(canary, "fraud", "127", None)[0] == ServiceState("fraud", "127")
    assert plan_state(canary, "fraud", "128", None)[0] == ServiceState("fraud", "128", "127", 5.0)
    assert plan_state(canary, "other", "1", None)[0] == ServiceState("other", "1")
    assert plan_state(None, "fraud", "1", None)[0] == ServiceState("fraud", "1")
    for args in ((None, "fraud", "1", 5), (stable, "fraud", "126", 5), (stable, "x", "1", 5)):
        with pytest.raises(RegistryError):
            plan_state(*args)


def test_promote_without_a_remote_or_forge_stops_at_the_local_branch(tmp_path: Path,
                                                                      run_cli) -> None:
    flow = Flow(tmp_path)
    run_git(flow.work, "remote", "remove", "origin")
    (flow.work / "notes.txt").write_text("uncommitted work\n")
    before_head = flow.sha("HEAD")
    res = run_cli("promote", "fraud-scoring", "fraud@127", "--canary", "5", "--reason",
                  "weekly retrain", cwd=flow.work)
    assert res.code == 0, res
    assert "no pull request opened" in res.out and "git merge --squash" in res.out
    branch = "mlreg/promote/fraud-scoring-fraud-127-canary5"
    assert flow.sha("HEAD") == before_head and (flow.work / "notes.txt").exists()
    assert run_git(flow.work, "diff", "--name-only", f"main..{branch}") == "production.yaml"
    assert run_git(flow.work, "rev-list", "--count", f"main..{branch}") == "1"
    dep = _deployment(flow, branch, "fraud-scoring")
    assert (dep.stable, dep.canary, dep.canary_percent) == ("126", "127", 5)
    # Again: the same branch, no second commit.
    again = run_cli("promote", "fraud-scoring", "fraud@127", "--canary", "5", cwd=flow.work)
    assert again.code == 0 and "reused" in again.out
    assert run_git(flow.work, "rev-list", "--count", f"main..{branch}") == "1"


def test_promote_noop_unknown_version_and_a_foreign_branch(flow: Flow, run_cli) -> None:
    res = run_cli("promote", "fraud-scoring", "fraud@126", cwd=flow.work)
    assert res.code == 0 and "already serves" in res.out
    assert "mlreg/" not in run_git(flow.work, "branch", "-a")
    res = run_cli("promote", "fraud-scoring", "fraud@999", cwd=flow.work)
    assert res.code == 2 and "not on origin/main" in res.err
    # A branch of that name holding something else is not silently reused or overwritten.
    flow.commit_change("mlreg/promote/fraud-scoring-fraud-127",
                       {"production.yaml": "schema: mlreg/deployments/v1\nservices: {}\n"}, "x")
    with pytest.raises(RegistryError, match="already exists"):
        promote(str(flow.work), "fraud-scoring", "fraud@127", forge=None)


def test_promoting_the_canary_makes_it_stable(flow: Flow) -> None:
    up = promote(str(flow.work), "fraud-scoring", "fraud@127", canary=5, forge=None)
    flow.squash_merge(up.published.branch)
    full = promote(str(flow.work), "fraud-scoring", "fraud@127", forge=None)
    assert any("becomes stable" in n for n in full.notes)
    dep = _deployment(flow, full.published.commit, "fraud-scoring")
    assert (dep.stable, dep.canary) == ("127", None)


def test_rollback_does_not_conflict_with_a_later_change_to_the_next_service(flow: Flow) -> None:
    work = str(flow.work)
    p = promote(work, "fraud-scoring", "fraud@127", forge=None)
    promotion = flow.squash_merge(p.published.branch)
    q = promote(work, "homepage", "recsys@41", forge=None)  # the block right below
    flow.squash_merge(q.published.branch)
    rb = rollback(work, "fraud-scoring", reason="p99", forge=None)
    assert rb.target == promotion
    assert _deployment(flow, rb.published.commit, "fraud-scoring").stable == "126"
    assert _deployment(flow, rb.published.commit, "homepage").stable == "41"
    assert run_git(flow.work, "diff", "--stat", f"origin/main..{rb.published.commit}").count(
        "production.yaml") == 1


def test_rollback_reverts_a_merge_commit_against_its_first_parent(flow: Flow) -> None:
    work = str(flow.work)
    p = promote(work, "fraud-scoring", "fraud@127", forge=None)
    flow.git("checkout", "-q", "main")
    flow.git("merge", "-q", "--no-ff", "-m", "Merge promotion", f"origin/{p.published.branch}")
    flow.git("push", "-q", "origin", "main")
    merge = flow.sha("HEAD")
    rb = rollback(work, "fraud-scoring", forge=None)
    assert rb.target == merge
    message = run_git(flow.work, "log", "-1", "--format=%B", rb.published.commit)
    assert f"This reverts commit {merge}, reversing\nchanges made to" in message
    flow.git("checkout", "-q", "-B", "manual", "origin/main")
    flow.git("revert", "--no-edit", "-m", "1", merge)
    assert flow.sha("manual^{tree}") == flow.sha(f"{rb.published.commit}^{{tree}}")


def test_rollback_refusals(flow: Flow, run_cli) -> None:
    work = str(flow.work)
    text = (flow.work / "production.yaml").read_text()
    both = edit_service(edit_service(text, "fraud-scoring", ServiceState("fraud", "127")),
                        "post-play", ServiceState("recsys", "42"))
    flow.commit_change("two", {"production.yaml": both}, "two services at once")
    two = flow.squash_merge("two")
    with pytest.raises(RegistryError, match="also post-play"):
        rollback(work, "fraud-scoring", forge=None)
    with pytest.raises(RegistryError, match=f"superseded: {two[:12]}"):
        rollback(work, "post-play", commit=flow.sha("origin/main~1"), forge=None)
    new = edit_service(both, "fraud-eu", ServiceState("fraud", "127"))
    flow.commit_change("eu", {"production.yaml": new}, "a new service")
    flow.squash_merge("eu")
    with pytest.raises(RegistryError, match="created service fraud-eu"):
        rollback(work, "fraud-eu", forge=None)
    with pytest.raises(NotFound):
        rollback(work, "nope", forge=None)
    res = run_cli("rollback", "nope", cwd=flow.work)
    assert res.code == 2


def test_a_conflicting_revert_is_refused(tmp_path: Path) -> None:
    """Services that share lines (no blank line, a one-line block) cannot be reverted apart."""
    flow = Flow(tmp_path)
    packed = ("schema: mlreg/deployments/v1\nservices:\n  fraud-scoring:\n    model: fraud\n"
              "    stable: '126'\n  post-play: {model: recsys, stable: '41'}\n")
    flow.commit_change("pack", {"production.yaml": packed}, "packed manifest")
    flow.squash_merge("pack")
    p = promote(str(flow.work), "fraud-scoring", "fraud@127", forge=None)
    flow.squash_merge(p.published.branch)
    flow.commit_change("pp", {"production.yaml": (flow.work / "production.yaml").read_text()
                              .replace("stable: '41'}", "stable: '42'}")}, "post-play 42")
    flow.squash_merge("pp")
    with pytest.raises(RegistryError, match="conflicts with later changes"):
        rollback(str(flow.work), "fraud-scoring", forge=None)
