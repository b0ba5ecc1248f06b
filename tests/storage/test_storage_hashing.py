"""Streamed hashing helpers and the folder digest used for data snapshot identity."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from mlreg.errors import InputError
from mlreg.storage import (
    FileDigest,
    ManifestEntry,
    digest_tree,
    is_sha256,
    manifest_bytes,
    sha256_file,
    tree_manifest,
    validate_key,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sha256_file_streams_large_files(tmp_path):
    data = os.urandom(9 * 1024 * 1024 + 3)  # crosses the 8 MiB chunk boundary
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == FileDigest(_sha(data), len(data))


def test_sha256_file_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        sha256_file(tmp_path / "missing")
    with pytest.raises(InputError, match="is a directory"):
        sha256_file(tmp_path)


def test_sha256_file_progress_callback(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 100)
    seen = []
    sha256_file(tmp_path / "f", progress=lambda d, t: seen.append((d, t)))
    assert seen == [(100, 100)]


def _tree(root, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_digest_tree_depends_on_paths_and_bytes_only(tmp_path):
    files = {"b.csv": b"2", "a/x.parquet": b"11", "a/y.parquet": b"333", "z": b""}
    _tree(tmp_path / "one", files)
    _tree(tmp_path / "two", dict(reversed(list(files.items()))))  # other creation order
    os.utime(tmp_path / "two" / "b.csv", (1, 1))
    one, two = digest_tree(tmp_path / "one"), digest_tree(tmp_path / "two")
    assert one == two
    assert (one.total_size, one.file_count) == (6, 4)

    (tmp_path / "two" / "b.csv").write_bytes(b"3")  # one byte differs
    assert digest_tree(tmp_path / "two").digest != one.digest
    (tmp_path / "two" / "b.csv").write_bytes(b"2")
    (tmp_path / "two" / "b.csv").rename(tmp_path / "two" / "c.csv")  # renamed
    assert digest_tree(tmp_path / "two").digest != one.digest


def test_manifest_format_is_canonical_and_documented(tmp_path):
    _tree(tmp_path, {"b": b"bb", "a/c": b"c"})
    entries = tree_manifest(tmp_path)
    assert entries == [ManifestEntry("a/c", 1, _sha(b"c")), ManifestEntry("b", 2, _sha(b"bb"))]
    expected = f'["a/c",1,"{_sha(b"c")}"]\n["b",2,"{_sha(b"bb")}"]\n'.encode()
    assert manifest_bytes(entries) == expected
    assert digest_tree(tmp_path).digest == _sha(expected)


def test_odd_file_names_stay_unambiguous(tmp_path):
    _tree(tmp_path, {"tab\tname": b"1", "new\nline": b"2", "ünï cödé": b"3"})
    lines = manifest_bytes(tree_manifest(tmp_path)).decode().splitlines()
    assert sorted(json.loads(line)[0] for line in lines) == ["new\nline", "tab\tname", "ünï cödé"]


def test_empty_folder_has_a_digest(tmp_path):
    assert digest_tree(tmp_path) == (_sha(b""), 0, 0)


def test_symlinks(tmp_path):
    data = tmp_path / "data"
    _tree(data, {"real.csv": b"rows"})
    (data / "alias.csv").symlink_to(data / "real.csv")
    assert [(e.path, e.size) for e in tree_manifest(data)] == [("alias.csv", 4), ("real.csv", 4)]
    _tree(tmp_path / "elsewhere", {"f": b"x"})
    (data / "linked-dir").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="symlinked folders are not supported"):
        digest_tree(data)


def test_digest_tree_needs_a_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        digest_tree(tmp_path / "missing")


def test_is_sha256():
    assert is_sha256("a" * 64) and not is_sha256("A" * 64) and not is_sha256("a" * 63)
    assert not is_sha256(None)


@pytest.mark.parametrize("key", ["a", "models/churn/1.0.0/model.pkl", "a b/ü.bin", "x/.hidden"])
def test_valid_keys(key):
    assert validate_key(key) == key


@pytest.mark.parametrize("key, problem", [
    ("", "empty"), ("/a", "leading"), ("a/", "trailing"), ("a\\b", "backslash"),
    ("a/../b", "'..'"), ("a//b", "empty"), ("a/./b", "'.'"), ("a\x00b", "control"),
    ("a\x7fb", "control"), ("x" * 1025, "longer than 1024"), (".mlreg-tmp-1", "reserved"),
    ("a?b", "'?'"), ("a#b", "'#'"), (5, "must be a string"),
])
def test_invalid_keys(key, problem):
    with pytest.raises(InputError, match="key") as err:
        validate_key(key)
    assert problem in str(err.value)
