"""`mlreg capture -- COMMAND`: a shell-driven job declares what it did; mlreg writes the record."""

from __future__ import annotations

import json
import os

import pytest
from lineage_helpers import cli

from mlreg.lineage.command import load_declarations
from mlreg.registry import Registry


@pytest.fixture
def job(tmp_path):
    """A shell training job that writes a model and declares everything, in JSON or YAML."""
    work = tmp_path / "job"
    work.mkdir()
    (work / "train.csv").write_text("x,label\n1,0\n2,1\n3,1\n")
    (work / "eval.csv").write_text("x,label\n4,0\n5,1\n")

    def make(fmt: str = "json", exit_code: int = 0) -> str:
        if fmt == "json":
            decl = json.dumps({
                "params": {"epochs": 3, "lr": 0.01},
                "seeds": {"python": 7, "numpy": 7},
                "determinism": {"PYTHONHASHSEED": "0"},
                "datasets": [{"role": "train", "uri": "train.csv"}],
                "features": [{"names": ["x"], "version": "3",
                              "source": "feast://fraud/x"}],
                "metrics": {"training": {"loss": 0.2}, "validation": {"auc": 0.8},
                            "slices": {"country=US": {"auc": 0.79}}},
                "artifacts": [{"path": "out/model.onnx", "format": "onnx"}],
                "evaluation": {"predictions": "out/preds.csv", "snapshot": "eval.csv",
                               "id_column": "id", "label_column": "label",
                               "score_column": "score"},
                "latency": {"p50_ms": 1.5, "p99_ms": 4.0, "hardware": "c6i.large"},
                "description": "shell job", "tags": ["nightly"],
            })
            write = f"cat > \"$MLREG_CAPTURE_FILE\" <<'EOF'\n{decl}\nEOF\n"
        else:
            write = ("cat > \"$MLREG_CAPTURE_FILE\" <<'EOF'\n"
                     "params:\n  epochs: 3\n"
                     "datasets:\n  - role: train\n    uri: train.csv\n"
                     "artifacts:\n  - path: out/model.onnx\n"
                     "EOF\n")
        script = work / f"train-{fmt}.sh"
        script.write_text(
            "#!/bin/sh\nset -e\nmkdir -p out\n"
            "echo \"onnx bytes for $MLREG_MODEL@$MLREG_VERSION\" > out/model.onnx\n"
            "printf 'id,label,score\\n4,0,0.2\\n5,1,0.7\\n' > out/preds.csv\n"
            + write + f"exit {exit_code}\n")
        script.chmod(0o755)
        return str(script)

    return work, make


def test_capture_a_shell_job(repo, job, capsys, monkeypatch):
    work, make = job
    monkeypatch.chdir(work)
    script = make("json")
    code, out, err = cli(capsys, "capture", "--model", "fraud", "-C", repo, "--code", repo,
                         "--owner", "risk-ml@example.com", "--", script, "--epochs", "3")
    assert code == 0, err
    assert out.splitlines()[0] == f"captured fraud@1: {os.path.relpath(repo, work)}/models/fraud/1.yaml"
    with Registry.open(repo) as reg:
        rec = reg.record("fraud", "1")
    assert rec["owner"] == "risk-ml@example.com"
    assert rec["capture"]["mode"] == "cli"
    assert rec["code"]["entrypoint"] == f"{script} --epochs 3"
    assert rec["hyperparameters"] == {"epochs": 3, "lr": 0.01}
    assert rec["seeds"]["values"] == {"python": 7, "numpy": 7}
    assert rec["seeds"]["determinism"]["PYTHONHASHSEED"] == "0"
    assert rec["metrics"]["slices"] == {"country=US": {"auc": 0.79}}
    assert rec["features"] == [{"name": "x", "source": "feast://fraud/x", "version": "3"}]
    assert rec["artifacts"][0]["uri"] == ".mlreg-store/models/fraud/1/model.onnx"
    assert rec["data"][0]["uri"] == str(work / "train.csv")
    assert rec["data"][1]["role"] == "eval"
    assert rec["evaluation"]["predictions"]["format"] == "csv"
    assert rec["operational"]["latency"]["p99_ms"] == 4.0
    assert rec["tags"] == ["nightly"] and rec["description"] == "shell job"
    with open(os.path.join(repo, rec["artifacts"][0]["uri"])) as fh:
        assert fh.read() == "onnx bytes for fraud@1\n"  # the job saw its version
    code, out, _ = cli(capsys, "verify", "fraud@1", "-C", repo)
    assert code == 0


def test_yaml_declarations_and_json_output(repo, job, capsys, monkeypatch):
    work, make = job
    monkeypatch.chdir(work)
    code, out, err = cli(capsys, "capture", "-m", "fraud", "-C", repo, "--code", repo,
                         "--json", "--", make("yaml"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["version"] == "1" and doc["record"]["hyperparameters"] == {"epochs": 3}


def test_a_job_that_declares_no_artifact(repo, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    code, _out, err = cli(capsys, "capture", "--model", "fraud", "--", "true")
    assert code == 2
    assert "no artifact was logged" in err
    assert not os.path.exists(os.path.join(repo, "models", "fraud"))


def test_unknown_command_and_bad_declarations(repo, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    code, _out, err = cli(capsys, "capture", "--model", "fraud", "--", "no-such-trainer-xyz")
    assert code == 2 and "command not found" in err
    bad = tmp_path / "decl.json"
    bad.write_text('{"params": {}, "hyperparams": {"lr": 1}}')
    with pytest.raises(Exception, match="unknown declaration"):
        load_declarations(str(bad))


def test_capture_help_names_the_protocol(capsys):
    code, out, _ = cli(capsys, "capture", "--help")
    assert code == 0 and "MLREG_CAPTURE_FILE" in out
