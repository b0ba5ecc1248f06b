"""The portable SQL: pass 1 written once (``GROUPING SETS``, ``FLOOR``, ``LN``), for any engine.

:func:`pass1_sql` returns one SELECT that turns a predictions table into the cell table of
:mod:`mlreg.scale.cells` (schema version, params, per model, slicing, slice, logit bucket,
threshold side, ECE bin and label: counts and sums, min/max score per cell). It uses only
``CAST``, ``CASE``, ``LN``, ``FLOOR``, ``GREATEST``/``LEAST``, ``UNION ALL`` and ``GROUP BY
GROUPING SETS`` with ``GROUPING(column)``, so it runs on DuckDB, Spark SQL, BigQuery, Snowflake
and Trino; the dialects differ only in identifier quoting and type names. Every row-level
expression mirrors :func:`mlreg.scale.rows.features` operation by operation.

Run it where the data lives, save the result as Parquet, and hand it back::

    mlreg evaluate --emit-sql --dialect bigquery --table proj.ds.preds ... > pass1.sql
    # run pass1.sql in the warehouse, export the result to cells.parquet
    mlreg evaluate --cells cells.parquet ...          # same flags as for the SQL

:func:`pass2_sql` and :func:`refine_sql` write the later passes for one slicing at a time
(they join small parameter tables the driver registers: per-slice fits, AUC placements,
units to refine); the embedded engines run them, warehouses stop at pass 1.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlreg.errors import InputError
from mlreg.scale.cells import CELL_COLUMNS, PAIR_COLUMNS, value_column
from mlreg.scale.spec import DIALECTS, EPS, Spec, check_identifier

__all__ = ["DIALECTS", "pass1_sql", "pass2_sql", "refine_sql", "Dialect"]



class Dialect:
    def __init__(self, name: str) -> None:
        if name not in DIALECTS:
            raise InputError(f"unknown SQL dialect {name!r} (one of {', '.join(DIALECTS)})")
        self.name = name
        self.double = "FLOAT64" if name == "bigquery" else "DOUBLE"
        self.bigint = "INT64" if name == "bigquery" else "BIGINT"
        self.quote = "`" if name in ("spark", "bigquery") else '"'

    def q(self, ident: str) -> str:
        return f"{self.quote}{ident}{self.quote}"

    def dbl(self, expr: str) -> str:
        return f"CAST({expr} AS {self.double})"

    def int(self, expr: str) -> str:
        return f"CAST({expr} AS {self.bigint})"

    def null_eq(self, a: str, b: str) -> str:
        if self.name == "spark":
            return f"{a} <=> {b}"
        return f"{a} IS NOT DISTINCT FROM {b}"


def _lit(x: float) -> str:
    return repr(float(x))


def _str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _src(spec: Spec, d: Dialect, table: str, models: Sequence[str] | None = None) -> str:
    """The source CTE body: label, weight, key values and the scores as doubles."""
    for c in spec.input_columns:
        check_identifier(c, "predictions")
    cols = [f"{d.dbl(d.q(spec.label))} AS __y",
            (f"{d.dbl(d.q(spec.weight))} AS __w" if spec.weight else f"{d.dbl('1')} AS __w")]
    cols += [f"{d.q(c)} AS __v{i}" for i, c in enumerate(spec.key_columns)]
    score_of = dict(spec.scores)
    for j, m in enumerate(spec.models):
        if models is None or m in models:
            cols.append(f"{d.dbl(d.q(score_of[m]))} AS __s{j}")
    return f"SELECT {', '.join(cols)} FROM {table}"


def _bad(s: str) -> str:
    return (f"CASE WHEN {s} IS NULL THEN 1 WHEN NOT ({s} >= 0 AND {s} <= 1) THEN 2 "
            f"WHEN __y IS NULL OR NOT (__y = 0 OR __y = 1) THEN 3 "
            f"WHEN __w IS NULL OR NOT (__w >= 0) THEN 4 ELSE 0 END")


def _clip(expr: str) -> str:
    return f"LEAST(GREATEST({expr}, {_lit(EPS)}), {_lit(1.0 - EPS)})"


def _logit(s: str) -> str:
    p = _clip(s)
    return f"(LN({p}) - LN(1 - {p}))"


def _logloss(s: str) -> str:
    return f"(-LN({_clip(f'CASE WHEN __y = 1 THEN {s} ELSE 1 - {s} END')}))"


def _bucket(spec: Spec, d: Dialect, x: str) -> str:
    raw = f"FLOOR(({x} + {_lit(spec.logit_range)}) * {_lit(spec.bucket_scale)})"
    return d.int(f"LEAST(GREATEST({raw}, 0), {spec.n_buckets - 1})")


def _side(spec: Spec, s: str) -> str:
    if not spec.thresholds:
        return "0"
    return "(" + " + ".join(f"CASE WHEN {s} >= {_lit(t)} THEN 1 ELSE 0 END"
                            for t in spec.thresholds) + ")"


def _bin(spec: Spec, d: Dialect, s: str) -> str:
    return d.int(f"LEAST(FLOOR({s} * {spec.n_bins}), {spec.n_bins - 1})")


def _ext(spec: Spec, d: Dialect, s: str) -> str:
    return f"({_bucket(spec, d, _logit(s))} + {_side(spec, s)} + {_bin(spec, d, s)})"


def _grouping(spec: Spec, fixed: Sequence[str]) -> tuple[str, str]:
    """(``GROUP BY GROUPING SETS (...)``, the ``slicing`` CASE expression)."""
    idx = {c: i for i, c in enumerate(spec.key_columns)}
    sets = spec.grouping_sets()
    groups = []
    whens = []
    for gs in sets:
        cols = list(fixed) + [f"__v{idx[c]}" for c in gs]
        groups.append("(" + ", ".join(cols) + ")")
        if spec.key_columns:
            cond = " AND ".join(f"GROUPING(__v{i}) = {0 if c in gs else 1}"
                                for c, i in idx.items())
            whens.append(f"WHEN {cond} THEN {_str(','.join(gs))}")
    group_by = "GROUP BY GROUPING SETS (" + ", ".join(groups) + ")"
    slicing = ("CASE " + " ".join(whens) + " END") if whens else "''"
    return group_by, slicing


def pass1_sql(spec: Spec, table: str, dialect: str = "duckdb") -> str:
    """Pass 1 as one SELECT over ``table`` (a table name, view or table function call)."""
    d = Dialect(dialect)
    nv = len(spec.key_columns)
    vsel = "".join(f"__v{i}, " for i in range(nv))
    vout = "".join(f"__v{i} AS {d.q(value_column(c))}, " for i, c in enumerate(spec.key_columns))
    union = "\n    UNION ALL\n    ".join(
        f"SELECT {_str(m)} AS __model, __y, __w, {vsel}__s{j} AS __s FROM src"
        for j, m in enumerate(spec.models))
    head = (f"1 AS schema_version, {_str(spec.params())} AS params")
    nul_d = d.dbl("NULL")
    nul_i = d.int("NULL")
    group_cells, slicing = _grouping(spec, ["__model", "__bucket", "__side", "__bin", "__label"])
    cells = f"""SELECT {head}, 'cell' AS kind, __model AS model, {slicing} AS slicing, {vout}
  __bucket AS bucket, __side AS side, __bin AS bin, {nul_i} AS side_b, __label AS label,
  COUNT(*) AS n, SUM(__w) AS w, SUM(__w * __w) AS w2,
  MIN(CASE WHEN __w > 0 THEN __s END) AS s_min, MAX(CASE WHEN __w > 0 THEN __s END) AS s_max,
  SUM(__w * __r) AS w_r, SUM(__w * __r * __r) AS w_r2, SUM(__w * __w * __r) AS w2_r,
  SUM(__w * __w * (__r * __r)) AS w2_r2, SUM(__w * __w * ((__r * __r) * (__r * __r))) AS w2_r4,
  SUM(__w * __ll) AS w_ll, SUM(__w * __w * __ll) AS w2_ll, SUM(__w * __w * __ll * __ll) AS w2_ll2,
  SUM(__w * __x) AS w_x, SUM(__w * __x * __x) AS w_x2,
  {nul_d} AS x_rr, {nul_d} AS x_ll, {nul_d} AS x_bb
FROM f3
{group_cells}"""
    parts = [cells]
    if spec.others:
        jb = spec.models.index(spec.baseline)
        pair_rows = "\n    UNION ALL\n    ".join(
            f"SELECT {_str(m)} AS __model, __y, __w, {vsel}"
            f"{_side(spec, f'__s{j}')} AS __side_a, {_side(spec, f'__s{jb}')} AS __side_b, "
            f"__y - __s{j} AS __ra, __y - __s{jb} AS __rb, "
            f"{_logloss(f'__s{j}')} AS __lla, {_logloss(f'__s{jb}')} AS __llb FROM src "
            f"WHERE {_bad(f'__s{j}')} = 0 AND {_bad(f'__s{jb}')} = 0"
            for j, m in enumerate(spec.models) if m != spec.baseline)
        group_pairs, slicing_p = _grouping(spec, ["__model", "__side_a", "__side_b", "__y"])
        empty = ", ".join(f"{nul_d} AS {c}" for c in CELL_COLUMNS[3:])
        parts.append(f"""SELECT {head}, 'pair' AS kind, __model AS model, {slicing_p} AS slicing,
  {vout}{nul_i} AS bucket, __side_a AS side, {nul_i} AS bin, __side_b AS side_b,
  {d.int('__y')} AS label, COUNT(*) AS n, SUM(__w) AS w, SUM(__w * __w) AS w2, {empty},
  SUM(__w * __w * __ra * __rb) AS x_rr, SUM(__w * __w * __lla * __llb) AS x_ll,
  SUM(__w * __w * ((__ra * __ra) * (__rb * __rb))) AS x_bb
FROM (
    {pair_rows}
) pairs
{group_pairs}""")
        del empty
    assert len(CELL_COLUMNS) + len(PAIR_COLUMNS) == 18
    body = "\nUNION ALL\n".join(parts)
    return f"""-- mlreg pass 1 (cell table schema v1, {spec.params()})
WITH src AS (
    {_src(spec, d, table)}
),
rows AS (
    {union}
),
f1 AS (
    SELECT __model, __y, __w, {vsel}__s, {_bad('__s')} AS __bad FROM rows
),
f2 AS (
    SELECT __model, __y, __w, {vsel}__s, __bad, {_logit('__s')} AS __x, __y - __s AS __r,
      {_logloss('__s')} AS __ll
    FROM f1
),
f3 AS (
    SELECT __model, __y, __w, {vsel}__s, __x, __r, __ll,
      CASE WHEN __bad > 0 THEN -1 ELSE {_bucket(spec, d, '__x')} END AS __bucket,
      CASE WHEN __bad > 0 THEN __bad ELSE {_side(spec, '__s')} END AS __side,
      CASE WHEN __bad > 0 THEN 0 ELSE {_bin(spec, d, '__s')} END AS __bin,
      CASE WHEN __bad > 0 THEN 0 ELSE {d.int('__y')} END AS __label
    FROM f2
)
{body}
"""


def _join_keys(d: Dialect, spec: Spec, columns: Sequence[str], left: str, right: str) -> str:
    idx = {c: i for i, c in enumerate(spec.key_columns)}
    conds = [d.null_eq(f"{left}.__v{idx[c]}", f"{right}.{d.q(value_column(c))}")
             for c in columns]
    return " AND ".join(conds) if conds else "1 = 1"


def pass2_sql(spec: Spec, table: str, columns: Sequence[str], theta_table: str,
              newton: Sequence[str], sandwich: Sequence[str], auc_cross: Sequence[str],
              place_tables: dict[str, str], dialect: str = "duckdb") -> str:
    """The exact pass for one slicing: per slice ``k`` (from ``theta_table``: the slicing's
    ``v_*`` columns, ``k`` and ``a<j>``/``b<j>`` per model index ``j``), the Newton sums, the
    sandwich moments and the AUC cross moments (placements from ``place_tables[model]``:
    ``k, ext, vp, vn``)."""
    d = Dialect(dialect)
    models = list(spec.models)
    need = set(newton) | set(sandwich) | set(auc_cross)
    if sandwich or auc_cross:
        need.add(spec.baseline)
    js = {m: models.index(m) for m in need}
    sel = ["t.k AS __k", "src.__y AS __y", "src.__w AS __w"]
    for m, j in js.items():
        x = _logit(f"src.__s{j}")
        sel.append(f"{x} AS __x{j}")
        sel.append(f"t.a{j} AS __a{j}, t.b{j} AS __b{j}")
        if m in auc_cross or (auc_cross and m == spec.baseline):
            sel.append(f"{_ext(spec, d, f'src.__s{j}')} AS __e{j}")
    joined = (f"SELECT {', '.join(sel)} FROM src JOIN {theta_table} t ON "
              f"{_join_keys(d, spec, columns, 'src', 't')}")
    mu = {j: (f"(1 / (1 + EXP(-(LEAST(GREATEST(__a{j} + __b{j} * __x{j}, -700), 700)))))")
          for j in js.values()}
    f_sel = ["__k", "__y", "__w"] + [f"__x{j}" for j in js.values()]
    f_sel += [f"(__y - {mu[j]}) AS __r{j}" for j in js.values()]
    f_sel += [f"({mu[j]} * (1 - {mu[j]})) AS __h{j}" for j in js.values()]
    place_join = ""
    jb = models.index(spec.baseline) if spec.baseline else None
    if auc_cross:
        for m in set(auc_cross) | {spec.baseline}:
            j = js[m]
            f_sel.append(f"CASE WHEN __y = 1 THEN p{j}.vp ELSE p{j}.vn END AS __pl{j}")
            place_join += (f" LEFT JOIN {place_tables[m]} p{j} ON p{j}.k = j.__k AND "
                           f"p{j}.ext = j.__e{j}")
    aggs = []
    for m in newton:
        j = js[m]
        aggs += [f"SUM(__w * __h{j}) AS h00_{j}", f"SUM(__w * __h{j} * __x{j}) AS h01_{j}",
                 f"SUM(__w * __h{j} * __x{j} * __x{j}) AS h11_{j}",
                 f"SUM(__w * __r{j}) AS g0_{j}", f"SUM(__w * __r{j} * __x{j}) AS g1_{j}"]
    for m in sandwich:
        a, b = js[m], jb
        aa = f"__w * __w * __r{a} * __r{a}"
        bb = f"__w * __w * __r{b} * __r{b}"
        ab = f"__w * __w * __r{a} * __r{b}"
        aggs += [f"SUM({aa}) AS aa0_{a}", f"SUM({aa} * __x{a}) AS aa1_{a}",
                 f"SUM({aa} * __x{a} * __x{a}) AS aa2_{a}", f"SUM({bb}) AS bb0_{a}",
                 f"SUM({bb} * __x{b}) AS bb1_{a}", f"SUM({bb} * __x{b} * __x{b}) AS bb2_{a}",
                 f"SUM({ab}) AS ab00_{a}", f"SUM({ab} * __x{a}) AS ab10_{a}",
                 f"SUM({ab} * __x{b}) AS ab01_{a}", f"SUM({ab} * __x{a} * __x{b}) AS ab11_{a}"]
    for m in auc_cross:
        a, b = js[m], jb
        prod = f"__w * __w * COALESCE(__pl{a}, 0) * COALESCE(__pl{b}, 0)"
        aggs += [f"SUM(CASE WHEN __y = 1 THEN {prod} ELSE 0 END) AS ap_{a}",
                 f"SUM(CASE WHEN __y = 1 THEN 0 ELSE {prod} END) AS an_{a}"]
    return f"""-- mlreg exact pass, slicing {','.join(columns) or 'overall'}
WITH src AS (
    {_src(spec, d, table)}
),
j AS (
    {joined}
),
f AS (
    SELECT {', '.join(f_sel)} FROM j{place_join}
)
SELECT __k AS k, {', '.join(aggs)} FROM f GROUP BY __k
"""


def refine_sql(spec: Spec, table: str, columns: Sequence[str], model: str, items_table: str,
               dialect: str = "duckdb") -> str:
    """Sub-cells of the units in ``items_table`` (the slicing's ``v_*`` columns, ``item``,
    ``ext``, ``lo``, ``hi``, ``sub``) for one model and slicing."""
    d = Dialect(dialect)
    j = list(spec.models).index(model)
    s = f"src.__s{j}"
    sub = d.int(f"LEAST(GREATEST(FLOOR(({s} - i.lo) / (i.hi - i.lo) * i.sub), 0), i.sub - 1)")
    return f"""-- mlreg refinement, model {model}, slicing {','.join(columns) or 'overall'}
WITH src AS (
    {_src(spec, d, table, [model])}
)
SELECT i.item AS item, {sub} AS sub, {d.int('src.__y')} AS label, COUNT(*) AS n,
  SUM(src.__w) AS w, SUM(src.__w * src.__w) AS w2,
  MIN(CASE WHEN src.__w > 0 THEN {s} END) AS s_min,
  MAX(CASE WHEN src.__w > 0 THEN {s} END) AS s_max
FROM src JOIN {items_table} i ON {_join_keys(d, spec, columns, 'src', 'i')}
  AND {_ext(spec, d, s)} = i.ext AND {s} >= i.lo AND {s} <= i.hi
GROUP BY i.item, {sub}, {d.int('src.__y')}
"""
