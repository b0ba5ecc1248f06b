"""Streamed upload/download benchmark: time and peak memory of the artifact store.

    python benchmarks/storage_stream.py                  # 1 GiB, local + S3 (moto server)
    python benchmarks/storage_stream.py --size-mb 256 --phases local-put,naive-local

Each phase runs in a fresh interpreter so its peak RSS (``getrusage().ru_maxrss``) is its own:
one process per measurement, nothing inherited from the others. The S3 phases talk HTTP to a
moto server running in a *separate* process (moto keeps objects in memory; its memory must
not count as ours). Every phase reports the RSS right before the transfer too, so the
transfer's own cost (peak minus baseline) is visible next to the interpreter + imports.

The naive peers are what a quick script would do: ``shutil.copyfile`` plus
``hashlib.sha256(path.read_bytes())`` locally, and ``put_object(Body=path.read_bytes())``
for S3. Their peak memory grows with the file; the store's must not (target: < 200 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1024 * 1024
BUCKET = "mlreg-bench"
KEY = "bench/model.bin"
ALL_PHASES = ["local-put", "local-get", "naive-local", "s3-put", "s3-get", "naive-s3"]


def _rss_mb() -> float:
    """Current RSS in MB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_mb()


def _peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / MiB  # KiB on Linux, B on macOS


# -- one phase, in its own process ------------------------------------------------------------

def run_phase(args: argparse.Namespace) -> dict:
    src = Path(args.src)
    work = Path(args.work)
    result: dict = {"phase": args.phase}
    if args.phase.startswith("naive"):
        import hashlib
        import shutil

        if args.phase == "naive-s3":
            import boto3

            client = boto3.client("s3", endpoint_url=args.endpoint, region_name="us-east-1")
        before = _rss_mb()
        start = time.perf_counter()
        if args.phase == "naive-local":
            shutil.copyfile(src, work / "naive-copy.bin")
            digest = hashlib.sha256(src.read_bytes()).hexdigest()
        else:
            data = src.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            client.put_object(Bucket=BUCKET, Key="naive/model.bin", Body=data)
        result["seconds"] = time.perf_counter() - start
        result["sha256"] = digest
    else:
        from mlreg.storage import open_store

        if args.phase.startswith("local"):
            store = open_store(work / "store")
        else:
            store = open_store(f"s3://{BUCKET}/registry", endpoint_url=args.endpoint)
        store.exists(KEY)  # connect (S3) and import everything before measuring
        before = _rss_mb()
        start = time.perf_counter()
        if args.phase.endswith("put"):
            obj = store.put_file(src, KEY, progress=False)
        else:
            obj = store.get_file(KEY, work / f"{args.phase}.bin", sha256=args.sha256,
                                 size=args.size, progress=False)
        result["seconds"] = time.perf_counter() - start
        result["sha256"] = obj.sha256
    result["baseline_rss_mb"] = before
    result["peak_rss_mb"] = _peak_mb()
    return result


# -- orchestration ----------------------------------------------------------------------------

def make_source(path: Path, size: int, sparse: bool) -> None:
    with open(path, "wb") as f:
        if sparse:
            f.truncate(size)
            return
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n


MOTO_SERVER = """
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # run until the benchmark closes our stdin
server.stop()
"""


def start_moto(env: dict) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", MOTO_SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    port = proc.stdout.readline().strip()
    endpoint = f"http://127.0.0.1:{port}"
    subprocess.run([sys.executable, "-c",
                    "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1], "
                    f"region_name='us-east-1').create_bucket(Bucket='{BUCKET}')", endpoint],
                   check=True, env=env)
    return proc, endpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--phases", default=",".join(ALL_PHASES),
                        help=f"comma-separated subset of {','.join(ALL_PHASES)}")
    parser.add_argument("--sparse", action="store_true",
                        help="sparse (all-zero) source file instead of random bytes")
    parser.add_argument("--workdir", help="where to put the files (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    # internal: run one phase in this process
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--sha256", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(run_phase(args)))
        return 0

    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(ALL_PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    size = args.size_mb * MiB
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    src_dir = Path(__file__).resolve().parents[1] / "src"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src_dir), env.get("PYTHONPATH")]))

    with tempfile.TemporaryDirectory(prefix="mlreg-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        src = work / "source.bin"
        t = time.perf_counter()
        make_source(src, size, args.sparse)
        print(f"source: {args.size_mb} MiB {'sparse' if args.sparse else 'random'} file "
              f"({time.perf_counter() - t:.1f}s to write), python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs", flush=True)

        moto, endpoint = (None, "")
        if any(p.endswith("s3") or p.startswith("s3") for p in phases):
            moto, endpoint = start_moto(env)
        results: dict[str, dict] = {}
        sha256 = ""
        try:
            for phase in phases:
                cmd = [sys.executable, __file__, "--phase", phase, "--src", str(src),
                       "--work", str(work), "--endpoint", endpoint,
                       "--sha256", sha256 or "0" * 64, "--size", str(size)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[phase] = r
                sha256 = sha256 or r["sha256"]
                if r["sha256"] != sha256:
                    raise SystemExit(f"{phase}: digest {r['sha256']} != {sha256}")
                rate = args.size_mb / r["seconds"] if r["seconds"] else float("inf")
                print(f"{phase:12s} {r['seconds']:7.2f} s  {rate:7.0f} MiB/s  "
                      f"peak RSS {r['peak_rss_mb']:7.1f} MB  "
                      f"(before transfer {r['baseline_rss_mb']:6.1f} MB)", flush=True)
        finally:
            if moto is not None:
                moto.stdin.close()
                moto.wait(timeout=30)

    print("(the store fsyncs what it writes and verifies digests; the naive peers do neither)")
    for ours, naive in (("local-put", "naive-local"), ("s3-put", "naive-s3")):
        if ours in results and naive in results:
            a, b = results[ours], results[naive]
            print(f"{ours} vs {naive}: time x{a['seconds'] / b['seconds']:.2f}, "
                  f"peak RSS x{a['peak_rss_mb'] / b['peak_rss_mb']:.2f} "
                  f"({a['peak_rss_mb']:.0f} MB vs {b['peak_rss_mb']:.0f} MB)")
    worst = max((r["peak_rss_mb"] for p, r in results.items() if not p.startswith("naive")),
                default=0.0)
    if worst:
        verdict = "OK" if worst < 200 else "OVER TARGET"
        print(f"store peak RSS: {worst:.0f} MB (target < 200 MB): {verdict}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
