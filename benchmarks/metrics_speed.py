"""Speed of the slice-metrics engine against the straightforward per-slice loop.

    python benchmarks/metrics_speed.py                 # 1M rows (default)
    python benchmarks/metrics_speed.py --rows 3000000
    python benchmarks/metrics_speed.py --full          # 10M rows (the loop takes minutes)
    python benchmarks/metrics_speed.py --no-loop       # the engine only

Synthetic CTR-like data from a fixed seed: two models (a candidate and a noisier baseline),
100 slices over three slice columns (70 countries with Zipf-like traffic, 25 segments, 5
devices). Both sides compute every gate metric (count, weight, base rate, mean score, AUC,
PR AUC, log loss, Brier, calibration slope and intercept, ECE, precision/recall/F1/FPR at the
threshold) for the overall data and every slice, for both models:

* engine: ``mlreg.metrics.evaluate_predictions`` end to end, timed twice: with
  ``intervals=False`` (point estimates: the same work as the loop) and with every interval
  (DeLong, Wilson, Fisher, influence functions, the ECE bootstrap) and every paired
  candidate-vs-baseline delta, as a gate computes them;
* loop: ``pandas.groupby`` per slice column, then scikit-learn per slice and model
  (``roc_auc_score``, ``average_precision_score``, ``log_loss``, ``brier_score_loss``,
  ``LogisticRegression(C=inf)`` on the logit, ``precision/recall/f1``) plus numpy for ECE;
  point estimates only, no intervals and no deltas.

Prints the times, both ratios and the process's peak RSS after the engine (input frame included;
``--trace-memory`` adds the engine's own peak from an untimed tracemalloc run); checks a few
engine numbers against the loop's.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from mlreg.metrics import evaluate_predictions  # noqa: E402

THRESHOLD = 0.05
METRICS = ["count", "weight", "base_rate", "mean_score", "auc", "pr_auc", "log_loss", "brier",
           "calibration_slope", "calibration_intercept", "ece", "precision", "recall", "f1",
           "fpr"]
SLICE_COLUMNS = {"country": 70, "segment": 25, "device": 5}


def make_data(n: int, seed: int = 20261126) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {}
    for name, k in SLICE_COLUMNS.items():
        p = 1.0 / np.arange(1, k + 1) ** (1.1 if name == "country" else 0.5)
        cols[name] = rng.choice(k, n, p=p / p.sum()).astype(np.int16)
    eff = rng.normal(0, 0.4, 70)[cols["country"]] + rng.normal(0, 0.2, 5)[cols["device"]]
    logit = -3.6 + eff + rng.normal(0, 1.1, n)
    p_true = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(n) < p_true).astype(np.int8)
    cand = 1.0 / (1.0 + np.exp(-(logit + rng.normal(0, 0.35, n))))
    base = 1.0 / (1.0 + np.exp(-(0.9 * logit - 0.3 + rng.normal(0, 0.6, n))))
    return pd.DataFrame({"label": y, "score_candidate": cand, "score_baseline": base, **cols})


def run_engine(df: pd.DataFrame, n_jobs: int, trace: bool = False, intervals: bool = True):
    """Time one evaluation; with ``trace`` measure its peak traced memory instead (tracemalloc
    slows numpy's many temporaries down a lot, so the timed run never traces)."""
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    res = evaluate_predictions(
        df, label="label", scores={"candidate": "score_candidate", "baseline": "score_baseline"},
        slice_columns=list(SLICE_COLUMNS), metrics=METRICS, threshold=THRESHOLD, n_jobs=n_jobs,
        intervals=intervals)
    elapsed = time.perf_counter() - t0
    peak = None
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return res, elapsed, peak


def _loop_metrics(y: np.ndarray, s: np.ndarray) -> dict:
    from sklearn import metrics as skm
    from sklearn.linear_model import LogisticRegression

    out = {"count": len(y), "weight": float(len(y)), "base_rate": float(y.mean()),
           "mean_score": float(s.mean())}
    both = 0 < y.sum() < len(y)
    out["auc"] = skm.roc_auc_score(y, s) if both else float("nan")
    out["pr_auc"] = skm.average_precision_score(y, s) if y.sum() else float("nan")
    out["log_loss"] = skm.log_loss(y, s, labels=[0, 1])
    out["brier"] = skm.brier_score_loss(y, s)
    if both:
        p = np.clip(s, 1e-15, 1 - 1e-15)
        lr = LogisticRegression(C=np.inf, max_iter=1000).fit((np.log(p) - np.log1p(-p))[:, None],
                                                             y)
        out["calibration_slope"] = float(lr.coef_[0, 0])
        out["calibration_intercept"] = float(lr.intercept_[0])
    bins = np.minimum((s * 10).astype(int), 9)
    out["ece"] = float(np.abs(np.bincount(bins, y - s, minlength=10)).sum() / len(y))
    pred = (s >= THRESHOLD).astype(int)
    out["precision"] = skm.precision_score(y, pred, zero_division=np.nan)
    out["recall"] = skm.recall_score(y, pred, zero_division=np.nan)
    out["f1"] = skm.f1_score(y, pred, zero_division=np.nan)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    out["fpr"] = fp / (fp + tn) if fp + tn else float("nan")
    return out


def run_loop(df: pd.DataFrame):
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    results = {}
    for model in ("candidate", "baseline"):
        col = f"score_{model}"
        results[(model, "overall")] = _loop_metrics(df["label"].to_numpy(), df[col].to_numpy())
        for c in SLICE_COLUMNS:
            for value, g in df.groupby(c):
                results[(model, f"{c}={value}")] = _loop_metrics(g["label"].to_numpy(),
                                                                 g[col].to_numpy())
    return results, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--full", action="store_true", help="10M rows")
    ap.add_argument("--no-loop", action="store_true", help="skip the scikit-learn loop")
    ap.add_argument("--n-jobs", default="2",
                    help="threads for the engine (default 2, this machine's cores); a comma "
                         "list (1,2) times each in turn")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--trace-memory", action="store_true",
                    help="a second, untimed engine run under tracemalloc for its peak memory")
    args = ap.parse_args(argv)
    n = 10_000_000 if args.full else args.rows
    t0 = time.perf_counter()
    df = make_data(n)
    n_slices = sum(df[c].nunique() for c in SLICE_COLUMNS)
    jobs = [int(j) for j in str(args.n_jobs).split(",")]
    # warm-up: imports, first calls and the kernels' compilation (about 7 s the first time on
    # a machine, then loaded from numba's disk cache) stay out of both timings
    from mlreg.metrics.kernel import warm_up

    small = make_data(300_000, seed=1)
    t1 = time.perf_counter()
    compile_s = warm_up()
    run_engine(small, jobs[0])
    run_engine(small, jobs[0], intervals=False)
    warm = time.perf_counter() - t1
    if not args.no_loop:
        _loop_metrics(small["label"].to_numpy()[:20_000],
                      small["score_candidate"].to_numpy()[:20_000])
    print(f"rows {n:,}  slices {n_slices} (+ overall)  models 2  metrics {len(METRICS)}"
          f"  (data made in {t1 - t0:.1f} s; warm-up {warm:.1f} s, of which the kernels' "
          f"compilation or cache load {compile_s:.1f} s)")
    report = {"rows": n, "slices": int(n_slices), "engine_s": {}, "engine_point_s": {}}
    best = {}
    res = None
    for nj in jobs:
        for intervals, label in ((False, "point estimates (the loop's work)"),
                                 (True, "+ every interval and paired delta")):
            out, elapsed, _ = run_engine(df, nj, intervals=intervals)
            if intervals:
                res = out
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            print(f"engine  {elapsed:8.2f} s  {label}, n_jobs={nj}; process peak RSS so far "
                  f"{rss / 2**30:.2f} GiB (input frame included)")
            report["engine_s" if intervals else "engine_point_s"][nj] = elapsed
            report[f"peak_rss_bytes_after_n_jobs_{nj}"] = rss
            best[intervals] = min(best.get(intervals, elapsed), elapsed)
    if args.trace_memory:
        _, _, peak = run_engine(df, jobs[0], trace=True)
        print(f"engine peak traced memory {peak / 2**30:.2f} GiB (a second, untimed run)")
        report["engine_peak_traced_bytes"] = peak
    if not args.no_loop:
        loop, t_loop = run_loop(df)
        print(f"loop    {t_loop:8.2f} s  (pandas groupby + scikit-learn, point estimates only)")
        for nj in jobs:
            print(f"speed-up {t_loop / report['engine_point_s'][nj]:6.1f}x  same work as the "
                  f"loop (n_jobs={nj});  {t_loop / report['engine_s'][nj]:6.1f}x  with every "
                  f"interval and paired delta")
        report.update(loop_s=t_loop, ratio_point=t_loop / best[False],
                      ratio_full=t_loop / best[True])
        worst = 0.0
        for (model, name), ref in loop.items():
            sl = res.slice(name)
            for metric in ("auc", "pr_auc", "log_loss", "brier", "precision", "ece"):
                a, b = sl.metrics[model][metric].value, ref[metric]
                if np.isfinite(a) and np.isfinite(b):
                    worst = max(worst, abs(a - b))
        print(f"max |engine - loop| over AUC, PR AUC, log loss, Brier, precision, ECE: {worst:.1e}")
        report["max_abs_diff"] = worst
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
