"""The I/O layer: gate_promotion on real registries, stores and prediction files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from gatekit import rewrite_predictions, small_registry

from mlreg.errors import NotFound, StoreError
from mlreg.gates import Promotion, gate_promotion, validate_result
from mlreg.registry import Registry
from testkit import git

PROMO = Promotion("fraud", "127", service="fraud-scoring", from_version="126")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_registry(tmp_path_factory.mktemp("template") / "reg")


@pytest.fixture
def reg_dir(template: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(template, tmp_path / "reg"))


def run(reg_dir: Path, promo: Promotion = PROMO, base_dir: Path | None = None):
    with Registry.open(str(reg_dir)) as head:
        if base_dir is None:
            return gate_promotion(head, head, promo)
        with Registry.open(str(base_dir)) as base:
            return gate_promotion(head, base, promo)


def failing(result) -> dict[str, str]:
    return {f"{g.id}:{r.item}": r.reason for g in result.gates for r in g.rows
            if r.verdict == "fail"}


def test_candidate_passes_and_the_result_is_complete(reg_dir: Path) -> None:
    r = run(reg_dir)
    assert r.verdict == "pass", failing(r)
    doc = r.to_json_dict()
    validate_result(doc)
    assert doc["evaluation"]["rows"] == 20_000
    assert doc["policy"]["sources"][1]["path"] == "policies/fraud.yaml"
    assert {(f["role"], f["name"], f["status"]) for f in doc["files"]} == {
        ("candidate", "model", "verified"), ("candidate", "predictions", "verified"),
        ("baseline", "predictions", "verified")}
    import hashlib

    raw = (reg_dir / "models/fraud/127.yaml").read_bytes()
    assert doc["candidate"]["record_sha256"] == hashlib.sha256(raw).hexdigest()
    auc = next(g for g in r.gates if g.id == "auc-uplift").rows[0]
    assert auc.delta_interval is not None and auc.delta_interval[0] < auc.delta < \
        auc.delta_interval[1]


def test_policy_violating_candidate_fails_on_its_slices(reg_dir: Path) -> None:
    r = run(reg_dir, Promotion("fraud", "128", service="fraud-scoring", from_version="126"))
    assert r.verdict == "fail"
    bad = failing(r)
    assert "precision-parity:overall by age_band" in bad


def test_tampered_artifact_fails_integrity(reg_dir: Path) -> None:
    (reg_dir / "examples/store/fraud/127/model.txt").write_bytes(b"a different booster\n")
    r = run(reg_dir)
    assert r.verdict == "fail"
    bad = failing(r)
    assert list(bad) == ["lineage:model"]
    assert "sha256 mismatch" in bad["lineage:model"] and "size mismatch" in bad["lineage:model"]


def test_missing_artifact_fails_integrity(reg_dir: Path) -> None:
    (reg_dir / "examples/store/fraud/127/model.txt").unlink()
    bad = failing(run(reg_dir))
    assert list(bad) == ["lineage:model"] and "missing" in bad["lineage:model"]


def test_tampered_candidate_predictions_fail_every_metric_gate(reg_dir: Path) -> None:
    path = reg_dir / "examples/store/fraud/127/eval_predictions.parquet"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = failing(run(reg_dir))
    assert "lineage:candidate predictions" in bad
    for gate in ("auc-uplift", "calibration", "precision-parity"):
        reason = next(v for k, v in bad.items() if k.startswith(gate + ":"))
        assert "no metrics: candidate predictions sha256 mismatch" in reason


def test_tampered_baseline_predictions_fail_the_comparisons(reg_dir: Path) -> None:
    path = reg_dir / "examples/store/fraud/126/eval_predictions.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    r = run(reg_dir)
    bad = failing(r)
    assert "baseline not comparable: baseline predictions" in bad["auc-uplift:overall"]
    assert "calibration:device=ios" not in bad  # candidate-only rules still judged


def test_baseline_scored_on_other_examples_is_not_comparable(reg_dir: Path) -> None:
    frame = pd.read_parquet(reg_dir / "examples/store/fraud/126/eval_predictions.parquet")
    rewrite_predictions(reg_dir, "126", frame.iloc[1000:])
    bad = failing(run(reg_dir))
    assert "1,000 ids only in the candidate's predictions" in bad["auc-uplift:overall"]
    assert "lineage:same evaluation data" in bad


def test_baseline_with_different_labels_is_not_comparable(reg_dir: Path) -> None:
    frame = pd.read_parquet(reg_dir / "examples/store/fraud/126/eval_predictions.parquet")
    frame.loc[:9, "label"] = 1 - frame.loc[:9, "label"]
    rewrite_predictions(reg_dir, "126", frame)
    bad = failing(run(reg_dir))
    assert "labels differ on 10 examples" in bad["auc-uplift:overall"]


def test_baseline_on_another_snapshot_is_not_comparable(reg_dir: Path) -> None:
    path = reg_dir / "models/fraud/126.yaml"
    rec = yaml.safe_load(path.read_text())
    rec["evaluation"]["snapshot"]["version_id"] = "another-object-version"
    from mlreg.yamlio import dump_yaml

    path.write_text(dump_yaml(rec))
    bad = failing(run(reg_dir))
    assert "different evaluation snapshot" in bad["auc-uplift:overall"]
    assert "version_id" in bad["lineage:same evaluation data"]


def test_a_baseline_that_does_not_exist_fails_with_the_reason(reg_dir: Path) -> None:
    r = run(reg_dir, Promotion("fraud", "127", service="fraud-scoring", from_version="99"))
    assert r.verdict == "fail" and r.baseline is None
    assert "fraud@99 cannot be loaded" in failing(r)["auc-uplift:overall"]


def test_a_candidate_that_does_not_exist_is_bad_input(reg_dir: Path) -> None:
    with pytest.raises(NotFound):
        run(reg_dir, Promotion("fraud", "999", from_version="126"))


def test_bootstrap_needs_no_baseline(reg_dir: Path) -> None:
    r = run(reg_dir, Promotion("fraud", "127", service="fraud-eu", mode="bootstrap"))
    assert r.verdict == "pass" and r.mode == "bootstrap"
    assert next(g for g in r.gates if g.id == "auc-uplift").verdict == "skip"


def test_the_policy_in_force_comes_from_the_base_revision(reg_dir: Path, tmp_path: Path) -> None:
    import shutil

    base_dir = Path(shutil.copytree(reg_dir, tmp_path / "base"))
    # The change under review tries to drop the gates it would fail.
    (reg_dir / "policies/fraud.yaml").write_text(
        "schema: mlreg/policy/v1\nremove: [calibration, auc-uplift, lineage]\n")
    promo = Promotion("fraud", "128", service="fraud-scoring", from_version="126")
    assert run(reg_dir, promo, base_dir=base_dir).verdict == "fail"


def test_gate_reads_a_git_revision(reg_dir: Path) -> None:
    git(reg_dir, "init", "-q", "-b", "main")
    git(reg_dir, "add", "-A")
    git(reg_dir, "commit", "-q", "-m", "registry")
    (reg_dir / "policies/fraud.yaml").write_text("schema: mlreg/policy/v1\ngates: [{id: x}]\n")
    with Registry.open(str(reg_dir), rev="HEAD") as reg:
        r = gate_promotion(reg, reg, PROMO)
    assert r.verdict == "pass", failing(r)


def test_a_policy_without_metric_gates_still_verifies_predictions(reg_dir: Path) -> None:
    (reg_dir / "policies/recsys.yaml").write_text(
        "schema: mlreg/policy/v1\nremove: [auc-uplift, calibration]\n")
    r = run(reg_dir, Promotion("recsys", "42", service="homepage", from_version="41"))
    assert r.verdict == "pass", failing(r)
    assert {(f["role"], f["name"]) for f in r.to_json_dict()["files"]} == {
        ("candidate", "model"), ("candidate", "predictions"), ("baseline", "predictions")}
    assert r.to_json_dict()["evaluation"]["unavailable"] == "the policy has no metric gates"


def test_ranking_gates_per_query_on_every_surface(reg_dir: Path) -> None:
    r = run(reg_dir, Promotion("recsys", "42", service="post-play", from_version="41"))
    assert r.verdict == "pass", failing(r)
    ndcg = next(g for g in r.gates if g.id == "ndcg-no-regression")
    assert ndcg.metric == "ndcg@20" and [x.item for x in ndcg.rows] == [
        "surface=search", "surface=post-play", "surface=homepage"]  # by traffic
    assert all(x.delta_interval is not None and x.delta > 0 for x in ndcg.rows)
    # the other way round, the older model regresses
    r = run(reg_dir, Promotion("recsys", "41", service="homepage", from_version="42"))
    assert "precision-at-10:overall" in failing(r)


def test_a_record_without_predictions_fails_metric_gates(reg_dir: Path) -> None:
    (reg_dir / "policies/photo-tagger.yaml").unlink()  # the default metric gates apply
    r = run(reg_dir, Promotion("photo-tagger", "3", mode="bootstrap"))
    assert "records no evaluation predictions" in failing(r)["calibration:(all slices)"]


def test_csv_predictions_are_read_too(reg_dir: Path) -> None:
    import hashlib

    from mlreg.yamlio import dump_yaml

    for v in ("126", "127"):
        frame = pd.read_parquet(reg_dir / f"examples/store/fraud/{v}/eval_predictions.parquet")
        data = frame.to_csv(index=False).encode()
        (reg_dir / f"examples/store/fraud/{v}/eval_predictions.csv").write_bytes(data)
        path = reg_dir / f"models/fraud/{v}.yaml"
        rec = yaml.safe_load(path.read_text())
        rec["evaluation"]["predictions"].update(
            uri=f"examples/store/fraud/{v}/eval_predictions.csv", format="csv",
            sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        path.write_text(dump_yaml(rec))
    assert run(reg_dir).verdict == "pass"


def test_a_record_pointing_outside_the_registry_is_refused(reg_dir: Path) -> None:
    path = reg_dir / "models/fraud/127.yaml"
    rec = yaml.safe_load(path.read_text())
    rec["artifacts"][0]["uri"] = "../../etc/passwd"
    from mlreg.yamlio import dump_yaml

    path.write_text(dump_yaml(rec))
    assert "points outside the registry" in failing(run(reg_dir))["lineage:model"]


def test_an_unreachable_store_raises_a_dependency_error(reg_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlreg.storage

    class Down:
        def key_for(self, uri: str) -> str:
            return uri.split("/", 3)[-1]

        def hash_object(self, key: str):  # noqa: ANN201
            raise StoreError("s3://bucket: connection refused")

    monkeypatch.setattr(mlreg.storage, "open_store", lambda *a, **k: Down())
    path = reg_dir / "models/fraud/127.yaml"
    rec = yaml.safe_load(path.read_text())
    rec["artifacts"][0]["uri"] = "s3://bucket/fraud/127/model.txt"
    from mlreg.yamlio import dump_yaml

    path.write_text(dump_yaml(rec))
    with pytest.raises(StoreError):
        run(reg_dir)


def test_a_one_class_slice_fails_any_gate_on_it_with_the_reason(reg_dir: Path) -> None:
    for v in ("126", "127"):
        frame = pd.read_parquet(reg_dir / f"examples/store/fraud/{v}/eval_predictions.parquet")
        frame.loc[frame["country"] == "FR", "label"] = 0
        rewrite_predictions(reg_dir, v, frame)
    (reg_dir / "policies/fraud.yaml").write_text(
        "schema: mlreg/policy/v1\nextends: none\ngates:\n"
        "  - {id: floor, metric: auc, slices: {column: country}, min: 0.5}\n")
    r = run(reg_dir)
    assert r.verdict == "fail"
    assert list(failing(r)) == ["floor:country=FR"]
    assert "only one class in slice (no positives)" in failing(r)["floor:country=FR"]


def test_a_candidate_compared_with_itself_has_every_delta_exactly_zero(reg_dir: Path) -> None:
    (reg_dir / "policies/fraud.yaml").write_text(
        "schema: mlreg/policy/v1\nextends: none\ngates:\n"
        "  - {id: same, metric: auc, slices: all, change: {max_absolute: 0}}\n"
        "  - {id: same-slope, metric: calibration_slope, slices: all,"
        " change: {min_absolute: 0}}\n")
    r = run(reg_dir, Promotion("fraud", "127", from_version="127"))
    assert r.verdict == "pass", failing(r)
    assert all(row.delta == 0.0 for g in r.gates for row in g.rows)
    assert len(r.gates[0].rows) == 28  # overall, 6 countries, 3 devices, 18 crosses


@pytest.mark.parametrize("promo", [PROMO, Promotion("fraud", "128", service="fraud-scoring",
                                                     from_version="126")])
def test_compiled_kernels_give_the_same_gate_result(reg_dir: Path, promo: Promotion,
                                                   monkeypatch) -> None:
    """The gate on the compiled kernels (used on larger inputs) matches the numpy passes: same
    verdict on every row, same numbers to rounding, groups and slices included."""
    from testkit import engine_path

    engine_path(monkeypatch, False)
    numpy_result = run(reg_dir, promo)
    engine_path(monkeypatch, True)
    compiled_result = run(reg_dir, promo)
    a, b = numpy_result.to_json_dict(), compiled_result.to_json_dict()
    assert a["verdict"] == b["verdict"]
    rows_a = [r for g in a["gates"] for r in g["rows"]]
    rows_b = [r for g in b["gates"] for r in g["rows"]]
    assert len(rows_a) == len(rows_b) > 10
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra["verdict"] == rb["verdict"] and ra.get("reason") == rb.get("reason")
        for key in ("candidate", "baseline", "delta", "observed", "candidate_interval",
                    "baseline_interval", "delta_interval", "observed_interval"):
            va, vb = ra.get(key), rb.get(key)
            assert (va is None) == (vb is None), (ra["item"], key)
            if va is not None:
                assert vb == pytest.approx(va, rel=1e-8, abs=1e-12), (ra["item"], key)
