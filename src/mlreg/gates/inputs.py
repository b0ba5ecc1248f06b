"""What :func:`mlreg.gates.evaluate` decides on: plain, immutable data gathered beforehand.

The I/O layer (:mod:`mlreg.gates.run`) fills these from a registry, the artifact store and the
metrics engine; tests build them by hand. Nothing here reads a file.

* :class:`Subject` - a model version: its record (dict) and the sha256 of the record file bytes.
* :class:`Promotion` - what is being decided: service, model, from and to versions, mode.
* :class:`Evidence` - the metrics engine's numbers: slices with their sizes, per (metric,
  threshold, slice) the candidate's and the baseline's :class:`Estimate` and the paired delta,
  and per (metric, threshold, slice, group column) the :class:`GroupStats` of a fairness gap.
* :class:`Verification` - artifact and predictions files hashed in the store (:class:`FileCheck`).
* :class:`OnlineEvidence` - the online results a canary -> stable promotion is judged on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Mode",
    "MODES",
    "Estimate",
    "SliceStats",
    "GroupStats",
    "MetricKey",
    "Evidence",
    "FileCheck",
    "Verification",
    "Subject",
    "Promotion",
    "OnlineEvidence",
    "OVERALL",
    "parse_slice_key",
]

Mode = Literal["promotion", "rollback", "bootstrap"]
MODES: tuple[str, ...] = ("promotion", "rollback", "bootstrap")

#: The key of the slice holding every example.
OVERALL = "overall"


def parse_slice_key(key: str) -> tuple[tuple[str, str], ...]:
    """A slice name as the metrics engine writes it, split: ``"country=US,device=ios"`` ->
    ``(("country", "US"), ("device", "ios"))``; ``"overall"`` -> ``()``.

    The first ``=`` of each part separates column from value.
    """
    if key == OVERALL:
        return ()
    out = []
    for part in key.split(","):
        column, sep, value = part.partition("=")
        if not sep or not column:
            raise ValueError(f"slice key {key!r}: expected column=value parts joined by ','")
        out.append((column, value))
    return tuple(out)


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class Estimate:
    """A metric value with its interval. ``value`` None (or NaN) means undefined; ``undefined``
    then says why (e.g. "one class only: AUC needs positives and negatives")."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    undefined: str | None = None

    @property
    def defined(self) -> bool:
        return _finite(self.value) is not None

    @property
    def interval(self) -> tuple[float, float] | None:
        lo, hi = _finite(self.lo), _finite(self.hi)
        return (lo, hi) if lo is not None and hi is not None else None


@dataclass(frozen=True)
class SliceStats:
    """One slice of the evaluation data. ``columns`` is empty for the overall slice."""

    key: str
    columns: tuple[str, ...]
    n: int
    weight: float | None = None
    positives: float | None = None


@dataclass(frozen=True)
class GroupStats:
    """A metric per group of one protected column inside one slice (candidate model)."""

    column: str
    values: Mapping[str, Estimate]
    sizes: Mapping[str, int]
    gap: Estimate | None = None  # max - min across the groups, with its interval when known


#: (metric name, threshold or None, slice key)
MetricKey = tuple[str, float | None, str]


@dataclass(frozen=True)
class Evidence:
    """The metrics engine's results for one candidate (and baseline) on one evaluation set.

    ``unavailable`` says why there are no numbers at all (predictions missing or tampered); every
    metric gate then fails with it. ``baseline_problem`` says why the baseline's numbers cannot be
    compared (scored on different examples or labels); change rules fail with it.
    ``metrics_known`` names the engine's metrics so a typo in a policy gets a useful reason.
    """

    slices: Mapping[str, SliceStats] = field(default_factory=dict)
    candidate: Mapping[MetricKey, Estimate] = field(default_factory=dict)
    baseline: Mapping[MetricKey, Estimate] = field(default_factory=dict)
    deltas: Mapping[MetricKey, Estimate] = field(default_factory=dict)
    groups: Mapping[tuple[str, float | None, str, str], GroupStats] = field(default_factory=dict)
    rows: int = 0
    unavailable: str | None = None
    baseline_problem: str | None = None
    metrics_known: frozenset[str] | None = None
    engine: str | None = None


@dataclass(frozen=True)
class FileCheck:
    """One file hashed in the store: what the record says and what the store holds.

    ``role`` is candidate or baseline; ``name`` an artifact name or ``predictions``.
    ``problem`` is None when the bytes matched, else why not (missing, sha256 or size mismatch).
    """

    role: str
    name: str
    uri: str
    expected_sha256: str
    expected_size: int | None
    actual_sha256: str | None = None
    actual_size: int | None = None
    problem: str | None = None

    @property
    def verified(self) -> bool:
        return self.problem is None and self.actual_sha256 == self.expected_sha256 and (
            self.expected_size is None or self.actual_size == self.expected_size)

    @property
    def status(self) -> str:
        if self.verified:
            return "verified"
        if self.actual_sha256 is None:
            return "missing"
        return "mismatch"


@dataclass(frozen=True)
class Verification:
    """Every file checked before the decision."""

    files: tuple[FileCheck, ...] = ()

    def find(self, role: str, name: str) -> FileCheck | None:
        for f in self.files:
            if f.role == role and f.name == name:
                return f
        return None


@dataclass(frozen=True)
class Subject:
    """A model version under decision: its record and the sha256 of the record file's bytes."""

    model: str
    version: str
    record: Mapping[str, Any]
    record_sha256: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.model}@{self.version}"


@dataclass(frozen=True)
class Promotion:
    """One change of what serves a service, as a library call or the PR flow sees it.

    ``from_version`` None means there is nothing to compare with: with ``mode="bootstrap"`` the
    first deployment of ``service`` (explicit, shown in the report); with any other mode the
    change rules fail for want of a baseline. ``from_model`` defaults to ``model`` (a service
    may switch models).
    """

    model: str
    to_version: str
    service: str | None = None
    from_version: str | None = None
    from_model: str | None = None
    canary_percent: float | None = None
    mode: Mode = "promotion"
    target: str | None = None

    @property
    def baseline_model(self) -> str:
        return self.from_model or self.model

    def to_dict(self) -> dict:
        return {
            "service": self.service, "model": self.model, "to_version": self.to_version,
            "from_model": self.baseline_model if self.from_version is not None else None,
            "from_version": self.from_version, "canary_percent": self.canary_percent,
            "mode": self.mode, "target": self.target,
        }


@dataclass(frozen=True)
class OnlineEvidence:
    """The online results of a promotion that makes ``service``'s canary its stable version.

    Given to :func:`mlreg.gates.evaluate.evaluate` only for a canary -> stable move: the policy's
    ``online`` rules are then judged (:func:`mlreg.history.online.check_online`) on ``results``
    (``mlreg/online/v1`` documents of the model, each with its ``path``); with no rules nothing is
    added. ``skipped`` names result files that were not used, with why (an invalid file).
    """

    service: str
    results: tuple[Mapping[str, Any], ...] = ()
    skipped: tuple[str, ...] = ()
