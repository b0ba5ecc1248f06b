"""The artifact store interface, and the logic every backend shares.

A store holds immutable objects under validated keys (see :mod:`mlreg.storage.keys`). The
public methods here own the contract; backends implement a handful of small hooks:

* ``_stat(key)``          -> :class:`ObjectStat` or None when absent (raw backend errors)
* ``_open_read(key)``     -> context manager yielding a binary reader
* ``_delete(key)``        -> remove, missing is fine
* ``_put_new_stream(key, reader, size, progress)`` -> write atomically, never clobbering;
  on finding the key taken, hand over to :meth:`ArtifactStore._reconcile`
* optionally ``_put_new_file`` (S3 hashes the file first to attach its sha256 as metadata).

Contract of the public methods:

* uploads stream in chunks, hash sha256 on the way, and become visible atomically;
* an existing object is never overwritten: same bytes -> no-op returning the existing object,
  different bytes -> ``RegistryError`` naming both digests;
* downloads verify size and sha256 and leave no partial destination file;
* backend exceptions become ``NotFound``/``StoreError`` in one place
  (:func:`mlreg.storage.failures.translate_error`); idempotent operations are retried a few
  times on transient failures (:class:`mlreg.storage.failures.RetryPolicy`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

from mlreg.errors import InputError, IntegrityError, MlregError, NotFound, RegistryError
from mlreg.storage.failures import RetryPolicy, SideError, is_transient, translate_error
from mlreg.storage.hashing import (
    CHUNK_SIZE,
    FileDigest,
    copy_hashing,
    hash_local_file,
    is_sha256,
)
from mlreg.storage.keys import validate_key
from mlreg.storage.progress import ProgressArg, make_progress

__all__ = ["ArtifactStore", "StoredObject", "ObjectStat"]


@dataclass(frozen=True)
class StoredObject:
    """An object in a store, as the registry records it.

    ``version_id``/``etag`` are filled in when the backend has them (versioned S3 buckets),
    so a record can pin the exact object generation.
    """

    uri: str
    sha256: str
    size: int
    version_id: str | None = None
    etag: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ObjectStat:
    """What the store says about an object without reading it.

    ``sha256`` is the digest *recorded* with the object (S3 ``x-amz-meta-sha256``; the memory
    store), not a verified one; None when the backend records none. Use
    :meth:`ArtifactStore.hash_object` to hash the actual bytes.
    """

    size: int
    etag: str | None = None
    version_id: str | None = None
    sha256: str | None = None


@functools.cache
def file_mode() -> int:
    """Permissions for files we create: rw as the umask allows (mkstemp makes them 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class _SourceReader:
    """Wraps an upload source so its failures are told apart from the store's."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        self._raw = raw
        self._name = name

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except Exception as e:
            raise SideError("source", self._name, e) from e
        if isinstance(data, str):
            raise SideError("source", self._name, TypeError("source must be opened in binary mode"))
        return data or b""


def _local_writer(out: BinaryIO, path: str) -> Callable[[bytes], object]:
    def write(chunk: bytes) -> None:
        try:
            out.write(chunk)
        except Exception as e:
            raise SideError("destination", path, e) from e

    return write


class ArtifactStore(ABC):
    """An immutable object store addressed by keys and ``<root_uri>/<key>`` URIs."""

    scheme: ClassVar[str] = ""
    #: Read size for downloads and hashing; remote backends use larger reads (fewer requests).
    read_chunk: ClassVar[int] = CHUNK_SIZE

    def __init__(self, root_uri: str, *, retries: int = 2) -> None:
        if not isinstance(retries, int) or retries < 0:
            raise InputError(f"retries must be a non-negative integer, got {retries!r}")
        self.root_uri = root_uri.rstrip("/")
        self.retry = RetryPolicy(retries=retries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_uri!r})"

    # -- addressing -------------------------------------------------------------------------

    def uri_for(self, key: str) -> str:
        """The URI recorded for ``key`` (``<root_uri>/<key>``, not percent-encoded)."""
        return f"{self.root_uri}/{validate_key(key)}"

    def key_for(self, uri_or_key: str) -> str:
        """The key of a URI in this store (or a key, validated). InputError for other URIs.

        A string starting with one of the store's URI prefixes (``<root_uri>/``, plus aliases
        such as the absolute ``file://`` form of a local store) is a URI; anything else
        without ``://`` is taken as a key.
        """
        if not isinstance(uri_or_key, str):
            raise InputError(f"expected an object URI or key, got {type(uri_or_key).__name__}")
        for prefix in self._uri_prefixes():
            if uri_or_key.startswith(prefix):
                return validate_key(uri_or_key[len(prefix):])
        if "://" in uri_or_key:
            raise InputError(f"{uri_or_key}: not an object of the store at {self.root_uri}")
        return validate_key(uri_or_key)

    def _uri_prefixes(self) -> list[str]:
        return [self.root_uri + "/"]

    # -- public operations ------------------------------------------------------------------

    def put_file(
        self, local_path: str | os.PathLike[str], key: str, *, progress: ProgressArg = None,
    ) -> StoredObject:
        """Upload a local file under ``key``; idempotent for identical content.

        Checks the key first: when it already holds an object, the file is only hashed and
        compared (nothing is transferred), so re-running a capture is cheap.
        """
        key = validate_key(key)
        uri = self.uri_for(key)
        path = Path(local_path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except OSError as e:
            raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
        if not path.is_file():
            raise InputError(f"{path}: not a regular file")
        try:
            existing = self._stat_or_none(key, uri)
            if existing is not None:
                return self._reconcile(key, existing, hash_local_file(path, progress=_bar_only(progress)))
            return self._put_new_file(key, path, size, progress)
        except SideError as e:
            if e.side == "source":
                raise InputError(f"{path}: read failed: {e.original}") from e.original
            raise e.original from None
        except MlregError:
            raise
        except Exception as e:
            raise translate_error(e, uri, "upload") from e

    def put_stream(
        self, fileobj: BinaryIO, key: str, *, size: int | None = None,
        progress: ProgressArg = None,
    ) -> StoredObject:
        """Upload everything readable from a binary file object under ``key``.

        ``size`` (when known) only sizes the progress bar and S3 parts. A failure while
        reading ``fileobj`` propagates unchanged, and leaves no object and no temporary.
        """
        key = validate_key(key)
        uri = self.uri_for(key)
        try:
            return self._put_new_stream(key, _SourceReader(fileobj, "stream"), size, progress)
        except SideError as e:  # the stream or the progress callback failed: theirs to see
            raise e.original from None
        except MlregError:
            raise
        except Exception as e:
            raise translate_error(e, uri, "upload") from e

    def get_file(
        self, uri_or_key: str, dest_path: str | os.PathLike[str], *, sha256: str, size: int,
        progress: ProgressArg = None,
    ) -> StoredObject:
        """Download an object to ``dest_path``, verifying its size and sha256.

        The bytes go to a temporary file beside ``dest_path`` that replaces it only once
        verified; on any failure (IntegrityError included) no partial file is left behind.
        """
        key = self.key_for(uri_or_key)
        uri = self.uri_for(key)
        _check_expected(sha256, size)
        st = self.stat(key)
        if st.size != size:
            raise IntegrityError(uri, f"size mismatch: expected {size} bytes, the store has {st.size}")
        if st.sha256 is not None and st.sha256 != sha256:
            raise IntegrityError(
                uri, f"sha256 mismatch: expected {sha256}, the store records {st.sha256}"
            )
        dest = Path(dest_path)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.mlreg-part-", dir=dest.parent)
            os.close(fd)
        except OSError as e:
            raise translate_error(e, str(dest), "write") from e
        tmp = Path(tmp_name)
        try:
            def attempt() -> FileDigest:
                reporter = make_progress(progress, f"downloading {dest.name}", size)
                try:
                    with open(tmp, "wb") as out, self._open_read(key) as src:
                        got = copy_hashing(
                            src, _local_writer(out, str(dest)), reporter,
                            chunk_size=self.read_chunk,
                        )
                        out.flush()
                        os.fsync(out.fileno())
                    return got
                finally:
                    reporter.close()

            got = self.retry.call(attempt, uri=uri, action="download", retryable=self._retryable)
            if got.size != size:
                raise IntegrityError(uri, f"size mismatch: expected {size} bytes, read {got.size}")
            if got.sha256 != sha256:
                raise IntegrityError(uri, f"sha256 mismatch: expected {sha256}, got {got.sha256}")
            os.chmod(tmp, file_mode())
            os.replace(tmp, dest)
        except SideError as e:
            if e.side == "destination":
                raise translate_error(e.original, str(dest), "write") from e.original
            raise e.original from None
        except OSError as e:  # chmod/replace of the local destination
            raise translate_error(e, str(dest), "write") from e
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return StoredObject(uri, sha256, size, version_id=st.version_id, etag=st.etag)

    def stat(self, uri_or_key: str) -> ObjectStat:
        """Size (and etag/version id/recorded sha256 when the backend has them). NotFound if absent."""
        key = self.key_for(uri_or_key)
        uri = self.uri_for(key)
        st = self._stat_or_none(key, uri)
        if st is None:
            raise NotFound(f"{uri}: no such object")
        return st

    def exists(self, uri_or_key: str) -> bool:
        """Whether an object is stored under the key (StoreError if the store cannot tell)."""
        key = self.key_for(uri_or_key)
        return self._stat_or_none(key, self.uri_for(key)) is not None

    def hash_object(self, uri_or_key: str, *, progress: ProgressArg = None) -> FileDigest:
        """Stream the stored bytes and return their actual ``(sha256, size)`` (for verify)."""
        key = self.key_for(uri_or_key)
        total = self.stat(key).size if progress is not False else None
        try:
            return self._hash_key(key, progress=progress, total=total)
        except SideError as e:
            raise e.original from None

    def delete(self, uri_or_key: str) -> None:
        """Remove an object; absent is fine. Only for cleaning up after failed captures."""
        key = self.key_for(uri_or_key)
        self.retry.call(
            lambda: self._delete(key), uri=self.uri_for(key), action="delete",
            retryable=self._retryable,
        )

    # -- shared helpers ---------------------------------------------------------------------

    def _retryable(self, exc: BaseException) -> bool:
        """Which failures our own retry loop handles (backends with retrying clients narrow it)."""
        return is_transient(exc)

    def _stat_or_none(self, key: str, uri: str) -> ObjectStat | None:
        return self.retry.call(
            lambda: self._stat(key), uri=uri, action="stat", retryable=self._retryable,
        )

    def _hash_key(
        self, key: str, *, progress: ProgressArg = False, total: int | None = None,
    ) -> FileDigest:
        uri = self.uri_for(key)

        def attempt() -> FileDigest:
            reporter = make_progress(progress, f"hashing {key.rsplit('/', 1)[-1]}", total)
            try:
                with self._open_read(key) as src:
                    return copy_hashing(src, None, reporter, chunk_size=self.read_chunk)
            finally:
                reporter.close()

        return self.retry.call(attempt, uri=uri, action="read", retryable=self._retryable)

    def _reconcile(self, key: str, existing: ObjectStat, new: FileDigest) -> StoredObject:
        """The key is taken: same content is a no-op, different content is refused.

        Trusts a recorded sha256 (S3 metadata) when the sizes agree, so an idempotent
        re-upload of a large model does not download it; otherwise hashes the stored bytes.
        """
        uri = self.uri_for(key)
        if existing.sha256 is not None:
            current = FileDigest(existing.sha256, existing.size)
        else:
            current = self._hash_key(key)
        if current.sha256 == new.sha256 and current.size == new.size == existing.size:
            return StoredObject(
                uri, new.sha256, new.size, version_id=existing.version_id, etag=existing.etag,
            )
        raise RegistryError(
            f"{uri}: refusing to overwrite: the store holds sha256 {current.sha256} "
            f"({current.size} bytes), the new content has sha256 {new.sha256} ({new.size} bytes)"
        )

    # -- backend hooks ----------------------------------------------------------------------

    @abstractmethod
    def _stat(self, key: str) -> ObjectStat | None: ...

    @abstractmethod
    def _open_read(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _put_new_stream(
        self, key: str, src: BinaryIO, size: int | None, progress: ProgressArg,
    ) -> StoredObject: ...

    def _put_new_file(
        self, key: str, path: Path, size: int, progress: ProgressArg,
    ) -> StoredObject:
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise SideError("source", str(path), e) from e
        with f:
            return self._put_new_stream(key, _SourceReader(f, str(path)), size, progress)


def _bar_only(progress: ProgressArg) -> ProgressArg:
    """Progress for a preparatory pass (hashing before an upload): a bar, never the callback.

    A callback is promised one ``0..total`` sweep per transfer, so it only sees the transfer.
    """
    return False if callable(progress) and not isinstance(progress, bool) else progress


def _check_expected(sha256: object, size: object) -> None:
    if not is_sha256(sha256):
        raise InputError(f"expected sha256 must be 64 lowercase hex characters, got {sha256!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InputError(f"expected size must be a non-negative integer, got {size!r}")
