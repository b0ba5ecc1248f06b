"""The capture API: a training run that ends as one validated lineage record.

    from mlreg.lineage import capture

    with capture("fraud", registry="registry/", owner="risk-ml@example.com") as run:
        run.seed_everything(1234)
        run.log_params(learning_rate=0.001, batch_size=2048)
        run.log_dataset("train", "data/train.parquet")
        run.log_features(["amount_z", "merchant_risk"], definition="features/fraud.yaml")
        model = train(...)
        run.log_metrics("validation", {"auc": 0.91})
        run.log_artifact("out/model.pkl", format="pickle")
        run.log_evaluation("out/eval_predictions.parquet", "data/eval.parquet",
                           id_column="id", label_column="label", score_column="score")
    run.record  # the record as written to models/fraud/<version>.yaml

Opening the run takes the fingerprint (code, environment, hardware; see
:mod:`mlreg.lineage.fingerprint`) and chooses the version (see :mod:`mlreg.lineage.versions`);
it refuses to start when the training code is not in a git repository with a commit, since no
record could be valid without one. Datasets and feature files are hashed when logged (that is
when they are the bytes being trained on); artifacts are uploaded at the end.

On a clean exit :meth:`Run.finish` validates the record (with placeholder digests) before
uploading anything, uploads the artifacts and the predictions file to the registry's store,
validates the final record and writes it without ever overwriting. If the block raises, nothing
is uploaded or written and the exception propagates; if finishing fails half-way, every object
this run created in the store is deleted again.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import posixpath
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from mlreg.errors import InputError, MlregError, RegistryError
from mlreg.lineage.datasets import identify_dataset, normalize_role
from mlreg.lineage.fingerprint import PROBE_TIMEOUT, Fingerprint, probe_gpu, take_fingerprint
from mlreg.lineage.seeding import determinism_env, seed_everything
from mlreg.lineage.versions import plan_version
from mlreg.lineage.writer import render_record, write_new_file
from mlreg.names import check_name, check_uri, check_version

__all__ = ["Run", "capture"]

_ARTIFACT_NAME = r"^[a-z0-9][a-z0-9._-]*$"
_FORMATS = {".pkl": "pickle", ".pickle": "pickle", ".joblib": "joblib", ".onnx": "onnx",
            ".pt": "torch", ".pth": "torch", ".safetensors": "safetensors",
            ".tflite": "tflite", ".h5": "keras-h5", ".keras": "keras", ".json": "json",
            ".txt": "text", ".bin": "binary", ".tar": "tar", ".gz": "gzip", ".zip": "zip",
            ".ubj": "xgboost-ubj", ".cbm": "catboost", ".mlmodel": "coreml",
            ".parquet": "parquet", ".csv": "csv"}
_SPLITS = {"training": "training", "train": "training", "validation": "validation",
           "val": "validation", "valid": "validation"}
_PLACEHOLDER_SHA = "0" * 64


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: Any, where: str) -> Any:
    """A value YAML writes and the strict loader reads back identically (numpy included)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)  # numpy scalars and 0-d arrays
    if callable(item) and getattr(value, "ndim", 0) == 0:
        return _plain(item(), where)
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and getattr(value, "size", 1001) <= 1000:
        return _plain(tolist(), where)
    if isinstance(value, _dt.date | _dt.datetime):
        return value.isoformat()
    raise InputError(f"{where}: {type(value).__name__} values cannot be recorded "
                     "(use numbers, strings, booleans, lists or mappings)")


def _metric(value: Any, where: str) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"{where}: a metric must be a number, got a boolean")
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        value = item()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # NaN/inf: recorded as unknown
    raise InputError(f"{where}: a metric must be a number, got {type(value).__name__} {value!r}")


class _Artifact:
    def __init__(self, path: str, entry: dict) -> None:
        self.path = path
        self.entry = entry


class Run:
    """One training run being captured. Use :func:`capture` to open one."""

    def __init__(
        self, model: str, registry: str = ".", *, owner: str | None = None,
        version: str | None = None, parent: str | None = None, description: str | None = None,
        tags: Iterable[str] | None = None, task: str | None = None,
        code_dir: str | None = None, entrypoint: str | None = None, python: str | None = None,
        progress: Any = None, probe_timeout: float = PROBE_TIMEOUT, mode: str = "api",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        from mlreg.registry import Registry
        from mlreg.storage import open_store

        self._t0 = time.monotonic()
        self.started = _utc_now()
        self.model = check_name(model, "model")
        self.root = os.path.abspath(registry)
        with Registry.open(self.root) as reg:
            self.settings = reg.settings()
            # Deployments and model.yaml only supply defaults (parent, owner): a broken one
            # must not stop a training job from being captured; `mlreg validate` reports it.
            try:
                self._deployments = {s: d for s, d in reg.deployments().items()
                                     if d.model == model}
            except InputError:
                self._deployments = {}
            model_yaml = f"models/{model}/model.yaml" in reg.files()
            model_info = None
            if model_yaml:
                try:
                    model_info = reg.model_info(model)
                except InputError:
                    model_info = None
        self._has_model_yaml = model_yaml
        self.main_branch = str(self.settings.get("main_branch") or "main")
        self._requested = check_version(version) if version is not None else None
        self.plan = plan_version(self.root, model, requested=self._requested,
                                 main_branch=self.main_branch)
        self.version = self.plan.version
        store_uri = self.settings["artifact_store"]
        self.store = open_store(store_uri, base_dir=self.root,
                                **(self.settings.get("store_options") or {}))
        self.progress = progress
        self.mode = mode
        self.task = task

        if entrypoint is None and mode == "api":
            entrypoint = _main_script()
        code_dir = code_dir or (os.path.dirname(entrypoint) if entrypoint and mode == "api"
                                else os.getcwd())
        self.code_dir = code_dir
        self._exclude = [os.path.join(self.root, "models")]
        if "://" not in store_uri:
            self._exclude.append(os.path.join(self.root, os.path.expanduser(store_uri)))
        self.fingerprint: Fingerprint = take_fingerprint(
            code_dir, exclude=self._exclude, python=python, timeout=probe_timeout,
            environ=environ, entrypoint=entrypoint)
        if self.fingerprint.code is None:
            raise InputError(
                f"cannot capture {model}: {self.fingerprint.code_error}. A lineage record needs "
                "the commit of the training code: run the job from a git repository with a "
                "commit (or pass code_dir=)")
        if mode == "cli" and entrypoint:
            self.fingerprint.code["entrypoint"] = entrypoint
        self._frameworks_at_start = {m for m in ("torch", "tensorflow") if m in sys.modules}

        self.owner = owner or (model_info or {}).get("owner") or self._git_user()
        self.parent = check_version(parent) if parent is not None else None
        self.description = description
        self.tags = list(dict.fromkeys(tags)) if tags else []
        self.hyperparameters: dict = {}
        self.seeds: dict[str, int] = {}
        self.determinism: dict = determinism_env()
        self.data: list[dict] = []
        self.features: list[dict] = []
        self.metrics: dict[str, dict] = {"training": {}, "validation": {}, "slices": {}}
        self._artifacts: list[_Artifact] = []
        self._predictions: tuple[str, dict] | None = None
        self.evaluation_snapshot: dict | None = None
        self.latency: dict | None = None
        self.record: dict | None = None
        self.path: str | None = None
        self.uploaded: list[str] = []
        self._state = "open"

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc_type is not None:
            self.abort()
            return  # re-raise
        self.finish()

    # -- what the training code logs -------------------------------------------------------

    def _check_open(self) -> None:
        if self._state != "open":
            raise RegistryError(f"this run of {self.model} is already {self._state}")

    def seed_everything(self, seed: int, *, deterministic: bool = True,
                        frameworks: Iterable[str] | None = None) -> None:
        """Seed random, NumPy, PyTorch and TensorFlow (when importable) and record it all."""
        self._check_open()
        values, flags = seed_everything(seed, deterministic=deterministic, frameworks=frameworks)
        self.seeds.update(values)
        self.determinism.update(flags)

    def log_seed(self, name: str, value: int) -> None:
        """Record a seed set elsewhere (``lightgbm``'s ``seed`` parameter, a data loader)."""
        self._check_open()
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"seed {name!r} must be an integer, got {value!r}")
        self.seeds[str(name)] = int(value)

    def log_determinism(self, **settings: str | bool | int | None) -> None:
        """Record determinism settings the training code applied itself."""
        self._check_open()
        for key, value in settings.items():
            if value is not None and not isinstance(value, str | bool | int):
                raise InputError(f"determinism setting {key!r} must be a string, boolean or "
                                 f"integer, got {value!r}")
            self.determinism[key] = value

    def log_params(self, params: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Record hyperparameters as the training code used them (later values win)."""
        self._check_open()
        for key, value in {**(params or {}), **more}.items():
            self.hyperparameters[str(key)] = _plain(value, f"hyperparameters.{key}")

    def log_dataset(self, role: str, uri: str | os.PathLike[str], *, name: str | None = None,
                    **identity: Any) -> dict:
        """Record a dataset by role (train, validation, eval, test, other) with its identity.

        ``identity`` goes to :func:`mlreg.lineage.datasets.identify_dataset` (``rows``,
        ``version_id``, ``etag``, ``snapshot_id``, ``etag_immutable``, ...). Local data is hashed
        now. Returns the recorded entry.
        """
        self._check_open()
        entry = {"role": normalize_role(role)}
        if name:
            entry["name"] = str(name)
        entry.update(identify_dataset(os.fspath(uri), **identity))
        self.data.append(entry)
        return entry

    def log_features(self, names: str | Iterable[str], *, definition: str | None = None,
                     source: str | None = None, version: str | None = None,
                     sha256: str | None = None, columns: Iterable[str] | None = None) -> None:
        """Record feature names with the digest and version of their definition.

        ``definition`` is a local definition file: its sha256 is recorded, its path (relative
        to the code repository) becomes the ``source`` and, when the file is committed and
        unchanged, the short commit that last changed it becomes the ``version``. For a
        feature store pass ``source="feast://project/view"`` and its ``version``.
        """
        self._check_open()
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise InputError("log_features needs at least one feature name")
        if definition is not None:
            from mlreg.storage import sha256_file

            digest = sha256_file(definition)
            sha256 = sha256 or digest.sha256
            src, ver = _definition_source(definition)
            source = source or src
            version = version or ver
        if source is not None:
            check_uri(source, "feature source")
        if sha256 is None and version is None:
            raise InputError(f"features {', '.join(names)}: give a definition file, a version "
                             "or a sha256 so the definition can be identified")
        for n in names:
            entry: dict = {"name": str(n)}
            if source:
                entry["source"] = source
            if version is not None:
                entry["version"] = str(version)
            if sha256 is not None:
                entry["sha256"] = sha256
            if columns is not None:
                entry["columns"] = [str(c) for c in columns]
            self.features.append(entry)

    def log_metrics(self, split: str, values: Mapping[str, Any], *,
                    slice: str | None = None) -> None:  # noqa: A002 - the record's word
        """Record training or validation metrics, optionally for one slice (``country=US``).

        Slice metrics are validation metrics. NaN and infinity are recorded as null.
        Evaluation metrics are not typed in: gates recompute them from the predictions.
        """
        self._check_open()
        key = _SPLITS.get(split)
        if key is None:
            raise InputError(f"metric split {split!r} must be 'training' or 'validation' "
                             "(evaluation metrics are recomputed from log_evaluation's "
                             "predictions)")
        if slice is not None and key != "validation":
            raise InputError("slice metrics are validation metrics: log them with "
                             "split='validation'")
        target = self.metrics["slices"].setdefault(str(slice), {}) if slice is not None \
            else self.metrics[key]
        for name, value in values.items():
            target[str(name)] = _metric(value, f"metrics.{key}.{name}")

    def log_artifact(self, path: str | os.PathLike[str], name: str = "model", *,
                     format: str | None = None, target: str | None = None,  # noqa: A002
                     variant_of: str | None = None, quantization: str | None = None) -> None:
        """Record a file to upload as an artifact at the end (the model, or a variant of it)."""
        import re

        self._check_open()
        path = os.path.abspath(os.fspath(path))
        if not re.match(_ARTIFACT_NAME, name or ""):
            raise InputError(f"artifact name {name!r}: use lower-case letters, digits, '.', "
                             "'_' or '-', starting with a letter or digit")
        if any(a.entry["name"] == name for a in self._artifacts):
            raise InputError(f"artifact {name!r} is already logged in this run")
        if os.path.isdir(path):
            raise InputError(f"{path}: an artifact is one file; archive a folder first (e.g. a "
                             "tar of a SavedModel) so it has one digest")
        if variant_of is not None and not any(a.entry["name"] == variant_of
                                              for a in self._artifacts):
            raise InputError(f"artifact {name!r} is a variant of {variant_of!r}, which is not "
                             "logged (log the base artifact first)")
        self._check_key_free(os.path.basename(path))
        fmt = format or _FORMATS.get(os.path.splitext(path)[1].lower())
        entry: dict = {"name": name, "uri": "", "sha256": _PLACEHOLDER_SHA, "size": 0}
        for key, value in (("format", fmt), ("target", target), ("variant_of", variant_of),
                           ("quantization", quantization)):
            if value is not None:
                entry[key] = str(value)
        self._artifacts.append(_Artifact(path, entry))

    def log_evaluation(self, predictions: str | os.PathLike[str], snapshot: str, *,
                       id_column: str | None = None, label_column: str | None = None,
                       score_column: str | None = None, weight_column: str | None = None,
                       query_column: str | None = None, format: str | None = None,  # noqa: A002
                       **snapshot_identity: Any) -> None:
        """Record the evaluation: the predictions file (uploaded at the end) and the snapshot.

        The snapshot is identified like a dataset and also listed in ``data`` with role eval.
        """
        self._check_open()
        path = os.path.abspath(os.fspath(predictions))
        fmt = format or {".parquet": "parquet", ".pq": "parquet",
                         ".csv": "csv"}.get(os.path.splitext(path)[1].lower())
        if fmt not in ("parquet", "csv"):
            raise InputError(f"{path}: predictions must be parquet or csv (pass format=)")
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such predictions file")
        if self._predictions is not None:
            raise InputError("log_evaluation was already called in this run")
        self._check_key_free(os.path.basename(path))
        entry: dict = {"uri": "", "sha256": _PLACEHOLDER_SHA, "size": 0, "format": fmt}
        for key, value in (("id_column", id_column), ("label_column", label_column),
                           ("score_column", score_column), ("weight_column", weight_column),
                           ("query_column", query_column)):
            if value is not None:
                entry[key] = str(value)
        ident = identify_dataset(os.fspath(snapshot), **snapshot_identity)
        self._predictions = (path, entry)
        self.evaluation_snapshot = ident
        if not any(d["uri"] == ident["uri"] and d["role"] == "eval" for d in self.data):
            self.data.append({"role": "eval", **ident})

    def log_latency(self, p50_ms: float | None, p99_ms: float, hardware: str,
                    load_profile: str | None = None) -> None:
        """Record serving latency measured on reference ``hardware`` under ``load_profile``."""
        self._check_open()
        entry: dict = {}
        for key, value in (("p50_ms", p50_ms), ("p99_ms", p99_ms)):
            if value is not None:
                v = _metric(value, f"operational.latency.{key}")
                if v is None or v < 0:
                    raise InputError(f"operational.latency.{key} must be a finite number >= 0")
                entry[key] = v
        if not hardware:
            raise InputError("log_latency needs the reference hardware it was measured on")
        entry["hardware"] = str(hardware)
        if load_profile:
            entry["load_profile"] = str(load_profile)
        entry["measured"] = _utc_now()
        self.latency = entry

    # -- ending the run --------------------------------------------------------------------

    def abort(self) -> None:
        """End the run without writing anything (nothing was uploaded before finish)."""
        if self._state == "open":
            self._state = "aborted"

    def finish(self) -> dict:
        """Upload the artifacts, write the record, and return it (see the module docstring)."""
        self._check_open()
        self._state = "finishing"
        try:
            record, rel = self._finish()
        except BaseException:
            self._rollback()
            self._state = "failed"
            raise
        self._state = "finished"
        self.record = record
        self.path = os.path.join(self.root, *rel.split("/"))
        return record

    def _finish(self) -> tuple[dict, str]:
        if self._requested is None:  # another capture in this tree may have taken it meanwhile
            self.plan = plan_version(self.root, self.model, main_branch=self.main_branch)
            if self.plan.version != self.version:
                self.version = self.plan.version
        else:
            self.plan = plan_version(self.root, self.model, requested=self.version,
                                     main_branch=self.main_branch)
        rel = f"models/{self.model}/{self.version}.yaml"
        if not self._artifacts:
            raise InputError(f"{rel}: no artifact was logged (call run.log_artifact(path))")
        for art in self._artifacts:
            if not os.path.isfile(art.path):
                raise InputError(f"{art.path}: artifact {art.entry['name']!r} does not exist")
            art.entry["uri"] = self.store.uri_for(self._key(art.path))
        if self._predictions is not None:
            self._predictions[1]["uri"] = self.store.uri_for(self._key(self._predictions[0]))
        if set(self.hardware_modules()) - self._frameworks_at_start:
            gpu, unknown = probe_gpu()  # the framework's own view, now that it is imported
            self.fingerprint.hardware["gpu"] = gpu
            if unknown:
                self.fingerprint.hardware["unknown"] = unknown
        # Everything the user controls is checked before a single byte is uploaded.
        render_record(self._build(), rel)

        for art in self._artifacts:
            art.entry.update(self._upload(art.path))
        if self._predictions is not None:
            self._predictions[1].update(self._upload(self._predictions[0]))
        record = self._build()
        text = render_record(record, rel)
        self._write_model_yaml()
        write_new_file(os.path.join(self.root, *rel.split("/")), text.encode("utf-8"))
        return record, rel

    @staticmethod
    def hardware_modules() -> list[str]:
        return [m for m in ("torch", "tensorflow") if m in sys.modules]

    def _key(self, path: str) -> str:
        return posixpath.join("models", self.model, self.version, os.path.basename(path))

    def _check_key_free(self, basename: str) -> None:
        used = [os.path.basename(a.path) for a in self._artifacts]
        if self._predictions is not None:
            used.append(os.path.basename(self._predictions[0]))
        if basename in used:
            raise InputError(f"two files of this run are named {basename!r}; they would share "
                             "one object key: rename one")

    def _upload(self, path: str) -> dict:
        key = self._key(path)
        existed = self.store.exists(key)
        obj = self.store.put_file(path, key, progress=self.progress)
        if not existed:
            self.uploaded.append(key)
        return {"uri": obj.uri, "sha256": obj.sha256, "size": obj.size}

    def _rollback(self) -> None:
        for key in reversed(self.uploaded):
            try:
                self.store.delete(key)
            except MlregError:
                pass  # the original error matters more; the object stays unreferenced
        self.uploaded.clear()

    def _write_model_yaml(self) -> None:
        if self._has_model_yaml or not self.task:
            return
        doc = {"schema": "mlreg/model/v1", "name": self.model, "owner": self.owner,
               "task": self.task}
        rel = f"models/{self.model}/model.yaml"
        text = render_record(doc, rel, kind="model")
        try:
            write_new_file(os.path.join(self.root, *rel.split("/")), text.encode("utf-8"))
        except RegistryError:
            pass  # written meanwhile by another capture: theirs is as good
        self._has_model_yaml = True

    def _auto_parent(self) -> str | None:
        if self.parent is not None:
            return self.parent
        stables = {d.stable for d in self._deployments.values()}
        working = [v for v in self.plan.working if v != self.version]
        if len(stables) == 1 and next(iter(stables)) in working:
            return next(iter(stables))
        return working[-1] if working else None

    def _build(self) -> dict:
        fp = self.fingerprint
        rec: dict = {"schema": "mlreg/record/v1", "model": self.model, "version": self.version,
                     "created": _utc_now(), "owner": self.owner}
        if self.description:
            rec["description"] = self.description
        parent = self._auto_parent()
        if parent is not None:
            rec["parent"] = parent
        if self.tags:
            rec["tags"] = self.tags
        rec["artifacts"] = [dict(a.entry) for a in self._artifacts]
        rec["code"] = dict(fp.code or {})
        if self.features:
            rec["features"] = self.features
        rec["data"] = self.data
        rec["hyperparameters"] = self.hyperparameters
        rec["seeds"] = {"values": dict(self.seeds), "determinism": dict(self.determinism)}
        rec["environment"] = fp.environment
        rec["hardware"] = fp.hardware
        rec["metrics"] = {k: v for k, v in self.metrics.items() if v}
        if self._predictions is not None and self.evaluation_snapshot is not None:
            rec["evaluation"] = {"snapshot": self.evaluation_snapshot,
                                 "predictions": dict(self._predictions[1])}
        if self.latency is not None:
            rec["operational"] = {"latency": self.latency}
        from mlreg import __version__

        rec["capture"] = {"tool": f"mlreg {__version__}", "mode": self.mode,
                          "started": self.started,
                          "duration_s": round(time.monotonic() - self._t0, 3),
                          "fingerprint_s": fp.seconds}
        return rec

    def _git_user(self) -> str:
        from mlreg.gitio import git

        proc = git(self.code_dir, "config", "user.email", check=False)
        email = proc.stdout.decode().strip()
        if email:
            return email
        import getpass

        try:
            return getpass.getuser()
        except Exception:  # noqa: BLE001
            raise InputError("no owner: pass owner=..., set it in models/<model>/model.yaml, "
                             "or configure git user.email") from None


def _main_script() -> str | None:
    """The ``__main__`` script when it is the user's own file (not python -c, a notebook, or an
    installed console script such as pytest's)."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path or not os.path.isfile(path):
        return None
    path = os.path.realpath(path)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        if path.startswith(os.path.realpath(prefix) + os.sep):
            return None
    return path


def _definition_source(path: str) -> tuple[str, str | None]:
    """(source to record, version) of a feature definition file: its path in the repository,
    and the short commit that last changed it when it is committed and unchanged."""
    from mlreg.gitio import git

    full = os.path.abspath(path)
    folder = os.path.dirname(full)
    proc = git(folder, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0:
        return full, None
    top = proc.stdout.decode().strip()
    rel = os.path.relpath(os.path.realpath(full), os.path.realpath(top)).replace(os.sep, "/")
    tracked = git(top, "ls-files", "--error-unmatch", "--", rel, check=False).returncode == 0
    if not tracked:
        return rel, None
    changed = git(top, "diff", "--quiet", "HEAD", "--", rel, check=False).returncode != 0
    if changed:
        return rel, None
    proc = git(top, "log", "-1", "--format=%h", "--", rel, check=False)
    version = proc.stdout.decode().strip() or None
    return rel, version


def capture(model: str, registry: str = ".", **options: Any) -> Run:
    """Open a :class:`Run` for ``model`` in the registry at ``registry``; use it with ``with``.

    Options: ``owner``, ``version`` (default: the next number), ``parent`` (default: the
    version serving this model, else the latest), ``description``, ``tags``, ``task`` (writes
    ``models/<model>/model.yaml`` for a new model), ``code_dir`` (default: the folder of the
    ``__main__`` script), ``python`` (probe another interpreter's packages), ``progress``
    (upload progress: None = on a TTY only), ``probe_timeout`` (seconds per probe).
    """
    return Run(model, registry, **options)
