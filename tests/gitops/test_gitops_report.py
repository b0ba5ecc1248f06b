"""``mlreg report``: the artifact is untrusted data; the comment is one, escaped, on the right PR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakegithub.server import BOT_LOGIN, BOT_TOKEN, FakeGitHub
from mlreg.errors import InputError, SchemaError
from mlreg.gitops.prresult import (
    SCHEMA_KEY,
    error_document,
    load_untrusted,
    render_pr_markdown,
    validate_pr_document,
)
from mlreg.reports.markdown_safe import GITHUB_BODY_LIMIT, text_length


def _doc(**over) -> dict:
    doc = {
        "schema": SCHEMA_KEY, "tool": "mlreg 0.1.0", "verdict": "fail",
        "base": {"rev": "origin/main", "commit": "a" * 40},
        "head": {"rev": "HEAD", "commit": "b" * 40}, "merge_base": "a" * 40,
        "summary": {"changes": 1, "promotions": 0, "records": 0, "failed": 1, "ignored": 0},
        "changes": [{"kind": "record", "subject": "models/fraud/126.yaml", "status": "modified",
                     "verdict": "fail", "reason": "merged records are immutable",
                     "result": None, "promotion": None}],
        "results": [], "notes": [], "errors": [],
    }
    doc.update(over)
    return doc


def _write(tmp_path: Path, doc: object, name: str = "r.json") -> str:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


def test_untrusted_result_is_capped_parsed_strictly_and_schema_checked(tmp_path: Path) -> None:
    assert load_untrusted(_write(tmp_path, _doc()))["verdict"] == "fail"
    big = _doc(notes=["x" * 1000] * 40)
    with pytest.raises(InputError, match="cap"):
        load_untrusted(_write(tmp_path, big), max_bytes=10_000)
    with pytest.raises(InputError, match="not a valid JSON"):
        load_untrusted(_write(tmp_path, '{"verdict": NaN}'))
    with pytest.raises(InputError, match="not a valid JSON"):
        load_untrusted(_write(tmp_path, "[" * 100_000 + "]" * 100_000))
    with pytest.raises(InputError, match="schema"):
        load_untrusted(_write(tmp_path, {"schema": "evil/v1"}))
    with pytest.raises(SchemaError, match="unknown|Additional"):
        load_untrusted(_write(tmp_path, _doc(extra="<script>")))
    bad = _doc()
    bad["changes"][0]["promotion"] = {"service": "../x", "model": "m", "to_version": "1",
                                      "from_model": None, "from_version": None,
                                      "canary_percent": None, "mode": "promotion",
                                      "change": "stable", "target": None}
    with pytest.raises(SchemaError):
        load_untrusted(_write(tmp_path, bad))
    with pytest.raises(SchemaError, match="results"):
        load_untrusted(_write(tmp_path, _doc(results=[{"schema": "mlreg/result/v1"}])))
    with pytest.raises(InputError, match="no such result"):
        load_untrusted(str(tmp_path / "missing.json"))


def test_names_cannot_inject_markdown_mentions_or_a_fake_marker() -> None:
    evil = "@admins <!-- mlreg:gate --> [click](https://evil.example) | ## x"
    doc = _doc()
    doc["changes"][0]["subject"] = evil
    doc["notes"] = [evil]
    validate_pr_document(doc)
    md = render_pr_markdown(doc)
    assert md.count("<!--") == 1 and md.startswith("<!-- mlreg:gate -->")
    assert "@admins" not in md and "](https" not in md
    err = render_pr_markdown(error_document("main", "HEAD", InputError(evil)))
    assert err.count("<!--") == 1 and "could not decide" in err


def test_many_results_stay_under_the_comment_limit(tmp_path: Path) -> None:
    """Reference: the 300-slice single-result budget is tested with the renderer in
    tests/reports/test_reports_markdown.py; here several results share one comment."""
    from mlreg.gates.result import GateOutcome, GateResult, Row, SubjectRef

    rows = [Row(item=f"country=c{i:03d}", kind="slice", verdict="fail" if i % 7 == 0 else "pass",
                reason="delta below the bar " * 3, n=1000 + i, candidate=0.8, baseline=0.81,
                delta=-0.01, observed=-0.01, lower=-0.005) for i in range(300)]
    results = []
    for k in range(4):
        res = GateResult(
            verdict="fail", mode="promotion",
            promotion={"service": f"svc{k}", "model": "fraud", "to_version": "127",
                       "from_model": "fraud", "from_version": "126", "canary_percent": None,
                       "mode": "promotion", "target": None},
            candidate=SubjectRef("fraud", "127", "models/fraud/127.yaml", "c" * 64),
            baseline=SubjectRef("fraud", "126", "models/fraud/126.yaml", "d" * 64),
            policy_sha256="e" * 64, policy_sources=[], files=[],
            gates=[GateOutcome(id="auc-floor", type="metric", category="metric",
                               rule="delta >= -0.005", verdict="fail", reason="43 failing",
                               rows=list(rows), metric="auc", matched=300)],
            evaluation={"rows": 10**6, "slices": 300, "engine": "x", "confidence": 0.95,
                        "threshold": 0.5, "snapshot": None, "unavailable": None,
                        "baseline_problem": None})
        results.append(res.to_json_dict())
    changes = [{"kind": "promotion", "subject": f"svc{k}", "status": "stable", "verdict": "fail",
                "reason": "failed", "result": k, "promotion": results[k]["promotion"] | {
                    "change": "stable"}} for k in range(4)]
    doc = _doc(results=results, changes=changes)
    validate_pr_document(doc)
    md = render_pr_markdown(doc)
    assert text_length(md) < GITHUB_BODY_LIMIT
    first_section = md[md.index("### "):]
    assert first_section.index("❌") < first_section.index("✅ |")  # failing rows first
    assert "not shown to fit" in md


def test_report_posts_once_and_refuses_a_moved_head(tmp_path: Path, fake_github: FakeGitHub,
                                                    no_throttle: None, run_cli,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", BOT_TOKEN)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    pr = fake_github.add_pull("o/r", head="mlreg/promote/x")
    head = fake_github.pull("o/r", pr).head_sha
    path = _write(tmp_path, _doc())
    args = ["report", "--result", path, "--pr", str(pr), "--repo", "o/r",
            "--api-url", fake_github.base_url]
    assert run_cli(*args, "--head-sha", head).code == 0
    assert run_cli(*args, "--head-sha", head, "--json").code == 0
    ours = [c for c in fake_github.comments("o/r", pr) if c["user"] == BOT_LOGIN]
    assert len(ours) == 1
    fake_github.set_head_sha("o/r", pr, fake_github.new_sha())
    moved = run_cli(*args, "--head-sha", head)
    assert moved.code == 1 and "not posting" in moved.err
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert run_cli(*args).code == 2  # --head-sha is required in Actions
    tampered = _write(tmp_path, _doc(extra=1), "t.json")
    assert run_cli("report", "--result", tampered, "--pr", str(pr), "--repo", "o/r",
                   "--api-url", fake_github.base_url, "--head-sha", head).code == 2
    assert len(fake_github.comments("o/r", pr)) == 1
