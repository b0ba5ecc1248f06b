"""The scale engines behind ``mlreg evaluate`` and ``mlreg gate``: options defined once, one
library call. The commands parse and render; this module picks the engine and runs it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from mlreg.errors import InputError
from mlreg.scale.spec import DIALECTS, ENGINES

__all__ = ["engine_option", "cells_option", "scaled_evaluate", "ENGINES", "DIALECTS"]

engine_option = click.option(
    "--engine", type=click.Choice(ENGINES), default=None,
    help="Metrics engine: memory (the default; mlreg gate reads evaluation.engine in "
    "mlreg.yaml), stream (Parquet row batches, bounded memory), duckdb, spark (optional "
    "extras), cells (a cell table, --cells). See docs/scale.md.")
cells_option = click.option(
    "--cells", "cells", default=None, metavar="FILE.parquet",
    help="A cell table produced elsewhere (e.g. a warehouse running --emit-sql); implies "
    "--engine cells.")


def scaled_evaluate(predictions: str | None, *, engine: str | None, cells: str | None,
                    emit_sql: bool, dialect: str, table: str | None, buckets: float | None,
                    label: str, scores: Sequence[str], baseline: str | None,
                    weight: str | None, slice_columns: Sequence[str],
                    crosses: Sequence[Sequence[str]], group_columns: Sequence[str],
                    metrics: Sequence[str] | None, threshold: float,
                    options: dict | None = None) -> Any:
    """The emitted pass-1 SQL (a str) or a :class:`~mlreg.scale.results.ScaledResult`."""
    from mlreg.metrics import DEFAULT_METRICS, resolve_metric
    from mlreg.scale.driver import evaluate_at_scale
    from mlreg.scale.spec import DEFAULT_BUCKETS, Spec
    from mlreg.scale.sql import pass1_sql

    R = buckets if buckets else DEFAULT_BUCKETS
    if emit_sql:
        names = list(metrics) if metrics else list(DEFAULT_METRICS)
        ths = {resolve_metric(m, threshold=threshold).threshold for m in names}
        spec = Spec.build(label=label, scores=list(scores), baseline=baseline, weight=weight,
                          slice_columns=slice_columns, crosses=crosses,
                          group_columns=group_columns, buckets=R,
                          thresholds=[t for t in ths if t is not None])
        if table is None:
            if predictions is None:
                raise InputError("--emit-sql needs --table NAME (or a PREDICTIONS path)")
            if dialect == "duckdb":
                from mlreg.scale.duckdb_engine import parquet_scan

                table = parquet_scan(predictions)
            else:
                table = predictions
        return pass1_sql(spec, table, dialect)
    if cells:
        engine, source = "cells", cells
    else:
        engine = engine or "stream"
        if predictions is None:
            raise InputError("name the PREDICTIONS (or --cells FILE.parquet)")
        source = predictions
    if engine == "memory":
        raise InputError("internal: the memory engine is not a scale engine")
    return evaluate_at_scale(
        source, engine=engine, label=label, scores=list(scores), baseline=baseline,
        weight=weight, slice_columns=list(slice_columns), crosses=[tuple(c) for c in crosses],
        group_columns=list(group_columns), metrics=list(metrics) or None, threshold=threshold,
        buckets=R, options=options)
