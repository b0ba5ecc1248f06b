"""The cell table (version 1): the small, mergeable result of pass 1, and its decoding.

One row per *cell*. ``kind = 'cell'`` rows are keyed by

    model, slicing, v_<column>..., bucket, side, bin, label

where ``slicing`` names the grouping set (its columns joined by ``,``; ``''`` is the overall
slice), ``v_<column>`` holds the slice's value of each column of the set (NULL for columns
outside it), ``bucket`` the logit bucket, ``side`` how many decision thresholds the score
reaches (``score >= t``), ``bin`` the ECE bin ``min(floor(score * n_bins), n_bins - 1)`` and
``label`` 0 or 1. ``kind = 'pair'`` rows (one set per model compared with the baseline, named in
``model``) are keyed by ``side`` (the model's), ``side_b`` (the baseline's) and ``label``: the
joint confusion cells and cross moments that paired deltas need. Every row also carries
``schema_version`` and ``params`` (:meth:`mlreg.scale.spec.Spec.params`).

Values (``w`` the example weight, 1 without a weight column; ``r = label - score``;
``ll = -log(clip(q))`` with ``q`` the predicted probability of the observed class;
``x = logit(clip(score))``; sums over the rows of the cell; ``s_min``/``s_max`` over rows
with ``w > 0``)::

    n        count                       w, w2           sum w, sum w^2
    s_min    min score                   s_max           max score
    w_r      sum w r                     w_r2            sum w r^2
    w2_r     sum w^2 r                   w2_r2, w2_r4    sum w^2 r^2, sum w^2 r^4
    w_ll     sum w ll                    w2_ll, w2_ll2   sum w^2 ll, sum w^2 ll^2
    w_x      sum w x                     w_x2            sum w x^2
    x_rr     sum w^2 r r_b  (pair)       x_ll            sum w^2 ll ll_b (pair)
    x_bb     sum w^2 r^2 r_b^2 (pair)

Merging two cell tables of disjoint row sets is a group-by on the keys: sums add, ``s_min``
takes the min and ``s_max`` the max (:func:`merge_cells`). Rows whose score, label or weight is
missing or out of range land in ``bucket = -1`` with ``side`` naming the problem
(:data:`BAD_ROWS`); decoding refuses a table holding any.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlreg.errors import InputError
from mlreg.scale.spec import SCHEMA_VERSION, Spec

__all__ = [
    "KEY_COLUMNS",
    "SUM_COLUMNS",
    "CELL_COLUMNS",
    "PAIR_COLUMNS",
    "BAD_ROWS",
    "value_column",
    "ModelCells",
    "PairCells",
    "SlicingCells",
    "Decoded",
    "decode_cells",
    "merge_cells",
    "plain",
    "read_cells",
    "write_cells",
]

KEY_COLUMNS = ("bucket", "side", "bin", "side_b", "label")
CELL_COLUMNS = ("n", "w", "w2", "s_min", "s_max", "w_r", "w_r2", "w2_r", "w2_r2", "w2_r4",
                "w_ll", "w2_ll", "w2_ll2", "w_x", "w_x2")
PAIR_COLUMNS = ("x_rr", "x_ll", "x_bb")
SUM_COLUMNS = tuple(c for c in CELL_COLUMNS + PAIR_COLUMNS if c not in ("s_min", "s_max"))
#: side code of the bad-row cells (bucket -1)
BAD_ROWS = {1: "missing score", 2: "score outside [0, 1]", 3: "label not 0/1",
            4: "missing or negative weight"}


def value_column(column: str) -> str:
    """Name of the cell table column holding a slice column's value."""
    return f"v_{column}"


@dataclass
class ModelCells:
    """One model's cells for one slicing, sorted by (slice, ext, label).

    ``ext = bucket + side + bin`` orders the cells of a slice by score: every component is
    non-decreasing in the score, so two rows with the same ``ext`` have the same bucket, side and
    bin, and a smaller ``ext`` means a strictly smaller score.
    """

    k: np.ndarray
    ext: np.ndarray
    side: np.ndarray
    bin: np.ndarray
    label: np.ndarray
    v: dict[str, np.ndarray]


@dataclass
class PairCells:
    """Joint cells of a model and the baseline for one slicing, sorted by slice."""

    k: np.ndarray
    side: np.ndarray
    side_b: np.ndarray
    label: np.ndarray
    v: dict[str, np.ndarray]


@dataclass
class SlicingCells:
    """The slices of one slicing (keys in the in-memory engine's order) and their cells."""

    index: int
    kind: str
    columns: tuple[str, ...]
    keys: list[tuple[tuple[str, Any], ...]]
    models: dict[str, ModelCells] = field(default_factory=dict)
    pairs: dict[str, PairCells] = field(default_factory=dict)
    parent: int | None = None
    parent_code: np.ndarray | None = None  # group slicings: the parent slice of every slice

    @property
    def K(self) -> int:
        return len(self.keys)


@dataclass
class Decoded:
    spec: Spec
    slicings: list[SlicingCells]


# --------------------------------------------------------------------------- merge / io


def merge_cells(tables: Sequence[Any]) -> Any:
    """Merge cell tables (pyarrow Tables) computed over disjoint rows into one."""
    import pyarrow as pa

    tables = [plain(t) for t in tables if t is not None and t.num_rows]
    if not tables:
        raise InputError("no cells to merge")
    table = pa.concat_tables(tables, promote_options="permissive")
    keys = [c for c in table.column_names
            if c not in SUM_COLUMNS and c not in ("s_min", "s_max")]
    aggs = [(c, "sum") for c in SUM_COLUMNS if c in table.column_names]
    aggs += [("s_min", "min"), ("s_max", "max")]
    grouped = table.group_by(keys, use_threads=False).aggregate(aggs)
    rename = {f"{c}_{op}": c for c, op in aggs}
    return grouped.rename_columns([rename.get(c, c) for c in grouped.column_names])


def plain(table: Any) -> Any:
    """The table with dictionary-encoded columns decoded to their values."""
    import pyarrow as pa

    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    return table


def read_cells(path: str) -> Any:
    """Read a cell table from Parquet (a local path or any fsspec URI)."""
    import fsspec
    import pyarrow.parquet as pq

    try:
        fs, p = fsspec.core.url_to_fs(path)
        if fs.isdir(p):
            import pyarrow.dataset as ds

            return ds.dataset(p, filesystem=fs, format="parquet").to_table()
        with fs.open(p, "rb") as fh:
            return pq.read_table(fh)
    except FileNotFoundError:
        from mlreg.errors import NotFound

        raise NotFound(f"{path}: no such cell table") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the cell table: {exc}") from None


def write_cells(table: Any, path: str) -> None:
    import fsspec
    import pyarrow.parquet as pq

    fs, p = fsspec.core.url_to_fs(path)
    with fs.open(p, "wb") as fh:
        pq.write_table(table, fh)


# --------------------------------------------------------------------------- decoding


def _py(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if hasattr(value, "isoformat") and not isinstance(value, str):
        import pandas as pd

        return pd.Timestamp(value).isoformat()
    return value


def _ranks(values: list[Any]) -> dict[Any, int]:
    """Sort rank of every distinct value as ``pandas.factorize(sort=True)`` orders them
    (missing last): the order of the in-memory engine's slices."""
    import pandas as pd

    arr = pd.Series(values, dtype=object)
    try:
        _, uniques = pd.factorize(arr, sort=True, use_na_sentinel=False)
        order = [_py(u) for u in list(uniques)]
    except TypeError:
        _, uniques = pd.factorize(arr.astype(str), sort=True, use_na_sentinel=False)
        by_str = {str(v): v for v in values}
        order = [by_str.get(u, u) for u in list(uniques)]
    return {v: i for i, v in enumerate(order)}


def _column(table: Any, name: str, dtype: Any = np.float64, fill: float = np.nan) -> np.ndarray:
    import pyarrow.compute as pc

    col = table.column(name)
    if col.null_count:
        col = pc.fill_null(col, fill)
    return col.to_numpy().astype(dtype, copy=False)


def _strings(table: Any, name: str) -> np.ndarray:
    """A string column as an object array, through its dictionary (few distinct values)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name).combine_chunks()
    enc = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
    values = np.asarray(enc.dictionary.to_pylist() + [None], dtype=object)
    idx = pc.fill_null(enc.indices, len(values) - 1).to_numpy(zero_copy_only=False)
    return values[idx]


def _slice_codes(table: Any, rows: np.ndarray, columns: tuple[str, ...]):
    """(slice index of every row, slice value tuples in the in-memory engine's order)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not columns:
        return np.zeros(rows.size, dtype=np.int64), [()]
    parts, dicts = [], []
    for c in columns:
        col = table.column(value_column(c)).take(pa.array(rows)).combine_chunks()
        if pa.types.is_dictionary(col.type):
            dictionary = [_py(v) for v in col.dictionary.to_pylist()] + [None]
            idx = pc.fill_null(col.indices, len(dictionary) - 1)
        else:
            enc = pc.dictionary_encode(col, null_encoding="encode")
            dictionary = [_py(v) for v in enc.dictionary.to_pylist()]
            idx = enc.indices
        dicts.append(dictionary)
        parts.append(idx.to_numpy(zero_copy_only=False).astype(np.int64))
    sizes = [max(len(d), 1) for d in dicts]
    if float(np.prod(np.asarray(sizes, dtype=np.float64))) < 2.0 ** 62:
        combined = np.zeros(rows.size, dtype=np.int64)
        for idx, k in zip(parts, sizes, strict=True):
            combined = combined * k + idx
        uniq, inv = np.unique(combined, return_inverse=True)
        combos = []
        for u in uniq.tolist():
            digits = []
            for k in reversed(sizes):
                digits.append(u % k)
                u //= k
            combos.append(tuple(reversed(digits)))
    else:
        uniq2, inv = np.unique(np.stack(parts, axis=1), axis=0, return_inverse=True)
        combos = [tuple(r) for r in uniq2.tolist()]
    tuples = [tuple(dicts[j][c] for j, c in enumerate(combo)) for combo in combos]
    distinct = list(dict.fromkeys(tuples))  # NaN and null both mean "missing"
    rank = [_ranks([d[j] for d in distinct]) for j in range(len(columns))]
    distinct.sort(key=lambda d: tuple(rank[j][d[j]] for j in range(len(columns))))
    where = {d: i for i, d in enumerate(distinct)}
    pos = np.asarray([where[t] for t in tuples], dtype=np.int64)
    return pos[inv.reshape(-1)], distinct


def decode_cells(spec: Spec, table: Any) -> Decoded:
    """Split a cell table into per-slicing, per-model arrays in the in-memory engine's order.

    Raises InputError for a table of another schema version or other params, for bad rows,
    and for a table that lacks a model or a slicing the spec needs.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    need = {"schema_version", "params", "kind", "model", "slicing", *KEY_COLUMNS,
            *CELL_COLUMNS, *PAIR_COLUMNS, *(value_column(c) for c in spec.key_columns)}
    missing = sorted(need - set(table.column_names))
    if missing:
        raise InputError(f"the cell table lacks column(s) {', '.join(missing)}")
    if table.num_rows == 0:
        raise InputError("the cell table is empty (no rows were evaluated)")
    versions = set(pc.unique(table.column("schema_version")).to_pylist())
    if versions != {SCHEMA_VERSION}:
        raise InputError(f"cell table schema version {sorted(versions, key=str)} is not "
                         f"{SCHEMA_VERSION}")
    for params in pc.unique(table.column("params")).to_pylist():
        spec.check_params(params)
    bucket = _column(table, "bucket", np.int64, -2)
    overall = np.asarray(table.column("slicing").to_pylist(), dtype=object) == ""
    bad = (bucket == -1) & overall  # every grouping set repeats the bad rows: count them once
    if bad.any():
        sides = _column(table, "side", np.int64, 0)[bad]
        counts = _column(table, "n", np.int64, 0)[bad]
        models = np.asarray(table.column("model").to_pylist(), dtype=object)[bad]
        what: dict[str, int] = {}
        for s, c, m in zip(sides, counts, models, strict=True):
            key = f"{BAD_ROWS.get(int(s), 'bad value')} ({m})" if m else BAD_ROWS.get(int(s), "?")
            what[key] = what.get(key, 0) + int(c)
        listed = ", ".join(f"{v:,} row(s): {k}" for k, v in sorted(what.items()))
        raise InputError(f"the predictions hold rows the metrics cannot use: {listed}")
    kind = _strings(table, "kind")
    model = _strings(table, "model")
    slicing = _strings(table, "slicing")
    label = _column(table, "label", np.int64, -1)
    if np.any((label != 0) & (label != 1)):
        raise InputError("the cell table holds labels other than 0/1")
    ints = {c: _column(table, c, np.int64, 0) for c in ("side", "bin", "side_b")}
    cell_values = table.select(list(CELL_COLUMNS))
    pair_values = table.select(["n", "w", "w2", *PAIR_COLUMNS])

    def numeric(part: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
        # one column at a time, only the rows needed: the full table stays in Arrow
        taken = part.take(pa.array(rows))
        out = {c: _column(taken, c) for c in taken.column_names}
        # unweighted cells repeat columns (w = w2 = n, w2_r = w_r, ...): keep one copy
        for a, b in (("n", "w"), ("w", "w2"), ("w_r", "w2_r"), ("w_r2", "w2_r2"),
                     ("w_ll", "w2_ll")):
            if a in out and b in out and np.array_equal(out[a], out[b]):
                out[b] = out[a]
        return out

    out: list[SlicingCells] = []
    for sd in spec.slicings():
        gset = ",".join(spec.grouping_set(sd.columns))
        rows = np.flatnonzero(slicing == gset)
        if rows.size == 0:
            raise InputError(f"the cell table has no cells for slicing {gset or 'overall'!r}")
        codes, distinct = _slice_codes(table, rows, sd.columns)
        sc = SlicingCells(sd.index, sd.kind, sd.columns,
                          [tuple(zip(sd.columns, d, strict=True)) for d in distinct],
                          parent=sd.parent)
        for m in spec.models:
            sel = (kind[rows] == "cell") & (model[rows] == m)
            r = rows[sel]
            if r.size == 0:
                raise InputError(f"the cell table has no cells for model {m!r}")
            k = codes[sel]
            side, bn = ints["side"][r], ints["bin"][r]
            ext = bucket[r] + side + bn
            order = np.lexsort((label[r], ext, k))
            r = r[order]
            sc.models[m] = ModelCells(k[order], ext[order], side[order], bn[order], label[r],
                                      numeric(cell_values, r))
        for m in spec.others:
            sel = (kind[rows] == "pair") & (model[rows] == m)
            r = rows[sel]
            k = codes[sel]
            order = np.argsort(k, kind="stable")
            r = r[order]
            sc.pairs[m] = PairCells(k[order], ints["side"][r], ints["side_b"][r], label[r],
                                    numeric(pair_values, r))
        out.append(sc)
    for sc in out:
        if sc.parent is not None:
            parent = out[sc.parent]
            pcode = {key: i for i, key in enumerate(parent.keys)}
            sc.parent_code = np.array([pcode[key[:-1]] for key in sc.keys], dtype=np.int64)
    return Decoded(spec, out)
