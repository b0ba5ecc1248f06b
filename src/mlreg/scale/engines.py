"""Engines: where the rows are read. One small interface, four implementations.

An engine answers three questions about a table of predictions, each as a small result:

* :meth:`Engine.pass1` - the cell table of a :class:`~mlreg.scale.spec.Spec` (pass 1);
* :meth:`Engine.pass2` - the exact pass (:class:`~mlreg.scale.passes.Pass2Request`);
* :meth:`Engine.refine` - sub-cells of undecided AUC units
  (:class:`~mlreg.scale.passes.RefineRequest`).

Implementations: :class:`StreamEngine` (numpy over Arrow record batches of Parquet, a pandas
DataFrame or an Arrow table; memory bounded by the cells), :class:`~mlreg.scale.duckdb_engine.
DuckDBEngine` and :class:`~mlreg.scale.spark_engine.SparkEngine` (the portable SQL of
:mod:`mlreg.scale.sql`), and :class:`CellsEngine` (a cell table produced elsewhere, e.g. by a
warehouse running the emitted SQL: pass 1 only; undecided verdicts then fail).
:func:`open_engine` builds one by name.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from mlreg.errors import DependencyError, InputError
from mlreg.scale.aggregates import CellAccumulator
from mlreg.scale.compute import Pass2Sums
from mlreg.scale.passes import NumpyPasses, Pass2Request, RefineRequest
from mlreg.scale.rows import DEFAULT_BATCH_ROWS, iter_batches
from mlreg.scale.spec import ENGINES, Spec

__all__ = ["Engine", "StreamEngine", "CellsEngine", "open_engine", "ENGINES", "install_hint",
           "EngineUnavailable"]



class EngineUnavailable(DependencyError):
    """An optional engine is not installed (or cannot start); the message says how to fix it."""


def install_hint(engine: str) -> str:
    extra = {"duckdb": "duckdb", "spark": "spark"}.get(engine, engine)
    return f"pip install 'mlreg[{extra}]'"


@runtime_checkable
class Engine(Protocol):
    name: str

    def pass1(self, spec: Spec) -> Any: ...

    def pass2(self, spec: Spec, request: Pass2Request) -> dict[tuple[int, str], Pass2Sums]: ...

    def refine(self, spec: Spec, request: RefineRequest) -> Any: ...

    def close(self) -> None: ...


class StreamEngine:
    """Numpy over record batches: a Parquet file, directory, glob or list of files (local or any
    fsspec URI), a pandas DataFrame or an Arrow table. Each pass reads the rows once; memory
    holds one batch plus the cells."""

    name = "stream"
    supports_exact = True

    def __init__(self, source: Any, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                 storage_options: dict | None = None, progress: Any = None) -> None:
        self.source = source
        self.batch_rows = int(batch_rows)
        self.storage_options = storage_options
        self.progress = progress

    def _batches(self, spec: Spec, label: str):
        from mlreg.scale.progress import rows_progress

        batches, total = iter_batches(self.source, list(spec.input_columns), self.batch_rows,
                                      self.storage_options)
        bar = rows_progress(self.progress, label, total)
        try:
            for b in batches:
                yield b
                bar.update(b.num_rows)
        finally:
            bar.close()

    def pass1(self, spec: Spec) -> Any:
        acc = CellAccumulator(spec)
        for b in self._batches(spec, "pass 1"):
            acc.add(b)
        if acc.encoder.rows == 0:
            raise InputError("the predictions hold no rows")
        return acc.table()

    def pass2(self, spec: Spec, request: Pass2Request) -> dict[tuple[int, str], Pass2Sums]:
        return NumpyPasses(spec).pass2(self._batches(spec, "exact pass"), request)

    def refine(self, spec: Spec, request: RefineRequest) -> Any:
        return NumpyPasses(spec).refine(self._batches(spec, "refine"), request)

    def close(self) -> None:
        pass


class CellsEngine:
    """A cell table computed elsewhere: pass 1 only."""

    name = "cells"
    supports_exact = False

    def __init__(self, cells: Any) -> None:
        self.cells = cells

    def pass1(self, spec: Spec) -> Any:
        if isinstance(self.cells, str):
            from mlreg.scale.cells import read_cells

            return read_cells(self.cells)
        return self.cells

    def pass2(self, spec: Spec, request: Pass2Request) -> dict[tuple[int, str], Pass2Sums]:
        raise InputError("a cell table cannot answer the exact pass (no rows)")

    def refine(self, spec: Spec, request: RefineRequest) -> Any:
        raise InputError("a cell table cannot refine AUC buckets (no rows)")

    def close(self) -> None:
        pass


def open_engine(name: str, source: Any, options: dict | None = None) -> Engine:
    """The engine ``name`` over ``source`` (a path/URI/DataFrame/Arrow table; for ``cells`` a
    cell table or its path). ``options`` come from ``mlreg.yaml``'s ``evaluation`` block:
    ``memory_limit``, ``spill_dir``, ``threads``, ``duckdb_setup`` (DuckDB), ``batch_rows``,
    ``storage_options``, ``progress`` (stream), ``spark_conf``, ``spark_staging`` (Spark)."""
    options = dict(options or {})
    if name == "stream":
        return StreamEngine(source, batch_rows=int(options.get("batch_rows", DEFAULT_BATCH_ROWS)),
                            storage_options=options.get("storage_options"),
                            progress=options.get("progress"))
    if name == "duckdb":
        from mlreg.scale.duckdb_engine import DuckDBEngine

        return DuckDBEngine(source, memory_limit=options.get("memory_limit"),
                            spill_dir=options.get("spill_dir"), threads=options.get("threads"),
                            storage_options=options.get("storage_options"),
                            setup=options.get("duckdb_setup"))
    if name == "spark":
        from mlreg.scale.spark_engine import SparkEngine

        return SparkEngine(source, conf=options.get("spark_conf"),
                           staging=options.get("spark_staging"))
    if name == "cells":
        return CellsEngine(source)
    raise InputError(f"unknown engine {name!r} (one of {', '.join(ENGINES)})")
