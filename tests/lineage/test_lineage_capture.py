"""Acceptance: a real scikit-learn training job under the capture API, run twice."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest
from lineage_helpers import cli, git, run_job

from mlreg.registry import Registry

# The seed's lineage list, as JSON paths into the record, that capture must fill by itself.
# Only hyperparameters, dataset URIs and the feature list come from the user's code.
AUTOMATIC = [
    "model", "version", "created", "owner",
    "artifacts[0].uri", "artifacts[0].sha256", "artifacts[0].size", "artifacts[0].format",
    "artifacts[1].variant_of", "artifacts[1].quantization", "artifacts[1].target",
    "code.repository", "code.commit", "code.branch", "code.dirty", "code.entrypoint",
    "features[0].sha256", "features[0].version", "features[0].source",
    "data[0].sha256", "data[0].size", "data[0].rows", "data[0].immutable",
    "data[0].partitions.dt",
    "seeds.values.python", "seeds.values.numpy", "seeds.determinism",
    "environment.python.version", "environment.python.implementation",
    "environment.os.system", "environment.os.release", "environment.cpu.model",
    "environment.cpu.cores", "environment.memory_bytes", "environment.packages.sha256",
    "environment.packages.count", "environment.packages.list.scikit-learn",
    "hardware.gpu.present",
    "metrics.training.auc", "metrics.validation.auc", "metrics.slices.country=US.auc",
    "evaluation.snapshot.sha256", "evaluation.predictions.uri",
    "evaluation.predictions.sha256", "evaluation.predictions.size",
    "operational.latency.p50_ms", "operational.latency.p99_ms",
    "operational.latency.hardware", "operational.latency.load_profile",
    "capture.tool",
]


def lookup(doc, path: str):
    for part in path.replace("]", "").replace("[", ".").split("."):
        if isinstance(doc, list):
            doc = doc[int(part)]
        else:
            if part not in doc:
                # slice keys contain dots-free '=' but maps keep them whole
                raise KeyError(path)
            doc = doc[part]
    return doc


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, lake):
    """Train twice in one registry (module scope: the job takes a couple of seconds)."""
    from mlreg.scaffold import init_registry

    base = tmp_path_factory.mktemp("capture")
    repo = str(base / "repo")
    init_registry(repo)
    git(repo, "config", "user.email", "ml@example.com")
    os.makedirs(os.path.join(repo, "training"))
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("train_job.py", "features.yaml"):
        with open(os.path.join(here, name), "rb") as src, \
                open(os.path.join(repo, "training", name), "wb") as dst:
            dst.write(src.read())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "registry and training code")
    env = {k: "" for k in ("GITHUB_RUN_ID", "CI_JOB_URL", "BUILDKITE_BUILD_URL", "BUILD_URL",
                           "MLREG_IMAGE_DIGEST")}
    outs = []
    for i in (1, 2):
        out = str(base / f"out{i}")
        proc = run_job(repo, lake, out, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str(i)
        outs.append(out)
    return repo, outs


def test_record_validates_and_is_filled_automatically(two_runs):
    repo, _ = two_runs
    with Registry.open(repo) as reg:
        assert reg.versions("fraud") == ["1", "2"]
        first, second = reg.record("fraud", "1"), reg.record("fraud", "2")  # validated reads
        assert reg.model_info("fraud")["task"] == "binary_classification"
    missing = []
    for path in AUTOMATIC:
        try:
            value = lookup(first, path)
        except (KeyError, IndexError):
            missing.append(path)
            continue
        if value in (None, "", {}, []) and path != "seeds.determinism":
            missing.append(path)
    assert missing == []
    assert first["code"]["dirty"] is False
    assert first["code"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert first["code"]["entrypoint"] == "training/train_job.py"
    assert first["owner"] == "ml@example.com"
    assert first["hyperparameters"] == {"C": 0.5, "max_iter": 300, "solver": "lbfgs",
                                        "tol": 1e-6}
    assert [d["role"] for d in first["data"]] == ["train", "validation", "eval"]
    assert all(d["immutable"] for d in first["data"])
    assert first["data"][0]["rows"] == 2000
    assert first["seeds"]["values"] == {"python": 1234, "numpy": 1234}
    assert "PYTHONHASHSEED" in first["seeds"]["determinism"]
    env = first["environment"]
    assert env["packages"]["list"]["mlreg"] == "0.1.0"
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    # The record file is exactly what `mlreg show` and the gate read; the second run knows
    # its predecessor.
    assert "parent" not in first and second["parent"] == "1"
    assert first["artifacts"][0]["uri"] == ".mlreg-store/models/fraud/1/model.pkl"
    assert second["capture"]["mode"] == "api"
    # Registry outputs do not make the training code look dirty for the second run.
    assert second["code"]["dirty"] is False


def test_two_runs_give_byte_identical_artifacts(two_runs):
    repo, outs = two_runs
    with Registry.open(repo) as reg:
        first, second = reg.record("fraud", "1"), reg.record("fraud", "2")
    for a, b in zip(first["artifacts"], second["artifacts"], strict=True):
        assert a["sha256"] == b["sha256"] and a["size"] == b["size"]
        with open(os.path.join(repo, a["uri"]), "rb") as fa, \
                open(os.path.join(repo, b["uri"]), "rb") as fb:
            da, db = fa.read(), fb.read()
        assert da == db
        assert hashlib.sha256(da).hexdigest() == a["sha256"]
    with open(os.path.join(outs[0], "model.pkl"), "rb") as f1, \
            open(os.path.join(outs[1], "model.pkl"), "rb") as f2:
        assert f1.read() == f2.read()
    assert (first["evaluation"]["predictions"]["sha256"]
            == second["evaluation"]["predictions"]["sha256"])


def test_the_registry_validates_and_verifies(two_runs, capsys):
    repo, _ = two_runs
    code, out, _ = cli(capsys, "validate", repo)
    assert code == 0, out
    code, out, _ = cli(capsys, "verify", "fraud@2", "-C", repo)
    assert code == 0, out
    assert "OK       artifact model" in out and "OK       predictions" in out


def test_reproduce_in_the_same_environment_reports_nothing(two_runs, capsys, monkeypatch):
    repo, _ = two_runs
    monkeypatch.chdir(repo)
    code, out, _ = cli(capsys, "reproduce", "fraud@1", "--json")
    result = json.loads(out)
    assert result["differences"] == [] and result["identical"] is True
    assert code == 0
    code, out, _ = cli(capsys, "reproduce", "fraud@latest")
    assert code == 0 and out.startswith("ok: no difference")
