"""Lineage commands: capture (run a training command), verify (re-hash), reproduce (compare)."""

from __future__ import annotations

import os
import sys

import click

from mlreg.commands.options import json_option, open_registry, registry_option
from mlreg.render import to_json


@click.command("capture", context_settings={"allow_interspersed_args": False,
                                            "ignore_unknown_options": True})
@click.option("--model", "-m", required=True, help="Model name (models/<model>/).")
@registry_option
@click.option("--owner", default=None, help="Accountable person or team (default: model.yaml, "
              "else git user.email).")
@click.option("--version", "version", default=None, help="Version to write (default: the next "
              "number after the working tree and main).")
@click.option("--parent", default=None, help="Baseline version (default: the one serving).")
@click.option("--description", default=None, help="One line about this version.")
@click.option("--task", default=None, type=click.Choice(["binary_classification", "ranking",
                                                         "regression", "multiclass"]),
              help="Create models/<model>/model.yaml with this task when it is missing.")
@click.option("--code", "code_dir", default=None, type=click.Path(file_okay=False),
              help="Training code repository (default: the current directory).")
@click.option("--python", "python", default=None, metavar="PATH",
              help="Record the packages of this interpreter (the job's virtualenv).")
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def capture_cmd(model: str, registry: str, owner: str | None, version: str | None,
                parent: str | None, description: str | None, task: str | None,
                code_dir: str | None, python: str | None, as_json: bool,
                command: tuple[str, ...]) -> None:
    """Run a training COMMAND and write its lineage record.

    \b
    mlreg capture --model fraud -- ./train.sh --epochs 3

    The command writes its declarations (params, datasets, metrics, artifacts, ...) as JSON or
    YAML to the file named by $MLREG_CAPTURE_FILE; the fingerprint (code, environment,
    hardware) is taken automatically. A failing command writes nothing and its exit code is
    mlreg's.
    """
    from mlreg.lineage.command import capture_command

    args = list(command)
    if args and args[0] == "--":
        args = args[1:]
    result = capture_command(args, model, registry, owner=owner, version=version,
                             parent=parent, description=description, task=task,
                             code_dir=code_dir, python=python)
    if result.returncode != 0:
        click.echo(f"error: the training command exited with code {result.returncode}; "
                   "nothing was written", err=True)
        raise SystemExit(result.returncode)
    rec = result.record or {}
    if as_json:
        click.echo(to_json({"model": rec["model"], "version": rec["version"],
                            "path": result.path, "record": rec}))
        return
    rel = os.path.relpath(result.path or "", os.getcwd())
    click.echo(f"captured {rec['model']}@{rec['version']}: {rel}")
    for art in rec.get("artifacts", []):
        click.echo(f"  {art['name']}: {art['uri']} ({art['size']} bytes, "
                   f"sha256 {art['sha256'][:12]})")


@click.command("verify")
@click.argument("name")
@registry_option
@click.option("--no-data", is_flag=True, help="Do not re-digest local data snapshots.")
@json_option
def verify_cmd(name: str, registry: str, no_data: bool, as_json: bool) -> None:
    """Re-hash the artifacts, predictions and local data of NAME (MODEL@VERSION or a service).

    Exit 0 when everything matches, 1 naming each mismatching or missing object, 3 when the
    store cannot be reached.
    """
    from mlreg.lineage.verify import verify_record

    with open_registry(registry) as reg:
        resolved = reg.resolve(name)
        record = reg.record(resolved.model, resolved.version)
        settings = reg.settings()
        root = reg.root or registry
    report = verify_record(root, record, settings, data=not no_data,
                           progress=None if sys.stderr.isatty() else False)
    if as_json:
        click.echo(to_json(report.to_dict()))
    else:
        for c in report.checks:
            label = f"{c.kind} {c.name}"
            detail = f": {c.detail}" if c.detail else ""
            click.echo(f"{c.status.upper():8} {label} ({c.uri}){detail}")
        if report.ok:
            click.echo(f"ok: {report.model}@{report.version}: every checked object matches "
                       "its record")
        else:
            names = ", ".join(f"{c.kind} {c.name}" for c in report.failed)
            click.echo(f"FAILED: {report.model}@{report.version}: {names}", err=True)
    if not report.ok:
        raise SystemExit(1)


@click.command("reproduce")
@click.argument("name")
@registry_option
@click.option("--code", "code_dir", default=None, type=click.Path(file_okay=False),
              help="Training code checkout to compare (default: the current directory).")
@click.option("--python", "python", default=None, metavar="PATH",
              help="Compare the packages of this interpreter instead of mlreg's own.")
@json_option
def reproduce_cmd(name: str, registry: str, code_dir: str | None, python: str | None,
                  as_json: bool) -> None:
    """Compare this environment with the one NAME was trained in; print exactly what differs.

    Compares Python, OS and kernel, CPU, every package (added, removed, changed), the container
    image, GPU type/count/driver/CUDA/cuDNN, determinism variables and the code (commit and
    uncommitted changes). Exit 0 when nothing differs, 1 otherwise.
    """
    from mlreg.lineage.compare import compare_state, current_state

    with open_registry(registry) as reg:
        resolved = reg.resolve(name)
        record = reg.record(resolved.model, resolved.version)
        root = reg.root or registry
        store = str(reg.settings().get("artifact_store") or "")
    exclude = [os.path.join(root, "models")]
    if "://" not in store:
        exclude.append(os.path.join(root, store))
    state = current_state(code_dir, exclude=exclude, python=python)
    result = compare_state(record, state)
    ref = f"{resolved.model}@{resolved.version}"
    if as_json:
        click.echo(to_json({"model": resolved.model, "version": resolved.version,
                            **result.to_dict()}))
    else:
        if result.identical:
            click.echo(f"ok: no difference with the environment {ref} was trained in")
        else:
            n = len(result.differences)
            click.echo(f"{ref}: {n} difference{'s' if n != 1 else ''} with the recorded "
                       "environment")
            for d in result.differences:
                click.echo(f"  {d}")
        for note in result.notes:
            click.echo(f"note: {note}")
    if not result.identical:
        raise SystemExit(1)
