"""Slicings: the overall slice, every value of each slice column, and declared crosses.

A :class:`Slicing` holds one dense integer code per row (``0..K-1``) and the key of every code.
Codes of a column follow the sorted order of its values (missing values last, keyed ``None``);
codes of a cross follow the lexicographic order of the present combinations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlreg.errors import InputError
from mlreg.metrics.results import SliceKey

__all__ = ["Slicing", "factorize", "narrow_codes", "combine_codes", "overall_slicing",
           "column_slicing", "cross_slicing"]


@dataclass
class Slicing:
    """One way of cutting the rows: ``kind`` is ``overall``, ``column`` or ``cross``."""

    kind: str
    columns: tuple[str, ...]
    codes: np.ndarray | None  # None means one slice holding every row
    keys: list[SliceKey]
    sizes: np.ndarray
    n_report: int | None = None  # slices past this index hold rows that are not reported
    ranks: list[int | None] | None = None  # traffic rank of each reported column slice

    @property
    def reported(self) -> int:
        return len(self.keys) if self.n_report is None else self.n_report

    @property
    def n_slices(self) -> int:
        return len(self.keys)

    @property
    def name(self) -> str:
        return "overall" if not self.columns else " x ".join(self.columns)


def _py(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def narrow_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Smallest unsigned dtype holding ``0..k-1`` (uint8/uint16 sort by radix in numpy)."""
    if k <= 256:
        return codes.astype(np.uint8, copy=False)
    if k <= 65536:
        return codes.astype(np.uint16, copy=False)
    return codes.astype(np.uint32 if k < 2**32 else np.int64, copy=False)


def factorize(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Dense codes (sorted values, missing last) and the Python values they stand for."""
    fast = _factorize_small_ints(series)
    if fast is not None:
        return fast
    try:
        codes, uniques = pd.factorize(series, sort=True, use_na_sentinel=False)
    except TypeError:
        codes, uniques = pd.factorize(series.astype(str), sort=True, use_na_sentinel=False)
    values = [_py(v) for v in list(uniques)]
    return narrow_codes(np.asarray(codes), max(len(values), 1)), values


def _factorize_small_ints(series: pd.Series) -> tuple[np.ndarray, list[Any]] | None:
    """:func:`factorize` of a plain integer column spanning fewer than 2**20 values by counting
    (pandas hashes every value; this is a few times faster on millions of rows)."""
    if not isinstance(series.dtype, np.dtype) or series.dtype.kind not in "iu" or len(series) == 0:
        return None
    a = series.to_numpy()
    lo, hi = int(a.min()), int(a.max())
    if hi - lo >= 1 << 20:
        return None
    d = a.astype(np.intp)
    d -= lo
    present = np.bincount(d, minlength=hi - lo + 1) > 0
    remap = np.cumsum(present) - 1
    values = [int(v) + lo for v in np.flatnonzero(present)]
    return narrow_codes(remap, len(values))[d], values


def combine_codes(parts: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes of the present combinations of several code arrays.

    Returns ``(codes, combos)`` with ``combos`` the ``(n_present, len(parts))`` array of the
    component codes of every combined code, in lexicographic order.
    """
    radix = [k for _, k in parts]
    total = 1
    for k in radix:
        total *= max(k, 1)
    combined = np.zeros(parts[0][0].shape[0], dtype=np.int64)
    for codes, k in parts:
        combined *= max(k, 1)
        combined += codes.astype(np.int64)
    if total <= 50_000_000:
        present = np.bincount(combined, minlength=total) > 0
        flat = np.flatnonzero(present)
        remap = np.cumsum(present) - 1
        dense = remap[combined]
    else:
        flat, dense = np.unique(combined, return_inverse=True)
    combos = np.zeros((flat.shape[0], len(parts)), dtype=np.int64)
    rest = flat.copy()
    for j in range(len(parts) - 1, -1, -1):
        k = max(radix[j], 1)
        combos[:, j] = rest % k
        rest //= k
    return narrow_codes(dense, max(flat.shape[0], 1)), combos


def overall_slicing(n: int) -> Slicing:
    return Slicing("overall", (), None, [()], np.array([n], dtype=np.int64))


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    if name not in df.columns:
        raise InputError(f"slice column {name!r} is not in the predictions "
                         f"(columns: {', '.join(map(str, df.columns))})")
    return df[name]


def column_slicing(df: pd.DataFrame, column: str) -> Slicing:
    codes, values = factorize(_col(df, column))
    sizes = np.bincount(codes, minlength=len(values)).astype(np.int64)
    keys = [((column, v),) for v in values]
    return Slicing("column", (column,), codes, keys, sizes)


def cross_slicing(df: pd.DataFrame, columns: Sequence[str],
                  factorized: dict[str, tuple[np.ndarray, list[Any]]] | None = None) -> Slicing:
    columns = tuple(columns)
    if len(columns) < 2:
        raise InputError(f"a cross needs at least two columns, got {list(columns)}")
    if len(set(columns)) != len(columns):
        raise InputError(f"a cross repeats a column: {list(columns)}")
    factorized = factorized if factorized is not None else {}
    parts = []
    vals = []
    for c in columns:
        if c not in factorized:
            factorized[c] = factorize(_col(df, c))
        codes, values = factorized[c]
        parts.append((codes, len(values)))
        vals.append(values)
    codes, combos = combine_codes(parts)
    keys = [tuple((c, vals[j][int(row[j])]) for j, c in enumerate(columns)) for row in combos]
    sizes = np.bincount(codes, minlength=len(keys)).astype(np.int64)
    return Slicing("cross", columns, codes, keys, sizes)
