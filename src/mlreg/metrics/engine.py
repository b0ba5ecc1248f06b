"""The vectorised engine: every built-in binary metric for every slice of a slicing at once.

Two implementations of its passes share the finishing code (intervals, deltas, reasons):

* the compiled kernels (:mod:`mlreg.metrics.kernel`, driven by :mod:`mlreg.metrics.compiled`;
  numba): one walk over each model's score order computes every slicing at once, with no
  per-slicing partition. :meth:`Engine.run_many` uses them from ``COMPILED_MIN_ROWS`` rows
  (``EngineSettings.kernel="auto"``), where they are several times faster;
* the numpy passes below, for small inputs (no compilation wait on a cold cache) and for
  slicings too large for the kernels' dense sums. Tests run the engine checks on both.

Why the numpy passes are fast:

* Each model's scores are sorted **once** (:func:`sort_permutation`: ``np.sort`` of packed uint64
  keys ``(high score bits, row index)`` plus an exact repair of the rare collisions, cheaper than
  ``argsort``). Per row, the sorted order keeps one packed record: score bits, row index,
  bootstrap bucket, label and the baseline's prediction bits at every threshold.
* For a slicing with codes ``g``, a stable partition of the score-sorted records by ``g``
  (:func:`_partition`) lays every slice out contiguously *and already sorted by score*, so no
  per-slice sort is needed. It streams the records chunk by chunk, sorts each chunk by code in
  cache and writes one run per slice, instead of a global argsort and a gather that misses the
  cache on almost every row.
* The partitioned rows are processed in cache-sized pieces (whole slices, or parts of one large
  slice with carried prefix sums). Per piece everything is integer prefix counts, per-slice
  ``np.add.reduceat`` over contiguous ranges and a few element-wise passes: exact tie-aware AUC
  from prefix counts at tie-block boundaries (its placement values give DeLong's variance as
  moments), average precision and its influence function (the float cumulative sums run over
  the positives only), log loss / Brier / mean score moments, reliability bins (contiguous
  because scores are sorted), bucket sums for the ECE bootstrap, confusion cells at every
  threshold from prefix counts at the threshold position.
* The calibration fit runs *before* the main pass: one pass compresses every slice into cells
  of width 1/64 in logit space (rows are sorted, so cells are contiguous) holding the moments
  ``sum w (x - c)^k``, k <= 6; damped Newton-Raphson, warm-started from the overall fit, then
  iterates on the cells with a 4th-order Taylor expansion of the logistic terms (relative error
  ~1e-13 at slope 1; slices with ``|slope| > 16`` are refitted with exact row passes). The main
  pass evaluates the exact Fisher information and the fit's influence values at the result.
* Paired deltas keep the baseline's per-row values (placements, AP influence, calibration
  influence, score) in row order (one scattered record per row); every other model gathers
  them for its own rows (``np.take``, one random access per row).

All numbers agree with :mod:`mlreg.metrics.binary` to rounding (tested).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlreg.metrics import binary as B
from mlreg.metrics.intervals import (
    kish_n,
    normal_interval,
    percentile_interval,
    poisson_replicates,
    small_sample_factor,
    wilson,
    z_value,
)
from mlreg.metrics.slicing import Slicing

__all__ = [
    "sort_permutation",
    "ModelData",
    "EngineSettings",
    "Column",
    "DeltaColumn",
    "ModelOutput",
    "SlicingOutput",
    "Engine",
    "ENGINE_METRICS",
]

PIECE_ROWS = 1 << 16
NEWTON_TOL = 1e-7  # on the step; quadratic convergence leaves an error ~ step**2
NEWTON_MAX_ITER = 50
DENSE_ECE_CELLS = 1 << 23
_ETA_CLIP = 700.0

#: metric names the engine computes natively (thresholded ones at any threshold)
ENGINE_METRICS = frozenset({
    "count", "weight", "base_rate", "mean_score", "auc", "pr_auc", "log_loss", "brier",
    "calibration_slope", "calibration_intercept", "ece", "precision", "recall", "tpr", "fpr",
    "f1",
})
_MEANS = ("log_loss", "brier", "mean_score")
_IDX_MASK = np.uint64(0xFFFFFFFF)
_BUCKET_SHIFT = np.uint64(32)
_Y_SHIFT = np.uint64(48)
_PRED_SHIFT = 49
MAX_THRESHOLDS = 15
#: "auto" runs the compiled kernels from this many rows when they are compiled already (in
#: this process or numba's disk cache), and from COMPILED_COLD_MIN_ROWS when they would first
#: have to compile: the one-off compilation (~7 s on 2 cores) outweighs what they save below
#: that (measured at 10M rows with intervals: numpy passes 16.6 s on one thread, kernels 6.5 s)
COMPILED_MIN_ROWS = 200_000
COMPILED_COLD_MIN_ROWS = 8_000_000
#: the numpy passes run slicings in threads only below this many rows (memory)
NUMPY_THREADS_MAX_ROWS = 2_000_000


# --------------------------------------------------------------------------- sorting


def sort_permutation(s: np.ndarray) -> np.ndarray:
    """Exact stable argsort of scores in [0, 1] (ties keep row order).

    Packs ``(score bits >> shift, row index)`` into uint64, sorts with ``np.sort`` (cheaper than
    ``argsort``), then repairs the order inside runs whose truncated bits collide.
    """
    return _sorted_with_perm(np.asarray(s, dtype=np.float64))[0].astype(np.intp)


def _sorted_with_perm(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(perm, s[perm])`` for :func:`sort_permutation` (``perm`` int32 when it fits).

    The sort key is ``(order-preserving score code >> shift) << b | row`` with ``b`` bits for
    the row. The score code subtracts the smallest positive score's exponent from the float bits
    (scores in [0, 1] span few binades), so more mantissa bits fit and truncation collisions,
    repaired afterwards, are rare. Work is chunked: large temporaries cost page faults.
    """
    n = s.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.intp), s[:0]
    b = max(1, int(n - 1).bit_length())
    if b > 40:
        perm = np.argsort(s, kind="stable")
        return perm, np.take(s, perm)
    top = np.uint64(0x3FF0000000000000)  # bits of 1.0
    lowest = top
    for a, e in _chunks(n):
        bits = s[a:e].view(np.uint64)
        pos = bits[(bits != 0) & (bits < np.uint64(1 << 63))]  # positive scores (not +-0.0)
        if pos.size:
            lowest = min(lowest, pos.min())
    base = (lowest >> np.uint64(52)) << np.uint64(52)  # exponent of the smallest positive
    off = base - np.uint64(1)  # positive scores map to >= 1, zeros to 0
    width = int(top - off).bit_length()
    shift = np.uint64(max(width - (64 - b), 0))
    key = np.empty(n, dtype=np.uint64)
    for a, e in _chunks(n):
        k = (s[a:e] + 0.0).view(np.uint64)  # + 0.0 maps -0.0 to 0.0
        k -= off * (k != 0)
        k >>= shift
        k <<= np.uint64(b)
        k |= np.arange(a, e, dtype=np.uint64)
        key[a:e] = k
    key.sort()
    perm = np.empty(n, dtype=np.int32 if n < 2**31 else np.intp)
    mask = np.uint64((1 << b) - 1)
    sv = np.empty(n)
    for a, e in _chunks(n):
        perm[a:e] = key[a:e] & mask
        np.take(s, perm[a:e], out=sv[a:e])
    if shift == 0 or not np.any(sv[1:] < sv[:-1]):
        return perm, sv
    # repair: re-sort (by score, then row) inside runs of equal truncated keys
    firsts = []
    for a, e in _chunks(n - 1):
        same = (key[a:e] >> np.uint64(b)) == (key[a + 1:e + 1] >> np.uint64(b))
        firsts.append(np.flatnonzero(same) + a)
    first = np.concatenate(firsts)  # i where positions i and i + 1 share a truncated key
    pos = np.union1d(first, first + 1)
    run = np.cumsum(~np.isin(pos - 1, first))  # a run starts where i - 1 does not collide
    sub = perm[pos]
    order = np.lexsort((sub, s[sub], run))
    sub = sub[order]
    perm[pos] = sub
    sv[pos] = s[sub]  # only the repaired positions moved
    return perm, sv


CHUNK = 1 << 18


def _chunks(n: int, size: int = CHUNK):
    for a in range(0, n, size):
        yield a, min(a + size, n)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class EngineSettings:
    thresholds: tuple[float, ...] = (0.5,)
    want: frozenset[str] = frozenset({"auc", "pr_auc", "log_loss", "brier", "mean_score",
                                      "calibration", "ece"})
    n_bins: int = 10
    confidence: float = 0.95
    replicates: int = 200
    seed: int = 0
    n_buckets: int = 1024
    piece_rows: int = PIECE_ROWS
    #: "auto" (compiled kernels from COMPILED_MIN_ROWS rows when numba is installed),
    #: "numba" or "numpy"
    kernel: str = "auto"
    #: False: point estimates only; the compiled kernels then skip the per-row placements, the
    #: Fisher/influence pass and the ECE bootstrap sums (the intervals they would give are
    #: meaningless and callers blank them)
    intervals: bool = True


class ModelData:
    """One model's scores prepared once: global score order and packed sorted records.

    ``rec[:, 0]`` holds the sorted scores' bits, ``rec[:, 1]`` the row index (bits 0-31), bucket
    (32-47), label (48) and the baseline's prediction at threshold ``j`` (bit 49 + j); then the
    weights' bits (``wcol``) when weighted and the logits' bits (``xcol``) when calibrating.
    """

    def __init__(self, name: str, score: np.ndarray, label: np.ndarray,
                 weight: np.ndarray | None, buckets: np.ndarray | None,
                 base_pred: list[np.ndarray], need_logit: bool) -> None:
        self.name = name
        self.s = score
        n = score.shape[0]
        perm, ps = _sorted_with_perm(np.asarray(score, dtype=np.float64))
        self.perm = perm
        cols = 2 + (weight is not None) + need_logit
        rec = np.empty((n, cols), dtype=np.uint64)
        self.wcol = 2 if weight is not None else None
        self.xcol = cols - 1 if need_logit else None
        # pack the per-row fields in row order, then move them with one gather (chunked: large
        # temporaries cost page faults)
        q = np.empty(n, dtype=np.uint64)
        for a, e in _chunks(n):
            qq = np.arange(a, e, dtype=np.uint64)
            if buckets is not None:
                qq |= buckets[a:e].astype(np.uint64) << _BUCKET_SHIFT
            qq |= label[a:e].astype(np.uint64) << _Y_SHIFT
            for j, pred in enumerate(base_pred):
                qq |= pred[a:e].astype(np.uint64) << np.uint64(_PRED_SHIFT + j)
            q[a:e] = qq
        for a, e in _chunks(n):
            pa = perm[a:e]
            rec[a:e, 0] = ps[a:e].view(np.uint64)
            rec[a:e, 1] = np.take(q, pa)
            if weight is not None:
                rec[a:e, 2] = np.take(weight, pa).view(np.uint64)
            if need_logit:
                rec[a:e, self.xcol] = B.logit(ps[a:e]).view(np.uint64)
        del q, ps
        self.rec = rec


@dataclass
class Column:
    """One metric over the K slices of a slicing (arrays of length K)."""

    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    method: str | None
    n: np.ndarray
    reason: list[str | None]
    se: np.ndarray | None = None


@dataclass
class DeltaColumn:
    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    method: str | None
    reason: list[str | None]


@dataclass
class ModelOutput:
    columns: dict[str, Column] = field(default_factory=dict)
    deltas: dict[str, DeltaColumn] = field(default_factory=dict)
    reliability: dict[str, np.ndarray] = field(default_factory=dict)
    cells: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    theta: np.ndarray | None = None
    rows: np.ndarray | None = None  # baseline only, while its slicing runs: per-row values
    inv: np.ndarray | None = None  # in row order (inv is no longer used: always None)
    row_cols: dict[str, int] = field(default_factory=dict)
    ece_reps: np.ndarray | None = None


@dataclass
class _Stats:
    """Score-free totals per slice: sizes, weights by class, squared weights by class."""

    K: int
    starts: np.ndarray
    n: np.ndarray
    npos: np.ndarray
    nneg: np.ndarray
    W: np.ndarray
    Wpos: np.ndarray
    Wneg: np.ndarray
    W2: np.ndarray
    W2pos: np.ndarray
    W2neg: np.ndarray

    @classmethod
    def build(cls, codes: np.ndarray | None, K: int, y: np.ndarray,
              w: np.ndarray | None) -> _Stats:
        cnt = np.zeros(2 * K, dtype=np.int64)
        ws = np.zeros(2 * K)
        w2 = np.zeros(2 * K)
        for a, e in _chunks(y.shape[0]):
            c = y[a:e].astype(np.int64)
            if codes is not None:
                c += codes[a:e].astype(np.int64) * 2
            cnt += np.bincount(c, minlength=2 * K)
            if w is not None:
                ws += np.bincount(c, w[a:e], minlength=2 * K)
                w2 += np.bincount(c, w[a:e] * w[a:e], minlength=2 * K)
        cnt = cnt.reshape(K, 2)
        if w is None:
            ws = cnt.astype(np.float64)
            w2 = ws
        else:
            ws = ws.reshape(K, 2)
            w2 = w2.reshape(K, 2)
        n = cnt.sum(axis=1)
        starts = np.zeros(K + 1, dtype=np.int64)
        np.cumsum(n, out=starts[1:])
        return cls(K, starts, n, cnt[:, 1], cnt[:, 0], ws.sum(axis=1), ws[:, 1].copy(),
                   ws[:, 0].copy(), w2.sum(axis=1), w2[:, 1].copy(), w2[:, 0].copy())


@dataclass
class SlicingOutput:
    slicing: Slicing
    stats: _Stats
    models: dict[str, ModelOutput]


@dataclass
class _Piece:
    a: int
    b: int
    k0: int
    k1: int
    sizes: np.ndarray
    split: bool

    def __post_init__(self) -> None:
        self.G = self.k1 - self.k0
        self.m = self.b - self.a
        self.ls = np.zeros(self.G, dtype=np.int64)
        if self.G > 1:
            np.cumsum(self.sizes[:-1], out=self.ls[1:])
        self.le = self.ls + self.sizes

    def S(self, arr: np.ndarray) -> np.ndarray:
        """Per-slice sums of a per-row array."""
        if self.G == 1:
            return np.array([arr.sum()])
        return np.add.reduceat(arr, self.ls)

    def E(self, per_slice: np.ndarray):
        """Expand per-slice values to rows (a scalar when the piece holds one slice)."""
        if self.G == 1:
            return float(per_slice[0])
        return np.repeat(per_slice, self.sizes)


def _safe(d):
    return np.where(d > 0, d, 1.0)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / _safe(den), np.nan)


def cn_delta(CPi, Ni, ls, le, cut) -> np.ndarray:
    """Unweighted confusion cells (tn, fn, fp, tp) per slice of a piece from prefix counts."""
    return np.stack([Ni[cut] - Ni[ls], CPi[cut] - CPi[ls], Ni[le] - Ni[cut],
                     CPi[le] - CPi[cut]], axis=1).astype(np.float64)


def _centered(m2: np.ndarray, m1: np.ndarray, w2: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``sum w2 (v - c)^2`` from raw moments ``sum w2 v^2`` and ``sum w2 v``; results at the
    rounding level of the raw moments (a variance that is really zero) become exactly 0."""
    out = m2 - 2 * c * m1 + c * c * w2
    scale = np.abs(m2) + c * c * np.abs(w2)
    return np.where(out > 1e-12 * scale, out, 0.0)


def _expit_parts(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, e)`` with ``e = exp(-eta)`` and ``mu = 1 / (1 + e)`` (eta clipped to +-700)."""
    e = np.clip(eta, -_ETA_CLIP, _ETA_CLIP)
    np.negative(e, out=e)
    np.exp(e, out=e)
    mu = e + 1.0
    np.reciprocal(mu, out=mu)
    return mu, e


# --------------------------------------------------------------------------- the engine


class Engine:
    """All built-in metrics of several models over the same labels and weights.

    ``scores`` maps model name -> scores (row order). ``baseline`` names the model the others are
    compared with (paired deltas); None means no deltas. ``buckets`` (row order) are the
    bootstrap buckets, needed for ECE intervals.
    """

    def __init__(self, label: np.ndarray, weight: np.ndarray | None,
                 scores: Mapping[str, np.ndarray], baseline: str | None,
                 settings: EngineSettings, buckets: np.ndarray | None = None) -> None:
        if len(settings.thresholds) > MAX_THRESHOLDS:
            raise ValueError(f"at most {MAX_THRESHOLDS} distinct thresholds")
        self.y = label
        self.w = weight
        self.scores = dict(scores)
        self.baseline = baseline
        self.settings = settings
        self.buckets = buckets
        self.n = label.shape[0]
        if self.n >= 2**32:
            raise ValueError("the engine handles fewer than 2**32 rows")
        self.z = z_value(settings.confidence)
        if baseline is not None and baseline not in self.scores:
            raise ValueError(f"baseline {baseline!r} is not among the models")
        self.paired = baseline is not None and len(self.scores) > 1
        want = settings.want
        self.do_ece = "ece" in want and buckets is not None
        self.reps = (poisson_replicates(settings.seed, settings.replicates, settings.n_buckets)
                     if self.do_ece else None)
        self.models: dict[str, ModelData] = {}
        self._scratch = _Scratch()

    def prepare(self, name: str) -> ModelData:
        """Sort one model (thread-safe; call for every model before :meth:`run`)."""
        base = self.scores[self.baseline] if self.baseline is not None else None
        base_pred = [] if base is None else [base >= t for t in self.settings.thresholds]
        md = ModelData(name, self.scores[name], self.y, self.w, self.buckets, base_pred,
                       "calibration" in self.settings.want)
        self.models[name] = md
        return md

    # ------------------------------------------------------------------ public

    def compiled(self) -> bool:
        """Whether :meth:`run_many` uses the compiled kernels (see ``EngineSettings.kernel``)."""
        from mlreg.metrics import kernel as KN

        mode = self.settings.kernel
        if mode == "numba":
            if not KN.AVAILABLE:
                raise ValueError("the compiled engine needs numba (pip install numba)")
            return True
        if mode == "numpy" or not KN.AVAILABLE:
            return False
        if self.n >= COMPILED_COLD_MIN_ROWS:
            return True
        return self.n >= COMPILED_MIN_ROWS and KN.warm()

    def run_many(self, slicings: list[Slicing], warm: dict[str, np.ndarray] | None = None,
                 want: frozenset[str] | None = None, n_jobs: int = 1) -> list[SlicingOutput]:
        """All models on every slicing: the compiled kernels walk the rows once for all of
        them; the numpy passes run slicing by slicing (in ``n_jobs`` threads below
        NUMPY_THREADS_MAX_ROWS rows), the overall slicing first so its calibration fit can
        warm-start the others."""
        want = self.settings.want if want is None else want
        if self.compiled():
            from mlreg.metrics.compiled import run_compiled

            return run_compiled(self, list(slicings), warm, want, n_jobs)
        outputs: list[SlicingOutput | None] = [None] * len(slicings)
        first = [i for i, sl in enumerate(slicings) if sl.codes is None][:1]
        for i in first:
            outputs[i] = self._run_numpy(slicings[i], warm, want)
            if warm is None and "calibration" in want:
                warm = {m: o.theta[0] for m, o in outputs[i].models.items()
                        if o.theta is not None}
        rest = [i for i in range(len(slicings)) if i not in first]
        # each thread holds its own partitioned copy of the sorted rows (~64 bytes a row)
        if n_jobs > 1 and len(rest) > 1 and self.n < NUMPY_THREADS_MAX_ROWS:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_jobs) as ex:
                list(ex.map(self.prepare, [m for m in self.scores if m not in self.models]))
                done = list(ex.map(lambda i: self._run_numpy(slicings[i], warm, want), rest))
        else:
            done = [self._run_numpy(slicings[i], warm, want) for i in rest]
        for i, out in zip(rest, done, strict=True):
            outputs[i] = out
        return outputs  # type: ignore[return-value]

    def run(self, slicing: Slicing, warm: dict[str, np.ndarray] | None = None,
            want: frozenset[str] | None = None) -> SlicingOutput:
        """All models on one slicing (:meth:`run_many` with one slicing)."""
        return self.run_many([slicing], warm, want)[0]

    def _run_numpy(self, slicing: Slicing, warm: dict[str, np.ndarray] | None = None,
                   want: frozenset[str] | None = None) -> SlicingOutput:
        """All models on one slicing; the baseline first so the others can pair with it."""
        for name in self.scores:
            if name not in self.models:
                self.prepare(name)
        K = slicing.n_slices
        st = _Stats.build(slicing.codes, K, self.y, self.w)
        if np.any(st.n == 0):
            raise ValueError("every slice of a slicing must hold at least one row")
        want = self.settings.want if want is None else want
        names = sorted(self.scores, key=lambda m: m != self.baseline)
        outputs: dict[str, ModelOutput] = {}
        base_out = None
        for name in names:
            is_base = name == self.baseline
            out = self._run_model(slicing, st, self.models[name], want,
                                  None if warm is None else warm.get(name),
                                  base=None if is_base else base_out,
                                  keep=self.paired and is_base)
            outputs[name] = out
            if self.paired and is_base:
                base_out = out
        for out in outputs.values():
            out.rows = out.inv = None
        return SlicingOutput(slicing, st, outputs)

    # ------------------------------------------------------------------ pieces

    def _pieces(self, starts: np.ndarray, P: np.ndarray) -> list[_Piece]:
        K = starts.shape[0] - 1
        size_cap = self.settings.piece_rows
        pieces: list[_Piece] = []
        k = 0
        while k < K:
            size = int(starts[k + 1] - starts[k])
            if size > size_cap:
                a, end = int(starts[k]), int(starts[k + 1])
                while a < end:
                    b = min(a + size_cap, end)
                    if b < end:  # never split a block of tied scores
                        b = _block_end(P, b, end)
                    pieces.append(_Piece(a, b, k, k + 1, np.array([b - a]), True))
                    a = b
                k += 1
                continue
            k0 = k
            total = 0
            while k < K:
                size = int(starts[k + 1] - starts[k])
                if k > k0 and (total + size > size_cap or size > size_cap):
                    break
                total += size
                k += 1
            pieces.append(_Piece(int(starts[k0]), int(starts[k]), k0, k,
                                 np.diff(starts[k0:k + 1]), False))
        return pieces

    # ------------------------------------------------------------------ one model

    def _run_model(self, slicing: Slicing, st: _Stats, md: ModelData, want: frozenset[str],
                   warm: np.ndarray | None, base: ModelOutput | None,
                   keep: bool) -> ModelOutput:
        K = st.K
        n = self.n
        weighted = self.w is not None
        sc = self._scratch
        if slicing.codes is None or K == 1:
            rec = md.rec
        else:
            rec = _partition(md.rec, md.perm, slicing.codes, st.starts,
                             sc.get("rec", md.rec.shape, np.uint64))
        P = rec[:, 0].view(np.float64)
        Q = rec[:, 1]
        Wc = None
        if weighted:
            Wc = sc.get("w", (n,), np.float64)
            np.copyto(Wc, rec[:, md.wcol].view(np.float64))
        pieces = self._pieces(st.starts, P)
        do_cal = "calibration" in want
        X = Y8 = None
        if do_cal:
            X = sc.get("x", (n,), np.float64)
            np.copyto(X, rec[:, md.xcol].view(np.float64))
            Y8 = sc.get("y8", (n,), np.int8)
            for a, e in _chunks(n):
                Y8[a:e] = (Q[a:e] >> _Y_SHIFT) & np.uint64(1)
        out = ModelOutput()
        self._finish_counts(out, st)
        cal = None
        if do_cal:
            cal = self._newton(st, pieces, X, Y8, Wc, warm)
        self._main_pass(out, st, pieces, P, Q, Wc, X, cal, want, base, keep)
        if do_cal:
            self._finish_calibration(out, st, cal, base)
        return out

    # ------------------------------------------------------------------ calibration fit

    def _newton(self, st: _Stats, pieces: list[_Piece], X: np.ndarray, Y8: np.ndarray,
                Wc: np.ndarray | None, warm: np.ndarray | None) -> dict:
        """Fit the calibration intercept and slope of every slice; returns the fit state.

        One pass over the rows (sorted by logit inside each slice) finds the constant or
        separated slices and compresses every slice into cells of width ``1/64`` in logit
        space holding the moments ``sum w (x - c)^k``, k = 0..6, about the cell centre ``c``.
        Damped Newton-Raphson then runs on the cells: a 4th-order Taylor expansion of the
        logistic terms about each centre gives the likelihood, gradient and Hessian with a
        relative error below ``(|slope| / 128)^5 / 120`` (~1e-13 at slope 1). Slices whose slope
        makes that bound loose (``|slope| > 16``), or that do not converge, are refitted with
        exact Newton passes over their rows; the main pass then evaluates the exact Fisher
        information at the fitted parameters.
        """
        K = st.K
        reasons = class_reasons(st)
        cells = self._cells(st, pieces, X, Y8, Wc, reasons)
        defined = np.array([r is None for r in reasons])
        theta, converged, failed, H = fit_cells(st, cells, defined, warm)
        exact = defined & (~converged | (np.abs(theta[:, 1]) > 0.25 * _CELLS_PER_UNIT))
        if exact.any():
            start = np.where(np.isfinite(theta), theta, 0.0)
            start[exact & ~converged] = (0.0, 1.0) if warm is None else warm
            theta[exact] = start[exact]

            def row_sums(th, active, want_ll):
                sums = np.zeros((K, 6))
                for pc in pieces:
                    if active[pc.k0:pc.k1].any():
                        self._newton_sums(pc, th, X, Y8, Wc, sums, want_ll)
                return sums

            c2, f2, h2 = _damped_newton(K, theta, exact.copy(), row_sums,
                                        max_iter=NEWTON_MAX_ITER, tol=NEWTON_TOL, skip_ll=True)
            converged = np.where(exact, c2, converged)
            failed = np.where(exact, f2, failed)
            H = np.where(exact[:, None], h2, H)
        cinv = cov_from_hessian(H)
        # slices where Newton failed: the reference fit (line search, from (0, 1)) on their rows
        for k in np.flatnonzero(~converged & defined):
            a, b = int(st.starts[k]), int(st.starts[k + 1])
            fit = B.fit_logistic(X[a:b], Y8[a:b], None if Wc is None else Wc[a:b])
            if fit.converged:
                theta[k] = (fit.intercept, fit.slope)
                cinv[k] = (fit.cov[0, 0], fit.cov[0, 1], fit.cov[1, 1])
                converged[k] = True
        for k in range(K):
            if defined[k] and not converged[k]:
                reasons[k] = B.NOT_CONVERGED
        good = np.array([r is None for r in reasons])
        return {"theta": theta, "cinv": cinv, "good": good, "reasons": reasons,
                "Hf": np.zeros((K, 3)), "dphi": np.zeros((K, 2))}

    def _cells(self, st, pieces, X, Y8, Wc, reasons) -> dict:
        """One pass: class ranges of the logit per slice (constant / separated slices get a
        reason), the exact ``sum w y x`` per slice, and the logit-cell moments."""
        K = st.K
        rng_ = np.empty((K, 4))  # min over positives, max over positives, min neg, max neg
        rng_[:, 0::2] = np.inf
        rng_[:, 1::2] = -np.inf
        swyx = np.zeros(K)
        centers, slices, moments = [], [], []
        for pc in pieces:
            a, b, k0, m = pc.a, pc.b, pc.k0, pc.m
            x = X[a:b]
            y8 = Y8[a:b]
            w = None if Wc is None else Wc[a:b]
            keep = y8 != 0 if w is None else (y8 != 0) & (w > 0)
            drop = y8 == 0 if w is None else (y8 == 0) & (w > 0)
            for j, member in ((0, keep), (2, drop)):
                idx = np.flatnonzero(member)  # x ascends inside a slice: ends are the extremes
                if idx.size == 0:
                    continue
                lo = np.searchsorted(idx, pc.ls)
                hi = np.searchsorted(idx, pc.le) - 1
                has = hi >= lo
                ks = np.flatnonzero(has) + k0
                rng_[ks, j] = np.minimum(rng_[ks, j], x[idx[lo[has]]])
                rng_[ks, j + 1] = np.maximum(rng_[ks, j + 1], x[idx[hi[has]]])
            yx = x * y8
            swyx[k0:pc.k1] += pc.S(yx if w is None else yx * w)
            cf = np.floor(x * _CELLS_PER_UNIT)
            newc = np.empty(m, dtype=bool)
            newc[0] = True
            np.not_equal(cf[1:], cf[:-1], out=newc[1:])
            newc[pc.ls] = True
            cs = np.flatnonzero(newc)
            center = (cf[cs] + 0.5) / _CELLS_PER_UNIT
            d = x - np.repeat(center, np.diff(np.append(cs, m)))
            mom = np.empty((cs.shape[0], 7))
            pw = d.copy() if w is None else w * d
            mom[:, 0] = np.diff(np.append(cs, m)) if w is None else np.add.reduceat(w, cs)
            for k in range(1, 7):
                mom[:, k] = np.add.reduceat(pw, cs)
                if k < 6:
                    pw *= d
            centers.append(center)
            slices.append(k0 + np.searchsorted(pc.ls, cs, side="right") - 1)
            moments.append(mom)
        range_reasons(rng_, reasons)
        return {"c": np.concatenate(centers), "k": np.concatenate(slices),
                "M": np.concatenate(moments), "swyx": swyx}

    @staticmethod
    def _newton_sums(pc: _Piece, theta, X, Y8, Wc, sums, want_ll: bool = True) -> None:
        """Add (H00, H01, H11, g0, g1, loglik) of every slice in the piece to ``sums``."""
        a, b, k0, k1 = pc.a, pc.b, pc.k0, pc.k1
        x = X[a:b]
        yf = Y8[a:b].astype(np.float64)
        eta = pc.E(theta[k0:k1, 0]) + pc.E(theta[k0:k1, 1]) * x
        mu, e = _expit_parts(eta)
        v = e * mu * mu  # mu (1 - mu)
        r = yf - mu
        lrow = None
        if want_ll:
            # log-likelihood y*eta - log(1 + exp(eta)) = (y - 1) * eta - log1p(exp(-eta))
            np.log1p(e, out=e)
            lrow = (yf - 1.0) * eta
            lrow -= e
        if Wc is not None:
            wv = Wc[a:b]
            v *= wv
            r *= wv
            if lrow is not None:
                lrow *= wv
        vx = v * x
        sl = slice(k0, k1)
        sums[sl, 0] += pc.S(v)
        sums[sl, 1] += pc.S(vx)
        vx *= x
        sums[sl, 2] += pc.S(vx)
        sums[sl, 3] += pc.S(r)
        r *= x
        sums[sl, 4] += pc.S(r)
        if lrow is not None:
            sums[sl, 5] += pc.S(lrow)

    # ------------------------------------------------------------------ main pass

    def _main_pass(self, out, st, pieces, P, Q, Wc, X, cal, want, base, keep) -> None:
        cfg = self.settings
        K = st.K
        n = self.n
        weighted = Wc is not None
        paired = base is not None
        do_auc = "auc" in want
        do_ap = "pr_auc" in want
        do_ece = self.do_ece and "ece" in want
        do_rel = "ece" in want
        do_cal = cal is not None
        means = [m for m in _MEANS if m in want]
        ths = cfg.thresholds
        T = len(ths)
        nb, NB = cfg.n_bins, cfg.n_buckets

        acc: dict[str, np.ndarray] = {}

        def zeros(name, *shape):
            acc[name] = np.zeros(shape)

        if do_auc:
            zeros("auc", K, 4)  # sum w2 V, sum w2 V^2, sum_pos w2 V, sum_pos w2 V^2
            zeros("auc_num", K)
        if do_ap:
            zeros("ap", K, 2)  # sum w2 u^2, sum_pos w2 u
            zeros("ap_num", K)
        for name in means:
            zeros(name, K, 3)
        if do_rel:
            zeros("rel", K, nb, 4)
        if T:
            zeros("cells_w", K, T, 4)
            zeros("cells_w2", K, T, 4)
            zeros("cells_n", K, T, 4)
        if paired:
            if do_auc:
                zeros("d_auc", K, 4)
            if do_ap:
                zeros("d_ap", K, 2)
            for name in means:
                zeros("d_" + name, K, 2)
            if T:
                zeros("cells8", K, T, 8)
        dense_ece = do_ece and K * nb * NB <= DENSE_ECE_CELLS
        if do_ece:
            if dense_ece:
                ece_S = np.zeros(K * nb * NB)
                ece_WB = np.zeros(K * NB)
            else:
                sparse = {"ek": [], "ev": [], "wk": [], "wv": []}
        carry = np.zeros((K, 5))  # cp, cn, ct, c1, c2 of a slice split over pieces

        row_cols: dict[str, int] = {}
        for name, on in (("V", do_auc), ("u", do_ap), ("pa", do_cal), ("pb", do_cal),
                         ("p", bool(means))):
            if on:
                row_cols[name] = len(row_cols)
        rows = (self._scratch.get("rows", (n, len(row_cols)), np.float64)
                if keep and row_cols else None)
        if rows is not None:
            # kept in row order (one scattered record per row), so the others gather their
            # rows' baseline values with one random access each
            rtype = np.dtype((np.void, 8 * len(row_cols)))
            rows_v = rows.view(rtype)
            rows_v.shape = (n,)  # raises rather than copies
        bcols = base.row_cols if paired else {}

        for pc in pieces:
            a, b, k0, k1, m, G = pc.a, pc.b, pc.k0, pc.k1, pc.m, pc.G
            sl = slice(k0, k1)
            p = np.ascontiguousarray(P[a:b])
            q = np.ascontiguousarray(Q[a:b])
            y8 = ((q >> _Y_SHIFT) & np.uint64(1)).astype(np.int8)
            yf = y8.astype(np.float64)
            yb = y8.view(np.bool_)
            need_idx = keep or paired
            idx = (q & _IDX_MASK).astype(np.intp) if need_idx else None
            if weighted:
                w = Wc[a:b]
                w2 = w * w
                yw = w * yf
            else:
                w = w2 = None
                yw = yf
            brow = (np.take(base.rows, idx, axis=0)
                    if paired and base.rows is not None else None)
            mine: dict[str, np.ndarray] = {}
            # ---- prefix counts (integer) and weights
            CPi = np.zeros(m + 1, dtype=np.int64)
            np.cumsum(y8, out=CPi[1:])
            if weighted:
                CT = np.zeros(m + 1)
                np.cumsum(w, out=CT[1:])
                pp = np.flatnonzero(y8)
                cpw = np.zeros(pp.shape[0] + 1)
                np.cumsum(w[pp], out=cpw[1:])
                CP = cpw[CPi]
                CN = CT - CP
            else:
                CP = CPi.astype(np.float64)
                CT = np.arange(m + 1, dtype=np.float64)
                CN = CT - CP
                pp = None
            ls = pc.ls
            need_rank = do_auc or do_ap
            if need_rank:
                newb = np.empty(m, dtype=bool)
                newb[0] = True
                np.not_equal(p[1:], p[:-1], out=newb[1:])
                newb[ls] = True
                ties = not bool(newb.all())
                if ties:
                    bstart = np.flatnonzero(newb)
                    bend = np.append(bstart[1:], m)
                    bid = np.cumsum(newb) - 1
                    bs = bstart[bid]
                    be = bend[bid]
                    CPi_be = CPi[be]
                else:
                    bs = be = None
                    CPi_be = CPi[1:]
                # most work happens at the positives only (rare for CTR-like data)
                pp = pp if pp is not None else np.flatnonzero(y8)
                seg_p = (np.repeat(np.arange(G), CPi[pc.le] - CPi[ls]) if G > 1
                         else np.zeros(pp.shape[0], dtype=np.int64))
                bs_p = bs[pp] if ties else pp
                be_p = be[pp] if ties else pp + 1
                w_p = w[pp] if weighted else None
                w2_p = w2[pp] if weighted else None
                offP_s = carry[sl, 0] - CP[ls]
                offN_s = carry[sl, 1] - CN[ls]
                wpos_s, wneg_s = st.Wpos[sl], st.Wneg[sl]

                def segsum_p(vals, seg_p=seg_p, G=G):
                    return np.bincount(seg_p, vals, minlength=G)
            if do_auc:
                # negatives: V01 = (positives above + half the tied ones) / Wpos
                cp_mid = 0.5 * (CP[bs] + CP[be]) if ties else CP[:-1]
                V = pc.E(wpos_s - offP_s) - cp_mid
                V *= pc.E(1.0 / _safe(wpos_s))
                # positives: V10 = (negatives below + half the tied ones) / Wneg
                cn_mid_p = 0.5 * (CN[bs_p] + CN[be_p])
                v10 = (cn_mid_p + offN_s[seg_p]) / _safe(wneg_s)[seg_p]
                V[pp] = v10
                mine["V"] = V
                a4 = acc["auc"]
                wV = V if not weighted else w2 * V
                a4[sl, 0] += pc.S(wV)
                a4[sl, 1] += pc.S(wV * V)
                wv10 = v10 if not weighted else w2_p * v10
                a4[sl, 2] += segsum_p(wv10)
                a4[sl, 3] += segsum_p(wv10 * v10)
                acc["auc_num"][sl] += segsum_p(v10 if not weighted else w_p * v10)
                if brow is not None:
                    dV = V - brow[:, bcols["V"]]
                    d4 = acc["d_auc"]
                    wd = dV if not weighted else w2 * dV
                    d4[sl, 0] += pc.S(wd)
                    d4[sl, 1] += pc.S(wd * dV)
                    dp = dV[pp]
                    wdp = dp if not weighted else w2_p * dp
                    d4[sl, 2] += segsum_p(wdp)
                    d4[sl, 3] += segsum_p(wdp * dp)
            if do_ap:
                # precision at every positive's threshold, from prefix sums at its block start
                offT_s = carry[sl, 2] - CT[ls]
                nge_p = (st.W[sl] - offT_s)[seg_p] - CT[bs_p]
                tp_p = (wpos_s - offP_s)[seg_p] - CP[bs_p]
                okn = nge_p > 0
                ns_p = np.where(okn, nge_p, 1.0)
                prec_p = np.where(okn, tp_p / ns_p, 0.0)
                acc["ap_num"][sl] += segsum_p(prec_p if not weighted else w_p * prec_p)
                q1 = (1.0 if not weighted else w_p) / ns_p
                c1 = np.zeros(pp.shape[0] + 1)
                np.cumsum(q1, out=c1[1:])
                c2 = np.zeros(pp.shape[0] + 1)
                np.cumsum(q1 * prec_p, out=c2[1:])
                off1_s = carry[sl, 3] - c1[CPi[ls]]
                off2_s = carry[sl, 4] - c2[CPi[ls]]
                # influence (times pi): y (prec + C1) - C2, C over positives up to the block end
                u = np.take(c2, CPi_be)
                u += pc.E(off2_s)
                np.negative(u, out=u)
                cbe_p = CPi_be[pp]
                u_p = prec_p + c1[cbe_p] + off1_s[seg_p] - c2[cbe_p] - off2_s[seg_p]
                u[pp] = u_p
                mine["u"] = u
                a2 = acc["ap"]
                a2[sl, 0] += pc.S(u * u if not weighted else w2 * u * u)
                a2[sl, 1] += segsum_p(u_p if not weighted else w2_p * u_p)
                if brow is not None:
                    du = u - brow[:, bcols["u"]]
                    acc["d_ap"][sl, 0] += pc.S(du * du if not weighted else w2 * du * du)
                    dup = du[pp]
                    acc["d_ap"][sl, 1] += segsum_p(dup if not weighted else w2_p * dup)
                if pc.split:
                    carry[k0, 3] += c1[-1] - c1[CPi[0]]
                    carry[k0, 4] += c2[-1] - c2[CPi[0]]
            if pc.split:
                carry[k0, 0] += CP[m]
                carry[k0, 1] += CN[m]
                carry[k0, 2] += CT[m]
            if means:
                mine["p"] = p
                pbase = brow[:, bcols["p"]] if brow is not None else None
                for name in means:
                    vals = self._row_values(name, yb, yf, p)
                    a3 = acc[name]
                    if weighted:
                        a3[sl, 0] += pc.S(w * vals)
                        wv = w2 * vals
                        a3[sl, 1] += pc.S(wv)
                        a3[sl, 2] += pc.S(wv * vals)
                    else:
                        s1 = pc.S(vals)
                        a3[sl, 0] += s1
                        a3[sl, 1] += s1
                        a3[sl, 2] += pc.S(vals * vals)
                    if pbase is not None:
                        d = vals - self._row_values(name, yb, yf, pbase)
                        wd = d if not weighted else w2 * d
                        acc["d_" + name][sl, 0] += pc.S(wd)
                        acc["d_" + name][sl, 1] += pc.S(wd * d)
            if do_rel or do_ece:
                bins = (p * nb).astype(np.int64)
                np.minimum(bins, nb - 1, out=bins)
                key = bins if G == 1 else bins + np.repeat(np.arange(G) * nb, pc.sizes)
                if do_rel:
                    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
                    kk = key[starts] + k0 * nb
                    rel = acc["rel"].reshape(K * nb, 4)
                    cnt = np.diff(np.append(starts, m)).astype(np.float64)
                    rel[kk, 0] += cnt
                    if weighted:
                        rel[kk, 1] += np.add.reduceat(w, starts)
                        rel[kk, 2] += np.add.reduceat(w * p, starts)
                        rel[kk, 3] += np.add.reduceat(yw, starts)
                    else:
                        rel[kk, 1] += cnt
                        rel[kk, 2] += np.add.reduceat(p, starts)
                        rel[kk, 3] += np.add.reduceat(yf, starts)
                if do_ece:
                    bk = ((q >> _BUCKET_SHIFT) & np.uint64(0xFFFF)).astype(np.int64)
                    key2 = key * NB + bk
                    resid = yf - p
                    if weighted:
                        resid *= w
                    seg = np.repeat(np.arange(G) * NB, pc.sizes) if G > 1 else 0
                    key3 = bk + seg
                    if dense_ece:
                        o2 = k0 * nb * NB
                        ece_S[o2:o2 + G * nb * NB] += np.bincount(key2, resid,
                                                                  minlength=G * nb * NB)
                        ece_WB[k0 * NB:(k0 + G) * NB] += np.bincount(key3, w,
                                                                     minlength=G * NB)
                    else:
                        kk2, vv2 = _sparse_sum(key2 + k0 * nb * NB, resid)
                        kk3, vv3 = _sparse_sum(key3 + k0 * NB,
                                               w if weighted else np.ones(m))
                        sparse["ek"].append(kk2)
                        sparse["ev"].append(vv2)
                        sparse["wk"].append(kk3)
                        sparse["wv"].append(vv3)
            if T:
                self._threshold_piece(acc, sl, pc, p, q, yf, w, w2, CPi, CP, CN, ths, paired)
            if do_cal:
                self._calibration_piece(cal, st, pc, X[a:b], yf, w, w2, mine, brow, bcols)
            if rows is not None:
                block = np.empty((m, len(row_cols)))
                for name, j in row_cols.items():
                    block[:, j] = mine[name]
                block_v = block.view(rtype)
                block_v.shape = (m,)
                np.put(rows_v, idx, block_v)

        reps = None
        if do_ece:
            if dense_ece:
                reps = self._ece_reps_dense(ece_S.reshape(K, nb, NB), ece_WB.reshape(K, NB))
            else:
                reps = self._ece_reps_sparse(K, sparse)
        self._finish_main(out, st, acc, want, base, keep, reps)
        if keep:
            out.rows = rows
            out.row_cols = row_cols
            out.inv = None

    def _finish_main(self, out, st, acc, want, base, keep, reps) -> None:
        """Intervals and deltas of the rank, mean, reliability and threshold metrics from the
        per-slice sums in ``acc`` (shared by the numpy passes and the compiled kernels)."""
        if "auc" in want:
            self._finish_auc(out, st, acc, base)
        if "pr_auc" in want:
            self._finish_ap(out, st, acc, base)
        for name in _MEANS:
            if name in want:
                self._finish_mean(out, st, acc, name, base)
        if "ece" in want:
            r = acc["rel"]
            out.reliability = {"count": r[:, :, 0], "weight": r[:, :, 1],
                               "mean_score": _div(r[:, :, 2], r[:, :, 1]),
                               "mean_label": _div(r[:, :, 3], r[:, :, 1])}
            self._finish_ece(out, st, r, reps, base, keep)
        if self.settings.thresholds:
            self._finish_thresholds(out, st, acc, base)

    @staticmethod
    def _row_values(name: str, yb: np.ndarray, yf: np.ndarray, p: np.ndarray) -> np.ndarray:
        if name == "log_loss":
            q = 1.0 - p
            np.copyto(q, p, where=yb)
            np.clip(q, B.EPS, 1.0 - B.EPS, out=q)
            np.log(q, out=q)
            np.negative(q, out=q)
            return q
        if name == "brier":
            d = yf - p
            d *= d
            return d
        return p

    def _threshold_piece(self, acc, sl, pc, p, q, yf, w, w2, CPi, CP, CN, ths, paired) -> None:
        """Confusion cells at every threshold. Scores are sorted, so ``score >= t`` is a suffix
        of every slice: unweighted cells are exact integer prefix counts at the cut; weighted
        cells are summed by membership (bincount), so an empty cell is exactly zero."""
        ls, le = pc.ls, pc.le
        weighted = w is not None
        Ni = np.arange(pc.m + 1) - CPi
        seg4 = np.repeat(np.arange(pc.G) * 4, pc.sizes) if (weighted and pc.G > 1) else 0
        for ti, t in enumerate(ths):
            below = pc.S((p < t).astype(np.int64)) if pc.G > 1 else np.array(
                [np.searchsorted(p, t, side="left")])
            cut = ls + below
            acc["cells_n"][sl, ti] += cn_delta(CPi, Ni, ls, le, cut)
            if weighted:
                key = (p >= t).astype(np.int64) * 2 + yf.astype(np.int64) + seg4
                acc["cells_w"][sl, ti] += np.bincount(key, w, minlength=4 * pc.G).reshape(
                    pc.G, 4)
                acc["cells_w2"][sl, ti] += np.bincount(key, w2, minlength=4 * pc.G).reshape(
                    pc.G, 4)
            else:
                acc["cells_w"][sl, ti] += cn_delta(CPi, Ni, ls, le, cut)
                acc["cells_w2"][sl, ti] += cn_delta(CPi, Ni, ls, le, cut)
            if paired:
                # joint cells (predA, predB, y) by bincount: exact zeros for empty cells
                pb = ((q >> np.uint64(_PRED_SHIFT + ti)) & np.uint64(1)).astype(np.int64)
                key = (p >= t).astype(np.int64) * 4 + pb * 2 + yf.astype(np.int64)
                if pc.G > 1:
                    key += np.repeat(np.arange(pc.G) * 8, pc.sizes)
                c8 = np.bincount(key, w2, minlength=8 * pc.G).reshape(pc.G, 8)
                acc["cells8"][sl, ti] += c8

    def _calibration_piece(self, cal, st, pc, x, yf, w, w2, mine, brow, bcols) -> None:
        """Fisher information at the fitted parameters and the fit's influence values."""
        sl = slice(pc.k0, pc.k1)
        theta, cinv = cal["theta"], cal["cinv"]
        eta = pc.E(np.nan_to_num(theta[sl, 0])) + pc.E(np.nan_to_num(theta[sl, 1])) * x
        mu, e = _expit_parts(eta)
        v = e * mu * mu
        if w is not None:
            v *= w
        Hf = cal["Hf"]
        Hf[sl, 0] += pc.S(v)
        v *= x
        Hf[sl, 1] += pc.S(v)
        v *= x
        Hf[sl, 2] += pc.S(v)
        if not self.paired:
            return
        r = yf - mu
        r *= pc.E(st.W[sl])
        c00, c01, c11 = (pc.E(np.nan_to_num(cinv[sl, j])) for j in range(3))
        pa = c01 * x
        pa += c00
        pa *= r
        pb = c11 * x
        pb += c01
        pb *= r
        mine["pa"] = pa
        mine["pb"] = pb
        if brow is not None:
            da = pa - brow[:, bcols["pa"]]
            db = pb - brow[:, bcols["pb"]]
            if w2 is not None:
                cal["dphi"][sl, 0] += pc.S(w2 * da * da)
                cal["dphi"][sl, 1] += pc.S(w2 * db * db)
            else:
                cal["dphi"][sl, 0] += pc.S(da * da)
                cal["dphi"][sl, 1] += pc.S(db * db)

    # ------------------------------------------------------------------ finishing

    def _finish_counts(self, out: ModelOutput, st: _Stats) -> None:
        nf = st.n.astype(np.float64)
        none = [None] * st.K
        out.columns["count"] = Column(nf, nf, nf, "exact", st.n, none)
        out.columns["weight"] = Column(st.W, st.W, st.W, "exact", st.n, none)
        br = _div(st.Wpos, st.W)
        lo, hi = wilson(br, kish_n(st.W, st.W2), self.z)
        reasons = [B.NO_WEIGHT if st.W[k] <= 0 else None for k in range(st.K)]
        se = np.sqrt(np.maximum(np.nan_to_num(br * (1 - br)), 0) / _safe(kish_n(st.W, st.W2)))
        out.columns["base_rate"] = Column(br, lo, hi, "wilson", st.n, reasons, se)

    def _normal(self, value, var, lower=None, upper=None):
        se = np.sqrt(np.maximum(var, 0.0))
        lo, hi = normal_interval(value, se, self.z, lower, upper)
        return lo, hi, se

    def _finish_auc(self, out, st, acc, base) -> None:
        reasons = class_reasons(st)
        ok = np.array([r is None for r in reasons])
        A = np.where(ok, acc["auc_num"] / _safe(st.Wpos), np.nan)
        var = self._auc_var(st, acc["auc"], A)
        lo, hi, se = self._normal(A, var, 0.0, 1.0)
        out.columns["auc"] = Column(A, lo, hi, "delong", st.n, reasons, se)
        if base is not None:
            d = A - base.columns["auc"].value
            dlo, dhi, _ = self._normal(d, self._auc_var(st, acc["d_auc"], d))
            out.deltas["auc"] = DeltaColumn(d, dlo, dhi, "delong", reasons)

    @staticmethod
    def _auc_var(st, m4, center) -> np.ndarray:
        c = np.nan_to_num(center)
        cp = np.nan_to_num(small_sample_factor(st.Wpos, st.W2pos), nan=1.0)
        cn = np.nan_to_num(small_sample_factor(st.Wneg, st.W2neg), nan=1.0)
        m1p, m2p = m4[:, 2], m4[:, 3]
        m1n, m2n = m4[:, 0] - m1p, m4[:, 1] - m2p
        sp = _centered(m2p, m1p, st.W2pos, c)
        sn = _centered(m2n, m1n, st.W2neg, c)
        return cp * sp / _safe(st.Wpos) ** 2 + cn * sn / _safe(st.Wneg) ** 2

    def _finish_ap(self, out, st, acc, base) -> None:
        reasons = class_reasons(st, need_negatives=False)
        ok = np.array([r is None for r in reasons])
        ap = np.where(ok, acc["ap_num"] / _safe(st.Wpos), np.nan)
        lo, hi, se = self._normal(ap, self._ap_var(st, acc["ap"], ap), 0.0, 1.0)
        out.columns["pr_auc"] = Column(ap, lo, hi, "influence", st.n, reasons, se)
        if base is not None:
            d = ap - base.columns["pr_auc"].value
            dlo, dhi, _ = self._normal(d, self._ap_var(st, acc["d_ap"], d))
            out.deltas["pr_auc"] = DeltaColumn(d, dlo, dhi, "influence", reasons)

    @staticmethod
    def _ap_var(st, m2, center) -> np.ndarray:
        c = np.nan_to_num(center)
        call = np.nan_to_num(small_sample_factor(st.W, st.W2), nan=1.0)
        s = _centered(m2[:, 0], m2[:, 1], st.W2pos, c)
        return call * s / _safe(st.Wpos) ** 2

    def _finish_mean(self, out, st, acc, name, base) -> None:
        a3 = acc[name]
        reasons = [B.NO_ROWS if st.n[k] == 0 else (B.NO_WEIGHT if st.W[k] <= 0 else None)
                   for k in range(st.K)]
        mean = _div(a3[:, 0], st.W)
        call = np.nan_to_num(small_sample_factor(st.W, st.W2), nan=1.0)
        c = np.nan_to_num(mean)
        var = call * _centered(a3[:, 2], a3[:, 1], st.W2, c) / _safe(st.W) ** 2
        upper = None if name == "log_loss" else 1.0
        lo, hi, se = self._normal(mean, var, 0.0, upper)
        out.columns[name] = Column(mean, lo, hi, "normal", st.n, reasons, se)
        if base is not None:
            d = mean - base.columns[name].value
            dd = np.nan_to_num(d)
            m2 = acc["d_" + name]
            dvar = call * _centered(m2[:, 1], m2[:, 0], st.W2, dd) / _safe(st.W) ** 2
            dlo, dhi, _ = self._normal(d, dvar)
            out.deltas[name] = DeltaColumn(d, dlo, dhi, "normal", reasons)

    def _ece_reps_dense(self, S: np.ndarray, WB: np.ndarray) -> np.ndarray:
        K, nb, NB = S.shape
        R = self.reps
        num = np.abs(S.reshape(K * nb, NB) @ R.T).reshape(K, nb, -1).sum(axis=1)
        den = WB @ R.T
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / _safe(den), np.nan)

    def _ece_reps_sparse(self, K: int, sparse: dict) -> np.ndarray:
        """ECE replicates from sparse (slice, bin, bucket) sums (many slices)."""
        nb, NB = self.settings.n_bins, self.settings.n_buckets
        R = self.reps
        ek, ev = _merge_sparse(sparse["ek"], sparse["ev"])
        wk, wv = _merge_sparse(sparse["wk"], sparse["wv"])
        # |sum over buckets| per (slice, bin), then summed over bins per slice
        bin_sums, bin_keys = _grouped_replicates(ek // NB, ek % NB, ev, R)
        num = np.zeros((K, R.shape[0]))
        np.add.at(num, bin_keys // nb, np.abs(bin_sums))
        den_sums, den_keys = _grouped_replicates(wk // NB, wk % NB, wv, R)
        den = np.zeros((K, R.shape[0]))
        den[den_keys] = den_sums
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / _safe(den), np.nan)

    def _finish_ece(self, out, st, rel, reps, base, keep) -> None:
        reasons = [B.NO_ROWS if st.n[k] == 0 else (B.NO_WEIGHT if st.W[k] <= 0 else None)
                   for k in range(st.K)]
        ece = _div(np.abs(rel[:, :, 3] - rel[:, :, 2]).sum(axis=1), st.W)
        K = st.K
        if reps is not None:
            lo, hi = percentile_interval(reps, self.settings.confidence, axis=1)
            method = "poisson_bootstrap"
        else:
            lo = hi = np.full(K, np.nan)
            method = None
        out.columns["ece"] = Column(ece, lo, hi, method, st.n, reasons)
        out.ece_reps = reps
        if base is not None:
            d = ece - base.columns["ece"].value
            if reps is not None and base.ece_reps is not None:
                dlo, dhi = percentile_interval(reps - base.ece_reps, self.settings.confidence,
                                               axis=1)
            else:
                dlo = dhi = np.full(K, np.nan)
            out.deltas["ece"] = DeltaColumn(d, dlo, dhi, method, reasons)

    def _finish_thresholds(self, out, st, acc, base) -> None:
        z = self.z
        K = st.K
        call = np.nan_to_num(small_sample_factor(st.W, st.W2), nan=1.0)
        for ti, t in enumerate(self.settings.thresholds):
            cw = acc["cells_w"][:, ti]  # columns: 0 tn, 1 fn, 2 fp, 3 tp
            c2 = acc["cells_w2"][:, ti]
            cn = np.rint(acc["cells_n"][:, ti]).astype(np.int64)
            out.cells[t] = (cw, c2, cn)
            tp, fp, fn, tn = cw[:, 3], cw[:, 2], cw[:, 1], cw[:, 0]
            specs = {
                "precision": (tp, tp + fp, c2[:, 3] + c2[:, 2], cn[:, 3] + cn[:, 2],
                              B.NO_PRED_POS),
                "recall": (tp, tp + fn, c2[:, 3] + c2[:, 1], cn[:, 3] + cn[:, 1], B.NO_POS),
                "fpr": (fp, fp + tn, c2[:, 2] + c2[:, 0], cn[:, 2] + cn[:, 0], B.NO_NEG),
            }
            for name, (num, den, den2, nn, why) in specs.items():
                p = _div(num, den)
                neff = kish_n(den, den2)
                lo, hi = wilson(p, neff, z)
                reasons = [why if den[k] <= 0 else None for k in range(K)]
                se = np.sqrt(np.maximum(np.nan_to_num(p * (1 - p)), 0) / _safe(neff))
                col = Column(p, lo, hi, "wilson", nn, reasons, se)
                out.columns[f"{name}@{t!r}"] = col
                if name == "recall":
                    out.columns[f"tpr@{t!r}"] = col
            den = 2 * tp + fp + fn
            f1 = _div(2 * tp, den)
            reasons = [B.NO_F1 if den[k] <= 0 else None for k in range(K)]
            f = np.nan_to_num(f1)
            phi = np.stack([np.zeros(K), -f, -f, 2 - 2 * f], axis=1) * (st.W / _safe(den))[:, None]
            var = call * (c2 * phi * phi).sum(axis=1) / _safe(st.W) ** 2
            lo, hi, se = self._normal(f1, var, 0.0, 1.0)
            out.columns[f"f1@{t!r}"] = Column(f1, lo, hi, "normal", st.n, reasons, se)
            if base is not None:
                self._threshold_deltas(out, st, acc, ti, t, base, call)

    def _threshold_deltas(self, out, st, acc, ti, t, base, call) -> None:
        w8 = acc["cells8"][:, ti]  # sums of w^2 by cell = predA*4 + predB*2 + y
        K = st.K
        for name in ("precision", "recall", "fpr", "f1"):
            key = f"{name}@{t!r}"
            ca = out.columns[key]
            cb = base.columns[key]
            d = ca.value - cb.value
            ss = paired_threshold_ss(name, w8, st.W, ca.value, out.cells[t][0], cb.value,
                                     base.cells[t][0])
            var = call * ss / _safe(st.W) ** 2
            lo, hi, _ = self._normal(d, var)
            reasons = [ca.reason[k] or cb.reason[k] for k in range(K)]
            dc = DeltaColumn(d, lo, hi, "normal", reasons)
            out.deltas[key] = dc
            if name == "recall":
                out.deltas[f"tpr@{t!r}"] = dc

    def _finish_calibration(self, out, st, cal, base) -> None:
        K = st.K
        good = cal["good"]
        reasons = cal["reasons"]
        theta = cal["theta"]
        Hf = cal["Hf"]
        with np.errstate(divide="ignore", invalid="ignore"):
            detf = Hf[:, 0] * Hf[:, 2] - Hf[:, 1] ** 2
            var_a = Hf[:, 2] / detf
            var_b = Hf[:, 0] / detf
        val_a = np.where(good, theta[:, 0], np.nan)
        val_b = np.where(good, theta[:, 1], np.nan)
        lo_a, hi_a, se_a = self._normal(val_a, np.where(good, var_a, np.nan))
        lo_b, hi_b, se_b = self._normal(val_b, np.where(good, var_b, np.nan))
        out.columns["calibration_intercept"] = Column(val_a, lo_a, hi_a, "fisher", st.n,
                                                      list(reasons), se_a)
        out.columns["calibration_slope"] = Column(val_b, lo_b, hi_b, "fisher", st.n,
                                                  list(reasons), se_b)
        out.theta = np.stack([val_a, val_b], axis=1)
        if base is not None:
            call = np.nan_to_num(small_sample_factor(st.W, st.W2), nan=1.0)
            for name, j, mine in (("calibration_intercept", 0, val_a),
                                  ("calibration_slope", 1, val_b)):
                d = mine - base.columns[name].value
                var = call * cal["dphi"][:, j] / _safe(st.W) ** 2
                lo, hi, _ = self._normal(d, var)
                rs = [reasons[k] or base.columns[name].reason[k] for k in range(K)]
                out.deltas[name] = DeltaColumn(d, lo, hi, "sandwich", rs)


# --------------------------------------------------------------------------- helpers


_CELLS_PER_UNIT = 64.0
_FAC = np.array([1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0])


def _cell_sums(cells: dict, theta: np.ndarray, wpos: np.ndarray, K: int) -> np.ndarray:
    """(H00, H01, H11, g0, g1, loglik) per slice from the logit-cell moments.

    Each logistic term f(a + b x) is expanded to 4th order about the cell centre c:
    ``sum w f(x) x^j = sum_k f^(k)(c) / k! * sum w (x - c)^k x^j``.
    """
    c, kk, M = cells["c"], cells["k"], cells["M"]
    a = theta[kk, 0]
    b = theta[kk, 1]
    eta = a + b * c
    mu, e = _expit_parts(eta)
    v = e * mu * mu
    s = 1.0 - 2.0 * mu
    b2 = b * b
    b3 = b2 * b
    b4 = b2 * b2
    r6 = 1.0 - 6.0 * v
    r12 = 1.0 - 12.0 * v
    L = np.logaddexp(0.0, eta)
    mu_k = (mu, b * v, b2 * v * s, b3 * v * r6, b4 * v * s * r12)
    v_k = (v, b * v * s, b2 * v * r6, b3 * v * s * r12, b4 * v * (1.0 - 30.0 * v + 120.0 * v * v))
    l_k = (L, b * mu, b2 * v, b3 * v * s, b4 * v * r6)

    def f0(fk):
        return sum(_FAC[k] * fk[k] * M[:, k] for k in range(5))

    def f1(fk):
        return sum(_FAC[k] * fk[k] * (c * M[:, k] + M[:, k + 1]) for k in range(5))

    def f2(fk):
        return sum(_FAC[k] * fk[k] * (c * c * M[:, k] + 2.0 * c * M[:, k + 1] + M[:, k + 2])
                   for k in range(5))

    out = np.zeros((K, 6))
    out[:, 0] = np.bincount(kk, f0(v_k), minlength=K)
    out[:, 1] = np.bincount(kk, f1(v_k), minlength=K)
    out[:, 2] = np.bincount(kk, f2(v_k), minlength=K)
    out[:, 3] = wpos - np.bincount(kk, f0(mu_k), minlength=K)
    out[:, 4] = cells["swyx"] - np.bincount(kk, f1(mu_k), minlength=K)
    out[:, 5] = (theta[:, 0] * wpos + theta[:, 1] * cells["swyx"]
                 - np.bincount(kk, f0(l_k), minlength=K))
    return out


def threshold_den(name: str, cw: np.ndarray) -> np.ndarray:
    """Per slice, the denominator of a thresholded metric from its (tn, fn, fp, tp) cells."""
    if name == "precision":
        return cw[:, 3] + cw[:, 2]
    if name == "fpr":
        return cw[:, 2] + cw[:, 0]
    if name == "f1":
        return 2 * cw[:, 3] + cw[:, 2] + cw[:, 1]
    return cw[:, 3] + cw[:, 1]


def paired_threshold_ss(name: str, w8: np.ndarray, W: np.ndarray, value_a: np.ndarray,
                        cells_a: np.ndarray, value_b: np.ndarray,
                        cells_b: np.ndarray) -> np.ndarray:
    """Per slice ``sum w^2 (phi_a - phi_b)^2`` of a thresholded metric's paired delta: ``w8``
    holds the sums of w^2 by joint cell ``pred_a * 4 + pred_b * 2 + y``, ``phi`` the metric's
    influence (times the slice weight ``W``) in each cell at the models' values and cells."""
    cell = np.arange(8)
    yy = cell & 1
    Wc = W[:, None]

    def phi(pred, value, cw):
        v = np.nan_to_num(value)[:, None]
        d = _safe(threshold_den(name, cw))[:, None]
        if name == "precision":
            return Wc * pred * (yy - v) / d
        if name == "recall":
            return Wc * yy * (pred - v) / d
        if name == "fpr":
            return Wc * (1 - yy) * (pred - v) / d
        tp = pred * yy
        fp = pred * (1 - yy)
        fn = (1 - pred) * yy
        return Wc * (2 * tp - v * (2 * tp + fp + fn)) / d

    diff = phi((cell >> 2) & 1, value_a, cells_a) - phi((cell >> 1) & 1, value_b, cells_b)
    return (w8 * diff * diff).sum(axis=1)


def range_reasons(rng: np.ndarray, reasons: list[str | None]) -> None:
    """Mark the slices whose logits are constant or separate the classes, from ``rng`` (per
    slice: min and max logit over the positives, then over the negatives, weight > 0)."""
    for k in range(len(reasons)):
        if reasons[k] is not None:
            continue
        lo_all = min(rng[k, 0], rng[k, 2])
        hi_all = max(rng[k, 1], rng[k, 3])
        if not lo_all < hi_all:
            reasons[k] = B.CONSTANT
        elif rng[k, 3] <= rng[k, 0] or rng[k, 1] <= rng[k, 2]:
            reasons[k] = B.SEPARABLE


def fit_cells(st: Any, cells: dict, defined: np.ndarray, warm: np.ndarray | None):
    """Damped Newton on the logit cells for the ``defined`` slices, from ``warm`` (when finite)
    or (0, 1). Returns ``(theta, converged, failed, H)``."""
    K = st.K
    theta = np.zeros((K, 2))
    theta[:, 1] = 1.0
    if warm is not None and np.all(np.isfinite(warm)):
        theta[:] = warm

    def cell_sums(th, active, want_ll):
        if active.all():
            return _cell_sums(cells, th, st.Wpos, K)
        sub = active[cells["k"]]  # only the cells of slices still iterating
        part = {"c": cells["c"][sub], "k": cells["k"][sub], "M": cells["M"][sub],
                "swyx": cells["swyx"]}
        return _cell_sums(part, th, st.Wpos, K)

    converged, failed, H = _damped_newton(K, theta, defined.copy(), cell_sums,
                                          max_iter=100, tol=1e-10, skip_ll=False)
    return theta, converged, failed, H


def cov_from_hessian(H: np.ndarray) -> np.ndarray:
    """Per slice (c00, c01, c11) of the inverse of the 2x2 Hessian sums (H00, H01, H11)."""
    cinv = np.zeros((H.shape[0], 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        det = H[:, 0] * H[:, 2] - H[:, 1] ** 2
        cinv[:, 0] = H[:, 2] / det
        cinv[:, 1] = -H[:, 1] / det
        cinv[:, 2] = H[:, 0] / det
    return cinv


def _damped_newton(K: int, theta: np.ndarray, active: np.ndarray, sums_fn, *, max_iter: int,
                   tol: float, skip_ll: bool):
    """Damped Newton-Raphson for the slices in ``active`` (``theta`` updated in place).

    ``sums_fn(theta, active, want_ll)`` returns (K, 6) sums (H00, H01, H11, g0, g1, loglik).
    A large step that lowers the log-likelihood is halved and retried; with ``skip_ll`` the
    likelihood is only computed on the first pass and after large steps. Returns
    ``(converged, failed, H)`` with H the Hessian sums of the last accepted pass.
    """
    converged = np.zeros(K, dtype=bool)
    failed = np.zeros(K, dtype=bool)
    H = np.zeros((K, 3))
    prev_theta = theta.copy()
    prev_step = np.zeros((K, 2))
    prev_ll = np.full(K, -np.inf)
    scale = np.ones(K)
    for it in range(max_iter):
        if not active.any():
            break
        big = np.abs(prev_step).max(axis=1) >= 0.1
        want_ll = not skip_ll or it == 0 or bool((active & big).any())
        sums = sums_fn(theta, active, want_ll)
        h00, h01, h11, g0, g1, ll = sums.T
        if not want_ll:
            ll = np.full(K, np.nan)
        check = active & (big if skip_ll else True) & np.isfinite(prev_ll) & np.isfinite(ll)
        worse = check & (ll < prev_ll - 1e-12 * np.maximum(1.0, np.abs(prev_ll)))
        worse &= scale > 1e-10
        if worse.any():
            scale[worse] *= 0.5
            theta[worse] = prev_theta[worse] + scale[worse, None] * prev_step[worse]
        det = h00 * h11 - h01 * h01
        ok = active & ~worse & np.isfinite(det) & (det > 0) & ~(want_ll & ~np.isfinite(ll))
        with np.errstate(divide="ignore", invalid="ignore"):
            s0 = (h11 * g0 - h01 * g1) / np.where(ok, det, 1.0)
            s1 = (h00 * g1 - h01 * g0) / np.where(ok, det, 1.0)
        failed |= active & ~worse & ~ok
        prev_theta[ok] = theta[ok]
        prev_ll[ok] = ll[ok]
        prev_step[ok, 0] = s0[ok]
        prev_step[ok, 1] = s1[ok]
        scale[ok] = 1.0
        theta[ok, 0] += s0[ok]
        theta[ok, 1] += s1[ok]
        H[ok] = sums[ok, :3]
        small = np.maximum(np.abs(s0), np.abs(s1)) <= tol * (1.0 + np.abs(theta).max(axis=1))
        conv = ok & small
        converged |= conv
        failed |= ok & (np.abs(theta).max(axis=1) > 1e8)
        active &= ~(conv | failed)
    failed |= active
    return converged, failed, H


class _Scratch(threading.local):
    """Large per-slicing buffers, reused across slicings (per thread): fresh multi-hundred-MB
    allocations cost page faults every time."""

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        buf = self.__dict__.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != np.dtype(dtype):
            self.__dict__.pop(name, None)
            buf = np.empty(shape, dtype=dtype)
            self.__dict__[name] = buf
        return buf


def _partition(rec: np.ndarray, perm: np.ndarray, codes: np.ndarray, starts: np.ndarray,
               out: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """``rec`` (rows in score order) stably partitioned by slice code into ``out``:
    ``out = rec[argsort(codes[perm], kind="stable")]``.

    Instead of gathering through the global order (one cache miss per row: a slice's rows are
    spread over all of ``rec``), each chunk of ``rec`` is read once, sorted by code in cache and
    written as one contiguous run per slice at that slice's cursor (``K`` sequential write
    streams).
    """
    n = rec.shape[0]
    K = starts.shape[0] - 1
    if n == 0 or K > chunk // 4 or codes.dtype == np.uint64 or not (
            rec.flags.c_contiguous and out.flags.c_contiguous):
        order = np.argsort(np.take(codes, perm), kind="stable")
        return np.take(rec, order, axis=0, out=out)
    rtype = np.dtype((np.void, rec.dtype.itemsize * rec.shape[1]))
    rv = rec.view(rtype)
    rv.shape = (n,)  # raises rather than copies
    ov = out.view(rtype)
    ov.shape = (n,)
    cursor = starts[:-1].astype(np.int64)
    ar = np.arange(min(chunk, n), dtype=np.int64)
    for a, e in _chunks(n, chunk):
        g = np.take(codes, perm[a:e])
        o = np.argsort(g, kind="stable")
        cnt = np.bincount(g, minlength=K)
        first = np.cumsum(cnt)
        first -= cnt  # where each slice's run starts in the sorted chunk
        dest = np.repeat(cursor - first, cnt)
        dest += ar[:e - a]
        np.put(ov, dest, np.take(rv[a:e], o))
        cursor += cnt
    return out


def _block_end(P: np.ndarray, b: int, end: int) -> int:
    """First position >= b in sorted ``P[:end]`` whose value differs from ``P[b - 1]``."""
    v = P[b - 1]
    step = 64
    while b < end and P[b] == v:
        hi = min(b + step, end)
        k = int(np.searchsorted(np.ascontiguousarray(P[b:hi]), v, side="right"))
        b += k
        if b < hi:
            break
        step *= 2
    return b




def _sparse_sum(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uk, inv = np.unique(keys, return_inverse=True)
    return uk, np.bincount(inv, vals, minlength=uk.shape[0])


def _grouped_replicates(groups: np.ndarray, buckets: np.ndarray, vals: np.ndarray,
                        reps: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``sum_e reps[:, bucket_e] * val_e`` per group (``groups`` sorted); returns the sums
    ``(n_groups, R)`` and the group ids. Chunked so the (entries x R) products stay small."""
    if groups.size == 0:
        return np.zeros((0, reps.shape[0])), groups
    starts = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1])))
    gid = groups[starts]
    out = np.empty((starts.shape[0], reps.shape[0]))
    bounds = np.append(starts, groups.shape[0])
    g = 0
    while g < starts.shape[0]:
        g2 = int(np.searchsorted(bounds, bounds[g] + chunk, side="right")) - 1
        g2 = min(max(g2, g + 1), starts.shape[0])
        a, e = bounds[g], bounds[g2]
        prod = reps[:, buckets[a:e]].T * vals[a:e, None]
        out[g:g2] = np.add.reduceat(prod, bounds[g:g2] - a, axis=0)
        g = g2
    return out, gid


def _merge_sparse(keys: list[np.ndarray], vals: list[np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:
    if not keys:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    k = np.concatenate(keys)
    v = np.concatenate(vals)
    if k.size and np.any(k[1:] <= k[:-1]):
        return _sparse_sum(k, v)
    return k, v


def class_reasons(st: Any, need_negatives: bool = True) -> list[str | None]:
    """Per slice, why class-based metrics are undefined (no rows, no weight, one class only), or
    None. ``st`` holds the per-slice n, W, Wpos, Wneg (in-memory or scale-engine statistics).
    ``need_negatives=False`` for metrics defined without negatives (average precision)."""
    out: list[str | None] = []
    for k in range(st.K):
        if st.n[k] == 0:
            out.append(B.NO_ROWS)
        elif st.W[k] <= 0:
            out.append(B.NO_WEIGHT)
        elif st.Wpos[k] <= 0:
            out.append(B.NO_POS)
        elif need_negatives and st.Wneg[k] <= 0:
            out.append(B.NO_NEG)
        else:
            out.append(None)
    return out
