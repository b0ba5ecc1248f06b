"""The one mapping from backend exceptions to mlreg errors, and the bounded retry loop."""

from __future__ import annotations

import errno

import pytest

from mlreg.errors import IntegrityError, MlregError, NotFound, StoreError
from mlreg.storage import MemoryStore
from mlreg.storage.failures import RetryPolicy, describe_error, is_transient, translate_error

bc = pytest.importorskip("botocore.exceptions")

URI = "s3://acme-models/registry/models/m/1/model.bin"


def client_error(code: str, status: int, message: str = "msg", **extra) -> Exception:
    return bc.ClientError(
        {"Error": {"Code": code, "Message": message, **extra},
         "ResponseMetadata": {"HTTPStatusCode": status}},
        "HeadObject",
    )


def wrapped(cause: BaseException, outer: BaseException) -> BaseException:
    """An s3fs-style translation: an OSError raised from the botocore error."""
    outer.__cause__ = cause
    return outer


def refused() -> Exception:
    inner = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    err = bc.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k", error=inner)
    err.__cause__ = inner
    return err


CASES = [
    # (exception, expected class, text in message, transient)
    (client_error("NoSuchBucket", 404, BucketName="acme-models"), StoreError,
     "bucket 'acme-models' does not exist", False),
    (wrapped(client_error("NoSuchBucket", 404), FileNotFoundError("The bucket does not exist")),
     StoreError, "bucket 'acme-models' does not exist", False),
    (client_error("NoSuchKey", 404), NotFound, "no such object", False),
    (client_error("404", 404, "Not Found"), NotFound, "no such object", False),
    (client_error("AccessDenied", 403, "Access Denied"), StoreError, "permission denied (AccessDenied)", False),
    (wrapped(client_error("403", 403), PermissionError("Forbidden")), StoreError, "permission denied", False),
    (client_error("InvalidAccessKeyId", 403, "bad key"), StoreError, "credentials rejected", False),
    (client_error("SlowDown", 503, "Please reduce your request rate"), StoreError,
     "server error 503 SlowDown", True),
    (client_error("InternalError", 500, "We encountered an internal error"), StoreError,
     "server error 500 InternalError", True),
    (client_error("502", 502, "Bad Gateway"), StoreError, "server error 502", True),
    (client_error("InvalidObjectState", 403, "archived"), StoreError, "InvalidObjectState: archived", False),
    (refused(), StoreError, "connection refused (http://127.0.0.1:9/b/k)", True),
    (bc.EndpointConnectionError(endpoint_url="http://h", error="DNS failure"), StoreError,
     "cannot connect (http://h)", True),
    (bc.ConnectTimeoutError(endpoint_url="http://h"), StoreError, "timed out connecting to http://h", True),
    (bc.ReadTimeoutError(endpoint_url="http://h"), StoreError, "timed out reading from http://h", True),
    (bc.NoCredentialsError(), StoreError, "no credentials found", False),
    (FileNotFoundError(errno.ENOENT, "No such file"), NotFound, "no such object", False),
    (PermissionError(errno.EACCES, "Permission denied"), StoreError, "permission denied", False),
    (OSError(errno.ENOSPC, "No space left on device"), StoreError, "no space left on device", False),
    (OSError(errno.EROFS, "Read-only file system"), StoreError, "read-only file system", False),
    (OSError(errno.EIO, "Input/output error"), StoreError, "Input/output error", False),
    (OSError(errno.EBUSY, "Service Unavailable"), StoreError, "Service Unavailable", True),
    (TimeoutError("timed out"), StoreError, "timed out", True),
    (ConnectionRefusedError(), StoreError, "connection refused", True),
    (ConnectionResetError("reset by peer"), StoreError, "connection error: reset by peer", True),
    (RuntimeError("weird\nmulti-line\nfailure"), StoreError, "RuntimeError: weird multi-line failure", False),
]


@pytest.mark.parametrize("exc, cls, text, transient", CASES, ids=[
    f"{i}-{type(c[0]).__name__}" for i, c in enumerate(CASES)])
def test_mapping_table(exc, cls, text, transient):
    err = translate_error(exc, URI, "upload")
    assert type(err) is cls
    assert text in str(err)
    assert str(err).startswith(URI + ": ")
    assert "\n" not in str(err)
    assert is_transient(exc) is transient
    if cls is StoreError:
        assert err.exit_code == 3
        assert str(err) == f"{URI}: upload failed: {err.cause}"
        assert err.uri == URI and err.transient is transient
    else:
        assert err.exit_code == 2


def test_mlreg_errors_pass_through_unchanged():
    original = IntegrityError(URI, "sha256 mismatch")
    assert translate_error(original, "other", "download") is original
    assert is_transient(original) is False


def test_long_causes_are_truncated_to_one_line():
    err = translate_error(RuntimeError("x" * 5000), URI, "stat")
    assert len(str(err)) < 400 and str(err).endswith("...")


def test_describe_error_reports_kind():
    assert describe_error(FileNotFoundError())[0] == "not_found"
    assert describe_error(client_error("NoSuchBucket", 404), URI)[0] == "store"


class Flaky:
    def __init__(self, failures: list[BaseException], result: str = "ok") -> None:
        self.failures = list(failures)
        self.calls = 0
        self.result = result

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.result


def test_retry_policy_retries_transient_failures_with_growing_delays():
    sleeps: list[float] = []
    fn = Flaky([TimeoutError(), ConnectionResetError()])
    policy = RetryPolicy(retries=2, initial_delay=0.1, max_delay=1.0)
    assert policy.call(fn, uri=URI, action="stat", sleep=sleeps.append) == "ok"
    assert fn.calls == 3
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2


def test_retry_policy_is_bounded():
    fn = Flaky([TimeoutError()] * 10)
    with pytest.raises(StoreError, match="stat failed: timed out"):
        RetryPolicy(retries=3).call(fn, uri=URI, action="stat", sleep=lambda s: None)
    assert fn.calls == 4


def test_retry_policy_does_not_retry_permanent_failures():
    fn = Flaky([PermissionError()])
    with pytest.raises(StoreError, match="permission denied"):
        RetryPolicy(retries=5).call(fn, uri=URI, action="stat", sleep=lambda s: None)
    assert fn.calls == 1


def test_retry_delays_are_capped():
    policy = RetryPolicy(retries=10, initial_delay=1.0, max_delay=2.0)
    assert all(policy.delay(i) <= 2.0 for i in range(10))


class FlakyMemoryStore(MemoryStore):
    """A memory store whose reads fail transiently a few times first."""

    def __init__(self, failures: int, **kw) -> None:
        super().__init__(**kw)
        self.failures = failures

    def _stat(self, key):
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("flaky network")
        return super()._stat(key)


def test_stores_retry_idempotent_reads(monkeypatch):
    monkeypatch.setattr("mlreg.storage.failures.time.sleep", lambda s: None)
    store = FlakyMemoryStore(failures=2, retries=2)
    store.overwrite_unchecked("k", b"data")
    assert store.stat("k").size == 4

    store = FlakyMemoryStore(failures=1, retries=0)
    store.overwrite_unchecked("k", b"data")
    with pytest.raises(StoreError, match="memory://.*/k: stat failed: connection error: flaky network"):
        store.exists("k")


def test_every_store_error_is_an_mlreg_error():
    for exc, *_ in CASES:
        assert isinstance(translate_error(exc, URI, "x"), MlregError)
