"""Reading deployment manifests quickly, for history over thousands of manifest versions.

``production.yaml`` is written by people and by ``mlreg promote`` in one plain block layout, one
block per service. :class:`ManifestReader` splits a manifest version into its service blocks
(two regular-expression scans) and parses only the blocks it has not seen before, with a small
line parser; a promotion changes one block, so 2,000 versions of a 100-service manifest cost
2,000 small block parses instead of 2,000 full YAML parses (~30x less work). Anything outside the
plain layout (flow style, anchors, block scalars, tags, odd quoting, duplicate keys) goes to the
strict YAML loader, so both paths give the same data; ``tests/history`` checks that they agree.

:func:`services_of` turns the data into ``{service: ServiceState}`` with the light checks a
history needs; a manifest that does not parse or has the wrong shape raises InputError, which
the timeline records as an event instead of stopping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlreg.errors import InputError
from mlreg.yamlio import load_yaml_text

__all__ = ["ServiceState", "ManifestReader", "parse_manifest", "services_of"]

_KEY = re.compile(r"^( *)([A-Za-z0-9_.-]+):(?: +(.*))?$")
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_PLAIN_OK = re.compile(r"^[A-Za-z0-9_./@+-][^#]*$")


@dataclass(frozen=True)
class ServiceState:
    """One service's entry in a manifest version."""

    model: str
    stable: str
    canary: str | None = None
    canary_percent: float | None = None
    surface: str | None = None
    target: str | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "stable": self.stable, "canary": self.canary,
                "canary_percent": self.canary_percent, "surface": self.surface,
                "target": self.target}


class _Unsupported(Exception):
    pass


def _scalar(text: str) -> Any:
    text = text.strip()
    if " #" in text:
        if text[0] in "'\"":
            end = text.find(text[0], 1)
            while text[0] == "'" and end != -1 and text[end + 1: end + 2] == "'":
                end = text.find("'", end + 2)
            if end == -1 or text[end + 1:].strip() and not text[end + 1:].strip().startswith("#"):
                raise _Unsupported
            text = text[: end + 1]
        else:
            text = text.split(" #", 1)[0].rstrip()
    if not text or text in ("~", "null", "Null", "NULL"):
        return None
    if text[0] == "'":
        if len(text) < 2 or text[-1] != "'" or "'" in text[1:-1].replace("''", ""):
            raise _Unsupported
        return text[1:-1].replace("''", "'")
    if text[0] == '"':
        if len(text) < 2 or text[-1] != '"' or "\\" in text or '"' in text[1:-1]:
            raise _Unsupported
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text) and any(c.isdigit() for c in text):
        return float(text)
    if not _PLAIN_OK.match(text) or ": " in text or text.endswith(":") or text.lower() in (
            "yes", "no", "on", "off", "y", "n", ".inf", ".nan") or re.match(r"^\d", text):
        # Dates, sexagesimal numbers and YAML 1.1 booleans: the strict loader explains them.
        raise _Unsupported
    return text


def _fast(text: str) -> Any:
    root: dict = {}
    stack: list[tuple[int, dict]] = [(0, root)]
    pending: tuple[int, dict, str] | None = None  # a key whose nested mapping has not started
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise _Unsupported
        m = _KEY.match(line.rstrip())
        if not m:
            raise _Unsupported
        indent = len(m.group(1))
        key, rest = m.group(2), m.group(3)
        opened = False
        if pending is not None:
            pindent, pparent, pkey = pending
            if indent > pindent:
                child: dict = {}
                pparent[pkey] = child
                stack.append((indent, child))
                opened = True
            pending = None
        if not opened:
            while len(stack) > 1 and indent < stack[-1][0]:
                stack.pop()
            if indent != stack[-1][0] and not (len(stack) == 1 and indent == 0):
                raise _Unsupported
        parent = stack[-1][1]
        if key in parent:
            raise _Unsupported  # duplicate key: the strict loader reports it with its line
        if rest is None or rest.strip() == "" or rest.lstrip().startswith("#"):
            pending = (indent, parent, key)
            parent[key] = None
        else:
            parent[key] = _scalar(rest)
    if pending is not None:
        pending[1][pending[2]] = None
    return root


def parse_manifest(raw: bytes, where: str = "production.yaml") -> Any:
    """The data of a manifest version: the fast path for the plain block layout, else the
    strict loader (LoadError for anything it refuses)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return load_yaml_text(raw, where).data  # raises LoadError with the position
    if text.startswith("\ufeff") or any(c in text for c in "{}[]&*!|>\r"):
        return load_yaml_text(raw, where).data
    try:
        return _fast(text)
    except _Unsupported:
        return load_yaml_text(raw, where).data


def services_of(data: Any, where: str = "production.yaml") -> dict[str, ServiceState]:
    """``{service: ServiceState}`` from manifest data; InputError when the shape is wrong."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: not a mapping")
    services = data.get("services") or {}
    if not isinstance(services, dict):
        raise InputError(f"{where}: 'services' is not a mapping")
    out: dict[str, ServiceState] = {}
    for name, entry in services.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str) \
                or not isinstance(entry.get("stable"), str):
            raise InputError(f"{where}: service {name!r} needs a model and a stable version "
                             "(both strings)")
        canary = entry.get("canary") or {}
        if not isinstance(canary, dict):
            raise InputError(f"{where}: service {name!r}: canary is not a mapping")
        cv, cp = canary.get("version"), canary.get("percent")
        if canary and (not isinstance(cv, str) or isinstance(cp, bool)
                       or not isinstance(cp, (int, float))):
            raise InputError(f"{where}: service {name!r}: canary needs a version (string) and "
                             "a percent (number)")
        out[str(name)] = ServiceState(
            model=entry["model"], stable=entry["stable"], canary=cv if canary else None,
            canary_percent=float(cp) if canary else None,
            surface=entry.get("surface") if isinstance(entry.get("surface"), str) else None,
            target=entry.get("target") if isinstance(entry.get("target"), str) else None)
    return out


# A literal first character lets the regex engine skip ahead quickly (no MULTILINE ^ tests).
_TOPLEVEL = re.compile(r"\n[^\s#]")
_FIRST_KEY = re.compile(r"\n( +)[^\s#]")
_ODD_CHARS = "{}[]&*!|>\t\r"
_HEADERS: dict[int, re.Pattern[str]] = {}


def _odd(text: str) -> bool:
    """Anything the block parser leaves to the strict loader (each test is one C-level scan)."""
    return (text.startswith(("\ufeff", "---", "...")) or "\n---" in text or "\n..." in text
            or any(c in text for c in _ODD_CHARS))


@dataclass
class _Version:
    """What the reader keeps of the last version of one manifest, to read the next one from
    the changed region only. Offsets are into ``text`` (the file with a leading newline)."""

    text: str
    states: dict[str, ServiceState]
    texts: dict[str, str | None]
    header: re.Pattern[str]
    first: int  # offset of the newline that starts the first block
    end: int  # offset where the services section ends
    k: int  # indentation of the service names


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix: a binary search of C-level slice comparisons."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:] == b[len(b) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class ManifestReader:
    """Services of many manifest versions (see the module docstring).

    Versions of the same manifest are usually read in history order, and each differs from the
    previous one in a block or two: :meth:`read` finds the changed region (common prefix and
    suffix, by binary search), re-reads only the service blocks around it and keeps the rest.
    ``changed`` then names the services whose block text changed (None: not known, compare).
    """

    def __init__(self) -> None:
        self._blocks: dict[str, tuple[str, ServiceState]] = {}
        self._last: dict[str, _Version] = {}
        self.changed: list[str] | None = None

    def services(self, raw: bytes, where: str = "production.yaml") -> dict[str, ServiceState]:
        """``{service: ServiceState}`` of one manifest version; LoadError or InputError when it
        is not a valid manifest."""
        return self.read(raw, where)[0]

    def read(self, raw: bytes, where: str = "production.yaml"
             ) -> tuple[dict[str, ServiceState], dict[str, str | None]]:
        """The services of one manifest version and the text of each service's block (None
        when the strict loader read it): equal block texts mean an unchanged service."""
        self.changed = None
        try:
            text = "\n" + raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        last = self._last.pop(where, None)
        if text is not None:
            if last is not None:
                try:
                    return self._incremental(last, text, where)
                except _Unsupported:
                    pass
            if not _odd(text[1:]):
                try:
                    return self._by_blocks(text, where)
                except _Unsupported:
                    pass
        states = services_of(parse_manifest(raw, where), where)
        return states, dict.fromkeys(states)

    def _block(self, block: str, where: str) -> tuple[str, ServiceState]:
        hit = self._blocks.get(block)
        if hit is None:
            states = services_of(_fast("services:\n" + block), where)
            if len(states) != 1:
                raise _Unsupported
            hit = self._blocks[block] = next(iter(states.items()))
        return hit

    def _by_blocks(self, text: str, where: str
                   ) -> tuple[dict[str, ServiceState], dict[str, str | None]]:
        at = text.find("\nservices:")
        if at == -1 or text.find("\nservices:", at + 1) != -1:
            raise _Unsupported
        eol = text.find("\n", at + 1)
        eol = len(text) if eol == -1 else eol
        rest = text[at + len("\nservices:"): eol].strip()
        if rest and not rest.startswith("#"):
            raise _Unsupported  # services: {} or a value on the same line
        end_m = _TOPLEVEL.search(text, eol)
        end = end_m.start() if end_m else len(text)
        section = text[eol:end]
        outside = _fast(text[:eol] + text[end:])  # the rest must be plain YAML too
        if "services" not in outside:
            raise _Unsupported
        first = _FIRST_KEY.search(section)
        if first is None:
            if any(ln.strip() and not ln.strip().startswith("#") for ln in section.split("\n")):
                raise _Unsupported
            return {}, {}
        k = len(first.group(1))
        header = _HEADERS.get(k)
        if header is None:
            header = _HEADERS[k] = re.compile(r"\n(?= {" + str(k) + r"}[^\s#])")
        parts = header.split(section)  # [preamble, block, block, ...]: one C-level pass
        pre = parts[0]
        if pre.strip(" \n") and any(ln.strip() and not ln.strip().startswith("#")
                                     for ln in pre.split("\n")):
            raise _Unsupported
        blocks = parts[1:]
        hits = list(map(self._blocks.get, blocks))
        if None in hits:
            hits = [h if h is not None else self._block(b, where) for h, b in zip(hits, blocks,
                                                                                  strict=True)]
        states = dict(hits)  # type: ignore[arg-type]
        if len(states) != len(hits):
            raise _Unsupported  # a duplicate service: the strict loader reports it
        texts: dict[str, str | None] = dict(zip(states, blocks, strict=True))
        self._last[where] = _Version(text, states, texts, header, eol + first.start(), end, k)
        return states, texts

    def _boundary_before(self, v: _Version, text: str, pos: int) -> int:
        """The newline of the last block header that starts before ``pos`` (or the first)."""
        h = "\n" + " " * v.k
        while True:
            i = text.rfind(h, v.first, pos)
            if i <= v.first:
                return v.first
            c = text[i + len(h): i + len(h) + 1]
            if c and c not in " \n#":
                return i
            pos = i

    def _boundary_after(self, v: _Version, text: str, pos: int, end: int) -> int:
        h = "\n" + " " * v.k
        while True:
            i = text.find(h, pos, end)
            if i == -1:
                return end
            c = text[i + len(h): i + len(h) + 1]
            if c and c not in " \n#":
                return i
            pos = i + 1

    def _incremental(self, v: _Version, text: str, where: str
                     ) -> tuple[dict[str, ServiceState], dict[str, str | None]]:
        old = v.text
        if old == text:
            self._last[where] = v
            self.changed = []
            return v.states, v.texts
        p = _common_prefix(old, text)
        q = _common_suffix(old, text, min(len(old), len(text)) - p)
        delta = len(text) - len(old)
        # The change must lie inside the blocks, clear of the section's first header and end.
        if p <= v.first or len(old) - q >= v.end:
            raise _Unsupported
        # Whole blocks around the change, one block of margin on each side.
        start = self._boundary_before(v, old, self._boundary_before(v, old, p))
        stop = self._boundary_after(v, old, self._boundary_after(v, old, len(old) - q + 1,
                                                                  v.end) + 1, v.end)
        if stop < len(old) - q:
            raise _Unsupported
        region_old = old[start:stop]
        region_new = text[start:stop + delta]
        if _odd(region_new) or not region_new.startswith("\n") or _TOPLEVEL.search(region_new):
            raise _Unsupported  # odd syntax, or a new top-level key: read it all
        old_blocks = v.header.split(region_old)[1:]
        new_parts = v.header.split(region_new)
        if new_parts[0] != "":
            raise _Unsupported
        new_blocks = new_parts[1:]
        old_names = [self._blocks[b][0] for b in old_blocks]
        new_hits = [self._block(b, where) for b in new_blocks]
        if [h[0] for h in new_hits] != old_names:
            raise _Unsupported  # services added, removed or renamed: read it all (rare)
        states = dict(v.states)
        texts = dict(v.texts)
        changed = []
        for (name, state), block in zip(new_hits, new_blocks, strict=True):
            if texts[name] != block:
                changed.append(name)
                states[name] = state
                texts[name] = block
        self._last[where] = _Version(text, states, texts, v.header, v.first, v.end + delta, v.k)
        self.changed = changed
        return states, texts
