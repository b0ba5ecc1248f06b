"""Reverse lineage queries and the blob-keyed index behind them."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from mlreg.errors import InputError
from mlreg.history.index import (
    load_index,
    match_facts,
    parse_query,
    record_facts,
    reverse_lineage,
)
from testkit import ROOT, copy_example


def _versions(out: dict) -> list[str]:
    return [f"{v['model']}@{v['version']}" for v in out["versions"]]


def test_queries_on_the_story(fresh_story):
    root = fresh_story.root
    out = reverse_lineage(root, parse_query(data="s3://lake/fraud/txns/dt=2024-01-10"))
    assert _versions(out) == ["fraud@127"]
    assert out["serving"] == []  # rolled back: nobody serves it
    out = reverse_lineage(root, parse_query(data="s3://lake/fraud/eval/"))
    assert _versions(out) == ["fraud@126", "fraud@127"]
    assert out["serving"] == [{"service": "fraud-scoring", "model": "fraud", "version": "126",
                               "role": "stable", "percent": 100.0, "surface": None}]
    assert out["versions"][0]["serving"] == ["fraud-scoring (stable)"]
    out = reverse_lineage(root, parse_query(feature="txn_amount_zscore_7d@3"))
    assert _versions(out) == ["fraud@127"]
    out = reverse_lineage(root, parse_query(feature="txn_amount_zscore_7d"))
    assert _versions(out) == ["fraud@126", "fraud@127"]
    out = reverse_lineage(root, parse_query(commit="9A8B7C"))
    assert _versions(out) == ["recsys@42"]
    assert {s["service"] for s in out["serving"]} == {"homepage", "search"}
    out = reverse_lineage(root, parse_query(package="Torch==2.1.2"))
    assert _versions(out) == ["recsys@41"]
    assert [s["service"] for s in out["serving"]] == ["post-play"]
    out = reverse_lineage(root, parse_query(package="torch"))
    assert len(out["versions"]) == 4
    # Criteria combine.
    out = reverse_lineage(root, parse_query(package="torch==2.2.2", commit="f3a9c"))
    assert _versions(out) == ["fraud@127"]
    # By snapshot identity instead of URI.
    out = reverse_lineage(root, parse_query(data="50145e2409179434f461a42b0c1ce044"))
    assert _versions(out) == ["fraud@127"]


def test_canary_counts_as_serving(story):
    out = reverse_lineage(story.root, parse_query(commit="9a8b7c6d"),
                          rev=story.commits["canary-42"])
    assert {(s["service"], s["role"], s["percent"]) for s in out["serving"]} == {
        ("homepage", "canary", 5), ("search", "canary", 5), ("post-play", "canary", 5)}


def test_index_is_cached_by_blob_and_never_stale(fresh_story):
    root = fresh_story.root
    first = load_index(root)
    assert first.parsed == 4 and first.cache_path and os.path.isfile(first.cache_path)
    assert first.cache_path.endswith(os.path.join(".git", "mlreg", "lineage-index.v1.json"))
    again = load_index(root)
    assert again.parsed == 0 and again.hits == 4
    # An uncommitted edit is hashed and parsed; the committed blob's facts stay cached.
    path = fresh_story.path / "models/fraud/127.yaml"
    path.write_text(path.read_text().replace("f3a9c71e2b8d4a6c9e0f1b2d3c4a5e6f7a8b9c0d",
                                             "abcdef0123456789abcdef0123456789abcdef01"))
    edited = load_index(root)
    assert edited.parsed == 1
    assert edited.by_version()[("fraud", "127")]["commit"].startswith("abcdef01")
    # At a revision the committed blob answers, from the cache.
    at_head = load_index(root, rev="HEAD")
    assert at_head.parsed == 0
    assert at_head.by_version()[("fraud", "127")]["commit"].startswith("f3a9c71e")
    # An untracked new record is found too.
    shutil.copy(ROOT / "models/fraud/128.yaml", fresh_story.path / "models/fraud/128.yaml")
    assert ("fraud", "128") in load_index(root).by_version()


def test_corrupt_cache_is_rebuilt(fresh_story):
    first = load_index(fresh_story.root)
    with open(first.cache_path, "w") as fh:
        fh.write("{not json")
    again = load_index(fresh_story.root)
    assert again.parsed == 4 and len(again.entries) == 4


def test_outside_git_and_unreadable_records(tmp_path):
    reg = copy_example(tmp_path / "plain")
    (reg / "models/fraud/999.yaml").write_text("schema: [unclosed\n")
    idx = load_index(str(reg))
    assert idx.cache_path is None
    bad = idx.by_version()[("fraud", "999")]
    assert "not valid YAML" in bad["error"]
    out = reverse_lineage(str(reg), parse_query(package="lightgbm"))
    assert "fraud@999" not in _versions(out) and "fraud@126" in _versions(out)


def test_record_facts_and_matching_are_pure():
    import yaml

    rec = yaml.safe_load((ROOT / "models/fraud/127.yaml").read_text())
    f = record_facts(rec)
    assert f["packages"]["scikit-learn"] == "1.4.2"
    assert f["eval"]["id"] == "version_id:3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"
    assert match_facts(f, parse_query(feature="merchant_risk_30d@c04b690dda70")) is not None
    assert match_facts(f, parse_query(package="scikit_learn==1.4.2")) is not None
    assert match_facts(f, parse_query(package="numpy==2.0")) is None


@pytest.mark.parametrize("kwargs, message", [
    ({}, "name what to look for"),
    ({"commit": "xyz"}, "hex digits"),
    ({"commit": "ab"}, "hex digits"),
    ({"feature": "@3"}, "NAME or NAME@VERSION"),
    ({"package": "==1"}, "NAME or NAME==VERSION"),
])
def test_bad_queries(kwargs, message):
    with pytest.raises(InputError, match=message):
        parse_query(**kwargs)


def test_lineage_cli(story, run_cli):
    res = run_cli("lineage", "--data", "s3://lake/recsys/plays/", "-C", story.root)
    assert res.code == 0, res
    assert "recsys@41" in res.out and "recsys@42" in res.out
    assert "serving now: " in res.out and "post-play recsys@41 (stable, 100%)" in res.out
    res = run_cli("lineage", "--package", "torch==9", "--json", "-C", story.root)
    doc = json.loads(res.out)
    assert doc["schema"] == "mlreg/lineage-query/v1" and doc["versions"] == []
    res = run_cli("lineage", "--package", "torch==9", "-C", story.root)
    assert "no version matches" in res.out
    res = run_cli("lineage", "-C", story.root)
    assert res.code == 2 and "--data, --feature, --commit or --package" in res.err
    res = run_cli("lineage", "--commit", "7b21", "--no-cache", "-C", story.root)
    assert res.code == 0 and "fraud@126" in res.out and "fraud-scoring (stable)" in res.out
