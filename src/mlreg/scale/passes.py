"""The passes after pass 1: what they ask for, and their numpy implementation.

* **The exact pass** (:class:`Pass2Request`): per slice, the calibration fit from the cells
  (``theta0``) is checked against every row: the pass returns the gradient and Hessian of the
  log-likelihood at ``theta0`` (one exact Newton step, which takes the ~5e-8 error of the
  bucket-mean fit to ~1e-14), and, for a model compared with the baseline, the moments of the
  two models' residuals that the paired (sandwich) interval needs, and the cross moments of the
  two models' AUC placements that the paired DeLong interval needs.
* **Refinement** (:class:`RefineRequest`): for the slices whose gate verdict the AUC bound
  leaves undecided, the unresolved units (score ranges ``[lo, hi]`` of one model in one slice,
  disjoint) are split into ``sub`` equal-width sub-buckets of the score; the sub-cells replace the
  units and the AUC is recomputed with a bound that shrinks ~``sub``-fold per pass (and becomes
  exact once every sub-cell holds one distinct score).

Both are expressed with slice *values*, not codes, so every engine (numpy, DuckDB, Spark) can
serve them; :mod:`mlreg.scale.sql` writes them as SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlreg.metrics import binary as B
from mlreg.scale.compute import Pass2Sums
from mlreg.scale.rows import RowEncoder, features
from mlreg.scale.spec import Spec

__all__ = ["SAND_COLUMNS", "NEWTON_COLUMNS", "SlicingParams", "Pass2Request", "RefineItem",
           "RefineRequest", "SUB_COLUMNS", "NumpyPasses", "SliceCoder"]

NEWTON_COLUMNS = ("h00", "h01", "h11", "g0", "g1")
SAND_COLUMNS = ("aa0", "aa1", "aa2", "bb0", "bb1", "bb2", "ab00", "ab10", "ab01", "ab11")
SUB_COLUMNS = ("item", "sub", "label", "n", "w", "w2", "s_min", "s_max")


@dataclass
class SlicingParams:
    """One slicing's slices (value tuples in ``k`` order) and the per-slice parameters."""

    index: int
    columns: tuple[str, ...]
    keys: list[tuple]
    theta: dict[str, np.ndarray] = field(default_factory=dict)  # model -> (K, 2)
    # model -> (key = k * ext_size + ext sorted, vp, vn): AUC placements of pass-1 units
    place: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass
class Pass2Request:
    slicings: list[SlicingParams]
    newton: tuple[str, ...] = ()  # models whose fit is polished
    sandwich: tuple[str, ...] = ()  # models (vs the baseline) needing the paired moments
    auc_cross: tuple[str, ...] = ()  # models (vs the baseline) needing DeLong cross moments


@dataclass(frozen=True)
class RefineItem:
    slicing: int
    columns: tuple[str, ...]
    key: tuple
    k: int
    model: str
    ext: int
    lo: float
    hi: float
    sub: int


@dataclass
class RefineRequest:
    items: list[RefineItem]


class SliceCoder:
    """Per batch, the slice index ``k`` of every row in each requested slicing (-1 when the
    row's values are not among the slicing's keys)."""

    def __init__(self, spec: Spec, slicings: list[tuple[tuple[str, ...], list[tuple]]]) -> None:
        self.encoder = RowEncoder(spec)
        self.slicings = slicings
        self.index = [{key: i for i, key in enumerate(keys)} for _, keys in slicings]
        self.luts: list[dict[tuple, int]] = [{} for _ in slicings]

    def codes(self, batch) -> list[np.ndarray]:
        from mlreg.scale.aggregates import pack_unique

        out = []
        for j, (cols, _) in enumerate(self.slicings):
            if not cols:
                out.append(np.zeros(batch.n, dtype=np.int64))
                continue
            uniq, inv = pack_unique([batch.codes[c] for c in cols])
            lut = self.luts[j]
            local = np.empty(len(uniq), dtype=np.int64)
            for i, row in enumerate(uniq):
                got = lut.get(row)
                if got is None:
                    values = tuple(self.encoder.dicts[c].values[v] for c, v in zip(cols, row,
                                                                                  strict=True))
                    got = lut[row] = self.index[j].get(values, -1)
                local[i] = got
            out.append(local[inv])
        return out


def _expit(eta):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.clip(eta, -700.0, 700.0)))


class NumpyPasses:
    """The exact pass and refinement over row batches (the stream engine's implementation)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    # ------------------------------------------------------------------ exact pass

    def pass2(self, batches, req: Pass2Request) -> dict[tuple[int, str], Pass2Sums]:
        spec = self.spec
        coder = SliceCoder(spec, [(s.columns, s.keys) for s in req.slicings])
        acc: dict[tuple[int, str, str], np.ndarray] = {}
        models = set(req.newton) | set(req.sandwich) | set(req.auc_cross)
        if req.sandwich or req.auc_cross:
            models.add(spec.baseline)
        luts = {(sp.index, m): _lookup(sp.place[m]) for sp in req.slicings for m in sp.place}
        for rb in batches:
            b = coder.encoder.encode(rb)
            if b.n == 0:
                continue
            ks = coder.codes(b)
            w = np.ones(b.n) if b.w is None else b.w
            w2 = w * w
            yf = b.y.astype(np.float64)
            x = {m: B.logit(b.scores[m]) for m in models}
            ext = {m: features(spec, b.scores[m], b.y).ext for m in models} \
                if req.auc_cross else {}
            for sp, k in zip(req.slicings, ks, strict=True):
                ok = k >= 0
                K = len(sp.keys)
                kk = np.where(ok, k, 0)
                mask = ok.astype(np.float64)
                mu, r = {}, {}
                for m in models:
                    th = sp.theta.get(m)
                    if th is None:
                        continue
                    t = np.nan_to_num(th[kk])
                    mu[m] = _expit(t[:, 0] + t[:, 1] * x[m])
                    r[m] = yf - mu[m]

                def add(key, cols, kk=kk, mask=mask, K=K):
                    arr = np.stack([np.bincount(kk, c * mask, minlength=K) for c in cols], axis=1)
                    acc[key] = acc.get(key, 0) + arr

                for m in req.newton:
                    if m not in mu:
                        continue
                    v = w * mu[m] * (1.0 - mu[m])
                    rw = w * r[m]
                    add((sp.index, m, "newton"), [v, v * x[m], v * x[m] * x[m], rw, rw * x[m]])
                base = spec.baseline
                for m in req.sandwich:
                    if m not in r or base not in r:
                        continue
                    ra, rb_ = r[m], r[base]
                    xa, xb = x[m], x[base]
                    q = w2 * ra * rb_
                    aa = w2 * ra * ra
                    bb = w2 * rb_ * rb_
                    add((sp.index, m, "sand"), [aa, aa * xa, aa * xa * xa, bb, bb * xb,
                                                bb * xb * xb, q, q * xa, q * xb, q * xa * xb])
                for m in req.auc_cross:
                    if m not in sp.place or base not in sp.place:
                        continue
                    va = _placement(luts[(sp.index, m)], kk, ext[m], b.y, spec.ext_size)
                    vb = _placement(luts[(sp.index, base)], kk, ext[base], b.y, spec.ext_size)
                    prod = w2 * va * vb
                    add((sp.index, m, "auc"), [prod * yf, prod * (1.0 - yf)])
        out: dict[tuple[int, str], Pass2Sums] = {}
        for sp in req.slicings:
            for m in spec.models:
                ps = Pass2Sums()
                if (sp.index, m, "newton") in acc:
                    ps.theta0 = sp.theta[m]
                    ps.newton = acc[(sp.index, m, "newton")]
                if (sp.index, m, "sand") in acc:
                    ps.sand = acc[(sp.index, m, "sand")]
                if (sp.index, m, "auc") in acc:
                    ps.auc_x = acc[(sp.index, m, "auc")]
                out[(sp.index, m)] = ps
        return out

    # ------------------------------------------------------------------ refinement

    def refine(self, batches, req: RefineRequest) -> Any:
        """Sub-cells (a pyarrow Table with :data:`SUB_COLUMNS`) of every requested unit."""
        import pyarrow as pa

        spec = self.spec
        groups: dict[tuple[int, str], list[int]] = {}
        slicings: dict[int, tuple[tuple[str, ...], list[tuple]]] = {}
        for i, it in enumerate(req.items):
            groups.setdefault((it.slicing, it.model), []).append(i)
            keys = slicings.setdefault(it.slicing, (it.columns, []))[1]
            if it.key not in keys:
                keys.append(it.key)
        order = sorted(slicings)
        coder = SliceCoder(spec, [slicings[s] for s in order])
        pos = {s: j for j, s in enumerate(order)}
        items = req.items
        acc: dict[int, Any] = {}
        S = max(it.sub for it in items) if items else 1
        for rb in batches:
            b = coder.encoder.encode(rb)
            if b.n == 0:
                continue
            ks = coder.codes(b)
            w = np.ones(b.n) if b.w is None else b.w
            for (sl, model), idx in groups.items():
                k = ks[pos[sl]]
                s = b.scores[model]
                local_keys = slicings[sl][1]
                by_k: dict[int, list[int]] = {}
                for i in idx:
                    by_k.setdefault(local_keys.index(items[i].key), []).append(i)
                for kk, ii in by_k.items():
                    rows = np.flatnonzero(k == kk)
                    if rows.size == 0:
                        continue
                    ii = sorted(ii, key=lambda i: items[i].lo)
                    lo = np.array([items[i].lo for i in ii])
                    hi = np.array([items[i].hi for i in ii])
                    sr = s[rows]
                    j = np.searchsorted(lo, sr, side="right") - 1
                    inside = (j >= 0) & (sr <= hi[np.maximum(j, 0)])
                    rows, sr, j = rows[inside], sr[inside], j[inside]
                    if rows.size == 0:
                        continue
                    width = hi[j] - lo[j]
                    subs = np.array([items[i].sub for i in ii])[j]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        sub = np.floor((sr - lo[j]) / width * subs)
                    sub = np.where(width > 0, np.clip(sub, 0, subs - 1), 0).astype(np.int64)
                    item = np.asarray(ii, dtype=np.int64)[j]
                    key = (item * S + sub) * 2 + b.y[rows]
                    wr = w[rows]
                    uk, inv = np.unique(key, return_inverse=True)
                    sums = np.stack([np.bincount(inv), np.bincount(inv, wr),
                                     np.bincount(inv, wr * wr)], axis=1).astype(np.float64)
                    smin = np.full(len(uk), np.inf)
                    smax = np.full(len(uk), -np.inf)
                    pw = wr > 0
                    np.minimum.at(smin, inv[pw], sr[pw])
                    np.maximum.at(smax, inv[pw], sr[pw])
                    for u, row, mn, mx in zip(uk.tolist(), sums, smin, smax, strict=True):
                        got = acc.get(u)
                        if got is None:
                            acc[u] = [row.copy(), mn, mx]
                        else:
                            got[0] += row
                            got[1] = min(got[1], mn)
                            got[2] = max(got[2], mx)
        keys = np.array(sorted(acc), dtype=np.int64)
        vals = [acc[int(k)] for k in keys]
        smin = np.array([v[1] for v in vals])
        smax = np.array([v[2] for v in vals])
        return pa.table({
            "item": keys // (2 * S), "sub": (keys // 2) % S, "label": keys % 2,
            "n": np.array([v[0][0] for v in vals], dtype=np.int64),
            "w": np.array([v[0][1] for v in vals]), "w2": np.array([v[0][2] for v in vals]),
            "s_min": pa.array(np.where(np.isfinite(smin), smin, np.nan),
                              mask=~np.isfinite(smin)),
            "s_max": pa.array(np.where(np.isfinite(smax), smax, np.nan),
                              mask=~np.isfinite(smax)),
        })


def _lookup(place):
    """Placement lookup tables: dense (one gather per row) when small enough, else sorted."""
    keys, vp, vn = place
    if keys.size and int(keys[-1]) < 20_000_000:
        size = int(keys[-1]) + 1
        dp = np.zeros(size)
        dn = np.zeros(size)
        dp[keys] = vp
        dn[keys] = vn
        return ("dense", dp, dn)
    return ("sorted", keys, vp, vn)


def _placement(lut, k, ext, y, E) -> np.ndarray:
    q = k * E + ext
    if lut[0] == "dense":
        _, dp, dn = lut
        q = np.minimum(q, dp.size - 1)
        return np.where(y == 1, dp[q], dn[q])
    _, keys, vp, vn = lut
    if keys.size == 0:
        return np.zeros(q.shape[0])
    i = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    found = keys[i] == q
    v = np.where(y == 1, vp[i], vn[i])
    return np.where(found, v, 0.0)
