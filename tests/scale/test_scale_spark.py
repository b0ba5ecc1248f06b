"""The Spark engine on ``local[2]``: the same cells, numbers and refinements as numpy/DuckDB."""

from __future__ import annotations

import os
import shutil
import sys

import pandas as pd
import pytest
from scalekit import KW, compare, frame, same_numbers

from mlreg.metrics import evaluate_predictions
from mlreg.scale import Undecided, evaluate_at_scale

pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'mlreg[spark]')")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs a Java runtime (java on PATH or JAVA_HOME)", allow_module_level=True)

# pyspark 4 warns that it does not fully support pandas >= 3; results come back through Arrow
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for every Spark test (start-up is the expensive part)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from mlreg.scale.spark_engine import spark_session

    session = spark_session({
        "spark.master": "local[2]", "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false", "spark.sql.shuffle.partitions": "2",
        # tiny tables: compiling whole-stage code costs more than it saves
        "spark.sql.codegen.wholeStage": "false", "spark.driver.memory": "1g"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return frame(n=10_000, seed=2)


def test_spark_agrees_with_memory_and_stream(spark, df) -> None:
    sp = evaluate_at_scale(df, engine="spark", **KW)
    assert sp.scale.engine == "spark" and sp.scale.passes == ["pass 1", "exact pass"]
    assert compare(evaluate_predictions(df, **KW), sp) == []
    assert same_numbers(evaluate_at_scale(df, engine="stream", **KW), sp) == []


def test_spark_refines_and_reads_parquet(spark, df, tmp_path) -> None:
    path = tmp_path / "preds.parquet"
    df.to_parquet(path, index=False)

    def refine(res):
        if res.overall.metrics["baseline"]["auc"].bound > 1e-7:
            return [Undecided("overall", "auc", ("baseline",))]
        return []

    kw = dict(KW, metrics=["auc", "precision"], slice_columns=["country"], crosses=[],
              group_columns=[], buckets=0.5, refine=refine)
    sp = evaluate_at_scale(str(path), engine="spark", **kw)
    st = evaluate_at_scale(str(path), engine="stream", **kw)
    assert same_numbers(st, sp) == []
    assert "refine" in sp.scale.passes
    assert sp.overall.metrics["baseline"]["auc"].bound < 1e-7
