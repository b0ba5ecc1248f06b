"""Gates on scaled evidence: same verdicts as in memory, bounds refined or failing with reason."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scalekit import baseline_subject, frame, policy, small_registry, subject

from mlreg.gates import Promotion, evaluate, gate_promotion, validate_result
from mlreg.gates.engine import compute_evidence
from mlreg.registry import Registry
from mlreg.scale import Spec
from mlreg.scale.engines import StreamEngine

PROMO = Promotion("fraud", "127", service="fraud-scoring", from_version="126")
PROMO_BAD = Promotion("fraud", "128", service="fraud-scoring", from_version="126")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_registry(tmp_path_factory.mktemp("template") / "reg")


@pytest.fixture
def reg_dir(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "reg"))


def verdicts(result) -> dict[str, str]:
    return {f"{g.id}:{r.item}": r.verdict for g in result.gates for r in g.rows}


@pytest.mark.parametrize("promo", [PROMO, PROMO_BAD], ids=["passing", "failing"])
def test_same_verdicts_on_every_engine(reg_dir: Path, promo: Promotion) -> None:
    engines = ["memory", "stream"]
    try:
        import duckdb  # noqa: F401

        engines.append("duckdb")
    except ImportError:  # pragma: no cover - the duckdb extra is optional
        pass
    results = {}
    with Registry.open(str(reg_dir)) as reg:
        for e in engines:
            results[e] = gate_promotion(reg, reg, promo, engine=e)
    ref = verdicts(results["memory"])
    for e, r in results.items():
        assert verdicts(r) == ref, e
        assert r.verdict == results["memory"].verdict
        validate_result(r.to_json_dict())
        if e != "memory":
            assert r.evaluation["engine"] == f"mlreg.scale:{e}"
            note = next(n for n in r.notes if n.startswith(f"engine {e}"))
            assert "auc bound <=" in note and "calibration_slope exact" in note
            assert "precision@0.5 exact" in note


def test_settings_pick_the_engine_and_the_cli_names_it(reg_dir: Path, run_cli) -> None:
    settings = yaml.safe_load((reg_dir / "mlreg.yaml").read_text())
    settings["evaluation"] = {"engine": "stream", "batch_rows": 4096}
    (reg_dir / "mlreg.yaml").write_text(yaml.safe_dump(settings))
    out = run_cli("gate", "--candidate", "fraud@127", "-C", str(reg_dir))
    assert out.code == 0, out.out + out.err
    assert "note:     engine stream (logit histogram R=1000/unit" in out.out
    mem = run_cli("gate", "--candidate", "fraud@127", "-C", str(reg_dir), "--engine", "memory")
    assert mem.code == 0 and "engine stream" not in mem.out


def test_missing_engine_gives_an_install_hint(reg_dir: Path, run_cli, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)
    out = run_cli("gate", "--candidate", "fraud@127", "-C", str(reg_dir), "--engine", "duckdb")
    assert out.code == 3
    assert "pip install 'mlreg[duckdb]'" in out.err


# -- bounds that could flip a verdict -------------------------------------------------------

@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return frame(n=20_000, seed=5)[["label", "cand", "base", "country"]]


def _uplift_policy(table: pd.DataFrame, offset: float):
    """An AUC uplift gate whose margin sits ``offset`` below the exact delta."""
    from mlreg.metrics import evaluate_predictions

    ref = evaluate_predictions(table, label="label", scores={"candidate": "cand",
                               "baseline": "base"}, metrics=["auc"])
    delta = ref.overall.deltas["candidate"]["auc"].value
    return policy({"id": "auc-uplift", "metric": "auc", "slices": "overall",
                   "change": {"min_absolute": round(delta - offset, 6)}},
                  evaluation={"threshold": 0.5})


def _decide(table, pol, engine: str, options: dict):
    notes: list[str] = []
    ev = compute_evidence(table, label="label", score="cand", baseline_score="base",
                          weight=None, policy=pol, model_info={}, engine=engine,
                          engine_options=options, notes=notes)
    res = evaluate(pol, subject(), baseline_subject(), ev)
    return res, notes


def test_an_undecided_slice_is_refined_until_the_verdict_is_certain(table) -> None:
    pol = _uplift_policy(table, 2e-5)
    mem, _ = _decide(table, pol, "memory", {})
    assert mem.verdict == "pass"
    res, notes = _decide(table, pol, "stream", {"buckets": 0.5})
    assert res.verdict == "pass", res.gates[0].rows[0].reason
    assert "auc exact after refining 1 slice(s)" in notes[0], notes


def test_a_bound_that_could_flip_the_verdict_fails_with_that_reason(table) -> None:
    pol = _uplift_policy(table, 2e-5)
    spec = Spec.build(label="label", scores={"candidate": "cand", "baseline": "base"},
                      thresholds=[], buckets=30)
    cells = StreamEngine(table).pass1(spec)
    res, notes = _decide(table, pol, "cells", {"cells": cells, "buckets": 30})
    assert res.verdict == "fail"
    row = res.gates[0].rows[0]
    assert "could flip within the bound" in row.reason and "cannot be refined" in row.reason
    assert "left undecided by the bound fail" in notes[0]
    # far from the bar the same coarse bound decides nothing differently: it passes
    far = _uplift_policy(table, 0.05)
    ok, _ = _decide(table, far, "cells", {"cells": cells, "buckets": 30})
    assert ok.verdict == "pass"
