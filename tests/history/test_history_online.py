"""Online results: the append-only file, the command, and the pure online gate."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml

from mlreg.errors import InputError, RegistryError, SchemaError
from mlreg.history.online import (
    build_online,
    check_online,
    online_results,
    parse_interval_args,
    parse_metric_args,
    write_online,
)
from mlreg.records import schema_for
from mlreg.registry import Registry
from testkit import ROOT

POST_PLAY = yaml.safe_load((ROOT / "models/recsys/online/ab-2024-03-post-play.yaml").read_text())
HOMEPAGE = yaml.safe_load((ROOT / "models/recsys/online/ab-2024-03-homepage.yaml").read_text())
CANARY = yaml.safe_load((ROOT / "models/fraud/online/canary-2024-01-26.yaml").read_text())
RULES = [{"metric": "ctr_lift", "min": -0.005, "use_interval": True},
         {"metric": "p99_latency_ms", "max": 100, "services": ["fraud-scoring"]}]


def _result_gate_schema() -> dict:
    """The gate of mlreg/result/v1, with the one addition online gates need: type 'online'."""
    schema = copy.deepcopy(schema_for("result"))
    gate = schema["$defs"]["gate"]
    gate["properties"]["type"]["enum"].append("online")
    return {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/gate"}


def _valid(gates: list[dict]) -> None:
    schema = _result_gate_schema()
    for g in gates:
        jsonschema.validate(g, schema)


def test_netflix_online_gate_holds_back_post_play_only():
    results = [POST_PLAY, HOMEPAGE]
    home = check_online(RULES, results, "homepage", "42", model="recsys")
    assert [(g["id"], g["verdict"]) for g in home] == [("online-ctr-lift", "pass"),
                                                       ("online-p99-latency-ms", "skip")]
    row = home[0]["rows"][0]
    assert (row["candidate"], row["observed"], row["lower"]) == (0.012, 0.004, -0.005)
    assert row["candidate_interval"] == [0.004, 0.02]
    post = check_online(RULES, results, "post-play", "42", model="recsys")
    assert post[0]["verdict"] == "fail"
    assert "ctr_lift -0.03 is below the minimum -0.005" in post[0]["reason"]
    assert "ab-2024-03-post-play" in post[0]["reason"]
    _valid(home + post)


def test_uber_latency_breach_is_the_reason_to_roll_back():
    (lat,) = [g for g in check_online(RULES, [CANARY], "fraud-scoring", "127")
              if g["metric"] == "p99_latency_ms"]
    assert lat["verdict"] == "fail" and lat["category"] == "operational"
    assert lat["reason"].startswith("p99_latency_ms 142 is above the maximum 100")
    _valid([lat])


def test_fail_closed_without_results_metrics_or_intervals():
    (g,) = check_online([RULES[0]], [], "homepage", "42", model="recsys")
    assert g["verdict"] == "fail" and "no online result for recsys@42 on homepage" in g["reason"]
    assert "mlreg online recsys@42" in g["reason"]
    (g,) = check_online([{"metric": "watch_hours", "min": 0}], [HOMEPAGE], "homepage", "42")
    assert g["verdict"] == "fail" and "do not report watch_hours" in g["reason"]
    no_interval = copy.deepcopy(HOMEPAGE)
    del no_interval["metrics"]["ctr_lift"]["interval"]
    (g,) = check_online([RULES[0]], [no_interval], "homepage", "42")
    assert g["verdict"] == "fail" and "has no interval" in g["reason"]
    (g,) = check_online([{"metric": "ctr_lift", "min": -0.005}], [no_interval], "homepage", "42")
    assert g["verdict"] == "pass"
    # Another version's or another service's result does not count.
    (g,) = check_online([RULES[0]], [HOMEPAGE], "search", "42")
    assert g["verdict"] == "fail"
    (g,) = check_online([RULES[0]], [HOMEPAGE], "homepage", "41")
    assert g["verdict"] == "fail"


def test_bounds_are_inclusive_and_exact():
    r = copy.deepcopy(HOMEPAGE)
    r["metrics"] = {"ctr_lift": {"value": 0.1, "interval": [-0.005, 0.2]}}
    (g,) = check_online([RULES[0]], [r], "homepage", "42")
    assert g["verdict"] == "pass"
    r["metrics"]["x"] = {"value": 0.30000000000000004}
    (g,) = check_online([{"metric": "x", "max": 0.3}], [r], "homepage", "42")
    assert g["verdict"] == "fail"
    r["metrics"]["x"] = {"value": 0.1 + 0.2 - 0.30000000000000004 + 0.3}
    (g,) = check_online([{"metric": "x", "max": 0.3}], [r], "homepage", "42")
    assert g["verdict"] == "pass"


def test_latest_result_and_traffic_floor_and_non_blocking():
    old = copy.deepcopy(HOMEPAGE)
    old.update(experiment="old", end="2024-02-01T00:00:00Z")
    old["metrics"]["ctr_lift"] = {"value": -0.2, "interval": [-0.3, -0.1]}
    (g,) = check_online([RULES[0]], [HOMEPAGE, old], "homepage", "42")
    assert g["verdict"] == "pass" and "ab-2024-03-homepage" in g["reason"]
    (g,) = check_online([{**RULES[0], "min_traffic_percent": 10}], [HOMEPAGE], "homepage", "42")
    assert g["verdict"] == "fail" and "at least 10% of traffic" in g["reason"]
    (g,) = check_online([{**RULES[0], "blocking": False, "id": "ctr"}], [POST_PLAY],
                        "post-play", "42")
    assert g["verdict"] == "info" and g["reason"].startswith("not blocking: ")
    assert g["id"] == "ctr" and g["rows"][0]["verdict"] == "info"
    _valid([g])


@pytest.mark.parametrize("rule, message", [
    ({"min": 1}, "names no metric"),
    ({"metric": "x"}, "neither min nor max"),
    ({"metric": "x", "min": "low"}, "must be a finite number"),
    ({"metric": "x", "min": 0, "typo": 1}, "unknown key"),
    ("ctr_lift >= 0", "not a mapping"),
])
def test_bad_rules_fail_with_their_reason(rule, message):
    (g,) = check_online([rule], [HOMEPAGE], "homepage", "42")
    assert g["verdict"] == "fail" and message in g["reason"]


def test_build_validates_and_write_refuses_to_overwrite(tmp_path):
    doc = build_online(model="recsys", version="42", experiment="exp-1", service="homepage",
                       metrics={"ctr_lift": -0.03}, intervals={"ctr_lift": [-0.045, -0.015]},
                       traffic_percent=5, start="2024-03-02", end="2024-03-09T00:00Z",
                       recorded="2024-03-10T00:00:00Z")
    assert doc["start"] == "2024-03-02T00:00:00Z" and doc["end"] == "2024-03-09T00:00:00Z"
    rel = write_online(str(tmp_path), doc)
    assert rel == "models/recsys/online/exp-1.yaml"
    assert yaml.safe_load((tmp_path / rel).read_text()) == doc
    with pytest.raises(RegistryError, match="append-only"):
        write_online(str(tmp_path), doc)
    with pytest.raises(InputError, match="does not contain the value"):
        build_online(model="m", version="1", experiment="e", service="s",
                     metrics={"x": 1.0}, intervals={"x": [2.0, 3.0]})
    with pytest.raises(InputError, match="ends .* before it starts"):
        build_online(model="m", version="1", experiment="e", service="s", metrics={"x": 1},
                     start="2024-03-02", end="2024-03-01")
    with pytest.raises(SchemaError):
        build_online(model="m", version="1", experiment="e", service="s",
                     metrics={"Bad-Name": 1})
    assert parse_metric_args(["a=1", "b=-0.5", "c=2%"]) == {"a": 1, "b": -0.5, "c": 0.02}
    assert parse_interval_args(["a=-1,1"]) == {"a": [-1, 1]}
    with pytest.raises(InputError, match="NAME=VALUE"):
        parse_metric_args(["ctr_lift"])
    with pytest.raises(InputError, match="NAME=LOW,HIGH"):
        parse_interval_args(["ctr_lift=1"])


def test_online_cli_writes_a_valid_file(fresh_story, run_cli):
    root = fresh_story.root
    res = run_cli("online", "fraud@126", "--experiment", "holdout-2024-02", "--metric",
                  "p99_latency_ms=63", "--metric", "fraud_recall_lift=0", "--interval",
                  "p99_latency_ms=60,66", "--traffic", "100", "--start", "2024-02-01",
                  "--end", "2024-02-08", "-C", root)
    assert res.code == 0, res
    assert "wrote models/fraud/online/holdout-2024-02.yaml" in res.out
    with Registry.open(root) as reg:
        docs = {d["experiment"]: d for d in online_results(reg, "fraud")}
    doc = docs["holdout-2024-02"]
    assert (doc["service"], doc["version"], doc["traffic_percent"]) == ("fraud-scoring", "126",
                                                                       100)
    assert doc["metrics"]["p99_latency_ms"] == {"value": 63, "interval": [60, 66]}
    res = run_cli("validate", root)
    assert res.code == 0, res
    res = run_cli("online", "fraud@126", "--experiment", "holdout-2024-02", "--metric", "x=1",
                  "-C", root)
    assert res.code == 2 and "append-only" in res.err
    # A service with no canary means its stable; --json gives the document.
    res = run_cli("online", "post-play", "--experiment", "pp-2", "--metric", "ctr_lift=0.001",
                  "--json", "-C", root)
    assert res.code == 0, res
    out = json.loads(res.out)
    assert (out["result"]["version"], out["result"]["surface"]) == ("41", "post-play")
    # recsys runs on three services: the service must be named.
    res = run_cli("online", "recsys@42", "--experiment", "e3", "--metric", "x=1", "-C", root)
    assert res.code == 2 and "--service" in res.err
    res = run_cli("history", "post-play", "--kind", "online", "-C", root)
    assert "pp-2" not in res.out  # not committed yet: history is git's


def test_history_package_exports_and_stays_light():
    import subprocess
    import sys

    code = ("import sys, mlreg.history as h; assert all(hasattr(h, n) for n in h.__all__); "
            "print(','.join(m for m in ('numpy', 'pandas', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
