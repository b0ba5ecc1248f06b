"""Schemas and documents: load a registry file strictly, validate it, report every violation.

Four kinds of files, each with a JSON Schema (2020-12) shipped in ``mlreg/schemas`` and named by
the ``schema:`` key every file carries:

==============  =========================  ==================================
kind            schema key                 file
==============  =========================  ==================================
record          ``mlreg/record/v1``        ``models/<model>/<version>.yaml``
model           ``mlreg/model/v1``         ``models/<model>/model.yaml``
deployments     ``mlreg/deployments/v1``   ``production.yaml``
settings        ``mlreg/settings/v1``      ``mlreg.yaml``
policy          ``mlreg/policy/v1``        ``policies/*.yaml``
==============  =========================  ==================================
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from mlreg.errors import SchemaError, Violation
from mlreg.names import _name_problem, uri_problem, uri_problem_safe
from mlreg.yamlio import Loaded, dump_yaml, load_yaml_text

__all__ = [
    "KINDS",
    "schema_for",
    "schema_text",
    "violations",
    "load_document",
    "check_document",
    "dump_record",
]

KINDS: dict[str, tuple[str, str]] = {
    # kind: (schema key, file in mlreg/schemas)
    "record": ("mlreg/record/v1", "record.v1.json"),
    "model": ("mlreg/model/v1", "model.v1.json"),
    "deployments": ("mlreg/deployments/v1", "deployments.v1.json"),
    "settings": ("mlreg/settings/v1", "settings.v1.json"),
    "policy": ("mlreg/policy/v1", "policy.v1.json"),
    "online": ("mlreg/online/v1", "online.v1.json"),
    "result": ("mlreg/result/v1", "result.v1.json"),
}

_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
_VERSION_RE = re.compile(r"^[0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")


def schema_text(kind: str) -> str:
    """The JSON text of the schema for ``kind`` as shipped in the package."""
    if kind not in KINDS:
        raise KeyError(kind)
    return resources.files("mlreg.schemas").joinpath(KINDS[kind][1]).read_text("utf-8")


@cache
def schema_for(kind: str) -> dict:
    return json.loads(schema_text(kind))


@cache
def _validator(kind: str) -> Any:
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("mlreg-uri")
    def _uri(value: object) -> bool:
        return not isinstance(value, str) or uri_problem(value) is None

    cls = jsonschema.validators.validator_for(schema_for(kind))
    return cls(schema_for(kind), format_checker=checker)


@cache
def _fast_validator(kind: str) -> Any:
    """jsonschema-rs (Rust) when installed: ~25x faster; used to answer "valid?" only.

    An invalid document is re-checked by the Python validator, whose errors we know how to
    explain, so both paths give identical messages.
    """
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - optional speed-up
        return None
    try:
        return jsonschema_rs.validator_for(
            schema_for(kind), validate_formats=True,
            formats={"mlreg-uri": lambda value: uri_problem(value) is None},
        )
    except Exception:  # pragma: no cover - a schema feature it lacks: use the Python one
        return None


def _json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(p)):
            out += f".{p}"
        else:
            out += f"[{str(p)!r}]"
    return out


def _message(err: Any, path: str, loaded: Loaded | None) -> str:
    inst = err.instance
    last = err.absolute_path[-1] if err.absolute_path else None
    if err.validator == "type" and loaded is not None and path in loaded.coerced:
        text, read_as = loaded.coerced[path]
        return (f"{text} was read by YAML as the {read_as} {inst!r}; a string is required here "
                f"(fix: quote it: '{text}')")
    if err.validator == "format" and isinstance(inst, str):
        return f"{uri_problem_safe(inst)} {uri_problem(inst)}"
    if err.validator in ("pattern", "not") and isinstance(inst, str) and last in (
        "model", "name", "stable"
    ):
        return _name_problem(inst, _NAME_RE, str(last)) or err.message
    if err.validator in ("pattern", "not") and isinstance(inst, str) and (
        last in ("version", "parent") or path.endswith(".canary.version")
    ):
        return _name_problem(inst, _VERSION_RE, "version") or err.message
    if err.validator == "anyOf" and all(
        isinstance(b, dict) and set(b) == {"required"} for b in err.validator_value
    ):
        names = ", ".join(b["required"][0] for b in err.validator_value)
        if isinstance(inst, dict) and inst.get("immutable") is True:
            return (f"immutable: true needs proof of identity: one of {names} "
                    "(fix: record the identity, or set immutable: false with a reason)")
        return f"needs at least one of: {names}"
    if err.validator == "const" and last == "schema":
        return f"schema must be {err.validator_value!r}, got {inst!r}"
    if err.validator in ("additionalProperties", "unevaluatedProperties"):
        return err.message.replace("Additional properties are not allowed",
                                   "unknown field(s)").replace(
            "Unevaluated properties are not allowed", "unknown field(s)")
    if err.validator == "pattern" and isinstance(inst, str):
        return f"{inst!r} does not have the expected form ({err.validator_value})"
    return err.message


def violations(data: Any, kind: str, loaded: Loaded | None = None) -> list[Violation]:
    """Every schema violation of ``data`` against the ``kind`` schema, sorted by file position."""
    fast = _fast_validator(kind)
    if fast is not None and fast.is_valid(data):
        return []
    out = []
    for err in _validator(kind).iter_errors(data):
        # For anyOf/oneOf/allOf, report the most specific underlying errors.
        errs = [err]
        if err.context and err.validator in ("allOf",):
            errs = list(err.context)
        for e in errs:
            path = _json_path(e.absolute_path)
            msg = _message(e, path, loaded)
            line = loaded.line_of(path) if loaded is not None else None
            if line is not None:
                msg = f"(line {line}) {msg}"
            out.append(Violation(path=path, message=msg))
    order = {}
    if loaded is not None:
        order = {v.path: loaded.line_of(v.path) or 0 for v in out}
    out.sort(key=lambda v: (order.get(v.path, 0), v.path, v.message))
    # Deduplicate identical violations reached through several schema branches.
    seen: set[tuple[str, str]] = set()
    unique = []
    for v in out:
        if (v.path, v.message) not in seen:
            seen.add((v.path, v.message))
            unique.append(v)
    return unique


def load_document(raw: bytes, path: str, kind: str) -> Loaded:
    """Strictly load ``raw`` and validate it as ``kind``; raise LoadError or SchemaError."""
    loaded = load_yaml_text(raw, path)
    check_document(loaded, kind)
    return loaded


def check_document(loaded: Loaded, kind: str) -> None:
    data = loaded.data
    if not isinstance(data, dict):
        raise SchemaError(loaded.path, kind, [Violation("$", "must be a YAML mapping")])
    expected = KINDS[kind][0]
    if data.get("schema") != expected and "schema" in data and isinstance(data["schema"], str) \
            and data["schema"].split("/")[:2] == expected.split("/")[:2]:
        raise SchemaError(loaded.path, kind, [Violation(
            "$.schema",
            f"schema {data['schema']!r} is not supported by this mlreg (it reads {expected!r}); "
            "upgrade mlreg or run 'mlreg migrate'")])
    found = violations(data, kind, loaded)
    if found:
        raise SchemaError(loaded.path, kind, found)


def dump_record(record: dict) -> str:
    """Canonical YAML text for a record (or any registry document)."""
    return dump_yaml(record)
