"""The PR gate's decision record (``mlreg/pr-gate/v1``), its Markdown, and reading it back safely.

The document is what CI uploads and the report workflow downloads, so it is read back as
untrusted data (:func:`load_untrusted`): capped in size before parsing, parsed without NaN or
deep nesting tricks, checked against a strict schema (no unknown fields, bounded strings and
arrays, names in the registry's grammar), and each embedded gate result against
``mlreg/result/v1``. A bare ``mlreg/result/v1`` (``mlreg gate --candidate ... --json``) is
accepted too.

    {"schema": "mlreg/pr-gate/v1", "tool": "mlreg 0.1.0", "verdict": "pass" | "fail" | "error",
     "base": {"rev", "commit"}, "head": {"rev", "commit"}, "merge_base",
     "summary": {"changes", "promotions", "records", "failed", "ignored"},
     "changes": [{"kind", "subject", "status", "verdict", "reason", "result", "promotion"}],
     "results": [mlreg/result/v1, ...], "notes": [...], "errors": [{"file", "path", "message"}]}

``verdict: error`` records a gate that could not decide (invalid files at head, a shallow clone):
the report says why, and the required check has already failed with exit 2.
"""

from __future__ import annotations

import json
from typing import Any

from mlreg import __version__
from mlreg.errors import InputError, SchemaError, Violation
from mlreg.reports.markdown_safe import escape_md, text_length, truncate_body

__all__ = [
    "SCHEMA_KEY",
    "PR_SCHEMA",
    "MAX_RESULT_BYTES",
    "pr_document",
    "error_document",
    "validate_pr_document",
    "load_untrusted",
    "render_pr_markdown",
    "document_verdict",
]

SCHEMA_KEY = "mlreg/pr-gate/v1"
MAX_RESULT_BYTES = 8 * 1024 * 1024
MAX_CHANGES = 1000
MAX_RESULTS = 100
BUDGET = 60_000

_NAME = r"^(?!.*\.\.)[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"
_VERSION = r"^(?!.*\.\.)[0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"
_SHA = r"^[0-9a-f]{40}([0-9a-f]{24})?$"


def _str(n: int) -> dict:
    return {"type": "string", "maxLength": n}


def _nullable(s: dict) -> dict:
    return {"oneOf": [{"type": "null"}, s]}


_REV = {"type": "object", "additionalProperties": False, "required": ["rev", "commit"],
        "properties": {"rev": _str(256), "commit": _nullable({"type": "string",
                                                               "pattern": _SHA})}}

PR_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://mlreg.dev/schemas/pr-gate/v1",
    "title": "mlreg PR gate result (mlreg/pr-gate/v1)",
    "type": "object",
    "additionalProperties": False,
    "required": ["schema", "tool", "verdict", "base", "head", "merge_base", "summary", "changes",
                 "results", "notes", "errors"],
    "properties": {
        "schema": {"const": SCHEMA_KEY},
        "tool": _str(64),
        "verdict": {"enum": ["pass", "fail", "error"]},
        "base": _REV,
        "head": _REV,
        "merge_base": _nullable({"type": "string", "pattern": _SHA}),
        "summary": {
            "type": "object", "additionalProperties": False,
            "required": ["changes", "promotions", "records", "failed", "ignored"],
            "properties": {k: {"type": "integer", "minimum": 0, "maximum": 10**9}
                           for k in ("changes", "promotions", "records", "failed", "ignored")},
        },
        "changes": {
            "type": "array", "maxItems": MAX_CHANGES,
            "items": {
                "type": "object", "additionalProperties": False,
                "required": ["kind", "subject", "status", "verdict", "reason", "result",
                             "promotion"],
                "properties": {
                    "kind": {"enum": ["record", "online", "model", "policy", "settings",
                                      "manifest", "promotion"]},
                    "subject": _str(512),
                    "status": {"enum": ["added", "modified", "deleted", "removed", "bootstrap",
                                        "stable", "canary", "canary-removed", "target"]},
                    "verdict": {"enum": ["pass", "fail", "info"]},
                    "reason": _str(2000),
                    "result": _nullable({"type": "integer", "minimum": 0,
                                         "maximum": MAX_RESULTS - 1}),
                    "promotion": _nullable({
                        "type": "object", "additionalProperties": False,
                        "required": ["service", "model", "to_version", "from_model",
                                     "from_version", "canary_percent", "mode", "change",
                                     "target"],
                        "properties": {
                            "service": {"type": "string", "pattern": _NAME},
                            "model": {"type": "string", "pattern": _NAME},
                            "to_version": {"type": "string", "pattern": _VERSION},
                            "from_model": _nullable({"type": "string", "pattern": _NAME}),
                            "from_version": _nullable({"type": "string", "pattern": _VERSION}),
                            "canary_percent": _nullable({"type": "number", "minimum": 0,
                                                         "maximum": 100}),
                            "mode": {"enum": ["promotion", "rollback", "bootstrap"]},
                            "change": {"enum": ["bootstrap", "stable", "canary",
                                                "canary-removed", "target"]},
                            "target": _nullable(_str(64)),
                        },
                    }),
                },
            },
        },
        "results": {"type": "array", "maxItems": MAX_RESULTS, "items": {"type": "object"}},
        "notes": {"type": "array", "maxItems": 50, "items": _str(2000)},
        "errors": {
            "type": "array", "maxItems": 500,
            "items": {"type": "object", "additionalProperties": False,
                      "required": ["file", "path", "message"],
                      "properties": {"file": _str(1024), "path": _str(1024),
                                     "message": _str(2000)}},
        },
    },
}


def _cap(text: str | None, n: int = 2000) -> str | None:
    if text is None:
        return None
    return text if len(text) <= n else text[: n - 1] + "…"


def pr_document(result: Any) -> dict:
    """The JSON form of a :class:`~mlreg.gitops.prgate.PRGateResult`."""
    changes = result.changes
    ordered = sorted(changes, key=lambda c: {"fail": 0, "pass": 1, "info": 2}[c.verdict])
    kept = ordered[:MAX_CHANGES]
    notes = list(result.notes)
    if len(changes) > MAX_CHANGES:
        notes.append(f"{len(changes) - MAX_CHANGES} more change(s) are only counted")
    results = [r.to_json_dict() for r in result.results[:MAX_RESULTS]]
    out_changes = []
    for c in kept:
        d = c.to_dict()
        d["subject"] = _cap(d["subject"], 512)
        d["reason"] = _cap(d["reason"])
        if d["result"] is not None and d["result"] >= MAX_RESULTS:
            d["result"] = None
        out_changes.append(d)
    return {
        "schema": SCHEMA_KEY,
        "tool": f"mlreg {__version__}",
        "verdict": result.verdict,
        "base": {"rev": _cap(result.base_rev, 256), "commit": result.base_commit},
        "head": {"rev": _cap(result.head_rev, 256), "commit": result.head_commit},
        "merge_base": result.merge_base,
        "summary": {
            "changes": len(changes),
            "promotions": sum(1 for c in changes if c.kind == "promotion"),
            "records": sum(1 for c in changes if c.kind == "record" and c.status == "added"),
            "failed": sum(1 for c in changes if c.verdict == "fail"),
            "ignored": result.ignored,
        },
        "changes": out_changes,
        "results": results,
        "notes": [_cap(n) for n in notes[:50]],
        "errors": [],
    }


def error_document(base: str | None, head: str | None, error: Exception) -> dict:
    """The document written when the gate could not decide (exit 2 or 3): says why."""
    problems = getattr(error, "problems", None) or []
    errors = [{"file": _cap(p.file, 1024), "path": _cap(p.path, 1024),
               "message": _cap(p.message)} for p in problems[:500]]
    if not errors:
        errors = [{"file": "", "path": "$", "message": _cap(str(error))}]
    return {
        "schema": SCHEMA_KEY, "tool": f"mlreg {__version__}", "verdict": "error",
        "base": {"rev": _cap(base or "", 256), "commit": None},
        "head": {"rev": _cap(head or "", 256), "commit": None},
        "merge_base": None,
        "summary": {"changes": 0, "promotions": 0, "records": 0, "failed": 0, "ignored": 0},
        "changes": [], "results": [],
        "notes": [_cap(f"the gate could not decide: {error}")], "errors": errors,
    }


def validate_pr_document(doc: Any, path: str = "<result>") -> None:
    """SchemaError listing every violation of ``mlreg/pr-gate/v1`` (embedded results included)."""
    from jsonschema import Draft202012Validator

    from mlreg.gates.result import validate_result

    found = []
    for err in Draft202012Validator(PR_SCHEMA).iter_errors(doc):
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                              for p in err.absolute_path)
        found.append(Violation(where, err.message[:300]))
    if found:
        raise SchemaError(path, "pr-gate", sorted(found, key=lambda v: v.path))
    for i, res in enumerate(doc["results"]):
        try:
            validate_result(res, f"{path}: results[{i}]")
        except SchemaError as exc:
            raise SchemaError(path, "pr-gate", [Violation(f"$.results[{i}]{v.path[1:]}",
                                                          v.message) for v in exc.violations]
                              ) from None
    for i, c in enumerate(doc["changes"]):
        if c["result"] is not None and c["result"] >= len(doc["results"]):
            raise SchemaError(path, "pr-gate", [Violation(
                f"$.changes[{i}].result", "points past the results")])


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_untrusted(path: str, *, max_bytes: int = MAX_RESULT_BYTES) -> dict:
    """Read a result file produced elsewhere (a CI artifact): size-capped, strictly parsed,
    schema-checked. Returns a ``mlreg/pr-gate/v1`` or ``mlreg/result/v1`` document."""
    from mlreg.gates.result import validate_result

    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such result file (did the gate job upload it?)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise InputError(f"{path}: over the {max_bytes:,}-byte cap for a result; refusing to "
                         "parse it")
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: not a valid JSON result: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: a result is a JSON object")
    kind = doc.get("schema")
    if kind == SCHEMA_KEY:
        validate_pr_document(doc, path)
    elif kind == "mlreg/result/v1":
        validate_result(doc, path)
    else:
        raise InputError(f"{path}: schema {str(kind)[:80]!r} is not a result this mlreg reads "
                         f"({SCHEMA_KEY} or mlreg/result/v1)")
    return doc


def document_verdict(doc: dict) -> str:
    return str(doc.get("verdict"))


# -- Markdown ------------------------------------------------------------------------------------

_ICON = {"pass": "✅", "fail": "❌", "info": "ℹ️", "error": "⚠️"}
_KIND = {"record": "record", "online": "online facts", "model": "model settings",
         "policy": "policy", "settings": "settings", "manifest": "manifest",
         "promotion": "promotion"}


def _e(text: Any, cap: int = 200) -> str:
    return escape_md("" if text is None else str(text), max_chars=cap)


def _short(sha: str | None) -> str:
    return f"`{sha[:12]}`" if sha else "–"


def _promo_title(p: dict) -> str:
    frm = (f"{_e(p['from_model'], 64)}@{_e(p['from_version'], 64)}" if p.get("from_version")
           else "nothing")
    to = f"{_e(p['model'], 64)}@{_e(p['to_version'], 64)}"
    svc = _e(p["service"], 64)
    change = p.get("change")
    if change == "canary-removed":
        return f"{svc}: canary {frm} removed, {to} serves alone"
    text = f"{svc}: {frm} → {to}"
    if change == "canary" and p.get("canary_percent") is not None:
        text += f" (canary {float(p['canary_percent']):g}%)"
    if change == "target":
        text += f" (target {_e(p.get('target'), 64)})"
    if p.get("mode") == "rollback":
        text += " (rollback)"
    if p.get("mode") == "bootstrap":
        text += " (bootstrap)"
    return text


def render_pr_markdown(doc: dict, *, budget: int = BUDGET) -> str:
    """The sticky comment / job summary for a PR gate document (or a bare gate result), at most
    ``budget`` characters, failing changes and rows first, every name escaped."""
    from mlreg.reports.markdown import MARKER, render_markdown

    if doc.get("schema") != SCHEMA_KEY:
        return render_markdown(doc, budget=budget)
    verdict = doc["verdict"]
    summary = doc["summary"]
    head = [MARKER]
    if verdict == "error":
        head.append("## ⚠️ mlreg gate could not decide")
    else:
        head.append(f"## {_ICON[verdict]} mlreg gate {'passed' if verdict == 'pass' else 'failed'}"
                    f": {summary['promotions']} promotion(s), {summary['records']} new "
                    f"record(s), {summary['failed']} failing")
    head += ["", f"base {_e(doc['base']['rev'], 80)} {_short(doc['base']['commit'])} · head "
             f"{_e(doc['head']['rev'], 80)} {_short(doc['head']['commit'])}", ""]
    for note in doc.get("notes") or []:
        head += [f"> **Note:** {_e(note, 600)}", ""]
    errors = doc.get("errors") or []
    if errors:
        head += ["| file | where | problem |", "|---|---|---|"]
        for err in errors[:50]:
            head.append(f"| {_e(err['file'], 200)} | {_e(err['path'], 120)} | "
                        f"{_e(err['message'], 400)} |")
        if len(errors) > 50:
            head.append(f"\n_{len(errors) - 50} more problem(s) in the JSON result._")
        head.append("")
    changes = doc.get("changes") or []
    if changes:
        head += ["| | change | subject | reason |", "|---|---|---|---|"]
        for c in changes[:60]:
            subject = _promo_title(c["promotion"]) if c.get("promotion") else _e(c["subject"], 200)
            head.append(f"| {_ICON.get(c['verdict'], '?')} | {_KIND.get(c['kind'], '?')} "
                        f"{_e(c['status'], 20)} | {subject} | {_e(c['reason'], 400)} |")
        if len(changes) > 60:
            head.append(f"\n_{len(changes) - 60} more change(s) in the JSON result._")
        head.append("")
    elif verdict != "error":
        head += ["Nothing the registry gates changed"
                 + (f" ({summary['ignored']} other file(s))" if summary.get("ignored") else "")
                 + ": nothing to gate.", ""]
    footer = ["---", f"<sub>Decision record: `{SCHEMA_KEY}` JSON · {_e(doc.get('tool'), 64)}"
              "</sub>"]
    fixed = "\n".join(head + footer)
    results = doc.get("results") or []
    order = sorted(range(len(results)), key=lambda i: 0 if results[i]["verdict"] == "fail" else 1)
    room = budget - text_length(fixed) - 200
    sections: list[str] = []
    for n, i in enumerate(order):
        share = room // max(1, len(order) - n)
        if share < 1500:
            sections.append(f"_{len(order) - n} more gate report(s) not shown to fit the comment "
                            "limit; the JSON result has them._")
            break
        body = render_markdown(results[i], budget=share)
        body = body.replace(MARKER + "\n", "", 1).replace(MARKER, "")
        body = body.replace("\n## ", "\n### ", 1) if not body.startswith("## ") else \
            "### " + body[3:]
        sections.append(body.rstrip() + "\n")
        room -= text_length(body) + 1
    text = "\n".join(head + sections + [""] + footer) + "\n"
    if text_length(text) > budget:
        text = truncate_body(text, budget, keep=MARKER)
    return text
