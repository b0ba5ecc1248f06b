from __future__ import annotations

import json
from pathlib import Path

from testkit import git, tree_digest


def test_deployed_table_and_json(example_registry: Path, run_cli) -> None:
    result = run_cli("deployed", "-C", str(example_registry))
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["service", "model", "stable", "canary", "share", "surface"]
    assert any(line.split()[:3] == ["fraud-scoring", "fraud", "126"] for line in lines)
    data = json.loads(run_cli("deployed", "--json", "-C", str(example_registry)).out)
    assert {d["service"] for d in data} == {"fraud-scoring", "homepage", "search", "post-play",
                                            "photo-tagger-mobile"}
    assert {d["surface"] for d in data if d["model"] == "recsys"} == {"homepage", "search",
                                                                       "post-play"}


def test_deployed_shows_canary_share(example_registry: Path, run_cli) -> None:
    p = example_registry / "production.yaml"
    p.write_text(p.read_text().replace(
        "    stable: '126'\n", "    stable: '126'\n    canary:\n      version: '127'\n"
        "      percent: 5\n"))
    result = run_cli("deployed", "-C", str(example_registry))
    row = next(line for line in result.out.splitlines() if line.startswith("fraud-scoring"))
    assert row.split()[:5] == ["fraud-scoring", "fraud", "126", "127", "5%"]
    shown = run_cli("show", "fraud-scoring", "-C", str(example_registry))
    assert "canary fraud@127 at 5%" in shown.out


def test_list_models_and_versions(example_registry: Path, run_cli) -> None:
    data = json.loads(run_cli("list", "--json", "-C", str(example_registry)).out)
    fraud = next(r for r in data if r["model"] == "fraud")
    on_disk = sorted((p.stem for p in (example_registry / "models/fraud").glob("[0-9]*.yaml")),
                     key=int)
    assert fraud["versions"] == len(on_disk) and fraud["latest"] == on_disk[-1]
    rows = json.loads(run_cli("list", "fraud", "--json", "-C", str(example_registry)).out)
    assert [r["version"] for r in rows] == on_disk
    assert rows[0]["serving"] == ["fraud-scoring"] and rows[1]["serving"] == []
    assert rows[1]["commit"].startswith("f3a9c")
    missing = run_cli("list", "nope", "-C", str(example_registry))
    assert missing.code == 2 and "model 'nope' not found" in missing.err


def test_show_record_yaml_and_json_and_at_revision(example_registry: Path, run_cli) -> None:
    out = run_cli("show", "fraud@127", "-C", str(example_registry)).out
    assert "learning_rate: 0.001" in out and "batch_size: 2048" in out
    data = json.loads(run_cli("show", "fraud@127", "--json", "-C", str(example_registry)).out)
    assert data["version"] == "127" and data["code"]["commit"].startswith("f3a9c")
    latest = json.loads(run_cli("show", "fraud@latest", "--json", "-C",
                                str(example_registry)).out)
    assert latest["version"] == max((p.stem for p in (example_registry / "models/fraud").glob(
        "[0-9]*.yaml")), key=int)
    (example_registry / "models/fraud/127.yaml").unlink()
    assert run_cli("show", "fraud@127", "-C", str(example_registry)).code == 2
    at_head = run_cli("show", "fraud@127", "--rev", "HEAD", "-C", str(example_registry))
    assert at_head.code == 0 and "version: '127'" in at_head.out


def test_validate_at_revision(example_registry: Path, run_cli) -> None:
    (example_registry / "production.yaml").write_text("schema: nope\n")
    assert run_cli("validate", str(example_registry)).code == 2
    result = run_cli("validate", str(example_registry), "--rev", "HEAD", "--json")
    assert result.code == 0 and json.loads(result.out)["ok"] is True


def test_init_scaffolds_and_refuses_to_overwrite(tmp_path: Path, run_cli) -> None:
    target = tmp_path / "newreg"
    result = run_cli("init", str(target), "--owner", "@acme/ml-platform")
    assert result.code == 0, result
    assert (target / ".git").is_dir()
    for rel in ("mlreg.yaml", "production.yaml", "policies/default.yaml", "models/.gitkeep"):
        assert (target / rel).is_file(), rel
    assert run_cli("validate", str(target)).code == 0
    assert run_cli("deployed", "-C", str(target)).out.startswith("no services")
    before = tree_digest(target)
    again = run_cli("init", str(target))
    assert again.code == 2 and "refusing to overwrite" in again.err
    assert tree_digest(target) == before


def test_init_refuses_when_any_single_file_exists(tmp_path: Path, run_cli) -> None:
    target = tmp_path / "partial"
    target.mkdir()
    git(target, "init", "-q")
    (target / "production.yaml").write_text("keep me\n")
    result = run_cli("init", str(target))
    assert result.code == 2 and "production.yaml" in result.err
    assert sorted(p.name for p in target.iterdir()) == [".git", "production.yaml"]
    assert (target / "production.yaml").read_text() == "keep me\n"


def test_init_refuses_credentials_in_store(tmp_path: Path, run_cli) -> None:
    result = run_cli("init", str(tmp_path / "x"), "--store", "s3://k:s@bucket/p")
    assert result.code == 2 and "credentials" in result.err
    assert not (tmp_path / "x").exists()


def test_migrate_reports_current(example_registry: Path, run_cli) -> None:
    result = run_cli("migrate", str(example_registry), "--check")
    assert result.code == 0 and "current schema version" in result.out


def test_init_writes_codeowners_naming_the_platform_owners(tmp_path: Path, run_cli) -> None:
    target = tmp_path / "owned"
    assert run_cli("init", str(target), "--owner", "@acme/ml-platform").code == 0
    text = (target / ".github/CODEOWNERS").read_text()
    for path in ("/production.yaml", "/policies/", "/.github/", "/mlreg.yaml"):
        assert any(line.split()[:2] == [path, "@acme/ml-platform"] for line in text.splitlines())
    assert (target / ".github/workflows").is_dir()
