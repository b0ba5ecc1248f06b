"""Online gates: a canary becomes stable only on an online result that meets the policy's
``online:`` rules (issue 6, item 4). Policy schema and merge, the pure decision, and the PR gate
and ``mlreg gate --candidate`` on real git with the example registry (fraud@127's 5% canary on
fraud-scoring measured p99 142 ms online; its offline gates all pass)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from gatekit import FRAUD_INFO, baseline_subject, evidence, subject

from mlreg.errors import SchemaError
from mlreg.gates.evaluate import evaluate
from mlreg.gates.inputs import OnlineEvidence, Promotion
from mlreg.gates.policy import Policy, check_policy, merge_policies
from mlreg.gates.result import GateOutcome, validate_result
from mlreg.gitops.manifest import ServiceState, edit_service

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gitops"))
from flowkit import Flow  # noqa: E402

P99 = {"id": "canary-p99", "metric": "p99_latency_ms", "max": 100, "services": ["fraud-scoring"]}
CTR = {"id": "ctr-lift", "metric": "ctr_lift", "min": -0.005, "use_interval": True}
OLD_RESULT = "models/fraud/online/canary-2024-01-26.yaml"


def _doc(**sections) -> dict:
    return {"schema": "mlreg/policy/v1", **sections}


# ------------------------------------------------------------------------ policy schema, merge
def test_policy_schema_accepts_online_rules() -> None:
    check_policy(_doc(online=[P99, CTR, {"metric": "watch_time_lift", "min": 0,
                                        "blocking": False, "min_traffic_percent": 1,
                                        "category": "metric", "description": "shown"}]))
    check_policy(_doc(online=[]))


@pytest.mark.parametrize("rule, message", [
    ({"metric": "ctr_lift", "min": 0, "bogus": 1}, "bogus"),
    ({"min": 0}, "metric"),
    ({"metric": "ctr_lift"}, None),                        # neither min nor max
    ({"metric": "ctr_lift", "min": "low"}, None),
    ({"metric": "ctr_lift", "min": 0, "category": "vibes"}, None),
    ({"metric": "ctr_lift", "min": 0, "services": []}, None),
    ({"metric": "ctr_lift", "min": 0, "min_traffic_percent": 101}, None),
    ({"metric": "ctr_lift", "min": 0.1, "max": 0}, "above max"),
])
def test_policy_schema_rejects_bad_online_rules(rule: dict, message: str | None) -> None:
    with pytest.raises(SchemaError, match=message):
        check_policy(_doc(online=[rule]))


def test_policy_rejects_two_online_rules_with_one_id() -> None:
    with pytest.raises(SchemaError, match="duplicate online gate id 'online-ctr-lift'"):
        check_policy(_doc(online=[{"metric": "ctr_lift", "min": 0},
                                  {"metric": "ctr_lift", "max": 1}]))
    with pytest.raises(SchemaError, match="online"):
        check_policy(_doc(online={"metric": "ctr_lift"}))


def test_merge_the_model_online_list_replaces_the_default_one() -> None:
    default = _doc(online=[CTR])
    assert merge_policies(default, _doc())["online"] == [CTR]
    assert merge_policies(default, None)["online"] == [CTR]
    assert merge_policies(default, _doc(online=[P99]))["online"] == [P99]
    assert "online" not in merge_policies(default, _doc(online=[]))
    assert "online" not in merge_policies(default, _doc(extends="none", gates=[
        {"id": "l", "type": "lineage"}]))
    assert merge_policies(None, _doc(online=[P99]))["online"] == [P99]
    # No online rules anywhere: the merged policy (and so its digest) is as before.
    assert "online" not in merge_policies(_doc(), _doc())


def test_online_rules_are_in_the_policy_digest() -> None:
    gates = [{"id": "l", "type": "lineage"}]
    plain = Policy.from_document(_doc(gates=gates))
    with_p99 = Policy.from_document(_doc(gates=gates, online=[P99]))
    looser = Policy.from_document(_doc(gates=gates, online=[{**P99, "max": 200}]))
    assert plain.online == [] and with_p99.online == [P99]
    assert len({plain.digest, with_p99.digest, looser.digest}) == 3


def test_example_policies_carry_online_rules() -> None:
    from testkit import ROOT

    for name, metric in (("fraud", "p99_latency_ms"), ("recsys", "ctr_lift")):
        doc = yaml.safe_load((ROOT / f"policies/{name}.yaml").read_text())
        check_policy(doc)
        assert [r["metric"] for r in doc["online"]] == [metric]


# ------------------------------------------------------------------------ the pure decision
def _result(version: str = "127", service: str = "fraud-scoring", p99: float = 80.0,
            experiment: str = "canary-2", end: str = "2024-02-02T00:00:00Z", **extra) -> dict:
    return {"schema": "mlreg/online/v1", "model": "fraud", "version": version,
            "experiment": experiment, "service": service, "traffic_percent": 5,
            "start": "2024-02-01T00:00:00Z", "end": end, "recorded": end,
            "metrics": {"p99_latency_ms": {"value": p99}}, "path":
            f"models/fraud/online/{experiment}.yaml", **extra}


def _decide(online: OnlineEvidence | None, rules: list | None = None, mode: str = "promotion",
            rollback: dict | None = None):
    doc = _doc(gates=[{"id": "auc-uplift", "metric": "auc", "change": {"min_absolute": 0.005}}])
    if rules is not None:
        doc["online"] = rules
    if rollback is not None:
        doc["rollback"] = rollback
    pol = Policy.from_document(doc)
    ev = evidence({("auc", "overall"): 0.81}, {("auc", "overall"): 0.80},
                  {("auc", "overall"): (0.01, 0.006, 0.014)}, sizes={"overall": 1000})
    promo = Promotion(model="fraud", to_version="127", service="fraud-scoring",
                      from_version="126", mode=mode)  # type: ignore[arg-type]
    res = evaluate(pol, subject(), baseline_subject(), ev, mode=mode, promotion=promo,
                   model_info=FRAUD_INFO, online=online)
    validate_result(res.to_json_dict())
    return res


def _online(res) -> list[GateOutcome]:
    return [g for g in res.gates if g.type == "online"]


def test_a_passing_online_result_passes() -> None:
    res = _decide(OnlineEvidence("fraud-scoring", (_result(p99=80.0),)), [P99])
    (g,) = _online(res)
    assert res.passed and g.verdict == "pass" and g.id == "canary-p99"
    assert g.rows[0].observed == 80.0 and g.rows[0].upper == 100
    assert any("online gates judged on models/fraud/online/canary-2.yaml" in n
               for n in res.notes)


def test_a_breach_fails_and_is_the_reason_to_roll_back() -> None:
    res = _decide(OnlineEvidence("fraud-scoring", (_result(p99=142.0),)), [P99])
    (g,) = _online(res)
    assert not res.passed and g.verdict == "fail" and g.blocking
    assert "p99_latency_ms 142 is above the maximum 100" in g.reason
    assert "the reason to roll back the canary fraud@127 on fraud-scoring" in g.reason
    assert any("reason to roll the canary back" in n and "mlreg rollback fraud-scoring" in n
               for n in res.notes)


def test_the_latest_result_counts() -> None:
    old = _result(p99=142.0, experiment="canary-1", end="2024-01-27T00:00:00Z")
    new = _result(p99=80.0, experiment="canary-2", end="2024-02-02T00:00:00Z")
    assert _decide(OnlineEvidence("fraud-scoring", (new, old)), [P99]).passed


def test_no_result_fails_closed() -> None:
    others = (_result(version="126"), _result(service="elsewhere"))
    for results in ((), others):
        res = _decide(OnlineEvidence("fraud-scoring", results), [P99])
        (g,) = _online(res)
        assert not res.passed and g.verdict == "fail"
        assert "no online result for fraud@127 on fraud-scoring" in g.reason
        assert "roll back" not in g.reason  # nothing was measured: no breach
        assert any("no online result (fail closed)" in n for n in res.notes)


def test_no_online_evidence_or_no_rules_adds_nothing() -> None:
    plain = _decide(None)
    assert _decide(None, [P99]).to_json_dict()["gates"] == plain.to_json_dict()["gates"]
    assert not _online(_decide(OnlineEvidence("fraud-scoring", ()), None))
    assert not _online(_decide(OnlineEvidence("fraud-scoring", ()), []))


def test_a_rule_that_does_not_block_is_shown() -> None:
    res = _decide(OnlineEvidence("fraud-scoring", (_result(p99=142.0),)),
                  [{**P99, "blocking": False}])
    (g,) = _online(res)
    assert res.passed and g.verdict == "info" and not g.blocking


def test_a_rule_for_other_services_is_skipped() -> None:
    res = _decide(OnlineEvidence("fraud-scoring", ()), [{**P99, "services": ["homepage"]}])
    (g,) = _online(res)
    assert res.passed and g.verdict == "skip"


def test_online_gates_are_operational_for_a_rollback() -> None:
    ev = OnlineEvidence("fraud-scoring", (_result(p99=142.0),))
    assert not _decide(ev, [P99], mode="rollback", rollback={"blocking": ["operational"]}).passed
    res = _decide(ev, [P99], mode="rollback")  # default: integrity and lineage block
    assert res.passed and _online(res)[0].verdict == "info"


def test_gate_outcome_round_trips_through_its_dict() -> None:
    from mlreg.history.online import check_online

    for d in check_online([P99, CTR], [_result(p99=142.0)], "fraud-scoring", "127",
                          model="fraud"):
        assert GateOutcome.from_dict(d).to_dict() == d


# ------------------------------------------------------------------------ real git, PR gate
@pytest.fixture
def flow(tmp_path: Path) -> Flow:
    """The example registry in a bare origin and a working clone."""
    return Flow(tmp_path / "git")


def _manifest(flow: Flow, service: str, state: ServiceState) -> str:
    return edit_service((flow.work / "production.yaml").read_text(), service, state)


def _canary_merged(flow: Flow, extra: dict | None = None) -> None:
    """main: fraud-scoring serves 126 with fraud@127 as its 5% canary."""
    files = {"production.yaml": _manifest(flow, "fraud-scoring",
                                          ServiceState("fraud", "126", "127", 5))}
    files.update(extra or {})
    flow.commit_change("canary", files, "fraud@127: 5% canary")
    flow.squash_merge("canary")


def _pr_gate(run_cli, flow: Flow, branch: str, out: Path) -> tuple[int, dict, dict]:
    res = run_cli("gate", "--base", "origin/main", "--head", f"origin/{branch}", "--json",
                  str(out / "r.json"), "--markdown", str(out / "r.md"), cwd=flow.work)
    doc = json.loads((out / "r.json").read_text())
    (promo,) = [c for c in doc["changes"] if c["kind"] == "promotion"]
    result = doc["results"][promo["result"]]
    validate_result(result)
    from mlreg.gitops.prresult import load_untrusted

    load_untrusted(str(out / "r.json"))  # the whole PR document validates
    return res.code, promo, result


def _online_gates(result: dict) -> list[dict]:
    return [g for g in result["gates"] if g["type"] == "online"]


def _stable_127(flow: Flow, extra: dict | None = None) -> str:
    files = {"production.yaml": _manifest(flow, "fraud-scoring", ServiceState("fraud", "127"))}
    files.update(extra or {})
    flow.commit_change("stable", files, "fraud@127 to stable")
    return "stable"


def test_pr_canary_to_stable_with_the_p99_142_result_fails_naming_the_breach(
        flow: Flow, run_cli, tmp_path: Path) -> None:
    _canary_merged(flow)
    code, promo, result = _pr_gate(run_cli, flow, _stable_127(flow), tmp_path)
    assert code == 1 and promo["verdict"] == "fail"
    (g,) = _online_gates(result)
    assert g["id"] == "canary-p99" and g["verdict"] == "fail"
    assert "p99_latency_ms 142 is above the maximum 100" in g["reason"]
    assert "reason to roll back the canary fraud@127 on fraud-scoring" in g["reason"]
    assert "online: p99_latency_ms 142" in promo["reason"]
    # Every other gate passed: the online result alone holds the canary back.
    assert [x["id"] for x in result["gates"] if x["verdict"] == "fail"] == ["canary-p99"]
    assert "reason to roll back" in (tmp_path / "r.md").read_text()


def test_pr_canary_to_stable_with_a_passing_result_added_by_the_pr_passes(
        flow: Flow, run_cli, tmp_path: Path) -> None:
    _canary_merged(flow)
    new = yaml.safe_load((flow.work / OLD_RESULT).read_text())
    new.update(experiment="canary-2024-02-05", start="2024-02-05T10:00:00Z",
               end="2024-02-06T10:00:00Z", recorded="2024-02-06T10:05:00Z",
               notes="after the connection-pool fix")
    new["metrics"]["p99_latency_ms"] = {"value": 81.0, "interval": [77.0, 86.0]}
    added = {"models/fraud/online/canary-2024-02-05.yaml": yaml.safe_dump(new, sort_keys=False)}
    code, promo, result = _pr_gate(run_cli, flow, _stable_127(flow, added), tmp_path)
    assert code == 0 and promo["verdict"] == "pass", promo
    (g,) = _online_gates(result)
    assert g["verdict"] == "pass" and "canary-2024-02-05" in g["reason"]
    assert any("models/fraud/online/canary-2024-02-05.yaml" in n for n in result["notes"])


def test_pr_canary_to_stable_without_a_result_fails_closed(
        flow: Flow, run_cli, tmp_path: Path) -> None:
    _canary_merged(flow, {OLD_RESULT: None})  # set up directly on main: no result at all
    code, promo, result = _pr_gate(run_cli, flow, _stable_127(flow), tmp_path)
    assert code == 1 and promo["verdict"] == "fail"
    (g,) = _online_gates(result)
    assert "no online result for fraud@127 on fraud-scoring" in g["reason"]


def test_pr_promotions_that_are_not_canary_to_stable_have_no_online_gate(
        flow: Flow, run_cli, tmp_path: Path) -> None:
    # Straight to stable (no canary at base): the offline gates alone, as before.
    code, promo, result = _pr_gate(run_cli, flow, _stable_127(flow), tmp_path)
    assert code == 0 and promo["verdict"] == "pass" and not _online_gates(result)
    # A new canary: nothing measured yet, nothing to hold back.
    flow.commit_change("c", {"production.yaml": _manifest(
        flow, "fraud-scoring", ServiceState("fraud", "126", "127", 5))}, "canary")
    code, promo, result = _pr_gate(run_cli, flow, "c", tmp_path)
    assert code == 0 and not _online_gates(result)
    # The canary withdrawn (a rollback of the canary): no online gate either.
    _canary_merged(flow)
    flow.commit_change("w", {"production.yaml": _manifest(
        flow, "fraud-scoring", ServiceState("fraud", "126"))}, "withdraw the canary")
    code, promo, result = _pr_gate(run_cli, flow, "w", tmp_path)
    assert code == 0 and not _online_gates(result)


def test_cli_candidate_on_a_service_whose_canary_it_is(flow: Flow, run_cli,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = run_cli("gate", "--candidate", "fraud@127", "--service", "fraud-scoring", "--json",
                  str(out), "-C", str(flow.work))
    assert res.code == 0 and not _online_gates(json.loads(out.read_text()))  # no canary
    _canary_merged(flow)
    flow.git("pull", "-q", "origin", "main")
    res = run_cli("gate", "--candidate", "fraud@127", "--service", "fraud-scoring", "--json",
                  str(out), "-C", str(flow.work))
    doc = json.loads(out.read_text())
    validate_result(doc)
    assert res.code == 1
    (g,) = _online_gates(doc)
    assert g["verdict"] == "fail" and "142" in g["reason"]
    # As a canary share it is not a canary -> stable move.
    res = run_cli("gate", "--candidate", "fraud@127", "--service", "fraud-scoring", "--canary",
                  "10", "--json", str(out), "-C", str(flow.work))
    assert res.code == 0 and not _online_gates(json.loads(out.read_text()))
