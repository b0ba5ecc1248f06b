"""The automatic fingerprint: GPU (fake nvidia-smi on PATH and the real no-GPU case), code state,
Python packages, container image and CI run URL; failing probes become unknowns."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import types

import pytest
from lineage_helpers import git

from mlreg.lineage import _pyprobe
from mlreg.lineage.fingerprint import (
    ProbeFailed,
    clean_remote_url,
    parse_nvidia_smi_query,
    probe_ci_url,
    probe_code,
    probe_container,
    probe_gpu,
    probe_python,
    take_fingerprint,
)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as fh:
        return fh.read()


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """Install fake ``nvidia-smi`` (and ``nvcc``) programs first on PATH."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def install(name: str, *, query: str = "", plain: str = "", rc: int = 0,
                sleep: float = 0) -> None:
        (bindir / f"{name}.query").write_text(query)
        (bindir / f"{name}.plain").write_text(plain)
        script = bindir / name
        script.write_text(
            "#!/bin/sh\n"
            + (f"sleep {sleep}\n" if sleep else "")
            + 'case "$1" in\n'
            + f'  --query-gpu=*) cat "{bindir}/{name}.query" ;;\n'
            + f'  *) cat "{bindir}/{name}.plain" ;;\n'
            + "esac\n"
            + f"exit {rc}\n")
        script.chmod(0o755)

    install("nvcc", rc=127)  # no toolkit unless a test installs one
    return install


def test_two_a100s_from_nvidia_smi(fake_bin):
    fake_bin("nvidia-smi", query=fixture("nvidia-smi-a100x2-query.txt"),
             plain=fixture("nvidia-smi-a100x2.txt"))
    gpu, unknown = probe_gpu()
    assert unknown == {}
    assert gpu["present"] is True
    assert gpu["type"] == "NVIDIA A100-SXM4-80GB"
    assert gpu["count"] == 2
    assert gpu["memory_mb"] == 81920
    assert gpu["driver"] == "535.129.03"
    assert gpu["cuda"] == "12.2"  # from the header, no toolkit installed
    assert gpu["source"] == "nvidia-smi"


def test_cuda_toolkit_version_from_nvcc_beats_the_driver_header(fake_bin):
    fake_bin("nvidia-smi", query=fixture("nvidia-smi-a100x2-query.txt"),
             plain=fixture("nvidia-smi-a100x2.txt"))
    fake_bin("nvcc", plain=fixture("nvcc-12.1.txt"))
    gpu, _ = probe_gpu()
    assert gpu["cuda"] == "12.1"
    assert gpu["source"] == "nvidia-smi, nvcc"


def test_driver_failure_is_absent_with_a_reason_not_an_error(fake_bin):
    fake_bin("nvidia-smi", query=fixture("nvidia-smi-driver-failure.txt"),
             plain=fixture("nvidia-smi-driver-failure.txt"), rc=9)
    gpu, unknown = probe_gpu()
    assert gpu == {"present": False}
    assert unknown["gpu"].startswith("nvidia-smi failed (exit 9): NVIDIA-SMI has failed because "
                                     "it couldn't communicate with the NVIDIA driver")


def test_no_devices_found_is_simply_absent(fake_bin):
    fake_bin("nvidia-smi", query=fixture("nvidia-smi-no-devices.txt"), rc=6)
    assert probe_gpu() == ({"present": False}, {})


def test_a_hanging_nvidia_smi_times_out_into_an_unknown(fake_bin):
    fake_bin("nvidia-smi", query=fixture("nvidia-smi-a100x2-query.txt"), sleep=5)
    gpu, unknown = probe_gpu(timeout=0.3)
    assert gpu == {"present": False}
    assert unknown == {"gpu": "nvidia-smi timed out after 0.3 s"}


def test_garbage_output_is_an_unknown(fake_bin):
    fake_bin("nvidia-smi", query="Segmentation fault\n")
    gpu, unknown = probe_gpu()
    assert gpu == {"present": False}
    assert "unexpected nvidia-smi output" in unknown["gpu"]


def test_parse_query_rows():
    rows = parse_nvidia_smi_query(fixture("nvidia-smi-a100x2-query.txt"))
    assert rows == [("NVIDIA A100-SXM4-80GB", 81920, "535.129.03")] * 2
    assert parse_nvidia_smi_query("Tesla T4, [N/A], 470.57.02\n") == [
        ("Tesla T4", None, "470.57.02")]


def test_no_gpu_for_real():
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi")
    for mod in ("torch", "tensorflow"):
        if mod in sys.modules:
            pytest.skip(f"{mod} is imported; its own GPU query would answer")
    assert probe_gpu() == ({"present": False}, {})
    fp = take_fingerprint(os.getcwd())
    assert fp.hardware["gpu"] == {"present": False}
    assert "unknown" not in fp.hardware


def test_framework_query_when_torch_is_already_imported(monkeypatch, fake_bin):
    class Props:
        total_memory = 80 * 1024**3

    cuda = types.SimpleNamespace(is_available=lambda: True, device_count=lambda: 8,
                                 get_device_name=lambda i: "NVIDIA H100 80GB HBM3",
                                 get_device_properties=lambda i: Props())
    torch = types.SimpleNamespace(
        cuda=cuda, version=types.SimpleNamespace(cuda="12.1"),
        backends=types.SimpleNamespace(cudnn=types.SimpleNamespace(version=lambda: 8902)))
    monkeypatch.setitem(sys.modules, "torch", torch)
    # With nvidia-smi: the hardware comes from it, CUDA/cuDNN from what torch runs with.
    fake_bin("nvidia-smi", query=fixture("nvidia-smi-a100x2-query.txt"),
             plain=fixture("nvidia-smi-a100x2.txt"))
    gpu, unknown = probe_gpu()
    assert (gpu["type"], gpu["count"], gpu["cuda"], gpu["cudnn"]) == (
        "NVIDIA A100-SXM4-80GB", 2, "12.1", "8.9.2")
    assert gpu["source"] == "nvidia-smi, torch"
    # Without nvidia-smi (slim containers): torch alone says there are GPUs.
    fake_bin("nvidia-smi", query="", rc=127)
    os.remove(shutil.which("nvidia-smi"))
    if shutil.which("nvidia-smi"):
        pytest.skip("a real nvidia-smi is on PATH")
    gpu, unknown = probe_gpu()
    assert gpu["present"] is True and gpu["count"] == 8
    assert gpu["type"] == "NVIDIA H100 80GB HBM3" and gpu["memory_mb"] == 81920
    if not os.path.exists("/proc/driver/nvidia/version"):
        assert gpu["driver"] == "unknown" and "gpu_driver" in unknown


# -- code -------------------------------------------------------------------------------------

@pytest.fixture
def code_repo(tmp_path) -> str:
    root = str(tmp_path / "code")
    os.makedirs(os.path.join(root, "registry", "models"))
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    with open(os.path.join(root, "train.py"), "w") as fh:
        fh.write("print('train')\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "code")
    return root


def test_clean_checkout(code_repo):
    code = probe_code(code_repo, entrypoint=os.path.join(code_repo, "train.py"))
    assert code == {"repository": code_repo, "commit": git(code_repo, "rev-parse", "HEAD"),
                    "branch": "main", "dirty": False, "entrypoint": "train.py"}


def test_dirty_tree_has_a_stable_digest_of_the_changes(code_repo):
    with open(os.path.join(code_repo, "train.py"), "a") as fh:
        fh.write("print('tuned')\n")
    first = probe_code(code_repo)
    assert first["dirty"] is True and len(first["diff_sha256"]) == 64
    assert probe_code(code_repo)["diff_sha256"] == first["diff_sha256"]
    with open(os.path.join(code_repo, "helper.py"), "w") as fh:  # untracked files count too
        fh.write("x = 1\n")
    second = probe_code(code_repo)["diff_sha256"]
    assert second != first["diff_sha256"]
    with open(os.path.join(code_repo, "helper.py"), "w") as fh:
        fh.write("x = 2\n")
    assert probe_code(code_repo)["diff_sha256"] != second


def test_registry_outputs_do_not_make_the_code_dirty(code_repo):
    records = os.path.join(code_repo, "registry", "models")
    with open(os.path.join(records, "1.yaml"), "w") as fh:
        fh.write("record\n")
    assert probe_code(code_repo)["dirty"] is True
    assert probe_code(code_repo, exclude=[records])["dirty"] is False


def test_detached_head_takes_the_branch_from_ci(code_repo):
    git(code_repo, "checkout", "-q", "--detach")
    assert "branch" not in probe_code(code_repo, environ={})
    assert probe_code(code_repo, environ={"GITHUB_HEAD_REF": "feature/x"})["branch"] == "feature/x"


def test_remote_url_is_recorded_without_credentials(code_repo):
    git(code_repo, "remote", "add", "origin", "https://bot:ghp_s3cret@github.com/acme/fraud.git")
    assert probe_code(code_repo)["repository"] == "https://github.com/acme/fraud.git"


@pytest.mark.parametrize("url, clean", [
    ("https://bot:ghp_s3cret@github.com/acme/x.git", "https://github.com/acme/x.git"),
    ("https://oauth2:tok@gitlab.example.com:8443/a/b.git?private_token=x#frag",
     "https://gitlab.example.com:8443/a/b.git"),
    ("git@github.com:acme/x.git", "ssh://github.com/acme/x.git"),
    ("ssh://git@host.example:2222/a/b.git", "ssh://host.example:2222/a/b.git"),
    ("/srv/git/x.git", "/srv/git/x.git"),
])
def test_clean_remote_url(url, clean):
    from mlreg.names import uri_problem

    assert clean_remote_url(url) == clean
    assert uri_problem(clean) is None


def test_not_a_repository(tmp_path):
    with pytest.raises(ProbeFailed, match="not inside a git repository"):
        probe_code(str(tmp_path))
    fp = take_fingerprint(str(tmp_path))
    assert fp.code is None and "not inside a git repository" in fp.code_error


# -- python, container, CI ----------------------------------------------------------------------

def test_package_list_and_digest():
    facts = probe_python()
    pk = facts["packages"]
    lines = "".join(f"{n}=={v}\n" for n, v in sorted(pk["list"].items()))
    assert pk["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert pk["count"] == len(pk["list"])
    assert "scikit-learn" in pk["list"] and "pyyaml" in pk["list"]  # normalized names
    assert list(pk["list"]) == sorted(pk["list"])
    assert _pyprobe.normalize("Foo_Bar.baz") == "foo-bar-baz"


def test_another_interpreter_is_probed_in_its_own_process():
    assert probe_python(sys.executable) == probe_python()
    with pytest.raises(ProbeFailed):
        probe_python("/nonexistent/python")


def test_fingerprint_records_a_failed_package_probe_as_unknown(tmp_path):
    fp = take_fingerprint(str(tmp_path), python="/nonexistent/python")
    assert "packages" in fp.environment["unknown"]
    assert fp.environment["packages"]["count"] == 0


@pytest.mark.parametrize("environ, url", [
    ({"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/fraud",
      "GITHUB_RUN_ID": "7741"}, "https://github.com/acme/fraud/actions/runs/7741"),
    ({"GITHUB_REPOSITORY": "acme/fraud", "GITHUB_RUN_ID": "7741", "GITHUB_RUN_ATTEMPT": "2"},
     "https://github.com/acme/fraud/actions/runs/7741/attempts/2"),
    ({"CI_JOB_URL": "https://gitlab.example.com/ml/fraud/-/jobs/99"},
     "https://gitlab.example.com/ml/fraud/-/jobs/99"),
    ({"BUILDKITE_BUILD_URL": "https://buildkite.com/acme/train/builds/12"},
     "https://buildkite.com/acme/train/builds/12"),
    ({"BUILD_URL": "https://ci:pw@jenkins.example.com/job/train/5/"},
     "https://jenkins.example.com/job/train/5/"),
    ({}, None),
])
def test_ci_run_url(environ, url):
    assert probe_ci_url(environ) == url


def test_container_image_digest():
    digest = "registry.example.com/ml/train@sha256:" + "ab" * 32
    assert probe_container({"MLREG_IMAGE_DIGEST": digest}) == (digest, None)
    image, reason = probe_container({"MLREG_IMAGE_DIGEST": "latest"})
    assert image is None and "is not [repository@]sha256" in reason


def test_fingerprint_is_schema_shaped_and_fast(tmp_path):
    from mlreg.records import violations

    digest = "sha256:" + "cd" * 32
    fp = take_fingerprint(os.getcwd(), environ={"MLREG_IMAGE_DIGEST": digest,
                                                "CI_JOB_URL": "https://ci.example.com/j/1"})
    assert fp.environment["container_image"] == digest
    assert fp.environment["ci_run_url"] == "https://ci.example.com/j/1"
    env = fp.environment
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["os"]["system"] and env["os"]["release"]
    assert env["cpu"]["cores"] >= 1 and env["memory_bytes"] > 0
    # The sections validate as parts of a record.
    rec = {"environment": env, "hardware": fp.hardware}
    assert [v for v in violations(rec, "record") if v.path.startswith(("$.environment",
                                                                        "$.hardware"))] == []
    assert fp.seconds < 5
