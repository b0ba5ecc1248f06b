"""History at scale: `history`, `lineage` and `dashboard` on 10,000 versions and 2,000 promotions.

    python benchmarks/history_scale.py [--models 100] [--versions 100] [--keep DIR]

Builds a registry whose git history is real: one commit per registered version (10,000) and one
per manifest change (2,000: first deployments, 5% canaries, canaries promoted, and rollbacks as
revert commits carrying git's "This reverts commit <sha>." line with the real sha and a reason),
streamed through one `git fast-import` (a few seconds instead of minutes of `git commit`).

Then times, as CLI processes the way users run them (best of --repeat):

* `mlreg history` (the whole timeline; one service; `--at` a date) - target < 1 s;
* `mlreg lineage` reverse queries, cold (the index is built: every record parsed once, in a
  process pool) and warm (the index in .git/mlreg is keyed by blob id) - target < 1 s warm;
* `mlreg dashboard` (10,000 version pages) - target < 30 s;

and, in the same run, the naive peers they replace: reading the manifest's history with one
`git show <commit>:production.yaml` process per commit (plus a YAML parse each), and answering a
reverse query by parsing every record (`lineage --no-cache`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
       "MLREG_REGISTRY": ""}
ENV.pop("MLREG_REGISTRY")
T0 = 1672531200  # 2023-01-01T00:00:00Z


def _record_template() -> str:
    text = (ROOT / "models/fraud/127.yaml").read_text()
    text = text.replace("{", "{{").replace("}", "}}")
    for old, new in [
        ("model: fraud", "model: {model}"), ("version: '127'", "version: '{version}'"),
        ("created: '2024-01-25T07:40:02Z'", "created: '{created}'"),
        ("parent: '126'", "parent: '{parent}'"),
        ("commit: f3a9c71e2b8d4a6c9e0f1b2d3c4a5e6f7a8b9c0d", "commit: {commit}"),
        ("s3://lake/fraud/txns/dt=2024-01-10..2024-01-24/",
         "s3://lake/{model}/txns/v={version}/"),
        ("learning_rate: 0.001", "learning_rate: {lr}"),
        ("auc: 0.9012", "auc: {auc}"),
        ("torch: 2.2.2", "torch: {torch}"),
        ("examples/store/fraud/127/", "store/{model}/{version}/"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    return text


def _manifest(services: dict[str, dict]) -> bytes:
    lines = ["schema: mlreg/deployments/v1", "services:"]
    blocks = []
    for name, s in services.items():
        b = [f"  {name}:", f"    model: {s['model']}", f"    stable: '{s['stable']}'"]
        if s.get("canary"):
            b += ["    canary:", f"      version: '{s['canary']}'", "      percent: 5"]
        b.append("    target: server")
        blocks.append("\n".join(b))
    return ("\n".join(lines) + "\n" + "\n\n".join(blocks) + "\n").encode()


class _Importer:
    """One `git fast-import` process; `mark()` asks it for a commit's real sha mid-stream."""

    def __init__(self, repo: Path) -> None:
        self.proc = subprocess.Popen(["git", "-C", str(repo), "fast-import", "--quiet",
                                      "--done"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=ENV)
        self.n = 0
        self.t = T0

    def commit(self, message: str, files: dict[str, bytes]) -> int:
        assert self.proc.stdin is not None
        self.n += 1
        self.t += 600
        msg = message.encode()
        out = [f"commit refs/heads/main\nmark :{self.n}\n".encode(),
               f"author bench <bench@example.com> {self.t} +0000\n".encode(),
               f"committer bench <bench@example.com> {self.t} +0000\n".encode(),
               f"data {len(msg)}\n".encode(), msg, b"\n"]
        if self.n > 1:
            out.append(f"from :{self.n - 1}\n".encode())
        for path, data in files.items():
            out += [f"M 100644 inline {path}\ndata {len(data)}\n".encode(), data, b"\n"]
        self.proc.stdin.write(b"".join(out))
        return self.n

    def sha(self, mark: int) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"get-mark :{mark}\n".encode())
        self.proc.stdin.flush()
        return self.proc.stdout.readline().decode().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"done\n")
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise SystemExit("git fast-import failed")


def build(dest: Path, n_models: int, n_versions: int) -> dict:
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True, env=ENV)
    template = _record_template()
    model_yaml = (ROOT / "models/fraud/model.yaml").read_text()
    imp = _Importer(dest)
    files = {"mlreg.yaml": b"schema: mlreg/settings/v1\nartifact_store: store\n",
             "production.yaml": _manifest({}),
             **{f"policies/{p.name}": p.read_bytes() for p in (ROOT / "policies").glob("*.yaml")
                if p.name in ("default.yaml",)}}
    for m in range(n_models):
        files[f"models/model-{m:03d}/model.yaml"] = model_yaml.replace(
            "name: fraud", f"name: model-{m:03d}").encode()
    imp.commit("Create the registry", files)
    services: dict[str, dict] = {}
    counts = {"registrations": 0, "manifest": 0, "rollbacks": 0}
    pending: dict[str, int] = {}  # service -> mark of its running canary commit
    for v in range(1, n_versions + 1):
        for m in range(n_models):
            model = f"model-{m:03d}"
            text = template.format(
                model=model, version=v, parent=max(1, v - 1),
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(imp.t + 600)),
                commit=f"{(m * 7919 + v * 104729) & 0xffffffffffff:012x}" * 3 + "abcd",
                lr=round(0.001 + v * 1e-5, 6), auc=round(0.85 + 0.0004 * v + 0.001 * (m % 7), 4),
                torch="2.1.2" if v <= n_versions // 2 else "2.2.2")
            imp.commit(f"Register {model}@{v} (#{imp.n + 1})",
                       {f"models/{model}/{v}.yaml": text.encode()})
            counts["registrations"] += 1
            if v % 10:
                continue
            svc = f"service-{m:03d}"
            cycle = v // 10
            if svc not in services:  # first deployment of an older version, then a canary
                first = str(max(1, v - 5))
                services[svc] = {"model": model, "stable": first}
                msg = f"Deploy {model}@{first} to the new service {svc} (#{imp.n + 1})"
                imp.commit(msg, {"production.yaml": _manifest(services)})
                counts["manifest"] += 1
            elif svc in pending:  # decide the running canary: promote, or roll it back
                canary = services[svc]["canary"]
                if cycle % 5 == 0:
                    sha = imp.sha(pending.pop(svc))
                    services[svc] = {k: x for k, x in services[svc].items() if k != "canary"}
                    msg = (f'Revert "Promote {model}@{canary} to {svc} as a 5% canary" '
                           f"(#{imp.n + 1})\n\nThis reverts commit {sha}.\n\n"
                           f"Reason: p99 latency spike on {svc}\n")
                    counts["rollbacks"] += 1
                else:
                    pending.pop(svc)
                    services[svc] = {"model": model, "stable": canary}
                    msg = f"Promote {model}@{canary} to {svc} (#{imp.n + 1})"
                imp.commit(msg, {"production.yaml": _manifest(services)})
                counts["manifest"] += 1
            services[svc] = {**services[svc], "canary": str(v)}
            pending[svc] = imp.commit(
                f"Promote {model}@{v} to {svc} as a 5% canary (#{imp.n + 1})\n\n"
                "Reason: retrained", {"production.yaml": _manifest(services)})
            counts["manifest"] += 1
    imp.close()
    subprocess.run(["git", "-C", str(dest), "reset", "-q", "--hard", "main"], check=True,
                   env=ENV)
    counts["commits"] = imp.n
    return counts


def timed(args: list[str], cwd: Path, repeat: int) -> tuple[float, list[float], str]:
    times, out = [], ""
    for _ in range(repeat):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mlreg", *args], cwd=cwd,
                              capture_output=True, env=ENV)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"mlreg {' '.join(args)} failed: {proc.stderr.decode()[-2000:]}")
        out = proc.stdout.decode()
    return min(times), times, out


def naive_history(repo: Path) -> tuple[float, int]:
    """The peer: one `git show` per manifest version, each parsed with PyYAML."""
    import yaml

    t = time.perf_counter()
    shas = subprocess.run(["git", "-C", str(repo), "log", "--first-parent", "--reverse",
                           "--format=%H", "--", "production.yaml"], capture_output=True,
                          check=True).stdout.decode().split()
    for sha in shas:
        raw = subprocess.run(["git", "-C", str(repo), "show", f"{sha}:production.yaml"],
                             capture_output=True, check=True).stdout
        yaml.load(raw, Loader=yaml.CSafeLoader)
    return time.perf_counter() - t, len(shas)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", default=None, help="build the registry here and keep it")
    args = ap.parse_args()
    tmp = None
    if args.keep:
        repo = Path(args.keep)
        if repo.exists():
            shutil.rmtree(repo)
        repo.mkdir(parents=True)
    else:
        tmp = tempfile.mkdtemp(prefix="mlreg-history-scale-")
        repo = Path(tmp) / "registry"
        repo.mkdir()
    try:
        t = time.perf_counter()
        counts = build(repo, args.models, args.versions)
        print(f"built {counts['registrations']:,} versions, {counts['manifest']:,} manifest "
              f"changes ({counts['rollbacks']} rollbacks), {counts['commits']:,} commits in "
              f"{time.perf_counter() - t:.1f}s with git fast-import")
        rows = []

        def row(name: str, seconds: float, target: float | None, peer: float | None = None,
                note: str = "") -> None:
            rows.append((name, seconds, target, peer, note))

        best, _, _ = timed(["--help"], repo, args.repeat)
        row("mlreg --help (start-up)", best, None)
        naive, n = naive_history(repo)
        best, _, out = timed(["history", "--limit", "20"], repo, args.repeat)
        total = out.strip().splitlines()[-1]
        row("history (whole timeline)", best, 1.0, naive, total)
        svc = f"service-{min(42, args.models - 1):03d}"
        best, _, _ = timed(["history", svc], repo, args.repeat)
        row(f"history {svc}", best, 1.0, naive)
        best, _, out = timed(["history", "--at", "2023-02-01"], repo, args.repeat)
        row("history --at 2023-02-01", best, 1.0, naive)
        query = ["lineage", "--data", "s3://lake/model-007/txns/"]
        cold, _, _ = timed(query, repo, 1)
        row("lineage --data (cold: index built)", cold, None)
        warm, _, out = timed(query, repo, args.repeat)
        peer, _, _ = timed([*query, "--no-cache"], repo, 1)
        row("lineage --data (warm)", warm, 1.0, peer, out.strip().splitlines()[-2])
        best, _, out = timed(["lineage", "--package", "torch==2.1.2"], repo, args.repeat)
        row("lineage --package torch==2.1.2", best, 1.0, peer, out.strip().splitlines()[-2])
        best, _, out = timed(["lineage", "--commit", "0000000000"], repo, args.repeat)
        row("lineage --commit (no match)", best, 1.0, peer)
        site = Path(tempfile.mkdtemp(prefix="mlreg-site-"))
        try:
            best, _, out = timed(["dashboard", "--out", str(site / "s")], repo, 1)
            row("dashboard (10,000 version pages)", best, 30.0, None, out.strip()[-160:])
            pages = sum(1 for _ in (site / "s").rglob("*.html"))
            size = sum(p.stat().st_size for p in (site / "s").rglob("*") if p.is_file())
        finally:
            shutil.rmtree(site, ignore_errors=True)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"\n{os.cpu_count()} CPUs, load average {load:.2f} at the end (other work on the "
              "machine slows every row alike; compare the speed-ups)")
        print(f"naive peer for history: one `git show` + YAML parse per manifest version "
              f"({n:,} versions); for lineage: `lineage --no-cache` (every record parsed)\n")
        print(f"{'measurement':40s} {'seconds':>8s} {'target':>7s} {'peer s':>8s} "
              f"{'speed-up':>9s}  ok")
        for name, secs, target, peer, _note in rows:
            ok = "" if target is None else ("yes" if secs < target else "NO")
            print(f"{name:40s} {secs:8.3f} {'' if target is None else f'< {target:g}':>7s} "
                  f"{'' if peer is None else f'{peer:8.2f}':>8s} "
                  f"{'' if peer is None else f'{peer / secs:8.1f}x':>9s}  {ok}")
        for name, _s, _t, _p, note in rows:
            if note:
                print(f"  {name}: {note}")
        print(f"  dashboard: {pages:,} pages, {size / 1e6:.1f} MB")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
