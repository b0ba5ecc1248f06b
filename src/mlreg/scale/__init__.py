"""Evaluation at any scale: mergeable slice aggregates, bounded AUC, out-of-core and SQL engines.

The in-memory engine (:mod:`mlreg.metrics`) stays the default. This package computes the same
metrics for data that does not fit in memory or lives in a warehouse / data lake, in passes
whose results are small:

* **pass 1** turns rows into a *cell table* (:mod:`mlreg.scale.cells`): per model, slicing,
  slice, logit bucket, threshold side, ECE bin and label, the counts and sums every metric
  needs, plus the min/max score that proves a bucket exact. Cells of disjoint row sets merge
  by adding, so any engine can compute them as a GROUP BY over partitions;
* the **driver** (:func:`evaluate_at_scale`) merges and decides with one code path for every
  engine: exact metrics from the sums, ROC AUC / average precision from the histogram with a
  rigorous bound (:mod:`mlreg.scale.compute`), the calibration fit on bucket means;
* an **exact pass** polishes the calibration fit with one Newton step over the rows and adds the
  paired moments; a **refinement** pass splits the AUC buckets of just the slices whose gate
  verdict the bound leaves open (:mod:`mlreg.scale.passes`, :mod:`mlreg.scale.gating`).

Engines (:mod:`mlreg.scale.engines`), chosen by name: ``stream`` (numpy over Parquet row
batches, local or object store, memory bounded by the cells), ``duckdb`` (embedded, memory limit
and spill directory), ``spark`` (PySpark, the session the environment provides), ``cells`` (a
cell table produced elsewhere from :func:`pass1_sql`). DuckDB and PySpark are optional extras::

    from mlreg.scale import evaluate_at_scale

    res = evaluate_at_scale("s3://bucket/eval/day=2026-11-*/", engine="duckdb",
                            label="label", scores={"candidate": "s_new", "baseline": "s_old"},
                            slice_columns=["country"], metrics=["auc", "calibration_slope"])
    res.overall.metrics["candidate"]["auc"]        # BoundedMetricValue(value, lo, hi, ...,
                                                   #   bound=7e-06, exact=False)
    res.scale.describe()                            # engine, histogram, passes, bounds

Results are :class:`mlreg.metrics.EvaluationResult` objects (values carry ``bound``, ``exact``
and ``note``; see :mod:`mlreg.scale.results`), so the gates consume them unchanged.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "evaluate_at_scale": "driver", "Undecided": "driver", "SCALE_METRICS": "driver",
    "Spec": "spec", "DEFAULT_BUCKETS": "spec", "DEFAULT_LOGIT_RANGE": "spec",
    "SCHEMA_VERSION": "spec", "ENGINES": "spec", "DIALECTS": "spec",
    "Engine": "engines", "StreamEngine": "engines", "CellsEngine": "engines",
    "EngineUnavailable": "engines", "open_engine": "engines", "install_hint": "engines",
    "pass1_sql": "sql", "decode_cells": "cells", "merge_cells": "cells",
    "read_cells": "cells", "write_cells": "cells", "BoundedMetricValue": "results",
    "BoundedPairedDelta": "results", "BoundedGapValue": "results", "ScaledResult": "results",
    "ScaleInfo": "results",
}


def __getattr__(name: str) -> Any:
    # lazy: the CLI imports mlreg.scale.cli for its options without numpy/pandas
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlreg.scale' has no attribute {name!r}")
    return getattr(import_module(f"mlreg.scale.{module}"), name)


__all__ = [
    "evaluate_at_scale",
    "Undecided",
    "SCALE_METRICS",
    "Spec",
    "DEFAULT_BUCKETS",
    "DEFAULT_LOGIT_RANGE",
    "SCHEMA_VERSION",
    "Engine",
    "StreamEngine",
    "CellsEngine",
    "EngineUnavailable",
    "ENGINES",
    "open_engine",
    "install_hint",
    "pass1_sql",
    "DIALECTS",
    "decode_cells",
    "merge_cells",
    "read_cells",
    "write_cells",
    "BoundedMetricValue",
    "BoundedPairedDelta",
    "BoundedGapValue",
    "ScaledResult",
    "ScaleInfo",
]
