"""Streamed sha256 of files, folders and in-flight transfers.

Everything here reads in fixed-size chunks: a multi-GB model or data folder is never held in
memory. ``digest_tree`` gives a data snapshot one identity that does not depend on file
order, mtimes or the machine it was computed on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple

from mlreg.errors import InputError
from mlreg.storage.failures import SideError
from mlreg.storage.progress import ProgressArg, ProgressReporter, make_progress

__all__ = [
    "CHUNK_SIZE",
    "FileDigest",
    "TreeDigest",
    "ManifestEntry",
    "sha256_file",
    "hash_local_file",
    "tree_manifest",
    "manifest_bytes",
    "digest_tree",
    "copy_hashing",
    "is_sha256",
]

#: Read/write unit for every streamed transfer: large enough to amortise syscalls and hashing
#: call overhead, small enough that peak memory stays a few chunks, not a file.
CHUNK_SIZE = 8 * 1024 * 1024


class FileDigest(NamedTuple):
    """sha256 (lowercase hex) and size in bytes of one stream of bytes."""

    sha256: str
    size: int


class TreeDigest(NamedTuple):
    """Identity of a folder: sha256 of its manifest, total bytes, number of files."""

    digest: str
    total_size: int
    file_count: int


class ManifestEntry(NamedTuple):
    """One file of a folder manifest; ``path`` is relative and ``/``-separated."""

    path: str
    size: int
    sha256: str


def is_sha256(value: object) -> bool:
    """True for a 64-character lowercase hex string (the only digest form we record)."""
    return (
        isinstance(value, str) and len(value) == 64
        and all(c in "0123456789abcdef" for c in value)
    )


def copy_hashing(
    src: BinaryIO, write: Callable[[bytes], object] | None, progress: ProgressReporter,
    *, chunk_size: int = CHUNK_SIZE,
) -> FileDigest:
    """Copy ``src`` to ``write`` chunk by chunk, hashing on the way; return what was copied.

    ``write=None`` only hashes. The digest describes exactly the bytes that were passed on,
    so a source that changes mid-copy is detected by comparing against an earlier digest.
    """
    h = hashlib.sha256()
    size = 0
    while True:
        chunk = src.read(chunk_size)
        if not chunk:
            break
        h.update(chunk)
        if write is not None:
            write(chunk)
        size += len(chunk)
        progress.update(len(chunk))
    return FileDigest(h.hexdigest(), size)


def sha256_file(path: str | os.PathLike[str], *, progress: ProgressArg = False) -> FileDigest:
    """Streamed sha256 and size of a local file.

    Raises InputError when the file cannot be read: the path is caller input, not the store.
    """
    try:
        return hash_local_file(path, progress=progress)
    except SideError as e:  # the progress callback raised
        raise e.original from None


def hash_local_file(path: str | os.PathLike[str], *, progress: ProgressArg = False) -> FileDigest:
    """:func:`sha256_file` for the stores' internal use: callback failures stay wrapped."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            reporter = make_progress(progress, f"hashing {p.name}", total)
            try:
                return copy_hashing(f, None, reporter)
            finally:
                reporter.close()
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, not a file") from None
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read: {e.strerror or e}") from None


def tree_manifest(folder: str | os.PathLike[str]) -> list[ManifestEntry]:
    """Every regular file under ``folder`` with its size and sha256, sorted by relative path.

    Symlinks to files are hashed by their content (the data is what matters). Symlinks to
    folders are refused rather than followed or skipped: following risks cycles, skipping
    would silently leave data out of the snapshot's identity.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    entries: list[ManifestEntry] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise_walk_error):
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                link = Path(dirpath, name)
                raise InputError(
                    f"{link}: symlinked folders are not supported in a data snapshot "
                    "(copy the data or point at the target folder)"
                )
        for name in filenames:
            full = Path(dirpath, name)
            if not full.is_file():  # sockets, fifos, dangling links
                raise InputError(f"{full}: not a regular file")
            rel = full.relative_to(root).as_posix()
            digest = sha256_file(full)
            entries.append(ManifestEntry(rel, digest.size, digest.sha256))
    entries.sort(key=lambda e: e.path)
    return entries


def _raise_walk_error(err: OSError) -> None:
    raise InputError(f"{err.filename}: cannot read folder: {err.strerror or err}")


def manifest_bytes(entries: list[ManifestEntry]) -> bytes:
    """The canonical manifest encoding that :func:`digest_tree` hashes.

    One JSON array ``["<path>",<size>,"<sha256>"]`` per line, sorted by path (code point
    order, i.e. UTF-8 byte order), ``\\n``-terminated, UTF-8. JSON makes any file name
    (spaces, tabs, newlines) unambiguous; the format is stable and easy to recompute.
    """
    lines = [
        json.dumps([e.path, e.size, e.sha256], ensure_ascii=False, separators=(",", ":"))
        for e in sorted(entries, key=lambda e: e.path)
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def digest_tree(folder: str | os.PathLike[str]) -> TreeDigest:
    """Identity of a folder's content: ``(manifest sha256, total bytes, file count)``.

    Depends only on relative paths and file bytes (not mtimes, permissions or walk order),
    so the same data gives the same digest on any machine.
    """
    entries = tree_manifest(folder)
    digest = hashlib.sha256(manifest_bytes(entries)).hexdigest()
    return TreeDigest(digest, sum(e.size for e in entries), len(entries))
