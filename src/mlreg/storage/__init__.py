"""Artifact storage: one small interface, backends selected by URI.

    from mlreg.storage import open_store
    store = open_store(".mlreg-store", base_dir=registry_root)       # local folder (default)
    store = open_store("s3://bucket/prefix", endpoint_url=...)       # S3 / S3-compatible
    store = open_store("memory://demo")                              # tests and examples
    obj = store.put_file("model.pkl", "models/churn/1.2.0/model.pkl")
    store.get_file(obj.uri, "out/model.pkl", sha256=obj.sha256, size=obj.size)

Importing this package is cheap: fsspec, s3fs and botocore are imported only when a remote
store is opened.
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING, Any

from mlreg.errors import InputError
from mlreg.storage.base import ArtifactStore, ObjectStat, StoredObject
from mlreg.storage.hashing import (
    CHUNK_SIZE,
    FileDigest,
    ManifestEntry,
    TreeDigest,
    digest_tree,
    is_sha256,
    manifest_bytes,
    sha256_file,
    tree_manifest,
)
from mlreg.storage.keys import validate_key
from mlreg.storage.local import LocalStore
from mlreg.storage.memory import MemoryStore
from mlreg.storage.progress import PROGRESS_THRESHOLD, ProgressArg

if TYPE_CHECKING:
    from mlreg.storage.fsspec_store import FsspecStore
    from mlreg.storage.s3 import S3Store

__all__ = [
    "open_store",
    "ArtifactStore",
    "StoredObject",
    "ObjectStat",
    "LocalStore",
    "MemoryStore",
    "FsspecStore",
    "S3Store",
    "FileDigest",
    "TreeDigest",
    "ManifestEntry",
    "sha256_file",
    "digest_tree",
    "tree_manifest",
    "manifest_bytes",
    "is_sha256",
    "validate_key",
    "CHUNK_SIZE",
    "PROGRESS_THRESHOLD",
    "ProgressArg",
]

_LOCAL_OPTIONS = {"retries", "fsync"}
_MEMORY_OPTIONS = {"retries"}


def open_store(
    root_uri: str | os.PathLike[str], *, base_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> ArtifactStore:
    """Open the store at ``root_uri``.

    * a plain path or ``file://`` URI: a local folder; relative paths (the registry's
      default ``.mlreg-store``) resolve against ``base_dir`` (the registry root), else the
      current directory. With ``base_dir`` and a relative path, object URIs are relative
      to ``base_dir`` too (``.mlreg-store/models/m/1/model.pkl``); otherwise they are
      absolute ``file://`` URIs. Options: ``retries``, ``fsync``.
    * ``memory://<name>``: the process-wide in-memory store of that name. Options: ``retries``.
    * ``s3://bucket/prefix``: S3 or an S3-compatible server. Options: ``endpoint_url``,
      ``region``, ``connect_timeout``, ``read_timeout``, ``retries``, ``conditional_writes``,
      ``part_size``; anything else goes to ``s3fs.S3FileSystem``.
    * any other ``<protocol>://`` fsspec knows (gs://, az://, ...): options go to fsspec.

    A missing optional dependency raises InputError with the ``pip install`` line.
    """
    text = os.fspath(root_uri)
    if not isinstance(text, str) or not text.strip():
        raise InputError("artifact store location is empty")
    scheme, sep, rest = text.partition("://")
    if not sep:
        uri_root = None
        expanded = os.path.expanduser(text)
        if base_dir is not None and not os.path.isabs(expanded):
            # Registry-relative store: record registry-relative URIs (portable across clones).
            uri_root = posixpath.normpath(expanded.replace(os.sep, "/"))
            if uri_root == ".":
                raise InputError(f"{text}: the artifact store cannot be the registry root itself")
        return LocalStore(
            _resolve(text, base_dir), uri_root=uri_root, **_only(options, _LOCAL_OPTIONS, text),
        )
    scheme = scheme.lower()
    if scheme == "file":
        if rest.startswith("localhost/"):
            rest = rest[len("localhost"):]
        if not rest:
            raise InputError(f"{text}: a file:// store needs a path")
        return LocalStore(_resolve(rest, base_dir), **_only(options, _LOCAL_OPTIONS, text))
    if scheme == "memory":
        name = rest.strip("/") or "default"
        return MemoryStore.named(name, **_only(options, _MEMORY_OPTIONS, text))
    if scheme == "s3":
        from mlreg.storage.s3 import S3Store

        return S3Store(text, **options)
    from mlreg.storage.fsspec_store import open_fsspec_store

    return open_fsspec_store(text, **options)


def _resolve(path: str, base_dir: str | os.PathLike[str] | None) -> str:
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded) or base_dir is None:
        return os.path.abspath(expanded)
    return os.path.abspath(os.path.join(os.fspath(base_dir), expanded))


def _only(options: dict[str, Any], allowed: set[str], uri: str) -> dict[str, Any]:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InputError(
            f"{uri}: unknown option(s) for this store: {', '.join(unknown)} "
            f"(accepted: {', '.join(sorted(allowed))})"
        )
    return options


def __getattr__(name: str) -> Any:
    # The remote backends are importable from here without making the package import heavy.
    if name == "S3Store":
        from mlreg.storage.s3 import S3Store

        return S3Store
    if name == "FsspecStore":
        from mlreg.storage.fsspec_store import FsspecStore

        return FsspecStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
