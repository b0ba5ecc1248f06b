"""Reading predictions: Parquet or CSV, local paths or any fsspec URI; joining per-model files.

``read_predictions("s3://bucket/eval/preds.parquet", columns=[...])`` reads with pyarrow through
fsspec (``s3://``, ``gs://``, ``az://``, ``memory://``, ``file://``, local paths); a directory is
read as a Parquet dataset. ``join_predictions`` merges files that hold one model's scores each on
an example id column.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mlreg.errors import InputError, NotFound, StoreError

__all__ = ["read_predictions", "join_predictions"]

_PARQUET = (".parquet", ".pq", ".parq")
_CSV = (".csv", ".csv.gz", ".csv.bz2", ".tsv")


def _format_of(path: str, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("parquet", "csv"):
            raise InputError(f"unknown predictions format {fmt!r} (parquet or csv)")
        return fmt
    low = path.lower().rstrip("/")
    if low.endswith(_PARQUET):
        return "parquet"
    if low.endswith(_CSV):
        return "csv"
    return "parquet"  # directories and extension-less paths: Parquet datasets


def read_predictions(uri_or_path: str | os.PathLike, columns: Sequence[str] | None = None, *,
                     format: str | None = None,
                     storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Read a predictions table into a DataFrame.

    ``columns`` restricts (and checks) the columns read. Missing files raise
    :class:`mlreg.errors.NotFound`, unreadable content :class:`mlreg.errors.InputError`, store
    failures (permissions, network) :class:`mlreg.errors.StoreError`.
    """
    import fsspec
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    target = os.fspath(uri_or_path) if isinstance(uri_or_path, Path) else str(uri_or_path)
    fmt = _format_of(target, format)
    cols = None if columns is None else list(columns)
    try:
        fs, path = fsspec.core.url_to_fs(target, **dict(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise InputError(f"{target}: cannot open ({exc})") from None
    try:
        if not fs.exists(path):
            raise NotFound(f"{target}: no such file or directory")
        if fmt == "parquet":
            if fs.isdir(path):
                dataset = ds.dataset(path, filesystem=fs, format="parquet")
                _check_columns(target, dataset.schema.names, cols)
                table = dataset.to_table(columns=cols)
            else:
                with fs.open(path, "rb") as fh:
                    pf = pq.ParquetFile(fh)
                    _check_columns(target, pf.schema_arrow.names, cols)
                    table = pf.read(columns=cols)
        else:
            parse = pacsv.ParseOptions(delimiter="\t") if path.lower().endswith(".tsv") else None
            compression = "gzip" if path.endswith(".gz") else (
                "bz2" if path.endswith(".bz2") else None)
            with fs.open(path, "rb", compression=compression) as fh:
                table = pacsv.read_csv(fh, parse_options=parse)
            _check_columns(target, table.column_names, cols)
            if cols is not None:
                table = table.select(cols)
    except (NotFound, InputError):
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError, ValueError) as exc:
        raise InputError(f"{target}: cannot read as {fmt}: {exc}") from None
    except FileNotFoundError:
        raise NotFound(f"{target}: no such file or directory") from None
    except (PermissionError, OSError, TimeoutError) as exc:
        raise StoreError(f"{target}: {type(exc).__name__}: {exc}") from None
    return table.to_pandas()


def _check_columns(target: str, names: Sequence[str], cols: Sequence[str] | None) -> None:
    if cols is None:
        return
    missing = [c for c in cols if c not in names]
    if missing:
        raise InputError(f"{target}: missing column(s) {', '.join(missing)} "
                         f"(has: {', '.join(names)})")


def join_predictions(frames: Mapping[str, pd.DataFrame], *, on: str, score: str = "score",
                     prefix: str = "score_", require_same_ids: bool = True) -> pd.DataFrame:
    """Join per-model prediction frames on the example id column ``on``.

    Every frame holds ``on`` and its model's ``score`` column; the result holds ``on``, one
    ``<prefix><model>`` column per model and every other column of the first frame (label,
    slices, ...). Columns that later frames share with the first (a label, say) must agree row
    by row. Duplicate ids, or (with ``require_same_ids``) ids present in some frames only, raise
    :class:`mlreg.errors.InputError`.
    """
    if not frames:
        raise InputError("join_predictions needs at least one frame")
    merged: pd.DataFrame | None = None
    first_name = next(iter(frames))
    for model, frame in frames.items():
        for col in (on, score):
            if col not in frame.columns:
                raise InputError(f"predictions of {model!r} lack column {col!r}")
        dup = int(frame[on].duplicated().sum())
        if dup:
            raise InputError(f"predictions of {model!r} repeat {dup} id(s) in {on!r}")
        renamed = frame.rename(columns={score: f"{prefix}{model}"})
        if merged is None:
            merged = renamed
            continue
        shared = [c for c in renamed.columns if c in merged.columns and c != on]
        right = renamed[[on, f"{prefix}{model}"] + shared]
        if require_same_ids:
            a = pd.Index(merged[on])
            b = pd.Index(right[on])
            only_a = int((~a.isin(b)).sum())
            only_b = int((~b.isin(a)).sum())
            if only_a or only_b:
                raise InputError(
                    f"ids differ between {first_name!r} and {model!r}: {only_a} only in the "
                    f"first, {only_b} only in {model!r}")
        joined = merged.merge(right, on=on, how="inner", suffixes=("", "__other"))
        for c in shared:
            other = joined[c + "__other"]
            same = (joined[c] == other) | (joined[c].isna() & other.isna())
            if not bool(same.all()):
                raise InputError(f"column {c!r} differs between {first_name!r} and {model!r} "
                                 f"for {int((~same).sum())} id(s)")
            joined = joined.drop(columns=[c + "__other"])
        merged = joined
    assert merged is not None
    return merged
