"""Evaluation at scale: time, peak memory and the largest AUC bound of every engine.

    python benchmarks/scale_engines.py                          # 10M rows, every path
    python benchmarks/scale_engines.py --rows 100000000 --paths stream,duckdb
    python benchmarks/scale_engines.py --gate --rows 20000000   # mlreg gate on every engine
    python benchmarks/scale_engines.py --gate --rows 20000000 --candidate 128   # a failing one
    python benchmarks/scale_engines.py --keep /data/bench       # reuse generated Parquet

Data (fixed seed): partitioned Parquet in a temp directory, one file per million rows, CTR-like
labels (~3.5% positives), two models (a candidate and a noisier baseline, float32 scores) and a
slice column with 100 values of Zipf-like traffic. Every path computes the same gate metrics
(AUC, log loss, calibration slope, precision at 0.05) on the overall slice and the 100 slices,
for both models, with paired candidate-vs-baseline deltas:

* ``memory``: read the Parquet into pandas, then ``mlreg.metrics.evaluate_predictions``;
* ``stream``: ``mlreg.scale.evaluate_at_scale(engine="stream")``, row batches through numpy;
* ``duckdb``: the portable SQL on DuckDB with a 2 GB memory limit and a spill directory;
* ``spark``: the portable SQL on Spark ``local[2]`` (the JVM's peak memory is reported apart).

Each path runs in its own process (so peak RSS is its own) and reports: seconds (pass 1 and
total), peak RSS, cells, the largest AUC bound over slices and models, and how it agrees with
the first path run (exact metrics to 1e-9, AUC within the bound).

``--gate`` builds a copy of the example registry whose fraud predictions hold ``--rows`` rows
(resampled from the example, the same examples for every version), runs ``mlreg gate
--candidate fraud@127 --baseline fraud@126 --engine E`` (``--candidate 128``: the version that
violates the policy) for every engine, compares the verdicts row by row and prints the note
naming each engine's bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

METRICS = ["auc", "log_loss", "calibration_slope", "precision@0.05"]
PATHS = ("memory", "stream", "duckdb", "spark")
FILE_ROWS = 1_000_000
SLICES = 100


# --------------------------------------------------------------------------- data


def make_file(path: Path, n: int, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, SLICES + 1) ** 0.8
    seg = rng.choice(SLICES, n, p=p / p.sum()).astype(np.int16)
    effect = np.random.default_rng(7).normal(0, 0.4, SLICES)
    logit = -3.6 + effect[seg] + rng.normal(0, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    cand = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.6, n))))
    base = 1 / (1 + np.exp(-(0.9 * logit - 0.3 + rng.normal(0, 0.9, n))))
    table = pa.table({
        "label": y, "segment": pa.array([f"s{v:03d}" for v in range(SLICES)]).take(seg),
        "score_candidate": cand.astype(np.float32), "score_baseline": base.astype(np.float32)})
    pq.write_table(table, path, row_group_size=256_000)


def make_data(root: Path, rows: int) -> Path:
    d = root / f"preds_{rows}"
    if d.exists() and (d / "_done").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    files = (rows + FILE_ROWS - 1) // FILE_ROWS
    for i in range(files):
        n = min(FILE_ROWS, rows - i * FILE_ROWS)
        make_file(d / f"part-{i:05d}.parquet", n, 20261126 + i)
    (d / "_done").write_text("")
    return d


# --------------------------------------------------------------------------- one path


def _kw() -> dict:
    return dict(label="label", scores={"candidate": "score_candidate",
                                       "baseline": "score_baseline"},
                slice_columns=["segment"], metrics=METRICS)


def _jvm_peak(session) -> float:
    """Peak RSS (VmHWM) of the driver JVM that pyspark launched, in MB."""
    try:
        pid = session.sparkContext._gateway.proc.pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (AttributeError, OSError):
        pass
    return float("nan")


def run_path(path: str, data: Path, spill: Path) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    out: dict = {"path": path}
    t0 = time.perf_counter()
    if path == "memory":
        import pyarrow.dataset as ds

        from mlreg.metrics import evaluate_predictions

        files = sorted(str(p) for p in data.glob("*.parquet"))
        frame = ds.dataset(files, format="parquet").to_table().to_pandas()
        out["read_s"] = time.perf_counter() - t0
        res = evaluate_predictions(frame, **_kw())
        out["eval_s"] = time.perf_counter() - t0 - out["read_s"]
    else:
        from mlreg.scale import evaluate_at_scale

        files = sorted(str(p) for p in data.glob("*.parquet"))
        options: dict = {"progress": False}
        if path == "duckdb":
            options.update(memory_limit="2GB", spill_dir=str(spill), threads=2)
        if path == "spark":
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            options["spark_conf"] = {
                "spark.master": "local[2]", "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false", "spark.driver.memory": "3g",
                "spark.sql.shuffle.partitions": "8"}
        res = evaluate_at_scale(files, engine=path, options=options, **_kw())
        out.update(res.scale.seconds)
        out["cells"] = res.scale.cells
        out["passes"] = res.scale.passes
        if path == "spark":
            from pyspark.sql import SparkSession

            session = SparkSession.builder.getOrCreate()
            out["jvm_peak_rss_mb"] = _jvm_peak(session)
            session.stop()
    out["total_s"] = time.perf_counter() - t0
    out["rows"] = int(res.n)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bounds = [float(getattr(s.metrics[m]["auc"], "bound", 0.0) or 0.0)
              for s in res.slices for m in res.models]
    out["max_auc_bound"] = max(bounds)
    out["values"] = {f"{s.name}|{m}|{k}": [v.value, float(getattr(v, "bound", 0.0) or 0.0)]
                     for s in res.slices for m in res.models
                     for k, v in s.metrics[m].items()}
    return out


def agreement(ref: dict, got: dict) -> str:
    worst_exact = 0.0
    outside = 0
    for key, (a, _) in ref["values"].items():
        b, bound = got["values"][key]
        if a != a or b != b:
            continue
        err = abs(a - b)
        if bound > 0 or ref["values"][key][1] > 0:
            outside += err > bound + ref["values"][key][1] + 1e-9
        else:
            worst_exact = max(worst_exact, err / max(1.0, abs(a)))
    return f"exact metrics max diff {worst_exact:.1e}, AUC outside bound: {outside}"


def child(path: str, data: Path, spill: Path, timeout: int) -> dict:
    cmd = ["nice", "-n", "10", sys.executable, __file__, "--child", path, "--data", str(data),
           "--spill", str(spill)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"path": path, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- gate demo


def _resample(reg: Path, rows: int, versions: tuple[str, ...]) -> None:
    """fraud@<version> predictions resampled to ``rows`` rows (the same examples for every
    version, so the gate can join them), records updated with the new sha256 and size."""
    import hashlib

    import pandas as pd
    import yaml

    store = reg / "examples/store/fraud"
    for v in versions:
        f = pd.read_parquet(ROOT / "examples/store/fraud" / v / "eval_predictions.parquet")
        idx = np.random.default_rng(11).integers(0, len(f), rows)
        big = f.iloc[idx].reset_index(drop=True)
        big["example_id"] = np.arange(rows, dtype=np.int64)
        path = store / v / "eval_predictions.parquet"
        big.to_parquet(path, index=False, row_group_size=1_000_000)
        data = path.read_bytes()
        rec_path = reg / f"models/fraud/{v}.yaml"
        rec = yaml.safe_load(rec_path.read_text())
        rec["evaluation"]["predictions"].update(
            sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        rec_path.write_text(yaml.safe_dump(rec, sort_keys=False))
        (reg / f"_done_{v}").write_text("")


def gate_demo(root: Path, rows: int, engines: list[str], timeout: int,
              candidate: str = "127") -> None:
    import yaml

    reg = root / f"registry_{rows}"
    if (reg / "_done").exists() and not (reg / f"_done_{candidate}").exists() \
            and candidate != "127":
        _resample(reg, rows, (candidate,))
    if not (reg / "_done").exists():
        shutil.rmtree(reg, ignore_errors=True)
        for rel in ["mlreg.yaml", "production.yaml", "policies", "models", "examples/store"]:
            src = ROOT / rel
            if src.is_dir():
                shutil.copytree(src, reg / rel)
            else:
                (reg / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, reg / rel)
        _resample(reg, rows, tuple(dict.fromkeys(("126", "127", candidate))))
        settings = yaml.safe_load((reg / "mlreg.yaml").read_text())
        settings["evaluation"] = {
            "memory_limit": "4GB", "spill_dir": str(root / "spill"), "threads": 2,
            "spark_conf": {"spark.master": "local[2]", "spark.ui.enabled": "false",
                           "spark.ui.showConsoleProgress": "false",
                           "spark.driver.memory": "4g"}}
        (reg / "mlreg.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        (reg / "_done").write_text("")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYTHONWARNINGS="ignore")
    results = {}
    for e in engines:
        out = root / f"gate_{candidate}_{e}.json"
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["nice", "-n", "10", sys.executable, "-m", "mlreg", "gate", "--candidate",
             f"fraud@{candidate}", "--baseline", "fraud@126", "--engine", e, "-C", str(reg),
             "--json", str(out)],
            capture_output=True, text=True, timeout=timeout, env=env)
        secs = time.perf_counter() - t0
        if not out.exists():
            print(f"{e:8s} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        doc = json.loads(out.read_text())
        rows_v = {f"{g['id']}:{r['item']}": r["verdict"] for g in doc["gates"] for r in g["rows"]}
        results[e] = rows_v
        print(f"{e:8s} verdict {doc['verdict']:4s}  {secs:6.1f} s  engine "
              f"{doc['evaluation']['engine']}  rows {doc['evaluation']['rows']:,}")
        for note in doc["notes"]:
            print(f"         note: {note}")
    if results:
        ref_name, ref = next(iter(results.items()))
        for e, v in results.items():
            same = "identical" if v == ref else f"DIFFERENT: {set(v.items()) ^ set(ref.items())}"
            print(f"verdict rows {e} vs {ref_name}: {same} ({len(v)} rows)")


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--keep", default=None, help="directory for the data (kept; reused)")
    ap.add_argument("--gate", action="store_true", help="mlreg gate on every engine instead")
    ap.add_argument("--candidate", default="127", help="--gate: fraud@VERSION (127 passes, "
                    "128 violates the policy)")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spill", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_path(args.child, Path(args.data), Path(args.spill))))
        return
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mlreg-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    paths = [p for p in args.paths.split(",") if p]
    try:
        if args.gate:
            gate_demo(root, args.rows, paths, args.timeout, args.candidate)
            return
        t0 = time.perf_counter()
        data = make_data(root, args.rows)
        size = sum(p.stat().st_size for p in data.glob("*.parquet"))
        print(f"data: {args.rows:,} rows, {SLICES} slices, 2 models, "
              f"{len(list(data.glob('*.parquet')))} Parquet files, {size / 2**20:.0f} MiB "
              f"({time.perf_counter() - t0:.0f} s to generate)")
        print(f"{'path':8s} {'pass1 s':>8s} {'total s':>8s} {'peak RSS':>10s} {'cells':>10s} "
              f"{'max AUC bound':>14s}  agreement")
        ref = None
        for p in paths:
            r = child(p, data, root / "spill", args.timeout)
            if "error" in r:
                print(f"{p:8s} failed: {r['error']}")
                continue
            pass1 = r.get("pass1", r.get("eval_s", float("nan")))
            rss = f"{r['peak_rss_mb']:,.0f} MB"
            if "jvm_peak_rss_mb" in r:
                rss += f" (+JVM {r['jvm_peak_rss_mb']:,.0f} MB)"
            agree = "reference" if ref is None else agreement(ref, r)
            print(f"{p:8s} {pass1:8.1f} {r['total_s']:8.1f} {rss:>10s} {r.get('cells', 0):>10,} "
                  f"{r['max_auc_bound']:14.2e}  {agree}", flush=True)
            ref = ref or r
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
