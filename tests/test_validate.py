from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlreg.validate as validate_mod
from mlreg.records import _fast_validator, _validator
from mlreg.registry import Registry
from mlreg.yamlio import load_yaml_text
from testkit import ROOT


def _problems(root: Path) -> list[dict]:
    with Registry.open(str(root)) as reg:
        return [p.to_dict() for p in validate_mod.validate_registry(reg)[0]]


def test_parallel_validation_finds_exactly_what_sequential_finds(example_registry: Path,
                                                                 monkeypatch) -> None:
    rec = example_registry / "models/fraud/127.yaml"
    rec.write_text(rec.read_text().replace("dirty: false", "dirty: no"))
    other = example_registry / "models/recsys/42.yaml"
    other.write_text(other.read_text().replace("owner: ", "ownr: "))
    sequential = _problems(example_registry)
    monkeypatch.setattr(validate_mod, "PARALLEL_MIN", 1)
    parallel = _problems(example_registry)
    assert parallel == sequential
    assert {p["file"] for p in parallel} == {"models/fraud/127.yaml", "models/recsys/42.yaml"}


EXAMPLE = load_yaml_text((ROOT / "models/fraud/127.yaml").read_bytes(), "x").data
_PATHS = [("owner",), ("artifacts", 0, "sha256"), ("artifacts", 0, "size"), ("code", "dirty"),
          ("code", "commit"), ("data", 0, "immutable"), ("seeds", "values", "python"),
          ("environment", "packages", "count"), ("hardware", "gpu", "present"),
          ("version",), ("model",), ("created",), ("artifacts", 0, "uri")]
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=8),
                    st.sampled_from(["s3://u:p@b/k", "../x", "1.10", "a" * 64, "Fraud"]))


@pytest.mark.skipif(_fast_validator("record") is None, reason="jsonschema-rs not installed")
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PATHS), _VALUES), max_size=3),
       st.sets(st.sampled_from(["owner", "code", "tags", "extra"]), max_size=2))
def test_fast_and_explaining_validators_agree(edits, drops) -> None:
    doc = copy.deepcopy(EXAMPLE)
    for path, value in edits:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    for key in drops:
        doc.pop(key, None)
        if key == "extra":
            doc["extra"] = 1
    slow_valid = not list(_validator("record").iter_errors(doc))
    assert _fast_validator("record").is_valid(doc) == slow_valid


def test_policy_problems_beyond_the_schema_are_reported(example_registry: Path) -> None:
    pol = example_registry / "policies/fraud.yaml"
    pol.write_text(pol.read_text() + "remove: [no-such-gate]\n")
    found = _problems(example_registry)
    assert [p["file"] for p in found] == ["policies/fraud.yaml"]
    assert "no-such-gate" in found[0]["message"]
