"""The adapter boundary: backend exceptions -> mlreg errors, and bounded retries.

Backends raise a zoo of exceptions: OSError subclasses (local disk, and s3fs's translation of
botocore errors), botocore's ClientError/EndpointConnectionError/timeouts (sometimes wrapped
in an OSError's ``__cause__``), aiohttp errors. :func:`translate_error` is the *one* place
that turns them into mlreg's error tree, with a one-line message naming the URI and the
cause, so every caller above the storage layer deals only with:

* ``NotFound``   - the object (key) does not exist; exit 2
* ``StoreError`` - the store is failing or refusing (missing bucket, permission denied,
  timeout, connection refused, 5xx, disk full); exit 3
* anything that already is an ``MlregError`` passes through unchanged.

:func:`is_transient` says which failures are worth retrying, and :class:`RetryPolicy` retries
them a small bounded number of times with exponential backoff and jitter. botocore is never
imported here: when it is not in ``sys.modules`` no exception can be one of its classes.
"""

from __future__ import annotations

import errno
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from mlreg.errors import MlregError, NotFound, StoreError

__all__ = ["translate_error", "is_transient", "describe_error", "RetryPolicy", "SideError", "exception_chain"]

T = TypeVar("T")

_TRANSIENT_ERRNOS = {
    errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED,
    errno.ECONNABORTED, errno.EPIPE, errno.ENETUNREACH, errno.EHOSTUNREACH,
    getattr(errno, "EREMOTEIO", 121),
}
_THROTTLE_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AuthorizationHeaderMalformed",
}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_MAX_MESSAGE = 300


class SideError(Exception):
    """A failure on the caller's side of a transfer, not the store's.

    Reading the source of an upload or writing the local destination of a download can fail
    too; those failures must not be reported as "the store failed" (nor retried as such), so
    the transfer loops wrap them in this and the public methods unwrap them.
    """

    def __init__(self, side: str, path: str, original: BaseException) -> None:
        super().__init__(f"{side} {path}: {original}")
        self.side = side  # "source" or "destination"
        self.path = path
        self.original = original


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first (bounded, no cycles)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _botocore():
    """botocore.exceptions if (and only if) botocore is already imported."""
    return sys.modules.get("botocore.exceptions")


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _bucket_of(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme in ("", "file", "memory"):
        return None
    return parts.netloc or None


def _client_error(exc: BaseException) -> tuple[str, int | None, str, str | None] | None:
    """(code, http status, message, bucket) of a botocore ClientError in the chain."""
    for e in exception_chain(exc):
        response = getattr(e, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            err = response["Error"]
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return (
                str(err.get("Code", "")), status, str(err.get("Message", "")),
                err.get("BucketName"),
            )
    return None


def describe_error(exc: BaseException, uri: str = "") -> tuple[str, str, bool]:
    """Classify one backend exception: ``(kind, cause, transient)``.

    ``kind`` is ``"not_found"`` (the object is absent) or ``"store"``; ``cause`` is a short
    human phrase; ``transient`` says whether retrying could help. This is the mapping table
    that :func:`translate_error` and :func:`is_transient` share.
    """
    bc = _botocore()
    client = _client_error(exc)
    if client is not None:
        code, status, message, bucket = client
        bucket = bucket or _bucket_of(uri)
        if code == "NoSuchBucket":
            return "store", f"bucket '{bucket}' does not exist", False
        if code in _NOT_FOUND_CODES:
            return "not_found", "no such object", False
        if code in ("AccessDenied", "403", "AllAccessDisabled", "AccountProblem"):
            return "store", f"permission denied ({code})", False
        if code in _CREDENTIAL_CODES:
            return "store", f"credentials rejected ({code}: {message})", False
        if code in _THROTTLE_CODES or (status is not None and status >= 500):
            shown = f"server error {status} {code}".strip() if status else f"server error {code}"
            return "store", f"{shown}: {message}" if message else shown, True
        return "store", f"{code}: {message}" if message else code, False

    chain = exception_chain(exc)
    # botocore's classes first, wherever they sit in the chain: they say the most.
    for e in chain if bc is not None else []:
        if isinstance(e, bc.NoCredentialsError):
            return "store", "no credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role)", False
        if isinstance(e, bc.PartialCredentialsError):
            return "store", f"incomplete credentials: {_one_line(str(e))}", False
        if isinstance(e, bc.ConnectTimeoutError):
            return "store", f"timed out connecting to {e.kwargs.get('endpoint_url', 'the endpoint')}", True
        if isinstance(e, bc.ReadTimeoutError):
            return "store", f"timed out reading from {e.kwargs.get('endpoint_url', 'the endpoint')}", True
        if isinstance(e, bc.EndpointConnectionError):
            endpoint = e.kwargs.get("endpoint_url", "the endpoint")
            detail = str(e.kwargs.get("error", "")).lower()
            refused = (
                any(isinstance(x, ConnectionRefusedError) for x in exception_chain(e))
                or "refused" in detail or "connect call failed" in detail
            )
            return "store", f"{'connection refused' if refused else 'cannot connect'} ({endpoint})", True
        if isinstance(e, bc.ConnectionClosedError | bc.HTTPClientError | bc.IncompleteReadError):
            return "store", f"connection error: {_one_line(str(e))}", True
    for e in chain:
        if isinstance(e, FileNotFoundError):
            return "not_found", "no such object", False
        if isinstance(e, PermissionError):
            return "store", "permission denied", False
        if isinstance(e, ConnectionRefusedError):
            return "store", "connection refused", True
        if isinstance(e, TimeoutError | socket.timeout):
            return "store", "timed out", True
        if isinstance(e, ConnectionError):
            return "store", f"connection error: {_one_line(str(e) or type(e).__name__)}", True
        if isinstance(e, OSError) and e.errno is not None:
            if e.errno == errno.ENOSPC:
                return "store", "no space left on device", False
            if e.errno == errno.EROFS:
                return "store", "read-only file system", False
            text = e.strerror or (str(e.args[1]) if len(e.args) > 1 else str(e))
            return "store", _one_line(text), e.errno in _TRANSIENT_ERRNOS
        name = type(e).__name__
        if name in ("ClientPayloadError", "ServerDisconnectedError", "IncompleteRead",
                    "ClientOSError", "ServerTimeoutError"):
            return "store", f"connection error ({name}): {_one_line(str(e))}", True
    text = str(exc)
    return "store", _one_line(f"{type(exc).__name__}: {text}" if text else type(exc).__name__), False


def translate_error(exc: BaseException, uri: str, action: str) -> MlregError:
    """The mlreg error to raise for ``exc`` while doing ``action`` (e.g. "upload") on ``uri``.

    Use as ``raise translate_error(e, uri, "download") from e``. The message is one line:
    ``<uri>: <action> failed: <cause>``; the StoreError also carries ``uri``, ``action``,
    ``cause`` and ``transient`` attributes for callers (and the CLI's JSON output).
    """
    if isinstance(exc, MlregError):
        return exc
    kind, cause, transient = describe_error(exc, uri)
    cause = _one_line(cause)
    if kind == "not_found":
        err: MlregError = NotFound(f"{uri}: {cause}")
    else:
        err = StoreError(f"{uri}: {action} failed: {cause}")
    err.uri = uri  # type: ignore[attr-defined]
    err.action = action  # type: ignore[attr-defined]
    err.cause = cause  # type: ignore[attr-defined]
    err.transient = transient  # type: ignore[attr-defined]
    return err


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same idempotent operation might succeed."""
    if isinstance(exc, MlregError):
        return False
    return describe_error(exc)[2]


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``retries`` re-tries after the first attempt, with capped exponential backoff.

    Only idempotent operations are wrapped (stat, reads, hashing, deletes): retrying an
    upload from an arbitrary stream is not safe, and per-request retries of uploads (parts,
    the final commit) are the job of the backend's own client (botocore), configured from the
    same ``retries`` number so every failure is retried by exactly one layer.
    """

    retries: int = 2
    initial_delay: float = 0.2
    max_delay: float = 3.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_delay, self.initial_delay * (2**attempt))
        return base * (0.5 + random.random() / 2)

    def call(
        self, fn: Callable[[], T], *, uri: str, action: str,
        retryable: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """Run ``fn``; on a retryable failure try again; finally raise the translated error."""
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as e:
                if isinstance(e, MlregError | SideError):
                    raise
                if attempt < self.retries and retryable(e):
                    sleep(self.delay(attempt))
                    attempt += 1
                    continue
                raise translate_error(e, uri, action) from e
