"""Any fsspec file system as a store (gs://, az://, abfs://, ...); S3 specialises it in s3.py.

Imported lazily by :func:`mlreg.storage.open_store`, so ``import mlreg.storage`` never pays
for fsspec or a cloud SDK.

Atomicity, portable version: fsspec backends differ in when a written file becomes visible
(GCS and Azure on close, SFTP/HDFS as bytes arrive), so bytes are first written to a
temporary key ``<root>/.mlreg-tmp/<random>``, then moved (server-side copy + delete on object
stores) to the final key only after the whole stream was read and hashed. Any failure removes
the temporary key; the final key is only ever written by the move. Backends without a
recorded digest are compared by streaming the existing object's bytes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

from mlreg.errors import InputError
from mlreg.storage.base import ArtifactStore, ObjectStat, StoredObject
from mlreg.storage.hashing import copy_hashing
from mlreg.storage.keys import TEMP_PREFIX
from mlreg.storage.progress import ProgressArg, make_progress

__all__ = ["FsspecStore", "INSTALL_HINTS", "open_fsspec_store"]

#: What to install for a protocol whose fsspec implementation is missing.
INSTALL_HINTS = {
    "s3": "pip install 'mlreg[s3]'",
    "s3a": "pip install 'mlreg[s3]'",
    "gs": "pip install gcsfs",
    "gcs": "pip install gcsfs",
    "az": "pip install adlfs",
    "abfs": "pip install adlfs",
    "abfss": "pip install adlfs",
    "adl": "pip install adlfs",
    "hf": "pip install huggingface_hub",
    "sftp": "pip install paramiko",
    "ssh": "pip install paramiko",
}

#: Remote reads are requests; larger reads mean fewer round trips per GB.
REMOTE_READ_CHUNK = 16 * 1024 * 1024


class FsspecStore(ArtifactStore):
    """Objects at ``<protocol>://<root_path>/<key>`` on an fsspec file system."""

    read_chunk = REMOTE_READ_CHUNK

    def __init__(self, fs: Any, root_path: str, *, protocol: str, retries: int = 2) -> None:
        self.fs = fs
        self.protocol = protocol
        self.scheme = protocol  # type: ignore[misc]
        self.root_path = root_path.strip("/")
        if not self.root_path:
            raise InputError(f"{protocol}:// store needs a bucket or container name")
        super().__init__(f"{protocol}://{self.root_path}", retries=retries)

    def _path(self, key: str) -> str:
        return f"{self.root_path}/{key}"

    def _stat(self, key: str) -> ObjectStat | None:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        etag = info.get("ETag") or info.get("etag")
        return ObjectStat(
            size=int(info["size"]),
            etag=str(etag).strip('"') if etag else None,
            version_id=info.get("VersionId") or info.get("generation") or None,
        )

    @contextlib.contextmanager
    def _open_read(self, key: str) -> Iterator[BinaryIO]:
        with self.fs.open(self._path(key), "rb", block_size=self.read_chunk) as f:
            yield f

    def _delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def _put_new_stream(
        self, key: str, src: BinaryIO, size: int | None, progress: ProgressArg,
    ) -> StoredObject:
        tmp = f"{self.root_path}/{TEMP_PREFIX}/{uuid.uuid4().hex}"
        final = self._path(key)
        try:
            f = self.fs.open(tmp, "wb")
            reporter = make_progress(progress, f"uploading {key.rsplit('/', 1)[-1]}", size)
            try:
                digest = copy_hashing(src, f.write, reporter)
            except BaseException:
                _discard(f)
                raise
            finally:
                reporter.close()
            f.close()
            existing = self._stat(key)
            if existing is not None:
                return self._reconcile(key, existing, digest)
            self.fs.mv(tmp, final)
            return StoredObject(self.uri_for(key), digest.sha256, digest.size)
        finally:
            with contextlib.suppress(Exception):
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)


def _discard(f: Any) -> None:
    """Abandon a half-written fsspec file so that nothing gets committed.

    fsspec's ``__exit__`` and ``__del__`` *close* (i.e. commit) files even after an error, so
    the file is discarded and then marked closed by hand.
    """
    with contextlib.suppress(Exception):
        f.discard()
    with contextlib.suppress(Exception):
        f.closed = True


def open_fsspec_store(root_uri: str, *, retries: int = 2, **options: Any) -> FsspecStore:
    """A store on any fsspec protocol; ``options`` go to the fsspec file system."""
    protocol = root_uri.split("://", 1)[0].lower()
    fs_cls = load_fsspec_class(protocol, root_uri)
    try:
        fs = fs_cls(**options)
    except TypeError as e:
        raise InputError(f"{root_uri}: bad options for the {protocol}:// store: {e}") from e
    root_path = fs._strip_protocol(root_uri)
    return FsspecStore(fs, root_path, protocol=protocol, retries=retries)


def load_fsspec_class(protocol: str, root_uri: str) -> Any:
    """The fsspec class for ``protocol``; InputError with an install hint when missing."""
    import fsspec

    try:
        return fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise InputError(f"{root_uri}: unknown store protocol '{protocol}://'") from None
    except ImportError as e:
        hint = INSTALL_HINTS.get(protocol, "install the fsspec implementation for it")
        raise InputError(
            f"{root_uri}: the {protocol}:// store needs an optional dependency "
            f"({e}); install it with: {hint}"
        ) from None
