"""Validation of a whole registry: every file against its schema, then cross-references.

:func:`validate_registry` returns problems as data (file, JSON path, message); the CLI groups and
renders them. It never raises for a problem in a file: it collects them all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from mlreg.errors import InputError, LoadError, SchemaError
from mlreg.names import NAME_PATTERN, VERSION_PATTERN
from mlreg.records import KINDS
from mlreg.registry import SETTINGS_FILE, Registry

__all__ = ["Problem", "validate_registry"]

_NAME_RE = re.compile(NAME_PATTERN)
_VERSION_RE = re.compile(VERSION_PATTERN)


@dataclass(frozen=True)
class Problem:
    file: str
    path: str  # JSON path inside the file, "$" for the whole file
    message: str

    def to_dict(self) -> dict:
        return {"file": self.file, "path": self.path, "message": self.message}


def _problems_of(exc: InputError, file: str) -> list[Problem]:
    if isinstance(exc, SchemaError):
        return [Problem(file, v.path, v.message) for v in exc.violations]
    if isinstance(exc, LoadError):
        where = f"line {exc.line}: " if exc.line else ""
        msg = exc.problem + (f" (fix: {exc.fix})" if exc.fix else "")
        return [Problem(file, "$" if not exc.field else f"$.{exc.field}", where + msg)]
    return [Problem(file, "$", str(exc))]


def validate_registry(reg: Registry) -> tuple[list[Problem], dict]:
    """Check everything; return (problems, counts of what was checked)."""
    problems: list[Problem] = []
    counts = {"records": 0, "models": 0, "policies": 0, "manifests": 0, "online": 0}
    files = set(reg.files())

    def load(relpath: str, kind: str):
        try:
            return reg.load(relpath, kind)
        except InputError as exc:
            problems.extend(_problems_of(exc, relpath))
            return None

    settings = load(SETTINGS_FILE, "settings")
    manifests = (settings.data.get("manifests") if settings else None) or ["production.yaml"]

    model_files: dict[str, dict] = {}
    records: dict[str, set[str]] = {}
    record_files: list[str] = []
    for f in sorted(files):
        parts = f.split("/")
        if parts[0] != "models" or not f.endswith((".yaml", ".yml")):
            continue
        if f.endswith(".yml"):
            problems.append(Problem(f, "$", "registry files end in .yaml (fix: rename it)"))
            continue
        if len(parts) == 2:
            problems.append(Problem(f, "$", "stray file: records live in models/<model>/"))
            continue
        model = parts[1]
        if not _NAME_RE.match(model):
            problems.append(Problem(f, "$", f"model folder {model!r} is not a valid name: "
                                    "lower-case letters, digits, '.', '_' or '-'"))
            continue
        if len(parts) == 4 and parts[2] == "online":
            counts["online"] += 1
            if "online" in KINDS and _has_schema("online"):
                load(f, "online")
            continue
        if len(parts) != 3:
            continue
        stem = parts[2][: -len(".yaml")]
        if stem == "model":
            counts["models"] += 1
            loaded = load(f, "model")
            if loaded is not None:
                model_files[model] = loaded.data
                if loaded.data.get("name") != model:
                    problems.append(Problem(f, "$.name", f"name {loaded.data.get('name')!r} "
                                            f"does not match its folder {model!r}"))
            continue
        if not _VERSION_RE.match(stem):
            problems.append(Problem(f, "$", f"file name {stem!r} is not a valid version "
                                    "(versions start with a digit: models/<model>/<version>.yaml)"))
            continue
        counts["records"] += 1
        records.setdefault(model, set()).add(stem)
        record_files.append(f)

    for f, found, facts in _check_records(reg, record_files):
        problems.extend(found)
        if facts is None:
            continue
        model, stem = f.split("/")[1], f.split("/")[2][: -len(".yaml")]
        if facts["model"] != model:
            problems.append(Problem(f, "$.model", f"model {facts['model']!r} does not match "
                                    f"the file's folder {model!r}"))
        if facts["version"] != stem:
            problems.append(Problem(f, "$.version", f"version {facts['version']!r} does not "
                                    f"match the file name {stem!r}"))
        parent = facts["parent"]
        if parent is not None and f"models/{model}/{parent}.yaml" not in files:
            problems.append(Problem(f, "$.parent", f"parent version {parent!r} does not exist"))

    for model in sorted(records):
        if model not in model_files and f"models/{model}/model.yaml" not in files:
            problems.append(Problem(f"models/{model}/", "$", f"model {model!r} has records but "
                                    "no model.yaml (fix: add models/<model>/model.yaml)"))

    for manifest in manifests:
        if manifest not in files:
            problems.append(Problem(manifest, "$", f"deployment manifest named in "
                                    f"{SETTINGS_FILE} does not exist"))
            continue
        counts["manifests"] += 1
        loaded = load(manifest, "deployments")
        if loaded is None:
            continue
        for service, entry in (loaded.data.get("services") or {}).items():
            model = entry["model"]
            base = f"$.services.{service}"
            if model not in model_files:
                problems.append(Problem(manifest, f"{base}.model",
                                        f"model {model!r} has no models/{model}/model.yaml"))
            for key, version in (("stable", entry["stable"]),
                                 ("canary.version", (entry.get("canary") or {}).get("version"))):
                if version is not None and version not in records.get(model, set()):
                    problems.append(Problem(manifest, f"{base}.{key}",
                                            f"{model}@{version} does not exist in the registry"))
            canary = entry.get("canary")
            if canary and canary.get("version") == entry["stable"]:
                problems.append(Problem(manifest, f"{base}.canary",
                                        "the canary version is the stable version"))

    policy_docs: dict[str, dict] = {}
    for f in reg.policy_files():
        counts["policies"] += 1
        try:
            from mlreg.gates.policy import check_policy
            from mlreg.yamlio import load_yaml_text

            loaded_policy = load_yaml_text(reg.read_bytes(f) or b"", f)
            check_policy(loaded_policy.data, f)
            policy_docs[f] = loaded_policy.data
        except InputError as exc:
            problems.extend(_problems_of(exc, f))
    default_doc = policy_docs.get("policies/default.yaml")
    for f, doc in sorted(policy_docs.items()):
        if f == "policies/default.yaml":
            continue
        try:
            from mlreg.gates.policy import merge_policies

            merge_policies(default_doc, doc, model_path=f)
        except InputError as exc:
            problems.extend(_problems_of(exc, f))
    policy_models = {f.split("/")[1][: -len(".yaml")] for f in reg.policy_files()}
    for pm in sorted(policy_models - {"default"} - set(model_files)):
        problems.append(Problem(f"policies/{pm}.yaml", "$",
                                f"policy for model {pm!r}, which has no model.yaml"))

    problems.sort(key=lambda p: (p.file, p.path))
    return problems, counts


# Below this many records one process is faster than starting workers.
PARALLEL_MIN = 500


def _check_record(shown: str, raw: bytes | None) -> tuple[list[Problem], dict | None]:
    """Check one record's bytes: (problems, the facts cross-checks need, None if invalid)."""
    from mlreg.records import load_document

    if raw is None:
        return [Problem(shown, "$", "cannot be read")], None
    try:
        data = load_document(raw, shown, "record").data
    except InputError as exc:
        return _problems_of(exc, shown), None
    return [], {"model": data.get("model"), "version": data.get("version"),
                "parent": data.get("parent")}


def _check_chunk(items: list[tuple[str, str, bytes | None]]) -> list:
    return [(f, *_check_record(shown, raw)) for f, shown, raw in items]


def _check_records(reg: Registry, record_files: list[str]) -> list:
    """Schema-check every record; on big registries, spread the parsing over the CPU cores.

    Parsing YAML is CPU-bound and records are independent, so a process pool scales with the
    cores; bytes are read in this process (a git source has one cat-file pipe) and shipped over.
    """
    items = []
    for f in record_files:
        try:
            raw = reg.read_bytes(f)
        except InputError as exc:
            items.append((f, None, exc))
            continue
        items.append((f, reg.source.display(f), raw))
    errors = [(f, _problems_of(exc, f), None) for f, _, exc in items if _ is None]
    todo = [(f, shown, raw) for f, shown, raw in items if shown is not None]
    workers = min(os.cpu_count() or 1, 8)
    if len(todo) < PARALLEL_MIN or workers < 2:
        return errors + _check_chunk(todo)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = max(50, len(todo) // (workers * 4))
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        out = errors
        for part in pool.map(_check_chunk, chunks):
            out.extend(part)
    return out


def _has_schema(kind: str) -> bool:
    from importlib import resources

    return resources.files("mlreg.schemas").joinpath(KINDS[kind][1]).is_file()
