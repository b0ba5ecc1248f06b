"""Data snapshot identity: what proves that the bytes a model was trained on can be found again.

:func:`identify_dataset` turns a URI into the ``data`` entry of a record. The rule for
``immutable`` (which the lineage gates can require) is deliberately strict:

=================================  ======================================  ==============
the URI is                         recorded                                immutable
=================================  ======================================  ==============
a local file                       ``sha256`` of the bytes, ``size``       true
a local folder                     ``sha256`` of the manifest (storage's   true
                                   ``digest_tree``), ``size``, ``files``
an object with a version id        ``version_id`` (+ ``etag``, ``size``)   true
(versioned S3 bucket, GCS          (``?versionId=`` in the URI counts)
generation)
an object with only an ETag        ``etag``, ``size``                      false, unless the caller
                                                                           asserts
                                                                           ``etag_immutable=True``
                                                                           (write-once prefix,
                                                                           object lock): an ETag
                                                                           names today's bytes but
                                                                           the key can be
                                                                           overwritten tomorrow
an object-store prefix (folder)    ``snapshot_id`` = sha256 of the         true when every object
                                   listing (key, size, ETag, version id),  has a version id (or the
                                   ``size``, ``files``                     caller asserts ETags)
a partition URI                    ``partitions`` (``dt=2024-01-10/`` or   true (closed partitions
(``.../dt=2024-01-10/``)           ``dt=2024-01-10..2024-01-24``)          are write-once by lake
                                                                           convention; pass
                                                                           ``partitions_immutable=
                                                                           False`` where backfills
                                                                           rewrite them)
a caller-given ``snapshot_id``     it (a feature-store snapshot, a Delta   true
                                   or Iceberg version, a lakeFS commit)
anything else                      ``reason`` says what is missing         false
=================================  ======================================  ==============

Row counts are filled in for local Parquet (footers), CSV/TSV and JSON-lines files when the
caller gives none. Probing never raises for an unreachable store: that becomes the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mlreg.errors import InputError
from mlreg.names import check_uri

__all__ = ["ROLES", "identify_dataset", "parse_partitions", "is_local_uri"]

ROLES = ("train", "validation", "eval", "test", "other")
_ROLE_ALIASES = {"training": "train", "val": "validation", "valid": "validation",
                 "evaluation": "eval"}
_PARTITION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$")
_MAX_LISTING = 100_000
_COUNT_LINES_LIMIT = 512 * 1024 * 1024


def normalize_role(role: str) -> str:
    r = _ROLE_ALIASES.get(role, role)
    if r not in ROLES:
        raise InputError(f"dataset role {role!r} is not one of {', '.join(ROLES)}")
    return r


def is_local_uri(uri: str) -> bool:
    scheme = urlsplit(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def parse_partitions(uri: str) -> dict[str, str]:
    """``key=value`` path segments of a URI, in order: ``{"dt": "2024-01-10..2024-01-24"}``."""
    out: dict[str, str] = {}
    for segment in urlsplit(uri).path.split("/"):
        m = _PARTITION.match(segment)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _local_path(uri: str, base_dir: str | None) -> str:
    path = urlsplit(uri).path if uri.startswith("file://") else uri
    path = os.path.expanduser(path)
    if not os.path.isabs(path):
        path = os.path.join(base_dir or os.getcwd(), path)
    return os.path.normpath(path)


def _count_rows(path: str) -> int | None:
    lower = path.lower()
    try:
        if lower.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return int(pq.read_metadata(path).num_rows)
        if lower.endswith((".csv", ".tsv", ".jsonl", ".ndjson")):
            if os.path.getsize(path) > _COUNT_LINES_LIMIT:
                return None
            lines = 0
            last = b"\n"
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    lines += chunk.count(b"\n")
                    last = chunk[-1:]
            if last != b"\n":
                lines += 1
            header = 1 if lower.endswith((".csv", ".tsv")) and lines else 0
            return lines - header
    except Exception:  # noqa: BLE001 - a row count is a nicety, never a failure
        return None
    return None


def _folder_rows(path: str) -> int | None:
    files = []
    for dirpath, _dirs, names in os.walk(path):
        files.extend(os.path.join(dirpath, n) for n in names if not n.startswith((".", "_")))
        if len(files) > 10_000:
            return None
    if not files or not all(f.lower().endswith((".parquet", ".pq")) for f in files):
        return None
    counts = [_count_rows(f) for f in files]
    return sum(c for c in counts if c is not None) if None not in counts else None


def _local_identity(uri: str, base_dir: str | None, count_rows: bool) -> dict:
    from mlreg.storage import digest_tree, sha256_file

    path = _local_path(uri, base_dir)
    out: dict[str, Any] = {"uri": uri if uri.startswith("file://") else path}
    if os.path.isfile(path):
        digest = sha256_file(path)
        out.update(immutable=True, sha256=digest.sha256, size=digest.size)
        if count_rows:
            rows = _count_rows(path)
            if rows is not None:
                out["rows"] = rows
    elif os.path.isdir(path):
        tree = digest_tree(path)
        out.update(immutable=True, sha256=tree.digest, size=tree.total_size,
                   files=tree.file_count)
        if count_rows:
            rows = _folder_rows(path)
            if rows is not None:
                out["rows"] = rows
    else:
        out.update(immutable=False, reason=f"{path}: no such file or folder on the machine "
                   "that trained; its content could not be digested")
    return out


def _strip_etag(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return str(value).strip('"')


def _object_facts(info: dict) -> dict:
    facts: dict[str, Any] = {}
    if info.get("size") is not None:
        facts["size"] = int(info["size"])
    etag = _strip_etag(info.get("ETag") or info.get("etag") or info.get("md5Hash"))
    if etag:
        facts["etag"] = etag
    version = info.get("VersionId") or info.get("version_id") or info.get("generation")
    if version not in (None, "", "null"):
        facts["version_id"] = str(version)
    return facts


def _remote_identity(uri: str, fs: Any, options: dict, etag_immutable: bool) -> dict:
    """Stat the object (or list the prefix) behind a remote URI; never raises for the store."""
    out: dict[str, Any] = {}
    query = parse_qs(urlsplit(uri).query)
    pinned = (query.get("versionId") or query.get("generation") or [None])[0]
    try:
        if fs is None:
            import fsspec

            fs, path = fsspec.core.url_to_fs(uri.split("?", 1)[0], **options)
        else:
            path = fs._strip_protocol(uri.split("?", 1)[0])
        info = fs.info(path, **({"version_id": pinned} if pinned else {}))
        if info.get("type") == "directory":
            out.update(_listing_identity(fs, path, etag_immutable))
        else:
            out.update(_object_facts(info))
    except ImportError as exc:
        out["reason"] = f"cannot read {urlsplit(uri).scheme}:// URIs here ({exc})"
    except Exception as exc:  # noqa: BLE001 - the store's failure becomes the reason
        from mlreg.storage.failures import describe_error

        _kind, cause, _transient = describe_error(exc, uri)
        out["reason"] = f"could not read the snapshot's identity: {cause}"
    if pinned:
        out["version_id"] = pinned
    versioned = out.pop("_versioned", False)
    if "reason" in out:
        return out
    if out.get("version_id") or (out.get("snapshot_id") and versioned):
        out["immutable"] = True
    elif (out.get("etag") or out.get("snapshot_id")) and etag_immutable:
        out["immutable"] = True
    else:
        what = "some objects under the prefix have" if out.get("snapshot_id") else "the object has"
        out["reason"] = (f"{what} no version id: ETags name the current bytes, but the URI "
                         "can be overwritten (enable bucket versioning, or pass "
                         "etag_immutable=True for a write-once location)")
    return out


def _listing_identity(fs: Any, path: str, etag_immutable: bool) -> dict:
    listing = fs.find(path, detail=True, maxdepth=None)
    if len(listing) > _MAX_LISTING:
        return {"reason": f"the prefix holds more than {_MAX_LISTING:,} objects; "
                "record a snapshot id instead"}
    root = path.rstrip("/") + "/"
    entries = []
    versioned = bool(listing)
    for name in sorted(listing):
        facts = _object_facts(listing[name])
        versioned = versioned and "version_id" in facts
        rel = name[len(root):] if name.startswith(root) else name
        entries.append([rel, facts.get("size"), facts.get("etag"), facts.get("version_id")])
    text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
    return {"snapshot_id": "listing-sha256:" + hashlib.sha256(text.encode()).hexdigest(),
            "size": sum(e[1] or 0 for e in entries), "files": len(entries),
            "_versioned": versioned}


def identify_dataset(
    uri: str, *, base_dir: str | None = None, rows: int | None = None,
    sha256: str | None = None, version_id: str | None = None, etag: str | None = None,
    snapshot_id: str | None = None, immutable: bool | None = None, reason: str | None = None,
    etag_immutable: bool = False, partitions_immutable: bool = True, probe: bool = True,
    storage_options: dict | None = None, fs: Any = None,
) -> dict:
    """The identity of the data at ``uri`` (see the module docstring for the rules).

    Facts given by the caller (``version_id``, ``etag``, ``snapshot_id``, ``sha256``, ``rows``)
    are recorded as given and count as proof; ``probe=False`` skips reading the data.
    ``immutable=False`` records the snapshot as mutable whatever the proof (with ``reason``).
    ``fs`` is an fsspec file system to use instead of the one the URI selects (tests).
    """
    if not isinstance(uri, str) or not uri:
        raise InputError(f"dataset URI must be a non-empty string, got {uri!r}")
    check_uri(uri, "dataset")
    found: dict[str, Any]
    if is_local_uri(uri):
        if probe and sha256 is None:
            found = _local_identity(uri, base_dir, rows is None)
        else:
            found = {"uri": uri if uri.startswith("file://") else _local_path(uri, base_dir)}
    elif probe and not (version_id or snapshot_id or sha256):
        found = {"uri": uri, **_remote_identity(uri, fs, storage_options or {}, etag_immutable)}
    else:
        found = {"uri": uri}
    if not is_local_uri(uri) and version_id is None:  # a version pinned in the URI itself
        query = parse_qs(urlsplit(uri).query)
        version_id = (query.get("versionId") or query.get("generation") or [None])[0]

    given = {"sha256": sha256, "version_id": version_id, "etag": _strip_etag(etag),
             "snapshot_id": snapshot_id, "rows": rows}
    for key, value in given.items():
        if value is not None:
            found[key] = value
    partitions = parse_partitions(uri)
    if partitions:
        found["partitions"] = partitions

    probed = found.pop("immutable", None)
    proof = bool(
        probed is True
        or found.get("sha256") or found.get("version_id") or snapshot_id
        or (found.get("etag") and etag_immutable)
        or (partitions and partitions_immutable)
    )
    if immutable is False:
        found["immutable"] = False
        found["reason"] = reason or found.get("reason") or "declared mutable by the caller"
    elif proof:
        found["immutable"] = True
        found.pop("reason", None)
    else:
        found["immutable"] = False
        found.setdefault("reason", reason or "no content digest, object version, snapshot id "
                         "or partition values prove which bytes this URI held")
    order = ("uri", "immutable", "sha256", "version_id", "etag", "snapshot_id", "size", "files",
             "rows", "partitions", "reason")
    return {k: found[k] for k in order if k in found}
