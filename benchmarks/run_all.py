"""Run every benchmark with its default (issue-target) sizes, one after another.

    python benchmarks/run_all.py              # all of them (tens of minutes on 2 cores)
    python benchmarks/run_all.py --only registry_scale,history_scale
    python benchmarks/run_all.py --quick      # smaller sizes, a few minutes: a smoke run

Each benchmark prints its own table and the ratio against a peer measured in the same run.
Benchmarks are never part of `make test`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (arguments at the target sizes, arguments for --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "registry_scale": ([], ["--models", "20", "--versions", "50"]),
    "capture_overhead": ([], ["--sizes-mb", "1,64", "--repeats", "1"]),
    "storage_stream": (["--size-mb", "1024"], ["--size-mb", "64"]),
    "metrics_speed": (["--full"], ["--rows", "200000"]),
    "history_scale": ([], ["--models", "20", "--versions", "100", "--repeat", "1"]),
    "scale_engines": (["--rows", "10000000"], ["--rows", "200000"]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    failed = []
    for name in names:
        full, quick = BENCHMARKS[name]
        argv = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full)]
        print(f"\n=== {name}: {' '.join(argv[1:])}", flush=True)
        t = time.perf_counter()
        rc = subprocess.call(argv)
        print(f"=== {name}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
