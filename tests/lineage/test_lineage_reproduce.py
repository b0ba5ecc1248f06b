"""`mlreg reproduce`: what differs between the recorded environment and this one, exactly."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import zipfile

from lineage_helpers import run_job

from mlreg.lineage.compare import compare_state

RECORD = {
    "environment": {
        "python": {"version": "3.11.7", "implementation": "CPython"},
        "os": {"system": "Linux", "release": "5.15.0-1051-aws", "platform": "x"},
        "cpu": {"model": "Intel Xeon", "cores": 32, "arch": "x86_64"},
        "memory_bytes": 1,
        "packages": {"sha256": "a" * 64, "count": 3,
                     "list": {"numpy": "1.26.4", "torch": "2.2.2", "six": "1.16.0"}},
    },
    "hardware": {"gpu": {"present": True, "type": "NVIDIA A10G", "count": 1,
                         "driver": "535.129.03", "cuda": "12.2", "cudnn": "8.9.2"}},
    "seeds": {"values": {"python": 1}, "determinism": {"PYTHONHASHSEED": "0",
                                                       "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}},
    "code": {"repository": "https://github.com/acme/fraud", "commit": "f3a9c71e", "dirty": False},
}


def current_like(record: dict) -> dict:
    rec = copy.deepcopy(record)
    return {"environment": rec["environment"], "hardware": rec["hardware"],
            "determinism": dict(rec["seeds"]["determinism"]), "code": dict(rec["code"])}


def test_identical_state_has_no_difference():
    result = compare_state(RECORD, current_like(RECORD))
    assert result.identical and result.differences == [] and result.notes == []


def test_every_kind_of_difference_is_named():
    cur = current_like(RECORD)
    env = cur["environment"]
    env["python"]["version"] = "3.11.9"
    env["os"]["release"] = "6.1.0"
    env["memory_bytes"] = 2  # memory size does not change results: not compared
    env["packages"]["list"] = {"numpy": "2.0.0", "six": "1.16.0", "pandas": "2.2.2"}
    cur["hardware"]["gpu"]["driver"] = "550.54.15"
    cur["determinism"]["PYTHONHASHSEED"] = None
    cur["code"] = {**cur["code"], "commit": "0123abcd", "dirty": True, "diff_sha256": "b" * 64}
    got = [(d.field, d.change, d.recorded, d.current) for d in
           compare_state(RECORD, cur).differences]
    assert got == [
        ("python.version", "changed", "3.11.7", "3.11.9"),
        ("os.release", "changed", "5.15.0-1051-aws", "6.1.0"),
        ("packages.numpy", "changed", "1.26.4", "2.0.0"),
        ("packages.pandas", "added", None, "2.2.2"),
        ("packages.torch", "removed", "2.2.2", None),
        ("gpu.driver", "changed", "535.129.03", "550.54.15"),
        ("determinism.PYTHONHASHSEED", "removed", "0", None),
        ("code.commit", "changed", "f3a9c71e", "0123abcd"),
        ("code.dirty", "changed", False, True),
    ]


def test_no_gpu_here_and_dirty_records():
    cur = current_like(RECORD)
    cur["hardware"] = {"gpu": {"present": False}}
    rec = copy.deepcopy(RECORD)
    rec["code"].update(dirty=True, diff_sha256="c" * 64)
    rec["seeds"]["values"] = {}
    rec["environment"]["unknown"] = {"container_image": "no digest"}
    cur["code"].update(dirty=True, diff_sha256="c" * 64)
    result = compare_state(rec, cur)
    assert [str(d) for d in result.differences] == [
        "gpu.present: True -> False",
        "gpu.type: removed (recorded NVIDIA A10G, absent here)",
        "gpu.count: removed (recorded 1, absent here)",
        "gpu.driver: removed (recorded 535.129.03, absent here)",
        "gpu.cuda: removed (recorded 12.2, absent here)",
        "gpu.cudnn: removed (recorded 8.9.2, absent here)",
    ]
    assert any("no RNG seeds" in n for n in result.notes)
    assert any("uncommitted changes" in n for n in result.notes)
    assert "the record could not tell container_image: no digest" in result.notes


def test_only_a_digest_recorded():
    rec = copy.deepcopy(RECORD)
    del rec["environment"]["packages"]["list"]
    cur = current_like(RECORD)
    cur["environment"]["packages"]["sha256"] = "d" * 64
    result = compare_state(rec, cur)
    assert [d.field for d in result.differences] == ["packages.sha256"]


# -- the real thing: a package changes in a scratch virtualenv ---------------------------------

def make_wheel(folder: str, name: str, version: str) -> str:
    """A minimal pure-Python wheel, built by hand: no index and no build backend needed."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: mlreg-tests\nRoot-Is-Purelib: true\n"
                          "Tag: py3-none-any\n"),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    path = os.path.join(folder, f"{dist}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as zf:
        for name_, text in files.items():
            zf.writestr(name_, text)
    return path


def pip_install(python: str, wheel: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q",
                    "--no-index", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
                    wheel], check=True, capture_output=True)


def test_reproduce_names_the_exact_package_change_in_a_scratch_venv(repo, lake, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout
    # The scratch venv sees this environment's packages (mlreg, scikit-learn) behind its own.
    with open(os.path.join(site.strip(), "_parent_env.pth"), "w") as fh:
        fh.write(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    pip_install(python, make_wheel(str(tmp_path), "mlreg-dummy", "1.0"))

    proc = run_job(repo, lake, str(tmp_path / "out"), python=python)
    assert proc.returncode == 0, proc.stderr

    def reproduce() -> tuple[int, dict]:
        p = subprocess.run([python, "-m", "mlreg", "reproduce", "fraud@1", "-C", repo, "--json"],
                           capture_output=True, text=True, cwd=repo)
        assert p.stderr == ""
        return p.returncode, json.loads(p.stdout)

    code, result = reproduce()
    assert (code, result["identical"], result["differences"]) == (0, True, [])

    pip_install(python, make_wheel(str(tmp_path), "mlreg-dummy", "2.0"))
    code, result = reproduce()
    assert code == 1
    assert result["differences"] == [{"field": "packages.mlreg-dummy", "change": "changed",
                                      "recorded": "1.0", "current": "2.0"}]
    text = subprocess.run([python, "-m", "mlreg", "reproduce", "fraud@1", "-C", repo],
                          capture_output=True, text=True, cwd=repo).stdout
    assert "fraud@1: 1 difference with the recorded environment\n" \
           "  packages.mlreg-dummy: 1.0 -> 2.0\n" in text


def test_reproduce_with_another_interpreter_and_a_missing_version(repo, tmp_path, capsys,
                                                                   monkeypatch):
    from lineage_helpers import cli

    from mlreg.lineage import capture

    (tmp_path / "m.bin").write_bytes(b"m")
    (tmp_path / "d.csv").write_text("a\n1\n")
    with capture("fraud", registry=repo, code_dir=repo) as run:
        run.log_dataset("train", str(tmp_path / "d.csv"))
        run.log_artifact(str(tmp_path / "m.bin"))
    monkeypatch.chdir(repo)
    # The packages of an interpreter given by path are probed in that interpreter.
    code, out, _ = cli(capsys, "reproduce", "fraud@1", "--python", sys.executable)
    assert code == 0, out
    code, _out, err = cli(capsys, "reproduce", "fraud@2")
    assert code == 2 and "fraud@2 not found" in err
