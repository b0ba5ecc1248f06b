"""Result containers of the metrics engine: plain dataclasses that render to JSON-safe dicts.

Every float that is NaN or infinite renders as ``None`` in :meth:`to_dict` output; numpy scalars
render as Python numbers. Slice keys are tuples of ``(column, value)`` pairs and render as
``overall``, ``country=US`` or ``country=US,device=ios``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "MetricValue",
    "PairedDelta",
    "GapValue",
    "ReliabilityBin",
    "GroupBreakdown",
    "SliceResult",
    "EvaluationResult",
    "SliceKey",
    "render_key",
    "render_value",
    "jsonable",
]

SliceKey = tuple[tuple[str, Any], ...]


def jsonable(obj: Any) -> Any:
    """Convert ``obj`` recursively into JSON-serialisable Python (NaN and inf become None)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        return obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.datetime64, np.timedelta64)):
        return str(obj)
    return str(obj)


def render_value(value: Any) -> str:
    """Render one slice value the way slice names show it (missing values render as ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, (float, np.floating)) and math.isnan(float(value)):
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (np.integer,)):
        return str(int(value))
    if isinstance(value, (np.floating,)):
        return repr(float(value))
    return str(value)


def render_key(key: SliceKey) -> str:
    """``()`` -> ``overall``; ``(("country", "US"),)`` -> ``country=US``; crosses join with ``,``."""
    if not key:
        return "overall"
    return ",".join(f"{col}={render_value(val)}" for col, val in key)


def _f(x: Any) -> float:
    return float("nan") if x is None else float(x)


@dataclass(frozen=True)
class MetricValue:
    """One metric on one slice for one model.

    ``value`` is NaN when the metric is undefined on the slice; ``reason`` then says why (for
    example ``"only one class in slice (no negatives)"``). ``lo``/``hi`` bound the interval at the
    evaluation's confidence level (NaN when none could be computed) and ``method`` names how it was
    computed: ``exact``, ``wilson``, ``delong``, ``fisher``, ``normal``, ``influence`` or
    ``poisson_bootstrap``. ``n`` is the number of rows (or queries, for ranking metrics) the value
    rests on: the slice size for most metrics, the predicted positives for precision, the
    positives for recall/TPR, the negatives for FPR.
    """

    value: float
    lo: float = float("nan")
    hi: float = float("nan")
    method: str | None = None
    reason: str | None = None
    n: int = 0

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)

    @classmethod
    def undefined(cls, reason: str, n: int = 0) -> MetricValue:
        return cls(float("nan"), float("nan"), float("nan"), None, reason, int(n))

    def to_dict(self) -> dict:
        return {
            "value": jsonable(self.value), "lo": jsonable(self.lo), "hi": jsonable(self.hi),
            "method": self.method, "reason": self.reason, "n": int(self.n),
        }


@dataclass(frozen=True)
class PairedDelta:
    """``model - baseline`` on the same rows of a slice, with a paired interval."""

    value: float
    lo: float = float("nan")
    hi: float = float("nan")
    method: str | None = None
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)

    @classmethod
    def undefined(cls, reason: str) -> PairedDelta:
        return cls(float("nan"), float("nan"), float("nan"), None, reason)

    def to_dict(self) -> dict:
        return {
            "value": jsonable(self.value), "lo": jsonable(self.lo), "hi": jsonable(self.hi),
            "method": self.method, "reason": self.reason,
        }


@dataclass(frozen=True)
class GapValue:
    """Max minus min of a metric across the protected groups of a slice (fairlearn's
    ``MetricFrame.difference(method="between_groups")``); groups where the metric is undefined
    are skipped. ``max_group``/``min_group`` are the group values attaining the extremes."""

    value: float
    lo: float = float("nan")
    hi: float = float("nan")
    method: str | None = None
    reason: str | None = None
    max_group: Any = None
    min_group: Any = None
    n_groups: int = 0

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)

    def to_dict(self) -> dict:
        return {
            "value": jsonable(self.value), "lo": jsonable(self.lo), "hi": jsonable(self.hi),
            "method": self.method, "reason": self.reason,
            "max_group": jsonable(self.max_group), "min_group": jsonable(self.min_group),
            "n_groups": int(self.n_groups),
        }


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability curve: scores in ``[lower, upper)`` (the last bin includes 1)."""

    lower: float
    upper: float
    count: int
    weight: float
    mean_score: float
    mean_label: float

    def to_dict(self) -> dict:
        return {k: jsonable(v) for k, v in self.__dict__.items()}


@dataclass
class GroupBreakdown:
    """Per protected-group metrics inside one slice, and the between-groups gap per metric.

    ``groups`` maps the group value to ``{"n": int, "weight": float, "metrics": {model:
    {metric: MetricValue}}}``; ``gaps`` maps ``model -> metric -> GapValue``.
    """

    column: str
    groups: dict[Any, dict[str, Any]] = field(default_factory=dict)
    gaps: dict[str, dict[str, GapValue]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "column": self.column,
            "groups": [
                {"value": jsonable(value), "name": render_value(value), "n": int(g["n"]),
                 "weight": jsonable(g["weight"]), "metrics": jsonable(g["metrics"])}
                for value, g in self.groups.items()
            ],
            "gaps": jsonable(self.gaps),
        }


@dataclass
class SliceResult:
    """Metrics of every model on one slice.

    ``slicing`` is ``"overall"``, ``"column"`` (one value of one slice column) or ``"cross"`` (a
    declared cross of columns); ``key`` is the tuple of ``(column, value)`` pairs (empty for
    overall). ``metrics[model][metric]`` is a :class:`MetricValue`; ``deltas[model][metric]`` a
    :class:`PairedDelta` of ``model - baseline`` for every non-baseline model; ``groups[column]``
    the :class:`GroupBreakdown` per protected-group column; ``reliability[model]`` the reliability
    curve (present when ``ece`` is computed). ``traffic_rank`` is the 1-based rank of a column
    slice among all column slices by traffic (count, or weight when so chosen).
    """

    slicing: str
    key: SliceKey
    n: int
    weight: float
    metrics: dict[str, dict[str, MetricValue]] = field(default_factory=dict)
    deltas: dict[str, dict[str, PairedDelta]] = field(default_factory=dict)
    groups: dict[str, GroupBreakdown] = field(default_factory=dict)
    reliability: dict[str, list[ReliabilityBin]] = field(default_factory=dict)
    traffic_rank: int | None = None

    @property
    def name(self) -> str:
        return render_key(self.key)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(col for col, _ in self.key)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "slicing": self.slicing,
            "key": [[col, jsonable(val)] for col, val in self.key],
            "n": int(self.n), "weight": jsonable(self.weight),
            "traffic_rank": self.traffic_rank,
            "metrics": jsonable(self.metrics), "deltas": jsonable(self.deltas),
            "groups": {col: g.to_dict() for col, g in self.groups.items()},
            "reliability": jsonable(self.reliability),
        }


@dataclass
class EvaluationResult:
    """Everything :func:`mlreg.metrics.evaluate_predictions` computed.

    ``slices`` lists the overall slice first, then column slices (columns in the order given,
    values sorted), then crosses. ``settings`` records the parameters that shape the numbers
    (threshold, bins, confidence, bootstrap seed/replicates/buckets, ...).
    """

    models: tuple[str, ...]
    baseline: str | None
    metrics: tuple[str, ...]
    n: int
    weight: float
    slices: list[SliceResult]
    settings: dict[str, Any] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[SliceResult]:
        return iter(self.slices)

    def __len__(self) -> int:
        return len(self.slices)

    @property
    def overall(self) -> SliceResult:
        return self.slices[0]

    def slice(self, name: str | SliceKey) -> SliceResult:
        """Look a slice up by rendered name (``"country=US"``) or by key; KeyError if absent."""
        want = name if isinstance(name, str) else render_key(tuple(name))
        for s in self.slices:
            if s.name == want:
                return s
        raise KeyError(want)

    def get(self, name: str | SliceKey) -> SliceResult | None:
        try:
            return self.slice(name)
        except KeyError:
            return None

    def names(self) -> list[str]:
        return [s.name for s in self.slices]

    def top_slices(self, n: int) -> list[SliceResult]:
        """The ``n`` column slices with the most traffic, largest first."""
        ranked = [s for s in self.slices if s.traffic_rank is not None]
        ranked.sort(key=lambda s: s.traffic_rank)
        return ranked[: max(0, int(n))]

    def by_slicing(self, slicing: str) -> list[SliceResult]:
        return [s for s in self.slices if s.slicing == slicing]

    def to_dict(self) -> dict:
        return {
            "models": list(self.models), "baseline": self.baseline,
            "metrics": list(self.metrics), "n": int(self.n), "weight": jsonable(self.weight),
            "settings": jsonable(self.settings), "excluded": jsonable(self.excluded),
            "warnings": list(self.warnings),
            "slices": [s.to_dict() for s in self.slices],
        }


def keys_of(slices: Sequence[SliceResult]) -> list[str]:
    return [s.name for s in slices]
