"""The local-directory store: the registry's embedded default (``artifact_store: .mlreg-store``).

Atomicity: bytes are streamed into a temporary file *in the destination folder* (same file
system, so the final step is a metadata operation), fsynced, then published with
``os.link(tmp, final)``. A hard link fails with EEXIST instead of replacing, so publishing
can never clobber an object another process published meanwhile; ``os.replace`` would. On
file systems without hard links (some network/FUSE mounts) it falls back to an existence
check plus ``os.replace``, with a tiny race window. The temporary file is always removed, and
folders created for a failed upload are removed again when empty.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mlreg.storage.base import ArtifactStore, ObjectStat, StoredObject, file_mode
from mlreg.storage.hashing import FileDigest, copy_hashing
from mlreg.storage.keys import TEMP_PREFIX
from mlreg.storage.progress import ProgressArg, make_progress

__all__ = ["LocalStore"]

_NO_HARDLINK_ERRNOS = {
    errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS, errno.EXDEV,
}


class LocalStore(ArtifactStore):
    """Objects are plain files at ``<root>/<key>``.

    URIs are ``file://<absolute root>/<key>``, unless ``uri_root`` says otherwise: a store
    opened from a path relative to the registry root (the default ``.mlreg-store``, or the
    example registry's ``examples/store``) records URIs relative to the registry root, such as
    ``examples/store/fraud/127/model.txt``, so records stay valid in every clone. Both forms
    (and absolute paths) are accepted wherever a URI is.
    """

    scheme = "file"

    def __init__(
        self, root: str | os.PathLike[str], *, retries: int = 2, fsync: bool = True,
        uri_root: str | None = None,
    ) -> None:
        self.root = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
        self.fsync = fsync
        self._file_uri_root = "file://" + self.root.as_posix()
        super().__init__(uri_root or self._file_uri_root, retries=retries)

    def _uri_prefixes(self) -> list[str]:
        prefixes = [self.root_uri + "/", self._file_uri_root + "/", self.root.as_posix() + "/"]
        return list(dict.fromkeys(prefixes))

    def path_for(self, uri_or_key: str) -> Path:
        """The file that holds an object (it may not exist)."""
        return self._path(self.key_for(uri_or_key))

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _stat(self, key: str) -> ObjectStat | None:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return ObjectStat(size=st.st_size)

    @contextlib.contextmanager
    def _open_read(self, key: str) -> Iterator[BinaryIO]:
        with open(self._path(key), "rb") as f:
            yield f

    def _delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def _put_new_stream(
        self, key: str, src: BinaryIO, size: int | None, progress: ProgressArg,
    ) -> StoredObject:
        final = self._path(key)
        created = _make_parents(final.parent)
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + "-", dir=final.parent)
            with os.fdopen(fd, "wb") as out:
                reporter = make_progress(progress, f"uploading {final.name}", size)
                try:
                    digest = copy_hashing(src, out.write, reporter)
                finally:
                    reporter.close()
                out.flush()
                if self.fsync:
                    os.fsync(out.fileno())
            os.chmod(tmp, file_mode())
            result = self._publish(key, tmp, final, digest)
        except BaseException:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            _remove_empty(created)
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        return result

    def _publish(self, key: str, tmp: str, final: Path, digest: FileDigest) -> StoredObject:
        try:
            os.link(tmp, final)
        except FileExistsError:
            return self._taken(key, digest)
        except OSError as e:
            if e.errno not in _NO_HARDLINK_ERRNOS:
                raise
            if os.path.lexists(final):
                return self._taken(key, digest)
            os.replace(tmp, final)
        if self.fsync:
            _fsync_dir(final.parent)
        return StoredObject(self.uri_for(key), digest.sha256, digest.size)

    def _taken(self, key: str, digest: FileDigest) -> StoredObject:
        existing = self._stat(key)
        if existing is None:  # a folder, or a file that vanished again
            raise IsADirectoryError(errno.EISDIR, "the key is taken by a folder", str(self._path(key)))
        return self._reconcile(key, existing, digest)


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (deepest last)."""
    missing: list[Path] = []
    cur = folder
    while not cur.exists():
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _remove_empty(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def _fsync_dir(folder: Path) -> None:
    """Persist the new directory entry (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
