"""Drive the compiled kernels (:mod:`mlreg.metrics.kernel`) for a list of slicings.

:func:`run_compiled` returns the same :class:`~mlreg.metrics.engine.SlicingOutput` objects as
:meth:`Engine.run` does one slicing at a time, from these passes over the rows:

1. per model, in threads: the radix sort of its scores, then one walk in score order (rows
   gathered chunk by chunk) for the AUC / AP sums, the calibration cells, the means,
   reliability bins and confusion cells and, for paired deltas, every row's placement and AP
   influence per slicing (kept in score order);
2. the ECE bootstrap sums, rows visited by bootstrap bucket (split over threads);
3. the calibration fits on the cells (damped Newton, overall first, then every slice warm
   started from it; steep or non-converging slices are refitted on their rows);
4. the Fisher information and every paired term, rows visited in the baseline's score order
   (its placements read in sequence, the other models' gathered once per row), split into
   fixed row ranges across threads.

Partial sums are added in a fixed order, so the numbers do not depend on the thread count.
Slicings are processed in batches so the stored per-row placements stay within
``STORE_BUDGET`` bytes and the dense ECE bootstrap sums within ``DENSE_ECE_CELLS``; a slicing
too large for either on its own goes through the numpy passes.
"""

from __future__ import annotations

import math
import mmap
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from mlreg.metrics import binary as B
from mlreg.metrics import kernel as KN
from mlreg.metrics.engine import (
    _MEANS,
    DENSE_ECE_CELLS,
    ModelOutput,
    SlicingOutput,
    _sorted_with_perm,
    _Stats,
    class_reasons,
    cov_from_hessian,
    fit_cells,
    range_reasons,
)

if TYPE_CHECKING:
    from mlreg.metrics.engine import Engine
    from mlreg.metrics.slicing import Slicing

__all__ = ["run_compiled", "STORE_BUDGET"]

#: bytes of per-row placements (two float64 per row, slicing and model) held at once
STORE_BUDGET = 1280 * 2**20
_SORTED_CHUNK = 1 << 18
_BIG = 32 * 2**20
_DENSE_CELLS = 1 << 22  # calibration cells (7 moments each) laid out densely per slice
_CHUNK = 1 << 18
_ECE_PARTIAL_BYTES = 256 * 2**20


def big_empty(shape, dtype) -> np.ndarray:
    """``np.empty`` for large buffers. On Linux an anonymous mapping populated in one call
    (``MADV_POPULATE_WRITE``) with ordinary pages: numpy's buffers ask for transparent huge
    pages, whose first use cost up to 2 s per GB on this project's virtual machines, and
    threads faulting pages in at once wait on each other. Measured over the 10M-row benchmark,
    the full evaluation took 5.5-6.9 s this way against 6.4-7.2 s with ``np.empty`` and
    7.3-8.0 s with populated huge pages."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    nbytes = count * dtype.itemsize
    if nbytes < _BIG or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return np.empty(shape, dtype)
    try:
        m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, ValueError):
        return np.empty(shape, dtype)
    try:
        m.madvise(mmap.MADV_NOHUGEPAGE)
        m.madvise(getattr(mmap, "MADV_POPULATE_WRITE", 23))
    except (OSError, ValueError):
        pass  # an older kernel: pages fault in on first touch as with np.empty
    return np.frombuffer(m, dtype=dtype, count=count).reshape(shape)


def _rows_view(a: np.ndarray) -> np.ndarray:
    """A C-contiguous array seen as one opaque record per leading index (for take/put)."""
    if not a.flags.c_contiguous:
        raise ValueError("a C-contiguous array is needed")
    flat = a.reshape(a.shape[0], -1)
    return flat.view(np.dtype((np.void, a.itemsize * flat.shape[1]))).reshape(a.shape[0])


def run_compiled(eng: Engine, slicings: list[Slicing], warm: dict[str, np.ndarray] | None,
                 want: frozenset[str], n_jobs: int = 1) -> list[SlicingOutput]:
    """All models on every slicing (see the module docstring)."""
    run = _Run(eng, want, max(1, int(n_jobs)))
    outputs: list[SlicingOutput | None] = [None] * len(slicings)
    order = sorted(range(len(slicings)), key=lambda i: slicings[i].codes is not None)
    for batch in run.batches([slicings[i] for i in order]):
        idx = [order[j] for j in batch]
        if len(idx) == 1 and not run.fits([slicings[idx[0]]]):
            outputs[idx[0]] = eng._run_numpy(slicings[idx[0]], warm, want)
            continue
        res = run.batch([slicings[i] for i in idx], warm)
        for i, out in zip(idx, res, strict=True):
            outputs[i] = out
            if warm is None and slicings[i].codes is None and "calibration" in want:
                warm = {m: o.theta[0] for m, o in out.models.items() if o.theta is not None}
    return outputs  # type: ignore[return-value]


class _Run:
    def __init__(self, eng: Engine, want: frozenset[str], n_jobs: int) -> None:
        self.eng = eng
        self.want = want
        self.n_jobs = n_jobs
        self.cfg = eng.settings
        self.n = eng.n
        self.models = list(eng.scores)
        self.M = len(self.models)
        self.bidx = self.models.index(eng.baseline) if eng.paired else -1
        self.y = np.ascontiguousarray(eng.y, dtype=np.int8)
        self.weighted = eng.w is not None
        self.w = (np.ascontiguousarray(eng.w, dtype=np.float64) if self.weighted
                  else np.zeros(1))
        self.do_auc = "auc" in want
        self.do_ap = "pr_auc" in want
        self.do_cal = "calibration" in want
        self.do_rel = "ece" in want
        self.intervals = eng.settings.intervals
        self.do_ece = eng.do_ece and "ece" in want and self.intervals
        self.store_on = self.bidx >= 0 and (self.do_auc or self.do_ap) and self.intervals
        self.sorted: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.bucket_order = None
        self.bucket_sorted = None
        self.positions: dict[int, np.ndarray] = {}
        self.buckets = (np.ascontiguousarray(eng.buckets, dtype=np.int32) if self.do_ece
                        else np.zeros(1, dtype=np.int32))

    # ------------------------------------------------------------------ batching

    def _ece_cells(self, K: int) -> int:
        return K * self.cfg.n_bins * self.cfg.n_buckets if self.do_ece else 0

    def fits(self, slicings: list[Slicing]) -> bool:
        G = sum(sl.n_slices for sl in slicings)
        store = self.M * self.n * len(slicings) * 16 if self.store_on else 0
        return (self._ece_cells(G) <= DENSE_ECE_CELLS
                and (store <= STORE_BUDGET or len(slicings) == 1))

    def batches(self, slicings: list[Slicing]) -> list[list[int]]:
        out: list[list[int]] = []
        cur: list[int] = []
        for i in range(len(slicings)):
            if cur and self.fits([slicings[j] for j in cur + [i]]):
                cur.append(i)
                continue
            if cur:
                out.append(cur)
            cur = [i]
        if cur:
            out.append(cur)
        return out

    # ------------------------------------------------------------------ one batch

    def batch(self, slicings: list[Slicing], warm) -> list[SlicingOutput]:
        eng, n, M = self.eng, self.n, self.M
        stats = [_Stats.build(sl.codes, sl.n_slices, eng.y, eng.w) for sl in slicings]
        for st in stats:
            if np.any(st.n == 0):
                raise ValueError("every slice of a slicing must hold at least one row")
        Ks = [sl.n_slices for sl in slicings]
        offs = np.zeros(len(Ks) + 1, dtype=np.int64)
        np.cumsum(Ks, out=offs[1:])
        G = int(offs[-1])
        S = len(slicings)
        gids = big_empty((n, S), np.int32)
        for s, sl in enumerate(slicings):
            if sl.codes is None:
                gids[:, s] = offs[s]
            else:
                np.add(sl.codes, np.int32(offs[s]), out=gids[:, s], casting="unsafe")
        Wpos = np.concatenate([st.Wpos for st in stats]).astype(np.float64)
        Wneg = np.concatenate([st.Wneg for st in stats]).astype(np.float64)
        Wtot = np.concatenate([st.W for st in stats]).astype(np.float64)
        # per model: each row's (V, u) per slicing in its score order (filled by its walk)
        store: list[np.ndarray] = [np.zeros((1, 1, 2))] * M
        per_model = {}

        def walk(mi: int) -> None:
            """One model's walk in its score order (see the module docstring, pass 1)."""
            name = self.models[mi]
            score = self._score(name)
            perm, ps = self.sorted[name]
            rng = np.empty((G, 4))
            rng[:, 0::2] = np.inf
            rng[:, 1::2] = -np.inf
            swyx = np.zeros(G)
            if self.do_cal:
                # cells of width 1/64 in logit space: every slice gets the whole logit range of
                # the data (empty cells cost nothing later) unless that is too large, then the
                # range of each slice from a pass over the rows
                ends = B.logit(np.array([ps[0], ps[-1]]))
                clo, chi = (int(v) for v in np.floor(ends * KN.CELLS_PER_UNIT))
                if G * (chi - clo + 1) <= _DENSE_CELLS:
                    lo = np.full(G, clo, dtype=np.int64)
                    hi = np.full(G, chi, dtype=np.int64)
                else:
                    xr = np.empty((G, 2))
                    xr[:, 0] = np.inf
                    xr[:, 1] = -np.inf
                    KN.ranges_pass(score, self.y, self.w, self.weighted, gids, xr)
                    lo = np.floor(xr[:, 0] * KN.CELLS_PER_UNIT).astype(np.int64)
                    hi = np.floor(xr[:, 1] * KN.CELLS_PER_UNIT).astype(np.int64)
                cell_off = np.zeros(G + 1, dtype=np.int64)
                np.cumsum(hi - lo + 1, out=cell_off[1:])
                cells = np.zeros((int(cell_off[-1]), 7))
            else:
                lo = np.zeros(G, dtype=np.int64)
                cell_off = np.zeros(G + 1, dtype=np.int64)
                cells = np.zeros((1, 7))
            cfg = self.cfg
            nb, T = cfg.n_bins, len(cfg.thresholds)
            sums = {"auc": np.zeros((G, 4)), "auc_num": np.zeros(G), "ap": np.zeros((G, 2)),
                    "ap_num": np.zeros(G), "means": np.zeros((G, 3, 3)),
                    "rel": np.zeros((G, nb, 4)), "tcells": np.zeros((G, max(T, 1), 3, 4))}
            do_ll = "log_loss" in self.want
            flags = np.array([self.do_auc, self.do_ap, self.do_cal] + [
                m in self.want for m in _MEANS] + [self.do_rel], dtype=np.bool_)
            ths = np.array(cfg.thresholds, dtype=np.float64)
            state = KN.new_state(G)
            if self.store_on:
                store[mi] = big_empty((n, S, 2), np.float64)
            gv = _rows_view(gids)
            dummy = np.zeros(1)
            a = 0
            while a < n:
                e = min(a + _SORTED_CHUNK, n)
                if e < n:  # never split a block of tied scores
                    e = int(np.searchsorted(ps, ps[e - 1], side="right"))
                pr = perm[a:e]
                pc = ps[a:e]
                gs = np.take(gv, pr).view(np.int32).reshape(e - a, S)
                ys = np.take(self.y, pr)
                ws = np.take(self.w, pr) if self.weighted else self.w
                # logs in numpy (vectorised), per row of the chunk
                xs = B.logit(pc) if self.do_cal else dummy
                lp1 = lp0 = dummy
                if do_ll:
                    lp1 = np.log(np.clip(pc, B.EPS, 1.0 - B.EPS))
                    np.negative(lp1, out=lp1)
                    lp0 = np.log(np.clip(1.0 - pc, B.EPS, 1.0 - B.EPS))
                    np.negative(lp0, out=lp0)
                vu = store[mi][a:e] if self.store_on else store[mi]
                KN.sorted_pass(pc, xs, lp1, lp0, ys, ws, self.weighted, gs, Wpos, Wneg, Wtot,
                               flags, ths, nb, cell_off, lo, cells, rng, swyx, state, vu,
                               self.store_on,
                               sums["auc"], sums["auc_num"], sums["ap"], sums["ap_num"],
                               sums["means"], sums["rel"], sums["tcells"])
                a = e
            if not self.weighted:  # the walk leaves the w and w2 copies of plain sums out
                sums["means"][:, :, 1] = sums["means"][:, :, 0]
                sums["rel"][:, :, 1] = sums["rel"][:, :, 0]
                sums["tcells"][:, :, 1] = sums["tcells"][:, :, 0]
                sums["tcells"][:, :, 2] = sums["tcells"][:, :, 0]
            sums.update(rng=rng, swyx=swyx, cell_off=cell_off, lo=lo, cells=cells)
            per_model[mi] = sums

        self._map(self._sort, range(M))
        # beside the walks: the bucket order of the ECE pass, and where each row of the
        # baseline's order sits in every other model's order (the paired pass)
        extra = []
        if self.do_ece and self.bucket_order is None:
            extra.append(self._bucket_order)
        if self.store_on:
            extra += [lambda mi=mi: self._position(mi) for mi in range(M) if mi != self.bidx]
        self._map(lambda task: task(), [lambda mi=mi: walk(mi) for mi in range(M)] + extra)
        ece = self._ece(gids, G) if self.do_ece else None
        self.bucket_order = self.bucket_sorted = None  # 8 bytes a row, rebuilt if needed again
        # calibration fits, overall slicing first (its fit warm-starts the others)
        fits = [[None] * M for _ in range(S)]
        theta = np.zeros((M, G, 2))
        cinv = np.zeros((M, G, 3))
        if self.do_cal:
            for s in sorted(range(S), key=lambda s: slicings[s].codes is not None):
                for mi, name in enumerate(self.models):
                    fit = self._fit(stats[s], per_model[mi], offs[s], Ks[s], slicings[s], gids,
                                    s, name, None if warm is None else warm.get(name))
                    fits[s][mi] = fit
                    sl = slice(offs[s], offs[s + 1])
                    theta[mi, sl] = np.nan_to_num(fit["theta"])
                    cinv[mi, sl] = np.nan_to_num(fit["cinv"])
                if warm is None and slicings[s].codes is None:
                    warm = {}
                    for mi, name in enumerate(self.models):
                        th = fits[s][mi]["theta"][0]
                        if fits[s][mi]["good"][0]:
                            warm[name] = th.copy()
        sums = self._rows(gids, G, Wtot, theta, cinv, store)
        return [self._finish(slicings[s], stats[s], offs[s], Ks[s], per_model, sums, fits[s],
                             ece)
                for s in range(S)]

    # ------------------------------------------------------------------ helpers

    def _score(self, name: str) -> np.ndarray:
        return np.ascontiguousarray(self.eng.scores[name], dtype=np.float64)

    def _map(self, fn, items) -> list:
        items = list(items)
        if self.n_jobs == 1 or len(items) == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(min(self.n_jobs, len(items))) as ex:
            return list(ex.map(fn, items))

    def _fit(self, st, pm, off, K, slicing, gids, s, name, warm) -> dict:
        """The calibration fit of every slice of one slicing from its cells."""
        reasons = class_reasons(st)
        range_reasons(pm["rng"][off:off + K], reasons)
        co = pm["cell_off"]
        a, b = int(co[off]), int(co[off + K])
        Mc = pm["cells"][a:b]
        sizes = np.diff(co[off:off + K + 1])
        kk = np.repeat(np.arange(K), sizes)
        cf = np.arange(b - a) - np.repeat(co[off:off + K] - a, sizes) + np.repeat(
            pm["lo"][off:off + K], sizes)
        keep = Mc[:, 0] != 0
        cells = {"c": (cf[keep] + 0.5) / KN.CELLS_PER_UNIT, "k": kk[keep], "M": Mc[keep],
                 "swyx": pm["swyx"][off:off + K]}
        defined = np.array([r is None for r in reasons])
        theta, converged, _, H = fit_cells(st, cells, defined, warm)
        cinv = cov_from_hessian(H)
        exact = defined & (~converged | (np.abs(theta[:, 1]) > 0.25 * KN.CELLS_PER_UNIT))
        if exact.any():
            score = self._score(name)
            for k in np.flatnonzero(exact):
                rows = np.flatnonzero(gids[:, s] == off + k) if slicing.codes is not None \
                    else np.arange(self.n)
                start = (theta[k, 0], theta[k, 1]) if converged[k] else (
                    (0.0, 1.0) if warm is None else (float(warm[0]), float(warm[1])))
                if not all(math.isfinite(v) for v in start):
                    start = (0.0, 1.0)
                fit = B.fit_logistic(B.logit(score[rows]), self.y[rows],
                                     None if not self.weighted else self.w[rows], start=start)
                if fit.converged:
                    theta[k] = (fit.intercept, fit.slope)
                    cinv[k] = (fit.cov[0, 0], fit.cov[0, 1], fit.cov[1, 1])
                    converged[k] = True
                else:
                    converged[k] = False
        for k in range(K):
            if defined[k] and not converged[k]:
                reasons[k] = B.NOT_CONVERGED
        good = np.array([r is None for r in reasons])
        return {"theta": theta, "cinv": cinv, "good": good, "reasons": reasons}

    def _sort(self, mi: int) -> None:
        """A model's score order and sorted scores (radix sort of the float bits)."""
        name = self.models[mi]
        if name in self.sorted:
            return
        n = self.n
        score = self._score(name)
        if n and score.min() >= 0.0:  # NaN fails this too
            ka, kb = big_empty(n, np.uint64), big_empty(n, np.uint64)
            ia, ib = big_empty(n, np.uint32), big_empty(n, np.uint32)
            src = KN.radix_argsort(score.view(np.uint64), ka, kb, ia, ib)
            perm, keys = (ia, ka) if src == 0 else (ib, kb)
            self.sorted[name] = (perm, keys.view(np.float64))
        else:
            self.sorted[name] = _sorted_with_perm(score)

    def _bucket_order(self) -> None:
        """Rows by bootstrap bucket (counting sort) and the bucket of each position."""
        NB = self.cfg.n_buckets
        self.bucket_order = KN.counting_order(self.buckets, NB)
        counts = np.bincount(self.buckets, minlength=NB)
        self.bucket_sorted = np.repeat(np.arange(NB, dtype=np.int32), counts)

    def _position(self, mi: int) -> None:
        """Where each row of the baseline's score order sits in model ``mi``'s order."""
        n = self.n
        inv = np.empty(n, dtype=np.uint32)
        inv[self.sorted[self.models[mi]][0]] = np.arange(n, dtype=np.uint32)
        self.positions[mi] = np.take(inv, self.sorted[self.models[self.bidx]][0])

    def _ece(self, gids, G) -> tuple[np.ndarray, np.ndarray]:
        """ECE bootstrap sums (models x buckets x slices x bins): rows gathered chunk by chunk
        in bootstrap-bucket order, so each bucket's sums stay in cache."""
        cfg = self.cfg
        M, n, nb, NB = self.M, self.n, cfg.n_bins, cfg.n_buckets
        if self.bucket_order is None:
            self._bucket_order()
        order, bks = self.bucket_order, self.bucket_sorted
        scores = [self._score(name) for name in self.models]
        gv = _rows_view(gids)
        S = gids.shape[1]

        def part(bounds):
            a0, e0 = bounds
            S_ = np.zeros((M, NB, G, nb))
            WB = np.zeros((M, NB, G))
            buf = np.empty((M, _CHUNK))
            for a in range(a0, e0, _CHUNK):
                e = min(a + _CHUNK, e0)
                rows = order[a:e]
                P = buf if e - a == _CHUNK else np.empty((M, e - a))  # C-contiguous either way
                for mi in range(M):
                    np.take(scores[mi], rows, out=P[mi])
                ws = np.take(self.w, rows) if self.weighted else self.w
                gs = np.take(gv, rows).view(np.int32).reshape(e - a, S)
                KN.ece_pass(bks[a:e], P, np.take(self.y, rows), ws, self.weighted, gs, nb, S_,
                            WB)
            return S_, WB

        # fixed ranges summed in order: the same numbers for any number of threads
        # (at most 4 partial sums, and at most _ECE_PARTIAL_BYTES of them)
        cells = M * NB * G * (nb + 1) * 8
        n_parts = max(1, min(4, -(-n // (1 << 20)), _ECE_PARTIAL_BYTES // cells))
        step = max(1, -(-n // n_parts))
        parts = self._map(part, [(a, min(a + step, n)) for a in range(0, max(n, 1), step)])
        S_, WB = parts[0]
        for s2, w2 in parts[1:]:
            S_ += s2
            WB += w2
        return S_, WB

    def _rows(self, gids, G, Wtot, theta, cinv, store) -> dict:
        """The Fisher information and every paired term. With a baseline, rows are visited in
        the baseline's score order: its placements (``store``, written in that order by its
        walk) are read in sequence and every other model's are gathered once per row."""
        cfg = self.cfg
        M, n = self.M, self.n
        T = len(cfg.thresholds)
        S = gids.shape[1]

        def zeros():
            return {"dmeans": np.zeros((M, G, 3, 2)), "cells8": np.zeros((M, G, max(T, 1), 8)),
                    "Hf": np.zeros((M, G, 3)), "dphi": np.zeros((M, G, 2)),
                    "dauc": np.zeros((M, G, 4)), "dap": np.zeros((M, G, 2))}

        if not self.intervals or not (self.do_cal or self.bidx >= 0):
            return zeros()
        scores = [self._score(name) for name in self.models]
        b = self.bidx
        order = None
        comp = self.positions
        if b >= 0:
            order, ps_b = self.sorted[self.models[b]]
            for mi in range(M):
                if self.store_on and mi != b and mi not in comp:
                    self._position(mi)
        store_v = [_rows_view(store[mi]) for mi in range(M)] if self.store_on else None
        gv = _rows_view(gids)
        flags = np.array([m in self.want for m in _MEANS] + [
            self.do_cal, self.store_on and self.do_auc, self.store_on and self.do_ap],
            dtype=np.bool_)
        ths = np.array(cfg.thresholds, dtype=np.float64)
        do_ll = "log_loss" in self.want
        dummy = np.zeros((M, 1))

        def part(bounds):
            a, e = bounds
            acc = zeros()
            if order is None:
                ys, gs = self.y[a:e], gids[a:e]
                P = np.stack([sc[a:e] for sc in scores])
                ws = self.w[a:e] if self.weighted else self.w
            else:
                rows = order[a:e]
                ys = np.take(self.y, rows)
                ws = np.take(self.w, rows) if self.weighted else self.w
                gs = np.take(gv, rows).view(np.int32).reshape(e - a, S)
                P = np.empty((M, e - a))
                for mi in range(M):
                    if mi == b:
                        P[mi] = ps_b[a:e]
                    else:
                        np.take(scores[mi], rows, out=P[mi])
            X = B.logit(P) if self.do_cal else dummy
            L = dummy
            if b >= 0 and do_ll:
                q = 1.0 - P
                np.copyto(q, P, where=(ys != 0)[None, :])
                np.clip(q, B.EPS, 1.0 - B.EPS, out=q)
                L = np.log(q)
                np.negative(L, out=L)
            if store_v is not None:
                VU = np.empty((M, e - a, S, 2))
                for mi in range(M):
                    if mi == b:
                        VU[mi] = store[mi][a:e]
                    else:
                        VU[mi] = np.take(store_v[mi], comp[mi][a:e]).view(np.float64).reshape(
                            e - a, S, 2)
            else:
                VU = np.zeros((M, 1, 1, 2))
            KN.row_pass(ys, ws, self.weighted, gs, P, X, L, VU, Wtot, flags, ths, theta,
                        cinv, b, acc["dmeans"], acc["cells8"], acc["Hf"], acc["dphi"],
                        acc["dauc"], acc["dap"])
            return acc

        # fixed ranges summed in order: the same numbers for any number of threads
        parts = self._map(part, [(a, min(a + _CHUNK, n)) for a in range(0, max(n, 1), _CHUNK)])
        total = parts[0]
        for p in parts[1:]:
            for k, v in p.items():
                total[k] += v
        return total

    def _finish(self, slicing, st, off, K, per_model, sums, fits, ece) -> SlicingOutput:
        eng = self.eng
        cfg = self.cfg
        sl = slice(off, off + K)
        T = len(cfg.thresholds)
        names = sorted(range(self.M), key=lambda mi: mi != self.bidx)
        outputs: dict[str, ModelOutput] = {}
        base_out = None
        for mi in names:
            name = self.models[mi]
            is_base = mi == self.bidx
            base = None if is_base else base_out
            pm = per_model[mi]
            acc = {"auc": pm["auc"][sl], "auc_num": pm["auc_num"][sl], "ap": pm["ap"][sl],
                   "ap_num": pm["ap_num"][sl], "rel": pm["rel"][sl]}
            for j, mname in enumerate(_MEANS):
                acc[mname] = pm["means"][sl, j]
            if T:
                c = pm["tcells"][sl, :T]
                acc["cells_n"], acc["cells_w"], acc["cells_w2"] = c[:, :, 0], c[:, :, 1], c[:, :, 2]
            if base is not None:
                acc["d_auc"] = sums["dauc"][mi, sl]
                acc["d_ap"] = sums["dap"][mi, sl]
                for j, mname in enumerate(_MEANS):
                    acc["d_" + mname] = sums["dmeans"][mi, sl, j]
                if T:
                    acc["cells8"] = sums["cells8"][mi, sl, :T]
            reps = None
            if ece is not None:
                S_ = np.ascontiguousarray(ece[0][mi, :, off:off + K, :].transpose(1, 2, 0))
                WB = np.ascontiguousarray(ece[1][mi, :, off:off + K].T)
                reps = eng._ece_reps_dense(S_, WB)
            out = ModelOutput()
            eng._finish_counts(out, st)
            eng._finish_main(out, st, acc, self.want, base, False, reps)
            if self.do_cal:
                f = fits[mi]
                cal = {"theta": f["theta"], "cinv": f["cinv"], "good": f["good"],
                       "reasons": f["reasons"], "Hf": sums["Hf"][mi, sl],
                       "dphi": sums["dphi"][mi, sl]}
                eng._finish_calibration(out, st, cal, base)
            outputs[name] = out
            if is_base:
                base_out = out
        return SlicingOutput(slicing, st, outputs)
