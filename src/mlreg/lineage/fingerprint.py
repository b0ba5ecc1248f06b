"""The automatic fingerprint of a training run: code, environment and hardware.

Nothing here needs user code. Each probe is independent, runs external programs with a short
timeout (:data:`PROBE_TIMEOUT`) and never raises: a probe that fails is recorded as
``unknown: {probe: reason}`` next to what the others found. The one exception is the code
probe used by capture, because a record without a commit cannot be valid; capture checks it
before training starts (see :func:`mlreg.lineage.capture`).

What is probed and how:

============  ==================================================================================
code          ``git`` in the training code's folder: top level, remote URL (credentials, query and
              fragment stripped; ``git@host:path`` becomes ``ssh://host/path``) or the local path,
              HEAD commit, branch (or the CI's branch variable on a detached HEAD), dirty flag and
              ``diff_sha256`` = sha256 of ``git diff HEAD --binary`` plus the names and sha256 of
              untracked, non-ignored files. The registry's own outputs (records, a local store)
              are excluded when the registry lives inside the code repository.
python        ``platform`` and ``importlib.metadata`` (see :mod:`mlreg.lineage._pyprobe`), in this
              interpreter or in another one given by path.
os / cpu      ``platform``; CPU model from ``/proc/cpuinfo`` (``sysctl`` on macOS); logical cores.
memory        ``/proc/meminfo`` MemTotal, else ``sysconf`` / ``sysctl hw.memsize``.
gpu           ``nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,
              nounits`` and the ``CUDA Version`` of the plain ``nvidia-smi`` header; CUDA/cuDNN as
              the framework sees them when torch or tensorflow is *already imported* (never
              imported here), else ``nvcc --version`` and ``cudnn_version.h``. No ``nvidia-smi``
              or "No devices were found" is ``present: false``; a driver that does not answer is
              ``present: false`` plus an unknown with nvidia-smi's own message.
container     ``MLREG_IMAGE_DIGEST`` (``[repo@]sha256:<hex>``); inside a container without it
              (``/.dockerenv``, ``/run/.containerenv``, cgroup names, Kubernetes variables) an
              unknown that says how to provide it.
ci            GitHub Actions, GitLab, Buildkite, Jenkins, CircleCI and Azure Pipelines run URLs.
============  ==================================================================================
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from mlreg.lineage import _pyprobe

__all__ = [
    "PROBE_TIMEOUT",
    "Fingerprint",
    "ProbeFailed",
    "take_fingerprint",
    "probe_code",
    "probe_python",
    "probe_gpu",
    "probe_container",
    "probe_ci_url",
    "clean_remote_url",
    "parse_nvidia_smi_query",
]

PROBE_TIMEOUT = 5.0
IMAGE_DIGEST_ENV = "MLREG_IMAGE_DIGEST"
_IMAGE_RE = re.compile(r"^([^@\s]+@)?sha256:[0-9a-f]{64}$")
_UNTRACKED_HASH_LIMIT = 256 * 1024 * 1024  # bigger untracked files count by name and size only


class ProbeFailed(Exception):
    """A probe could not find out; the message is the reason recorded under ``unknown``."""


@dataclass
class Fingerprint:
    """What the probes found. ``code`` is None when the code probe failed (see ``code_error``)."""

    code: dict | None
    code_error: str | None
    environment: dict
    hardware: dict
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


# -- running programs -----------------------------------------------------------------------

def _run(args: Sequence[str], *, timeout: float, cwd: str | None = None,
         env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a probe program; ProbeFailed on a missing binary or a timeout (never hangs)."""
    try:
        return subprocess.run(list(args), capture_output=True, timeout=timeout, cwd=cwd,
                              env=dict(env) if env is not None else None,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise ProbeFailed(f"{args[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise ProbeFailed(f"{os.path.basename(args[0])} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise ProbeFailed(f"{args[0]} could not run: {exc.strerror or exc}") from None


def _first_line(data: bytes) -> str:
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return ""


# -- code -----------------------------------------------------------------------------------

_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}
# Options that make `git diff` output independent of the user's configuration.
_GIT_CFG = ["-c", "core.quotepath=off", "-c", "diff.noprefix=false",
            "-c", "diff.mnemonicPrefix=false", "-c", "color.ui=false"]
_BRANCH_VARS = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BUILDKITE_BRANCH",
                "CIRCLE_BRANCH", "BRANCH_NAME", "GIT_BRANCH", "BUILD_SOURCEBRANCHNAME")


def _git(repo: str, *args: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **_GIT_ENV}
    return _run(["git", *_GIT_CFG, "-C", repo, *args], timeout=timeout, env=env)


def clean_remote_url(url: str) -> str:
    """A remote URL safe to record: no user, password, query or fragment.

    ``git@github.com:acme/x.git`` (scp-like syntax) becomes ``ssh://github.com/acme/x.git``.
    Local paths are returned unchanged.
    """
    url = url.strip()
    scp = re.match(r"^(?:[^@/:\s]+@)?([^/:\s]+):(?!//)(.+)$", url)
    if scp and "://" not in url and not os.path.isabs(url) and len(scp.group(1)) > 1:
        return f"ssh://{scp.group(1)}/{scp.group(2).lstrip('/')}"
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _pathspec_excludes(top: str, exclude: Iterable[str]) -> list[str]:
    out = []
    real_top = os.path.realpath(top)
    for path in exclude:
        real = os.path.realpath(path)
        if real == real_top or not real.startswith(real_top + os.sep):
            continue
        rel = os.path.relpath(real, real_top).replace(os.sep, "/")
        out.append(f":(top,exclude){rel}")
    return out


def probe_code(path: str, *, exclude: Iterable[str] = (), timeout: float = PROBE_TIMEOUT,
               environ: Mapping[str, str] | None = None,
               entrypoint: str | None = None) -> dict:
    """The ``code`` section for the git repository containing ``path``; ProbeFailed if none.

    ``exclude`` lists folders inside the repository that are outputs, not code (the
    registry's ``models/`` and a local artifact store), so writing a record does not make the
    next run dirty. ``entrypoint`` (a file path) is recorded relative to the repository.
    """
    environ = os.environ if environ is None else environ
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    proc = _git(folder, "rev-parse", "--show-toplevel", timeout=timeout)
    if proc.returncode != 0:
        raise ProbeFailed(f"{os.path.abspath(folder)} is not inside a git repository "
                          f"({_first_line(proc.stderr) or 'git rev-parse failed'})")
    top = proc.stdout.decode().strip()
    proc = _git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", timeout=timeout)
    if proc.returncode != 0:
        raise ProbeFailed(f"the git repository {top} has no commit yet")
    commit = proc.stdout.decode().strip()
    code: dict = {"repository": _repository(top, timeout), "commit": commit}

    proc = _git(top, "symbolic-ref", "--short", "-q", "HEAD", timeout=timeout)
    branch = proc.stdout.decode().strip() if proc.returncode == 0 else ""
    if not branch:  # detached HEAD, as in most CI checkouts
        branch = next((environ[v] for v in _BRANCH_VARS if environ.get(v)), "")
    if branch:
        code["branch"] = branch

    digest = code_state_digest(top, exclude=exclude, timeout=timeout)
    code["dirty"] = digest is not None
    if digest is not None:
        code["diff_sha256"] = digest
    if entrypoint and os.path.isfile(entrypoint):
        # A script is recorded relative to the repository; one outside it (a test runner,
        # an installed console script) says nothing about the training code.
        full = os.path.realpath(entrypoint)
        real_top = os.path.realpath(top)
        if full.startswith(real_top + os.sep):
            code["entrypoint"] = os.path.relpath(full, real_top).replace(os.sep, "/")
    elif entrypoint:
        code["entrypoint"] = entrypoint
    return code


def _repository(top: str, timeout: float) -> str:
    proc = _git(top, "remote", timeout=timeout)
    remotes = proc.stdout.decode().split() if proc.returncode == 0 else []
    if remotes:
        name = "origin" if "origin" in remotes else remotes[0]
        proc = _git(top, "remote", "get-url", name, timeout=timeout)
        if proc.returncode == 0 and proc.stdout.strip():
            return clean_remote_url(proc.stdout.decode().strip())
    return top


def code_state_digest(top: str, *, exclude: Iterable[str] = (),
                      timeout: float = PROBE_TIMEOUT) -> str | None:
    """None for a clean working tree, else sha256 of the uncommitted changes.

    The digest covers ``git diff HEAD --binary`` (staged and unstaged changes to tracked
    files) and every untracked, non-ignored file by name and content, so two working trees
    with the same digest hold the same code on top of the same commit.
    """
    spec = ["--", ".", *_pathspec_excludes(top, exclude)]
    proc = _git(top, "status", "--porcelain=v1", "-z", "--untracked-files=all", *spec,
                timeout=timeout)
    if proc.returncode != 0:
        raise ProbeFailed(f"git status failed: {_first_line(proc.stderr)}")
    if not proc.stdout:
        return None
    diff = _git(top, "diff", "HEAD", "--binary", "--no-ext-diff", "--no-textconv",
                "--no-renames", "--no-color", *spec, timeout=timeout)
    if diff.returncode != 0:
        raise ProbeFailed(f"git diff failed: {_first_line(diff.stderr)}")
    h = hashlib.sha256(diff.stdout)
    untracked = _git(top, "ls-files", "--others", "--exclude-standard", "-z", *spec,
                     timeout=timeout)
    for name in sorted(n for n in untracked.stdout.split(b"\0") if n):
        full = os.path.join(top, os.fsdecode(name))
        h.update(b"\0untracked\0" + name + b"\0")
        try:
            size = os.path.getsize(full)
            if size <= _UNTRACKED_HASH_LIMIT:
                with open(full, "rb") as fh:
                    h.update(hashlib.file_digest(fh, "sha256").digest())
            else:
                h.update(f"size={size}".encode())
        except OSError:
            h.update(b"unreadable")
    return h.hexdigest()


# -- python, os, cpu, memory ----------------------------------------------------------------

def probe_python(executable: str | None = None, *, timeout: float = PROBE_TIMEOUT) -> dict:
    """``{"python": {...}, "packages": {...}}`` for this interpreter or ``executable``."""
    if executable is None:
        return _pyprobe.facts()
    import json

    source = open(_pyprobe.__file__, encoding="utf-8").read()  # noqa: SIM115
    proc = _run([executable, "-c", source], timeout=max(timeout, 30.0))
    if proc.returncode != 0:
        raise ProbeFailed(f"{executable} could not list its packages: "
                          f"{_first_line(proc.stderr) or f'exit {proc.returncode}'}")
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise ProbeFailed(f"{executable} printed no package list") from None


def _cpu_model(timeout: float) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu", "Processor") and value.strip():
                    return value.strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        proc = _run(["sysctl", "-n", "machdep.cpu.brand_string"], timeout=timeout)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.decode().strip()
    return platform.processor() or None


def _memory_bytes(timeout: float) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if sys.platform == "darwin":
        proc = _run(["sysctl", "-n", "hw.memsize"], timeout=timeout)
        if proc.returncode == 0 and proc.stdout.strip().isdigit():
            return int(proc.stdout)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# -- gpu --------------------------------------------------------------------------------------

_SMI_QUERY = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"]
_NO_DEVICES = re.compile(r"no devices (were )?found", re.I)


def parse_nvidia_smi_query(text: str) -> list[tuple[str, int | None, str]]:
    """``(name, memory MiB, driver)`` per GPU from the CSV of ``--query-gpu``; ValueError if odd."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.rsplit(",", 2)]
        if len(parts) != 3 or not parts[0] or not re.match(r"^\d[\w.-]*$", parts[2]):
            raise ValueError(f"unexpected nvidia-smi output: {line.strip()[:120]!r}")
        mem = int(parts[1]) if parts[1].isdigit() else None
        out.append((parts[0], mem, parts[2]))
    return out


def _cuda_from_header(text: str) -> str | None:
    m = re.search(r"CUDA Version:\s*([0-9]+(?:\.[0-9]+)*)", text)
    return m.group(1) if m else None


def _cudnn_from_int(v: int) -> str:
    if v >= 90000:  # cuDNN 9: major*10000 + minor*100 + patch
        return f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
    return f"{v // 1000}.{v % 1000 // 100}.{v % 100}"  # cuDNN <= 8: major*1000 + minor*100


def _cudnn_from_header() -> str | None:
    for base in ("/usr/include", "/usr/local/cuda/include", "/usr/include/x86_64-linux-gnu"):
        for name in ("cudnn_version.h", "cudnn.h"):
            path = os.path.join(base, name)
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read(20000)
            except OSError:
                continue
            nums = [re.search(rf"#define CUDNN_{k}\s+(\d+)", text)
                    for k in ("MAJOR", "MINOR", "PATCHLEVEL")]
            if all(nums):
                return ".".join(m.group(1) for m in nums if m)
    return None


def _framework_gpu() -> tuple[dict, str | None]:
    """GPU facts from torch or tensorflow when the training code already imported them."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "cuda"):
        facts: dict = {}
        cuda = getattr(getattr(torch, "version", None), "cuda", None)
        if cuda:
            facts["cuda"] = str(cuda)
        try:
            cudnn = torch.backends.cudnn.version()
            if cudnn:
                facts["cudnn"] = _cudnn_from_int(int(cudnn))
        except Exception:  # noqa: BLE001 - framework queries are best effort
            pass
        try:
            if torch.cuda.is_available():
                facts["count"] = int(torch.cuda.device_count())
                facts["type"] = str(torch.cuda.get_device_name(0))
                props = torch.cuda.get_device_properties(0)
                facts["memory_mb"] = int(props.total_memory) // (1024 * 1024)
        except Exception:  # noqa: BLE001
            pass
        return facts, "torch"
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        facts = {}
        try:
            info = tf.sysconfig.get_build_info()
            if info.get("cuda_version"):
                facts["cuda"] = str(info["cuda_version"])
            if info.get("cudnn_version"):
                facts["cudnn"] = str(info["cudnn_version"])
        except Exception:  # noqa: BLE001
            pass
        try:
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                facts["count"] = len(gpus)
                details = tf.config.experimental.get_device_details(gpus[0])
                if details.get("device_name"):
                    facts["type"] = str(details["device_name"])
        except Exception:  # noqa: BLE001
            pass
        return facts, "tensorflow"
    return {}, None


def _proc_driver_version() -> str | None:
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8", errors="replace") as fh:
            m = re.search(r"Kernel Module(?: for \S+)?\s+([0-9][0-9.]+)", fh.read())
            return m.group(1) if m else None
    except OSError:
        return None


def probe_gpu(*, timeout: float = PROBE_TIMEOUT) -> tuple[dict, dict[str, str]]:
    """``(gpu section, unknowns)``; a machine without a GPU is ``{"present": False}``."""
    gpu: dict = {"present": False}
    unknown: dict[str, str] = {}
    sources = []
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            proc = _run([smi, *_SMI_QUERY], timeout=timeout)
            text = proc.stdout.decode("utf-8", "replace")
            if proc.returncode != 0 or not text.strip():
                message = _first_line(proc.stdout) or _first_line(proc.stderr)
                if not _NO_DEVICES.search(message or ""):
                    unknown["gpu"] = (f"nvidia-smi failed (exit {proc.returncode}): "
                                      f"{message or 'no output'}")
            elif _NO_DEVICES.search(text):
                pass
            else:
                rows = parse_nvidia_smi_query(text)
                names = list(dict.fromkeys(r[0] for r in rows))
                mems = [r[1] for r in rows if r[1] is not None]
                gpu = {"present": True, "type": " + ".join(names), "count": len(rows),
                       "driver": rows[0][2]}
                if mems:
                    gpu["memory_mb"] = min(mems)
                sources.append("nvidia-smi")
                header = _run([smi], timeout=timeout)
                cuda = _cuda_from_header(header.stdout.decode("utf-8", "replace"))
                if cuda:
                    gpu["cuda"] = cuda
        except (ProbeFailed, ValueError) as exc:
            unknown["gpu"] = str(exc)

    framework, fw_name = _framework_gpu()
    if fw_name and framework:
        if not gpu["present"] and framework.get("count"):
            driver = _proc_driver_version()
            gpu = {"present": True, "type": framework.get("type", "unknown"),
                   "count": framework["count"], "driver": driver or "unknown"}
            if driver is None:
                unknown["gpu_driver"] = "no nvidia-smi and no /proc/driver/nvidia/version"
            if "memory_mb" in framework:
                gpu["memory_mb"] = framework["memory_mb"]
        if gpu["present"]:
            for key in ("cuda", "cudnn"):  # what the framework runs with beats the header
                if key in framework:
                    gpu[key] = framework[key]
            sources.append(fw_name)

    if gpu["present"]:
        if not (fw_name and "cuda" in framework):  # the toolkit beats the driver's header
            try:
                proc = _run(["nvcc", "--version"], timeout=timeout)
                m = re.search(r"release ([0-9][0-9.]*)", proc.stdout.decode("utf-8", "replace"))
                if m:
                    gpu["cuda"] = m.group(1).rstrip(".")
                    sources.append("nvcc")
            except ProbeFailed:
                pass
        if "cudnn" not in gpu:
            cudnn = _cudnn_from_header()
            if cudnn:
                gpu["cudnn"] = cudnn
        gpu["source"] = ", ".join(dict.fromkeys(sources))
    return gpu, unknown


# -- container and CI -------------------------------------------------------------------------

def _container_hint() -> str | None:
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    try:
        with open("/proc/1/cgroup", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for word in ("kubepods", "docker", "containerd", "libpod", "lxc"):
            if word in text:
                return word
    except OSError:
        pass
    return None


def probe_container(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """``(image digest, None)``, or ``(None, reason)`` in a container whose digest is unknown.

    Outside a container with no digest given both are None: there is nothing to record.
    """
    environ = os.environ if environ is None else environ
    value = (environ.get(IMAGE_DIGEST_ENV) or "").strip()
    if value:
        if _IMAGE_RE.match(value):
            return value, None
        return None, (f"{IMAGE_DIGEST_ENV}={value[:80]!r} is not [repository@]sha256:<64 hex>")
    hint = _container_hint()
    if hint:
        return None, (f"running in a container ({hint}) whose image digest is unknown: "
                      f"set {IMAGE_DIGEST_ENV}=<repository>@sha256:<digest>")
    return None, None


def probe_ci_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The URL of the CI run this process belongs to, when a known CI says so."""
    e = os.environ if environ is None else environ
    url = None
    if e.get("GITHUB_RUN_ID") and e.get("GITHUB_REPOSITORY"):
        server = (e.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
        url = f"{server}/{e['GITHUB_REPOSITORY']}/actions/runs/{e['GITHUB_RUN_ID']}"
        if e.get("GITHUB_RUN_ATTEMPT", "1") not in ("", "1"):
            url += f"/attempts/{e['GITHUB_RUN_ATTEMPT']}"
    elif e.get("CI_JOB_URL"):
        url = e["CI_JOB_URL"]
    elif e.get("BUILDKITE_BUILD_URL"):
        url = e["BUILDKITE_BUILD_URL"]
    elif e.get("CIRCLE_BUILD_URL"):
        url = e["CIRCLE_BUILD_URL"]
    elif e.get("BUILD_URL"):  # Jenkins
        url = e["BUILD_URL"]
    elif e.get("SYSTEM_COLLECTIONURI") and e.get("BUILD_BUILDID"):  # Azure Pipelines
        url = (f"{e['SYSTEM_COLLECTIONURI'].rstrip('/')}/{e.get('SYSTEM_TEAMPROJECT', '')}"
               f"/_build/results?buildId={e['BUILD_BUILDID']}")
    if not url:
        return None
    from mlreg.names import uri_problem

    if uri_problem(url):
        parts = urlsplit(url)
        host = parts.hostname or ""
        url = urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""),
                          parts.path, "", ""))
    return url


# -- everything ------------------------------------------------------------------------------

def _timed(name: str, fn, timings: dict[str, float]):  # noqa: ANN001, ANN202
    def run():  # noqa: ANN202
        t0 = time.perf_counter()
        try:
            return fn(), None
        except ProbeFailed as exc:
            return None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a probe never breaks a capture
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            timings[name] = round(time.perf_counter() - t0, 4)
    return run


def take_fingerprint(
    code_dir: str | None = None, *, exclude: Iterable[str] = (), python: str | None = None,
    timeout: float = PROBE_TIMEOUT, environ: Mapping[str, str] | None = None,
    entrypoint: str | None = None, gpu: bool = True,
) -> Fingerprint:
    """Run every probe (concurrently: the slow ones are separate programs) and collect them.

    ``python`` probes another interpreter's packages (a job's virtualenv) instead of this one.
    ``gpu=False`` skips the GPU probe (used when only the code state is wanted).
    """
    t0 = time.perf_counter()
    environ = os.environ if environ is None else environ
    timings: dict[str, float] = {}
    exclude = list(exclude)
    jobs = {
        "code": _timed("code", lambda: probe_code(code_dir or os.getcwd(), exclude=exclude,
                                                  timeout=timeout, environ=environ,
                                                  entrypoint=entrypoint), timings),
        "python": _timed("python", lambda: probe_python(python, timeout=timeout), timings),
        "cpu": _timed("cpu", lambda: _cpu_model(timeout), timings),
        "memory": _timed("memory", lambda: _memory_bytes(timeout), timings),
    }
    if gpu:
        jobs["gpu"] = _timed("gpu", lambda: probe_gpu(timeout=timeout), timings)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}

    env_unknown: dict[str, str] = {}
    code, code_error = results["code"]
    py, py_error = results["python"]
    environment: dict = {}
    if py is not None:
        environment["python"] = py["python"]
    else:
        env_unknown["packages"] = py_error or "unknown"
        environment["python"] = {"version": platform.python_version(),
                                 "implementation": platform.python_implementation()}
    environment["os"] = {"system": platform.system() or "unknown", "release": platform.release(),
                         "platform": platform.platform()}
    cpu_model, cpu_error = results["cpu"]
    cpu: dict = {}
    if cpu_model:
        cpu["model"] = cpu_model
    elif cpu_error:
        env_unknown["cpu"] = cpu_error
    if os.cpu_count():
        cpu["cores"] = os.cpu_count()
    if platform.machine():
        cpu["arch"] = platform.machine()
    environment["cpu"] = cpu
    memory, mem_error = results["memory"]
    if memory:
        environment["memory_bytes"] = int(memory)
    else:
        env_unknown["memory"] = mem_error or "no memory size reported"
    if py is not None:
        environment["packages"] = py["packages"]
    else:  # the schema requires the digest: record the digest of nothing, and why
        environment["packages"] = {"sha256": _pyprobe.packages_digest({}), "count": 0}
    image, image_reason = probe_container(environ)
    if image:
        environment["container_image"] = image
    elif image_reason:
        env_unknown["container_image"] = image_reason
    ci = probe_ci_url(environ)
    if ci:
        environment["ci_run_url"] = ci
    if env_unknown:
        environment["unknown"] = env_unknown

    hardware: dict = {"gpu": {"present": False}}
    if gpu:
        found, gpu_error = results["gpu"]
        if found is not None:
            hardware["gpu"], hw_unknown = found
            if hw_unknown:
                hardware["unknown"] = hw_unknown
        else:
            hardware["unknown"] = {"gpu": gpu_error or "unknown"}
    return Fingerprint(code=code, code_error=code_error, environment=environment,
                       hardware=hardware, seconds=round(time.perf_counter() - t0, 4),
                       timings=timings)
