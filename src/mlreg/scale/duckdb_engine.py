"""DuckDB: the portable SQL on an embedded engine, larger than memory on one machine.

``DuckDBEngine(source, memory_limit="2GB", spill_dir="/mnt/spill")`` opens an in-process
database with that memory limit and spill directory (DuckDB's ``temp_directory``: hash
aggregates that do not fit spill there). ``source`` is a Parquet file, directory (read
recursively, hive partitions as columns), glob, list of files, or a pandas DataFrame / Arrow
table. Object storage (``s3://``, ``gs://``, ``https://``) goes through DuckDB's ``httpfs``
extension; credentials come from a DuckDB secret created by ``evaluation.duckdb_setup``
statements (see ``docs/scale.md``). The optional dependency is ``pip install 'mlreg[duckdb]'``.

DuckDB errors are translated here: out of memory -> :class:`mlreg.errors.DependencyError` with
what to change; a missing file -> NotFound; anything about the query's input -> InputError.
"""

from __future__ import annotations

import os
from typing import Any

from mlreg.errors import DependencyError, InputError, NotFound
from mlreg.scale.compute import Pass2Sums
from mlreg.scale.engines import EngineUnavailable, install_hint
from mlreg.scale.passes import Pass2Request, RefineRequest
from mlreg.scale.spec import Spec
from mlreg.scale.sql import pass1_sql, pass2_sql, refine_sql
from mlreg.scale.sqlengine import (
    group_items,
    items_table,
    parse_pass2,
    place_table,
    sub_table,
    theta_table,
)

__all__ = ["DuckDBEngine", "parquet_scan"]

_REMOTE = ("s3://", "s3a://", "gs://", "gcs://", "http://", "https://", "az://", "abfss://")


def _import():
    try:
        import duckdb
    except ImportError:
        raise EngineUnavailable(
            f"the duckdb engine needs the duckdb package: {install_hint('duckdb')}") from None
    return duckdb


def parquet_scan(source: Any) -> str:
    """``read_parquet(...)`` over a path, directory, glob or list of them."""
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    globs = []
    for p in map(str, paths):
        if not p.startswith(_REMOTE) and os.path.isdir(p):
            p = p.rstrip("/") + "/**/*.parquet"
        elif p.startswith(_REMOTE) and p.endswith("/"):
            p = p + "**/*.parquet"
        globs.append("'" + p.replace("'", "''") + "'")
    return f"read_parquet([{', '.join(globs)}], hive_partitioning = true, union_by_name = true)"


class DuckDBEngine:
    name = "duckdb"
    supports_exact = True

    def __init__(self, source: Any, *, memory_limit: str | None = None,
                 spill_dir: str | None = None, threads: int | None = None,
                 storage_options: dict | None = None, setup: list[str] | None = None) -> None:
        duckdb = _import()
        config: dict[str, Any] = {}
        if memory_limit:
            config["memory_limit"] = str(memory_limit)
        if spill_dir:
            os.makedirs(spill_dir, exist_ok=True)
            config["temp_directory"] = str(spill_dir)
        if threads:
            config["threads"] = int(threads)
        self._duckdb = duckdb
        self.con = duckdb.connect(database=":memory:", config=config)
        # preserve_insertion_order=false lets large aggregates stream instead of buffering
        self.con.execute("SET preserve_insertion_order = false")
        self.memory_limit = memory_limit
        self.setup = list(setup or [])
        self.table = self._source(source)

    def _source(self, source: Any) -> str:
        import pyarrow as pa

        try:
            import pandas as pd

            frame = isinstance(source, pd.DataFrame)
        except ImportError:  # pragma: no cover
            frame = False
        if frame or isinstance(source, pa.Table):
            self.con.register("__mlreg_src", source)
            return "__mlreg_src"
        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        if any(str(p).startswith(_REMOTE) for p in paths):
            try:
                self.con.execute("INSTALL httpfs")
                self.con.execute("LOAD httpfs")
                # credentials: evaluation.duckdb_setup, e.g. "CREATE SECRET (TYPE s3,
                # PROVIDER credential_chain)" - the statements run before the first query
                for stmt in self.setup:
                    self.con.execute(stmt)
            except self._duckdb.Error as exc:
                raise DependencyError(f"DuckDB cannot prepare object storage access "
                                      f"(httpfs, evaluation.duckdb_setup): {exc}") from None
        else:
            for p in paths:
                p = str(p)
                if not any(ch in p for ch in "*?[") and not os.path.exists(p):
                    raise NotFound(f"{p}: no such file or directory")
        return parquet_scan(source)

    def _run(self, sql: str) -> Any:
        duckdb = self._duckdb
        try:
            rel = self.con.sql(sql)
            fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
            return fetch()
        except duckdb.OutOfMemoryException as exc:
            raise DependencyError(
                f"DuckDB ran out of memory (memory_limit {self.memory_limit or 'default'}): "
                f"set evaluation.spill_dir to a disk with room, or raise evaluation.memory_limit "
                f"({str(exc).splitlines()[0]})") from None
        except duckdb.IOException as exc:
            msg = str(exc).splitlines()[0]
            if "No files found" in msg or "No such file" in msg:
                raise NotFound(f"DuckDB: {msg}") from None
            raise DependencyError(f"DuckDB could not read the input: {msg}") from None
        except (duckdb.BinderException, duckdb.ConversionException,
                duckdb.InvalidInputException, duckdb.CatalogException) as exc:
            raise InputError(f"DuckDB refused the predictions: {str(exc).splitlines()[0]}") \
                from None

    def pass1(self, spec: Spec) -> Any:
        return self._run(pass1_sql(spec, self.table, "duckdb"))

    def pass2(self, spec: Spec, request: Pass2Request) -> dict[tuple[int, str], Pass2Sums]:
        out: dict[tuple[int, str], Pass2Sums] = {}
        for sp in request.slicings:
            self.con.register("__mlreg_theta", theta_table(spec, sp))
            places = {}
            for m in sp.place:
                name = f"__mlreg_place_{spec.models.index(m)}"
                self.con.register(name, place_table(spec, sp, m))
                places[m] = name
            auc = tuple(m for m in request.auc_cross if m in places and spec.baseline in places)
            sql = pass2_sql(spec, self.table, sp.columns, "__mlreg_theta", request.newton,
                            request.sandwich, auc, places, "duckdb")
            parse_pass2(spec, sp, request, self._run(sql), out)
        return out

    def refine(self, spec: Spec, request: RefineRequest) -> Any:
        parts = []
        for (_, model), idx in group_items(request.items).items():
            columns = request.items[idx[0]].columns
            self.con.register("__mlreg_items", items_table(request.items, idx))
            parts.append(self._run(refine_sql(spec, self.table, columns, model,
                                              "__mlreg_items", "duckdb")))
        return sub_table(parts)

    def close(self) -> None:
        try:
            self.con.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
