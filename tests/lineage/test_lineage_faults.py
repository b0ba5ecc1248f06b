"""Faults, tested rather than assumed: a crashing job, a failing upload, an invalid record, a
tampered or missing artifact, an unreachable store."""

from __future__ import annotations

import copy
import os
import socket
import subprocess

import pytest
from lineage_helpers import cli, git, run_job

from mlreg.errors import RegistryError, SchemaError, StoreError
from mlreg.lineage import capture
from mlreg.records import dump_record
from mlreg.registry import Registry
from mlreg.storage import LocalStore


def store_files(repo: str) -> list[str]:
    root = os.path.join(repo, ".mlreg-store")
    found = []
    for dirpath, _dirs, names in os.walk(root):
        found.extend(os.path.relpath(os.path.join(dirpath, n), root) for n in names)
    return sorted(found)


def registry_untouched(repo: str) -> bool:
    """No file of the registry changed or appeared (the store is git-ignored)."""
    return git(repo, "status", "--porcelain", "--untracked-files=all") == ""


@pytest.fixture
def inputs(tmp_path) -> dict[str, str]:
    files = {"model": tmp_path / "model.bin", "variant": tmp_path / "model-int8.bin",
             "train": tmp_path / "train.csv"}
    files["model"].write_bytes(b"weights " * 100)
    files["variant"].write_bytes(b"int8 " * 50)
    files["train"].write_text("x,label\n1,0\n2,1\n")
    return {k: str(v) for k, v in files.items()}


def small_run(repo: str, inputs: dict[str, str], **options):
    run = capture("fraud", registry=repo, code_dir=repo, **options)
    run.log_dataset("train", inputs["train"])
    run.log_params(lr=0.1)
    run.log_artifact(inputs["model"])
    run.log_artifact(inputs["variant"], name="mobile-int8", variant_of="model",
                     quantization="int8", target="mobile")
    return run


def test_a_job_crashing_mid_training_leaves_no_record_and_no_object(repo, lake, tmp_path):
    proc = run_job(repo, lake, str(tmp_path / "out"), env={"TRAIN_FAIL_AT": "after_fit"})
    assert proc.returncode == 1
    assert "simulated crash in the middle of training" in proc.stderr
    assert store_files(repo) == []
    assert registry_untouched(repo)


def test_an_exception_in_the_block_writes_nothing_and_propagates(repo, inputs):
    with pytest.raises(ValueError, match="diverged"):
        with small_run(repo, inputs) as run:
            raise ValueError("loss diverged")
    assert run.record is None and run.uploaded == []
    assert store_files(repo) == [] and registry_untouched(repo)
    with pytest.raises(RegistryError, match="already aborted"):
        run.log_params(lr=0.2)


def test_a_failed_upload_removes_what_this_run_uploaded(repo, inputs, monkeypatch):
    # An object that was in the store before the run is not this run's to delete.
    LocalStore(os.path.join(repo, ".mlreg-store")).put_file(
        inputs["variant"], "models/fraud/1/model-int8.bin")
    before = store_files(repo)
    real_put = LocalStore.put_file
    calls = []

    def flaky_put(self, path, key, **kw):
        calls.append(key)
        if len(calls) == 2:
            raise StoreError(f"{key}: upload failed: connection reset")
        return real_put(self, path, key, **kw)

    monkeypatch.setattr(LocalStore, "put_file", flaky_put)
    run = small_run(repo, inputs)
    inputs2 = dict(inputs)
    run.log_evaluation(_predictions(inputs2), inputs["train"], id_column="id",
                       label_column="label", score_column="score")
    with pytest.raises(StoreError, match="connection reset"):
        with run:
            pass
    assert calls[0] == "models/fraud/1/model.bin"
    assert store_files(repo) == before  # model.bin removed again, the older object kept
    assert registry_untouched(repo)
    assert run.record is None


def _predictions(inputs: dict[str, str]) -> str:
    path = os.path.join(os.path.dirname(inputs["train"]), "preds.csv")
    with open(path, "w") as fh:
        fh.write("id,label,score\n1,0,0.1\n2,1,0.9\n")
    return path


def test_an_invalid_record_is_refused_before_any_upload(repo, inputs):
    run = capture("fraud", registry=repo, code_dir=repo)
    run.log_artifact(inputs["model"])  # no dataset logged: data is required
    with pytest.raises(SchemaError) as err:
        with run:
            pass
    assert [v.path for v in err.value.violations] == ["$.data"]
    assert "models/fraud/1.yaml" in str(err.value)
    assert store_files(repo) == [] and registry_untouched(repo)


def test_a_record_is_never_overwritten(repo, inputs):
    run = small_run(repo, inputs, version="1")
    os.makedirs(os.path.join(repo, "models", "fraud"))
    with open(os.path.join(repo, "models", "fraud", "1.yaml"), "w") as fh:
        fh.write("written by another job meanwhile\n")
    with pytest.raises(RegistryError, match="already exists"):
        run.finish()
    with open(os.path.join(repo, "models", "fraud", "1.yaml")) as fh:
        assert fh.read() == "written by another job meanwhile\n"
    assert store_files(repo) == []


def test_auto_version_moves_on_when_the_tree_took_it_meanwhile(repo, inputs):
    run = small_run(repo, inputs)
    assert run.version == "1"
    os.makedirs(os.path.join(repo, "models", "fraud"))
    with open(os.path.join(repo, "models", "fraud", "1.yaml"), "w") as fh:
        fh.write("another capture in this tree\n")
    record = run.finish()
    assert record["version"] == "2" and record["artifacts"][0]["uri"].endswith("/2/model.bin")


def test_capture_outside_git_fails_before_training(tmp_path, inputs):
    from mlreg.errors import InputError
    from mlreg.scaffold import init_registry

    reg = str(tmp_path / "reg")
    init_registry(reg)
    code = tmp_path / "code"
    code.mkdir()
    with pytest.raises(InputError, match="not inside a git repository"):
        capture("fraud", registry=reg, code_dir=str(code))


# -- verify ----------------------------------------------------------------------------------

@pytest.fixture
def captured(repo, inputs) -> str:
    with small_run(repo, inputs) as run:
        run.log_evaluation(_predictions(inputs), inputs["train"], id_column="id",
                           label_column="label", score_column="score")
    return repo


def test_verify_passes_on_untouched_objects(captured, capsys):
    code, out, _ = cli(capsys, "verify", "fraud@1", "-C", captured)
    assert code == 0
    assert out.count("OK ") == 5  # two artifacts, predictions, the train and eval data


def test_a_tampered_artifact_fails_verify_naming_it(captured, capsys):
    path = os.path.join(captured, ".mlreg-store", "models", "fraud", "1", "model-int8.bin")
    with open(path, "r+b") as fh:
        fh.write(b"INT8")  # same size, different bytes
    code, out, err = cli(capsys, "verify", "fraud@1", "-C", captured)
    assert code == 1
    assert "MISMATCH artifact mobile-int8 (.mlreg-store/models/fraud/1/model-int8.bin): sha256" in out
    assert "OK       artifact model " in out
    assert "FAILED: fraud@1: artifact mobile-int8" in err


def test_a_missing_artifact_fails_verify(captured, capsys):
    os.remove(os.path.join(captured, ".mlreg-store", "models", "fraud", "1", "model.bin"))
    code, out, err = cli(capsys, "verify", "fraud@1", "-C", captured, "--json")
    import json

    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert [(c["name"], c["status"]) for c in report["checks"] if c["status"] != "ok"] == [
        ("model", "missing")]


def test_changed_local_training_data_is_reported(captured, inputs, capsys):
    with open(inputs["train"], "a") as fh:
        fh.write("3,0\n")
    code, out, _ = cli(capsys, "verify", "fraud@1", "-C", captured)
    assert code == 1 and "MISMATCH data train" in out
    code, out, _ = cli(capsys, "verify", "fraud@1", "-C", captured, "--no-data")
    assert code == 0


def test_an_unreachable_store_exits_3(captured, capsys, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = os.path.join(captured, "mlreg.yaml")
    with open(settings, "a") as fh:
        fh.write(f"store_options:\n  endpoint_url: http://127.0.0.1:{port}\n"
                 "  connect_timeout: 1\n  retries: 0\n")
    text = open(settings).read().replace("artifact_store: .mlreg-store",
                                         "artifact_store: s3://models-bucket/registry")
    with open(settings, "w") as fh:
        fh.write(text)
    with Registry.open(captured) as reg:
        record = copy.deepcopy(reg.record("fraud", "1"))
    record["version"] = "2"
    for art in record["artifacts"]:
        art["uri"] = art["uri"].replace(".mlreg-store/", "s3://models-bucket/registry/")
    with open(os.path.join(captured, "models", "fraud", "2.yaml"), "w") as fh:
        fh.write(dump_record(record))
    code, _out, err = cli(capsys, "verify", "fraud@2", "-C", captured)
    assert code == 3, err
    assert "error:" in err and "s3://models-bucket/registry/models/fraud/1/model.bin" in err


def test_cli_capture_with_a_failing_command_writes_nothing(repo, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"echo weights > {tmp_path}/model.bin\n"
        "cat > \"$MLREG_CAPTURE_FILE\" <<EOF\n"
        f'{{"datasets": [{{"role": "train", "uri": "{tmp_path}/model.bin"}}],\n'
        f' "artifacts": [{{"path": "{tmp_path}/model.bin"}}]}}\n'
        "EOF\n"
        "echo 'CUDA out of memory' >&2\n"
        "exit 7\n")
    script.chmod(0o755)
    code, _out, err = cli(capsys, "capture", "--model", "fraud", "--", str(script))
    assert code == 7
    assert "exited with code 7; nothing was written" in err
    assert store_files(repo) == [] and registry_untouched(repo)
    proc = subprocess.run(["git", "-C", repo, "status", "--porcelain"], capture_output=True)
    assert proc.stdout == b""
