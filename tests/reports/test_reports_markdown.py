"""Markdown and terminal renderings of a gate result: size limits, order, escaping."""

from __future__ import annotations

import json

from mlreg.gates import Estimate, Evidence, Policy, SliceStats, Subject, Verification, evaluate
from mlreg.reports.markdown import BUDGET, MARKER, render_markdown
from mlreg.reports.markdown_safe import GITHUB_BODY_LIMIT, text_length
from mlreg.reports.terminal import render_terminal

RECORD = {"model": "fraud", "version": "127", "artifacts": [], "evaluation": {}}


def _result(n_slices: int = 300, failing_every: int = 7, name=lambda i: f"country=C{i:03d}",
            gate_id: str = "calibration", reason_pad: int = 0):
    keys = [name(i) for i in range(n_slices)]
    slices = {"overall": SliceStats("overall", (), 10**6)}
    cand = {("calibration_slope", None, "overall"): Estimate(1.0, 0.99, 1.01)}
    for i, k in enumerate(keys):
        slices[k] = SliceStats(k, ("country",), 10_000 + i)
        v = 0.9 if i % failing_every == 0 else 1.0
        cand[("calibration_slope", None, k)] = Estimate(v, v - 0.01, v + 0.01)
    pol = Policy.from_document({"schema": "mlreg/policy/v1", "gates": [
        {"id": gate_id, "metric": "calibration_slope", "slices": "all",
         "target": {"value": 1.0, "tolerance": 0.02},
         **({"description": "x" * reason_pad} if reason_pad else {})}]})
    ev = Evidence(slices=slices, candidate=cand, rows=10**6)
    return evaluate(pol, Subject("fraud", "127", RECORD, "a" * 64), None, ev, Verification())


def test_a_300_slice_report_fits_a_github_comment_with_failing_rows_first() -> None:
    result = _result(300)
    md = render_markdown(result)
    assert text_length(md) <= BUDGET < GITHUB_BODY_LIMIT
    assert md.startswith(MARKER + "\n")
    table = [line for line in md.splitlines() if line.startswith("| ❌ |")
             or line.startswith("| ✅ |")]
    first_pass = next(i for i, line in enumerate(table) if line.startswith("| ✅ |"))
    assert all(line.startswith("| ❌ |") for line in table[:first_pass])
    assert all(line.startswith("| ✅ |") for line in table[first_pass:])
    failing = [k for k in range(300) if k % 7 == 0]
    assert sum(1 for line in table if line.startswith("| ❌ |")) == len(failing) + 1  # + summary


def test_rows_that_do_not_fit_are_cut_passing_first_with_a_note() -> None:
    result = _result(3000, failing_every=3)
    md = render_markdown(result)
    assert text_length(md) <= BUDGET
    shown_fail = md.count("| ❌ | country")
    assert 300 < shown_fail < 1000
    # Failing rows are kept before any passing row: no passing row made it in.
    assert md.count("| ✅ | country") == 0
    cut = 3001 - shown_fail
    assert f"_{cut} more row(s) not shown to fit the comment limit, {1000 - shown_fail} of " \
           "them failing; the JSON result has every row._" in md


def test_a_tiny_budget_is_respected() -> None:
    md = render_markdown(_result(300), budget=8000)
    assert text_length(md) <= 8000 and md.startswith(MARKER)


def test_names_from_the_registry_are_escaped() -> None:
    evil = "country=<!-- mlreg:gate --> @octocat |x| [a](http://e.vil) #12"
    result = _result(3, failing_every=1, name=lambda i: evil + str(i))
    md = render_markdown(result)
    body = md[len(MARKER):]
    assert "<!--" not in body and "-->" not in body
    assert "@octocat" not in body and "@\u200bocto" in body
    assert "[a](http" not in body
    assert "\\|x\\|" in body


def test_markdown_renders_the_json_document_too() -> None:
    result = _result(20)
    doc = json.loads(json.dumps(result.to_json_dict()))
    assert render_markdown(doc) == render_markdown(result)


def test_markdown_shows_verdict_digests_and_bootstrap_notes() -> None:
    pol = Policy.from_document({"schema": "mlreg/policy/v1", "gates": [
        {"id": "auc-uplift", "metric": "auc", "change": {"min_absolute": 0.005}}]})
    ev = Evidence(slices={"overall": SliceStats("overall", (), 100)},
                  candidate={("auc", None, "overall"): Estimate(0.8)}, rows=100)
    r = evaluate(pol, Subject("fraud", "127", RECORD, "c" * 64), None, ev, mode="bootstrap")
    md = render_markdown(r)
    assert "mlreg gate passed" in md and "cccccccccccc" in md and pol.digest in md
    assert "> **Note:** bootstrap" in md and "⏭️" in md


def test_terminal_lists_failing_rows_first_and_strips_control_characters() -> None:
    result = _result(40, failing_every=5, name=lambda i: f"country=C{i:02d}\x1b[2J")
    text = render_terminal(result, max_passing=3)
    assert "\x1b" not in text
    lines = [line for line in text.splitlines() if line.startswith(
        ("FAIL  country", "PASS  country", "PASS  overall"))]
    assert [line[:4] for line in lines] == ["FAIL"] * 8 + ["PASS"] * 3
    assert "30 more passing row(s)" in text
    assert text.rstrip().endswith("1 of 1 gates failed, 8 failing row(s)")
