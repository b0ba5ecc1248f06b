"""What lineage capture costs a training job: time to open a run, time to finish it, memory.

    python benchmarks/capture_overhead.py                       # artifacts of 1, 64 and 512 MiB
    python benchmarks/capture_overhead.py --sizes-mb 1,1024 --repeats 3

Each measurement runs in a fresh interpreter (its own peak RSS, a cold fingerprint like a real
job's), against a registry inside a git repository on local disk:

* ``open``   - ``capture(...)``: the fingerprint (git, package list, CPU, memory, GPU probes) and
  the version plan (working tree + main);
* ``finish`` - leaving the ``with`` block: hashing and uploading the artifact to the local store
  (streamed, fsynced), validating the record twice and writing it;
* ``baseline`` - what a job would pay anyway to keep its model: ``shutil.copyfile`` plus a
  sha256 of the file, no fsync;
* ``rss``    - peak RSS of the process minus its RSS before the run opened.

Prints one JSON line per measurement and a summary table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MiB = 1024 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(registry: str, artifact: str, data: str, version: str) -> None:
    from mlreg.lineage import capture

    before = _rss_mb()
    t0 = time.perf_counter()
    run = capture("bench", registry=registry, code_dir=registry, version=version)
    t1 = time.perf_counter()
    run.log_dataset("train", data)
    run.log_params(lr=0.1)
    run.log_artifact(artifact)
    t2 = time.perf_counter()
    record = run.finish()
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(run.path, "rb") as fh:
        size = len(fh.read())
    # The baseline: keep a copy and its digest, as any job must.
    dest = artifact + ".copy"
    b0 = time.perf_counter()
    shutil.copyfile(artifact, dest)
    h = hashlib.sha256()
    with open(dest, "rb") as fh:
        while chunk := fh.read(8 * MiB):
            h.update(chunk)
    b1 = time.perf_counter()
    os.remove(dest)
    print(json.dumps({
        "open_s": round(t1 - t0, 4), "fingerprint_s": run.fingerprint.seconds,
        "probe_s": run.fingerprint.timings, "finish_s": round(t3 - t2, 4),
        "baseline_s": round(b1 - b0, 4), "rss_before_mb": round(before, 1),
        "rss_peak_delta_mb": round(peak - before, 1), "record_bytes": size,
        "packages": record["environment"]["packages"]["count"],
    }))


def setup(base: str) -> str:
    from mlreg.scaffold import init_registry

    reg = os.path.join(base, "registry")
    init_registry(reg)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    subprocess.run(["git", "-C", reg, "config", "user.email", "b@example.com"], check=True)
    subprocess.run(["git", "-C", reg, "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", reg, "commit", "-qm", "registry"], check=True, env=env)
    return reg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes-mb", default="1,64,512")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=4, metavar=("REGISTRY", "ARTIFACT", "DATA", "VERSION"))
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlreg-capture-bench-") as base:
        reg = setup(base)
        data = os.path.join(base, "train.csv")
        with open(data, "w") as fh:
            fh.write("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(100_000)))
        version = 0
        for size in sizes:
            artifact = os.path.join(base, f"model-{size}.bin")
            with open(artifact, "wb") as fh:
                chunk = os.urandom(MiB)
                for _ in range(size):
                    fh.write(chunk)
            results = []
            for _ in range(args.repeats):
                version += 1
                proc = subprocess.run([sys.executable, __file__, "--child", reg, artifact, data,
                                       str(version)], capture_output=True, text=True, check=True)
                res = json.loads(proc.stdout)
                res["size_mb"] = size
                print(json.dumps(res))
                results.append(res)
            os.remove(artifact)
            med = {k: statistics.median(r[k] for r in results)
                   for k in ("open_s", "fingerprint_s", "finish_s", "baseline_s",
                             "rss_peak_delta_mb", "record_bytes")}
            rows.append((size, med))
    print()
    print(f"{'artifact':>9} {'open s':>7} {'fprint s':>8} {'finish s':>8} {'baseline s':>10} "
          f"{'MiB/s':>7} {'rss +MB':>7} {'record B':>8}")
    for size, m in rows:
        rate = size / m["finish_s"] if m["finish_s"] else float("inf")
        print(f"{size:>6} MiB {m['open_s']:>7.3f} {m['fingerprint_s']:>8.3f} "
              f"{m['finish_s']:>8.3f} {m['baseline_s']:>10.3f} {rate:>7.0f} "
              f"{m['rss_peak_delta_mb']:>7.1f} {m['record_bytes']:>8.0f}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "src"))
    main()
