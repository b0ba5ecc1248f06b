"""Re-hash what a record points at: are the bytes behind each URI the bytes that were trained?

:func:`verify_record` streams every artifact and the evaluation predictions from the store and
compares sha256 and size with the record; local data snapshots (files and folders recorded with
a content digest) are re-digested when they are present on this machine. The result is data
(:class:`VerifyReport`); a store that cannot be reached raises StoreError (exit code 3), an
object that is gone or different is a failed check (exit code 1 in the CLI).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mlreg.errors import InputError, NotFound
from mlreg.lineage.datasets import is_local_uri

__all__ = ["Check", "VerifyReport", "verify_record"]


@dataclass(frozen=True)
class Check:
    """One verified object: ``status`` is ok, mismatch, missing or skipped."""

    kind: str  # artifact, predictions, data
    name: str
    uri: str
    status: str
    detail: str = ""
    expected_sha256: str | None = None
    actual_sha256: str | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "uri": self.uri, "status": self.status,
                "detail": self.detail, "expected_sha256": self.expected_sha256,
                "actual_sha256": self.actual_sha256}


@dataclass
class VerifyReport:
    model: str
    version: str
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status in ("mismatch", "missing")]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks]}


def _digest_object(uri: str, store: Any, root: str, progress: Any) -> tuple[str, int]:
    """(sha256, size) of the stored bytes at ``uri``; NotFound when the object is gone."""
    from mlreg.storage import open_store, sha256_file

    try:
        key = store.key_for(uri)
    except InputError:
        key = None
    if key is not None:
        got = store.hash_object(key, progress=progress)
        return got.sha256, got.size
    if is_local_uri(uri):  # an object outside today's store: a file relative to the registry
        path = uri[len("file://"):] if uri.startswith("file://") else uri
        path = path if os.path.isabs(path) else os.path.join(root, path)
        if not os.path.isfile(path):
            raise NotFound(f"{uri}: no such object")
        got = sha256_file(path, progress=progress)
        return got.sha256, got.size
    scheme, _, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    other = open_store(f"{scheme}://{bucket}")
    got = other.hash_object(key, progress=progress)
    return got.sha256, got.size


def _check_object(kind: str, name: str, entry: dict, store: Any, root: str,
                  progress: Any) -> Check:
    uri, want, size = entry["uri"], entry["sha256"], entry["size"]
    try:
        sha, got_size = _digest_object(uri, store, root, progress)
    except NotFound:
        return Check(kind, name, uri, "missing", "the object does not exist in the store", want)
    if sha != want or got_size != size:
        what = []
        if sha != want:
            what.append(f"sha256 {sha} != recorded {want}")
        if got_size != size:
            what.append(f"size {got_size} != recorded {size}")
        return Check(kind, name, uri, "mismatch", "; ".join(what), want, sha)
    return Check(kind, name, uri, "ok", f"{size} bytes", want, sha)


def _check_data(entry: dict) -> Check:
    from mlreg.storage import digest_tree, sha256_file

    uri = entry["uri"]
    name = entry.get("name") or entry.get("role", "data")
    want = entry.get("sha256")
    if not is_local_uri(uri) or not want:
        proof = next((k for k in ("version_id", "etag", "snapshot_id", "partitions")
                      if entry.get(k)), None)
        why = f"identified by {proof}, not re-hashed" if proof else "no content digest recorded"
        return Check("data", name, uri, "skipped", why, want)
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    if os.path.isfile(path):
        got = sha256_file(path).sha256
    elif os.path.isdir(path):
        got = digest_tree(path).digest
    else:
        return Check("data", name, uri, "skipped", "not present on this machine", want)
    if got != want:
        return Check("data", name, uri, "mismatch", f"sha256 {got} != recorded {want}", want, got)
    return Check("data", name, uri, "ok", "", want, got)


def verify_record(root: str, record: dict, settings: dict, *, progress: Any = None,
                  data: bool = True) -> VerifyReport:
    """Verify the artifacts, predictions and (``data=True``) local data of ``record``."""
    from mlreg.storage import open_store

    store = open_store(settings["artifact_store"], base_dir=root,
                       **(settings.get("store_options") or {}))
    report = VerifyReport(record["model"], record["version"])
    for art in record.get("artifacts") or []:
        report.checks.append(_check_object("artifact", art["name"], art, store, root, progress))
    preds = (record.get("evaluation") or {}).get("predictions")
    if preds:
        report.checks.append(_check_object("predictions", "predictions", preds, store, root,
                                           progress))
    if data:
        for entry in record.get("data") or []:
            report.checks.append(_check_data(entry))
    return report
