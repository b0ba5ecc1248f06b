"""The store contract, run against the local, memory and generic-fsspec backends.

(The same behaviours are checked against a real S3-compatible server in test_storage_s3.py.)
"""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from mlreg.errors import InputError, IntegrityError, NotFound, RegistryError
from mlreg.storage import StoredObject, sha256_file


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_file_then_get_file_round_trips(case, make_file, tmp_path):
    data = os.urandom(300_000)
    src = make_file(data)
    obj = case.store.put_file(src, "models/churn/1.0.0/model.bin")

    assert obj == StoredObject(case.store.uri_for("models/churn/1.0.0/model.bin"), _sha(data), len(data))
    assert case.store.exists(obj.uri) and case.store.exists("models/churn/1.0.0/model.bin")
    assert case.store.stat(obj.uri).size == len(data)
    assert case.store.hash_object(obj.uri) == (_sha(data), len(data))

    dest = tmp_path / "out" / "deep" / "model.bin"
    got = case.store.get_file(obj.uri, dest, sha256=obj.sha256, size=obj.size)
    assert got.sha256 == obj.sha256 and dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir()] == ["model.bin"]  # no temporaries left


def test_empty_object_round_trips(case, make_file, tmp_path):
    obj = case.store.put_file(make_file(b""), "a/empty")
    assert (obj.sha256, obj.size) == (_sha(b""), 0)
    case.store.get_file(obj.uri, tmp_path / "e", sha256=obj.sha256, size=0)
    assert (tmp_path / "e").read_bytes() == b""


def test_reupload_of_identical_content_is_a_no_op(case, make_file):
    data = b"weights" * 1000
    first = case.store.put_file(make_file(data), "m/1/w.bin")
    again = case.store.put_file(make_file(data), "m/1/w.bin")
    via_stream = case.store.put_stream(io.BytesIO(data), "m/1/w.bin")
    assert first == again == via_stream
    assert case.leftovers() == ["m/1/w.bin"]


def test_different_content_is_refused_naming_both_digests(case, make_file):
    old, new = b"version one", b"version two!"
    obj = case.store.put_file(make_file(old), "m/1/w.bin")
    with pytest.raises(RegistryError) as err:
        case.store.put_file(make_file(new), "m/1/w.bin")
    message = str(err.value)
    assert obj.uri in message and _sha(old) in message and _sha(new) in message
    assert err.value.exit_code == 2
    with pytest.raises(RegistryError):
        case.store.put_stream(io.BytesIO(new), "m/1/w.bin")
    assert case.store.hash_object(obj.uri).sha256 == _sha(old)  # untouched
    assert case.leftovers() == ["m/1/w.bin"]


def test_get_file_detects_tampered_bytes_and_leaves_no_partial_file(case, make_file, tmp_path):
    data = b"A" * 50_000
    obj = case.store.put_file(make_file(data), "m/1/model.bin")
    case.tamper("m/1/model.bin", b"B" + data[1:])  # same size, one byte differs

    dest = tmp_path / "dl" / "model.bin"
    with pytest.raises(IntegrityError) as err:
        case.store.get_file(obj.uri, dest, sha256=obj.sha256, size=obj.size)
    assert obj.uri in str(err.value) and "sha256 mismatch" in str(err.value)
    assert err.value.uri == obj.uri and err.value.exit_code == 1
    assert list(dest.parent.iterdir()) == []
    assert case.store.hash_object(obj.uri).sha256 == _sha(b"B" + data[1:])


def test_failed_download_keeps_an_existing_destination(case, make_file, tmp_path):
    obj = case.store.put_file(make_file(b"good"), "k")
    case.tamper("k", b"evil")
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"previous copy")
    with pytest.raises(IntegrityError):
        case.store.get_file(obj.uri, dest, sha256=obj.sha256, size=obj.size)
    assert dest.read_bytes() == b"previous copy"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["model.bin"]


def test_get_file_checks_size_before_downloading(case, make_file, tmp_path):
    obj = case.store.put_file(make_file(b"12345"), "k")
    with pytest.raises(IntegrityError, match="size mismatch: expected 6 bytes, the store has 5"):
        case.store.get_file(obj.uri, tmp_path / "x", sha256=obj.sha256, size=6)
    case.tamper("k", b"123456")
    with pytest.raises(IntegrityError, match="size mismatch"):
        case.store.get_file(obj.uri, tmp_path / "x", sha256=obj.sha256, size=5)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("sha256, size", [("abc", 1), ("A" * 64, 1), ("a" * 64, -1), ("a" * 64, True)])
def test_get_file_rejects_malformed_expectations(case, make_file, tmp_path, sha256, size):
    case.store.put_file(make_file(b"x"), "k")
    with pytest.raises(InputError):
        case.store.get_file("k", tmp_path / "x", sha256=sha256, size=size)


def test_failure_mid_stream_leaves_no_object_and_no_temporary(case, failing_reader):
    boom = OSError("the source disk went away")
    reader = failing_reader(os.urandom(200_000), boom)
    with pytest.raises(OSError) as err:
        case.store.put_stream(reader, "models/m/1/model.bin")
    assert err.value is boom  # the caller's exception, not disguised as a store failure
    assert not case.store.exists("models/m/1/model.bin")
    assert case.leftovers() == []


def test_progress_callback_failure_aborts_the_upload(case, make_file):
    class Stop(Exception):
        pass

    def callback(done: int, total: int | None) -> None:
        raise Stop

    with pytest.raises(Stop):
        case.store.put_file(make_file(os.urandom(10_000)), "m/x", progress=callback)
    assert case.leftovers() == []


def test_progress_callback_sees_the_transfer(case, make_file, tmp_path):
    seen: list[tuple[int, int | None]] = []
    data = os.urandom(20_000_000)  # several chunks
    obj = case.store.put_file(make_file(data), "m/big", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(data), len(data)) and len(seen) >= 3
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    seen.clear()
    case.store.get_file(obj.uri, tmp_path / "big", sha256=obj.sha256, size=obj.size,
                        progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(data), len(data))


def test_missing_objects(case, tmp_path):
    uri = case.store.uri_for("no/such/object")
    assert not case.store.exists(uri)
    with pytest.raises(NotFound, match="no such object"):
        case.store.stat(uri)
    with pytest.raises(NotFound):
        case.store.get_file(uri, tmp_path / "x", sha256="0" * 64, size=0)
    with pytest.raises(NotFound):
        case.store.hash_object(uri)
    case.store.delete(uri)  # absent is fine


def test_delete_removes_an_object(case, make_file):
    obj = case.store.put_file(make_file(b"tmp"), "cleanup/me")
    case.store.delete(obj.uri)
    assert not case.store.exists(obj.uri)
    case.store.put_file(make_file(b"other content"), "cleanup/me")  # the key is free again


def test_uris_of_another_store_are_refused(case):
    with pytest.raises(InputError, match="not an object of the store"):
        case.store.stat("s3://some-other-bucket/x")
    assert case.store.key_for(case.store.uri_for("a/b")) == "a/b"


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs", "a\\b", "a//b", "a/", ".", "",
                                 "a/./b", "a\nb", ".mlreg-tmp-x", "d/.mlreg-tmp/x", "q?x", "h#x"])
def test_invalid_keys_are_rejected_everywhere(case, make_file, tmp_path, key):
    src = make_file(b"x")
    with pytest.raises(InputError, match="key"):
        case.store.put_file(src, key)
    with pytest.raises(InputError):
        case.store.put_stream(io.BytesIO(b"x"), key)
    with pytest.raises(InputError):
        case.store.exists(key)
    with pytest.raises(InputError):
        case.store.get_file(key, tmp_path / "x", sha256="0" * 64, size=1)
    assert case.leftovers() == []


def test_put_file_reports_a_missing_source_as_input_error(case, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        case.store.put_file(tmp_path / "nope.bin", "k")
    with pytest.raises(InputError, match="not a regular file"):
        case.store.put_file(tmp_path, "k")


def test_put_file_digest_matches_sha256_file(case, make_file):
    src = make_file(size=9 * 1024 * 1024 + 7)  # more than one chunk
    obj = case.store.put_file(src, "k")
    assert (obj.sha256, obj.size) == sha256_file(src)


def test_library_prints_nothing_when_stderr_is_not_a_tty(case, make_file, tmp_path, capsys):
    obj = case.store.put_file(make_file(size=9 * 1024 * 1024), "big")  # above the threshold
    case.store.get_file(obj.uri, tmp_path / "big", sha256=obj.sha256, size=obj.size)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
