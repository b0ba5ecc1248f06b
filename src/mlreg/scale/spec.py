"""What one scaled evaluation computes: the :class:`Spec` shared by every engine and the driver.

A spec fixes the *keys* of the cell table: the models (score columns), the label and weight, the
slicings (overall, slice columns, crosses, protected-group breakdowns) and the cut points that
make a cell's statistics exact (the decision thresholds and the ECE bin edges), plus the logit
histogram (equal-width buckets of ``logit(score)``, ``buckets`` per unit of logit, i.e. of
width ``1 / buckets``, over ``[-logit_range, logit_range]``; scores beyond fall into the two
edge buckets: :attr:`Spec.n_buckets` in all). Engines turn rows into cells for
a spec; the driver decodes cells for the same spec. :meth:`Spec.params` writes the parameters
that shape the cells into one string carried by every cell row, so a cell table produced
elsewhere (a warehouse) can be checked against the spec that reads it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlreg.errors import InputError

__all__ = [
    "Spec",
    "SlicingDef",
    "DEFAULT_BUCKETS",
    "DEFAULT_LOGIT_RANGE",
    "EPS",
    "SCHEMA_VERSION",
    "ENGINES",
    "DIALECTS",
]

#: engines by name (``memory`` is the in-memory engine of :mod:`mlreg.metrics`)
ENGINES = ("memory", "stream", "duckdb", "spark", "cells")
#: SQL dialects :func:`mlreg.scale.sql.pass1_sql` writes
DIALECTS = ("duckdb", "spark", "bigquery", "snowflake", "trino", "ansi")

#: Version of the cell table's layout (the ``schema_version`` column).
SCHEMA_VERSION = 1
#: Logit buckets per unit of logit (width 1/R): the worst AUC bound is about 0.075/R
#: (measured, independent of the row count), so R = 1000 keeps it under 1e-4.
DEFAULT_BUCKETS = 1000
#: Logit range covered by the buckets: scores in [1.1e-7, 1 - 1.1e-7] get their own buckets.
DEFAULT_LOGIT_RANGE = 16.0
#: Scores are clipped to [EPS, 1 - EPS] for logits and log loss (as the in-memory engine does).
EPS = 2.220446049250313e-16

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SlicingDef:
    """One slicing, in the order the in-memory engine lists them.

    ``kind`` is ``overall``, ``column``, ``cross`` or ``group``; ``columns`` the key columns in
    key order (a group slicing ends with its group column); ``parent`` the index of the slicing
    a group slicing breaks down (None otherwise).
    """

    index: int
    kind: str
    columns: tuple[str, ...]
    parent: int | None = None
    group: str | None = None


@dataclass(frozen=True)
class Spec:
    """Everything that shapes the cells (see the module docstring)."""

    label: str
    scores: tuple[tuple[str, str], ...]
    baseline: str | None = None
    weight: str | None = None
    slice_columns: tuple[str, ...] = ()
    crosses: tuple[tuple[str, ...], ...] = ()
    group_columns: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = (0.5,)
    n_bins: int = 10
    buckets: float = DEFAULT_BUCKETS
    logit_range: float = DEFAULT_LOGIT_RANGE

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(
        cls, *, label: str, scores: Mapping[str, str] | Sequence[str] | str,
        baseline: str | None = None, weight: str | None = None,
        slice_columns: Sequence[str] = (), crosses: Sequence[Sequence[str]] = (),
        group_columns: Sequence[str] = (), thresholds: Sequence[float] = (0.5,),
        n_bins: int = 10, buckets: float = DEFAULT_BUCKETS,
        logit_range: float = DEFAULT_LOGIT_RANGE,
    ) -> Spec:
        """Validate and normalise; raises :class:`mlreg.errors.InputError`."""
        if isinstance(scores, str):
            pairs = ((scores, scores),)
        elif isinstance(scores, Mapping):
            pairs = tuple((str(k), str(v)) for k, v in scores.items())
        else:
            pairs = tuple((str(c), str(c)) for c in scores)
        if not pairs:
            raise InputError("at least one score column is needed")
        models = [m for m, _ in pairs]
        if len(set(models)) != len(models):
            raise InputError("two models share a name")
        if baseline is None and "baseline" in models and len(models) > 1:
            baseline = "baseline"
        if baseline is not None and baseline not in models:
            raise InputError(f"baseline {baseline!r} is not one of the models ({', '.join(models)})")
        if len(set(slice_columns)) != len(slice_columns):
            raise InputError("slice_columns repeats a column")
        norm_crosses = []
        for cr in crosses:
            cr = tuple(cr)
            if len(cr) < 2:
                raise InputError(f"a cross needs at least two columns, got {list(cr)}")
            if len(set(cr)) != len(cr):
                raise InputError(f"a cross repeats a column: {list(cr)}")
            norm_crosses.append(cr)
        if not (isinstance(buckets, (int, float)) and math.isfinite(buckets)
                and 0.01 <= buckets <= 100_000):
            raise InputError("buckets (per unit of logit) must lie in [0.01, 100000]")
        if not (math.isfinite(logit_range) and 1.0 <= logit_range <= 40.0):
            raise InputError("logit_range must lie in [1, 40]")
        if 2 * logit_range * buckets > 50_000_000:
            raise InputError("buckets x logit_range makes more than 25,000,000 buckets")
        if not (isinstance(n_bins, int) and 1 <= n_bins <= 1000):
            raise InputError("n_bins must be an integer in [1, 1000]")
        ths = tuple(sorted({float(t) for t in thresholds}))
        if any(not (0.0 <= t <= 1.0) for t in ths):
            raise InputError("thresholds must lie in [0, 1]")
        spec = cls(label=str(label), scores=pairs, baseline=baseline,
                   weight=None if weight is None else str(weight),
                   slice_columns=tuple(map(str, slice_columns)), crosses=tuple(norm_crosses),
                   group_columns=tuple(map(str, group_columns)), thresholds=ths,
                   n_bins=int(n_bins),
                   buckets=int(buckets) if float(buckets).is_integer() else float(buckets),
                   logit_range=float(logit_range))
        return spec

    # ------------------------------------------------------------------ derived

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m for m, _ in self.scores)

    @property
    def others(self) -> tuple[str, ...]:
        """Models compared with the baseline (every model but the baseline)."""
        if self.baseline is None:
            return ()
        return tuple(m for m in self.models if m != self.baseline)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Every column that keys a slice or a group, each once, in a fixed order."""
        cols = list(self.slice_columns)
        cols += [c for cr in self.crosses for c in cr]
        cols += list(self.group_columns)
        return tuple(dict.fromkeys(cols))

    @property
    def input_columns(self) -> tuple[str, ...]:
        cols = [self.label, *(c for _, c in self.scores)]
        if self.weight:
            cols.append(self.weight)
        cols += self.key_columns
        return tuple(dict.fromkeys(cols))

    @property
    def n_buckets(self) -> int:
        """Buckets in all: ``2 L R`` (at least 2)."""
        return max(2, int(round(2.0 * self.logit_range * self.buckets)))

    @property
    def ext_size(self) -> int:
        """Number of distinct ordered units: bucket + side + bin spans
        ``[0, n_buckets + T + n_bins - 1)``."""
        return self.n_buckets + len(self.thresholds) + self.n_bins - 1

    @property
    def bucket_scale(self) -> float:
        """``n_buckets / (2 L)``: a logit ``x`` falls in bucket ``floor((x + L) * scale)``
        (clipped to ``[0, n_buckets - 1]``)."""
        return self.n_buckets / (2.0 * self.logit_range)

    def slicings(self) -> list[SlicingDef]:
        """Overall, every slice column, every cross, then (when there are group columns) every
        one of those broken down by every group column: the in-memory engine's order."""
        out = [SlicingDef(0, "overall", ())]
        for c in self.slice_columns:
            out.append(SlicingDef(len(out), "column", (c,)))
        for cr in self.crosses:
            out.append(SlicingDef(len(out), "cross", tuple(cr)))
        base = list(out)
        for sl in base:
            for g in self.group_columns:
                out.append(SlicingDef(len(out), "group", sl.columns + (g,), sl.index, g))
        return out

    def grouping_set(self, columns: Sequence[str]) -> tuple[str, ...]:
        """The distinct columns of a slicing in :attr:`key_columns` order (its cell table key)."""
        want = set(columns)
        return tuple(c for c in self.key_columns if c in want)

    def grouping_sets(self) -> list[tuple[str, ...]]:
        """Every distinct grouping set the cell table holds (the overall set ``()`` first)."""
        return list(dict.fromkeys(self.grouping_set(s.columns) for s in self.slicings()))

    # ------------------------------------------------------------------ params string

    def params(self) -> str:
        """The parameters that shape the cells, as carried by every cell row."""
        ths = ",".join(repr(t) for t in self.thresholds)
        return (f"buckets={self.buckets!r};logit_range={self.logit_range!r};n_bins={self.n_bins};"
                f"thresholds={ths}")

    def check_params(self, params: str) -> None:
        """InputError unless a cell table's params string matches this spec."""
        if params != self.params():
            raise InputError(
                f"the cell table was computed with {params!r}, this evaluation needs "
                f"{self.params()!r} (buckets, logit range, ECE bins and thresholds must agree)")

    @staticmethod
    def parse_params(params: str) -> dict[str, object]:
        out: dict[str, object] = {}
        try:
            for part in params.split(";"):
                k, _, v = part.partition("=")
                if k == "thresholds":
                    out[k] = tuple(float(t) for t in v.split(",") if t)
                elif k == "n_bins":
                    out[k] = int(v)
                elif k in ("buckets", "logit_range"):
                    out[k] = float(v)
        except ValueError:
            raise InputError(f"cannot parse cell table params {params!r}") from None
        return out


def check_identifier(name: str, role: str) -> str:
    """Column names go into generated SQL: keep them to plain identifiers."""
    if not _IDENT.match(name):
        raise InputError(f"{role} column {name!r}: the SQL engines need plain identifiers "
                         "([A-Za-z_][A-Za-z0-9_]*); rename the column or use the stream engine")
    return name
