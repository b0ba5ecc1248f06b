"""The metric registry: name -> (function, higher_is_better, kind).

Adding a metric is one function and one registration::

    from mlreg.metrics import register_metric, MetricValue

    def mean_label_minus_score(data, **_):
        ...
        return MetricValue(value, lo, hi, "normal")

    register_metric("bias", mean_label_minus_score, higher_is_better=None, kind="calibration")

The function receives a :class:`SliceData` (the rows of one slice for one model) and returns a
:class:`~mlreg.metrics.results.MetricValue`. Built-in metrics are additionally computed by the
vectorised engine for all slices at once; a registered metric without an engine kernel is
computed slice by slice with its function, and its paired delta uses the bucketed Poisson
bootstrap, re-calling the function with replicate weights.

Parameterised metrics: thresholded metrics take ``@threshold`` (``precision@0.3``; a bare
``precision`` uses the evaluation's ``threshold``), ranking metrics take ``@k`` (``ndcg@10``; bare
means the whole list). The requested spelling is the key the results use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlreg.errors import InputError
from mlreg.metrics import binary as B
from mlreg.metrics import ranking as R
from mlreg.metrics.intervals import DEFAULT_BUCKETS, DEFAULT_REPLICATES
from mlreg.metrics.results import MetricValue

__all__ = [
    "SliceData",
    "MetricSpec",
    "MetricRequest",
    "REGISTRY",
    "KINDS",
    "register_metric",
    "get_metric",
    "resolve_metric",
    "available_metrics",
    "DEFAULT_METRICS",
]

KINDS = ("count", "classification", "calibration", "threshold", "ranking", "custom")


@dataclass(frozen=True)
class SliceData:
    """The rows of one slice as seen by one model, plus the evaluation settings."""

    label: np.ndarray
    score: np.ndarray
    weight: np.ndarray | None = None
    query: np.ndarray | None = None
    relevance: np.ndarray | None = None
    buckets: np.ndarray | None = None
    confidence: float = 0.95
    n_bins: int = 10
    replicates: int = DEFAULT_REPLICATES
    seed: int = 0
    n_buckets: int = DEFAULT_BUCKETS


MetricFn = Callable[..., MetricValue]


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    ``higher_is_better`` is True/False, or None for metrics with a target value (``ideal``, e.g.
    calibration slope 1) or no direction (count). ``param`` names the parameter taken after
    ``@`` (``"threshold"`` or ``"k"``). ``score_free`` metrics depend on labels/weights only.
    ``builtin`` metrics are computed by the vectorised engine.
    """

    name: str
    fn: MetricFn
    higher_is_better: bool | None
    kind: str
    param: str | None = None
    ideal: float | None = None
    score_free: bool = False
    builtin: bool = False
    description: str = ""
    aliases: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class MetricRequest:
    """A metric as requested: ``key`` (result key, the requested spelling), the spec, and the
    resolved parameters (``{"threshold": 0.3}``, ``{"k": 10}`` or ``{}``)."""

    key: str
    spec: MetricSpec
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def threshold(self) -> float | None:
        return self.params.get("threshold")

    @property
    def k(self) -> int | None:
        return self.params.get("k")


REGISTRY: dict[str, MetricSpec] = {}
_ALIASES: dict[str, str] = {}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register_metric(
    name: str, fn: MetricFn, *, higher_is_better: bool | None, kind: str = "custom",
    param: str | None = None, ideal: float | None = None, score_free: bool = False,
    description: str = "", aliases: tuple[str, ...] = (), replace: bool = False,
    builtin: bool = False,
) -> MetricSpec:
    """Register ``fn`` under ``name``; InputError if the name is taken (unless ``replace``)."""
    if not _NAME.match(name):
        raise InputError(f"metric name {name!r} must match [a-z][a-z0-9_]*")
    if kind not in KINDS:
        raise InputError(f"metric kind {kind!r} is not one of {', '.join(KINDS)}")
    if param not in (None, "threshold", "k"):
        raise InputError("param must be None, 'threshold' or 'k'")
    if not replace and (name in REGISTRY or name in _ALIASES):
        raise InputError(f"metric {name!r} is already registered")
    spec = MetricSpec(name, fn, higher_is_better, kind, param, ideal, score_free, builtin,
                      description, tuple(aliases))
    REGISTRY[name] = spec
    for a in aliases:
        _ALIASES[a] = name
    return spec


def get_metric(name: str) -> MetricSpec:
    base = _ALIASES.get(name, name)
    try:
        return REGISTRY[base]
    except KeyError:
        raise InputError(
            f"unknown metric {name!r}; known: {', '.join(available_metrics())}"
        ) from None


def resolve_metric(key: str, *, threshold: float = 0.5) -> MetricRequest:
    """Parse ``name`` or ``name@param`` into a :class:`MetricRequest`."""
    if not isinstance(key, str) or not key:
        raise InputError(f"metric name must be a non-empty string, got {key!r}")
    base, sep, raw = key.partition("@")
    spec = get_metric(base)
    params: dict[str, Any] = {}
    if sep:
        if spec.param is None:
            raise InputError(f"metric {base!r} takes no '@' parameter (got {key!r})")
        if spec.param == "threshold":
            try:
                t = float(raw)
            except ValueError:
                raise InputError(f"{key!r}: threshold {raw!r} is not a number") from None
            if not (math.isfinite(t) and 0.0 <= t <= 1.0):
                raise InputError(f"{key!r}: threshold must lie in [0, 1]")
            params["threshold"] = t
        else:
            if not raw.isdigit() or int(raw) < 1:
                raise InputError(f"{key!r}: k must be a positive integer")
            params["k"] = int(raw)
    elif spec.param == "threshold":
        params["threshold"] = float(threshold)
    elif spec.param == "k":
        params["k"] = None
    return MetricRequest(key, spec, params)


def available_metrics() -> list[str]:
    return sorted(REGISTRY)


# --------------------------------------------------------------------------- built-ins


def _w(fn):
    def call(data: SliceData, **params) -> MetricValue:
        return fn(data.label, data.score, data.weight, confidence=data.confidence, **params)

    call.__name__ = getattr(fn, "__name__", "metric")
    call.__doc__ = fn.__doc__
    return call


def _ece(data: SliceData, **_) -> MetricValue:
    return B.expected_calibration_error(
        data.label, data.score, data.weight, n_bins=data.n_bins, buckets=data.buckets,
        replicates=data.replicates, seed=data.seed, n_buckets=data.n_buckets,
        confidence=data.confidence,
    )


def _count(data: SliceData, **_) -> MetricValue:
    return B.count(data.label)


def _weight(data: SliceData, **_) -> MetricValue:
    return B.weight_sum(data.label, None, data.weight)


def _base_rate(data: SliceData, **_) -> MetricValue:
    return B.base_rate(data.label, data.score, data.weight, confidence=data.confidence)


def _ranking(name: str):
    def call(data: SliceData, k: int | None = None, **_) -> MetricValue:
        if data.query is None:
            raise InputError(f"metric {name!r} needs a query column")
        rel = data.label if data.relevance is None else data.relevance
        return R.ranking_metric(name, data.query, rel, data.score, k=k,
                                confidence=data.confidence, replicates=data.replicates,
                                seed=data.seed, n_buckets=data.n_buckets)

    call.__name__ = name
    return call


def _register_builtins() -> None:
    reg = register_metric
    reg("count", _count, higher_is_better=None, kind="count", score_free=True, builtin=True,
        description="number of rows")
    reg("weight", _weight, higher_is_better=None, kind="count", score_free=True, builtin=True,
        description="sum of weights (the row count when unweighted)")
    reg("base_rate", _base_rate, higher_is_better=None, kind="count", score_free=True,
        builtin=True, description="weighted mean label; Wilson interval")
    reg("mean_score", _w(B.mean_score), higher_is_better=None, kind="calibration", builtin=True,
        description="weighted mean score; normal interval")
    reg("auc", _w(B.roc_auc), higher_is_better=True, kind="classification", builtin=True,
        aliases=("roc_auc",), description="ROC AUC, exact and tie-aware; DeLong interval")
    reg("pr_auc", _w(B.pr_auc), higher_is_better=True, kind="classification", builtin=True,
        aliases=("average_precision",),
        description="average precision (scikit-learn); influence-function interval")
    reg("log_loss", _w(B.log_loss), higher_is_better=False, kind="classification",
        builtin=True, description="mean log loss, scores clipped to [eps, 1-eps]")
    reg("brier", _w(B.brier), higher_is_better=False, kind="calibration", builtin=True,
        description="Brier score")
    reg("calibration_slope", _w(B.calibration_slope), higher_is_better=None, ideal=1.0,
        kind="calibration", builtin=True,
        description="slope of logit(P(y)) on logit(score); Fisher interval")
    reg("calibration_intercept", _w(B.calibration_intercept), higher_is_better=None, ideal=0.0,
        kind="calibration", builtin=True,
        description="intercept of the same fit; Fisher interval")
    reg("ece", _ece, higher_is_better=False, ideal=0.0, kind="calibration", builtin=True,
        description="expected calibration error, equal-width bins; Poisson bootstrap")
    reg("precision", _w(B.precision), higher_is_better=True, kind="threshold",
        param="threshold", builtin=True, description="TP / predicted positives; Wilson")
    reg("recall", _w(B.recall), higher_is_better=True, kind="threshold", param="threshold",
        builtin=True, description="TP / positives (= TPR); Wilson")
    reg("tpr", _w(B.tpr), higher_is_better=True, kind="threshold", param="threshold",
        builtin=True, description="true positive rate (= recall); Wilson")
    reg("fpr", _w(B.fpr), higher_is_better=False, kind="threshold", param="threshold",
        builtin=True, description="FP / negatives; Wilson")
    reg("f1", _w(B.f1), higher_is_better=True, kind="threshold", param="threshold",
        builtin=True, description="2TP / (2TP + FP + FN); normal interval")
    for name in R.RANKING_METRICS:
        reg(name, _ranking(name), higher_is_better=True, kind="ranking", param="k",
            builtin=True, description=f"{name} per query, averaged over queries")


_register_builtins()

DEFAULT_METRICS: tuple[str, ...] = (
    "count", "weight", "base_rate", "mean_score", "auc", "pr_auc", "log_loss", "brier",
    "calibration_slope", "calibration_intercept", "ece", "precision", "recall", "f1", "fpr",
)
