"""The shipped workflows, checked offline: GitHub's schema, zizmor, and the PR-flow invariants.

Both copies are checked: the repository's own (it is an example registry) and the templates
``mlreg init`` writes; they must be the same files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testkit import ROOT

REPO_DIR = ROOT / ".github" / "workflows"
TEMPLATE_DIR = ROOT / "src" / "mlreg" / "templates" / "registry" / ".github" / "workflows"
GATE, REPORT = "mlreg-gate.yml", "mlreg-report.yml"
DIRS = [REPO_DIR, TEMPLATE_DIR]
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key "on" as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return which


def _steps(job: dict) -> list[dict]:
    return job.get("steps") or []


def test_templates_are_the_repository_workflows() -> None:
    for name in (GATE, REPORT):
        assert (REPO_DIR / name).read_bytes() == (TEMPLATE_DIR / name).read_bytes()


@pytest.mark.parametrize("schema", ["vendor.github-workflows",
                                    "custom.github-workflows-require-timeout"])
def test_check_jsonschema(schema: str) -> None:
    files = [str(d / n) for d in DIRS for n in (GATE, REPORT)]
    proc = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", schema, *files],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("where", DIRS, ids=["repository", "template"])
def test_zizmor_has_no_unexplained_findings(where: Path) -> None:
    proc = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", str(where)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout
    # Every accepted finding is ignored inline, next to a comment that says why.
    for name in (GATE, REPORT):
        lines = (where / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if "zizmor: ignore" in line:
                assert lines[i - 1].strip().startswith("#") and len(lines[i - 1]) > 30, line


@pytest.mark.parametrize("where", DIRS, ids=["repository", "template"])
def test_gate_workflow_invariants(where: Path) -> None:
    wf = _load(where / GATE)
    on = wf["on"]
    assert set(on) == {"pull_request", "merge_group"}
    for trigger in on.values():  # no path filters on a required check
        assert not trigger or not {"paths", "paths-ignore", "branches-ignore"} & set(trigger)
    assert wf["permissions"] == {"contents": "read"}
    assert "head.sha" in wf["concurrency"]["group"] and "head_sha" in wf["concurrency"]["group"]
    (job_id, job), = wf["jobs"].items()
    assert job_id == "mlreg-gate" and job["name"] == "mlreg-gate"  # the required check's name
    assert "if" not in job and "permissions" not in job and "continue-on-error" not in job
    assert isinstance(job["timeout-minutes"], int) and job["timeout-minutes"] <= 60
    steps = _steps(job)
    checkout = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkout) == 1
    assert checkout[0]["with"] == {"fetch-depth": 0, "persist-credentials": False}
    for s in steps:
        if "uses" in s:
            assert PINNED.match(s["uses"]), s["uses"]
        if "run" in s:
            assert "${{" not in s["run"], s["run"]
            assert "continue-on-error" not in s
    gate = [s for s in steps if "mlreg gate" in s.get("run", "")]
    assert len(gate) == 1 and "if" not in gate[0]
    assert '--base "$BASE_SHA" --head "$HEAD_SHA"' in gate[0]["run"]
    assert {"BASE_SHA", "HEAD_SHA", "PR_NUMBER"} <= set(gate[0]["env"])
    install = [s for s in steps if "pip install" in s.get("run", "")]
    assert install and all("mlreg==" in s["run"] for s in install)  # a pinned release
    assert not any(re.search(r"pip install[^\n]*(\s\.|-e)", s.get("run", "")) for s in steps)
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(upload) == 1 and upload[0]["with"]["name"] == "mlreg-result"
    assert steps.index(upload[0]) > steps.index(gate[0]) and "cancelled" in upload[0]["if"]


@pytest.mark.parametrize("where", DIRS, ids=["repository", "template"])
def test_report_workflow_invariants(where: Path) -> None:
    wf = _load(where / REPORT)
    run = wf["on"]["workflow_run"]
    assert set(wf["on"]) == {"workflow_run"}
    assert run["types"] == ["completed"]
    assert run["workflows"] == [_load(where / GATE)["name"]]
    assert wf["permissions"] == {}
    (job,) = wf["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert isinstance(job["timeout-minutes"], int)
    assert "head_sha" in wf["concurrency"]["group"]
    steps = _steps(job)
    text = (where / REPORT).read_text()
    # Never checks out or runs code from the pull request.
    assert "actions/checkout" not in text and "pull_request_target" not in text
    assert not any("pip install ." in s.get("run", "") or "pip install -e" in s.get("run", "")
                   for s in steps)
    for s in steps:
        if "uses" in s:
            assert PINNED.match(s["uses"]), s["uses"]
        if "run" in s:
            assert "${{" not in s["run"], s["run"]
    download = [s for s in steps if s.get("uses", "").startswith("actions/download-artifact@")]
    assert len(download) == 1 and download[0]["with"]["name"] == "mlreg-result"
    assert "workflow_run.id" in download[0]["with"]["run-id"]
    report = [s for s in steps if "mlreg report" in s.get("run", "")]
    assert len(report) == 1
    assert '--head-sha "$HEAD_SHA"' in report[0]["run"]
    assert "workflow_run.head_sha" in report[0]["env"]["HEAD_SHA"]
    assert "GITHUB_TOKEN" in report[0]["env"]


def test_init_writes_the_workflows_and_codeowners(tmp_path: Path, run_cli) -> None:
    res = run_cli("init", str(tmp_path / "reg"))
    assert res.code == 0, res
    for name in (GATE, REPORT):
        assert (tmp_path / "reg/.github/workflows" / name).read_bytes() == \
            (REPO_DIR / name).read_bytes()
    assert (tmp_path / "reg/.github/CODEOWNERS").exists()
    assert run_cli("codeowners", "--check", "-C", str(tmp_path / "reg")).code == 0
