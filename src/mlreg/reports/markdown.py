"""The gate result as GitHub Markdown: the PR comment and the job summary.

``render_markdown(result)`` takes a :class:`mlreg.gates.result.GateResult` or its JSON form (a
``mlreg/result/v1`` document, e.g. read back from a CI artifact) and returns Markdown that

* starts with the hidden marker :data:`MARKER` (the sticky comment is found by it);
* puts failing gates first, and inside every slice table the failing rows first;
* stays under :data:`BUDGET` characters (GitHub's limit is 65,536): rows that do not fit are
  left out, passing rows before failing ones, and each table says how many were cut;
* escapes every name that comes from the registry (model, version, service, gate, metric,
  slice, reasons) with :func:`mlreg.reports.markdown_safe.escape_md`: a name cannot inject
  Markdown, HTML, mentions or a fake marker.
"""

from __future__ import annotations

import math
from typing import Any

from mlreg.reports.markdown_safe import escape_md, text_length, truncate_body

__all__ = ["MARKER", "BUDGET", "render_markdown"]

MARKER = "<!-- mlreg:gate -->"
BUDGET = 60_000

_ICON = {"pass": "✅", "fail": "❌", "skip": "⏭️", "info": "ℹ️"}
_GATE_ORDER = {"fail": 0, "info": 1, "pass": 2, "skip": 3}
_ROW_ORDER = {"fail": 0, "info": 1, "skip": 2, "pass": 3}


def _e(text: Any, cap: int = 200) -> str:
    return escape_md("" if text is None else text, max_chars=cap)


def _n(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    f = float(x)
    if not math.isfinite(f):
        return "–"
    return f"{f:.{digits}f}"


def _ci(iv: Any, digits: int = 4) -> str:
    if not iv:
        return ""
    return f" [{_n(iv[0], digits)}, {_n(iv[1], digits)}]"


def _signed(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    return f"{float(x):+.{digits}f}"


def _bar(row: dict, rel: bool) -> str:
    lo, hi = row.get("lower"), row.get("upper")
    fmt = (lambda v: f"{float(v):+g}") if rel else (lambda v: f"{float(v):g}")
    if lo is not None and hi is not None:
        return f"{fmt(lo)} … {fmt(hi)}"
    if lo is not None:
        return f"≥ {fmt(lo)}"
    if hi is not None:
        return f"≤ {fmt(hi)}"
    return "–"


def _doc(result: Any) -> dict:
    return result.to_json_dict() if hasattr(result, "to_json_dict") else result


def _metric_row(row: dict, gate: dict) -> str:
    change = "delta" in (gate.get("rule") or "")
    cells = [
        _ICON.get(row["verdict"], "?"), _e(row["item"], 120), _n(row.get("n")),
        _n(row.get("candidate")) + _ci(row.get("candidate_interval")),
        _n(row.get("baseline")),
        _signed(row.get("delta")) + _ci(row.get("delta_interval")) if row.get("delta") is not None
        else "–",
        _bar(row, change),
        _e(row["reason"], 300),
    ]
    return "| " + " | ".join(cells) + " |"


def _gap_row(row: dict, gate: dict) -> str:
    groups = row.get("groups") or []
    shown = ", ".join(f"{_e(g['group'], 40)} {_n(g.get('value'))} (n={_n(g.get('n'))})"
                      + ("" if g.get("included", True) else " left out") for g in groups[:12])
    if len(groups) > 12:
        shown += f", +{len(groups) - 12} more"
    cells = [_ICON.get(row["verdict"], "?"), _e(row["item"], 120), _n(row.get("n")),
             _n(row.get("observed")) + _ci(row.get("observed_interval")), _bar(row, False),
             shown or "–", _e(row["reason"], 300)]
    return "| " + " | ".join(cells) + " |"


def _plain_row(row: dict, gate: dict) -> str:
    observed = _n(row.get("observed"), 3) if row.get("observed") is not None else "–"
    cells = [_ICON.get(row["verdict"], "?"), _e(row["item"], 120), observed, _bar(row, False),
             _e(row["reason"], 400)]
    return "| " + " | ".join(cells) + " |"


def _table_head(gate: dict, confidence: float) -> tuple[str, Any]:
    if gate["type"] == "metric":
        if gate.get("rows") and all(r["kind"] == "group" for r in gate["rows"]):
            return ("| | slice | n | gap (CI) | bar | groups | reason |\n"
                    "|---|---|--:|--:|---|---|---|"), _gap_row
        ci = f"{100 * confidence:g}% CI"
        return (f"| | slice | n | candidate ({ci}) | baseline | delta ({ci}) | bar | reason |\n"
                "|---|---|--:|--:|--:|--:|---|---|"), _metric_row
    what = {"artifact_size": "artifact | MB", "latency": "measure | ms",
            "online": "experiment | value"}.get(
        gate["type"], "check | value")
    a, b = what.split(" | ")
    return f"| | {a} | {b} | bar | reason |\n|---|---|--:|---|---|", _plain_row


def _gate_title(gate: dict) -> str:
    what = [f"**{_e(gate['id'], 64)}**"]
    if gate.get("metric"):
        m = _e(gate["metric"], 64)
        if gate.get("threshold") is not None:
            m += f" @ {float(gate['threshold']):g}"
        what.append(m)
    what.append(_e(gate["rule"], 200))
    if gate.get("slices"):
        what.append(_e(gate["slices"], 200))
    if not gate.get("blocking", True):
        what.append("not blocking")
    return f"#### {_ICON.get(gate['verdict'], '?')} " + " · ".join(what)


def render_markdown(result: Any, *, budget: int = BUDGET, details_url: str | None = None) -> str:
    """Markdown for a gate result (a GateResult or its JSON dict), at most ``budget`` characters
    (UTF-16 code units, as GitHub counts)."""
    doc = _doc(result)
    promo = doc.get("promotion") or {}
    cand = doc["candidate"]
    base = doc.get("baseline")
    verdict = doc["verdict"]
    summary = doc.get("summary") or {}
    head: list[str] = [MARKER]
    target = f" → {_e(promo['service'], 64)}" if promo.get("service") else ""
    title = "passed" if verdict == "pass" else "failed"
    head.append(f"## {_ICON[verdict]} mlreg gate {title}: "
                f"{_e(cand['model'], 64)}@{_e(cand['version'], 64)}{target}")
    head.append("")
    canary = (f" (canary {float(promo['canary_percent']):g}%)"
              if promo.get("canary_percent") is not None else "")
    base_txt = (f"{_e(base['model'], 64)}@{_e(base['version'], 64)} · record sha256 "
                f"`{base['record_sha256'][:12]}`" if base else "none")
    policy = doc.get("policy") or {}
    srcs = ", ".join(_e(s["path"], 120) for s in policy.get("sources") or []) or "–"
    ev = doc.get("evaluation") or {}
    head += [
        "| | |", "|---|---|",
        f"| mode | {_e(doc['mode'], 20)}{canary} |",
        f"| candidate | {_e(cand['model'], 64)}@{_e(cand['version'], 64)} · record sha256 "
        f"`{cand['record_sha256'][:12]}` |",
        f"| baseline | {base_txt} |",
        f"| policy | sha256 `{policy.get('sha256', '')[:12]}` · {srcs} |",
        f"| evaluation | {_n(ev.get('rows'))} rows · {_n(ev.get('slices'))} slices · "
        f"{float(ev.get('confidence') or 0.95):.0%} intervals · {_e(ev.get('snapshot') or '–', 200)} |",
        "",
    ]
    for note in doc.get("notes") or []:
        head.append(f"> **Note:** {_e(note, 400)}")
        head.append("")
    head.append(f"**{summary.get('failed', 0)} of {summary.get('gates', 0)} gates failed** · "
                f"{summary.get('failing_rows', 0)} failing rows of {summary.get('rows', 0)}")
    head.append("")
    gates = sorted(doc.get("gates") or [], key=lambda g: _GATE_ORDER.get(g["verdict"], 9))
    head += ["| | gate | rule | matched | reason |", "|---|---|---|--:|---|"]
    for g in gates:
        head.append(f"| {_ICON.get(g['verdict'], '?')} | {_e(g['id'], 64)} | "
                    f"{_e(g['rule'], 120)} | {g.get('matched', 0)} | {_e(g['reason'], 300)} |")
    head.append("")
    files = doc.get("files") or []
    if files:
        bad = [f for f in files if f["status"] != "verified"]
        head.append(f"Files hashed in the store: {len(files) - len(bad)} of {len(files)} verified"
                    + ("" if not bad else " — " + "; ".join(
                        f"{_e(f['role'], 20)} {_e(f['name'], 64)}: {_e(f.get('problem'), 200)}"
                        for f in bad[:5])))
        head.append("")

    # Sections: a header per gate, rows chosen under the budget, failing rows first.
    sections = []
    for gi, g in enumerate(gates):
        rows = sorted(g.get("rows") or [], key=lambda r: _ROW_ORDER.get(r["verdict"], 9))
        table_head, fmt = _table_head(g, float(ev.get("confidence") or 0.95))
        lines = [fmt(r, g) for r in rows]
        sections.append({"gate": g, "title": _gate_title(g), "table": table_head, "rows": rows,
                         "lines": lines, "keep": [False] * len(rows), "gi": gi})
    footer = ["", "---", "<sub>Decision record: `mlreg/result/v1` JSON"
              + (f" · [details]({details_url})" if details_url and _safe_url(details_url) else "")
              + f" · policy sha256 `{policy.get('sha256', '')}`</sub>"]
    fixed = "\n".join(head + footer)
    used = text_length(fixed) + sum(text_length(s["title"]) + text_length(s["table"]) + 200
                                    for s in sections)
    room = budget - used
    order = sorted(((_ROW_ORDER.get(r["verdict"], 9), s["gi"], i)
                    for s in sections for i, r in enumerate(s["rows"])))
    for _, gi, i in order:
        cost = text_length(sections[gi]["lines"][i]) + 1
        if cost <= room:
            sections[gi]["keep"][i] = True
            room -= cost
    body = list(head)
    for s in sections:
        body.append(s["title"])
        body.append("")
        kept = [line for line, k in zip(s["lines"], s["keep"], strict=True) if k]
        if kept:
            body.append(s["table"])
            body.extend(kept)
        cut = [r for r, k in zip(s["rows"], s["keep"], strict=True) if not k]
        if cut:
            failing = sum(1 for r in cut if r["verdict"] == "fail")
            body.append("")
            body.append(f"_{len(cut)} more row(s) not shown to fit the comment limit"
                        + (f", {failing} of them failing" if failing else "")
                        + "; the JSON result has every row._")
        total = s["gate"].get("rows_total", len(s["rows"]))
        if total > len(s["rows"]):
            body.append(f"_{total - len(s['rows'])} more row(s) are only counted: the result "
                        "keeps at most 5,000 per gate._")
        body.append("")
    body += footer
    text = "\n".join(body) + "\n"
    if text_length(text) > budget:  # pragma: no cover - the reserve above makes this rare
        text = truncate_body(text, budget, keep=MARKER)
    return text


def _safe_url(url: str) -> bool:
    return url.startswith("https://") and not any(c in url for c in " <>()[]\"'\n")
