"""The pure decision: every semantic rule of mlreg.gates, each fail-closed case with its reason."""

from __future__ import annotations

import builtins
import json
import math

import pytest
from gatekit import (
    BASELINE_RECORD,
    CANDIDATE_RECORD,
    FRAUD_INFO,
    baseline_subject,
    evidence,
    policy,
    subject,
    verified,
)

from mlreg.gates import Estimate, FileCheck, Promotion, Verification, evaluate, validate_result

AUC_UPLIFT = {"id": "auc-uplift", "metric": "auc", "change": {"min_absolute": 0.005}}


def decide(pol, ev=None, *, cand=None, base="default", verification=None, mode="promotion",
           promotion=None, model_info=None):
    cand = cand or subject()
    base = baseline_subject() if base == "default" else base
    result = evaluate(pol, cand, base, ev, verification or verified(
        ("candidate", cand.record), ("baseline", (base.record if base else {}))),
        mode=mode, promotion=promotion, model_info=FRAUD_INFO if model_info is None else model_info)
    validate_result(json.loads(json.dumps(result.to_json_dict(), allow_nan=False)))
    return result


def rows(result, gate_id=None):
    gates = [g for g in result.gates if gate_id in (None, g.id)]
    return [r for g in gates for r in g.rows]


# -- change rules and the exact boundary --------------------------------------------------------

@pytest.mark.parametrize(("c", "b", "verdict"), [
    (0.805, 0.800, "pass"),        # exactly on the boundary: inclusive, exact
    (0.8049999, 0.800, "fail"),
    (0.805, 0.7, "fail"),          # delta 0.105 is not the question here: margin is 0.005
    (0.3, 0.1, "pass"),
])
def test_min_absolute_change_is_exact_and_inclusive(c: float, b: float, verdict: str) -> None:
    pol = policy({"id": "g", "metric": "auc", "change": {"min_absolute": 0.005}})
    if (c, b) == (0.805, 0.7):
        pol = policy({"id": "g", "metric": "auc", "change": {"max_absolute": 0.105}})
        verdict = "pass"  # 0.805 - 0.7 <= 0.105 exactly, though 0.805 - 0.7 > 0.105 in floats
    r = decide(pol, evidence({("auc", "overall"): c}, {("auc", "overall"): b}))
    assert r.verdict == verdict, rows(r)[0].reason
    row = rows(r)[0]
    assert row.candidate == c and row.baseline == b and row.n == 10_000
    assert math.isclose(row.delta, c - b)


def test_the_failing_reason_shows_enough_digits_to_see_why() -> None:
    pol = policy(AUC_UPLIFT)
    r = decide(pol, evidence({("auc", "overall"): 0.80499999}, {("auc", "overall"): 0.8}))
    assert r.verdict == "fail"
    assert "< +0.005" in rows(r)[0].reason and "0.00499999" in rows(r)[0].reason


def test_relative_change_is_against_the_absolute_value_of_the_baseline() -> None:
    gate = {"id": "g", "metric": "calibration_intercept", "change": {"min_relative": 0.2}}
    # baseline -0.5, candidate -0.4: delta +0.1 == 0.2 * |-0.5| -> pass, exactly.
    r = decide(policy(gate), evidence({("calibration_intercept", "overall"): -0.4},
                                      {("calibration_intercept", "overall"): -0.5}))
    assert r.verdict == "pass", rows(r)[0].reason
    assert rows(r)[0].observed == pytest.approx(0.2) and rows(r)[0].lower == 0.2
    r = decide(policy(gate), evidence({("calibration_intercept", "overall"): -0.41},
                                      {("calibration_intercept", "overall"): -0.5}))
    assert r.verdict == "fail"


def test_max_relative_change_boundary_and_zero_margin() -> None:
    gate = {"id": "g", "metric": "log_loss", "change": {"max_relative": 0.01}}
    r = decide(policy(gate), evidence({("log_loss", "overall"): 0.101},
                                      {("log_loss", "overall"): 0.1}))
    assert r.verdict == "pass", rows(r)[0].reason
    zero = {"id": "g", "metric": "auc", "change": {"min_relative": 0.0}}  # MLflow crashes here
    r = decide(policy(zero), evidence({("auc", "overall"): 0.8}, {("auc", "overall"): 0.8}))
    assert r.verdict == "pass"


def test_relative_change_against_a_zero_baseline_fails_with_the_reason() -> None:
    gate = {"id": "g", "metric": "calibration_intercept", "change": {"min_relative": 0.1}}
    r = decide(policy(gate), evidence({("calibration_intercept", "overall"): 0.3},
                                      {("calibration_intercept", "overall"): 0.0}))
    assert r.verdict == "fail"
    assert "is 0" in rows(r)[0].reason and "undefined" in rows(r)[0].reason


# -- fail closed ------------------------------------------------------------------------------

def test_nan_candidate_fails_and_never_raises() -> None:
    ev = evidence({("auc", "overall"): float("nan")}, {("auc", "overall"): 0.8})
    r = decide(policy(AUC_UPLIFT), ev)
    assert r.verdict == "fail" and "undefined" in rows(r)[0].reason and "NaN" in rows(r)[0].reason
    assert r.to_json_dict()["gates"][0]["rows"][0]["candidate"] is None  # JSON has no NaN


def test_nan_baseline_with_a_change_rule_fails() -> None:
    ev = evidence({("auc", "overall"): 0.8}, {("auc", "overall"): float("nan")})
    r = decide(policy(AUC_UPLIFT), ev)
    assert r.verdict == "fail" and "baseline auc is undefined" in rows(r)[0].reason


def test_missing_metric_and_missing_baseline_metric_fail() -> None:
    r = decide(policy(AUC_UPLIFT), evidence({}, {}))
    assert r.verdict == "fail" and "metric missing" in rows(r)[0].reason
    r = decide(policy(AUC_UPLIFT), evidence({("auc", "overall"): 0.8}, {}))
    assert r.verdict == "fail" and "the baseline has no auc" in rows(r)[0].reason


def test_unknown_metric_names_what_the_engine_computes() -> None:
    gate = {"id": "g", "metric": "aucc", "min": 0.5}
    r = decide(policy(gate), evidence({}, metrics_known=frozenset({"auc", "brier"})))
    assert r.verdict == "fail" and "unknown metric 'aucc'" in rows(r)[0].reason
    assert "auc, brier" in rows(r)[0].reason


def test_one_class_slice_auc_is_undefined_and_fails_with_that_reason() -> None:
    gate = {"id": "g", "metric": "auc", "slices": {"column": "country"}, "min": 0.5}
    ev = evidence({("auc", "country=US"): 0.8,
                   ("auc", "country=IS"): Estimate(None, undefined="only one class in slice "
                                                   "(no positives)")},
                  sizes={"overall": 1000, "country=US": 900, "country=IS": 100})
    r = decide(policy(gate), ev)
    assert r.verdict == "fail"
    failing = [x for x in rows(r) if x.verdict == "fail"]
    assert [x.item for x in failing] == ["country=IS"]
    assert "only one class" in failing[0].reason


@pytest.mark.parametrize(("slices", "why"), [
    (["country=XX"], "not in the evaluation data"),
    ({"column": "nope"}, "matched no slice"),
    ({"min_size": 10**9}, "matched no slice"),
    ({"cross": ["country", "device"]}, "matched no slice"),
    ({"top": 5, "column": "nope"}, "matched no slice"),
])
def test_a_gate_that_matches_no_slice_fails(slices, why: str) -> None:
    gate = {"id": "g", "metric": "auc", "slices": slices, "min": 0.5}
    ev = evidence({("auc", "overall"): 0.9, ("auc", "country=US"): 0.9},
                  sizes={"overall": 1000, "country=US": 1000})
    r = decide(policy(gate), ev)
    assert r.verdict == "fail"
    assert why in r.gates[0].reason or why in rows(r)[0].reason


def test_missing_baseline_fails_change_rules_but_not_absolute_ones() -> None:
    pol = policy(AUC_UPLIFT, {"id": "floor", "metric": "auc", "min": 0.7})
    r = decide(pol, evidence({("auc", "overall"): 0.8}), base=None)
    assert r.verdict == "fail" and r.mode == "promotion" and r.baseline is None
    assert "no baseline" in rows(r, "auc-uplift")[0].reason
    assert rows(r, "floor")[0].verdict == "pass"


def test_baseline_that_could_not_be_loaded_says_why() -> None:
    ev = evidence({("auc", "overall"): 0.8},
                  baseline_problem="baseline fraud@125 cannot be loaded: not found")
    r = decide(policy(AUC_UPLIFT), ev, base=None)
    assert "fraud@125 cannot be loaded" in rows(r)[0].reason


def test_baseline_scored_on_different_data_fails_comparisons() -> None:
    lineage = {"id": "lineage", "type": "lineage", "same_eval_snapshot": True}
    ev = evidence({("auc", "overall"): 0.9}, {("auc", "overall"): 0.8},
                  baseline_problem="the two models were scored on different examples")
    r = decide(policy(AUC_UPLIFT, lineage), ev)
    assert r.verdict == "fail"
    assert "different examples" in rows(r, "auc-uplift")[0].reason
    assert "different examples" in rows(r, "lineage")[0].reason
    assert any("not comparable" in n for n in r.notes)


def test_different_evaluation_snapshots_in_the_records_fail_the_lineage_check() -> None:
    lineage = {"id": "lineage", "type": "lineage", "same_eval_snapshot": True}
    other = dict(BASELINE_RECORD["evaluation"])
    other["snapshot"] = {**other["snapshot"], "uri": "s3://lake/fraud/eval/dt=2024-01-10/",
                         "version_id": "older"}
    r = decide(policy(lineage), evidence({}), base=baseline_subject(evaluation=other))
    assert r.verdict == "fail"
    assert "different evaluation snapshots" in rows(r)[0].reason
    assert "uri" in rows(r)[0].reason and "version_id" in rows(r)[0].reason


def test_no_metrics_at_all_fails_every_metric_gate() -> None:
    r = decide(policy(AUC_UPLIFT), evidence(unavailable="candidate predictions mismatch: ..."))
    assert r.verdict == "fail" and "no metrics: candidate predictions mismatch" in \
        rows(r)[0].reason
    r = decide(policy(AUC_UPLIFT), None)
    assert r.verdict == "fail" and "no metrics were computed" in rows(r)[0].reason


def test_a_policy_without_gates_fails() -> None:
    r = decide(policy(), evidence({}))
    assert r.verdict == "fail" and "no gates" in r.gates[0].reason


# -- bootstrap, rollback, blocking ----------------------------------------------------------------

def test_bootstrap_skips_change_rules_visibly_and_judges_the_rest() -> None:
    slope = {"id": "slope", "metric": "calibration_slope", "target": {"value": 1.0,
                                                                       "tolerance": 0.02}}
    lineage = {"id": "lineage", "type": "lineage", "same_eval_snapshot": True}
    ev = evidence({("auc", "overall"): 0.8, ("calibration_slope", "overall"): 1.01})
    promo = Promotion("fraud", "127", service="fraud-scoring", mode="bootstrap")
    r = decide(policy(AUC_UPLIFT, slope, lineage), ev, base=None, mode="bootstrap",
               promotion=promo)
    assert r.verdict == "pass" and r.mode == "bootstrap"
    auc = r.gates[0]
    assert auc.verdict == "skip" and "bootstrap" in auc.reason and "fraud-scoring" in auc.reason
    assert auc.rows[0].candidate == 0.8  # shown, not judged
    assert r.gates[1].verdict == "pass"
    assert rows(r, "lineage")[0].verdict == "skip"
    assert any("bootstrap" in n for n in r.notes)


def test_bootstrap_still_fails_on_absolute_rules() -> None:
    floor = {"id": "floor", "metric": "auc", "min": 0.9}
    r = decide(policy(floor), evidence({("auc", "overall"): 0.8}), base=None, mode="bootstrap")
    assert r.verdict == "fail"


def test_rollback_only_integrity_and_lineage_block() -> None:
    lineage = {"id": "lineage", "type": "lineage", "require": ["code"]}
    ev = evidence({("auc", "overall"): 0.7}, {("auc", "overall"): 0.8})
    r = decide(policy(AUC_UPLIFT, lineage), ev, mode="rollback")
    assert r.verdict == "pass"
    row = rows(r, "auc-uplift")[0]
    assert row.verdict == "info" and not row.blocking and row.reason.startswith("not blocking")
    assert r.gates[0].verdict == "info"
    # a lineage failure still blocks a rollback
    bad = subject()
    del bad.record["code"]
    r = decide(policy(AUC_UPLIFT, lineage), ev, cand=bad, mode="rollback")
    assert r.verdict == "fail" and rows(r, "lineage")[0].verdict == "fail"


def test_rollback_blocking_may_name_gate_ids() -> None:
    ev = evidence({("auc", "overall"): 0.7}, {("auc", "overall"): 0.8})
    pol = policy(AUC_UPLIFT, rollback={"blocking": ["auc-uplift"]})
    assert decide(pol, ev, mode="rollback").verdict == "fail"


def test_a_non_blocking_gate_is_shown_but_never_fails() -> None:
    gate = {**AUC_UPLIFT, "blocking": False}
    r = decide(policy(gate), evidence({("auc", "overall"): 0.7}, {("auc", "overall"): 0.8}))
    assert r.verdict == "pass" and rows(r)[0].verdict == "info" and not r.gates[0].blocking


# -- intervals and slice sizes ------------------------------------------------------------------

def test_use_interval_requires_the_interval_to_clear_the_bar() -> None:
    gate = {"id": "g", "metric": "auc", "min": 0.8, "use_interval": True}
    assert decide(policy(gate), evidence({("auc", "overall"): (0.85, 0.81, 0.89)})).passed
    r = decide(policy(gate), evidence({("auc", "overall"): (0.85, 0.79, 0.91)}))
    assert r.verdict == "fail" and "interval lower end 0.79 < 0.8" in rows(r)[0].reason
    r = decide(policy(gate), evidence({("auc", "overall"): 0.85}))
    assert r.verdict == "fail" and "no interval" in rows(r)[0].reason
    # without use_interval the point estimate decides
    assert decide(policy({**gate, "use_interval": False}),
                  evidence({("auc", "overall"): (0.85, 0.79, 0.91)})).passed


def test_use_interval_on_a_change_uses_the_paired_delta_interval() -> None:
    gate = {**AUC_UPLIFT, "use_interval": True}
    ev = evidence({("auc", "overall"): 0.82}, {("auc", "overall"): 0.80},
                  deltas={("auc", "overall"): (0.02, 0.004, 0.036)})
    r = decide(policy(gate), ev)
    assert r.verdict == "fail" and "interval lower end +0.004 < +0.005" in rows(r)[0].reason
    ev = evidence({("auc", "overall"): 0.82}, {("auc", "overall"): 0.80},
                  deltas={("auc", "overall"): (0.02, 0.005, 0.035)})
    assert decide(policy(gate), ev).passed
    assert decide(policy(AUC_UPLIFT), ev).passed


def test_use_interval_on_a_target_needs_the_whole_interval_in_the_band() -> None:
    gate = {"id": "g", "metric": "calibration_slope", "use_interval": True,
            "target": {"value": 1.0, "tolerance": 0.02}}
    ok = evidence({("calibration_slope", "overall"): (1.0, 0.985, 1.015)})
    wide = evidence({("calibration_slope", "overall"): (1.0, 0.975, 1.025)})
    assert decide(policy(gate), ok).passed
    r = decide(policy(gate), wide)
    assert r.verdict == "fail" and "0.975 < 0.98" in rows(r)[0].reason


def test_target_band_is_inclusive_and_exact() -> None:
    gate = {"id": "g", "metric": "calibration_slope", "target": {"value": 1.0, "tolerance": 0.02}}
    for v, ok in ((0.98, True), (1.02, True), (0.9799999, False), (1.0200001, False)):
        r = decide(policy(gate), evidence({("calibration_slope", "overall"): v}))
        assert r.passed is ok, (v, rows(r)[0].reason)
    assert rows(r)[0].lower == 0.98 and rows(r)[0].upper == 1.02


def test_min_slice_size_fails_named_slices_and_skips_pattern_slices() -> None:
    sizes = {"overall": 10_000, "country=US": 9_900, "country=IS": 100}
    values = {("auc", "country=US"): 0.9, ("auc", "country=IS"): 0.5}
    named = {"id": "g", "metric": "auc", "slices": ["country=IS"], "min": 0.7,
             "min_slice_size": 200}
    r = decide(policy(named), evidence(values, sizes=sizes))
    assert r.verdict == "fail" and "n=100 < min_slice_size 200" in rows(r)[0].reason
    pattern = {**named, "slices": {"column": "country"}}
    r = decide(policy(pattern), evidence(values, sizes=sizes))
    assert r.verdict == "pass"
    skipped = [x for x in rows(r) if x.verdict == "skip"]
    assert [x.item for x in skipped] == ["country=IS"] and skipped[0].candidate == 0.5
    # the policy-wide default applies when the gate says nothing
    default = {k: v for k, v in pattern.items() if k != "min_slice_size"}
    assert decide(policy(default, evaluation={"min_slice_size": 200}),
                  evidence(values, sizes=sizes)).passed
    assert decide(policy(default), evidence(values, sizes=sizes)).verdict == "fail"
    all_small = {**pattern, "min_slice_size": 10**6}
    r = decide(policy(all_small), evidence(values, sizes=sizes))
    assert r.verdict == "fail" and "nothing judged" in r.gates[0].reason
    r = decide(policy({**all_small, "blocking": False}), evidence(values, sizes=sizes))
    assert r.verdict == "pass" and r.gates[0].verdict == "info"


def test_top_n_ranks_single_column_slices_by_traffic() -> None:
    sizes = {"overall": 1000, "country=US": 500, "country=GB": 300, "country=DE": 200,
             "device=ios": 600, "device=web": 400, "country=US,device=ios": 700}
    values = {("auc", k): 0.8 for k in sizes}
    gate = {"id": "g", "metric": "auc", "slices": {"top": 3}, "min": 0.5}
    r = decide(policy(gate), evidence(values, sizes=sizes))
    assert [x.item for x in rows(r)] == ["device=ios", "country=US", "device=web"]
    only_country = {**gate, "slices": {"top": 2, "column": "country"}}
    r = decide(policy(only_country), evidence(values, sizes=sizes))
    assert [x.item for x in rows(r)] == ["country=US", "country=GB"]
    plain_top = {**gate, "slices": "top"}
    r = decide(policy(plain_top, evaluation={"top_n": 1}), evidence(values, sizes=sizes))
    assert [x.item for x in rows(r)] == ["device=ios"]
    cross = {**gate, "slices": {"cross": ["device", "country"]}}
    r = decide(policy(cross), evidence(values, sizes=sizes))
    assert [x.item for x in rows(r)] == ["country=US,device=ios"]


def test_top_n_by_weight() -> None:
    from mlreg.gates import Evidence, SliceStats

    slices = {"overall": SliceStats("overall", (), 100, 100.0),
              "country=US": SliceStats("country=US", ("country",), 90, 10.0),
              "country=GB": SliceStats("country=GB", ("country",), 10, 90.0)}
    cand = {("auc", None, k): Estimate(0.8) for k in slices}
    ev = Evidence(slices=slices, candidate=cand, rows=100)
    gate = {"id": "g", "metric": "auc", "slices": {"top": 1}, "min": 0.5}
    assert rows(decide(policy(gate), ev))[0].item == "country=US"
    r = decide(policy(gate, evaluation={"traffic": "weight"}), ev)
    assert rows(r)[0].item == "country=GB"


# -- group gaps ---------------------------------------------------------------------------------

def _gap_evidence(values: dict[str, tuple], **kw):
    return evidence({}, groups={("precision", "overall", "age_band", 0.5): values}, **kw)


GAP = {"id": "parity", "metric": "precision", "max_group_gap": 0.02, "groups": ["age_band"]}


def test_group_gap_is_max_minus_min_exactly() -> None:
    r = decide(policy(GAP), _gap_evidence({"18-29": (0.72, 5000), "30-49": (0.71, 5000),
                                           "50+": (0.70, 5000)}))
    assert r.verdict == "pass", rows(r)[0].reason   # 0.72 - 0.70 == 0.02, inclusive
    row = rows(r)[0]
    assert row.item == "overall by age_band" and row.observed == pytest.approx(0.02)
    assert "18-29" in row.reason and "50+" in row.reason and len(row.groups) == 3
    r = decide(policy(GAP), _gap_evidence({"18-29": (0.7201, 5000), "50+": (0.70, 5000)}))
    assert r.verdict == "fail"


def test_group_gap_defaults_to_the_models_protected_columns() -> None:
    gate = {k: v for k, v in GAP.items() if k != "groups"}
    ev = _gap_evidence({"18-29": (0.72, 5000), "50+": (0.60, 5000)})
    r = decide(policy(gate), ev)
    assert r.verdict == "fail" and rows(r)[0].item == "overall by age_band"
    r = decide(policy(gate), ev, model_info={"protected_columns": []})
    assert r.verdict == "fail" and "no group columns" in rows(r)[0].reason


def test_group_gap_fails_on_an_undefined_group_and_leaves_small_groups_out() -> None:
    undefined = _gap_evidence({"18-29": (0.72, 5000), "50+": (Estimate(None, undefined="no "
                                                              "predicted positives"), 5000)})
    r = decide(policy(GAP), undefined)
    assert r.verdict == "fail" and "no predicted positives" in rows(r)[0].reason
    small = _gap_evidence({"18-29": (0.72, 5000), "30-49": (0.715, 5000), "50+": (0.2, 12)})
    r = decide(policy({**GAP, "min_group_size": 100}), small)
    assert r.verdict == "pass" and "left out" in rows(r)[0].reason
    assert [g.included for g in rows(r)[0].groups] == [True, True, False]
    r = decide(policy({**GAP, "min_group_size": 10_000}), small)
    assert r.verdict == "fail" and "fewer than two groups" in rows(r)[0].reason
    r = decide(policy(GAP), evidence({}))
    assert r.verdict == "fail" and "no precision per 'age_band' group" in rows(r)[0].reason


def test_group_gap_with_use_interval_uses_the_gap_interval() -> None:
    vals = {"18-29": (0.705, 2000), "50+": (0.70, 2000)}
    gate = {**GAP, "use_interval": True}
    r = decide(policy(gate), _gap_evidence(vals, gap=(0.005, 0.0, 0.03)))
    assert r.verdict == "fail" and "interval upper end 0.03 > 0.02" in rows(r)[0].reason
    assert decide(policy(gate), _gap_evidence(vals, gap=(0.005, 0.0, 0.019))).passed
    assert decide(policy(gate), _gap_evidence(vals)).verdict == "fail"  # no interval


# -- operational gates --------------------------------------------------------------------------

LATENCY = {"id": "latency", "type": "latency", "max_p99_ms": 100, "hardware": "c6i.2xlarge"}


def _with_latency(p99, hardware="c6i.2xlarge"):
    return subject(operational={"latency": {"p99_ms": p99, "hardware": hardware}})


def test_latency_inclusive_bound_on_the_reference_hardware() -> None:
    assert decide(policy(LATENCY), evidence({}), cand=_with_latency(100)).passed
    r = decide(policy(LATENCY), evidence({}), cand=_with_latency(100.01))
    assert r.verdict == "fail" and "p99 100.01 > 100" in rows(r)[0].reason


def test_latency_measured_on_other_hardware_fails_with_that_reason() -> None:
    r = decide(policy(LATENCY), evidence({}), cand=_with_latency(40, "m5.large"))
    assert r.verdict == "fail"
    assert "measured on 'm5.large', not on the reference hardware 'c6i.2xlarge'" in \
        rows(r)[0].reason
    r = decide(policy(LATENCY), evidence({}), cand=subject(operational={}))
    assert r.verdict == "fail" and "no p99 latency" in rows(r)[0].reason


SIZE = {"id": "mobile-size", "type": "artifact_size", "target": "mobile", "max_mb": 500}


def _with_artifacts(*sizes_and_targets):
    arts = [{"name": "model", "uri": "s/model", "sha256": "0" * 64, "size": 2_000_000_000,
             "format": "savedmodel", "target": "server"}]
    for i, (size, target) in enumerate(sizes_and_targets):
        arts.append({"name": f"variant-{i}", "uri": f"s/v{i}", "sha256": "1" * 64, "size": size,
                     "format": "tflite", "target": target, "variant_of": "model"})
    return subject(artifacts=arts)


def test_size_gate_uses_the_variants_built_for_the_target() -> None:
    info = {"deployment_targets": [{"name": "server"}, {"name": "mobile"}]}
    r = decide(policy(SIZE), evidence({}), cand=_with_artifacts((200_000_000, "mobile")),
               model_info=info, verification=Verification())
    assert r.passed and rows(r)[0].item == "variant-0" and rows(r)[0].observed == 200.0
    r = decide(policy(SIZE), evidence({}), cand=_with_artifacts((500_000_001, "mobile")),
               model_info=info)
    assert r.verdict == "fail" and "500.000001 > 500" in rows(r)[0].reason
    assert decide(policy(SIZE), evidence({}), cand=_with_artifacts((500_000_000, "mobile")),
                  model_info=info).passed  # 500 MB exactly: inclusive


def test_size_gate_skips_models_that_do_not_deploy_to_the_target() -> None:
    r = decide(policy(SIZE), evidence({}), cand=_with_artifacts(), model_info=FRAUD_INFO)
    assert r.passed and r.gates[0].verdict == "skip" and "does not deploy" in r.gates[0].reason
    info = {"deployment_targets": [{"name": "mobile"}]}
    r = decide(policy(SIZE), evidence({}), cand=_with_artifacts(), model_info=info)
    assert r.verdict == "fail" and "no artifact for target 'mobile'" in rows(r)[0].reason
    promo = Promotion("fraud", "127", service="app", target="mobile")
    r = decide(policy(SIZE), evidence({}), cand=_with_artifacts(), promotion=promo)
    assert r.verdict == "fail"


def test_size_gate_prefers_the_size_measured_in_the_store() -> None:
    cand = _with_artifacts((100, "mobile"))
    check = FileCheck("candidate", "variant-0", "s/v0", "1" * 64, 100, "2" * 64, 700_000_000,
                      "size mismatch")
    r = decide(policy(SIZE), evidence({}), cand=cand, verification=Verification((check,)),
               model_info={"deployment_targets": [{"name": "mobile"}]})
    assert r.verdict == "fail" and "measured in the store" in rows(r)[0].reason


# -- lineage and integrity ----------------------------------------------------------------------

LINEAGE = {"id": "lineage", "type": "lineage", "require": ["code", "seeds", "operational.latency"],
           "immutable_data": True, "verify_artifacts": True, "same_eval_snapshot": True}


def test_lineage_passes_on_the_example_record() -> None:
    r = decide(policy(LINEAGE), evidence({}))
    assert r.passed, [x.reason for x in rows(r) if x.verdict != "pass"]
    cats = {x.item: x.category for x in rows(r)}
    assert cats["model"] == "integrity" and cats["candidate predictions"] == "integrity"
    assert cats["require code"] == "lineage"


def test_tampered_artifact_fails_integrity() -> None:
    art = CANDIDATE_RECORD["artifacts"][0]
    files = [f for f in verified(("candidate", CANDIDATE_RECORD),
                                 ("baseline", BASELINE_RECORD)).files if f.name != "model"]
    files.append(FileCheck("candidate", "model", art["uri"], art["sha256"], art["size"],
                           "f" * 64, art["size"], "sha256 mismatch: the record says ..."))
    r = decide(policy(LINEAGE), evidence({}), verification=Verification(tuple(files)))
    assert r.verdict == "fail"
    bad = [x for x in rows(r) if x.verdict == "fail"]
    assert [(x.item, x.category) for x in bad] == [("model", "integrity")]
    assert "sha256 mismatch" in bad[0].reason
    assert [f["status"] for f in r.to_json_dict()["files"] if f["name"] == "model"] == \
        ["mismatch"]


def test_unverified_artifact_fails() -> None:
    r = decide(policy(LINEAGE), evidence({}), verification=Verification())
    assert r.verdict == "fail"
    assert all("not verified" in x.reason for x in rows(r) if x.verdict == "fail")


def test_missing_fields_and_mutable_data_fail_lineage() -> None:
    rec = subject()
    del rec.record["seeds"]
    rec.record["operational"] = {}
    rec.record["data"][0] = {**rec.record["data"][0], "immutable": False,
                             "reason": "a mutable table"}
    r = decide(policy(LINEAGE), evidence({}), cand=rec)
    reasons = {x.item: x.reason for x in rows(r) if x.verdict == "fail"}
    assert "seeds is missing" in reasons["require seeds"]
    assert "operational.latency is missing" in reasons["require operational.latency"]
    assert "not immutable" in reasons["data[0] train"] and "a mutable table" in \
        reasons["data[0] train"]


# -- the decision record ------------------------------------------------------------------------

def test_result_carries_digests_and_validates_against_its_schema() -> None:
    pol = policy(AUC_UPLIFT, LINEAGE)
    r = decide(pol, evidence({("auc", "overall"): 0.9}, {("auc", "overall"): 0.8}))
    doc = r.to_json_dict()
    assert doc["schema"] == "mlreg/result/v1"
    assert doc["policy"]["sha256"] == pol.digest
    assert doc["candidate"]["record_sha256"] == "a" * 64
    assert doc["baseline"]["record_sha256"] == "b" * 64
    assert {f["name"] for f in doc["files"]} >= {"model", "predictions"}
    assert doc["summary"]["gates"] == 2 and doc["verdict"] == "pass"


def test_schema_refuses_unknown_fields_and_oversized_strings() -> None:
    from mlreg.errors import SchemaError

    r = decide(policy(AUC_UPLIFT), evidence({("auc", "overall"): 0.9}, {("auc", "overall"): 0.8}))
    doc = r.to_json_dict()
    doc["extra"] = 1
    doc["gates"][0]["rows"][0]["reason"] = "x" * 5000
    with pytest.raises(SchemaError) as exc:
        validate_result(doc)
    paths = {v.path for v in exc.value.violations}
    assert "$" in paths and "$.gates[0].rows[0].reason" in paths


def test_long_names_are_capped_in_the_json() -> None:
    key = "country=" + "x" * 1000  # slice values come from the data, not the policy
    gate = {"id": "g", "metric": "auc", "slices": {"column": "country"}, "min": 0.5}
    r = decide(policy(gate), evidence({("auc", key): 0.9}, sizes={"overall": 10, key: 10}))
    assert len(r.to_json_dict()["gates"][0]["rows"][0]["item"]) <= 512


def test_evaluate_is_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    pol = policy(AUC_UPLIFT, LINEAGE, LATENCY, SIZE)
    ev = evidence({("auc", "overall"): 0.9}, {("auc", "overall"): 0.8})

    def no_io(*a, **k):
        raise AssertionError("evaluate did I/O")

    monkeypatch.setattr(builtins, "open", no_io)
    first = evaluate(pol, subject(), baseline_subject(), ev, Verification(),
                     model_info=FRAUD_INFO).to_json_dict()
    again = evaluate(pol, subject(), baseline_subject(), ev, Verification(),
                     model_info=FRAUD_INFO).to_json_dict()
    assert first == again


def test_invalid_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        evaluate(policy(AUC_UPLIFT), subject(), None, None, mode="yolo")


def test_top_n_competes_only_among_the_models_slice_columns() -> None:
    sizes = {"overall": 1000, "country=US": 500, "country=GB": 300, "age_band=30-49": 900}
    values = {("auc", k): 0.8 for k in sizes}
    gate = {"id": "g", "metric": "auc", "slices": {"top": 2}, "min": 0.5}
    r = decide(policy(gate), evidence(values, sizes=sizes),
               model_info={"slice_columns": ["country"]})
    assert [x.item for x in rows(r)] == ["country=US", "country=GB"]
    r = decide(policy(gate), evidence(values, sizes=sizes), model_info={})
    assert [x.item for x in rows(r)] == ["age_band=30-49", "country=US"]


def test_oversized_strings_anywhere_still_give_a_valid_result() -> None:
    huge = "x" * 10_000
    cand = subject(artifacts=[{"name": "model", "uri": "s/" + huge, "sha256": "0" * 64,
                               "size": 1, "target": "server"}],
                   evaluation={"snapshot": {"uri": "s3://" + huge, "immutable": False}})
    check = FileCheck("candidate", "model", "s/" + huge, "0" * 64, 1, None, None, huge)
    promo = Promotion("fraud", "127", service="fraud-scoring", target="t" * 500)
    r = evaluate(policy(LINEAGE, AUC_UPLIFT), cand, None,
                 evidence(unavailable=huge, baseline_problem=huge, engine=huge),
                 Verification((check,)), promotion=promo, model_info=FRAUD_INFO)
    validate_result(r.to_json_dict())
