"""The whole pull-request flow over real git repositories and the fake GitHub (through PyGithub).

promote -> gate (base/head) passes -> report posts the comment once (edits, never duplicates) ->
merge -> a later promotion of another service -> rollback of the first reverts cleanly -> a
superseded rollback is refused -> the gate refuses a PR that edits a merged record.
"""

from __future__ import annotations

import json

import pytest
from flowkit import Flow, run_git

from fakegithub.server import BOT_LOGIN, BOT_TOKEN
from mlreg.errors import RegistryError
from mlreg.gitops.promote import promote
from mlreg.gitops.rollback import rollback
from mlreg.registry import Registry


def _report(run_cli, flow: Flow, result: str, pr: int, head_sha: str, *extra: str):
    return run_cli("report", "--result", result, "--pr", str(pr), "--head-sha", head_sha,
                   "--repo", "o/r", "--api-url", flow.fake.base_url, "--token-env",
                   "MLREG_TEST_TOKEN", *extra, cwd=flow.work)


def test_promote_gate_report_merge_rollback(forge_flow: Flow, run_cli, tmp_path,
                                            monkeypatch) -> None:
    flow, fake = forge_flow, forge_flow.fake  # type: ignore[attr-defined]
    work = str(flow.work)
    untouched = run_git(flow.work, "status", "--porcelain")

    # 1. promote: a branch from origin/main, one commit, a push, a PR (opened once).
    first = promote(work, "fraud-scoring", "fraud@127", canary=5, reason="weekly retrain")
    pub = first.published
    assert first.action == "created" and pub is not None and pub.pr_number == 1
    again = promote(work, "fraud-scoring", "fraud@127", canary=5, reason="weekly retrain")
    assert again.action == "existing" and again.published.pr_number == 1
    assert again.published.pr_existing and again.published.commit == pub.commit
    assert fake.count("POST", r"/pulls$") == 1
    assert run_git(flow.work, "status", "--porcelain") == untouched  # nothing checked out
    assert flow.refs()[pub.branch] == pub.commit
    pr_body = fake.pull("o/r", 1).body
    assert "f3a9c71e2b8d4a6c9e0f1b2d3c4a5e6f7a8b9c0d" in pr_body  # code commit of fraud@127
    assert "models/fraud/127.yaml" in pr_body and "learning" in pr_body

    # 2. the gate over base/head passes and writes JSON + Markdown (+ the job summary).
    out = tmp_path / "out"
    out.mkdir()
    summary = out / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = run_cli("gate", "--base", "origin/main", "--head", f"origin/{pub.branch}",
                  "--json", str(out / "result.json"), "--markdown", str(out / "report.md"),
                  cwd=flow.work)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert res.code == 0, res
    doc = json.loads((out / "result.json").read_text())
    assert doc["schema"] == "mlreg/pr-gate/v1" and doc["verdict"] == "pass"
    promo = [c for c in doc["changes"] if c["kind"] == "promotion"]
    assert [c["promotion"]["change"] for c in promo] == ["canary"]
    assert promo[0]["promotion"]["from_version"] == "126"
    assert promo[0]["promotion"]["canary_percent"] == 5
    assert summary.read_text().startswith("<!-- mlreg:gate -->")

    # 3. report: one sticky comment, edited in place, never duplicated.
    r1 = _report(run_cli, flow, str(out / "result.json"), 1, pub.commit)
    assert r1.code == 0, r1
    assert "created" in r1.out
    r2 = _report(run_cli, flow, str(out / "result.json"), 1, pub.commit)
    assert r2.code == 0 and "unchanged" in r2.out
    ours = [c for c in fake.comments("o/r", 1) if c["user"] == BOT_LOGIN]
    assert len(ours) == 1 and "fraud@127" in ours[0]["body"]
    changed = dict(doc, notes=[*doc["notes"], "rerun"])
    (out / "result2.json").write_text(json.dumps(changed))
    r3 = _report(run_cli, flow, str(out / "result2.json"), 1, pub.commit, "--status")
    assert r3.code == 0 and "updated" in r3.out, r3
    assert len([c for c in fake.comments("o/r", 1) if c["user"] == BOT_LOGIN]) == 1
    assert fake.statuses("o/r", pub.commit)[-1]["state"] == "success"
    # An artifact naming a PR whose head is another commit posts nothing.
    wrong = _report(run_cli, flow, str(out / "result.json"), 1, "0" * 40)
    assert wrong.code == 1 and "not posting" in wrong.err
    assert len(fake.comments("o/r", 1)) == 1

    # 4. merge (squash), then a later promotion of another service, merged too.
    promotion_commit = flow.squash_merge(pub.branch, number=1)
    fake.merge_pull("o/r", 1)
    later = promote(work, "post-play", "recsys@42")
    assert later.published.pr_number == 2
    flow.squash_merge(later.published.branch, number=2)

    # 5. rollback of the first: git's revert of the promotion commit, clean, as a PR.
    rb = rollback(work, "fraud-scoring", reason="p99 latency spike")
    assert rb.target == promotion_commit
    assert rb.published.pr_number == 3
    message = run_git(flow.work, "log", "-1", "--format=%B", rb.published.commit)
    assert f"This reverts commit {promotion_commit}." in message
    assert "Reason: p99 latency spike" in message
    # Same tree as `git revert --no-edit` in a checkout of main.
    flow.git("checkout", "-q", "-B", "manual", "origin/main")
    flow.git("revert", "--no-edit", promotion_commit)
    assert flow.sha("manual^{tree}") == flow.sha(f"{rb.published.commit}^{{tree}}")
    flow.git("checkout", "-q", "main")
    with Registry.open(work, rb.published.commit) as reg:
        deps = reg.deployments()
    assert deps["fraud-scoring"].canary is None and deps["post-play"].stable == "42"
    gate_rb = run_cli("gate", "--base", "origin/main", "--head", rb.published.commit,
                      "--json", str(out / "rb.json"), cwd=flow.work)
    assert gate_rb.code == 0, gate_rb
    rb_doc = json.loads((out / "rb.json").read_text())
    assert rb_doc["changes"][0]["promotion"]["change"] == "canary-removed"
    assert rb_doc["results"][0]["mode"] == "rollback"
    rollback_commit = flow.squash_merge(rb.published.branch, number=3)

    # 6. superseded: reverting the promotion again is refused, naming the rollback commit.
    with pytest.raises(RegistryError, match=rollback_commit[:12]):
        rollback(work, "fraud-scoring", commit=promotion_commit)
    refused = run_cli("rollback", "fraud-scoring", cwd=flow.work)
    assert refused.code == 2 and "already a rollback" in refused.err

    # 7. the gate refuses a PR that edits a merged record, naming the file.
    record = flow.work / "models/fraud/126.yaml"
    edited = record.read_text().replace("description:", "description: tweaked;", 1)
    flow.commit_change("edit-record", {"models/fraud/126.yaml": edited}, "tweak a record")
    res = run_cli("gate", "--base", "origin/main", "--head", "origin/edit-record",
                  "--json", str(out / "edit.json"), cwd=flow.work)
    assert res.code == 1
    edit_doc = json.loads((out / "edit.json").read_text())
    assert edit_doc["verdict"] == "fail"
    bad = [c for c in edit_doc["changes"] if c["verdict"] == "fail"]
    assert bad[0]["subject"] == "models/fraud/126.yaml" and "immutable" in bad[0]["reason"]
    assert BOT_TOKEN not in json.dumps(edit_doc)


UBER = {
    "registry": "2024-01-25T09:00:00+00:00",
    "canary": "2024-01-26T10:00:00+00:00",
    "rollback": "2024-01-27T03:12:00+00:00",
}


def test_uber_timeline_is_recoverable_from_git_alone(tmp_path) -> None:
    """fraud v127 to a 5% canary on 2024-01-26; rolled back to v126 on 2024-01-27 because of a
    p99 latency spike. Afterwards git alone tells both facts and the reason."""
    flow = Flow(tmp_path, date=UBER["registry"])
    work = str(flow.work)
    up = promote(work, "fraud-scoring", "fraud@127", canary=5, forge=None)
    canary_commit = flow.squash_merge(up.published.branch, date=UBER["canary"])
    down = rollback(work, "fraud-scoring", reason="p99 latency spike", forge=None)
    rollback_commit = flow.squash_merge(down.published.branch, date=UBER["rollback"])

    log = run_git(flow.work, "log", "--date=short", "--format=%H %ad %s", "origin/main", "--",
                  "production.yaml").splitlines()
    assert [line.split(" ", 2)[:2] for line in log[:2]] == [
        [rollback_commit, "2024-01-27"], [canary_commit, "2024-01-26"]]
    assert "fraud@127" in log[1] and "5% canary" in log[1]
    message = run_git(flow.work, "log", "-1", "--format=%B", rollback_commit)
    assert f"This reverts commit {canary_commit}." in message
    assert "p99 latency spike" in message and "fraud@126" in message
    with Registry.open(work, canary_commit) as reg:
        dep = reg.deployment("fraud-scoring")
        assert (dep.stable, dep.canary, dep.canary_percent) == ("126", "127", 5)
    with Registry.open(work, rollback_commit) as reg:
        dep = reg.deployment("fraud-scoring")
        assert (dep.stable, dep.canary) == ("126", None)
