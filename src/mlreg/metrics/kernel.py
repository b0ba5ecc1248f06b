"""Compiled passes for the engine: every slicing at once, no per-slicing partition.

The numpy engine (:mod:`mlreg.metrics.engine`) partitions each model's score-sorted rows once per
slicing and then works piece by piece. These kernels (numba, compiled on first use and cached
on disk) instead give every slice of every slicing one global id and walk the rows once:

* :func:`radix_argsort`: each model's score order (LSD radix sort of the float bits; stable).
* :func:`sorted_pass` (score order, per model, chunk by chunk): running class weights and
  average-precision sums per slice give every row's DeLong placement ``V`` and AP influence
  ``u`` in every slicing from counters held in cache (tie blocks are handled as blocks); the
  same walk fills the logit-cell moments of the calibration fit, each slice's class ranges,
  the means, reliability bins and confusion cells, and, when pairs are wanted, stores ``V``
  and ``u`` in score order.
* :func:`ece_pass` (rows in bootstrap-bucket order, :func:`counting_order`): the ECE
  bootstrap sums, whose per-bucket layout would miss the cache in any other order.
* :func:`row_pass` (any order; the driver uses the baseline's score order): the Fisher
  information and influence values at the fitted calibration and every paired
  candidate-vs-baseline term.
* :func:`ranges_pass`: per-slice logit ranges, only when one range for every slice would make
  the calibration cells too large.

The accumulators have the numpy engine's layout, so its finishing code (intervals, reasons)
is shared. Sums run in a different order than in the numpy engine: results agree to rounding.
Every pass reads its inputs in sequence; the driver gathers rows into each pass's order in
tight numpy loops, where the memory accesses overlap, instead of inside the long loop bodies.
"""

from __future__ import annotations

import math

import numpy as np

try:  # pragma: no cover - exercised by whichever of the two is installed
    import numba
except ImportError:  # pragma: no cover
    numba = None

__all__ = ["AVAILABLE", "ranges_pass", "sorted_pass", "row_pass", "ece_pass", "new_state",
           "CELLS_PER_UNIT"]

AVAILABLE = numba is not None
CELLS_PER_UNIT = 64.0
_EPS = float(np.finfo(np.float64).eps)
_ETA_CLIP = 700.0


def _jit(fn=None, **kw):
    if fn is None:
        return lambda f: _jit(f, **kw)
    if numba is None:  # pragma: no cover
        return fn
    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy", **kw)(fn)
    except RuntimeError:  # pragma: no cover - no writable cache location: compile each run
        return numba.njit(cache=False, nogil=True, error_model="numpy", **kw)(fn)


@_jit
def _logit(p):
    q = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(q) - math.log1p(-q)


@_jit
def ranges_pass(score, y, w, weighted, gids, xr):
    """Per slice id the min and max logit over its rows (``xr``), to size its calibration
    cells when one range for every slice would take too much memory."""
    n = score.shape[0]
    S = gids.shape[1]
    for i in range(n):
        x = _logit(score[i])
        for s in range(S):
            g = gids[i, s]
            if x < xr[g, 0]:
                xr[g, 0] = x
            if x > xr[g, 1]:
                xr[g, 1] = x


def new_state(G: int) -> np.ndarray:
    """Running per-slice state of :func:`sorted_pass` (carried from one chunk to the next):
    class weights, total weight and the two AP sums before the current block, their block
    parts, the block's precision and its denominator."""
    st = np.zeros((12, G))
    st[11] = 1.0
    return st


@_jit
def sorted_pass(ps, xs, lp1, lp0, y, w, weighted, gids, Wpos, Wneg, Wtot, flags, ths, nb,
                cell_off, cell_lo, cells, rng, swyx, state, vu, do_store, auc, auc_num, ap,
                ap_num, means, rel, tcells):
    """Walk a chunk of a model's rows in ascending score order (``ps`` sorted scores, ``xs``
    their logits, ``lp1``/``lp0`` their log losses for y = 1 / 0; ``y``, ``w``, ``gids``
    already gathered into that order; the chunk ends at a tie-block end).

    Fills ``auc`` (sum w2 V, sum w2 V^2, the same over positives), ``auc_num`` (sum over
    positives of w V), ``ap`` (sum w2 u^2, sum over positives of w2 u), ``ap_num`` (sum over
    positives of w * precision), the calibration cells, ``rng`` (min/max logit over the
    positives, then the negatives, weight > 0), ``swyx`` (sum of w y logit) and, with
    ``do_store``, ``vu[r, s] = (V, u)`` in the chunk's order; also every order-free sum of
    the model alone: the means (log loss, Brier, score), reliability bins and the confusion
    cells (n, w, w2) at each threshold (unweighted, the w and w2 copies of plain sums are left
    to the caller). ``flags``: auc, ap, calibration, log loss, Brier, mean score, reliability.
    Reading and writing only sequentially keeps the walk from stalling on cache misses.
    """
    n = ps.shape[0]
    S = gids.shape[1]
    T = ths.shape[0]
    do_auc, do_ap, do_cal, do_ll, do_br, do_ms, do_rel = (
        flags[0], flags[1], flags[2], flags[3], flags[4], flags[5], flags[6])
    CP = state[0]
    CN = state[1]
    CT = state[2]
    C1 = state[3]
    C2 = state[4]
    bP = state[5]
    bN = state[6]
    bT = state[7]
    b1 = state[8]
    b2 = state[9]
    prec = state[10]
    ns = state[11]
    G = CP.shape[0]
    mark = np.zeros(G, dtype=np.bool_)
    touched = np.empty(16, dtype=np.int64)
    i = 0
    while i < n:
        p = ps[i]
        e = i + 1
        while e < n and ps[e] == p:
            e += 1
        # the block of tied scores [i, e) (usually one row): first its sums per slice
        nt = 0
        for r in range(i, e):
            yi = y[r] != 0
            wi = w[r] if weighted else 1.0
            for s in range(S):
                g = gids[r, s]
                if not mark[g]:
                    mark[g] = True
                    if nt == touched.shape[0]:
                        bigger = np.empty(2 * nt, dtype=np.int64)
                        bigger[:nt] = touched
                        touched = bigger
                    touched[nt] = g
                    nt += 1
                    if do_ap:
                        nge = Wtot[g] - CT[g]
                        if nge > 0:
                            ns[g] = nge
                            prec[g] = (Wpos[g] - CP[g]) / nge
                        else:
                            ns[g] = 1.0
                            prec[g] = 0.0
                if yi:
                    bP[g] += wi
                    if do_ap:
                        q1 = wi / ns[g]
                        b1[g] += q1
                        b2[g] += q1 * prec[g]
                else:
                    bN[g] += wi
                bT[g] += wi
        # then every row's placement, influence and sums
        x = xs[i] if do_cal else 0.0
        cf = math.floor(x * 64.0)
        d = x - (cf + 0.5) / 64.0
        bn = np.int64(p * nb)
        if bn > nb - 1:
            bn = nb - 1
        for r in range(i, e):
            yi = y[r] != 0
            wi = w[r] if weighted else 1.0
            w2i = wi * wi
            yf = 1.0 if yi else 0.0
            ll = (lp1[r] if yi else lp0[r]) if do_ll else 0.0
            db = yf - p
            br = db * db
            for s in range(S):
                g = gids[r, s]
                if do_auc:
                    if yi:
                        den = Wneg[g]
                        V = (CN[g] + 0.5 * bN[g]) / (den if den > 0 else 1.0)
                    else:
                        den = Wpos[g]
                        V = (den - (CP[g] + 0.5 * bP[g])) / (den if den > 0 else 1.0)
                    t = w2i * V
                    auc[g, 0] += t
                    auc[g, 1] += t * V
                    if yi:
                        auc[g, 2] += t
                        auc[g, 3] += t * V
                        auc_num[g] += wi * V
                    if do_store:
                        vu[r, s, 0] = V
                if do_ap:
                    c2 = C2[g] + b2[g]
                    if yi:
                        u = prec[g] + (C1[g] + b1[g]) - c2
                        ap[g, 1] += w2i * u
                        ap_num[g] += wi * prec[g]
                    else:
                        u = -c2
                    ap[g, 0] += w2i * u * u
                    if do_store:
                        vu[r, s, 1] = u
                if do_cal:
                    if wi > 0:
                        j = 0 if yi else 2
                        if x < rng[g, j]:
                            rng[g, j] = x
                        if x > rng[g, j + 1]:
                            rng[g, j + 1] = x
                    if yi:
                        swyx[g] += wi * x
                    k = cell_off[g] + np.int64(cf) - cell_lo[g]
                    cells[k, 0] += wi
                    pw = wi * d
                    cells[k, 1] += pw
                    pw *= d
                    cells[k, 2] += pw
                    pw *= d
                    cells[k, 3] += pw
                    pw *= d
                    cells[k, 4] += pw
                    pw *= d
                    cells[k, 5] += pw
                    pw *= d
                    cells[k, 6] += pw
                # unweighted, the w and w2 sums equal the plain ones: the caller copies them
                if do_ll:
                    means[g, 0, 0] += wi * ll
                    means[g, 0, 2] += w2i * ll * ll
                    if weighted:
                        means[g, 0, 1] += w2i * ll
                if do_br:
                    means[g, 1, 0] += wi * br
                    means[g, 1, 2] += w2i * br * br
                    if weighted:
                        means[g, 1, 1] += w2i * br
                if do_ms:
                    means[g, 2, 0] += wi * p
                    means[g, 2, 2] += w2i * p * p
                    if weighted:
                        means[g, 2, 1] += w2i * p
                if do_rel:
                    rel[g, bn, 0] += 1.0
                    rel[g, bn, 2] += wi * p
                    rel[g, bn, 3] += wi * yf
                    if weighted:
                        rel[g, bn, 1] += wi
                for t in range(T):
                    c = (2 if p >= ths[t] else 0) + (1 if yi else 0)
                    tcells[g, t, 0, c] += 1.0
                    if weighted:
                        tcells[g, t, 1, c] += wi
                        tcells[g, t, 2, c] += w2i
        # the block's sums join the running sums
        for t in range(nt):
            g = touched[t]
            CP[g] += bP[g]
            CN[g] += bN[g]
            CT[g] += bT[g]
            C1[g] += b1[g]
            C2[g] += b2[g]
            bP[g] = 0.0
            bN[g] = 0.0
            bT[g] = 0.0
            b1[g] = 0.0
            b2[g] = 0.0
            mark[g] = False
        i = e


@_jit
def ece_pass(bks, P, y, w, weighted, gids, nb, eceS, eceWB):
    """The ECE bootstrap sums of every model over a chunk of rows gathered in bootstrap-bucket
    order (``bks`` their buckets, ``P`` models x rows their scores), so each bucket's sums stay
    in cache: ``eceS[m, bucket, g, bin] += w (y - p)`` and ``eceWB[m, bucket, g] += w``."""
    M = P.shape[0]
    S = gids.shape[1]
    for i in range(bks.shape[0]):
        bk = bks[i]
        wi = w[i] if weighted else 1.0
        yf = 1.0 if y[i] != 0 else 0.0
        for m in range(M):
            p = P[m, i]
            bn = np.int64(p * nb)
            if bn > nb - 1:
                bn = nb - 1
            r = wi * (yf - p)
            for s in range(S):
                g = gids[i, s]
                eceS[m, bk, g, bn] += r
                eceWB[m, bk, g] += wi


@_jit
def row_pass(y, w, weighted, gids, P, X, L, VU, Wtot, flags, ths, theta, cinv, bidx, dmeans,
             cells8, Hf, dphi, dauc, dap):
    """A chunk of rows of every model, in any order (``P``, ``X``, ``L``: models x rows of
    scores, logits and log losses; ``VU``: models x rows x slicings x (V, u) placements and AP
    influence): the Fisher information at the fitted calibration and every paired
    candidate-vs-baseline term (``bidx`` is the baseline's model index, -1 for none): mean
    deltas, joint (pred, baseline pred, y) w2 cells per threshold, calibration influence,
    DeLong placements and AP influence. ``flags``: log loss, Brier, mean score, calibration,
    auc pairs, ap pairs.
    """
    M = P.shape[0]
    S = gids.shape[1]
    T = ths.shape[0]
    do_ll, do_br, do_ms, do_cal, do_pv, do_pu = (
        flags[0], flags[1], flags[2], flags[3], flags[4], flags[5])
    paired = bidx >= 0
    vals = np.zeros((M, 3))
    pa = np.zeros(M)
    pb = np.zeros(M)
    pred = np.zeros((M, max(T, 1)), dtype=np.int64)
    for i in range(y.shape[0]):
        yi = 1 if y[i] != 0 else 0
        yf = float(yi)
        wi = w[i] if weighted else 1.0
        w2i = wi * wi
        if paired:
            for m in range(M):
                p = P[m, i]
                vals[m, 0] = L[m, i] if do_ll else 0.0
                d = yf - p
                vals[m, 1] = d * d
                vals[m, 2] = p
                for t in range(T):
                    pred[m, t] = 1 if p >= ths[t] else 0
        for s in range(S):
            g = gids[i, s]
            if do_cal:
                for m in range(M):
                    x = X[m, i]
                    eta = theta[m, g, 0] + theta[m, g, 1] * x
                    eta = min(max(eta, -_ETA_CLIP), _ETA_CLIP)
                    e = math.exp(-eta)
                    mu = 1.0 / (e + 1.0)
                    v = e * mu * mu * wi
                    Hf[m, g, 0] += v
                    v *= x
                    Hf[m, g, 1] += v
                    v *= x
                    Hf[m, g, 2] += v
                    if paired:
                        r = (yf - mu) * Wtot[g]
                        pa[m] = (cinv[m, g, 1] * x + cinv[m, g, 0]) * r
                        pb[m] = (cinv[m, g, 2] * x + cinv[m, g, 1]) * r
            if not paired:
                continue
            for m in range(M):
                if m == bidx:
                    continue
                for j in range(3):
                    if (j == 0 and do_ll) or (j == 1 and do_br) or (j == 2 and do_ms):
                        d = vals[m, j] - vals[bidx, j]
                        dmeans[m, g, j, 0] += w2i * d
                        dmeans[m, g, j, 1] += w2i * d * d
                for t in range(T):
                    cells8[m, g, t, pred[m, t] * 4 + pred[bidx, t] * 2 + yi] += w2i
                if do_cal:
                    da = pa[m] - pa[bidx]
                    db = pb[m] - pb[bidx]
                    dphi[m, g, 0] += w2i * da * da
                    dphi[m, g, 1] += w2i * db * db
                if do_pv:
                    dv = VU[m, i, s, 0] - VU[bidx, i, s, 0]
                    t2 = w2i * dv
                    dauc[m, g, 0] += t2
                    dauc[m, g, 1] += t2 * dv
                    if yi:
                        dauc[m, g, 2] += t2
                        dauc[m, g, 3] += t2 * dv
                if do_pu:
                    du = VU[m, i, s, 1] - VU[bidx, i, s, 1]
                    dap[m, g, 0] += w2i * du * du
                    if yi:
                        dap[m, g, 1] += w2i * du


@_jit
def radix_argsort(bits, ka, kb, ia, ib):
    """Stable ascending order of non-negative float64 scores given as their uint64 bits
    (``-0.0`` counts as ``0.0``): LSD radix sort on 8-bit digits, skipping the digits every
    key shares (the exponent bits of scores in [0, 1] mostly). ``ka, kb`` (uint64) and ``ia,
    ib`` (uint32) are work buffers of the same length; returns 0 when the order and the sorted
    bits ended in ``ia, ka``, 1 when in ``ib, kb``."""
    n = bits.shape[0]
    hist = np.zeros((8, 256), dtype=np.int64)
    neg0 = np.uint64(0x8000000000000000)
    for i in range(n):
        k = bits[i]
        if k == neg0:
            k = np.uint64(0)
        for d in range(8):
            hist[d, (k >> np.uint64(8 * d)) & np.uint64(255)] += 1
    src = 0  # which buffers hold the current order (after the first pass)
    first = True
    off = np.empty(256, dtype=np.int64)
    for d in range(8):
        if np.max(hist[d]) == n:  # one value for this digit: order unchanged
            continue
        total = 0
        for b in range(256):
            off[b] = total
            total += hist[d, b]
        shift = np.uint64(8 * d)
        ks, is_, kd, id_ = (ka, ia, kb, ib) if src == 0 else (kb, ib, ka, ia)
        if first:
            kd, id_ = ka, ia
            for i in range(n):
                k = bits[i]
                if k == neg0:
                    k = np.uint64(0)
                b = (k >> shift) & np.uint64(255)
                pos = off[b]
                off[b] = pos + 1
                kd[pos] = k
                id_[pos] = np.uint32(i)
            first = False
            src = 0
        else:
            for i in range(n):
                k = ks[i]
                b = (k >> shift) & np.uint64(255)
                pos = off[b]
                off[b] = pos + 1
                kd[pos] = k
                id_[pos] = is_[i]
            src = 1 - src
    if first:  # every score equal
        for i in range(n):
            k = bits[i]
            ka[i] = np.uint64(0) if k == neg0 else k
            ia[i] = np.uint32(i)
        src = 0
    return src


@_jit
def counting_order(keys, k):
    """Stable order of ``keys`` (integers in ``0..k-1``) by counting sort; uint32 positions."""
    n = keys.shape[0]
    counts = np.zeros(k + 1, dtype=np.int64)
    for i in range(n):
        counts[keys[i] + 1] += 1
    for j in range(k):
        counts[j + 1] += counts[j]
    out = np.empty(n, dtype=np.uint32)
    for i in range(n):
        b = keys[i]
        out[counts[b]] = np.uint32(i)
        counts[b] += 1
    return out


_ENGINE_KERNELS = ("sorted_pass", "row_pass", "ece_pass", "radix_argsort", "counting_order")


def warm() -> bool:
    """Whether the engine's kernels need no compiling now: compiled in this process already,
    or found in numba's on-disk cache (an index newer than this file). Unknown numba internals
    count as warm."""
    if numba is None:
        return False
    import os

    here = os.path.getmtime(__file__)
    for name in _ENGINE_KERNELS:
        fn = globals()[name]
        if fn.signatures:
            continue
        try:
            index = fn._cache._cache_file._index_path
        except AttributeError:  # pragma: no cover - another numba's internals
            return True
        if not (os.path.exists(index) and os.path.getmtime(index) >= here):
            return False
    return True


def warm_up() -> float:
    """Compile (or load from numba's cache) the engine's kernels on a tiny input; returns the
    seconds it took. For images and CI jobs that evaluate large files: run once at build time
    (``python -c "from mlreg.metrics.kernel import warm_up; warm_up()"``) and every evaluation
    after it starts warm."""
    import time

    from mlreg.metrics.engine import Engine, EngineSettings
    from mlreg.metrics.intervals import row_buckets
    from mlreg.metrics.slicing import Slicing, overall_slicing

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    n = 64
    score = rng.random(n)
    base = rng.random(n)
    y = (rng.random(n) < score).astype(np.int8)
    codes = (np.arange(n) % 2).astype(np.uint8)
    slicings = [overall_slicing(n), Slicing("column", ("c",), codes, [(("c", 0),), (("c", 1),)],
                                            np.bincount(codes))]
    for weight in (None, rng.random(n) + 0.5):
        settings = EngineSettings(kernel="numba", n_buckets=16, replicates=8)
        Engine(y, weight, {"m": score, "b": base}, "b", settings,
               row_buckets([y, score, base], 0, 16)).run_many(slicings)
    # score columns from pandas are often read-only: numba compiles those separately
    frozen = score.copy()
    frozen.flags.writeable = False
    work = [np.empty(n, dtype=np.uint64) for _ in range(2)] + [
        np.empty(n, dtype=np.uint32) for _ in range(2)]
    radix_argsort(frozen.view(np.uint64), *work)
    return time.perf_counter() - t0
