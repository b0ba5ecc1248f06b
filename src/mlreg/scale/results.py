"""Result types of the scale engines: the metrics engine's, plus ``bound``, ``exact``, ``note``.

:class:`BoundedMetricValue`, :class:`BoundedPairedDelta` and :class:`BoundedGapValue` subclass
:class:`~mlreg.metrics.results.MetricValue`, :class:`~mlreg.metrics.results.PairedDelta` and
:class:`~mlreg.metrics.results.GapValue`, so everything that reads in-memory results (the gates'
evidence adapter, ``mlreg evaluate``'s tables, ``to_dict``) reads these unchanged. The extra
fields:

* ``bound`` - the largest possible absolute error of ``value`` against the exact metric on the
  same rows (0 when exact). The interval is about sampling; the bound about computation.
* ``exact`` - ``bound == 0``: the value is what the in-memory engine computes (to rounding).
* ``note`` - why the *interval* is approximate (None when it is computed as in memory).

:class:`ScaledResult` is an :class:`~mlreg.metrics.results.EvaluationResult` with ``scale``:
the engine, the histogram, the passes run and the largest bound per metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlreg.metrics.results import EvaluationResult, GapValue, MetricValue, PairedDelta, jsonable

__all__ = ["BoundedMetricValue", "BoundedPairedDelta", "BoundedGapValue", "ScaleInfo",
           "ScaledResult"]


@dataclass(frozen=True)
class BoundedMetricValue(MetricValue):
    bound: float = 0.0
    exact: bool = True
    note: str | None = None

    def to_dict(self) -> dict:
        return {**super().to_dict(), "bound": jsonable(self.bound), "exact": bool(self.exact),
                "note": self.note}


@dataclass(frozen=True)
class BoundedPairedDelta(PairedDelta):
    bound: float = 0.0
    exact: bool = True
    note: str | None = None

    def to_dict(self) -> dict:
        return {**super().to_dict(), "bound": jsonable(self.bound), "exact": bool(self.exact),
                "note": self.note}


@dataclass(frozen=True)
class BoundedGapValue(GapValue):
    bound: float = 0.0
    exact: bool = True
    note: str | None = None

    def to_dict(self) -> dict:
        return {**super().to_dict(), "bound": jsonable(self.bound), "exact": bool(self.exact),
                "note": self.note}


def bound_of(x: Any) -> float:
    """The bound of a result value (0 for the in-memory engine's plain values)."""
    b = getattr(x, "bound", 0.0)
    return float(b) if b is not None and math.isfinite(float(b)) else 0.0


@dataclass
class ScaleInfo:
    """How a scaled result was computed."""

    engine: str
    buckets: float  # per unit of logit
    logit_range: float
    cells: int = 0
    passes: list[str] = field(default_factory=list)
    max_bound: dict[str, float] = field(default_factory=dict)  # metric key -> largest bound
    exact: dict[str, bool] = field(default_factory=dict)  # metric key -> every value exact
    refined: dict[str, int] = field(default_factory=dict)  # metric key -> slices refined
    seconds: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return jsonable(self.__dict__)

    def describe(self, metrics: list[str] | None = None) -> str:
        """One line: the engine and the bound used for each metric."""
        parts = []
        for key in metrics or list(self.max_bound):
            if key not in self.max_bound:
                continue
            if self.exact.get(key):
                how = "exact"
                if key.startswith("calibration") and "exact pass" in self.passes:
                    how = "exact (Newton pass over the rows)"
                elif self.refined.get(key):
                    how = f"exact after refining {self.refined[key]} slice(s)"
                parts.append(f"{key} {how}")
            else:
                extra = f", {self.refined[key]} slice(s) refined" if self.refined.get(key) else ""
                parts.append(f"{key} bound <= {self.max_bound[key]:.2g}{extra}")
        return (f"engine {self.engine} (logit histogram R={self.buckets:g}/unit, "
                f"{self.cells:,} cells; passes: {', '.join(self.passes)}): "
                + ("; ".join(parts) if parts else "no metrics"))


@dataclass
class ScaledResult(EvaluationResult):
    scale: ScaleInfo | None = None

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["scale"] = self.scale.to_dict() if self.scale else None
        return out
