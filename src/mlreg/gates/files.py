"""Files a gate reads from the artifact store: hash them, and read predictions verified.

A URI without a scheme (``examples/store/fraud/127/model.txt``) is a path relative to the
registry root; it must stay inside the registry (no ``..`` escape). A URI with a scheme is
looked up in the registry's artifact store (``mlreg.yaml: artifact_store``) when it lies under
the store's root, else in a store opened at the URI's bucket (``s3://bucket``).

Outcomes are facts, not exceptions: a missing object or a digest mismatch becomes a
:class:`~mlreg.gates.inputs.FileCheck` with a ``problem``. A store that cannot be reached
(:class:`~mlreg.errors.DependencyError`) propagates: the CLI exits 3, never "pass".
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from mlreg.errors import InputError, IntegrityError, NotFound
from mlreg.gates.inputs import FileCheck

__all__ = ["FileAccess"]


class FileAccess:
    """Resolve and read the files a registry's records point at."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.root = _registry_dir(registry)
        try:
            self.store_uri = registry.settings().get("artifact_store")
        except Exception:  # noqa: BLE001 - a broken settings file is reported by validate
            self.store_uri = None
        self._stores: dict[str, Any] = {}

    # -- locating ------------------------------------------------------------------------------
    def local_path(self, uri: str) -> str | None:
        """The file for a registry-relative URI (None for a URI with a scheme)."""
        if "://" in uri:
            return None
        if os.path.isabs(uri):
            raise InputError(f"{uri}: an absolute path in a record; record a path relative to "
                             "the registry root or a store URI")
        full = os.path.normpath(os.path.join(self.root, *uri.split("/")))
        if os.path.commonpath([full, self.root]) != self.root:
            raise InputError(f"{uri}: points outside the registry")
        return full

    def _store_and_key(self, uri: str) -> tuple[Any, str]:
        from mlreg.storage import open_store

        if self.store_uri:
            store = self._open(self.store_uri, lambda: open_store(self.store_uri,
                                                                  base_dir=self.root))
            try:
                return store, store.key_for(uri)
            except InputError:
                pass
        scheme, _, rest = uri.partition("://")
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise InputError(f"{uri}: cannot tell the store from the URI")
        root = f"{scheme}://{bucket}"
        store = self._open(root, lambda: open_store(root))
        return store, store.key_for(key)

    def _open(self, root: str, factory: Any) -> Any:
        if root not in self._stores:
            self._stores[root] = factory()
        return self._stores[root]

    # -- hashing -------------------------------------------------------------------------------
    def check(self, role: str, name: str, entry: dict) -> FileCheck:
        """Hash the file a record entry (uri, sha256, size) points at and compare."""
        uri = entry.get("uri", "")
        expected, size = entry.get("sha256", ""), entry.get("size")
        base = FileCheck(role=role, name=name, uri=uri, expected_sha256=expected,
                         expected_size=size)
        try:
            path = self.local_path(uri)
            if path is not None:
                if not os.path.isfile(path):
                    return _replace(base, problem=f"missing: {uri} does not exist")
                from mlreg.storage import sha256_file

                digest = sha256_file(path)
            else:
                store, key = self._store_and_key(uri)
                digest = store.hash_object(key)
        except NotFound:
            return _replace(base, problem=f"missing: {uri} is not in the store")
        except InputError as exc:
            return _replace(base, problem=f"cannot check {uri}: {exc}")
        return _compare(base, digest.sha256, digest.size)

    # -- reading -------------------------------------------------------------------------------
    def read_verified(self, role: str, name: str, entry: dict) -> tuple[bytes | None, FileCheck]:
        """The bytes of a file, and the check of those very bytes (None when unreadable).

        The bytes are hashed as read, so what is parsed is what was verified.
        """
        uri = entry.get("uri", "")
        base = FileCheck(role=role, name=name, uri=uri, expected_sha256=entry.get("sha256", ""),
                         expected_size=entry.get("size"))
        try:
            path = self.local_path(uri)
            if path is not None:
                try:
                    with open(path, "rb") as fh:
                        data = fh.read()
                except FileNotFoundError:
                    return None, _replace(base, problem=f"missing: {uri} does not exist")
            else:
                data = self._download(uri, base)
        except NotFound:
            return None, _replace(base, problem=f"missing: {uri} is not in the store")
        except IntegrityError as exc:
            return None, _replace(base, problem=f"mismatch: {exc.problem}")
        except InputError as exc:
            return None, _replace(base, problem=f"cannot read {uri}: {exc}")
        check = _compare(base, hashlib.sha256(data).hexdigest(), len(data))
        return (data if check.verified else None), check

    def _download(self, uri: str, base: FileCheck) -> bytes:
        import tempfile

        store, key = self._store_and_key(uri)
        if base.expected_size is None:
            raise InputError(f"{uri}: the record gives no size; cannot verify the download")
        with tempfile.TemporaryDirectory(prefix="mlreg-gate-") as tmp:
            dest = os.path.join(tmp, "file")
            store.get_file(key, dest, sha256=base.expected_sha256, size=base.expected_size)
            with open(dest, "rb") as fh:
                return fh.read()


def _registry_dir(registry: Any) -> str:
    if registry.root:
        return os.path.abspath(registry.root)
    src = registry.source  # a git revision: files live beside the repository's working tree
    return os.path.abspath(os.path.join(src.repo, getattr(src, "prefix", "") or ""))


def _replace(base: FileCheck, **kw: Any) -> FileCheck:
    from dataclasses import replace

    return replace(base, **kw)


def _compare(base: FileCheck, sha: str, size: int) -> FileCheck:
    problems = []
    if sha != base.expected_sha256:
        problems.append(f"sha256 mismatch: the record says {base.expected_sha256[:12]}…, "
                        f"the store holds {sha[:12]}…")
    if base.expected_size is not None and size != base.expected_size:
        problems.append(f"size mismatch: the record says {base.expected_size:,} bytes, "
                        f"the store holds {size:,}")
    return _replace(base, actual_sha256=sha, actual_size=size,
                    problem="; ".join(problems) or None)
