"""Apache Spark: the portable SQL on the cluster the environment provides.

``SparkEngine(source)`` uses ``SparkSession.builder.getOrCreate()``: under ``spark-submit``,
YARN, Kubernetes or Databricks that is the session those set up (master, executors, object
store credentials), so nothing here names a cluster. ``conf`` (``evaluation.spark_conf`` in
``mlreg.yaml``) is applied to the builder and only takes effect when this call creates the
session (locally, e.g. ``{"spark.master": "local[4]"}``).

``source`` is a Parquet path, directory, glob or list of them, read by Spark itself (``s3a://``,
``gs://``, ``abfss://``, ``dbfs:/`` as the cluster is configured), or a pandas DataFrame / Arrow
table, which is written to a temporary Parquet file first (Spark reads files; converting a
large pandas frame through the driver is slower and pyspark 4 warns about pandas >= 3).
Parameter tables of the later passes travel the same way. On a remote cluster local temp
files are not visible to the executors: ``staging`` (``evaluation.spark_staging``, e.g.
``s3a://bucket/tmp/mlreg``) puts them where the cluster reads (written through fsspec).
Results come back through Arrow.

The optional dependency is ``pip install 'mlreg[spark]'`` (and a Java 17+ runtime).
"""

from __future__ import annotations

import os
import shutil
import tempfile
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

__all__ = ["SparkEngine", "spark_session"]


def spark_session(conf: dict | None = None) -> Any:
    """The active SparkSession, or a new one built with ``conf``."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineUnavailable(
            f"the spark engine needs pyspark: {install_hint('spark')} (and Java 17+)") from None
    builder = SparkSession.builder.appName("mlreg-evaluate")
    for k, v in (conf or {}).items():
        builder = builder.config(str(k), str(v))
    try:
        return builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - py4j/JVM start-up failures have many types
        raise EngineUnavailable(f"Spark could not start: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''} "
                                "(is Java 17+ installed and JAVA_HOME set?)") from None


class SparkEngine:
    name = "spark"
    supports_exact = True

    def __init__(self, source: Any, *, conf: dict | None = None, session: Any = None,
                 staging: str | None = None) -> None:
        self.spark = session or spark_session(conf)
        if staging:
            import uuid

            self._tmp = staging.rstrip("/") + f"/mlreg-{uuid.uuid4().hex}"
        else:
            self._tmp = tempfile.mkdtemp(prefix="mlreg-spark-")
        self._remote = bool(staging)
        self._n = 0
        self.table = self._view(source, "__mlreg_src")

    def _temp_parquet(self, table: Any) -> str:
        import pyarrow.parquet as pq

        self._n += 1
        path = f"{self._tmp}/t{self._n}.parquet"
        if self._remote:
            import fsspec

            with fsspec.open(path, "wb") as fh:
                pq.write_table(table, fh)
        else:
            pq.write_table(table, path)
        return path

    def _view(self, source: Any, name: str) -> str:
        import pyarrow as pa

        try:
            import pandas as pd

            if isinstance(source, pd.DataFrame):
                source = pa.Table.from_pandas(source, preserve_index=False)
        except ImportError:  # pragma: no cover
            pass
        if isinstance(source, pa.Table):
            paths = [self._temp_parquet(source)]
        else:
            paths = [str(source)] if isinstance(source, (str, os.PathLike)) else \
                [str(p) for p in source]
            for p in paths:
                if "://" not in p and not p.startswith("dbfs:") and \
                        not any(ch in p for ch in "*?[") and not os.path.exists(p):
                    raise NotFound(f"{p}: no such file or directory")
        try:
            df = self.spark.read.parquet(*paths)
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc) from None
        df.createOrReplaceTempView(name)
        return name

    def _register(self, table: Any, name: str) -> None:
        self.spark.read.parquet(self._temp_parquet(table)).createOrReplaceTempView(name)

    @staticmethod
    def _translate(exc: Exception) -> Exception:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = type(exc).__name__
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            return NotFound(f"Spark: {text}")
        if "AnalysisException" in kind or "UNRESOLVED_COLUMN" in str(exc) or \
                "ParseException" in kind:
            return InputError(f"Spark refused the query: {text}")
        if "OutOfMemory" in str(exc):
            return DependencyError(f"Spark ran out of memory: {text} (raise "
                                   "spark.driver.memory / executor memory)")
        return DependencyError(f"Spark failed: {kind}: {text}")

    def _run(self, sql: str) -> Any:
        import pyarrow as pa

        try:
            df = self.spark.sql(sql)
            if hasattr(df, "toArrow"):
                return df.toArrow()
            return pa.Table.from_pandas(df.toPandas(), preserve_index=False)
        except Exception as exc:  # noqa: BLE001 - py4j wraps every JVM error
            raise self._translate(exc) from None

    def pass1(self, spec: Spec) -> Any:
        return self._run(pass1_sql(spec, self.table, "spark"))

    def pass2(self, spec: Spec, request: Pass2Request) -> dict[tuple[int, str], Pass2Sums]:
        out: dict[tuple[int, str], Pass2Sums] = {}
        for sp in request.slicings:
            self._register(theta_table(spec, sp), "__mlreg_theta")
            places = {}
            for m in sp.place:
                name = f"__mlreg_place_{spec.models.index(m)}"
                self._register(place_table(spec, sp, m), name)
                places[m] = name
            auc = tuple(m for m in request.auc_cross if m in places and spec.baseline in places)
            sql = pass2_sql(spec, self.table, sp.columns, "__mlreg_theta", request.newton,
                            request.sandwich, auc, places, "spark")
            parse_pass2(spec, sp, request, self._run(sql), out)
        return out

    def refine(self, spec: Spec, request: RefineRequest) -> Any:
        parts = []
        for (_, model), idx in group_items(request.items).items():
            columns = request.items[idx[0]].columns
            self._register(items_table(request.items, idx), "__mlreg_items")
            parts.append(self._run(refine_sql(spec, self.table, columns, model, "__mlreg_items",
                                              "spark")))
        return sub_table(parts)

    def close(self) -> None:
        # the session belongs to the environment (spark-submit, a notebook): leave it running
        if self._remote:
            try:
                import fsspec

                fs, path = fsspec.core.url_to_fs(self._tmp)
                fs.rm(path, recursive=True)
            except Exception:  # noqa: BLE001 - cleaning up staging is best effort
                pass
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)
