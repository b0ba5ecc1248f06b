"""The gate result as plain text for a terminal: a header, a gate summary, one table per gate.

Failing gates first and, inside each table, failing rows first. Passing rows beyond
``max_passing`` per gate are counted, not shown (the JSON result has them all).
Terminal output is for the person who ran the command, so names are shown as they are, with
control characters removed (a name cannot move the cursor or clear the screen).
"""

from __future__ import annotations

import math
import re
from typing import Any

from mlreg.render import table

__all__ = ["render_terminal"]

_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "skip", "info": "info"}
_GATE_ORDER = {"fail": 0, "info": 1, "pass": 2, "skip": 3}
_ROW_ORDER = {"fail": 0, "info": 1, "skip": 2, "pass": 3}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _t(text: Any, cap: int = 120) -> str:
    s = _CONTROL.sub(" ", "" if text is None else str(text))
    return s if len(s) <= cap else s[: cap - 1] + "…"


def _n(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    f = float(x)
    return "-" if not math.isfinite(f) else f"{f:.{digits}f}"


def _ci(iv: Any) -> str:
    return f" [{_n(iv[0])}, {_n(iv[1])}]" if iv else ""


def _bar(row: dict) -> str:
    lo, hi = row.get("lower"), row.get("upper")
    if lo is not None and hi is not None:
        return f"{lo:g}..{hi:g}"
    if lo is not None:
        return f">= {lo:g}"
    if hi is not None:
        return f"<= {hi:g}"
    return "-"


def render_terminal(result: Any, *, max_passing: int = 25, width: int = 100) -> str:
    """Text for a GateResult (or its JSON dict)."""
    doc = result.to_json_dict() if hasattr(result, "to_json_dict") else result
    promo = doc.get("promotion") or {}
    cand, base = doc["candidate"], doc.get("baseline")
    out = []
    svc = f" -> {_t(promo['service'])}" if promo.get("service") else ""
    out.append(f"gate {doc['verdict'].upper()}: {_t(cand['model'])}@{_t(cand['version'])}{svc}"
               f" (mode {doc['mode']})")
    out.append(f"  baseline: {_t(base['model'])}@{_t(base['version'])}" if base
               else "  baseline: none")
    pol = doc.get("policy") or {}
    srcs = ", ".join(_t(s["path"]) for s in pol.get("sources") or [])
    out.append(f"  policy:   sha256 {pol.get('sha256', '')[:16]} ({srcs or 'no files'})")
    ev = doc.get("evaluation") or {}
    out.append(f"  data:     {_n(ev.get('rows'))} rows, {_n(ev.get('slices'))} slices, "
               f"{float(ev.get('confidence') or 0.95):.0%} intervals")
    for note in doc.get("notes") or []:
        out.append(f"  note:     {_t(note, 300)}")
    gates = sorted(doc.get("gates") or [], key=lambda g: _GATE_ORDER.get(g["verdict"], 9))
    out.append("")
    out.append(table(["", "gate", "rule", "reason"],
                     [[_MARK[g["verdict"]], _t(g["id"], 40), _t(g["rule"], 40),
                       _t(g["reason"], max(30, width - 60))] for g in gates]))
    for g in gates:
        rows = sorted(g.get("rows") or [], key=lambda r: _ROW_ORDER.get(r["verdict"], 9))
        shown = [r for r in rows if r["verdict"] != "pass"]
        passing = [r for r in rows if r["verdict"] == "pass"]
        shown += passing[:max_passing]
        out.append("")
        metric = f" {g['metric']}" if g.get("metric") else ""
        out.append(f"[{_MARK[g['verdict']]}] {_t(g['id'], 60)}:{_t(metric, 40)} {_t(g['rule'], 80)}"
                   + (f" on {_t(g['slices'], 80)}" if g.get("slices") else ""))
        if g["type"] == "metric" and rows and all(r["kind"] == "group" for r in rows):
            out.append(table(
                ["", "slice", "n", "gap", "bar", "reason"],
                [[_MARK[r["verdict"]], _t(r["item"], 40), r.get("n"),
                  _n(r.get("observed")) + _ci(r.get("observed_interval")), _bar(r),
                  _t(r["reason"], 110)] for r in shown]))
        elif g["type"] == "metric":
            out.append(table(
                ["", "slice", "n", "candidate", "baseline", "delta", "bar", "reason"],
                [[_MARK[r["verdict"]], _t(r["item"], 40), r.get("n"),
                  _n(r.get("candidate")) + _ci(r.get("candidate_interval")),
                  _n(r.get("baseline")),
                  (f"{r['delta']:+.4f}" if r.get("delta") is not None else "-")
                  + _ci(r.get("delta_interval")),
                  _bar(r), _t(r["reason"], 90)] for r in shown]))
        else:
            out.append(table(["", "item", "value", "bar", "reason"],
                             [[_MARK[r["verdict"]], _t(r["item"], 40),
                               _n(r.get("observed"), 3), _bar(r), _t(r["reason"], 110)]
                              for r in shown]))
        hidden = len(rows) - len(shown)
        if hidden:
            out.append(f"  ... {hidden} more passing row(s) (see --json)")
    s = doc.get("summary") or {}
    out.append("")
    out.append(f"{doc['verdict'].upper()}: {s.get('failed', 0)} of {s.get('gates', 0)} gates "
               f"failed, {s.get('failing_rows', 0)} failing row(s)")
    return "\n".join(out)
