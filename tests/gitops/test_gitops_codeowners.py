"""CODEOWNERS: platform owners guard what serves and the rules; model owners their folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlreg.gitops.codeowners import render_codeowners, valid_owner
from testkit import ROOT, git


@pytest.mark.parametrize("owner,ok", [
    ("@alice", True), ("@acme/risk-ml", True), ("risk-ml@example.com", True),
    ("Risk team", False), ("@", False), ("@a/b c", False), ("alice", False),
])
def test_valid_owner(owner: str, ok: bool) -> None:
    assert valid_owner(owner) is ok


def test_render_orders_rules_so_the_platform_wins() -> None:
    text = render_codeowners(
        {"platform_owners": ["@acme/ml-platform"], "manifests": ["production.yaml",
                                                                  "staging.yaml"]},
        {"fraud": {"owner": "risk-ml@example.com", "reviewers": ["@acme/risk-ml"]},
         "vision": {"owner": "The vision team"}}, prefix="registry/")
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rules == [
        "/registry/models/fraud/ @acme/risk-ml risk-ml@example.com",
        "/registry/mlreg.yaml @acme/ml-platform",
        "/registry/production.yaml @acme/ml-platform",
        "/registry/staging.yaml @acme/ml-platform",
        "/registry/policies/ @acme/ml-platform",
        "/.github/ @acme/ml-platform",
    ]
    assert "/registry/models/vision/ has no GitHub owner" in text


def test_the_repository_codeowners_is_current(run_cli) -> None:
    res = run_cli("codeowners", "--check", "-C", str(ROOT))
    assert res.code == 0, res


def test_check_mode_and_regeneration(tmp_path: Path, run_cli) -> None:
    reg = tmp_path / "reg"
    assert run_cli("init", str(reg), "--owner", "@acme/ml-platform").code == 0
    git(reg, "add", "-A")
    git(reg, "commit", "-qm", "init")
    # After init --owner, regenerating names the platform owners (mlreg.yaml has them).
    assert run_cli("codeowners", "-C", str(reg)).code == 0
    assert "/production.yaml @acme/ml-platform" in (reg / ".github/CODEOWNERS").read_text()
    model = reg / "models/fraud/model.yaml"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text((ROOT / "models/fraud/model.yaml").read_text())
    stale = run_cli("codeowners", "--check", "-C", str(reg))
    assert stale.code == 1 and "stale" in stale.err
    assert run_cli("codeowners", "-C", str(reg)).code == 0
    assert "/models/fraud/ @acme/risk-ml" in (reg / ".github/CODEOWNERS").read_text()
    assert run_cli("codeowners", "--check", "-C", str(reg)).code == 0
