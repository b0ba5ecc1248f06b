"""Policies: schema, merging a model policy over the default, loading from a registry, digest."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from mlreg.errors import InputError, LoadError, SchemaError
from mlreg.gates.policy import (
    EVALUATION_DEFAULTS,
    Policy,
    check_policy,
    load_policy,
    merge_policies,
)
from mlreg.registry import Registry
from testkit import ROOT, copy_example

DEFAULT = {
    "schema": "mlreg/policy/v1",
    "evaluation": {"top_n": 5, "min_slice_size": 200},
    "rollback": {"blocking": ["integrity", "lineage"]},
    "gates": [
        {"id": "auc-uplift", "metric": "auc", "change": {"min_absolute": 0.005}},
        {"id": "calibration", "metric": "calibration_slope", "slices": {"top": 5},
         "target": {"value": 1.0, "tolerance": 0.02}},
        {"id": "lineage", "type": "lineage", "require": ["code"]},
    ],
}


def test_model_gate_with_same_id_replaces_in_place_and_new_ones_append() -> None:
    model = {"schema": "mlreg/policy/v1", "gates": [
        {"id": "calibration", "metric": "calibration_slope", "slices": "overall",
         "target": {"value": 1.0, "tolerance": 0.05}},
        {"id": "latency", "type": "latency", "max_p99_ms": 100, "hardware": "c6i.2xlarge"},
    ]}
    merged = merge_policies(DEFAULT, model)
    assert [g["id"] for g in merged["gates"]] == ["auc-uplift", "calibration", "lineage",
                                                  "latency"]
    assert merged["gates"][1]["target"]["tolerance"] == 0.05


def test_remove_drops_default_gates_and_unknown_ids_are_errors() -> None:
    merged = merge_policies(DEFAULT, {"schema": "mlreg/policy/v1", "remove": ["calibration"]})
    assert [g["id"] for g in merged["gates"]] == ["auc-uplift", "lineage"]
    with pytest.raises(SchemaError, match="names no gate.*calibraton"):
        merge_policies(DEFAULT, {"schema": "mlreg/policy/v1", "remove": ["calibraton"]})


def test_evaluation_and_rollback_merge_key_by_key_over_builtin_defaults() -> None:
    merged = merge_policies(DEFAULT, {"schema": "mlreg/policy/v1",
                                      "evaluation": {"min_slice_size": 1000},
                                      "rollback": {"blocking": ["integrity"]}})
    ev = merged["evaluation"]
    assert ev["min_slice_size"] == 1000 and ev["top_n"] == 5
    assert ev["confidence"] == EVALUATION_DEFAULTS["confidence"]  # built-in default filled in
    assert merged["rollback"] == {"blocking": ["integrity"]}


def test_extends_none_ignores_the_default() -> None:
    merged = merge_policies(DEFAULT, {"schema": "mlreg/policy/v1", "extends": "none",
                                      "gates": [{"id": "floor", "metric": "auc", "min": 0.7}]})
    assert [g["id"] for g in merged["gates"]] == ["floor"]
    assert merged["evaluation"]["min_slice_size"] == EVALUATION_DEFAULTS["min_slice_size"]


def test_no_policy_at_all_is_an_error_not_a_pass() -> None:
    with pytest.raises(InputError, match="no policy"):
        merge_policies(None, None)


@pytest.mark.parametrize(("gate", "message"), [
    ({"id": "x", "metric": "auc", "min": 0.7, "target": {"value": 1, "tolerance": 0.1}},
     "2 rules"),
    ({"id": "x", "metric": "auc", "min": 0.9, "max": 0.8}, "above max"),
    ({"id": "x", "metric": "auc", "min": 0.5, "groups": ["age"]}, "only applies"),
    ({"id": "x", "metric": "auc", "threshold": 0.3, "min": 0.5}, "takes no threshold"),
    ({"id": "x", "metric": "auc"}, "needs at least one of"),
    ({"id": "x", "metric": "auc", "change": {"min_absolute": 0.1, "max_absolute": 0.2}},
     "has too many properties"),
    ({"id": "x", "type": "latency", "max_p99_ms": 100}, "'hardware' is a required"),
    ({"id": "Bad Id", "metric": "auc", "min": 0.5}, "does not have the expected form"),
    ({"id": "x", "metric": "auc", "min": 0.5, "slices": {"top": 0}}, "not valid under any"),
])
def test_invalid_gates_are_refused_with_a_path(gate: dict, message: str) -> None:
    doc = {"schema": "mlreg/policy/v1", "gates": [gate]}
    with pytest.raises(SchemaError) as exc:
        check_policy(doc, "policies/x.yaml")
    assert exc.value.violations and all(v.path.startswith("$.gates[0]")
                                        for v in exc.value.violations)
    assert any(re.search(message, v.message) for v in exc.value.violations)


def test_duplicate_gate_ids_are_refused() -> None:
    doc = {"schema": "mlreg/policy/v1", "gates": [
        {"id": "a", "metric": "auc", "min": 0.5}, {"id": "a", "metric": "auc", "max": 0.9}]}
    with pytest.raises(SchemaError, match="duplicate gate id 'a'"):
        check_policy(doc)


def test_shipped_policies_are_valid_and_the_template_is_the_example_default() -> None:
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        check_policy(yaml.safe_load(path.read_text()), str(path))
    template = ROOT / "src/mlreg/templates/registry/policies/default.yaml"
    assert template.read_text() == (ROOT / "policies/default.yaml").read_text()


def test_load_policy_from_a_registry_merges_default_and_model(tmp_path: Path) -> None:
    reg_dir = copy_example(tmp_path / "reg")
    with Registry.open(str(reg_dir)) as reg:
        fraud = load_policy(reg, "fraud")
        recsys = load_policy(reg, "recsys")
        unknown = load_policy(reg, "brand-new-model")  # no own file: the default applies
    assert [s.path for s in fraud.sources] == ["policies/default.yaml", "policies/fraud.yaml"]
    assert [g["id"] for g in fraud.gates] == ["auc-uplift", "calibration", "mobile-size",
                                              "lineage", "precision-parity", "latency"]
    assert "auc-uplift" not in [g["id"] for g in recsys.gates]
    assert [s.path for s in unknown.sources] == ["policies/default.yaml"]
    assert fraud.digest != recsys.digest and len(fraud.digest) == 64


def test_policy_digest_is_canonical(tmp_path: Path) -> None:
    a = Policy(merge_policies(DEFAULT, None))
    reordered = dict(reversed(list(merge_policies(DEFAULT, None).items())))
    assert Policy(reordered).digest == a.digest
    changed = merge_policies(DEFAULT, {"schema": "mlreg/policy/v1",
                                       "evaluation": {"top_n": 6}})
    assert Policy(changed).digest != a.digest


def test_a_broken_policy_file_is_bad_input(tmp_path: Path) -> None:
    reg_dir = copy_example(tmp_path / "reg")
    (reg_dir / "policies/fraud.yaml").write_text("schema: mlreg/policy/v1\ngates: [{id: x}]\n")
    with Registry.open(str(reg_dir)) as reg, pytest.raises(SchemaError, match="fraud.yaml"):
        load_policy(reg, "fraud")
    (reg_dir / "policies/fraud.yaml").write_text("schema: mlreg/policy/v1\ngates: no\n")
    with Registry.open(str(reg_dir)) as reg, pytest.raises(LoadError):
        load_policy(reg, "fraud")
    shutil.rmtree(reg_dir / "policies")
    with Registry.open(str(reg_dir)) as reg, pytest.raises(InputError, match="no policy"):
        load_policy(reg, "fraud")


def test_parameterised_metric_sets_match_the_metrics_engine() -> None:
    from mlreg.gates.policy import RANKED, THRESHOLDED
    from mlreg.metrics import available_metrics, get_metric

    specs = [get_metric(m) for m in available_metrics()]
    assert THRESHOLDED == {s.name for s in specs if s.param == "threshold"}
    assert RANKED == {s.name for s in specs if s.param == "k"}


def test_k_only_on_ranking_metrics() -> None:
    check_policy({"schema": "mlreg/policy/v1",
                  "gates": [{"id": "n", "metric": "ndcg", "k": 20, "min": 0.3}]})
    with pytest.raises(SchemaError, match="takes no k"):
        check_policy({"schema": "mlreg/policy/v1",
                      "gates": [{"id": "n", "metric": "auc", "k": 20, "min": 0.3}]})
