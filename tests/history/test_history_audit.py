"""The audit report: provenance and verification, gate decisions re-derived from git, approvals
through the forge (or git alone), deployment events, rollbacks and online results."""

from __future__ import annotations

import hashlib
import json

import pytest

from mlreg.gates import load_policy
from mlreg.history.audit import audit_version, render_html, render_markdown
from mlreg.registry import Registry


@pytest.fixture(scope="module")
def fraud_127(story):
    return audit_version(story.root, "fraud@127", forge=None)


def test_subject_and_provenance(story, fraud_127):
    r = fraud_127
    assert r["schema"] == "mlreg/audit/v1"
    s = r["subject"]
    raw = (story.path / "models/fraud/127.yaml").read_bytes()
    assert s["record_sha256"] == hashlib.sha256(raw).hexdigest()
    assert s["registered"]["commit"] == story.commits["register-127"]
    assert s["registered"]["pr"] == 3 and s["registered"]["author"] == "bob"
    data = {d["role"]: d for d in r["provenance"]["data"]}
    assert data["train"]["identity"]["version_id"] == "50145e2409179434f461a42b0c1ce044"
    assert data["train"]["immutable"] is True
    assert data["validation"]["identity"]["etag"] == '"fe2bdcfde2e83d4c4f57892d941cba81"'
    v = r["verification"]
    assert v["status"] == "ok"
    assert {(c["kind"], c["status"]) for c in v["checks"]} == {
        ("artifact", "ok"), ("predictions", "ok"), ("data", "skipped")}


def test_gate_decision_rederived_at_the_promotion_commit(story, fraud_127):
    (d,) = fraud_127["decisions"]
    assert d["status"] == "ok" and d["commit"] == story.commits["canary-127"]
    assert d["base"] == story.commits["register-127"]
    assert (d["service"], d["event"], d["verdict"], d["mode"]) == (
        "fraud-scoring", "canary", "pass", "promotion")
    assert d["baseline"]["version"] == "126"
    assert d["result"]["promotion"]["canary_percent"] == 5
    with Registry.open(story.root, rev=d["base"]) as base:
        assert d["policy_sha256"] == load_policy(base, "fraud").digest
    gates = {g["id"]: g for g in d["gates"]}
    assert gates["precision-parity"]["fairness"] is True
    assert gates["calibration"]["slices"] and len(gates["calibration"]["rows"]) == 5
    assert gates["latency"]["verdict"] == "pass"


def test_events_rollback_and_online(fraud_127):
    evs = [(e["kind"], e["action"]) for e in fraud_127["events"]]
    assert evs == [("canary", "start"), ("rollback", "canary-end")]
    assert fraud_127["events"][1]["reason"] == "p99 latency spike"
    (res,) = fraud_127["online"]["results"]
    assert res["metrics"]["p99_latency_ms"]["value"] == 142.0
    assert fraud_127["serving_now"] == []


def test_approvals_from_git_alone(fraud_127):
    a = fraud_127["approvals"]
    assert a["forge"] == "none"
    assert [(c["event"], c["pr"], c["author"], c["committer"], c["source"])
            for c in a["changes"]] == [("registration", 3, "bob", "bob", "git"),
                                       ("canary", 4, "bob", "bob", "git")]


def test_approvals_through_the_forge(story, fake_github, make_forge):
    for n in range(1, 5):
        assert fake_github.add_pull("o/r", head=f"b{n}", title=f"PR {n}", user="bob") == n
    fake_github.add_review("o/r", 4, user="alice", state="CHANGES_REQUESTED")
    fake_github.add_review("o/r", 4, user="alice", state="APPROVED")
    fake_github.add_review("o/r", 4, user="dave", state="COMMENTED")
    r = audit_version(story.root, "fraud@127", forge=make_forge(), gates=False, verify=False)
    canary = r["approvals"]["changes"][1]
    (pr,) = canary["pull_requests"]
    assert pr["number"] == 4 and pr["author"] == "bob"
    assert [(x["user"], x["state"]) for x in pr["reviews"]] == [
        ("alice", "CHANGES_REQUESTED"), ("alice", "APPROVED"), ("dave", "COMMENTED")]
    assert pr["approved_by"] == ["alice"]
    md = render_markdown(r)
    assert "PR #4 by bob: alice CHANGES\\_REQUESTED, alice APPROVED" in md


def test_forge_failure_is_reported_not_raised(story, fake_github, make_forge):
    fake_github.fail_next(20, status=500)
    r = audit_version(story.root, "fraud@127", forge=make_forge(), gates=False, verify=False)
    assert all("forge_error" in c for c in r["approvals"]["changes"])


def test_tampered_artifact_fails_verification(fresh_story):
    art = fresh_story.path / "examples/store/fraud/127/model.txt"
    art.write_bytes(art.read_bytes() + b"tampered")
    r = audit_version(fresh_story.root, "fraud@127", forge=None, gates=False)
    assert r["verification"]["status"] == "failed"
    (bad,) = [c for c in r["verification"]["checks"] if c["status"] == "mismatch"]
    assert bad["kind"] == "artifact"
    assert "**failed**" in render_markdown(r)


def test_renderings(fraud_127):
    md = render_markdown(fraud_127)
    for heading in ("# Audit: fraud@127", "## Data provenance", "## Verification",
                    "## Gate decisions", "## Approvals", "## Deployment events",
                    "## Online results"):
        assert heading in md
    assert "p99 latency spike" in md and "precision\\-parity (fairness)" in md
    page = render_html(fraud_127)
    assert page.startswith("<!doctype html>") and "<script" not in page
    json.dumps(fraud_127)  # JSON-ready


def test_netflix_audit_per_surface(story):
    r = audit_version(story.root, "recsys@42", forge=None, verify=False)
    decided = [(d["service"], d["event"], d["action"], d["verdict"]) for d in r["decisions"]]
    assert decided == [("homepage", "canary", "start", "pass"),
                       ("search", "canary", "start", "pass"),
                       ("post-play", "canary", "start", "pass"),
                       ("homepage", "promotion", "canary-promote", "pass"),
                       ("search", "promotion", "canary-promote", "pass")]
    assert {x["service"] for x in r["online"]["results"]} == {"homepage", "search", "post-play"}
    assert r["offline_metrics"] == {"validation.precision_at_10": 0.31,
                                    "validation.ndcg_at_20": 0.44}
    md = render_markdown(r)
    online = md[md.index("## Online results"):]
    assert "validation\\.precision\\_at\\_10 0\\.31" in online and "ctr\\_lift \\-0\\.03" in online
    assert [(x["service"], x["role"]) for x in r["serving_now"]] == [("homepage", "stable"),
                                                                     ("search", "stable")]
    rollback = [e for e in r["events"] if e["kind"] == "rollback"]
    assert rollback[0]["service"] == "post-play"


def test_never_deployed_version_is_gated_against_its_parent(fresh_story):
    import shutil

    from testkit import ROOT

    shutil.copy(ROOT / "models/fraud/128.yaml", fresh_story.path / "models/fraud/128.yaml")
    r = audit_version(fresh_story.root, "fraud@128", forge=None, verify=False)
    (d,) = r["decisions"]
    assert d["hypothetical"] is True and d["status"] == "ok"
    assert d["verdict"] == "fail"  # the example's 128 fails calibration and precision parity
    assert r["events"] == [] and r["subject"]["registered"] is None


def test_audit_cli(story, run_cli, tmp_path):
    out = tmp_path / "audit.json"
    res = run_cli("audit", "fraud@127", "--format", "json", "--no-gates", "--no-verify",
                  "--out", str(out), "-C", story.root)
    assert res.code == 0, res
    doc = json.loads(out.read_text())
    assert doc["decisions"] == [{"status": "skipped", "reason": "--no-gates"}]
    res = run_cli("audit", "fraud-scoring", "--no-gates", "--format", "html", "-C", story.root)
    assert res.code == 0 and "Audit fraud@126" in res.out
    res = run_cli("audit", "fraud@999", "-C", story.root)
    assert res.code == 2
