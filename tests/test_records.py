from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlreg.errors import SchemaError
from mlreg.records import KINDS, check_document, dump_record, load_document, violations
from mlreg.yamlio import load_yaml_text
from testkit import ROOT

EXAMPLE = load_yaml_text((ROOT / "models/fraud/127.yaml").read_bytes(), "127.yaml").data


def test_schema_failure_lists_every_violation_with_json_path() -> None:
    bad = copy.deepcopy(EXAMPLE)
    del bad["owner"]
    bad["artifacts"][0]["sha256"] = "nothex"
    bad["artifacts"][0]["size"] = -5
    bad["code"]["commit"] = "XYZ"
    bad["environment"]["packages"]["count"] = "many"
    found = {v.path for v in violations(bad, "record")}
    assert found >= {"$", "$.artifacts[0].sha256", "$.artifacts[0].size", "$.code.commit",
                     "$.environment.packages.count"}
    with pytest.raises(SchemaError) as exc:
        check_document(load_yaml_text(dump_record(bad), "r.yaml"), "record")
    assert len(exc.value.violations) >= 5
    assert "5 schema violations" in str(exc.value) or "schema violations" in str(exc.value)


def test_every_seed_lineage_field_has_a_place_in_the_record_schema() -> None:
    from mlreg.records import schema_for

    props = schema_for("record")["properties"]
    # code commit, features, data snapshots, hyperparameters, seeds, hardware fingerprint,
    # training and validation metrics, evaluation (calibration plots and fairness checks).
    for key in ("code", "features", "data", "hyperparameters", "seeds", "environment",
                "hardware", "metrics", "evaluation", "operational", "artifacts", "parent"):
        assert key in props
    gpu = props["hardware"]["properties"]["gpu"]["properties"]
    assert {"type", "driver", "cuda", "cudnn", "count", "memory_mb"} <= set(gpu)
    assert {"calibration_plot", "fairness", "predictions", "snapshot"} <= set(
        props["evaluation"]["properties"])


def test_kinds_have_schema_keys() -> None:
    for kind, (key, _) in KINDS.items():
        assert key == f"mlreg/{kind}/v1"


_metric = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
_hyper = st.dictionaries(st.text("abcdefghij_", min_size=1, max_size=10),
                         st.one_of(_metric, st.integers(-10**6, 10**6), _text, st.booleans(),
                                   st.lists(st.integers(0, 9), max_size=3)), max_size=6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=st.from_regex(r"\A[0-9][0-9]{0,5}(\.[0-9]{1,3}){0,2}\Z"), hyper=_hyper,
       description=_text,
       metrics=st.dictionaries(st.text("abcdefgh_", min_size=1, max_size=8),
                               st.one_of(st.none(), _metric), max_size=5),
       dirty=st.booleans())
def test_valid_records_round_trip_through_dump_and_load(version, hyper, description, metrics,
                                                        dirty) -> None:
    rec = copy.deepcopy(EXAMPLE)
    rec["version"] = version
    rec["hyperparameters"] = hyper
    rec["description"] = description
    rec["metrics"]["validation"] = metrics
    rec["code"]["dirty"] = dirty
    if dirty:
        rec["code"]["diff_sha256"] = "a" * 64
    assert violations(rec, "record") == []
    text = dump_record(rec)
    again = load_document(text.encode(), "rt.yaml", "record").data
    assert again == rec
    assert dump_record(again) == text


def test_example_files_validate() -> None:
    for path in sorted(Path(ROOT, "models").glob("*/*.yaml")):
        kind = "model" if path.name == "model.yaml" else "record"
        load_document(path.read_bytes(), str(path), kind)
