"""The portable SQL and the DuckDB engine: the same cells and answers as the numpy engine."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scalekit import KW, compare, frame, same_numbers

from mlreg.errors import InputError, NotFound
from mlreg.metrics import evaluate_predictions
from mlreg.scale import DIALECTS, Spec, Undecided, evaluate_at_scale, pass1_sql
from mlreg.scale.cells import plain
from mlreg.scale.engines import StreamEngine

duckdb = pytest.importorskip("duckdb", reason="the duckdb extra is not installed")

SPEC = Spec.build(label="label", scores={"candidate": "cand", "baseline": "base"}, weight="w",
                  slice_columns=["country", "device"], crosses=[("country", "device")],
                  group_columns=["age"], thresholds=[0.3, 0.5])


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return frame()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_pass1_sql_uses_only_portable_constructs(dialect: str) -> None:
    sql = pass1_sql(SPEC, "preds", dialect)
    assert "GROUP BY GROUPING SETS" in sql and "GROUPING(__v0)" in sql
    called = set(re.findall(r"\b([A-Z_][A-Z0-9_]*)\s*\(", sql))
    keywords = {"AS", "SETS", "NOT", "ELSE", "THEN", "FROM", "AND", "OR", "WHEN", "IN"}
    assert called - keywords <= {"CAST", "LN", "FLOOR", "LEAST", "GREATEST", "SUM", "MIN",
                                 "MAX", "COUNT", "GROUPING"}, called
    quote = "`" if dialect in ("spark", "bigquery") else '"'
    assert f"{quote}country{quote}" in sql and f"{quote}v_country{quote}" in sql
    assert ("FLOAT64" in sql) == (dialect == "bigquery")
    assert "schema_version" in sql and SPEC.params() in sql


def test_sql_refuses_column_names_it_cannot_quote() -> None:
    spec = Spec.build(label="label", scores={"m": 'bad"name'})
    with pytest.raises(InputError, match="plain identifiers"):
        pass1_sql(spec, "t")


def test_duckdb_cells_equal_numpy_cells(df) -> None:
    con = duckdb.connect()
    con.register("preds", df)
    sql_cells = con.sql(pass1_sql(SPEC, "preds")).to_arrow_table()
    np_cells = StreamEngine(df).pass1(SPEC)

    def canon(t):
        f = plain(t).to_pandas()
        keys = ["kind", "model", "slicing", "v_country", "v_device", "v_age", "bucket", "side",
                "bin", "side_b", "label"]
        f = f.sort_values(keys, na_position="last").reset_index(drop=True)
        return f[sorted(f.columns)]

    a, b = canon(sql_cells), canon(np_cells)
    assert len(a) == len(b) and list(a.columns) == list(b.columns)
    for c in a.columns:
        if a[c].dtype.kind == "f" or b[c].dtype.kind == "f":
            x, y = a[c].astype(float).to_numpy(), b[c].astype(float).to_numpy()
            assert np.allclose(np.nan_to_num(x, nan=-7), np.nan_to_num(y, nan=-7), rtol=1e-9,
                               atol=1e-9), c
        else:
            assert a[c].astype(str).tolist() == b[c].astype(str).tolist(), c


def test_duckdb_agrees_with_memory_and_stream(df) -> None:
    ref = evaluate_predictions(df, **KW)
    dk = evaluate_at_scale(df, engine="duckdb", **KW)
    assert compare(ref, dk) == []
    st = evaluate_at_scale(df, engine="stream", **KW)
    assert same_numbers(st, dk) == []
    assert dk.scale.engine == "duckdb" and dk.scale.passes == ["pass 1", "exact pass"]


def test_duckdb_refines_like_the_stream_engine(df) -> None:
    def refine(res):
        if res.overall.metrics["baseline"]["auc"].bound > 1e-7:
            return [Undecided("overall", "auc", ("baseline",))]
        return []

    kw = dict(KW, metrics=["auc"], group_columns=[], crosses=[], buckets=0.5, refine=refine)
    dk = evaluate_at_scale(df, engine="duckdb", **kw)
    st = evaluate_at_scale(df, engine="stream", **kw)
    assert same_numbers(st, dk) == []
    assert dk.overall.metrics["baseline"]["auc"].bound < 1e-7


def test_duckdb_reads_partitioned_parquet_with_a_memory_limit(df, tmp_path) -> None:
    d = tmp_path / "preds"
    for i in range(4):
        (d / f"day={i}").mkdir(parents=True)
        df.iloc[i * 5000:(i + 1) * 5000].to_parquet(d / f"day={i}" / "p.parquet", index=False)
    kw = dict(KW, slice_columns=["country", "day"], crosses=[], group_columns=[],
              metrics=["auc", "calibration_slope", "precision"])
    res = evaluate_at_scale(str(d), engine="duckdb", options={
        "memory_limit": "256MB", "spill_dir": str(tmp_path / "spill"), "threads": 2}, **kw)
    ref = evaluate_predictions(df.assign(day=np.repeat(np.arange(4), 5000)), **kw)
    assert compare(ref, res) == []


def test_duckdb_errors_are_ours(df, tmp_path) -> None:
    with pytest.raises(NotFound):
        evaluate_at_scale(str(tmp_path / "nothing.parquet"), engine="duckdb", **KW)
    bad = df.head(200).copy()
    bad.loc[3, "cand"] = 1.5
    bad.loc[4, "label"] = 3
    with pytest.raises(InputError, match=r"1 row\(s\): label not 0/1 \(baseline\).*1 row\(s\)"
                       r": score outside \[0, 1\] \(candidate\)"):
        evaluate_at_scale(bad, engine="duckdb", **dict(KW, group_columns=[]))


def test_emitted_sql_run_elsewhere_comes_back_as_cells(df, tmp_path, run_cli) -> None:
    """The warehouse path: emit the SQL, run it (here on DuckDB), feed the cells back."""
    path = tmp_path / "preds.parquet"
    df.to_parquet(path, index=False)
    args = ["--score", "cand", "--baseline", "base", "--weight", "w", "--slice", "country",
            "--metric", "auc", "--metric", "precision", "--metric", "log_loss"]
    out = run_cli("evaluate", "--emit-sql", "--dialect", "duckdb", "--table", "preds", *args)
    assert out.code == 0, out.err
    con = duckdb.connect()
    con.register("preds", df)
    cells = tmp_path / "cells.parquet"
    con.sql(out.out).to_arrow_table().to_pandas().to_parquet(cells, index=False)
    back = run_cli("evaluate", "--cells", str(cells), "--json", *args)
    direct = run_cli("evaluate", str(path), "--engine", "stream", "--json", *args)
    assert back.code == 0 and direct.code == 0, back.err + direct.err
    import json

    a, b = json.loads(back.out), json.loads(direct.out)
    va = a["slices"][0]["metrics"]["cand"]["precision"]["value"]
    assert va == pytest.approx(b["slices"][0]["metrics"]["cand"]["precision"]["value"], abs=1e-12)
    auc_a = a["slices"][0]["metrics"]["base"]["auc"]
    auc_b = b["slices"][0]["metrics"]["base"]["auc"]
    assert auc_a["value"] == pytest.approx(auc_b["value"], abs=1e-12)
    assert a["scale"]["engine"] == "cells" and a["scale"]["passes"] == ["pass 1"]
    text = run_cli("evaluate", "--cells", str(cells), *args)
    assert "engine cells" in text.out and "auc bound <=" in text.out
