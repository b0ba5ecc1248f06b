"""Storage fixtures: the three in-process stores, and a real S3-compatible server.

The S3 server is moto in *server mode*: a real HTTP server on a free loopback port, so the
code under test goes through botocore's HTTP stack, signing, retries and error parsing
exactly as against AWS (moto's in-process mocking would bypass all of that). It starts once
per session; every test gets its own bucket. Credentials are dummy values set per test in
the environment (and any real AWS configuration of the machine is hidden).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlreg.storage import ArtifactStore, LocalStore, MemoryStore

MiB = 1024 * 1024


# -- in-process stores, one parametrised fixture ---------------------------------------------

class StoreCase:
    """A store plus the test-only powers the contract tests need for it."""

    def __init__(self, kind: str, store: ArtifactStore, tamper: Callable[[str, bytes], None],
                 leftovers: Callable[[], list[str]]) -> None:
        self.kind = kind
        self.store = store
        self.tamper = tamper  # overwrite an object's bytes behind the store's back
        self.leftovers = leftovers  # every stored name, temporaries included


def _local_case(tmp_path: Path) -> StoreCase:
    store = LocalStore(tmp_path / "store")

    def tamper(key: str, data: bytes) -> None:
        store.path_for(key).write_bytes(data)

    def leftovers() -> list[str]:
        root = store.root
        if not root.exists():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())

    return StoreCase("local", store, tamper, leftovers)


def _memory_case(tmp_path: Path) -> StoreCase:
    store = MemoryStore()
    return StoreCase("memory", store, store.overwrite_unchecked, store.keys)


def _fsspec_case(tmp_path: Path) -> StoreCase:
    fsspec = pytest.importorskip("fsspec")
    from mlreg.storage import FsspecStore

    fs = fsspec.filesystem("memory")
    root = f"mlreg-{uuid.uuid4().hex[:10]}/prefix"
    store = FsspecStore(fs, root, protocol="memory")

    def tamper(key: str, data: bytes) -> None:
        fs.pipe_file(f"/{root}/{key}", data)

    def leftovers() -> list[str]:
        return sorted(p[len(f"/{root}/"):] for p in fs.find(f"/{root}"))

    return StoreCase("fsspec", store, tamper, leftovers)


@pytest.fixture(params=["local", "memory", "fsspec"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    """Each contract test runs against the local, memory and generic-fsspec backends."""
    make = {"local": _local_case, "memory": _memory_case, "fsspec": _fsspec_case}
    return make[request.param](tmp_path)


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a file with given bytes (or ``size`` random bytes) and return its path."""
    counter = iter(range(10**6))

    def make(data: bytes | None = None, *, size: int | None = None, name: str | None = None) -> Path:
        if data is None:
            data = os.urandom(size or 0)
        path = tmp_path / "src" / (name or f"file-{next(counter)}.bin")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return make


class FailingReader:
    """A binary stream that yields ``good`` bytes, then raises ``exc`` (a dying source)."""

    def __init__(self, good: bytes, exc: BaseException, piece: int = 64 * 1024) -> None:
        self._data = good
        self._pos = 0
        self._exc = exc
        self._piece = piece

    def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._data):
            raise self._exc
        n = self._piece if n is None or n < 0 else min(n, self._piece)
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk


@pytest.fixture
def failing_reader() -> type[FailingReader]:
    return FailingReader


# -- a real S3-compatible server --------------------------------------------------------------

@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """http://127.0.0.1:<free port> of a moto server running for the whole session."""
    server_mod = pytest.importorskip("moto.server", reason="needs moto[server] (test extras)")
    pytest.importorskip("s3fs", reason="needs s3fs (mlreg[s3])")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines in output
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


_AWS_VARS_TO_HIDE = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, a fixed region, and none of the machine's AWS configuration."""
    for var in _AWS_VARS_TO_HIDE:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def s3_client(moto_endpoint: str, aws_env: None):
    """A plain boto3 client on the moto server: the tests' way around the store."""
    boto3 = pytest.importorskip("boto3")
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client) -> str:
    name = f"mlreg-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(s3_bucket: str, moto_endpoint: str):
    """An S3Store on the test bucket, with 5 MiB parts so multipart runs on small files."""
    from mlreg.storage import open_store

    return open_store(
        f"s3://{s3_bucket}/registry", endpoint_url=moto_endpoint, part_size=5 * MiB,
        connect_timeout=5, read_timeout=10,
    )


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
