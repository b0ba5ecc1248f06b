"""Lineage diff: every changed field and nothing else, grouped for root-cause analysis."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from mlreg.history.diff import lineage_diff
from testkit import ROOT


def _load(rel: str) -> dict:
    return yaml.safe_load((ROOT / rel).read_text())


def _index_flatten(value, pointer=""):
    """An independent flatten: JSON pointers with list positions; lists of scalars and empty
    containers are leaves."""
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_index_flatten(v, f"{pointer}/{k}"))
        return out
    if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_index_flatten(v, f"{pointer}/{i}"))
        return out
    return {pointer: value}


def _changed_pointers(a: dict, b: dict) -> set[str]:
    fa, fb = _index_flatten(a), _index_flatten(b)
    return {p for p in set(fa) | set(fb) if fa.get(p, object()) != fb.get(p, object())}


def test_fraud_126_vs_127_names_every_changed_field_and_nothing_else():
    a, b = _load("models/fraud/126.yaml"), _load("models/fraud/127.yaml")
    d = lineage_diff(a, b)
    ours = {c.pointer_b or c.pointer_a for c in d.changes}
    # The two records list their data, features and artifacts in the same order, so the
    # positional flatten and the identity-matched diff must name exactly the same leaves.
    assert ours == _changed_pointers(a, b)
    assert len(d.changes) == len(ours)
    for c in d.changes:
        assert c.pointer_a == c.pointer_b or (c.status, c.pointer_a) == ("added", None)
    assert [c.path for c in d.changes if c.status != "changed"] == ["parent"]
    # Each reported value is the value in the files.
    fa, fb = _index_flatten(a), _index_flatten(b)
    for c in d.changes:
        assert (c.a, c.b) == (fa.get(c.pointer_a), fb.get(c.pointer_b))


def test_fraud_diff_groups_answer_the_root_cause_questions():
    d = lineage_diff(_load("models/fraud/126.yaml"), _load("models/fraud/127.yaml"))
    groups = d.groups()
    assert set(groups) == {"identity", "artifacts", "code", "data", "features",
                           "hyperparameters", "seeds", "hardware", "metrics", "evaluation",
                           "operational"}
    s = d.summaries()
    assert s["code"] == ["commit: 7b21d0c4e9a1f6b3d2c58e0a9f4b7c1d2e3f4a5b -> "
                         "f3a9c71e2b8d4a6c9e0f1b2d3c4a5e6f7a8b9c0d"]
    assert any(line.startswith("snapshot train changed: uri s3://lake/fraud/txns/dt=2023-12-27")
               for line in s["data"])
    assert [line.split(":")[0] for line in s["features"]] == [
        "definition txn_amount_zscore_7d changed"]
    assert "version 2 -> 3" in s["features"][0]
    assert s["hyperparameters"] == ["learning_rate: 0.002 -> 0.001 (-0.001)"]
    assert s["hardware"] == ["gpu.driver: 535.104.05 -> 535.129.03"]
    assert "latency.p99_ms: 61.0 -> 74.0 (+13)" in s["operational"]
    deltas = {c.path: c.delta for c in d.group("metrics")}
    assert deltas["metrics.validation.auc"] == pytest.approx(0.0081, abs=1e-12)
    assert deltas["metrics.training.logloss"] == -0.0033  # decimal, not float noise
    assert "environment" not in groups  # same Python, packages, image


def test_items_are_matched_by_identity_not_position():
    a = _load("models/fraud/126.yaml")
    b = copy.deepcopy(a)
    b["data"] = list(reversed(b["data"]))
    b["features"] = list(reversed(b["features"]))
    assert lineage_diff(a, b).changes == []
    b["data"][0]["rows"] = 1  # eval, now first
    (c,) = lineage_diff(a, b).changes
    assert c.path == "data[eval].rows" and c.pointer_a == "/data/2/rows" \
        and c.pointer_b == "/data/0/rows"


def test_snapshots_and_packages_added_removed_changed():
    a = _load("models/fraud/126.yaml")
    b = copy.deepcopy(a)
    b["data"] = [d for d in b["data"] if d["role"] != "validation"]
    b["data"].append({"role": "test", "uri": "s3://lake/fraud/test/", "immutable": True,
                      "version_id": "v1"})
    pk = b["environment"]["packages"]["list"]
    pk["torch"] = "2.3.0"
    del pk["pandas"]
    pk["polars"] = "0.20.0"
    b["environment"]["python"]["version"] = "3.12.1"
    s = lineage_diff(a, b).summaries()
    assert "snapshot validation removed: s3://lake/fraud/txns/dt=2024-01-09/holdout/" in s["data"]
    assert "snapshot test added: s3://lake/fraud/test/" in s["data"]
    assert s["environment"] == ["packages added: polars==0.20.0",
                                "packages removed: pandas==2.2.2",
                                "packages changed: torch 2.2.2 -> 2.3.0",
                                "python.version: 3.11.7 -> 3.12.1"]


def test_same_record_has_no_changes_and_types_matter():
    a = _load("models/recsys/42.yaml")
    assert lineage_diff(a, copy.deepcopy(a)).changes == []
    b = copy.deepcopy(a)
    b["code"]["dirty"] = 0  # False and 0 are different values
    b["hyperparameters"]["epochs"] = 3.0  # 3 and 3.0 are the same number
    assert [c.path for c in lineage_diff(a, b).changes] == ["code.dirty"]


def test_diff_cli_versions_and_service_canary(story, run_cli):
    res = run_cli("diff", "fraud@126", "fraud@127", "--json", "-C", story.root)
    assert res.code == 0, res
    doc = json.loads(res.out)
    assert doc["schema"] == "mlreg/diff/v1" and doc["changed_fields"] == 27
    assert doc["online"][0]["experiment"] == "canary-2024-01-26"
    res = run_cli("diff", "recsys@41", "recsys@42", "-C", story.root)
    assert res.code == 0
    assert "packages changed: torch 2.1.2 -> 2.2.2" in res.out
    assert "online results" in res.out and "ctr_lift -3.00%" in res.out
    # A service alone: stable vs canary (the canary of recsys@42 at the revision with it).
    res = run_cli("diff", "homepage", "--rev", story.commits["canary-42"], "-C", story.root)
    assert res.code == 0, res
    assert "stable 41 vs canary 42" in res.out and "recsys@41 -> recsys@42" in res.out
    res = run_cli("diff", "homepage", "-C", story.root)
    assert res.code == 2 and "has no canary" in res.err
    res = run_cli("diff", "fraud@126", "fraud@999", "-C", story.root)
    assert res.code == 2 and "not found" in res.err
