"""Validate a record exactly as it will be read back, and write it once, atomically.

The text is produced by :func:`mlreg.records.dump_record`, loaded back through the strict
loader and validated against the schema *before* anything is written: what is on disk is
always what was validated. Writing goes to a temporary file in the target folder which is then
hard-linked to its final name, so a reader never sees half a record and an existing record is
never replaced (the link fails with EEXIST); file systems without hard links fall back to
``open(..., "x")``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile

from mlreg.errors import RegistryError, SchemaError, Violation
from mlreg.records import check_document, dump_record
from mlreg.yamlio import load_yaml_text

__all__ = ["render_record", "write_new_file", "write_record"]


def render_record(record: dict, label: str, kind: str = "record") -> str:
    """The YAML text of ``record``; SchemaError naming every bad field when it is invalid."""
    text = dump_record(record)
    loaded = load_yaml_text(text.encode("utf-8"), label)
    check_document(loaded, kind)
    if loaded.data != record:
        bad = sorted(k for k in record if loaded.data.get(k) != record[k])
        raise SchemaError(label, kind, [Violation(f"$.{k}", "does not read back as written "
                                                  "(a value YAML cannot represent exactly)")
                                        for k in bad])
    return text


def write_new_file(path: str, data: bytes) -> None:
    """Create ``path`` with ``data`` atomically; RegistryError if it already exists."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mlreg-tmp-", suffix=".yaml", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise RegistryError(f"{path} already exists; records are immutable and are never "
                                "overwritten") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                                 errno.EMLINK, errno.ENOSYS):
                raise
            try:
                with open(path, "xb") as out:
                    out.write(data)
            except FileExistsError:
                raise RegistryError(f"{path} already exists; records are immutable") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_record(root: str, record: dict) -> str:
    """Validate ``record`` and write it to ``models/<model>/<version>.yaml``; return that path."""
    rel = f"models/{record.get('model')}/{record.get('version')}.yaml"
    text = render_record(record, rel)
    path = os.path.join(root, *rel.split("/"))
    write_new_file(path, text.encode("utf-8"))
    return path
