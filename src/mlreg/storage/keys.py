"""Object keys: the one grammar every backend accepts.

Keys are chosen by the capture code (``models/<model>/<version>/<filename>``) but end up as S3
object names *and* as local file paths, so the grammar is the intersection of what is safe for
both: ``/``-separated segments, no ``..``/``.``/empty segments (no escaping the store root on
disk, no aliasing of one object under two keys), no backslashes (a path separator on Windows),
no control characters, and no ``?``/``#`` (they would be parsed as URI query/fragment once the
key is rendered as ``s3://bucket/key``). Segments starting with ``.mlreg-tmp`` are reserved for
the stores' own temporary files.
"""

from __future__ import annotations

from mlreg.errors import InputError

__all__ = ["MAX_KEY_BYTES", "TEMP_PREFIX", "validate_key"]

#: S3's limit on key length; applied everywhere so a key valid locally stays valid on S3.
MAX_KEY_BYTES = 1024

#: Names of in-flight temporary files/keys start with this; keys may not use it.
TEMP_PREFIX = ".mlreg-tmp"

_FORBIDDEN_CHARS = {"\\": "a backslash", "?": "'?'", "#": "'#'"}


def validate_key(key: object) -> str:
    """Return ``key`` unchanged when it is a valid object key, else raise InputError.

    Validation happens once, at the public API, so backends can map keys to paths or object
    names without re-checking.
    """
    if not isinstance(key, str):
        raise InputError(f"object key must be a string, got {type(key).__name__}")
    if not key:
        raise InputError("object key is empty")
    shown = repr(key) if len(key) <= 200 else repr(key[:200] + "...")

    def bad(problem: str) -> InputError:
        return InputError(f"invalid object key {shown}: {problem}")

    if key.startswith("/"):
        raise bad("must be relative (no leading '/')")
    if key.endswith("/"):
        raise bad("must name an object, not a folder (no trailing '/')")
    for char, name in _FORBIDDEN_CHARS.items():
        if char in key:
            raise bad(f"contains {name}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise bad("contains a control character")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise bad(f"longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise bad(f"contains an empty, '.' or '..' segment ({segment!r})")
        if segment.startswith(TEMP_PREFIX):
            raise bad(f"segments starting with {TEMP_PREFIX!r} are reserved")
    return key
