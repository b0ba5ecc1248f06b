"""What the SQL engines share: parameter tables for the later passes, and result parsing.

A SQL engine runs :func:`~mlreg.scale.sql.pass1_sql`, then, per slicing, the exact pass and
refinement queries against small parameter tables it registers under names given here. The
driver's requests (:mod:`mlreg.scale.passes`) are turned into Arrow tables by
:func:`theta_table`, :func:`place_table` and :func:`items_table`; results come back as Arrow and
are parsed by :func:`parse_pass2`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlreg.scale.cells import value_column
from mlreg.scale.compute import Pass2Sums
from mlreg.scale.passes import (
    NEWTON_COLUMNS,
    SAND_COLUMNS,
    Pass2Request,
    RefineItem,
    SlicingParams,
)
from mlreg.scale.spec import Spec

__all__ = ["theta_table", "place_table", "items_table", "parse_pass2", "group_items"]


def _values(columns: tuple[str, ...], keys: list[tuple]) -> dict[str, Any]:
    import pyarrow as pa

    return {value_column(c): pa.array([k[i] for k in keys], from_pandas=True)
            for i, c in enumerate(columns)}


def theta_table(spec: Spec, sp: SlicingParams) -> Any:
    import pyarrow as pa

    cols = _values(sp.columns, sp.keys)
    cols["k"] = pa.array(np.arange(len(sp.keys), dtype=np.int64))
    for j, m in enumerate(spec.models):
        th = sp.theta.get(m)
        if th is None:
            th = np.zeros((len(sp.keys), 2))
        th = np.nan_to_num(th)
        cols[f"a{j}"] = pa.array(th[:, 0])
        cols[f"b{j}"] = pa.array(th[:, 1])
    return pa.table(cols)


def place_table(spec: Spec, sp: SlicingParams, model: str) -> Any:
    import pyarrow as pa

    keys, vp, vn = sp.place[model]
    E = spec.ext_size
    return pa.table({"k": pa.array(keys // E), "ext": pa.array(keys % E),
                     "vp": pa.array(np.asarray(vp, dtype=np.float64)),
                     "vn": pa.array(np.asarray(vn, dtype=np.float64))})


def group_items(items: list[RefineItem]) -> dict[tuple[int, str], list[int]]:
    out: dict[tuple[int, str], list[int]] = {}
    for i, it in enumerate(items):
        out.setdefault((it.slicing, it.model), []).append(i)
    return out


def items_table(items: list[RefineItem], idx: list[int]) -> Any:
    import pyarrow as pa

    first = items[idx[0]]
    cols = _values(first.columns, [items[i].key for i in idx])
    cols.update({
        "item": pa.array(np.asarray(idx, dtype=np.int64)),
        "ext": pa.array(np.asarray([items[i].ext for i in idx], dtype=np.int64)),
        "lo": pa.array(np.asarray([items[i].lo for i in idx], dtype=np.float64)),
        "hi": pa.array(np.asarray([items[i].hi for i in idx], dtype=np.float64)),
        "sub": pa.array(np.asarray([items[i].sub for i in idx], dtype=np.int64)),
    })
    return pa.table(cols)


def parse_pass2(spec: Spec, sp: SlicingParams, req: Pass2Request, result: Any,
                out: dict[tuple[int, str], Pass2Sums]) -> None:
    """Fill ``out`` from one slicing's exact-pass result (an Arrow table keyed by ``k``)."""
    K = len(sp.keys)
    k = np.asarray(result.column("k").to_pylist(), dtype=np.int64)

    def grab(name: str) -> np.ndarray:
        arr = np.zeros(K)
        vals = np.asarray(result.column(name).to_pylist(), dtype=np.float64)
        arr[k] = np.nan_to_num(vals)
        return arr

    for j, m in enumerate(spec.models):
        ps = out.setdefault((sp.index, m), Pass2Sums())
        if m in req.newton and m in sp.theta:
            ps.theta0 = sp.theta[m]
            ps.newton = np.stack([grab(f"{c}_{j}") for c in NEWTON_COLUMNS], axis=1)
        if m in req.sandwich:
            ps.sand = np.stack([grab(f"{c}_{j}") for c in SAND_COLUMNS], axis=1)
        if m in req.auc_cross and m in sp.place and spec.baseline in sp.place:
            ps.auc_x = np.stack([grab(f"ap_{j}"), grab(f"an_{j}")], axis=1)


def sub_table(parts: list[Any]) -> Any:
    """Concatenate refinement results into one table of :data:`~mlreg.scale.passes.SUB_COLUMNS`."""
    import pyarrow as pa

    cols = ("item", "sub", "label", "n", "w", "w2", "s_min", "s_max")
    if not parts:
        return pa.table({c: pa.array([], pa.float64()) for c in cols})
    return pa.concat_tables([p.select(list(cols)) for p in parts], promote_options="permissive")
