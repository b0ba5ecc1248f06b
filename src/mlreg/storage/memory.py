"""The in-memory store, for tests and examples (``memory://<name>``).

It follows the same contract as the real backends (atomic publish, no clobbering, recorded
sha256 like S3 metadata), so code tested against it behaves the same against S3. Stores
opened by name are process-wide, so ``open_store("memory://demo")`` in two places sees the
same objects, the way two processes see the same bucket.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from mlreg.storage.base import ArtifactStore, ObjectStat, StoredObject
from mlreg.storage.hashing import copy_hashing
from mlreg.storage.keys import validate_key
from mlreg.storage.progress import ProgressArg, make_progress

__all__ = ["MemoryStore"]

_named: dict[str, MemoryStore] = {}
_named_lock = threading.Lock()
_anonymous = itertools.count(1)


class MemoryStore(ArtifactStore):
    """Objects live in a dict: key -> (bytes, recorded sha256 or None)."""

    scheme = "memory"

    def __init__(self, name: str | None = None, *, retries: int = 2) -> None:
        self.name = name or f"anonymous-{next(_anonymous)}"
        super().__init__(f"memory://{self.name}", retries=retries)
        self._objects: dict[str, tuple[bytes, str | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def named(cls, name: str, *, retries: int = 2) -> MemoryStore:
        """The process-wide store called ``name`` (created on first use)."""
        with _named_lock:
            store = _named.get(name)
            if store is None:
                store = _named[name] = cls(name, retries=retries)
            return store

    @classmethod
    def forget(cls, name: str) -> None:
        """Drop a named store (tests use this to start from empty)."""
        with _named_lock:
            _named.pop(name, None)

    def keys(self) -> list[str]:
        """Every key, sorted."""
        with self._lock:
            return sorted(self._objects)

    def overwrite_unchecked(self, key: str, data: bytes) -> None:
        """Replace an object's bytes behind the store's back (tests: simulate tampering).

        Like overwriting an S3 object with a plain PUT, this drops the recorded sha256.
        """
        key = validate_key(key)
        with self._lock:
            self._objects[key] = (bytes(data), None)

    def _stat(self, key: str) -> ObjectStat | None:
        with self._lock:
            entry = self._objects.get(key)
        if entry is None:
            return None
        data, sha256 = entry
        return ObjectStat(size=len(data), sha256=sha256)

    @contextmanager
    def _open_read(self, key: str) -> Iterator[BinaryIO]:
        with self._lock:
            entry = self._objects.get(key)
        if entry is None:
            raise FileNotFoundError(key)
        yield io.BytesIO(entry[0])

    def _delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def _put_new_stream(
        self, key: str, src: BinaryIO, size: int | None, progress: ProgressArg,
    ) -> StoredObject:
        buf = io.BytesIO()
        reporter = make_progress(progress, f"uploading {key.rsplit('/', 1)[-1]}", size)
        try:
            digest = copy_hashing(src, buf.write, reporter)
        finally:
            reporter.close()
        with self._lock:
            entry = self._objects.get(key)
            if entry is None:
                self._objects[key] = (buf.getvalue(), digest.sha256)
        if entry is None:
            return StoredObject(self.uri_for(key), digest.sha256, digest.size)
        return self._reconcile(key, ObjectStat(size=len(entry[0]), sha256=entry[1]), digest)
