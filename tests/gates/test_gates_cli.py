"""`mlreg gate` and `mlreg evaluate` through the real entry point: output and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from gatekit import small_registry

from mlreg.gates import validate_result
from mlreg.reports.markdown import MARKER


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_registry(tmp_path_factory.mktemp("cli") / "reg")


@pytest.fixture
def small(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "reg"))


# -- the example registry, full size: the seed's story ------------------------------------------

def test_fraud_127_passes_against_what_fraud_scoring_serves(example_registry: Path, run_cli,
                                                            tmp_path: Path) -> None:
    res = run_cli("gate", "--candidate", "fraud@127", "--service", "fraud-scoring",
                  "-C", str(example_registry), "--json", str(tmp_path / "r.json"),
                  "--markdown", str(tmp_path / "r.md"))
    assert res.code == 0, res
    assert "gate PASS: fraud@127 -> fraud-scoring" in res.out
    assert "baseline: fraud@126" in res.out
    doc = json.loads((tmp_path / "r.json").read_text())
    validate_result(doc)
    gates = {g["id"]: g for g in doc["gates"]}
    assert doc["evaluation"]["rows"] == 800_000
    assert gates["auc-uplift"]["rows"][0]["delta"] >= 0.005
    assert [r["item"] for r in gates["calibration"]["rows"]] == [
        "country=US", "device=ios", "device=android", "country=GB", "device=web"]
    assert gates["precision-parity"]["verdict"] == "pass"
    assert gates["latency"]["verdict"] == "pass" and gates["lineage"]["verdict"] == "pass"
    assert (tmp_path / "r.md").read_text().startswith(MARKER)


def test_fraud_128_fails_with_the_failing_slices_first(example_registry: Path, run_cli) -> None:
    res = run_cli("gate", "--candidate", "fraud@128", "-C", str(example_registry))
    assert res.code == 1, res
    assert "error: gate failed: 2 of 6 gates" in res.err
    lines = res.out.splitlines()
    header = lines.index(next(x for x in lines if x.startswith("[FAIL] calibration")))
    rows = [x[:4] + " " + x.split()[1] for x in lines[header + 3: header + 8]]
    assert rows == ["FAIL country=US", "FAIL country=GB", "FAIL device=web",
                    "PASS device=ios", "PASS device=android"]
    assert "FAIL  overall by age_band" in res.out


# -- gate: choosing the baseline ----------------------------------------------------------------

def test_baseline_defaults_to_the_one_service_the_model_serves(small: Path, run_cli) -> None:
    res = run_cli("gate", "--candidate", "fraud@latest", "--json", "-", "-C", str(small))
    doc = json.loads(res.out)
    assert doc["promotion"]["service"] == "fraud-scoring" and doc["baseline"]["version"] == "126"
    assert doc["candidate"]["version"] == "128" and res.code == 1


def test_explicit_baseline_and_markdown_to_stdout(small: Path, run_cli) -> None:
    res = run_cli("gate", "--candidate", "fraud@127", "--baseline", "fraud@128",
                  "--markdown", "-", "-C", str(small))
    assert res.out.startswith(MARKER) and "fraud@128" in res.out
    assert res.code in (0, 1)


def test_a_model_serving_several_services_needs_one_named(small: Path, run_cli) -> None:
    res = run_cli("gate", "--candidate", "recsys@42", "-C", str(small))
    assert res.code == 2 and "serves several services (homepage, post-play, search)" in res.err
    res = run_cli("gate", "--candidate", "recsys@42", "--service", "post-play", "-C", str(small))
    assert res.code == 0, res
    assert "baseline: recsys@41" in res.out


def test_a_model_serving_nothing_needs_a_baseline_or_bootstrap(small: Path, run_cli) -> None:
    prod = small / "production.yaml"
    prod.write_text(prod.read_text().replace("model: photo-tagger", "model: recsys")
                    .replace("stable: '3'", "stable: '42'"))
    res = run_cli("gate", "--candidate", "photo-tagger@3", "-C", str(small))
    assert res.code == 2 and "serves no service" in res.err and "bootstrap" in res.err
    res = run_cli("gate", "--candidate", "photo-tagger@3", "--mode", "bootstrap",
                  "--service", "photo-tagger-mobile", "-C", str(small))
    assert res.code == 0, res
    assert "mode bootstrap" in res.out and "mobile-int8" in res.out and "<= 500" in res.out


@pytest.mark.parametrize(("args", "message"), [
    (["--candidate", "fraud@999"], "fraud@999 not found"),
    (["--candidate", "fraud-scoring"], "names a version"),
    (["--candidate", "fraud@127", "--service", "nope"], "service 'nope' is not in"),
    (["--candidate", "Fraud@127"], "not a valid name"),
    (["--candidate", "fraud@127", "--baseline", "fraud@126", "--mode", "bootstrap"],
     "no baseline"),
])
def test_bad_input_exits_2(small: Path, run_cli, args: list[str], message: str) -> None:
    res = run_cli("gate", *args, "-C", str(small))
    assert res.code == 2 and message in res.err, res


def test_rollback_mode_shows_metrics_without_blocking(small: Path, run_cli) -> None:
    res = run_cli("gate", "--candidate", "fraud@128", "--baseline", "fraud@126",
                  "--mode", "rollback", "-C", str(small))
    assert res.code == 0, res
    assert "info" in res.out and "not blocking (rollback" in res.out


def test_gate_at_a_git_revision(small: Path, run_cli) -> None:
    from testkit import git

    git(small, "init", "-q", "-b", "main")
    git(small, "add", "-A")
    git(small, "commit", "-q", "-m", "registry")
    (small / "policies/default.yaml").write_text("not: [valid\n")
    assert run_cli("gate", "--candidate", "fraud@127", "-C", str(small)).code == 2
    res = run_cli("gate", "--candidate", "fraud@127", "--rev", "HEAD", "-C", str(small))
    assert res.code == 0, res


def test_tampered_artifact_exits_1_with_the_reason(small: Path, run_cli) -> None:
    (small / "examples/store/fraud/127/model.txt").write_bytes(b"tampered")
    res = run_cli("gate", "--candidate", "fraud@127", "-C", str(small))
    assert res.code == 1 and "sha256 mismatch" in res.out


def test_unreachable_store_exits_3(small: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlreg.errors import StoreError
    from mlreg.gates import files

    def down(self, role, name, entry):  # noqa: ANN001, ANN202
        raise StoreError("s3://bucket: connection refused")

    monkeypatch.setattr(files.FileAccess, "check", down)
    res = run_cli("gate", "--candidate", "fraud@127", "-C", str(small))
    assert res.code == 3 and "connection refused" in res.err


def test_unwritable_output_is_bad_input(small: Path, run_cli) -> None:
    res = run_cli("gate", "--candidate", "fraud@127", "--json", str(small / "no/such/dir/r.json"),
                  "-C", str(small))
    assert res.code == 2 and "cannot write" in res.err


# -- evaluate -----------------------------------------------------------------------------------

@pytest.fixture
def predictions(small: Path, tmp_path: Path) -> Path:
    a = pd.read_parquet(small / "examples/store/fraud/127/eval_predictions.parquet")
    b = pd.read_parquet(small / "examples/store/fraud/126/eval_predictions.parquet")
    a["old"] = b["score"]
    path = tmp_path / "preds.csv"
    a.to_csv(path, index=False)
    return path


def test_evaluate_prints_slice_tables(predictions: Path, run_cli) -> None:
    res = run_cli("evaluate", str(predictions), "--slice", "device", "--group", "age_band",
                  "--metric", "auc", "--metric", "precision")
    assert res.code == 0, res
    assert "20,000 rows" in res.out and "device=web" in res.out
    assert "overall by age_band, 'score': gap auc" in res.out


def test_evaluate_json_with_two_models_gives_paired_deltas(predictions: Path, run_cli) -> None:
    from sklearn.metrics import roc_auc_score

    res = run_cli("evaluate", str(predictions), "--score", "score", "--baseline", "old",
                  "--metric", "auc", "--cross", "country,device", "--json")
    assert res.code == 0, res
    doc = json.loads(res.out)
    overall = doc["slices"][0]
    frame = pd.read_csv(predictions)
    auc = roc_auc_score(frame["label"], frame["score"])
    assert overall["metrics"]["score"]["auc"]["value"] == pytest.approx(auc, abs=1e-12)
    delta = overall["deltas"]["score"]["auc"]
    assert delta["value"] == pytest.approx(auc - roc_auc_score(frame["label"], frame["old"]))
    assert delta["lo"] < delta["value"] < delta["hi"]
    assert any(s["name"] == "country=US,device=web" for s in doc["slices"])
    text = run_cli("evaluate", str(predictions), "--score", "score", "--baseline", "old",
                   "--metric", "auc").out
    assert "paired delta score - old" in text and "model 'old' (baseline)" in text


def test_evaluate_point_estimates_only(predictions: Path, run_cli) -> None:
    args = ["--score", "score", "--baseline", "old", "--metric", "auc", "--slice", "device"]
    full = json.loads(run_cli("evaluate", str(predictions), *args, "--json").out)
    res = run_cli("evaluate", str(predictions), *args, "--json", "--no-intervals",
                  "--jobs", "2")
    assert res.code == 0, res
    point = json.loads(res.out)
    for fs, ps in zip(full["slices"], point["slices"], strict=True):
        f, p = fs["metrics"]["score"]["auc"], ps["metrics"]["score"]["auc"]
        assert p["value"] == pytest.approx(f["value"], abs=1e-12)
        assert p["lo"] is None or p["lo"] != p["lo"]  # NaN (JSON null)
        assert ps["deltas"]["score"]["auc"]["value"] == pytest.approx(
            fs["deltas"]["score"]["auc"]["value"], abs=1e-12)
    text = run_cli("evaluate", str(predictions), *args, "--no-intervals").out
    assert "point estimates only" in text and "[" not in text.split("\n", 2)[2]
    bad = run_cli("evaluate", str(predictions), *args, "--no-intervals", "--engine", "stream")
    assert bad.code == 2 and "in-memory engine only" in bad.err


@pytest.mark.parametrize(("args", "message"), [
    (["--score", "nope"], "score column 'nope' is not in the predictions"),
    (["--metric", "aucc"], "unknown metric 'aucc'"),
    (["--label", "country"], "label column 'country' is not numeric"),
])
def test_evaluate_bad_input_exits_2(predictions: Path, run_cli, args, message: str) -> None:
    res = run_cli("evaluate", str(predictions), *args)
    assert res.code == 2 and message in res.err, res


def test_evaluate_missing_or_unreadable_file_exits_2(tmp_path: Path, run_cli) -> None:
    res = run_cli("evaluate", str(tmp_path / "missing.parquet"))
    assert res.code == 2 and "no such file or directory" in res.err
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    res = run_cli("evaluate", str(tmp_path / "junk.parquet"))
    assert res.code == 2 and "cannot read as parquet" in res.err


def test_schemas_are_printable(run_cli) -> None:
    for kind in ("policy", "result"):
        res = run_cli("schema", kind)
        assert res.code == 0 and json.loads(res.out)["$id"].endswith(f"/{kind}/v1")
