"""The slice-metrics engine: metrics, intervals and paired deltas for every slice at once.

Pure computation (no printing). Bad input raises :class:`mlreg.errors.InputError`; a metric that
is undefined on a slice is a NaN value with a reason, never an exception.

Entry point::

    from mlreg.metrics import evaluate_predictions, read_predictions

    df = read_predictions("s3://bucket/eval/preds.parquet")          # or a DataFrame you have
    res = evaluate_predictions(
        df, label="label",
        scores={"candidate": "score_candidate", "baseline": "score_baseline"},
        weight=None,                           # optional weight column
        slice_columns=["country", "device"],   # every value of each column is a slice
        crosses=[("country", "device")],       # every present combination is a slice
        group_columns=["gender"],              # per-group metrics + max-min gap in every slice
        top_n=None, traffic="count",           # keep only the N column slices with most traffic
        min_size=None,                         # drop column/cross slices with fewer rows
        metrics=["auc", "log_loss", "calibration_slope", "precision@0.3"],
        threshold=0.5, bootstrap_seed=0,
    )
    res.overall.metrics["candidate"]["auc"]      # MetricValue(value, lo, hi, method, reason, n)
    res.slice("country=US").deltas["candidate"]["auc"]   # PairedDelta: candidate - baseline
    res.slice("country=US,device=ios")
    res.top_slices(5)                            # column slices by traffic rank
    res.to_dict()                                # JSON-serialisable, NaN -> None

Result structure (:mod:`mlreg.metrics.results`): :class:`EvaluationResult` holds ``models``,
``baseline``, ``metrics`` (keys as requested), ``n``, ``weight``, ``settings``, ``excluded`` and
``slices``: a list of :class:`SliceResult` (``slicing`` = ``overall``/``column``/``cross``,
``key`` = tuple of ``(column, value)``, ``name`` = ``overall`` / ``country=US`` /
``country=US,device=ios``, ``n``, ``weight``, ``traffic_rank``, ``metrics[model][metric]``,
``deltas[model][metric]`` for every non-baseline model, ``groups[column]`` a
:class:`GroupBreakdown` with per-group metrics and :class:`GapValue` gaps, ``reliability[model]``
a list of :class:`ReliabilityBin` when ``ece`` is computed).

Metrics (:mod:`mlreg.metrics.registry`; ``available_metrics()`` lists them):

============================  =====================================  ========================
name                          definition                             interval (method)
============================  =====================================  ========================
``count``, ``weight``         rows, sum of weights                   exact
``base_rate``                 weighted mean label                    Wilson
``mean_score``                weighted mean score                    normal
``auc`` (``roc_auc``)         exact tie-aware ROC AUC                DeLong (weighted form)
``pr_auc``                    average precision (scikit-learn)       influence function
``log_loss``, ``brier``       mean losses (log loss clipped at eps)  normal
``calibration_slope``         slope of logit P(y) on logit(score)    Fisher information
``calibration_intercept``     intercept of that fit                  Fisher information
``ece``                       expected calibration error, n_bins     Poisson bootstrap
``precision``/``recall``/     at ``score >= threshold``; write       Wilson (F1: normal)
``tpr``/``fpr``/``f1``        ``precision@0.3`` for another cut
``ndcg``/``precision_at_k``/  per query, averaged over queries;      Poisson bootstrap over
``recall_at_k``/``mrr``       ``ndcg@10`` sets k                     queries
============================  =====================================  ========================

Paired deltas (model - baseline on the same rows): DeLong for AUC, influence functions for
average precision, the per-row loss difference for log loss / Brier / mean score, the stacked
sandwich for the calibration fit, linearisation on the joint confusion cells for thresholded
metrics, the shared-replicate Poisson bootstrap for ECE and ranking metrics; score-free metrics
have an exact zero delta. Group gaps: Poisson bootstrap of the groups' confusion cells for
count-based metrics, a parametric (normal) bootstrap of the group estimates otherwise. All
intervals are two-sided at ``confidence`` (0.95).

Adding a metric is one function and one registration: :func:`register_metric` (see
:mod:`mlreg.metrics.registry`). Single-slice reference functions live in
:mod:`mlreg.metrics.binary` and :mod:`mlreg.metrics.ranking`; the vectorised engine in
:mod:`mlreg.metrics.engine` computes the built-ins for all slices at once (threads over
slicings, BLAS capped at one thread via threadpoolctl).
"""

from mlreg.metrics.evaluate import evaluate_predictions
from mlreg.metrics.io import join_predictions, read_predictions
from mlreg.metrics.registry import (
    DEFAULT_METRICS,
    MetricRequest,
    MetricSpec,
    SliceData,
    available_metrics,
    get_metric,
    register_metric,
    resolve_metric,
)
from mlreg.metrics.results import (
    EvaluationResult,
    GapValue,
    GroupBreakdown,
    MetricValue,
    PairedDelta,
    ReliabilityBin,
    SliceResult,
    render_key,
)

__all__ = [
    "evaluate_predictions",
    "read_predictions",
    "join_predictions",
    "register_metric",
    "get_metric",
    "resolve_metric",
    "available_metrics",
    "DEFAULT_METRICS",
    "MetricSpec",
    "MetricRequest",
    "SliceData",
    "MetricValue",
    "PairedDelta",
    "GapValue",
    "GroupBreakdown",
    "ReliabilityBin",
    "SliceResult",
    "EvaluationResult",
    "render_key",
]
