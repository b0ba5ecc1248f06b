"""S3Store against a real S3-compatible HTTP server (moto in server mode, see conftest.py)."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import time

import pytest

from mlreg.errors import InputError, IntegrityError, NotFound, RegistryError, StoreError
from mlreg.storage import open_store

MiB = 1024 * 1024


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _object_key(store, key: str) -> str:
    return f"{store.prefix}/{key}"


def _in_progress_uploads(s3_client, bucket: str) -> list:
    return s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_multipart_upload_round_trips_with_sha256_metadata(s3_store, s3_client, s3_bucket,
                                                           make_file, tmp_path):
    data = os.urandom(11 * MiB + 123)  # more than one 5 MiB part
    obj = s3_store.put_file(make_file(data), "models/churn/1.0.0/model.bin")

    assert obj.uri == f"s3://{s3_bucket}/registry/models/churn/1.0.0/model.bin"
    assert (obj.sha256, obj.size) == (_sha(data), len(data))
    assert obj.etag and obj.etag.endswith("-2")  # it really was a multipart upload (8+3 MiB)
    head = s3_client.head_object(Bucket=s3_bucket, Key="registry/models/churn/1.0.0/model.bin")
    assert head["Metadata"] == {"sha256": _sha(data)}  # x-amz-meta-sha256
    assert s3_store.stat(obj.uri).sha256 == _sha(data)

    dest = tmp_path / "dl" / "model.bin"
    s3_store.get_file(obj.uri, dest, sha256=obj.sha256, size=obj.size)
    assert dest.read_bytes() == data
    assert s3_store.hash_object(obj.uri) == (_sha(data), len(data))
    assert _in_progress_uploads(s3_client, s3_bucket) == []


def test_small_and_empty_objects_are_single_puts(s3_store, s3_client, s3_bucket, tmp_path):
    for key, data in [("small", b"tiny"), ("empty", b"")]:
        obj = s3_store.put_stream(io.BytesIO(data), key)
        assert (obj.sha256, obj.size) == (_sha(data), len(data))
        head = s3_client.head_object(Bucket=s3_bucket, Key=f"registry/{key}")
        assert head["Metadata"]["sha256"] == _sha(data)
        s3_store.get_file(obj.uri, tmp_path / key, sha256=obj.sha256, size=obj.size)
        assert (tmp_path / key).read_bytes() == data


def test_idempotent_reupload_transfers_nothing(s3_store, make_file, monkeypatch):
    data = os.urandom(6 * MiB)
    first = s3_store.put_file(make_file(data), "m/1/w.bin")

    def no_upload(*args, **kwargs):
        raise AssertionError("an identical re-upload must not upload")

    monkeypatch.setattr(s3_store, "_upload", no_upload)
    assert s3_store.put_file(make_file(data), "m/1/w.bin") == first
    assert s3_store.put_stream(io.BytesIO(data), "m/1/w.bin") == first


def test_different_content_is_refused(s3_store, s3_client, s3_bucket, make_file):
    old, new = os.urandom(1000), os.urandom(1000)
    obj = s3_store.put_file(make_file(old), "m/1/w.bin")
    for attempt in (lambda: s3_store.put_file(make_file(new), "m/1/w.bin"),
                    lambda: s3_store.put_stream(io.BytesIO(new), "m/1/w.bin")):
        with pytest.raises(RegistryError) as err:
            attempt()
        assert obj.uri in str(err.value) and _sha(old) in str(err.value) and _sha(new) in str(err.value)
    body = s3_client.get_object(Bucket=s3_bucket, Key="registry/m/1/w.bin")["Body"].read()
    assert body == old


def test_tampered_object_fails_verification(s3_store, s3_client, s3_bucket, make_file, tmp_path):
    data = os.urandom(2 * MiB)
    src = make_file(data)
    obj = s3_store.put_file(src, "m/1/model.bin")
    evil = bytes([data[0] ^ 0xFF]) + data[1:]
    s3_client.put_object(Bucket=s3_bucket, Key="registry/m/1/model.bin", Body=evil)

    dest = tmp_path / "model.bin"
    with pytest.raises(IntegrityError) as err:
        s3_store.get_file(obj.uri, dest, sha256=obj.sha256, size=obj.size)
    assert str(err.value).startswith(obj.uri + ": sha256 mismatch")
    assert not dest.exists() and list(tmp_path.glob("*.mlreg-part-*")) == []
    assert s3_store.hash_object(obj.uri).sha256 == _sha(evil)
    # The overwrite dropped the sha256 metadata: re-uploading the original compares bytes.
    with pytest.raises(RegistryError, match=_sha(evil)):
        s3_store.put_file(src, "m/1/model.bin")


def test_tampering_that_keeps_the_metadata_is_still_caught(s3_store, s3_client, s3_bucket,
                                                           make_file, tmp_path):
    data = os.urandom(4096)
    obj = s3_store.put_file(make_file(data), "m/1/model.bin")
    s3_client.put_object(Bucket=s3_bucket, Key="registry/m/1/model.bin", Body=os.urandom(4096),
                         Metadata={"sha256": obj.sha256})
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        s3_store.get_file(obj.uri, tmp_path / "m", sha256=obj.sha256, size=obj.size)
    assert s3_store.hash_object(obj.uri).sha256 != obj.sha256


def test_failure_mid_upload_aborts_the_multipart_upload(s3_store, s3_client, s3_bucket, make_file):
    class Interrupted(Exception):
        pass

    def interrupt(done: int, total: int | None) -> None:
        if done > 11 * MiB:  # two parts are already on the server
            raise Interrupted

    with pytest.raises(Interrupted):
        s3_store.put_file(make_file(os.urandom(13 * MiB)), "m/1/big.bin", progress=interrupt)
    assert not s3_store.exists("m/1/big.bin")
    assert _in_progress_uploads(s3_client, s3_bucket) == []
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_stream_failure_stores_nothing(s3_store, s3_client, s3_bucket, failing_reader):
    boom = ConnectionResetError("producer died")
    with pytest.raises(ConnectionResetError):
        s3_store.put_stream(failing_reader(os.urandom(7 * MiB), boom), "m/1/stream.bin")
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    assert _in_progress_uploads(s3_client, s3_bucket) == []


def test_source_changing_during_upload_is_refused(s3_store, s3_client, s3_bucket, make_file):
    src = make_file(os.urandom(12 * MiB))  # two 8 MiB reads

    def rewrite_tail(done: int, total: int | None) -> None:
        if done <= 8 * 1024 * 1024:  # after the first chunk was read, change bytes not yet read
            with open(src, "r+b") as f:
                f.seek(-10, os.SEEK_END)
                f.write(b"0123456789")

    with pytest.raises(InputError, match="changed while being uploaded"):
        s3_store.put_file(src, "m/1/moving.bin", progress=rewrite_tail)
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    assert _in_progress_uploads(s3_client, s3_bucket) == []


@pytest.mark.parametrize("same", [True, False])
@pytest.mark.parametrize("size", [100, 6 * MiB])  # single PUT and multipart completion
def test_conditional_write_loses_a_race_safely(s3_store, s3_client, s3_bucket, make_file,
                                               monkeypatch, same, size):
    """Another writer publishes the key after our existence check: If-None-Match catches it."""
    ours = os.urandom(size)
    theirs = ours if same else os.urandom(size)
    s3_client.put_object(Bucket=s3_bucket, Key="registry/m/1/raced.bin", Body=theirs,
                         Metadata={"sha256": _sha(theirs)})
    real_stat = s3_store._stat
    first = [True]

    def racy_stat(key):
        if first[0]:  # the race window: the key looked free when we checked
            first[0] = False
            return None
        return real_stat(key)

    monkeypatch.setattr(s3_store, "_stat", racy_stat)

    if same:
        assert s3_store.put_file(make_file(ours), "m/1/raced.bin").sha256 == _sha(ours)
    else:
        with pytest.raises(RegistryError):
            s3_store.put_file(make_file(ours), "m/1/raced.bin")
    body = s3_client.get_object(Bucket=s3_bucket, Key="registry/m/1/raced.bin")["Body"].read()
    assert body == theirs  # never overwritten
    assert _in_progress_uploads(s3_client, s3_bucket) == []


def test_missing_object_is_not_found(s3_store, tmp_path):
    assert not s3_store.exists("no/such")
    with pytest.raises(NotFound, match="no such object"):
        s3_store.stat("no/such")
    with pytest.raises(NotFound):
        s3_store.get_file("no/such", tmp_path / "x", sha256="0" * 64, size=1)


def test_missing_bucket_is_a_store_error_naming_the_bucket(moto_endpoint, aws_env, make_file,
                                                           tmp_path):
    store = open_store("s3://mlreg-no-such-bucket/prefix", endpoint_url=moto_endpoint)
    for attempt in (lambda: store.put_file(make_file(b"x"), "k"),
                    lambda: store.put_stream(io.BytesIO(b"x"), "k"),
                    lambda: store.exists("k"),
                    lambda: store.get_file("k", tmp_path / "x", sha256="0" * 64, size=1)):
        with pytest.raises(StoreError) as err:
            attempt()
        assert err.value.exit_code == 3
        assert "bucket 'mlreg-no-such-bucket' does not exist" in str(err.value)
        assert "\n" not in str(err.value)


def test_connection_refused_is_a_fast_store_error(closed_port, aws_env, make_file, tmp_path):
    store = open_store("s3://bucket/prefix", endpoint_url=f"http://127.0.0.1:{closed_port}",
                       retries=0, connect_timeout=1, read_timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        store.put_file(make_file(b"x"), "k")
    assert time.monotonic() - started < 10
    assert err.value.exit_code == 3
    assert str(err.value).startswith("s3://bucket/prefix/k: ")
    assert "connection refused" in str(err.value)
    assert err.value.transient is True
    with pytest.raises(StoreError, match="connection refused"):
        store.get_file("k", tmp_path / "x", sha256="0" * 64, size=1)
    assert not (tmp_path / "x").exists()


def test_extra_options_reach_s3fs(s3_bucket, moto_endpoint, make_file, monkeypatch, aws_env):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = open_store(f"s3://{s3_bucket}/p", endpoint_url=moto_endpoint, key="k", secret="s",
                       region="us-east-1")
    assert store.put_file(make_file(b"ok"), "k").size == 2


def test_delete_and_prefixless_store(s3_bucket, moto_endpoint, aws_env, s3_client, make_file):
    store = open_store(f"s3://{s3_bucket}", endpoint_url=moto_endpoint)
    obj = store.put_file(make_file(b"bye"), "top.bin")
    assert obj.uri == f"s3://{s3_bucket}/top.bin"
    assert s3_client.head_object(Bucket=s3_bucket, Key="top.bin")["ContentLength"] == 3
    store.delete(obj.uri)
    store.delete(obj.uri)  # idempotent
    assert not store.exists(obj.uri)


def test_s3_options_are_validated(moto_endpoint, aws_env):
    with pytest.raises(InputError, match="part_size"):
        open_store("s3://b/p", endpoint_url=moto_endpoint, part_size=1024)
    with pytest.raises(InputError, match="bucket"):
        open_store("s3://", endpoint_url=moto_endpoint)
    with pytest.raises(InputError, match="bad options for the s3:// store: unknown endpoint"):
        open_store("s3://b/p", endpoint=moto_endpoint)  # a typo must not silently reach AWS


def test_a_body_cut_mid_download_is_retried(s3_store, make_file, tmp_path, monkeypatch):
    """botocore retries requests; a response body dying mid-stream is retried by the store."""
    import botocore.exceptions as bce

    import mlreg.storage.s3 as s3mod

    data = os.urandom(3 * MiB)
    obj = s3_store.put_file(make_file(data), "m/1/model.bin")
    real = s3mod._BodyReader
    opened = []

    class CutOnce(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)

        def read(self, n=-1):
            if len(opened) == 1:
                raise bce.ResponseStreamingError(error=ConnectionResetError("peer reset"))
            return super().read(n)

    monkeypatch.setattr(s3mod, "_BodyReader", CutOnce)
    monkeypatch.setattr("mlreg.storage.failures.time.sleep", lambda s: None)
    s3_store.get_file(obj.uri, tmp_path / "m", sha256=obj.sha256, size=obj.size)
    assert (tmp_path / "m").read_bytes() == data and len(opened) == 2


def test_s3_retries_are_not_layered(s3_store):
    import botocore.exceptions as bce

    def client_error(status: int) -> Exception:
        return bce.ClientError({"Error": {"Code": "InternalError", "Message": "x"},
                                "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    assert not s3_store._retryable(client_error(500))  # botocore already retried it
    assert not s3_store._retryable(bce.EndpointConnectionError(endpoint_url="http://x"))
    assert s3_store._retryable(bce.ResponseStreamingError(error="cut"))
    assert s3_store._retryable(ConnectionResetError())


def test_a_lost_completion_response_is_not_a_failure(s3_store, make_file, monkeypatch):
    """The object was published but the answer never arrived: the digest proves success."""
    import s3fs.core

    real_commit = s3fs.core.S3File.commit

    def commit_then_lose_response(self):
        real_commit(self)
        raise OSError(errno.EIO, "connection reset while reading the response")

    monkeypatch.setattr(s3fs.core.S3File, "commit", commit_then_lose_response)
    data = os.urandom(6 * MiB)
    obj = s3_store.put_file(make_file(data), "m/1/model.bin")
    assert s3_store.hash_object(obj.uri) == (_sha(data), len(data))


def test_servers_without_conditional_writes_get_a_hint(s3_store, s3_client, s3_bucket, make_file,
                                                       monkeypatch):
    import s3fs.core

    def not_implemented(self):
        raise OSError(errno.ENOSYS, "A header you provided implies functionality that is not implemented")

    with monkeypatch.context() as patched:
        patched.setattr(s3fs.core.S3File, "commit", not_implemented)
        with pytest.raises(StoreError, match="conditional_writes=False"):
            s3_store.put_file(make_file(os.urandom(6 * MiB)), "m/1/model.bin")
    assert _in_progress_uploads(s3_client, s3_bucket) == []
    plain = open_store(f"s3://{s3_bucket}/registry", endpoint_url=s3_store.endpoint_url,
                       conditional_writes=False)
    assert plain.put_file(make_file(b"fine"), "m/1/model.bin").size == 4
