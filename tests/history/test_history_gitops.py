"""History reads what `mlreg promote` and `mlreg rollback` write: the seed's Uber story made with
the PR-flow library itself (branches, squash merges with PR numbers, a real revert)."""

from __future__ import annotations

import sys
from pathlib import Path

_GITOPS_TESTS = str(Path(__file__).resolve().parents[1] / "gitops")
if _GITOPS_TESTS not in sys.path:
    sys.path.insert(0, _GITOPS_TESTS)

from flowkit import Flow  # noqa: E402

from mlreg.gitops.promote import promote  # noqa: E402
from mlreg.gitops.rollback import rollback  # noqa: E402
from mlreg.history.timeline import serving_at, timeline  # noqa: E402


def test_uber_story_through_promote_and_rollback(tmp_path):
    flow = Flow(tmp_path, date="2024-01-25T09:00:00+00:00")
    work = str(flow.work)
    up = promote(work, "fraud-scoring", "fraud@127", canary=5, reason="weekly retrain",
                 forge=None)
    canary = flow.squash_merge(up.published.branch, date="2024-01-26T10:00:00+00:00",
                               number=41)
    down = rollback(work, "fraud-scoring", reason="p99 latency spike", forge=None)
    back = flow.squash_merge(down.published.branch, date="2024-01-27T03:12:00+00:00",
                             number=42)
    events = timeline(work, "origin/main").select(
        "fraud-scoring", kinds=["promotion", "canary", "rollback"])
    assert [(e.kind, e.action, e.pr) for e in events] == [
        ("promotion", "deploy", None), ("canary", "start", 41), ("rollback", "canary-end", 42)]
    assert events[1].commit == canary and events[1].reason == "weekly retrain"
    rb = events[2]
    assert rb.commit == back and rb.reason == "p99 latency spike"
    assert rb.reverts == canary and rb.reverted_commit == canary
    assert (rb.from_version, rb.to_version) == ("127", "126")
    during = serving_at(work, "2024-01-26T12:00:00Z", "origin/main")
    fraud = next(s for s in during.services if s["service"] == "fraud-scoring")
    assert (fraud["stable"], fraud["canary"], fraud["since"]["pr"]) == ("126", "127", 41)
