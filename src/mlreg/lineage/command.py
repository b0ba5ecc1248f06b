"""Capture a training job that is not Python code: run it, read what it declares, write the record.

``mlreg capture --model fraud -- ./train.sh --epochs 3`` runs the command with
``MLREG_CAPTURE_FILE`` naming a file the job writes its declarations to, as JSON or YAML::

    {
      "params":      {"learning_rate": 0.001, "batch_size": 2048},
      "seeds":       {"python": 1234, "numpy": 1234},
      "determinism": {"PYTHONHASHSEED": "0"},
      "datasets":    [{"role": "train", "uri": "data/train.parquet", "rows": 100000}],
      "features":    [{"names": ["amount_z"], "definition": "features.yaml"}],
      "metrics":     {"training": {"logloss": 0.07}, "validation": {"auc": 0.91},
                      "slices": {"country=US": {"auc": 0.90}}},
      "artifacts":   [{"path": "out/model.onnx", "name": "model", "format": "onnx"}],
      "evaluation":  {"predictions": "out/preds.parquet", "snapshot": "data/eval.parquet",
                      "id_column": "id", "label_column": "label", "score_column": "score"},
      "latency":     {"p50_ms": 4.1, "p99_ms": 12.5, "hardware": "c6i.2xlarge"},
      "description": "...", "tags": ["nightly"]
    }

Relative paths are relative to the command's working directory. The job also gets
``MLREG_MODEL``, ``MLREG_VERSION`` (the version it will most likely get) and ``MLREG_REGISTRY``.
The fingerprint is taken before the command starts. A command that fails (non-zero exit) writes
nothing: its exit code is handed back.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlreg.errors import InputError
from mlreg.lineage.run import Run

__all__ = ["CAPTURE_FILE_ENV", "CommandResult", "load_declarations", "apply_declarations",
           "capture_command"]

CAPTURE_FILE_ENV = "MLREG_CAPTURE_FILE"
_KEYS = {"params", "hyperparameters", "seeds", "determinism", "datasets", "features", "metrics",
         "artifacts", "evaluation", "latency", "description", "tags", "parent"}


@dataclass
class CommandResult:
    """How the command ended and, when it succeeded, the record written for it."""

    returncode: int
    run: Run
    record: dict | None = None
    path: str | None = None


def load_declarations(path: str) -> dict:
    """Read the declarations file (JSON, else strict YAML); {} when the job wrote none."""
    from mlreg.yamlio import load_yaml_text

    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return {}
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        data = json.loads(raw)
    except ValueError:
        data = load_yaml_text(raw, path).data
    if not isinstance(data, dict):
        raise InputError(f"{path}: the declarations must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise InputError(f"{path}: unknown declaration(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(_KEYS))})")
    return data


def _items(decl: Mapping, key: str, kind: type) -> Any:
    value = decl.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InputError(f"declaration {key!r} must be a {kind.__name__}")
    return value


def _path(base: str, p: Any, what: str) -> str:
    if not isinstance(p, str) or not p:
        raise InputError(f"{what}: needs a path")
    return p if os.path.isabs(p) or "://" in p else os.path.join(base, p)


def apply_declarations(run: Run, decl: Mapping[str, Any], base_dir: str) -> None:
    """Log everything ``decl`` declares on ``run`` (paths relative to ``base_dir``)."""
    run.log_params(_items(decl, "hyperparameters", dict))
    run.log_params(_items(decl, "params", dict))
    for name, value in _items(decl, "seeds", dict).items():
        run.log_seed(name, value)
    run.log_determinism(**_items(decl, "determinism", dict))
    for i, ds in enumerate(_items(decl, "datasets", list)):
        if not isinstance(ds, dict) or "role" not in ds or "uri" not in ds:
            raise InputError(f"datasets[{i}]: needs a role and a uri")
        ds = dict(ds)
        role, uri = ds.pop("role"), ds.pop("uri")
        run.log_dataset(role, _path(base_dir, uri, f"datasets[{i}]"), **ds)
    for i, feat in enumerate(_items(decl, "features", list)):
        if not isinstance(feat, dict) or "names" not in feat:
            raise InputError(f"features[{i}]: needs names")
        feat = dict(feat)
        if feat.get("definition"):
            feat["definition"] = _path(base_dir, feat["definition"], f"features[{i}]")
        run.log_features(feat.pop("names"), **feat)
    metrics = _items(decl, "metrics", dict)
    for split in ("training", "validation"):
        if split in metrics:
            run.log_metrics(split, metrics[split])
    for key, values in (metrics.get("slices") or {}).items():
        run.log_metrics("validation", values, slice=key)
    extra = sorted(set(metrics) - {"training", "validation", "slices"})
    if extra:
        raise InputError(f"metrics: unknown split(s) {', '.join(extra)} "
                         "(training, validation, slices)")
    for i, art in enumerate(_items(decl, "artifacts", list)):
        if not isinstance(art, dict) or "path" not in art:
            raise InputError(f"artifacts[{i}]: needs a path")
        art = dict(art)
        run.log_artifact(_path(base_dir, art.pop("path"), f"artifacts[{i}]"), **art)
    ev = _items(decl, "evaluation", dict)
    if ev:
        ev = dict(ev)
        if "predictions" not in ev or "snapshot" not in ev:
            raise InputError("evaluation: needs predictions and snapshot")
        preds, snap = ev.pop("predictions"), ev.pop("snapshot")
        run.log_evaluation(_path(base_dir, preds, "evaluation.predictions"),
                           _path(base_dir, snap, "evaluation.snapshot"), **ev)
    lat = dict(_items(decl, "latency", dict))
    if lat:
        if "p99_ms" not in lat or "hardware" not in lat:
            raise InputError("latency: needs p99_ms and hardware")
        run.log_latency(lat.pop("p50_ms", None), lat.pop("p99_ms"), lat.pop("hardware"),
                        **lat)
    if decl.get("description"):
        run.description = str(decl["description"])
    if decl.get("tags"):
        run.tags = list(dict.fromkeys([*run.tags, *map(str, decl["tags"])]))
    if decl.get("parent"):
        from mlreg.names import check_version

        run.parent = check_version(str(decl["parent"]))


def capture_command(command: Sequence[str], model: str, registry: str = ".", *,
                    cwd: str | None = None, env: Mapping[str, str] | None = None,
                    **options: Any) -> CommandResult:
    """Run ``command`` under capture (see the module docstring); ``options`` go to :class:`Run`.

    Returns the command's exit code; the record is written only when it is 0.
    """
    if not command:
        raise InputError("no command to run: mlreg capture --model M -- COMMAND ...")
    cwd = os.path.abspath(cwd or os.getcwd())
    if not options.get("code_dir"):
        options["code_dir"] = cwd
    import shlex

    run = Run(model, registry, mode="cli", entrypoint=shlex.join(command), **options)
    with tempfile.TemporaryDirectory(prefix="mlreg-capture-") as tmp:
        decl_path = os.path.join(tmp, "declarations.json")
        child_env = {**(os.environ if env is None else env), CAPTURE_FILE_ENV: decl_path,
                     "MLREG_MODEL": run.model, "MLREG_VERSION": run.version,
                     "MLREG_REGISTRY": run.root}
        try:
            proc = subprocess.run(list(command), cwd=cwd, env=child_env, check=False)
        except FileNotFoundError:
            run.abort()
            raise InputError(f"{command[0]}: command not found") from None
        except PermissionError:
            run.abort()
            raise InputError(f"{command[0]}: permission denied (not executable)") from None
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        if code != 0:
            run.abort()
            return CommandResult(code, run)
        try:
            decl = load_declarations(decl_path)
            apply_declarations(run, decl, cwd)
        except BaseException:
            run.abort()
            raise
    record = run.finish()
    return CommandResult(0, run, record, run.path)
