"""The I/O layer of a gate: gather every input, then call the pure :func:`evaluate`.

:func:`gate_promotion` is the one library call behind ``mlreg gate`` (and the PR flow):

1. the candidate's record from the head registry, the baseline's from the base registry (a
   baseline that cannot be loaded is a fact the decision fails on, not an exception);
2. the merged policy and the model's model.yaml *from the base revision*: a change cannot
   weaken the rules it is judged by (for a new model, the default policy applies);
3. every candidate artifact hashed in the store; both predictions files read and hashed as read;
4. the two prediction tables joined on the id column (same examples, same labels, or the
   baseline is "not comparable" with the reason), the metrics engine run on the joined table;
5. :func:`mlreg.gates.evaluate.evaluate`; a canary becoming stable also brings its online
   results, read from the head registry (:mod:`mlreg.gates.online`).

Errors: an invalid candidate record or policy raises InputError (exit 2); an unreachable store
raises DependencyError (exit 3); everything about the evidence becomes a failing row.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from typing import Any

from mlreg import __version__
from mlreg.errors import InputError, NotFound
from mlreg.gates.evaluate import evaluate, snapshot_identity
from mlreg.gates.files import FileAccess
from mlreg.gates.inputs import Evidence, FileCheck, Promotion, Subject, Verification
from mlreg.gates.policy import Policy, load_policy
from mlreg.gates.result import GateResult

__all__ = ["gate_promotion", "load_subject", "read_predictions"]

def load_subject(registry: Any, model: str, version: str) -> Subject:
    """A version's validated record and the sha256 of its file bytes (NotFound, SchemaError)."""
    loaded = registry.record_loaded(model, version)
    path = registry.record_path(model, version)
    raw = registry.read_bytes(path) or b""
    return Subject(model=model, version=version, record=loaded.data,
                   record_sha256=hashlib.sha256(raw).hexdigest(), path=path)


def read_predictions(data: bytes, fmt: str | None, uri: str) -> Any:
    """Parse a predictions file (Parquet or CSV) into a pandas DataFrame; InputError if unreadable."""
    import pandas as pd

    kind = fmt or ("csv" if uri.lower().endswith((".csv", ".csv.gz")) else "parquet")
    try:
        if kind == "csv":
            return pd.read_csv(io.BytesIO(data))
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow/pandas raise many types for bad files
        raise InputError(f"{uri}: cannot read as {kind}: {type(exc).__name__}: {exc}") from None


def _columns_of(record: Mapping[str, Any], model_info: Mapping[str, Any]) -> dict[str, str | None]:
    p = (record.get("evaluation") or {}).get("predictions") or {}
    return {
        "id": p.get("id_column") or model_info.get("id_column"),
        "label": p.get("label_column") or model_info.get("label_column") or "label",
        "score": p.get("score_column") or "score",
        "weight": p.get("weight_column") or model_info.get("weight_column"),
        "query": p.get("query_column") or model_info.get("query_column"),
    }


def _eval_snapshot(subject: Subject) -> Mapping[str, Any] | None:
    return (subject.record.get("evaluation") or {}).get("snapshot")


class _Gathered:
    def __init__(self) -> None:
        self.files: list[FileCheck] = []
        self.unavailable: str | None = None
        self.baseline_problem: str | None = None
        self.notes: list[str] = []  # from a scale engine: the engine and its bounds


def _load_table(files: FileAccess, role: str, subject: Subject,
                gathered: _Gathered) -> tuple[Any, str | None]:
    entry = (subject.record.get("evaluation") or {}).get("predictions")
    if not entry:
        return None, f"{subject} records no evaluation predictions"
    data, check = files.read_verified(role, "predictions", entry)
    gathered.files.append(check)
    if data is None:
        return None, f"{role} predictions {check.problem}"
    try:
        return read_predictions(data, entry.get("format"), entry.get("uri", "")), None
    except InputError as exc:
        return None, str(exc)


def _join(cand: Any, base: Any, ccols: dict, bcols: dict) -> tuple[Any, str | None]:
    """The candidate table with the baseline's score as ``__baseline_score`` joined on the id
    column, or (candidate table, why the baseline is not comparable)."""
    cid, bid = ccols["id"], bcols["id"]
    if not cid or not bid:
        return cand, "no id column to join the two models' predictions on (evaluation." \
                     "predictions.id_column or the model's id_column)"
    for name, table, col in (("candidate", cand, cid), ("baseline", base, bid)):
        if col not in table.columns:
            return cand, f"the {name} predictions have no id column {col!r}"
        dups = int(table[col].duplicated().sum())
        if dups:
            return cand, f"the {name} predictions repeat {dups} id(s) in {col!r}"
    if bcols["score"] not in base.columns or bcols["label"] not in base.columns:
        return cand, "the baseline predictions lack their score or label column"
    right = base[[bid, bcols["score"], bcols["label"]]].rename(
        columns={bid: cid, bcols["score"]: "__baseline_score", bcols["label"]: "__baseline_label"})
    joined = cand.merge(right, on=cid, how="outer", indicator=True, validate="one_to_one")
    only_c = int((joined["_merge"] == "left_only").sum())
    only_b = int((joined["_merge"] == "right_only").sum())
    if only_c or only_b:
        return cand, (f"the two models were scored on different examples ({only_c:,} ids only "
                      f"in the candidate's predictions, {only_b:,} only in the baseline's)")
    joined = joined.drop(columns="_merge")
    differ = int((joined[ccols["label"]] != joined["__baseline_label"]).sum())
    if differ:
        return cand, f"the labels differ on {differ:,} examples: not the same evaluation data"
    return joined.drop(columns="__baseline_label"), None


def _gather_evidence(files: FileAccess, policy: Policy, candidate: Subject,
                     baseline: Subject | None, model_info: Mapping[str, Any],
                     gathered: _Gathered, engine: str = "memory",
                     engine_options: Mapping[str, Any] | None = None) -> Evidence:
    from mlreg.gates.engine import compute_evidence

    cand, why = _load_table(files, "candidate", candidate, gathered)
    base = None
    if baseline is not None:
        base, bwhy = _load_table(files, "baseline", baseline, gathered)
        if bwhy:
            gathered.baseline_problem = bwhy
    if why:
        return Evidence(unavailable=why, baseline_problem=gathered.baseline_problem)
    ccols = _columns_of(candidate.record, model_info)
    for role in ("label", "score"):
        if ccols[role] not in cand.columns:
            return Evidence(unavailable=f"the candidate predictions have no {role} column "
                            f"{ccols[role]!r} (columns: {', '.join(map(str, cand.columns[:20]))})")
    table = cand
    if base is not None and gathered.baseline_problem is None:
        assert baseline is not None
        if snapshot_identity(_eval_snapshot(candidate)) != \
                snapshot_identity(_eval_snapshot(baseline)):
            gathered.baseline_problem = (
                f"{baseline} was scored on a different evaluation snapshot than {candidate}")
        else:
            table, problem = _join(cand, base, ccols, _columns_of(baseline.record, model_info))
            gathered.baseline_problem = problem
    with_baseline = "__baseline_score" in table.columns
    weight = ccols["weight"] if ccols["weight"] in table.columns else None
    return compute_evidence(
        table, label=ccols["label"], score=ccols["score"],
        baseline_score="__baseline_score" if with_baseline else None, weight=weight,
        policy=policy, model_info=model_info, id_column=ccols["id"],
        query_column=ccols["query"], baseline_problem=gathered.baseline_problem,
        engine=engine, engine_options=engine_options, notes=gathered.notes)


def gate_promotion(head: Any, base: Any | None, promotion: Promotion, *,
                   files: FileAccess | None = None, engine: str | None = None,
                   engine_options: Mapping[str, Any] | None = None) -> GateResult:
    """Evaluate one promotion: ``head`` holds the candidate, ``base`` the baseline and the
    rules in force (pass the same registry twice outside the PR flow).

    ``promotion.mode`` bootstrap skips the baseline; a ``from_version`` that cannot be loaded
    at ``base`` makes every comparison fail with the reason. ``engine`` (default:
    ``evaluation.engine`` in the base's mlreg.yaml, else ``memory``) picks the metrics engine;
    a scale engine's bounds are named in the result's notes.
    """
    base = base if base is not None else head
    candidate = load_subject(head, promotion.model, promotion.to_version)
    policy = load_policy(base, promotion.model)
    model_info = _model_info(base, head, promotion.model)
    gathered = _Gathered()
    baseline = None
    if promotion.mode != "bootstrap" and promotion.from_version is not None:
        try:
            baseline = load_subject(base, promotion.baseline_model, promotion.from_version)
        except (NotFound, InputError) as exc:
            gathered.baseline_problem = (f"baseline {promotion.baseline_model}@"
                                         f"{promotion.from_version} cannot be loaded: {exc}")
    files = files or FileAccess(head)
    for art in candidate.record.get("artifacts") or []:
        gathered.files.append(files.check("candidate", art["name"], art))
    if _needs_metrics(policy):
        engine, engine_options = _engine_choice(base, engine, engine_options)
        evidence = _gather_evidence(files, policy, candidate, baseline, model_info, gathered,
                                    engine, engine_options)
    else:
        evidence = Evidence(unavailable="the policy has no metric gates")
        for role, subject in (("candidate", candidate), ("baseline", baseline)):
            entry = (subject.record.get("evaluation") or {}).get("predictions") if subject else None
            if entry:
                gathered.files.append(files.check(role, "predictions", entry))
    if gathered.baseline_problem and not evidence.baseline_problem:
        from dataclasses import replace

        evidence = replace(evidence, baseline_problem=gathered.baseline_problem)
    from mlreg.gates.online import online_evidence

    online = online_evidence(head, base, promotion) if policy.online else None
    result = evaluate(policy, candidate, baseline, evidence, Verification(tuple(gathered.files)),
                      mode=promotion.mode, promotion=promotion, model_info=model_info,
                      tool=f"mlreg {__version__}", online=online)
    result.notes.extend(gathered.notes)
    return result


def _engine_choice(base: Any, engine: str | None,
                   options: Mapping[str, Any] | None) -> tuple[str, dict]:
    """(engine, options): the argument, else ``evaluation`` in the base's mlreg.yaml."""
    from mlreg.errors import MlregError

    try:
        settings = dict((base.settings() or {}).get("evaluation") or {})
    except (MlregError, AttributeError):
        settings = {}
    name = engine or settings.get("engine") or "memory"
    if name not in ("memory", "stream", "duckdb", "spark", "cells"):
        raise InputError(f"unknown evaluation engine {name!r} (memory, stream, duckdb, spark, "
                         "cells)")
    return name, {**settings, **dict(options or {})}


def _needs_metrics(policy: Policy) -> bool:
    return any(g.get("type", "metric") == "metric" for g in policy.gates)


def _model_info(base: Any, head: Any, model: str) -> dict:
    for reg in (base, head):
        try:
            return dict(reg.model_info(model))
        except NotFound:
            continue
    return {}
