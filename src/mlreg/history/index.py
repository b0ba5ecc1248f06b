"""The lineage index: facts of every record, cached by git blob id, for fast reverse queries.

"Which versions were trained on the snapshot that turned out to be corrupted?" must answer in
well under a second on 10,000 versions, but parsing 10,000 YAML records takes ~10 s. Records are
immutable, and git names every file version by its content (the blob id), so the facts extracted
from a blob never go stale: the index maps ``blob id -> facts`` and lives in
``<git dir>/mlreg/lineage-index.v1.json`` (never committed, shared by every worktree).

Which blob each record is, without reading it:

* at a revision: one ``git ls-tree -r REV -- models``;
* in the working tree: the blob ids git's own index holds (``git ls-files -s``), except files
  that differ from it (``git diff-files``) or are untracked (``git ls-files -o``), which are
  hashed by one ``git hash-object --stdin-paths``. Three or four processes, no file reads.

Records not in the cache are parsed (a process pool when there are many) and added; the file is
rewritten atomically. A warm query costs the ls-tree/ls-files calls, one JSON load and a scan.
Outside a git repository nothing is cached and every record is parsed.

Facts (:func:`record_facts`): identity, parent, code commit, data snapshots (role, URI,
identity), the evaluation snapshot, features (name, version, digest), packages (shared by
digest: most versions of a model have the same package list), Python, GPU, the record's own
metrics and latency, artifacts. Unreadable records carry ``error``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlreg.errors import InputError
from mlreg.gitio import git, resolve_commit, toplevel
from mlreg.history.gitlog import BlobReader
from mlreg.names import VERSION_PATTERN, natural_key

__all__ = [
    "INDEX_VERSION",
    "record_facts",
    "LineageIndex",
    "load_index",
    "Query",
    "parse_query",
    "match_facts",
    "normalize_package",
]

INDEX_VERSION = 1
_RECORD = re.compile(r"^models/([^/]+)/([^/]+)\.yaml$")
_VERSION = re.compile(VERSION_PATTERN)
_POOL_MIN = 400  # misses before parsing moves to a process pool


def normalize_package(name: str) -> str:
    """PEP 503: case-insensitive, runs of ``-``, ``_`` and ``.`` are one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _identity(entry: Mapping[str, Any]) -> str | None:
    for k in ("sha256", "version_id", "snapshot_id", "etag", "version"):
        v = entry.get(k)
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v):
            return f"{k}:{v}"
    parts = entry.get("partitions")
    if isinstance(parts, dict) and parts:
        return "partitions:" + ",".join(f"{k}={v}" for k, v in parts.items())
    return None


def record_facts(record: Mapping[str, Any]) -> dict:
    """The facts the reverse queries and the dashboard use, from one record. Pure."""
    code = record.get("code") or {}
    env = record.get("environment") or {}
    pk = env.get("packages") or {}
    gpu = (record.get("hardware") or {}).get("gpu") or {}
    evaluation = record.get("evaluation") or {}
    snap = evaluation.get("snapshot") or {}
    latency = (record.get("operational") or {}).get("latency") or {}
    metrics: dict[str, float] = {}
    for split in ("validation", "training"):
        for k, v in ((record.get("metrics") or {}).get(split) or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                metrics[f"{split}.{k}"] = v
    return {
        "model": record.get("model"), "version": record.get("version"),
        "created": record.get("created"), "owner": record.get("owner"),
        "parent": record.get("parent"),
        "commit": code.get("commit"), "repository": code.get("repository"),
        "dirty": code.get("dirty"),
        "data": [{"role": d.get("role"), "name": d.get("name"), "uri": d.get("uri"),
                  "id": _identity(d), "rows": d.get("rows"), "immutable": d.get("immutable")}
                 for d in record.get("data") or [] if isinstance(d, dict)],
        "eval": {"uri": snap.get("uri"), "id": _identity(snap), "rows": snap.get("rows")}
        if isinstance(snap, dict) and snap else None,
        "features": [{"name": f.get("name"), "version": f.get("version"),
                      "sha256": f.get("sha256"), "source": f.get("source")}
                     for f in record.get("features") or [] if isinstance(f, dict)],
        "packages": {normalize_package(str(k)): str(v)
                     for k, v in (pk.get("list") or {}).items()},
        "packages_sha256": pk.get("sha256"),
        "python": (env.get("python") or {}).get("version"),
        "gpu": {k: gpu.get(k) for k in ("type", "count", "driver", "cuda")} if gpu.get("present")
        else None,
        "metrics": metrics,
        "latency": {k: latency.get(k) for k in ("p50_ms", "p99_ms", "hardware")} if latency
        else None,
        "artifacts": [{"name": a.get("name"), "target": a.get("target"), "size": a.get("size"),
                       "format": a.get("format")}
                      for a in record.get("artifacts") or [] if isinstance(a, dict)],
        "predictions": (evaluation.get("predictions") or {}).get("uri"),
    }


def _parse(item: tuple[str, bytes]) -> dict:
    from mlreg.yamlio import load_yaml_text

    path, raw = item
    try:
        data = load_yaml_text(raw, path).data
        if not isinstance(data, dict):
            raise InputError(f"{path}: not a mapping")
        return record_facts(data)
    except InputError as exc:
        m = _RECORD.match(path)
        return {"model": m.group(1) if m else None, "version": m.group(2) if m else None,
                "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a malformed record must not stop a query
        return {"error": f"{path}: {type(exc).__name__}: {exc}"}


def _parse_many(items: list[tuple[str, bytes]]) -> list[dict]:
    if len(items) < _POOL_MIN or (os.cpu_count() or 1) < 2:
        return [_parse(it) for it in items]
    from concurrent.futures import ProcessPoolExecutor

    workers = min(os.cpu_count() or 2, 8)
    try:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(_parse, items, chunksize=max(16, len(items) // (workers * 4))))
    except (OSError, RuntimeError):  # pragma: no cover - no fork/spawn here: parse inline
        return [_parse(it) for it in items]


@dataclass
class LineageIndex:
    """Facts of every record of a registry (working tree or revision): ``entries`` is a list of
    fact dicts in (model, natural version) order; ``paths`` maps them to their files."""

    entries: list[dict]
    source: str
    cache_path: str | None
    hits: int = 0
    parsed: int = 0
    notes: list[str] = field(default_factory=list)

    def by_version(self) -> dict[tuple[str, str], dict]:
        return {(e.get("model"), e.get("version")): e for e in self.entries}  # type: ignore[misc]

    def stats(self) -> dict:
        return {"records": len(self.entries), "cached": self.hits, "parsed": self.parsed,
                "cache": self.cache_path}


def _cache_file(root: str) -> str | None:
    if toplevel(root) is None:
        return None
    common = git(root, "rev-parse", "--git-common-dir").stdout.decode().strip()
    common = common if os.path.isabs(common) else os.path.join(root, common)
    return os.path.join(common, "mlreg", f"lineage-index.v{INDEX_VERSION}.json")


def _read_cache(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("version") != INDEX_VERSION:
        return {}
    facts = doc.get("facts")
    packages = doc.get("packages") or {}
    if not isinstance(facts, dict):
        return {}
    out = {}
    for blob, f in facts.items():
        if isinstance(f, dict):
            key = f.get("packages")
            if isinstance(key, str):
                f = {**f, "packages": packages.get(key, {})}
            out[blob] = f
    return out


def _write_cache(path: str, facts: dict[str, dict]) -> None:
    packages: dict[str, dict] = {}
    stored = {}
    for blob, f in facts.items():
        pk = f.get("packages")
        if isinstance(pk, dict) and pk:
            key = json.dumps(pk, sort_keys=True)
            ident = packages.setdefault(key, {"id": f"p{len(packages)}", "list": pk})["id"]
            f = {**f, "packages": ident}
        stored[blob] = f
    doc = {"version": INDEX_VERSION, "packages": {v["id"]: v["list"] for v in packages.values()},
           "facts": stored}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lineage-index-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _z(out: bytes) -> list[str]:
    return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]


def _record_path(p: str) -> bool:
    m = _RECORD.match(p)
    return bool(m and m.group(2) != "model" and _VERSION.match(m.group(2)))


def _worktree_blobs(root: str) -> dict[str, str]:
    """``{relative record path: blob id}`` of the working tree (module docstring)."""
    staged: dict[str, str] = {}
    for item in _z(git(root, "ls-files", "-s", "-z", "--", "models").stdout):
        meta, _, path = item.partition("\t")
        if _record_path(path):
            staged[path] = meta.split()[1]
    dirty = {p for p in _z(git(root, "diff-files", "--name-only", "-z", "--relative", "--",
                                  "models").stdout) if _record_path(p)}
    untracked = {p for p in _z(git(root, "ls-files", "-o", "--exclude-standard", "-z", "--",
                                   "models").stdout) if _record_path(p)}
    out = {p: b for p, b in staged.items() if p not in dirty}
    todo = sorted(p for p in (dirty | untracked) if os.path.isfile(os.path.join(root, p)))
    if todo:
        hashed = git(root, "hash-object", "--no-filters", "--stdin-paths",
                     input="\n".join(todo).encode() + b"\n").stdout.decode().split()
        out.update(zip(todo, hashed, strict=True))
    return out


def _rev_blobs(root: str, commit: str) -> dict[str, str]:
    out = {}
    for item in _z(git(root, "ls-tree", "-r", "-z", commit, "--", "models").stdout):
        meta, _, path = item.partition("\t")
        mode, kind, blob = meta.split()
        if kind == "blob" and _record_path(path):
            out[path] = blob
    return out


def load_index(root: str = ".", rev: str | None = None, *, use_cache: bool = True
               ) -> LineageIndex:
    """The facts of every record at ``rev`` (None: the working tree), from the cache where it
    has them (module docstring)."""
    root = os.path.abspath(root)
    cache = _cache_file(root) if use_cache else None
    in_git = cache is not None or toplevel(root) is not None
    commit = resolve_commit(root, rev) if rev else None
    if commit is not None:
        blobs = _rev_blobs(root, commit)
    elif in_git:
        blobs = _worktree_blobs(root)
    else:
        blobs = {}
        for dirpath, _dirs, files in os.walk(os.path.join(root, "models")):
            for f in files:
                rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
                if _record_path(rel):
                    blobs[rel] = f"path:{rel}"
    known = _read_cache(cache)
    missing = sorted({b for b in blobs.values() if b not in known})
    index = LineageIndex(entries=[], source=rev or root, cache_path=cache)
    if missing:
        path_of = {}
        for p, b in blobs.items():
            path_of.setdefault(b, p)
        items = []
        if commit is not None:
            with BlobReader(root) as reader:
                items = [(path_of[b], reader.read(b)) for b in missing]
        else:
            for b in missing:
                with open(os.path.join(root, *path_of[b].split("/")), "rb") as fh:
                    items.append((path_of[b], fh.read()))
        for b, facts in zip(missing, _parse_many(items), strict=True):
            known[b] = facts
        index.parsed = len(missing)
        if cache is not None:
            _write_cache(cache, known)
    index.hits = len(blobs) - len(set(missing) & set(blobs.values()))
    entries = []
    for path, blob in blobs.items():
        f = dict(known[blob])
        m = _RECORD.match(path)
        assert m is not None
        # The path names the version; a record that says otherwise is flagged, not trusted.
        if f.get("model") != m.group(1) or f.get("version") != m.group(2):
            f.setdefault("error", f"{path}: says {f.get('model')}@{f.get('version')}")
            f["model"], f["version"] = m.group(1), m.group(2)
        f["path"] = path
        f["blob"] = blob
        entries.append(f)
    entries.sort(key=lambda e: (e["model"], natural_key(e["version"])))
    index.entries = entries
    return index


# ------------------------------------------------------------------------------ reverse queries
@dataclass(frozen=True)
class Query:
    """One reverse query; every given criterion must match (they are ANDed)."""

    data: str | None = None
    feature: str | None = None
    feature_version: str | None = None
    commit: str | None = None
    package: str | None = None
    package_version: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def empty(self) -> bool:
        return not any(self.__dict__.values())


def parse_query(*, data: str | None = None, feature: str | None = None,
                commit: str | None = None, package: str | None = None) -> Query:
    """Build a :class:`Query` from the CLI's forms: ``--feature NAME[@VERSION]``,
    ``--commit SHA_PREFIX`` (4+ hex digits), ``--package NAME[==VERSION]``."""
    fname = fver = None
    if feature is not None:
        fname, _, fver = feature.partition("@")
        if not fname:
            raise InputError(f"--feature {feature!r}: write NAME or NAME@VERSION")
    if commit is not None:
        commit = commit.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{4,64}", commit):
            raise InputError(f"--commit {commit!r}: give at least 4 hex digits of the commit")
    pname = pver = None
    if package is not None:
        pname, _, pver = package.partition("==")
        if not pname.strip():
            raise InputError(f"--package {package!r}: write NAME or NAME==VERSION")
        pname = normalize_package(pname.strip())
    if data is not None and not data.strip():
        raise InputError("--data needs a URI or URI prefix")
    q = Query(data=data, feature=fname, feature_version=fver or None, commit=commit,
              package=pname, package_version=(pver or None))
    if q.empty():
        raise InputError("name what to look for: --data, --feature, --commit or --package")
    return q


def match_facts(facts: Mapping[str, Any], q: Query) -> list[str] | None:
    """What in ``facts`` matches every criterion of ``q`` (one line each), or None. Pure."""
    why: list[str] = []
    if q.data is not None:
        hits = []
        snaps = [(d.get("role") or "data", d.get("uri"), d.get("id"))
                 for d in facts.get("data") or []]
        ev = facts.get("eval")
        if ev:
            snaps.append(("evaluation", ev.get("uri"), ev.get("id")))
        for role, uri, ident in snaps:
            if isinstance(uri, str) and (uri == q.data or uri.startswith(q.data)):
                hits.append(f"data {role}: {uri}")
            elif isinstance(ident, str) and ident.split(":", 1)[-1] == q.data:
                hits.append(f"data {role}: {uri} ({ident})")
        if not hits:
            return None
        why.extend(dict.fromkeys(hits))
    if q.feature is not None:
        hits = []
        for f in facts.get("features") or []:
            if f.get("name") != q.feature:
                continue
            if q.feature_version is None or q.feature_version == f.get("version") or (
                    isinstance(f.get("sha256"), str) and len(q.feature_version) >= 6
                    and f["sha256"].startswith(q.feature_version)):
                hits.append(f"feature {f.get('name')} version {f.get('version') or '-'}"
                            + (f" sha256 {f['sha256'][:12]}" if f.get("sha256") else ""))
        if not hits:
            return None
        why.extend(hits)
    if q.commit is not None:
        c = facts.get("commit")
        if not isinstance(c, str) or not c.lower().startswith(q.commit):
            return None
        why.append(f"code commit {c} ({facts.get('repository') or '-'})")
    if q.package is not None:
        have = (facts.get("packages") or {}).get(q.package)
        if have is None or (q.package_version is not None and have != q.package_version):
            return None
        why.append(f"package {q.package}=={have}")
    return why


def _iter_matches(entries: Iterable[dict], q: Query) -> Iterable[tuple[dict, list[str]]]:
    for e in entries:
        why = match_facts(e, q)
        if why is not None:
            yield e, why


def reverse_lineage(root: str, q: Query, rev: str | None = None, *, use_cache: bool = True
                    ) -> dict:
    """Which versions match ``q``, and which services serve any of them (stable or canary) at
    ``rev`` (None: the working tree). The answer is data (``mlreg/lineage-query/v1``)."""
    from mlreg.registry import Registry

    index = load_index(root, rev, use_cache=use_cache)
    versions = []
    matched: set[tuple[str, str]] = set()
    for e, why in _iter_matches(index.entries, q):
        matched.add((e["model"], e["version"]))
        versions.append({"model": e["model"], "version": e["version"],
                         "created": e.get("created"), "commit": e.get("commit"),
                         "path": e.get("path"), "matched": why, "error": e.get("error")})
    with Registry.open(root, rev) as reg:
        deps = reg.deployments()
    serving = []
    for name in sorted(deps):
        d = deps[name]
        if (d.model, d.stable) in matched:
            share = 100.0 - (d.canary_percent or 0.0) if d.canary else 100.0
            serving.append({"service": name, "model": d.model, "version": d.stable,
                            "role": "stable", "percent": share, "surface": d.surface})
        if d.canary and (d.model, d.canary) in matched:
            serving.append({"service": name, "model": d.model, "version": d.canary,
                            "role": "canary", "percent": d.canary_percent, "surface": d.surface})
    for v in versions:
        v["serving"] = [f"{s['service']} ({s['role']})" for s in serving
                        if (s["model"], s["version"]) == (v["model"], v["version"])]
    return {"schema": "mlreg/lineage-query/v1", "query": q.to_dict(), "source": rev or "worktree",
            "versions": versions, "serving": serving, "index": index.stats()}
