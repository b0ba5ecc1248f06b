"""The registry: one read-only API over a working tree or any git revision.

    reg = Registry.open(".")                 # a directory (working tree)
    reg = Registry.open(".", rev="main~3")   # a revision, read through git, no checkout
    reg.versions("fraud")                    # ['126', '127'] in natural order
    reg.record("fraud", "127")               # the validated record (dict)
    reg.resolve("fraud@latest")              # Resolved(model='fraud', version='127', ...)
    reg.deployments()["fraud-scoring"]       # Deployment(stable='126', canary=...)

Layout (DESIGN.md §1)::

    mlreg.yaml  production.yaml  policies/*.yaml
    models/<model>/model.yaml  models/<model>/<version>.yaml  models/<model>/online/*.yaml
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Protocol

from mlreg.errors import LoadError, NotFound, RegistryError
from mlreg.gitio import GitTree, resolve_commit
from mlreg.names import (
    VERSION_PATTERN,
    check_name,
    check_version,
    natural_key,
    parse_ref,
)
from mlreg.records import check_document
from mlreg.yamlio import MAX_BYTES, Loaded, load_yaml_text

__all__ = [
    "Registry",
    "Deployment",
    "Resolved",
    "DirSource",
    "GitSource",
    "SETTINGS_FILE",
    "DEFAULT_MANIFEST",
]

SETTINGS_FILE = "mlreg.yaml"
DEFAULT_MANIFEST = "production.yaml"
_VERSION_RE = re.compile(VERSION_PATTERN)
_RECORD_FILE = re.compile(r"^models/([^/]+)/([^/]+)\.yaml$")


class Source(Protocol):
    label: str

    def files(self) -> list[str]: ...

    def read(self, relpath: str) -> bytes | None: ...

    def display(self, relpath: str) -> str: ...

    def close(self) -> None: ...


class DirSource:
    """Files of a registry in a directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.label = self.root

    def files(self) -> list[str]:
        out = []
        for name in os.listdir(self.root):
            if os.path.isfile(os.path.join(self.root, name)):
                out.append(name)
        for top in ("models", "policies"):
            base = os.path.join(self.root, top)
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                out.extend(f"{rel}/{f}" for f in filenames)
        return out

    def read(self, relpath: str) -> bytes | None:
        full = os.path.join(self.root, *relpath.split("/"))
        try:
            if os.path.getsize(full) > MAX_BYTES:
                raise LoadError(relpath, f"is over the {MAX_BYTES:,}-byte cap",
                                fix="registry files hold metadata only")
            with open(full, "rb") as fh:
                return fh.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def display(self, relpath: str) -> str:
        return relpath

    def close(self) -> None:
        pass


class GitSource:
    """Files of a registry at a git revision, read through git without a checkout."""

    def __init__(self, repo: str, rev: str) -> None:
        self.repo = os.path.abspath(repo)
        self.rev = rev
        self.commit = resolve_commit(self.repo, rev)
        self.tree = GitTree(self.repo, self.commit)
        self.label = f"{rev} ({self.commit[:12]})"
        # A registry may live in a subfolder of the repository.
        from mlreg.gitio import git

        prefix = git(self.repo, "rev-parse", "--show-prefix").stdout.decode().strip()
        self.prefix = prefix

    def files(self) -> list[str]:
        n = len(self.prefix)
        return [p[n:] for p in self.tree.entries() if p.startswith(self.prefix)]

    def read(self, relpath: str) -> bytes | None:
        entry = self.tree.entries().get(self.prefix + relpath)
        if entry is None:
            return None
        if entry.size > MAX_BYTES:
            raise LoadError(self.display(relpath), f"is {entry.size:,} bytes, over the "
                            f"{MAX_BYTES:,}-byte cap", fix="registry files hold metadata only")
        return self.tree.read_blob(entry.blob)

    def display(self, relpath: str) -> str:
        return f"{self.rev}:{relpath}"

    def close(self) -> None:
        self.tree.close()


@dataclass(frozen=True)
class Deployment:
    """What serves one service: the stable version and an optional canary."""

    service: str
    model: str
    stable: str
    canary: str | None = None
    canary_percent: float | None = None
    target: str | None = None
    surface: str | None = None
    manifest: str = DEFAULT_MANIFEST

    def to_dict(self) -> dict:
        return {
            "service": self.service, "model": self.model, "stable": self.stable,
            "canary": self.canary, "canary_percent": self.canary_percent,
            "target": self.target, "surface": self.surface, "manifest": self.manifest,
        }


@dataclass(frozen=True)
class Resolved:
    """A name resolved to one model version (and, for a service, its deployment)."""

    model: str
    version: str
    deployment: Deployment | None = None

    def __str__(self) -> str:
        return f"{self.model}@{self.version}"


class Registry:
    """Read-only access to a registry (directory or git revision). Close it when done."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._files: list[str] | None = None
        self._cache: dict[tuple[str, str], Loaded] = {}

    @classmethod
    def open(cls, path: str = ".", rev: str | None = None) -> Registry:
        if not os.path.isdir(path):
            raise NotFound(f"{path}: no such directory")
        src: Source = GitSource(path, rev) if rev else DirSource(path)
        reg = cls(src)
        if reg.source.read(SETTINGS_FILE) is None:
            reg.close()
            where = f"{path} at {rev}" if rev else path
            raise NotFound(f"{where}: not an mlreg registry (no {SETTINGS_FILE}); "
                           "run 'mlreg init' to create one")
        return reg

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.source.close()

    @property
    def root(self) -> str | None:
        """The directory of a working-tree registry (None for a revision)."""
        return getattr(self.source, "root", None)

    @property
    def commit(self) -> str | None:
        return getattr(self.source, "commit", None)

    # -- files ---------------------------------------------------------------------------
    def files(self) -> list[str]:
        if self._files is None:
            self._files = sorted(self.source.files())
        return self._files

    def load(self, relpath: str, kind: str, *, validate: bool = True) -> Loaded:
        """Load ``relpath`` strictly and validate it as ``kind`` (cached)."""
        key = (relpath, kind)
        if key in self._cache:
            return self._cache[key]
        raw = self.source.read(relpath)
        shown = self.source.display(relpath)
        if raw is None:
            raise NotFound(f"{shown}: no such file in the registry at {self.source.label}")
        loaded = load_yaml_text(raw, shown)
        if validate:
            check_document(loaded, kind)
        self._cache[key] = loaded
        return loaded

    def read_bytes(self, relpath: str) -> bytes | None:
        return self.source.read(relpath)

    # -- settings ------------------------------------------------------------------------
    def settings(self) -> dict:
        return self.load(SETTINGS_FILE, "settings").data

    def manifests(self) -> list[str]:
        return list(self.settings().get("manifests") or [DEFAULT_MANIFEST])

    # -- models and versions -------------------------------------------------------------
    def models(self) -> list[str]:
        names = set()
        for f in self.files():
            parts = f.split("/")
            if len(parts) == 3 and parts[0] == "models" and parts[2].endswith(".yaml"):
                names.add(parts[1])
        return sorted(names)

    def version_files(self) -> dict[str, list[str]]:
        """model -> versions (natural order), from file names alone: fast for 10,000s."""
        out: dict[str, list[str]] = {}
        for f in self.files():
            m = _RECORD_FILE.match(f)
            if m and m.group(2) != "model" and _VERSION_RE.match(m.group(2)):
                out.setdefault(m.group(1), []).append(m.group(2))
        for v in out.values():
            v.sort(key=natural_key)
        return out

    def versions(self, model: str) -> list[str]:
        check_name(model, "model")
        return self.version_files().get(model, [])

    def has_model(self, model: str) -> bool:
        return f"models/{model}/model.yaml" in set(self.files()) or bool(self.versions(model))

    def model_info(self, model: str) -> dict:
        check_name(model, "model")
        return self.load(f"models/{model}/model.yaml", "model").data

    @staticmethod
    def record_path(model: str, version: str) -> str:
        return f"models/{model}/{version}.yaml"

    def record_loaded(self, model: str, version: str) -> Loaded:
        check_name(model, "model")
        check_version(version)
        path = self.record_path(model, version)
        if self.source.read(path) is None:
            known = self.versions(model)
            hint = (f"; known versions: {', '.join(known[-5:])}" if known
                    else f"; model {model!r} has no versions")
            raise NotFound(f"{model}@{version} not found in the registry at "
                           f"{self.source.label}{hint}")
        loaded = self.load(path, "record")
        data = loaded.data
        if data.get("model") != model or data.get("version") != version:
            raise RegistryError(
                f"{loaded.path}: says model {data.get('model')!r} version "
                f"{data.get('version')!r}, but its path says {model}@{version} "
                "(fix: the file must be models/<model>/<version>.yaml)")
        return loaded

    def record(self, model: str, version: str) -> dict:
        return self.record_loaded(model, version).data

    def latest(self, model: str) -> str:
        versions = self.versions(model)
        if not versions:
            raise NotFound(f"model {model!r} has no versions in the registry at "
                           f"{self.source.label}")
        return versions[-1]

    # -- deployments ---------------------------------------------------------------------
    def deployments(self) -> dict[str, Deployment]:
        out: dict[str, Deployment] = {}
        for manifest in self.manifests():
            if self.source.read(manifest) is None:
                continue
            data = self.load(manifest, "deployments").data
            for service, entry in (data.get("services") or {}).items():
                if service in out:
                    raise RegistryError(
                        f"{self.source.display(manifest)}: service {service!r} is also "
                        f"declared in {out[service].manifest} (fix: declare it once)")
                canary = entry.get("canary") or {}
                out[service] = Deployment(
                    service=service, model=entry["model"], stable=entry["stable"],
                    canary=canary.get("version"), canary_percent=canary.get("percent"),
                    target=entry.get("target"), surface=entry.get("surface"),
                    manifest=manifest,
                )
        return out

    def deployment(self, service: str) -> Deployment:
        deps = self.deployments()
        if service not in deps:
            known = ", ".join(sorted(deps)) or "none"
            raise NotFound(f"service {service!r} is not in the deployment manifest "
                           f"(services: {known})")
        return deps[service]

    # -- names ---------------------------------------------------------------------------
    def resolve(self, text: str) -> Resolved:
        """Resolve ``model@version``, ``model@latest`` or a service name to a version.

        A service resolves to its stable version; its canary is on ``.deployment``.
        """
        ref = parse_ref(text)
        if ref.service is not None:
            dep = self.deployments().get(ref.service)
            if dep is None:
                if self.versions(ref.service):
                    raise NotFound(f"{text!r} is a model, not a service: name a version, "
                                   f"e.g. {text}@latest")
                raise NotFound(f"{text!r} is neither a service in the deployment manifest "
                               "nor MODEL@VERSION")
            return Resolved(dep.model, dep.stable, dep)
        assert ref.model is not None and ref.version is not None
        version = self.latest(ref.model) if ref.version == "latest" else ref.version
        if version not in self.versions(ref.model):
            self.record_loaded(ref.model, version)  # raises NotFound with a hint
        return Resolved(ref.model, version)

    # -- policies ------------------------------------------------------------------------
    def policy_files(self) -> list[str]:
        return [f for f in self.files()
                if f.startswith("policies/") and f.count("/") == 1 and f.endswith(".yaml")]
