"""``mlreg gate --base --head`` on real git: what a change is, how each is judged, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flowkit import Flow, run_git

from mlreg.gitops.manifest import ServiceState, edit_service
from mlreg.gitops.prresult import load_untrusted, render_pr_markdown


def _gate(run_cli, flow: Flow, head: str, out: Path, base: str = "origin/main"):
    res = run_cli("gate", "--base", base, "--head", head, "--json", str(out / "r.json"),
                  "--markdown", str(out / "r.md"), cwd=flow.work)
    doc = json.loads((out / "r.json").read_text()) if (out / "r.json").exists() else None
    return res, doc


def _manifest(flow: Flow, service: str, state: ServiceState) -> str:
    return edit_service((flow.work / "production.yaml").read_text(), service, state)


def test_nothing_the_registry_cares_about_passes_and_says_so(flow: Flow, run_cli,
                                                             tmp_path: Path) -> None:
    flow.commit_change("docs", {"README.md": "hello\n", "src/train.py": "print(1)\n"}, "docs")
    res, doc = _gate(run_cli, flow, "origin/docs", tmp_path)
    assert res.code == 0, res
    assert doc["verdict"] == "pass" and doc["changes"] == []
    assert doc["summary"]["ignored"] == 2
    assert "touches nothing the registry gates" in doc["notes"][-1]
    assert "nothing to gate" in (tmp_path / "r.md").read_text()


def test_deleting_a_merged_record_is_refused(flow: Flow, run_cli, tmp_path: Path) -> None:
    flow.commit_change("rm", {"models/fraud/128.yaml": None}, "drop 128")
    res, doc = _gate(run_cli, flow, "origin/rm", tmp_path)
    assert res.code == 1
    (bad,) = [c for c in doc["changes"] if c["verdict"] == "fail"]
    assert bad["subject"] == "models/fraud/128.yaml" and bad["status"] == "deleted"
    assert "immutable" in bad["reason"] and "FAIL" in res.out


def test_new_record_alone_is_lineage_gated_and_with_its_promotion_is_gated_once(
        flow: Flow, run_cli, tmp_path: Path) -> None:
    rec = (flow.work / "models/photo-tagger/3.yaml").read_text()
    new = rec.replace("version: '3'", "version: '4'")
    flow.commit_change("r4", {"models/photo-tagger/4.yaml": new}, "photo-tagger 4")
    res, doc = _gate(run_cli, flow, "origin/r4", tmp_path)
    assert res.code == 0, res
    (change,) = doc["changes"]
    assert change["kind"] == "record" and change["verdict"] == "pass"
    result = doc["results"][change["result"]]
    assert {g["type"] for g in result["gates"]} == {"lineage"}
    assert "not promoted" in result["notes"][0]

    both = {"models/photo-tagger/4.yaml": new,
            "production.yaml": _manifest(flow, "photo-tagger-mobile",
                                         ServiceState("photo-tagger", "4"))}
    flow.commit_change("r4p", both, "photo-tagger 4, promoted")
    res, doc = _gate(run_cli, flow, "origin/r4p", tmp_path)
    assert res.code == 0, res
    kinds = sorted((c["kind"], c["reason"].split(":")[0]) for c in doc["changes"])
    assert ("record", "new record photo-tagger@4") in kinds
    assert len(doc["results"]) == 1 and doc["results"][0]["promotion"]["to_version"] == "4"


def test_invalid_files_at_head_exit_2_and_are_listed(flow: Flow, run_cli, tmp_path: Path) -> None:
    rec = (flow.work / "models/photo-tagger/3.yaml").read_text()
    broken = rec.replace("version: '3'", "version: 5.10").replace("owner:", "ownr:")
    flow.commit_change("bad", {"models/photo-tagger/5.10.yaml": broken}, "bad record")
    res, doc = _gate(run_cli, flow, "origin/bad", tmp_path)
    assert res.code == 2
    assert "models/photo-tagger/5.10.yaml" in res.err
    assert doc["verdict"] == "error"
    assert {e["file"] for e in doc["errors"]} >= {"origin/bad:models/photo-tagger/5.10.yaml"} or \
        any("5.10.yaml" in e["file"] for e in doc["errors"])
    md = (tmp_path / "r.md").read_text()
    assert "could not decide" in md and "5\\.10\\.yaml" in md


def test_shallow_clone_and_missing_base_are_errors_not_passes(flow: Flow, run_cli,
                                                              tmp_path: Path) -> None:
    shallow = tmp_path / "shallow"
    run_git(tmp_path, "clone", "-q", "--depth", "1", f"file://{flow.origin}", str(shallow))
    res = run_cli("gate", "--base", "HEAD", "--head", "HEAD", cwd=shallow)
    assert res.code == 2 and "shallow clone" in res.err and "fetch-depth: 0" in res.err
    res, _ = _gate(run_cli, flow, "HEAD", tmp_path, base="0123456789abcdef0123456789abcdef01234567")
    assert res.code == 2 and "not found" in res.err
    res = run_cli("gate", "--base", "HEAD", cwd=flow.work)
    assert res.code == 2 and "--head" in res.err


def test_a_return_to_a_version_that_served_before_is_a_rollback(flow: Flow, run_cli,
                                                                 tmp_path: Path) -> None:
    flow.commit_change("down", {"production.yaml": _manifest(flow, "post-play",
                                                             ServiceState("recsys", "42"))},
                       "post-play to 42")
    flow.squash_merge("down")
    flow.commit_change("back", {"production.yaml": _manifest(flow, "post-play",
                                                             ServiceState("recsys", "41"))},
                       "post-play back to 41")
    res, doc = _gate(run_cli, flow, "origin/back", tmp_path)
    (promo,) = [c for c in doc["changes"] if c["kind"] == "promotion"]
    assert promo["promotion"]["mode"] == "rollback" and "served this service before" in \
        promo["reason"]
    result = doc["results"][promo["result"]]
    assert result["mode"] == "rollback"
    # Metric rows that fail do not block a rollback: they are shown as info.
    assert all(r["verdict"] != "fail" for g in result["gates"] for r in g["rows"]
               if g["category"] == "metric")
    assert res.code == (0 if result["verdict"] == "pass" else 1)


def test_a_change_cannot_weaken_the_policy_that_judges_it(flow: Flow, run_cli,
                                                          tmp_path: Path) -> None:
    """fraud@128 fails the fraud policy; a PR that deletes the policy and promotes 128 in one go
    is still judged by the policy at base."""
    default = (flow.work / "policies/default.yaml").read_text()
    weak = default.replace("tolerance: 0.02", "tolerance: 1.0")
    assert weak != default
    flow.commit_change("sneaky", {
        "policies/fraud.yaml": None, "policies/default.yaml": weak,
        "production.yaml": _manifest(flow, "fraud-scoring", ServiceState("fraud", "128"))},
        "promote 128, simplify policies")
    res, doc = _gate(run_cli, flow, "origin/sneaky", tmp_path)
    assert res.code == 1
    kinds = {c["kind"]: c["verdict"] for c in doc["changes"]}
    assert kinds["policy"] == "info" and kinds["promotion"] == "fail"
    result = doc["results"][0]
    assert {s["path"] for s in result["policy"]["sources"]} == {"policies/default.yaml",
                                                              "policies/fraud.yaml"}
    md = render_pr_markdown(load_untrusted(str(tmp_path / "r.json")))
    assert md.index("❌") < md.index("ℹ️")  # failing changes first


def test_a_branch_behind_base_is_judged_on_its_own_changes(flow: Flow, run_cli,
                                                           tmp_path: Path) -> None:
    old_main = flow.sha("origin/main")
    flow.commit_change("meta", {"production.yaml": (flow.work / "production.yaml").read_text()
                                .replace("surface: search", "surface: search-v2")}, "rename")
    flow.squash_merge("meta")
    flow.git("checkout", "-q", "-B", "old", old_main)
    (flow.work / "production.yaml").write_text(
        _manifest(flow, "post-play", ServiceState("recsys", "42")))
    flow.git("commit", "-q", "-am", "post-play to 42")
    flow.git("checkout", "-q", "main")
    res, doc = _gate(run_cli, flow, "old", tmp_path)
    promos = [c["subject"] for c in doc["changes"] if c["kind"] == "promotion"]
    assert promos == ["post-play"]
    assert any("is behind" in n for n in doc["notes"])


def test_step_summary_is_appended_and_capped(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from mlreg.commands.flow import STEP_SUMMARY_LIMIT, append_step_summary

    summary = tmp_path / "summary.md"
    summary.write_text("x" * (STEP_SUMMARY_LIMIT - 10_000))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert append_step_summary("<!-- mlreg:gate -->\n" + "é" * 50_000) is True
    assert summary.stat().st_size <= STEP_SUMMARY_LIMIT
    summary.write_text("x" * (STEP_SUMMARY_LIMIT - 100))
    assert append_step_summary("more") is True
    assert append_step_summary("y" * 10_000) is False
    assert summary.stat().st_size <= STEP_SUMMARY_LIMIT
