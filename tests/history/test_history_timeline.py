"""The timeline from git: events in commit order, rollbacks with reasons, PR numbers, --at."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from historykit import Repo, manifest

from mlreg.errors import NotFound
from mlreg.history.gitlog import log_changes
from mlreg.history.timeline import parse_message, parse_when, serving_at, timeline


def _kinds(events):
    return [(e.kind, e.action, e.service, e.from_version, e.to_version) for e in events]


# -------------------------------------------------------------------- the Uber case (seed)
def test_uber_fraud_canary_and_rollback_with_reason(story):
    tl = timeline(story.root)
    events = tl.select("fraud-scoring")
    assert _kinds(events) == [
        ("promotion", "deploy", "fraud-scoring", None, "126"),
        ("canary", "start", "fraud-scoring", "126", "127"),
        ("online", "result", "fraud-scoring", None, None),
        ("rollback", "canary-end", "fraud-scoring", "127", "126"),
    ]
    canary, online, rollback = events[1], events[2], events[3]
    assert online.version == "127"
    assert online.online["metrics"]["p99_latency_ms"]["value"] == 142.0
    assert canary.after.canary == "127" and canary.after.canary_percent == 5
    assert canary.date.startswith("2024-01-26T10:00")
    assert canary.pr == 4 and canary.author == "bob"
    assert canary.reason == "retrained on 2024-01-10..2024-01-24"
    assert rollback.date.startswith("2024-01-27T09:30")
    assert rollback.reason == "p99 latency spike"
    assert rollback.reverts == story.commits["canary-127"]
    assert rollback.reverted_commit == story.commits["canary-127"]
    assert rollback.commit == story.commits["rollback-127"]
    assert rollback.pr == 6 and rollback.author == "carol"


def test_uber_serving_at_the_canary_and_after_the_rollback(story):
    before = serving_at(story.root, "2024-01-25")
    assert [(s["service"], s["stable"], s["canary"]) for s in before.services] == [
        ("fraud-scoring", "126", None)]
    during = serving_at(story.root, "2024-01-26T12:00:00Z")
    (svc,) = during.services
    assert (svc["stable"], svc["canary"], svc["canary_percent"]) == ("126", "127", 5)
    assert during.commit == story.commits["canary-127"]
    assert svc["since"]["pr"] == 4 and svc["since"]["kind"] == "canary"
    after = serving_at(story.root, "2024-01-27T10:00:00+00:00")
    (svc,) = after.services
    assert (svc["stable"], svc["canary"]) == ("126", None)
    assert svc["since"]["kind"] == "rollback"


def test_at_boundaries_and_before_the_first_commit(story):
    exact = serving_at(story.root, "2024-01-26T10:00:00Z")  # inclusive: the canary is in
    assert exact.commit == story.commits["canary-127"]
    just_before = serving_at(story.root, "2024-01-26T09:59:59Z")
    assert just_before.commit == story.commits["register-127"]
    # Another time zone names the same moment.
    assert serving_at(story.root, "2024-01-26T11:00:00+01:00").commit == \
        story.commits["canary-127"]
    empty = serving_at(story.root, "2023-12-31")
    assert empty.commit is None and empty.services == [] and "before the first" in empty.note


def test_netflix_three_surfaces_over_time(story):
    at = {s["service"]: s for s in serving_at(story.root, "2024-03-05").services}
    assert {k: (v["stable"], v["canary"], v["surface"]) for k, v in at.items()} == {
        "fraud-scoring": ("126", None, None), "homepage": ("41", "42", "homepage"),
        "search": ("41", "42", "search"), "post-play": ("41", "42", "post-play")}
    now = {s["service"]: (s["stable"], s["canary"]) for s in
           serving_at(story.root, "2024-12-31").services}
    assert now == {"fraud-scoring": ("126", None), "homepage": ("42", None),
                   "search": ("42", None), "post-play": ("41", None)}


def test_rollback_through_a_merge_commit_finds_the_branch_revert(story):
    tl = timeline(story.root)
    (ev,) = tl.select("post-play", kinds=["rollback"])
    assert ev.commit == story.commits["rollback-42"]
    assert ev.pr == 13  # "Merge pull request #13 from ..."
    assert ev.reason == "CTR -3% on post-play in ab-2024-03-post-play"
    assert ev.reverts == story.commits["canary-42"]
    assert (ev.from_version, ev.to_version) == ("42", "41")
    # The branch commit is not on the first-parent chain: it is no event of its own.
    assert story.commits["rollback-42-branch"] not in {e.commit for e in tl.events}


def test_canary_promoted_and_registrations(story):
    tl = timeline(story.root)
    promos = tl.select("homepage", kinds=["promotion"])
    assert [(e.action, e.from_version, e.to_version) for e in promos] == [
        ("deploy", None, "41"), ("canary-promote", "41", "42")]
    regs = tl.select("recsys", kinds=["registration"])
    assert [(e.version, e.pr, e.author) for e in regs] == [("41", 7, "dave"), ("42", 9, "dave")]


def test_online_events_carry_offline_metrics(story):
    tl = timeline(story.root)
    online = {e.service: e for e in tl.select("recsys", kinds=["online"])}
    assert set(online) == {"homepage", "search", "post-play"}
    pp = online["post-play"].online
    assert pp["metrics"]["ctr_lift"] == {"value": -0.03, "interval": [-0.045, -0.015]}
    assert pp["offline"] == {"validation.precision_at_10": 0.31, "validation.ndcg_at_20": 0.44}


def test_select_by_version_and_unknown_name(story):
    tl = timeline(story.root)
    evs = tl.select("fraud@127")
    assert [e.kind for e in evs] == ["registration", "canary", "online", "rollback"]
    with pytest.raises(NotFound, match="neither a service nor a model"):
        tl.select("nope")


def test_order_is_commit_order_not_dates(tmp_path: Path):
    r = Repo(tmp_path / "r")
    r.copy("mlreg.yaml")
    r.copy("models/fraud/model.yaml")
    r.copy("models/fraud/126.yaml")
    r.copy("models/fraud/127.yaml")
    r.write("production.yaml", manifest({"svc": {"model": "fraud", "stable": "126"}}))
    first = r.commit("deploy 126", "2024-05-01T00:00:00Z")
    r.write("production.yaml", manifest({"svc": {"model": "fraud", "stable": "127"}}))
    second = r.commit("promote 127 (#9)", "2024-04-01T00:00:00Z")  # an older date, later commit
    events = timeline(str(r.path)).select("svc")
    assert [e.commit for e in events] == [first, second]
    assert events[1].to_version == "127" and events[1].pr == 9
    # --at follows git's rule: the last commit on the chain dated at or before the moment.
    assert serving_at(str(r.path), "2024-04-15").commit == second
    assert serving_at(str(r.path), "2024-03-15").commit is None


def test_invalid_manifest_is_an_event_and_history_goes_on(tmp_path: Path):
    r = Repo(tmp_path / "r")
    r.copy("mlreg.yaml")
    r.write("production.yaml", manifest({"a": {"model": "m", "stable": "1"}}))
    r.commit("one", "2024-01-01T00:00:00Z")
    r.write("production.yaml", "schema: mlreg/deployments/v1\nservices:\n  a:\n    model: m\n"
            "    stable: '1'\n  a:\n    model: m\n    stable: '2'\n")
    r.commit("duplicate key", "2024-01-02T00:00:00Z")
    r.write("production.yaml", manifest({"a": {"model": "m", "stable": "3"}}))
    r.commit("three", "2024-01-03T00:00:00Z")
    kinds = [(e.kind, e.to_version) for e in timeline(str(r.path)).events]
    assert kinds[0] == ("promotion", "1")
    assert kinds[1][0] == "manifest_error"
    assert kinds[2] == ("promotion", "3")
    err = timeline(str(r.path)).events[1].error
    assert "duplicate key" in err


def test_edited_record_is_flagged(tmp_path: Path):
    r = Repo(tmp_path / "r")
    r.copy("mlreg.yaml")
    r.copy("models/fraud/126.yaml")
    r.commit("register", "2024-01-01T00:00:00Z")
    (r.path / "models/fraud/126.yaml").write_text(
        (r.path / "models/fraud/126.yaml").read_text().replace("0.8931", "0.95"))
    r.commit("tamper", "2024-01-02T00:00:00Z")
    events = timeline(str(r.path)).events
    assert [(e.kind, e.action) for e in events] == [("registration", "register"),
                                                     ("record_edit", "modified")]


def test_registry_in_a_subdirectory(tmp_path: Path):
    r = Repo(tmp_path / "mono")
    r.copy("mlreg.yaml", "ml/registry/mlreg.yaml")
    r.copy("models/fraud/126.yaml", "ml/registry/models/fraud/126.yaml")
    r.write("ml/registry/production.yaml", manifest({"s": {"model": "fraud", "stable": "126"}}))
    r.write("production.yaml", manifest({"other": {"model": "x", "stable": "1"}}))
    r.commit("all", "2024-01-01T00:00:00Z")
    tl = timeline(str(r.path / "ml/registry"))
    assert [(e.kind, e.service or e.version) for e in tl.events] == [
        ("registration", "126"), ("promotion", "s")]


def test_one_git_log_process_for_the_whole_history(story, monkeypatch):
    """history is one `git log` pass plus a cat-file process, not one process per commit."""
    import mlreg.gitio

    calls = []
    real = mlreg.gitio.subprocess.run
    popens = []
    real_popen = subprocess.Popen

    def spy(args, *a, **kw):
        calls.append(args[3] if len(args) > 3 else args)
        return real(args, *a, **kw)

    def spy_popen(args, *a, **kw):
        popens.append(args)
        return real_popen(args, *a, **kw)

    monkeypatch.setattr(mlreg.gitio.subprocess, "run", spy)
    monkeypatch.setattr(subprocess, "Popen", spy_popen)
    tl = timeline(story.root)
    assert len(tl.events) == 20
    assert calls.count("log") <= 3  # the chain, the changes, and the merges' side commits
    assert len(calls) <= 8, calls
    assert sum("cat-file" in p for p in popens) <= 2


# ---------------------------------------------------------------------------- messages
@pytest.mark.parametrize("message, pr, reverts, reason", [
    ("Promote fraud@127 (#42)\n", 42, None, None),
    ("Merge pull request #7 from acme/branch\n\nRoll back", 7, None, "Roll back"),
    ('Revert "x"\n\nThis reverts commit 0123456789abcdef0123456789abcdef01234567.\n\n'
     "p99 latency spike\n", None, "0123456789abcdef0123456789abcdef01234567",
     "p99 latency spike"),
    ('Revert "x" (#12)\n\nThis reverts commit abcdef1.\n\nRoll back s: a -> b\n'
     "Reason: p99   latency\n\nSigned-off-by: Carol <c@x>\n", 12, "abcdef1", "p99   latency"),
    ('Revert "merge"\n\nThis reverts commit abcdef1, reversing\nchanges made to 1234567.\n',
     None, "abcdef1", None),
    ("Deploy\n\nService: s\nBefore: x\nAfter: y\nRecord: models/m/1.yaml\n", None, None, None),
])
def test_parse_message(message, pr, reverts, reason):
    m = parse_message(message)
    assert (m.pr, m.reverts, m.reason) == (pr, reverts, reason)


def test_parse_when_forms():
    assert parse_when("2024-01-26").isoformat() == "2024-01-26T23:59:59+00:00"
    assert parse_when("2024-01-26T10:30").isoformat() == "2024-01-26T10:30:00+00:00"
    assert parse_when("2024-01-26 10:30:00+02:00").utcoffset().total_seconds() == 7200
    assert parse_when("@0").year == 1970
    from mlreg.errors import InputError

    with pytest.raises(InputError, match="not a date"):
        parse_when("yesterday")


def test_log_parser_reads_merges_and_root(story):
    commits = log_changes(story.root, "main", ["production.yaml"])
    assert commits[0].changes[0].status == "A" and commits[0].changes[0].old_blob is None
    merge = commits[-1]
    assert merge.is_merge and merge.changes and merge.changes[0].path == "production.yaml"


# -------------------------------------------------------------------------------- CLI
def test_history_cli_text_json_and_at(story, run_cli):
    res = run_cli("history", "fraud-scoring", "-C", story.root)
    assert res.code == 0, res
    assert "rollback" in res.out and "p99 latency spike" in res.out and "#6" in res.out
    res = run_cli("history", "--json", "-C", story.root, "--kind", "rollback")
    doc = json.loads(res.out)
    assert doc["schema"] == "mlreg/history/v1"
    assert [e["service"] for e in doc["events"]] == ["fraud-scoring", "post-play"]
    assert [e["reason"] for e in doc["events"]] == [
        "p99 latency spike", "CTR -3% on post-play in ab-2024-03-post-play"]
    res = run_cli("history", "--at", "2024-01-26T12:00Z", "-C", story.root)
    assert res.code == 0 and "127 (5%)" in res.out
    res = run_cli("history", "--at", "2024-03-05", "--json", "-C", story.root, "homepage")
    assert [s["canary"] for s in json.loads(res.out)["services"]] == ["42"]
    res = run_cli("history", "nope", "-C", story.root)
    assert res.code == 2 and "neither a service nor a model" in res.err
    res = run_cli("history", "--at", "soon", "-C", story.root)
    assert res.code == 2 and "not a date" in res.err
    res = run_cli("history", "--limit", "1", "-C", story.root)
    assert res.code == 0 and "1 event(s)" in res.out


def test_manifest_deleted_and_restored(tmp_path: Path):
    r = Repo(tmp_path / "r")
    r.copy("mlreg.yaml")
    a = {"model": "m", "stable": "1"}
    b = {"model": "m", "stable": "2"}
    r.write("production.yaml", manifest({"a": a, "b": b}))
    r.commit("both", "2024-01-01T00:00:00Z")
    (r.path / "production.yaml").unlink()
    r.commit("gone", "2024-01-02T00:00:00Z")
    r.write("production.yaml", manifest({"a": a, "b": {**b, "stable": "3"}}))
    r.commit("back", "2024-01-03T00:00:00Z")
    got = [(e.subject, e.kind, e.service, e.version) for e in timeline(str(r.path)).events]
    assert got == [("both", "promotion", "a", "1"), ("both", "promotion", "b", "2"),
                   ("gone", "retirement", "a", "1"), ("gone", "retirement", "b", "2"),
                   ("back", "promotion", "a", "1"), ("back", "promotion", "b", "3")]
