"""Row batches for the numpy engines: validation, per-row features and global slice codes.

A :class:`RowEncoder` turns Arrow record batches (from a Parquet scan, a pandas DataFrame or
an Arrow table) into :class:`Batch` objects: validated labels, weights and scores, and for every
key column a *global* integer code (values get codes in the order first seen; the driver sorts
them the in-memory engine's way when it decodes the cells). Per model, :func:`features` computes
exactly what the portable SQL computes per row (same formulas, same order of operations).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlreg.errors import InputError
from mlreg.scale.spec import EPS, Spec

__all__ = ["Batch", "RowEncoder", "Features", "features", "iter_batches", "KeyDictionary"]

DEFAULT_BATCH_ROWS = 1 << 19


class KeyDictionary:
    """Global codes of one key column's values (None for missing, NaN included)."""

    def __init__(self) -> None:
        self.code: dict[Any, int] = {}
        self.values: list[Any] = []

    def encode(self, arr: Any) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        enc = pc.dictionary_encode(arr, null_encoding="encode")
        dictionary = enc.dictionary.to_pylist()
        local = np.empty(len(dictionary), dtype=np.int64)
        for i, v in enumerate(dictionary):
            v = _normal(v)
            c = self.code.get(v)
            if c is None:
                c = len(self.values)
                self.code[v] = c
                self.values.append(v)
            local[i] = c
        idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        return local[idx] if len(local) else np.zeros(len(arr), dtype=np.int64)


def _normal(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "isoformat") and not isinstance(v, str):
        import pandas as pd

        return pd.Timestamp(v).isoformat()
    return v


@dataclass
class Batch:
    n: int
    y: np.ndarray  # int8 0/1
    w: np.ndarray | None  # float64, None when unweighted
    scores: dict[str, np.ndarray]  # model -> float64 in [0, 1]
    codes: dict[str, np.ndarray]  # key column -> global code (int64)


class RowEncoder:
    """Validates batches and keeps the global key dictionaries across them."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.dicts = {c: KeyDictionary() for c in spec.key_columns}
        self.rows = 0

    def encode(self, batch: Any) -> Batch:
        spec = self.spec
        names = set(batch.schema.names)
        for c in spec.input_columns:
            if c not in names:
                raise InputError(f"column {c!r} is not in the predictions "
                                 f"(columns: {', '.join(batch.schema.names)})")
        n = batch.num_rows
        y = _numeric(batch.column(batch.schema.get_field_index(spec.label)), spec.label, "label")
        if not np.all((y == 0) | (y == 1)):
            bad = np.unique(y[(y != 0) & (y != 1)])[:5].tolist()
            raise InputError(f"label column {spec.label!r} must hold 0/1 values; found {bad}")
        w = None
        if spec.weight:
            w = _numeric(batch.column(batch.schema.get_field_index(spec.weight)), spec.weight,
                         "weight")
            if np.any(w < 0):
                raise InputError(f"weight column {spec.weight!r} has negative values")
        scores = {}
        for model, col in spec.scores:
            s = _numeric(batch.column(batch.schema.get_field_index(col)), col, "score")
            if n and (s.min() < 0.0 or s.max() > 1.0):
                raise InputError(f"score column {col!r} must lie in [0, 1] "
                                 f"(found [{s.min():g}, {s.max():g}])")
            scores[model] = s
        codes = {c: self.dicts[c].encode(batch.column(batch.schema.get_field_index(c)))
                 for c in spec.key_columns}
        self.rows += n
        return Batch(n, y.astype(np.int8), w, scores, codes)


def _numeric(arr: Any, name: str, role: str) -> np.ndarray:
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.int8())
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)
            or pa.types.is_decimal(arr.type)):
        raise InputError(f"{role} column {name!r} is not numeric")
    if arr.null_count:
        raise InputError(f"{role} column {name!r} has {arr.null_count} missing or infinite "
                         "value(s)")
    out = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        raise InputError(f"{role} column {name!r} has {bad} missing or infinite value(s)")
    return out


@dataclass
class Features:
    """Per-row values of one model, as the portable SQL computes them."""

    s: np.ndarray
    x: np.ndarray  # logit of the clipped score
    ll: np.ndarray  # log loss of the observed class
    r: np.ndarray  # label - score
    bucket: np.ndarray
    side: np.ndarray
    bin: np.ndarray

    @property
    def ext(self) -> np.ndarray:
        return self.bucket + self.side + self.bin


def features(spec: Spec, s: np.ndarray, y: np.ndarray) -> Features:
    """Logit, log loss, residual, bucket, threshold side and ECE bin of every row.

    Mirrors :func:`mlreg.scale.sql.pass1_sql` operation by operation, so that a row lands in
    the same cell on every engine (up to the last bit of the engine's ``LN``).
    """
    p = np.minimum(np.maximum(s, EPS), 1.0 - EPS)
    x = np.log(p) - np.log(1.0 - p)
    q = np.where(y == 1, s, 1.0 - s)
    ll = -np.log(np.minimum(np.maximum(q, EPS), 1.0 - EPS))
    r = y - s
    b = np.floor((x + spec.logit_range) * spec.bucket_scale)
    bucket = np.minimum(np.maximum(b, 0.0), spec.n_buckets - 1).astype(np.int64)
    if spec.thresholds:
        side = np.searchsorted(np.asarray(spec.thresholds), s, side="right").astype(np.int64)
    else:
        side = np.zeros(s.shape[0], dtype=np.int64)
    bn = np.minimum(np.floor(s * spec.n_bins), spec.n_bins - 1).astype(np.int64)
    return Features(s, x, ll, r, bucket, side, bn)


def iter_batches(source: Any, columns: list[str], batch_rows: int = DEFAULT_BATCH_ROWS,
                 storage_options: dict | None = None) -> tuple[Iterator[Any], int | None]:
    """``(record batches, total rows or None)`` of a source: a pandas DataFrame, an Arrow
    Table, or a Parquet file / directory / glob / list of files, local or any fsspec URI."""
    import pyarrow as pa

    if hasattr(source, "to_batches") and isinstance(source, pa.Table):
        return iter(source.select(columns).to_batches(max_chunksize=batch_rows)), source.num_rows
    try:
        import pandas as pd

        if isinstance(source, pd.DataFrame):
            return _frame_batches(source, columns, batch_rows), len(source)
    except ImportError:  # pragma: no cover
        pass
    dataset = open_dataset(source, storage_options)
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise InputError(f"column(s) {', '.join(map(repr, missing))} not in the predictions "
                         f"(columns: {', '.join(dataset.schema.names)})")
    try:
        total = dataset.count_rows()
    except Exception:  # noqa: BLE001 - a count is a nicety for the progress bar
        total = None
    return _fragment_batches(dataset, columns, batch_rows), total


def _fragment_batches(dataset: Any, columns: list[str], batch_rows: int) -> Iterator[Any]:
    """Batches file by file: the dataset scanner reads ahead across files (hundreds of MB in
    flight); one fragment at a time keeps memory to the cells and one file's batches."""
    import pyarrow.dataset as ds

    for fragment in dataset.get_fragments():
        # the dataset's schema brings the hive partition columns along
        scanner = ds.Scanner.from_fragment(fragment, schema=dataset.schema, columns=columns,
                                           batch_size=batch_rows, batch_readahead=1)
        yield from scanner.to_batches()


def _frame_batches(df: Any, columns: list[str], batch_rows: int) -> Iterator[Any]:
    import pyarrow as pa

    for start in range(0, len(df), batch_rows):
        part = df.iloc[start:start + batch_rows][columns]
        # pandas 3 keeps strings as chunked Arrow arrays: build a table, then batches
        yield from pa.Table.from_pandas(part, preserve_index=False).combine_chunks().to_batches()


def open_dataset(source: Any, storage_options: dict | None = None) -> Any:
    """A ``pyarrow.dataset`` over Parquet: a file, a directory (hive partitions read as
    columns), a glob, or a list of files; local paths or fsspec URIs."""
    import fsspec
    import pyarrow.dataset as ds
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from mlreg.errors import NotFound, StoreError

    paths = [source] if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__") \
        else list(source)
    paths = [str(p) for p in paths]
    try:
        fs, _, expanded = fsspec.core.get_fs_token_paths(paths, storage_options=storage_options)
    except (ValueError, ImportError) as exc:
        raise InputError(f"cannot open {paths[0]}: {exc}") from None
    if not expanded:
        raise NotFound(f"{paths[0]}: no such file or directory")
    try:
        pyfs = PyFileSystem(FSSpecHandler(fs))
        if len(expanded) == 1 and fs.isdir(expanded[0]):
            return ds.dataset(expanded[0], filesystem=pyfs, format="parquet", partitioning="hive")
        for p in expanded:
            if not fs.exists(p):
                raise NotFound(f"{p}: no such file or directory")
        return ds.dataset(expanded, filesystem=pyfs, format="parquet")
    except (PermissionError, TimeoutError, ConnectionError) as exc:
        raise StoreError(f"{paths[0]}: {exc}") from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise NotFound(f"{paths[0]}: no such file or directory") from None
        raise InputError(f"{paths[0]}: cannot read as Parquet: {exc}") from None
