"""Promotion gates: policies, the pure decision, and the layer that gathers its inputs.

    from mlreg.gates import load_policy, evaluate, gate_promotion, Promotion
    result = gate_promotion(reg, reg, Promotion("fraud", "127", service="fraud-scoring",
                                                from_version="126"))
    result.verdict            # "pass" | "fail"; result.to_json_dict() is mlreg/result/v1

Modules: :mod:`~mlreg.gates.policy` (load, merge, digest), :mod:`~mlreg.gates.inputs` (what a
decision rests on), :mod:`~mlreg.gates.evaluate` (the pure decision), :mod:`~mlreg.gates.result`
(the decision record), :mod:`~mlreg.gates.run` (I/O: registry, store, metrics engine),
:mod:`~mlreg.gates.files` (store access), :mod:`~mlreg.gates.engine` (metrics adapter).

Policy format (``mlreg/policy/v1``; ``mlreg schema policy`` prints the JSON Schema)::

    schema: mlreg/policy/v1
    evaluation: {threshold: 0.5, top_n: 5, min_slice_size: 200, confidence: 0.95,
                 traffic: count, min_group_size: 0, bootstrap_replicates: 200, seed: 0}
    rollback: {blocking: [integrity, lineage]}      # categories or gate ids
    remove: [calibration]                            # model policies: drop default gates
    gates:
      - id: auc-uplift                               # metric gates: one rule each
        metric: auc
        slices: overall            # overall | all | top | {top: N, column: C} | {column: C}
                                   # | {cross: [C1, C2]} | {min_size: N} | [country=US, ...]
        change: {min_absolute: 0.005}   # or max_absolute, min_relative, max_relative
      - {id: slope, metric: calibration_slope, slices: {top: 5},
         target: {value: 1.0, tolerance: 0.02}}
      - {id: floor, metric: auc, slices: all, min: 0.7, use_interval: true, min_slice_size: 500}
      - {id: fairness, metric: precision, threshold: 0.5, max_group_gap: 0.02, groups: [age_band]}
      - {id: ranking, metric: ndcg, k: 20, slices: {column: surface},
         change: {min_absolute: -0.01}, use_interval: true}
      - {id: mobile-size, type: artifact_size, target: mobile, max_mb: 500}
      - {id: latency, type: latency, max_p99_ms: 100, hardware: c6i.2xlarge}
      - {id: lineage, type: lineage, require: [code, data, seeds], immutable_data: true,
         verify_artifacts: true, same_eval_snapshot: true}

A model policy (``policies/<model>.yaml``) extends the default: same id replaces, ``remove``
drops, new ids append, ``evaluation``/``rollback`` merge key-wise (:mod:`mlreg.gates.policy`).
Any gate may say ``blocking: false`` (shown, never blocks).

Semantics (each is tested in ``tests/gates``):

* Bounds are inclusive and compared exactly: numbers become the decimal of their shortest repr
  and the arithmetic is decimal (0.805 vs 0.800 with margin 0.005 passes; :mod:`.exact`).
* ``change`` compares candidate - baseline on the same examples; relative rules compare it with
  ``m * |baseline|``; a baseline of 0 fails (the relative change is undefined).
* ``target``: value - tolerance <= candidate <= value + tolerance.
* ``max_group_gap``: max - min of the metric across the groups of each group column, inside each
  selected slice (fairlearn's ``difference(method="between_groups")``); groups under
  ``min_group_size`` are left out and shown; an undefined group metric fails.
* ``use_interval: true``: the interval must clear the bar (lower end for a minimum, upper end for
  a maximum, all of it inside a target band); no interval fails.
* Fail closed, always with a reason, never an exception or a pass: a missing metric, NaN or an
  undefined metric (the AUC of a one-class slice), an unknown metric name, a gate that matched
  no slice, a named slice absent from the data, a missing baseline, a baseline scored on
  different evaluation data, tampered or missing predictions, no gates at all.
* ``min_slice_size``: a slice named explicitly that is too small fails (it cannot be judged); a
  slice selected by a pattern (all, top, column, cross) is skipped and shown; a gate whose every
  slice was skipped fails.
* ``top``: the N single-column slices (of the model's slice columns, or one ``column``) with the
  most traffic (example count, or weight with ``traffic: weight``), ties by name.
* Bootstrap (the first deployment of a service, ``mode="bootstrap"``): change rules and the
  same-evaluation-data check are skipped and shown; every other gate applies.
* Rollback (``mode="rollback"``): only the categories/ids in ``rollback.blocking`` block; other
  failing rows become ``info`` ("not blocking ...").
* Categories: metric gates ``metric``; artifact_size and latency ``operational``; lineage
  ``lineage``, except artifact and predictions verification rows, which are ``integrity``.
* Artifact size: every candidate artifact or variant whose ``target`` is the gate's target;
  1 MB = 10^6 bytes; a model that does not deploy to the target (model.yaml
  deployment_targets, or the promotion's target) skips it; one that does but has no artifact
  for it fails.
* Latency: the record's ``operational.latency.p99_ms``; measured on other hardware than the
  policy's reference hardware fails with that reason (a measurement, not recomputable).
* Metric numbers are recomputed by the metrics engine (:func:`mlreg.metrics.evaluate_predictions`)
  from the predictions of both models, joined on the id column (same ids, same labels, same
  evaluation snapshot, or the baseline is "not comparable"); numbers typed into a record are
  never used for metric gates. Thresholded metrics take ``threshold``, ranking metrics ``k``.
"""

from __future__ import annotations

from typing import Any

from mlreg.gates.evaluate import evaluate
from mlreg.gates.inputs import (
    Estimate,
    Evidence,
    FileCheck,
    GroupStats,
    Promotion,
    SliceStats,
    Subject,
    Verification,
)
from mlreg.gates.policy import Policy, load_policy, merge_policies
from mlreg.gates.result import GateOutcome, GateResult, Row, validate_result

__all__ = [
    "evaluate",
    "gate_promotion",
    "load_policy",
    "merge_policies",
    "Policy",
    "Promotion",
    "Subject",
    "Evidence",
    "Estimate",
    "SliceStats",
    "GroupStats",
    "FileCheck",
    "Verification",
    "GateResult",
    "GateOutcome",
    "Row",
    "validate_result",
]


def __getattr__(name: str) -> Any:
    # gate_promotion pulls in the I/O layer (numpy, pandas when it runs); import on first use.
    if name == "gate_promotion":
        from mlreg.gates.run import gate_promotion

        return gate_promotion
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
