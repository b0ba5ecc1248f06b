"""Builders for gate tests: policies, subjects and evidence written by hand (no I/O)."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from mlreg.gates import (
    Estimate,
    Evidence,
    FileCheck,
    GroupStats,
    Policy,
    SliceStats,
    Subject,
    Verification,
)
from mlreg.gates.inputs import parse_slice_key
from testkit import ROOT

CANDIDATE_RECORD = yaml.safe_load((ROOT / "models/fraud/127.yaml").read_text())
BASELINE_RECORD = yaml.safe_load((ROOT / "models/fraud/126.yaml").read_text())
FRAUD_INFO = yaml.safe_load((ROOT / "models/fraud/model.yaml").read_text())


def policy(*gates: dict, **sections: Any) -> Policy:
    doc: dict[str, Any] = {"schema": "mlreg/policy/v1", "gates": list(gates)}
    doc.update(sections)
    return Policy.from_document(doc)


def subject(record: dict | None = None, version: str = "127", **changes: Any) -> Subject:
    rec = copy.deepcopy(record if record is not None else CANDIDATE_RECORD)
    rec.update(changes)
    return Subject(model=rec["model"], version=version, record=rec,
                   record_sha256=("a" if version == "127" else "b") * 64,
                   path=f"models/{rec['model']}/{version}.yaml")


def baseline_subject(**changes: Any) -> Subject:
    return subject(BASELINE_RECORD, "126", **changes)


def est(x: Any) -> Estimate:
    if isinstance(x, Estimate):
        return x
    if isinstance(x, tuple):
        return Estimate(*x)
    return Estimate(x)


def evidence(candidate: dict | None = None, baseline: dict | None = None,
             deltas: dict | None = None, sizes: dict[str, int] | None = None,
             groups: dict | None = None, **kw: Any) -> Evidence:
    """``candidate={("auc", "overall"): 0.8}``; a key may carry a threshold as a third item
    (``("precision", "overall", 0.5)``); values are numbers, (value, lo, hi) or Estimates."""
    def keyed(d: dict | None) -> dict:
        out = {}
        for k, v in (d or {}).items():
            metric, key, *thr = k
            out[(metric, thr[0] if thr else None, key)] = est(v)
        return out

    sizes = sizes or {"overall": 10_000}
    slices = {k: SliceStats(k, tuple(c for c, _ in parse_slice_key(k)), n)
              for k, n in sizes.items()}
    group_map = {}
    for (metric, key, col, *thr), per in (groups or {}).items():
        group_map[(metric, thr[0] if thr else None, key, col)] = GroupStats(
            column=col, values={g: est(v[0]) for g, v in per.items()},
            sizes={g: v[1] for g, v in per.items()},
            gap=est(kw.pop("gap")) if "gap" in kw else None)
    return Evidence(slices=slices, candidate=keyed(candidate), baseline=keyed(baseline),
                    deltas=keyed(deltas), groups=group_map,
                    rows=max(sizes.values()), **kw)


def verified(*records_and_roles: tuple[str, dict]) -> Verification:
    """Every artifact and predictions file of the given (role, record) pairs, verified."""
    files = []
    for role, rec in records_and_roles:
        entries = [(a["name"], a) for a in rec.get("artifacts") or []] if role == "candidate" \
            else []
        preds = (rec.get("evaluation") or {}).get("predictions")
        if preds:
            entries.append(("predictions", preds))
        for name, e in entries:
            files.append(FileCheck(role, name, e["uri"], e["sha256"], e.get("size"),
                                   e["sha256"], e.get("size")))
    return Verification(tuple(files))


def rewrite_predictions(reg_dir, version: str, frame) -> None:  # noqa: ANN001
    """Replace a fraud version's predictions file and fix its record's sha256 and size, as a
    new capture would (tests only: real records are immutable)."""
    import hashlib
    import io

    from mlreg.yamlio import dump_yaml

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    data = buf.getvalue()
    rec_path = reg_dir / f"models/fraud/{version}.yaml"
    rec = yaml.safe_load(rec_path.read_text())
    preds = rec["evaluation"]["predictions"]
    (reg_dir / preds["uri"]).write_bytes(data)
    preds.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    rec_path.write_text(dump_yaml(rec))


def small_registry(dest, rows: int = 20_000):  # noqa: ANN001, ANN201
    """A copy of the example registry whose fraud predictions keep their first ``rows`` rows
    (fast to gate), with the calibration and parity bars widened to what that size supports
    (on 20k rows a calibrated model's slope and precision gap are too noisy for 0.02)."""
    import pandas as pd

    from testkit import copy_example

    reg_dir = copy_example(dest)
    for v in ("126", "127", "128"):
        frame = pd.read_parquet(reg_dir / f"examples/store/fraud/{v}/eval_predictions.parquet")
        rewrite_predictions(reg_dir, v, frame.head(rows))
    (reg_dir / "policies/fraud.yaml").write_text("""\
schema: mlreg/policy/v1
gates:
  - id: calibration
    metric: calibration_slope
    slices: {top: 5}
    target: {value: 1.0, tolerance: 0.1}
  - id: precision-parity
    metric: precision
    slices: overall
    max_group_gap: 0.06
    groups: [age_band]
  - {id: latency, type: latency, max_p99_ms: 100, hardware: c6i.2xlarge}
""")
    return reg_dir
