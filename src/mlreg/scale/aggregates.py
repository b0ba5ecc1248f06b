"""Pass 1 in numpy: rows -> mergeable cells, with memory bounded by the cells, not the rows.

:class:`CellAccumulator` takes row batches one at a time and keeps, per (kind, model, grouping
set), sparse sums keyed by ``(slice code, ext, label)`` (``ext = bucket + side + bin``, see
:class:`mlreg.scale.cells.ModelCells`). Per batch and model the rows are ordered once by
``ext * 2 + label`` (a radix sort of 16-bit keys), then per grouping set by the slice code
(again a stable radix sort), so every cell is a contiguous run and its sums are one
``np.add.reduceat``. A batch's cells are added to the kept (sorted) cells in place by binary
search; only keys never seen before wait, and are merged in when they reach a quarter of the
kept cells. Memory follows the number of distinct cells, which stays near the number of slices
x occupied buckets however many rows pass through.

:meth:`CellAccumulator.table` writes the cell table of :mod:`mlreg.scale.cells`, identical in
layout (and, up to the last bit of ``log``, in content) to what the SQL engines produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlreg.scale.cells import CELL_COLUMNS, PAIR_COLUMNS, value_column
from mlreg.scale.rows import Batch, RowEncoder, features
from mlreg.scale.spec import SCHEMA_VERSION, Spec

__all__ = ["CellAccumulator", "SparseSums", "pack_unique"]

# new keys wait until they exceed this share of the kept cells (+ slack), then merge
COMPACT_FACTOR = 0.25
COMPACT_SLACK = 1 << 18


@dataclass
class SparseSums:
    """Sums (and min/max) keyed by int64 keys, merged lazily."""

    n_sums: int
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    sums: np.ndarray | None = None
    mins: np.ndarray | None = None
    maxs: np.ndarray | None = None
    tags: np.ndarray | None = None
    pending: list[tuple] = field(default_factory=list)
    pending_rows: int = 0

    def add(self, keys: np.ndarray, sums: np.ndarray, mins: np.ndarray | None = None,
            maxs: np.ndarray | None = None, tags: np.ndarray | None = None) -> None:
        """Add a chunk whose keys are sorted and unique: known keys are summed in place (one
        binary search per key), new ones wait in a pending list merged by :meth:`compact`."""
        if self.sums is not None and self.keys.size:
            pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
            found = self.keys[pos] == keys
            if found.any():
                idx = pos[found]
                self.sums[idx] += sums[found]
                if mins is not None:
                    self.mins[idx] = np.minimum(self.mins[idx], mins[found])
                    self.maxs[idx] = np.maximum(self.maxs[idx], maxs[found])
            if found.all():
                return
            new = ~found
            keys, sums = keys[new], sums[new]
            if mins is not None:
                mins, maxs = mins[new], maxs[new]
            if tags is not None:
                tags = tags[new]
        self.pending.append((keys, sums, mins, maxs, tags))
        self.pending_rows += keys.shape[0]
        if self.sums is None or self.pending_rows > COMPACT_FACTOR * self.keys.shape[0] \
                + COMPACT_SLACK:
            self.compact()

    def compact(self) -> None:
        if not self.pending:
            return
        parts = self.pending
        if self.sums is not None:
            parts = [(self.keys, self.sums, self.mins, self.maxs, self.tags)] + parts
        keys = np.concatenate([p[0] for p in parts])
        sums = np.concatenate([p[1] for p in parts])
        has_mm = parts[0][2] is not None
        order = np.argsort(keys, kind="stable")
        ks = keys[order]
        starts = np.flatnonzero(np.concatenate(([True], ks[1:] != ks[:-1])))
        self.keys = ks[starts]
        self.sums = np.add.reduceat(sums[order], starts, axis=0)
        if has_mm:
            mins = np.concatenate([p[2] for p in parts])[order]
            maxs = np.concatenate([p[3] for p in parts])[order]
            self.mins = np.minimum.reduceat(mins, starts)
            self.maxs = np.maximum.reduceat(maxs, starts)
        if parts[0][4] is not None:
            self.tags = np.concatenate([p[4] for p in parts])[order][starts]
        self.pending = []
        self.pending_rows = 0


def pack_unique(columns: list[np.ndarray]) -> tuple[list[tuple], np.ndarray]:
    """Distinct rows of several non-negative int64 code columns (as tuples) and the inverse."""
    top = [int(c.max()) + 1 if c.size else 1 for c in columns]
    if float(np.prod(np.asarray(top, dtype=np.float64))) < 2.0 ** 62:
        packed = np.zeros(columns[0].shape[0], dtype=np.int64)
        for c, k in zip(columns, top, strict=True):
            packed = packed * k + c
        uniq, inv = np.unique(packed, return_inverse=True)
        rows = []
        for u in uniq.tolist():
            digits = []
            for k in reversed(top):
                digits.append(u % k)
                u //= k
            rows.append(tuple(reversed(digits)))
        return rows, inv.reshape(-1)
    uniq2, inv = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
    return [tuple(r) for r in uniq2.tolist()], inv.reshape(-1)


def _narrow(codes: np.ndarray) -> np.ndarray:
    m = int(codes.max()) if codes.size else 0
    if m < 256:
        return codes.astype(np.uint8)
    if m < 65536:
        return codes.astype(np.uint16)
    return codes


class CellAccumulator:
    """Accumulates pass-1 cells over row batches (see the module docstring)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.encoder = RowEncoder(spec)
        self.sets = spec.grouping_sets()
        # per grouping set: tuple of column codes -> set code (and back)
        self.set_codes: list[dict[tuple, int]] = [{} for _ in self.sets]
        self.set_keys: list[list[tuple]] = [[] for _ in self.sets]
        self.cells: dict[tuple[str, int], SparseSums] = {}
        self.pairs: dict[tuple[str, int], SparseSums] = {}
        self.weighted = spec.weight is not None
        self.E2 = 2 * spec.ext_size
        self.T1 = len(spec.thresholds) + 1

    # ------------------------------------------------------------------ per batch

    def add(self, record_batch) -> None:
        """Add one Arrow record batch (validated; InputError on bad values)."""
        b = self.encoder.encode(record_batch)
        if b.n == 0:
            return
        set_codes = [self._set_codes(i, b) for i in range(len(self.sets))]
        feats = {m: features(self.spec, b.scores[m], b.y) for m in self.spec.models}
        for m in self.spec.models:
            self._model_cells(m, b, feats[m], set_codes)
        for m in self.spec.others:
            self._pair_cells(m, b, feats[m], feats[self.spec.baseline], set_codes)

    def _set_codes(self, i: int, b: Batch) -> np.ndarray | None:
        cols = self.sets[i]
        if not cols:
            return None
        if len(cols) == 1:
            codes = b.codes[cols[0]]
            known = self.set_codes[i]
            top = int(codes.max()) + 1 if codes.size else 0
            for c in range(len(self.set_keys[i]), top):  # single columns: set code = code
                known[(c,)] = c
                self.set_keys[i].append((c,))
            return codes
        uniq, inv = pack_unique([b.codes[c] for c in cols])
        known = self.set_codes[i]
        local = np.empty(len(uniq), dtype=np.int64)
        for j, row in enumerate(uniq):
            c = known.get(row)
            if c is None:
                c = len(self.set_keys[i])
                known[row] = c
                self.set_keys[i].append(row)
            local[j] = c
        return local[inv]

    def _row_matrix(self, f, w: np.ndarray | None) -> np.ndarray:
        r, ll, x = f.r, f.ll, f.x
        r2 = r * r
        if w is None:
            cols = [r, r2, r2 * r2, ll, ll * ll, x, x * x]
        else:
            w2 = w * w
            wr2 = w2 * r2
            cols = [w, w2, w * r, w * r2, w2 * r, wr2, wr2 * r2, w * ll, w2 * ll, w2 * ll * ll,
                    w * x, w * x * x]
        return np.stack(cols, axis=1)

    def _model_cells(self, model: str, b: Batch, f, set_codes) -> None:
        u = f.ext * 2 + b.y
        u = u.astype(np.uint16) if self.E2 <= 65536 else u
        o1 = np.argsort(u, kind="stable")
        M = self._row_matrix(f, b.w)
        if b.w is None:
            smin = smax = f.s
        else:
            smin = np.where(b.w > 0, f.s, np.inf)
            smax = np.where(b.w > 0, f.s, -np.inf)
        tag = f.side * self.spec.n_bins + f.bin
        for i, codes in enumerate(set_codes):
            if codes is None:
                order = o1
                key = u[order].astype(np.int64)
            else:
                c1 = _narrow(codes)[o1]
                o2 = np.argsort(c1, kind="stable")
                order = o1[o2]
                key = c1[o2].astype(np.int64) * self.E2 + u[order]
            starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
            counts = np.diff(np.append(starts, key.shape[0])).astype(np.float64)
            sums = np.add.reduceat(M[order], starts, axis=0)
            sums = np.concatenate([counts[:, None], sums], axis=1)
            acc = self.cells.get((model, i))
            if acc is None:
                acc = self.cells[(model, i)] = SparseSums(sums.shape[1])
            acc.add(key[starts], sums, np.minimum.reduceat(smin[order], starts),
                    np.maximum.reduceat(smax[order], starts), tag[order][starts])

    def _pair_cells(self, model: str, b: Batch, fa, fb, set_codes) -> None:
        T1 = self.T1
        w2 = None if b.w is None else b.w * b.w
        vals = [fa.r * fb.r, fa.ll * fb.ll, (fa.r * fa.r) * (fb.r * fb.r)]
        if w2 is not None:
            vals = [w2 * v for v in vals]
            cols = [b.w, w2] + vals
        else:
            cols = vals
        cell = (fa.side * T1 + fb.side) * 2 + b.y
        for i, codes in enumerate(set_codes):
            key = cell if codes is None else codes * (T1 * T1 * 2) + cell
            size = int(key.max()) + 1
            if size <= 8_000_000:
                cnt = np.bincount(key, minlength=size)
                nz = np.flatnonzero(cnt)
                sums = np.stack([cnt[nz].astype(np.float64)]
                                + [np.bincount(key, c, minlength=size)[nz] for c in cols], axis=1)
                keys = nz.astype(np.int64)
            else:
                keys, inv = np.unique(key, return_inverse=True)
                cnt = np.bincount(inv)
                sums = np.stack([cnt.astype(np.float64)] + [np.bincount(inv, c) for c in cols],
                                axis=1)
            acc = self.pairs.get((model, i))
            if acc is None:
                acc = self.pairs[(model, i)] = SparseSums(sums.shape[1])
            acc.add(keys, sums)

    # ------------------------------------------------------------------ output

    def table(self):
        """The cell table (a pyarrow Table) of everything added so far."""
        spec = self.spec
        parts = []
        for (model, i), acc in self.cells.items():
            acc.compact()
            code = acc.keys // self.E2
            u = acc.keys % self.E2
            ext, label = u // 2, u % 2
            tag = acc.tags
            side, bn = tag // spec.n_bins, tag % spec.n_bins
            n = acc.sums[:, 0]
            cols = {"kind": "cell", "model": model, "set": i, "code": code,
                    "bucket": ext - side - bn, "side": side, "bin": bn, "side_b": None,
                    "label": label, "n": n}
            S = acc.sums[:, 1:]
            if self.weighted:
                names = ("w", "w2", "w_r", "w_r2", "w2_r", "w2_r2", "w2_r4", "w_ll", "w2_ll",
                         "w2_ll2", "w_x", "w_x2")
                cols.update({nm: S[:, j] for j, nm in enumerate(names)})
            else:
                cols.update({"w": n, "w2": n, "w_r": S[:, 0], "w2_r": S[:, 0],
                             "w_r2": S[:, 1], "w2_r2": S[:, 1], "w2_r4": S[:, 2],
                             "w_ll": S[:, 3], "w2_ll": S[:, 3], "w2_ll2": S[:, 4],
                             "w_x": S[:, 5], "w_x2": S[:, 6]})
            smin = np.where(np.isfinite(acc.mins), acc.mins, np.nan)
            smax = np.where(np.isfinite(acc.maxs), acc.maxs, np.nan)
            cols.update({"s_min": smin, "s_max": smax})
            parts.append(cols)
        T1 = self.T1
        for (model, i), acc in self.pairs.items():
            acc.compact()
            keys = acc.keys
            code = keys // (T1 * T1 * 2)
            cell = keys % (T1 * T1 * 2)
            S = acc.sums
            cols = {"kind": "pair", "model": model, "set": i, "code": code, "bucket": None,
                    "side": cell // (2 * T1), "bin": None, "side_b": (cell // 2) % T1,
                    "label": cell % 2, "n": S[:, 0]}
            if self.weighted:
                cols.update({"w": S[:, 1], "w2": S[:, 2], "x_rr": S[:, 3], "x_ll": S[:, 4],
                             "x_bb": S[:, 5]})
            else:
                cols.update({"w": S[:, 0], "w2": S[:, 0], "x_rr": S[:, 1], "x_ll": S[:, 2],
                             "x_bb": S[:, 3]})
            parts.append(cols)
        return self._assemble(parts)

    def _assemble(self, parts: list[dict]):
        """One Arrow table, built per part (chunked): constant strings as dictionaries (a few
        bytes a row), numbers without copies where no value is missing."""
        import pyarrow as pa

        spec = self.spec
        types = {c: pa.array(self.encoder.dicts[c].values, from_pandas=True).type
                 for c in spec.key_columns}

        def const(value: str, m: int) -> pa.Array:
            return pa.DictionaryArray.from_arrays(pa.array(np.zeros(m, np.int32)),
                                                  pa.array([value], pa.string()))

        cols: dict[str, list] = {}

        def put(name: str, arr) -> None:
            cols.setdefault(name, []).append(arr)

        for p in parts:
            m = len(p["code"])
            put("schema_version", pa.array(np.full(m, SCHEMA_VERSION, dtype=np.int32)))
            put("params", const(spec.params(), m))
            put("kind", const(p["kind"], m))
            put("model", const(p["model"], m))
            gset = self.sets[p["set"]]
            put("slicing", const(",".join(gset), m))
            keys = self.set_keys[p["set"]]
            codes = pa.array(np.asarray(p["code"], dtype=np.int32))
            for c in spec.key_columns:
                if c in gset:
                    j = gset.index(c)
                    dic = self.encoder.dicts[c].values
                    values = pa.array([dic[key[j]] for key in keys], type=types[c],
                                      from_pandas=True)
                    put(value_column(c), values.take(codes))
                else:
                    put(value_column(c), pa.nulls(m, types[c]))
            for c, t in (("bucket", pa.int32()), ("side", pa.int16()), ("bin", pa.int16()),
                         ("side_b", pa.int16()), ("label", pa.int8())):
                put(c, pa.nulls(m, t) if p[c] is None else pa.array(
                    np.asarray(p[c]).astype(t.to_pandas_dtype())))
            put("n", pa.array(np.asarray(p["n"]).astype(np.int64)))
            for c in CELL_COLUMNS[1:] + PAIR_COLUMNS:
                if c not in p:
                    put(c, pa.nulls(m, pa.float64()))
                    continue
                v = np.ascontiguousarray(p[c], dtype=np.float64)
                nan = np.isnan(v)
                put(c, pa.array(v, mask=nan) if nan.any() else pa.array(v))
        if not parts:
            raise AssertionError("no cells")  # pragma: no cover - callers check for rows
        return pa.table({name: pa.chunked_array(chunks) for name, chunks in cols.items()})
