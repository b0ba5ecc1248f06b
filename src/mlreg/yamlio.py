"""Strict YAML: load registry files so that nothing means something other than it says.

Every registry file is read through :func:`load_yaml`, which rejects, with file, line and a fix:

- files over a size cap, non-UTF-8 or binary bytes;
- duplicate keys (PyYAML silently keeps the last one);
- anchors and aliases (records never need them and they enable size blow-ups);
- YAML 1.1 coercions that change meaning: ``yes``/``no``/``on``/``off`` read as booleans,
  unquoted dates and times, octal/sexagesimal/hex integers, non-string mapping keys.

Plain scalars that YAML turned into numbers are remembered with their source text and line
(:attr:`Loaded.coerced`), so a schema error on ``version: 1.10`` can say "read as the number 1.1;
quote it" instead of "1.1 is not of type string".

libyaml's C parser is used when present (about 8x faster than the pure Python one).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from mlreg.errors import LoadError

__all__ = ["MAX_BYTES", "Loaded", "load_yaml", "load_yaml_text", "dump_yaml", "C_LOADER"]

MAX_BYTES = 2 * 1024 * 1024

try:
    _BaseLoader: type = yaml.CSafeLoader
    _BaseDumper: type = yaml.CSafeDumper
    C_LOADER = True
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _BaseLoader = yaml.SafeLoader
    _BaseDumper = yaml.SafeDumper
    C_LOADER = False

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_PLAIN_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")


class Loaded:
    """A loaded document and what the loader noticed about it.

    ``lines`` (JSON path -> 1-based line) and ``coerced`` (JSON path -> (source text, kind) of
    plain scalars YAML turned into numbers) are computed on first use: validating 10,000 clean
    records never pays for them.
    """

    __slots__ = ("data", "path", "_node", "_lines", "_coerced_raw", "_coerced")

    def __init__(self, data: Any, path: str, node: yaml.Node | None = None,
                 coerced: list[tuple[tuple, str, str]] | None = None) -> None:
        self.data = data
        self.path = path
        self._node = node
        self._lines: dict[str, int] | None = None
        self._coerced_raw = coerced or []
        self._coerced: dict[str, tuple[str, str]] | None = None

    @property
    def coerced(self) -> dict[str, tuple[str, str]]:
        if self._coerced is None:
            self._coerced = {_json_path(p): (text, kind) for p, text, kind in self._coerced_raw}
        return self._coerced

    @property
    def lines(self) -> dict[str, int]:
        if self._lines is None:
            self._lines = {}
            if self._node is not None:
                stack: list[tuple[yaml.Node, str]] = [(self._node, "$")]
                while stack:
                    n, p = stack.pop()
                    self._lines.setdefault(p, n.start_mark.line + 1)
                    if isinstance(n, yaml.MappingNode):
                        for k, v in n.value:
                            cp = _child(p, k.value)
                            self._lines[cp] = k.start_mark.line + 1
                            stack.append((v, cp))
                    elif isinstance(n, yaml.SequenceNode):
                        stack.extend((item, f"{p}[{i}]") for i, item in enumerate(n.value))
        return self._lines

    def line_of(self, json_path: str) -> int | None:
        """The line of ``json_path``, or of its nearest ancestor the loader saw."""
        lines = self.lines
        p = json_path
        while p:
            if p in lines:
                return lines[p]
            cut = max(p.rfind("."), p.rfind("["))
            if cut <= 0:
                break
            p = p[:cut]
        return lines.get("$")


_RESOLVE_CACHE: dict[str, str] = {}


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        # The C composer asks the (pure Python, regex-based) resolver for every scalar; keys and
        # many values repeat across records, so remember plain-scalar answers.
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return _STR_TAG
            tag = _RESOLVE_CACHE.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(_RESOLVE_CACHE) > 200_000:
                    _RESOLVE_CACHE.clear()
                _RESOLVE_CACHE[value] = tag
            return tag
        if kind is yaml.MappingNode:
            return "tag:yaml.org,2002:map"
        return "tag:yaml.org,2002:seq"

    # Path resolvers are a PyYAML feature we never register; skip the per-node bookkeeping.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if isinstance(key, str) and _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def _json_path(parts: tuple) -> str:
    out = "$"
    for part in parts:
        out = _child(out, part)
    return out


def _field(parts: tuple) -> str | None:
    return _json_path(parts)[2:] or None


_MAP = yaml.MappingNode
_SEQ = yaml.SequenceNode


def _build(n: yaml.Node, path: tuple, where: str, seen: set[int],
           coerced: list[tuple[tuple, str, str]]) -> Any:
    """Check and construct in one pass over the node graph (PyYAML's constructor is slower and
    cannot see what we check): aliases, tags, keys, duplicates, meaning-changing scalars."""
    cls = n.__class__
    if cls is yaml.ScalarNode:
        return _scalar(n, path, where, coerced)
    if id(n) in seen:
        raise LoadError(where, "uses an alias (*name)", line=n.start_mark.line + 1,
                        fix="write the value out in full; anchors and aliases are not allowed")
    seen.add(id(n))
    if cls is _MAP:
        if n.tag != "tag:yaml.org,2002:map":
            _bad_tag(n, where)
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in n.value:
            if key_node.tag != _STR_TAG or key_node.__class__ is not yaml.ScalarNode:
                kline = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise LoadError(where, "uses a merge key (<<)", line=kline,
                                    fix="write the keys out in full")
                text = getattr(key_node, "value", "?")
                raise LoadError(
                    where, f"the key {text!r} is not a string", line=kline,
                    fix=f"quote the key: '{text}'" if isinstance(text, str) else
                    "use a plain string key",
                )
            k = key_node.value
            if k in out:
                raise LoadError(where, f"duplicate key {k!r} (first on line {first_line[k]})",
                                line=key_node.start_mark.line + 1, field=_field(path + (k,)),
                                fix="keep one of the two entries")
            first_line[k] = key_node.start_mark.line + 1
            out[k] = _build(value_node, path + (k,), where, seen, coerced)
        return out
    if cls is _SEQ:
        if n.tag != "tag:yaml.org,2002:seq":
            _bad_tag(n, where)
        return [_build(item, path + (i,), where, seen, coerced) for i, item in enumerate(n.value)]
    _bad_tag(n, where)  # pragma: no cover - no other node kinds exist
    return None


def _bad_tag(n: yaml.Node, where: str) -> None:
    raise LoadError(where, f"uses the tag {n.tag!r}", line=n.start_mark.line + 1,
                    fix="remove the explicit tag; only plain YAML values are allowed")


def _scalar(n: yaml.ScalarNode, path: tuple, where: str,
            coerced: list[tuple[tuple, str, str]]) -> Any:
    tag = n.tag
    text = n.value
    if n.style not in (None, ""):  # quoted or block scalar: exactly the string written
        if tag != _STR_TAG:
            _bad_tag(n, where)
        return text
    if tag == _STR_TAG:
        return text
    line = n.start_mark.line + 1
    if tag == _INT_TAG:
        if not _PLAIN_INT.match(text):
            raise LoadError(where, f"{text!r} is read by YAML 1.1 as an integer in octal, hex, "
                            "base-60 or underscored notation", line=line, field=_field(path),
                            fix=f"quote it ('{text}') or write a plain decimal number")
        coerced.append((path, text, "integer"))
        return int(text)
    if tag == _FLOAT_TAG:
        low = text.lower()
        if ":" in text or "_" in text:
            raise LoadError(where, f"{text!r} is read by YAML 1.1 as a sexagesimal or "
                            "underscored number", line=line, field=_field(path),
                            fix=f"quote it ('{text}') or write a plain decimal number")
        if low.lstrip("+-") in (".inf", ".nan"):
            raise LoadError(where, f"{text!r} is not a finite number", line=line,
                            field=_field(path), fix="write a finite number, or null for unknown")
        coerced.append((path, text, "number"))
        return float(text)
    if tag == _BOOL_TAG:
        if text.lower() not in ("true", "false"):
            raise LoadError(where, f"{text!r} is read by YAML as the boolean "
                            f"{text.lower() in ('yes', 'y', 'on')}", line=line, field=_field(path),
                            fix=f"write true/false for a boolean, or quote it ('{text}')")
        return text.lower() == "true"
    if tag == _NULL_TAG:
        if text.lower() not in ("", "~", "null"):
            raise LoadError(where, f"{text!r} is read by YAML as null", line=line,
                            field=_field(path), fix="write null, or quote the string")
        return None
    if tag == _TIMESTAMP_TAG:
        raise LoadError(where, f"unquoted date/time {text!r} is read by YAML as a date object",
                        line=line, field=_field(path), fix=f"quote it: '{text}'")
    _bad_tag(n, where)
    return None


def _scan_for_anchors(text: str, where: str) -> None:
    """Anchors are invisible in the node graph; find them with the tokenizer.

    Only run when the text contains '&' or '*' at all, so the common case stays on the C path.
    """
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
            kind = "an anchor (&)" if isinstance(token, yaml.AnchorToken) else "an alias (*)"
            raise LoadError(where, f"uses {kind} {token.value!r}",
                            line=token.start_mark.line + 1,
                            fix="write the value out in full; anchors and aliases are not allowed")


def load_yaml_text(data: bytes | str, path: str = "<string>", *,
                   max_bytes: int = MAX_BYTES) -> Loaded:
    """Load one strict YAML document from bytes. See the module docstring for what is refused."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise LoadError(path, f"is {len(raw):,} bytes, over the {max_bytes:,}-byte cap",
                        fix="registry files hold metadata only; keep large content in the "
                        "artifact store and reference it by URI")
    if b"\x00" in raw:
        raise LoadError(path, "is a binary file (contains NUL bytes)",
                        fix="registry files must be UTF-8 YAML text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LoadError(path, f"is not valid UTF-8 (byte 0x{raw[exc.start]:02x})", line=line,
                        fix="save the file as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "&" in text or "*" in text:
        try:
            _scan_for_anchors(text, path)
        except yaml.YAMLError:
            pass  # reported with a position by the parse below
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise LoadError(path, "is empty", fix="write a YAML mapping with a 'schema:' key")
        coerced: list[tuple[tuple, str, str]] = []
        data = _build(node, (), path, set(), coerced)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "cannot be parsed"
        raise LoadError(path, f"is not valid YAML: {problem}", line=line,
                        fix="check indentation and quoting near that line") from None
    except yaml.YAMLError as exc:
        raise LoadError(path, f"is not valid YAML: {exc}".splitlines()[0]) from None
    except RecursionError:
        raise LoadError(path, "is nested too deeply", fix="registry files are shallow "
                        "mappings; flatten the structure") from None
    finally:
        loader.dispose()
    return Loaded(data, path, node, coerced)


def load_yaml(path: str, *, max_bytes: int = MAX_BYTES) -> Loaded:
    """Read and load a YAML file from disk, refusing oversize files before reading them."""
    import os

    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise LoadError(path, f"is {size:,} bytes, over the {max_bytes:,}-byte cap",
                            fix="registry files hold metadata only; keep large content in the "
                            "artifact store")
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise LoadError(path, "does not exist") from None
    except IsADirectoryError:
        raise LoadError(path, "is a directory, not a file") from None
    except PermissionError:
        raise LoadError(path, "cannot be read (permission denied)") from None
    return load_yaml_text(raw, path, max_bytes=max_bytes)


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """Dump plain data as block-style YAML that :func:`load_yaml_text` reads back identically.

    Key order is kept; strings that YAML would coerce ('1.10', 'yes', dates) are quoted by
    PyYAML's representer; no anchors are ever written.
    """
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)
