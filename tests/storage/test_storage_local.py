"""Local-store specifics: atomic publish with a hard link, fallbacks, file modes, cleanup."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat

import pytest

from mlreg.errors import RegistryError, StoreError
from mlreg.storage import LocalStore


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RacingReader(io.BytesIO):
    """Another writer publishes the same key right when our stream ends."""

    def __init__(self, data: bytes, on_eof) -> None:
        super().__init__(data)
        self._on_eof = on_eof

    def read(self, n: int = -1) -> bytes:
        chunk = super().read(n)
        if not chunk and self._on_eof:
            self._on_eof()
            self._on_eof = None
        return chunk


@pytest.mark.parametrize("same", [True, False])
def test_publish_never_clobbers_a_concurrent_writer(tmp_path, same):
    store = LocalStore(tmp_path / "store")
    ours = b"our model bytes"
    theirs = ours if same else b"their model bytes"
    final = store.path_for("m/1/model.bin")

    def other_writer() -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        final.write_bytes(theirs)

    reader = RacingReader(ours, other_writer)
    if same:
        assert store.put_stream(reader, "m/1/model.bin").sha256 == _sha(ours)
    else:
        with pytest.raises(RegistryError, match=_sha(theirs)):
            store.put_stream(reader, "m/1/model.bin")
    assert final.read_bytes() == theirs
    assert sorted(p.name for p in final.parent.iterdir()) == ["model.bin"]


def test_file_systems_without_hard_links_fall_back_to_replace(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = LocalStore(tmp_path / "store")
    obj = store.put_stream(io.BytesIO(b"abc"), "k/v")
    assert store.path_for("k/v").read_bytes() == b"abc" and obj.size == 3
    assert store.put_stream(io.BytesIO(b"abc"), "k/v") == obj
    with pytest.raises(RegistryError):
        store.put_stream(io.BytesIO(b"abd"), "k/v")
    assert sorted(p.name for p in store.path_for("k/v").parent.iterdir()) == ["v"]


def test_stored_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = LocalStore(tmp_path / "store")
        obj = store.put_stream(io.BytesIO(b"abc"), "k")
        assert stat.S_IMODE(store.path_for("k").stat().st_mode) == 0o644
        store.get_file(obj.uri, tmp_path / "copy", sha256=obj.sha256, size=3)
        assert stat.S_IMODE((tmp_path / "copy").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_failed_upload_removes_the_folders_it_created(tmp_path, failing_reader):
    store = LocalStore(tmp_path / "store")
    (tmp_path / "store").mkdir()
    with pytest.raises(ValueError):
        store.put_stream(failing_reader(b"x" * 1000, ValueError("bad")), "a/b/c/d.bin")
    assert list((tmp_path / "store").iterdir()) == []


def test_a_key_taken_by_a_folder_is_a_store_error(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put_stream(io.BytesIO(b"x"), "a/b")
    with pytest.raises(StoreError, match="a: upload failed"):
        store.put_stream(io.BytesIO(b"y"), "a")
    assert not store.exists("a")


def test_unwritable_store_is_a_store_error(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "store"))

    monkeypatch.setattr("mlreg.storage.local.tempfile.mkstemp", denied)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(StoreError) as err:
        store.put_stream(io.BytesIO(b"x"), "k")
    assert str(err.value) == f"file://{tmp_path}/store/k: upload failed: permission denied"
    assert err.value.exit_code == 3


def test_unreadable_destination_folder_is_reported_with_the_destination(tmp_path):
    store = LocalStore(tmp_path / "store")
    obj = store.put_stream(io.BytesIO(b"x"), "k")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match=f"{blocker}/out: write failed"):
        store.get_file(obj.uri, blocker / "out", sha256=obj.sha256, size=1)


def test_uri_forms(tmp_path):
    store = LocalStore(tmp_path / "s")
    assert store.uri_for("a/b") == f"file://{tmp_path}/s/a/b"
    assert store.key_for(f"file://{tmp_path}/s/a/b") == "a/b"
    assert store.path_for("a/b") == tmp_path / "s" / "a" / "b"
