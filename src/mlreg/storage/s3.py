"""S3 (and S3-compatible: MinIO, Ceph, moto) through s3fs/botocore.

Choices, and why:

* **Atomicity: one multipart upload straight to the final key**, not temp key + copy. S3
  makes a multipart upload visible only when CompleteMultipartUpload succeeds (a small object
  is a single PUT, equally all-or-nothing), so a failure mid-way leaves nothing at the key;
  on any failure the upload is aborted (its parts deleted). Bytes cross the network once and
  there is no server-side copy (which for objects over 5 GB would itself be a multipart job)
  and no temporary key to garbage-collect. If the process is killed before it can abort,
  the incomplete upload is invisible but billed: buckets should have a lifecycle rule
  ``AbortIncompleteMultipartUpload``.
* **No overwrite, race-free**: the upload carries ``If-None-Match: *`` (S3 conditional
  writes; moto and MinIO support it), so the completion fails instead of replacing an
  object that appeared meanwhile; that case is then reconciled like any existing object.
  ``conditional_writes=False`` drops the header for servers that reject it (the pre-upload
  existence check still applies, with a small race window).
* **Compare by recorded digest**: every object we write carries its sha256 as user metadata
  (``x-amz-meta-sha256``). An idempotent re-upload compares the local file's sha256 with it
  (one HEAD, no download). Objects without that metadata (written by other tools, or
  overwritten out of band) are compared by streaming their bytes. ``hash_object`` (used by
  ``mlreg verify``) and ``get_file`` always hash the actual bytes.
* Because metadata must be known when the upload starts, ``put_file`` hashes the local file
  before uploading (a local read, cheap next to the upload) and re-checks the digest of the
  bytes actually sent; a file that changed meanwhile is refused. ``put_stream`` first spools
  the stream to a local temporary file (bounded memory, disk-sized) to learn its digest.
* **Retries**: botocore retries each request (connect errors, timeouts, throttling, 5xx,
  including the final CompleteMultipartUpload) in its "standard" mode, at most
  ``retries + 1`` attempts; s3fs's own retry layer is turned off, and mlreg's loop only
  retries what botocore could not see (a body stream cut mid-read). One failure, one layer.
* A 404 from HEAD does not say whether the key or the *bucket* is missing, so the first
  miss checks the bucket once (HeadBucket) to report "bucket does not exist" as a StoreError.
  That check needs ``s3:ListBucket``; without it S3 answers 403 for missing keys anyway.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from mlreg.errors import InputError, StoreError
from mlreg.storage.base import ObjectStat, StoredObject, _bar_only, _SourceReader
from mlreg.storage.failures import exception_chain, is_transient
from mlreg.storage.fsspec_store import INSTALL_HINTS, FsspecStore
from mlreg.storage.hashing import CHUNK_SIZE, FileDigest, copy_hashing, hash_local_file, is_sha256
from mlreg.storage.progress import ProgressArg, make_progress

__all__ = ["S3Store", "DEFAULT_PART_SIZE", "MIN_PART_SIZE"]

MiB = 1024 * 1024
#: Multipart part size: the write buffer (and so memory) scales with it.
DEFAULT_PART_SIZE = 16 * MiB
#: S3's minimum for every part but the last.
MIN_PART_SIZE = 5 * MiB
#: S3 allows 10,000 parts; stay below so parts grow for very large objects.
_MAX_PARTS = 9_000
#: Options s3fs accepts through ``**kwargs`` (fsspec caching; the botocore session profile).
_FSSPEC_OPTIONS = {
    "skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths", "profile",
}
#: User-metadata entry holding the object's sha256 (header ``x-amz-meta-sha256``).
SHA256_METADATA_KEY = "sha256"


class S3Store(FsspecStore):
    """Objects at ``s3://<bucket>/<prefix>/<key>``.

    ``endpoint_url`` points at S3-compatible servers (MinIO, moto in tests); ``region`` sets
    the client region; ``connect_timeout``/``read_timeout`` (seconds) and ``retries`` bound
    how long a failing store can stall a command. Other keyword options go to
    ``s3fs.S3FileSystem`` (``key``, ``secret``, ``profile``, ``client_kwargs``, ...).
    """

    read_chunk = CHUNK_SIZE  # one streamed GET: chunk size only bounds memory

    def __init__(
        self, root_uri: str, *, endpoint_url: str | None = None, region: str | None = None,
        connect_timeout: float = 10.0, read_timeout: float = 60.0, retries: int = 2,
        conditional_writes: bool = True, part_size: int = DEFAULT_PART_SIZE,
        **fsspec_options: Any,
    ) -> None:
        try:
            import s3fs
        except ImportError:
            raise InputError(
                f"{root_uri}: the s3:// store needs s3fs; install it with: {INSTALL_HINTS['s3']}"
            ) from None
        if not isinstance(retries, int) or retries < 0:
            raise InputError(f"retries must be a non-negative integer, got {retries!r}")
        if not isinstance(part_size, int) or part_size < MIN_PART_SIZE:
            raise InputError(f"part_size must be at least {MIN_PART_SIZE} bytes, got {part_size!r}")
        rest = root_uri.split("://", 1)[1].strip("/")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise InputError(f"{root_uri}: an s3:// store needs a bucket (s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.conditional_writes = conditional_writes
        self.part_size = part_size
        self._bucket_checked = False

        config_kwargs = dict(fsspec_options.pop("config_kwargs", None) or {})
        config_kwargs.setdefault("connect_timeout", connect_timeout)
        config_kwargs.setdefault("read_timeout", read_timeout)
        config_kwargs.setdefault("retries", {"max_attempts": retries + 1, "mode": "standard"})
        client_kwargs = dict(fsspec_options.pop("client_kwargs", None) or {})
        if region:
            client_kwargs.setdefault("region_name", region)
        fsspec_options.setdefault("skip_instance_cache", True)
        fsspec_options.setdefault("use_listings_cache", False)
        # s3fs swallows unknown keywords (they reach the botocore session and vanish), so a
        # typo like ``endpoint=`` would silently talk to AWS: check them here.
        allowed = set(inspect.signature(s3fs.S3FileSystem.__init__).parameters) | _FSSPEC_OPTIONS
        unknown = sorted(set(fsspec_options) - allowed - {"self", "kwargs"})
        if unknown:
            raise InputError(
                f"{root_uri}: bad options for the s3:// store: unknown {', '.join(unknown)}"
            )
        try:
            fs = s3fs.S3FileSystem(
                endpoint_url=endpoint_url, config_kwargs=config_kwargs,
                client_kwargs=client_kwargs, **fsspec_options,
            )
        except TypeError as e:
            raise InputError(f"{root_uri}: bad options for the s3:// store: {e}") from e
        fs.retries = 1  # botocore retries requests; see the module docstring
        self.endpoint_url = endpoint_url
        super().__init__(fs, rest, protocol="s3", retries=retries)

    # -- addressing ---------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _part_size_for(self, size: int) -> int:
        if size <= self.part_size * _MAX_PARTS:
            return self.part_size
        return math.ceil(size / _MAX_PARTS / MiB) * MiB

    def _retryable(self, exc: BaseException) -> bool:
        """Retry what botocore could not: failures while streaming a response body.

        botocore retries each *request* (connection errors, throttling, 5xx); retrying those
        again here would multiply the attempts. A body cut mid-read is ours to retry.
        """
        bc = sys.modules.get("botocore.exceptions")
        if bc is not None:
            for e in exception_chain(exc):
                if isinstance(e, bc.ResponseStreamingError | bc.IncompleteReadError):
                    return True
                if isinstance(e, bc.ReadTimeoutError):
                    return True  # may be a body read; bounded either way
                if isinstance(e, bc.BotoCoreError | bc.ClientError):
                    return False
        return is_transient(exc)

    # -- hooks ------------------------------------------------------------------------------

    def _stat(self, key: str) -> ObjectStat | None:
        try:
            head = self.fs.call_s3("head_object", Bucket=self.bucket, Key=self._object_key(key))
        except FileNotFoundError:
            self._check_bucket()
            return None
        sha = (head.get("Metadata") or {}).get(SHA256_METADATA_KEY)
        etag = head.get("ETag")
        return ObjectStat(
            size=int(head["ContentLength"]),
            etag=etag.strip('"') if etag else None,
            version_id=head.get("VersionId") or None,
            sha256=sha if is_sha256(sha) else None,
        )

    def _check_bucket(self) -> None:
        """Tell "no such key" from "no such bucket" (HEAD answers a bare 404 for both)."""
        if self._bucket_checked:
            return
        try:
            self.fs.call_s3("head_bucket", Bucket=self.bucket)
        except FileNotFoundError as e:
            err = StoreError(f"{self.root_uri}: bucket '{self.bucket}' does not exist")
            err.uri = self.root_uri  # type: ignore[attr-defined]
            err.cause = f"bucket '{self.bucket}' does not exist"  # type: ignore[attr-defined]
            raise err from e
        except PermissionError:
            pass  # no s3:ListBucket: assume the bucket exists, the object calls will tell
        self._bucket_checked = True

    @contextlib.contextmanager
    def _open_read(self, key: str) -> Iterator[BinaryIO]:
        # One streaming GET for the whole object, read in chunks: no per-chunk request
        # latency (fsspec's file object would issue a ranged GET per read).
        reader = _BodyReader(self.fs, self.bucket, self._object_key(key))
        try:
            yield reader  # type: ignore[misc]
        finally:
            reader.close()

    def _delete(self, key: str) -> None:
        self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self._object_key(key))

    def _put_new_file(
        self, key: str, path: Path, size: int, progress: ProgressArg,
    ) -> StoredObject:
        digest = hash_local_file(path, progress=_bar_only(progress))
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
        with f:
            return self._upload(key, _SourceReader(f, str(path)), digest, progress, str(path))

    def _put_new_stream(
        self, key: str, src: BinaryIO, size: int | None, progress: ProgressArg,
    ) -> StoredObject:
        with tempfile.TemporaryFile(prefix="mlreg-spool-") as spool:
            digest = copy_hashing(src, spool.write, make_progress(False, "", None))
            spool.seek(0)
            existing = self._stat(key)
            if existing is not None:
                return self._reconcile(key, existing, digest)
            return self._upload(key, spool, digest, progress, "stream")

    # -- the upload -------------------------------------------------------------------------

    def _upload(
        self, key: str, src: BinaryIO, digest: FileDigest, progress: ProgressArg, source: str,
    ) -> StoredObject:
        uri = self.uri_for(key)
        metadata = {SHA256_METADATA_KEY: digest.sha256}
        if digest.size == 0:
            # s3fs commits empty files with a plain touch (no metadata, no condition).
            published = self._put_empty(key, metadata)
        else:
            published = self._upload_multipart(key, src, digest, progress, source, metadata)
        st = self._stat(key)
        if st is None:
            raise StoreError(f"{uri}: upload failed: the object is missing after the upload")
        if not published:  # lost a race to another writer: same bytes or refuse
            return self._reconcile(key, st, digest)
        if st.size != digest.size or (st.sha256 is not None and st.sha256 != digest.sha256):
            raise StoreError(
                f"{uri}: upload failed: sent {digest.size} bytes with sha256 {digest.sha256}, "
                f"the store reports {st.size} bytes with sha256 {st.sha256}"
            )
        return StoredObject(uri, digest.sha256, digest.size, version_id=st.version_id, etag=st.etag)

    def _put_empty(self, key: str, metadata: dict[str, str]) -> bool:
        kw: dict[str, Any] = {"IfNoneMatch": "*"} if self.conditional_writes else {}
        try:
            self.fs.call_s3(
                "put_object", Bucket=self.bucket, Key=self._object_key(key), Body=b"",
                Metadata=metadata, **kw,
            )
        except FileExistsError:
            return False  # taken meanwhile: the caller reconciles
        except OSError as e:
            raise self._explain_commit_failure(e, key) from e
        return True

    def _upload_multipart(
        self, key: str, src: BinaryIO, digest: FileDigest, progress: ProgressArg, source: str,
        metadata: dict[str, str],
    ) -> bool:
        """Stream ``src`` to the key; True once published, False if the key was taken."""
        mode = "xb" if self.conditional_writes else "wb"
        f = self.fs.open(
            self._path(key), mode, block_size=self._part_size_for(digest.size),
            Metadata=metadata,
        )
        reporter = make_progress(progress, f"uploading {key.rsplit('/', 1)[-1]}", digest.size)
        try:
            sent = copy_hashing(src, f.write, reporter, chunk_size=CHUNK_SIZE)
            if sent != digest:
                raise InputError(
                    f"{source}: changed while being uploaded (sha256 {digest.sha256} before, "
                    f"{sent.sha256} sent); nothing was stored, retry once it is stable"
                )
        except BaseException:
            self._abort(f)
            raise
        finally:
            reporter.close()
        try:
            f.close()  # CompleteMultipartUpload (or the single PUT): the object appears now
        except FileExistsError:
            self._abort(f)  # someone else published this key meanwhile
            return False
        except BaseException as e:
            self._abort(f)
            if not isinstance(e, Exception):  # KeyboardInterrupt & co: just stop
                raise
            if self._completed_anyway(key, digest):
                return True
            raise self._explain_commit_failure(e, key) from e
        return True

    def _completed_anyway(self, key: str, digest: FileDigest) -> bool:
        """Whether the key holds our bytes although the completion call failed.

        A completion whose response was lost and got retried by botocore fails the retry
        (NoSuchUpload, or 412 with If-None-Match) while the object is in place.
        """
        try:
            st = self._stat(key)
        except Exception:
            return False
        return st is not None and st.sha256 == digest.sha256 and st.size == digest.size

    def _explain_commit_failure(self, exc: Exception, key: str) -> BaseException:
        if self.conditional_writes and isinstance(exc, OSError) and exc.errno == errno.ENOSYS:
            return StoreError(
                f"{self.uri_for(key)}: upload failed: the server does not support conditional "
                "writes (If-None-Match); open the store with conditional_writes=False"
            )
        return exc

    def _abort(self, f: Any) -> None:
        """Abort the multipart upload behind ``f`` and make sure nothing ever commits it.

        fsspec files commit on ``__exit__``/``__del__`` even after an error, so the file is
        marked closed by hand. Best effort: an upload we cannot abort stays invisible.
        """
        mpu = getattr(f, "mpu", None)
        if mpu:
            with contextlib.suppress(Exception):
                self.fs.call_s3(
                    "abort_multipart_upload", Bucket=f.bucket, Key=f.key,
                    UploadId=mpu["UploadId"],
                )
        with contextlib.suppress(Exception):
            f.mpu = None
            f.buffer = None
        with contextlib.suppress(Exception):
            f.closed = True


class _BodyReader:
    """A blocking ``read(n)`` over one GetObject response body streamed on s3fs's loop."""

    def __init__(self, fs: Any, bucket: str, key: str) -> None:
        from fsspec.asyn import sync

        self._sync = sync
        self._loop = fs.loop
        response = fs.call_s3("get_object", Bucket=bucket, Key=key)
        self._body = response["Body"]

    def read(self, n: int = -1) -> bytes:
        return self._sync(self._loop, self._read, n)

    async def _read(self, n: int) -> bytes:
        if n is None or n < 0:
            return await self._body.read()
        parts: list[bytes] = []
        got = 0
        while got < n:  # the body hands out whatever arrived; gather a full chunk
            part = await self._body.read(n - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if inspect.iscoroutinefunction(self._body.close):  # httpx-backed bodies
                self._sync(self._loop, self._body.close)
            else:
                self._body.close()
