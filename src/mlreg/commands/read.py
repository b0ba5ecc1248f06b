"""Read commands: init, validate, list, show, deployed, schema, migrate."""

from __future__ import annotations

import click

from mlreg.commands.options import json_option, open_registry, registry_options
from mlreg.render import table, to_json


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--store", default=".mlreg-store", show_default=True,
              help="Artifact store root: a directory or an object-store URI (s3://bucket/prefix).")
@click.option("--owner", "owners", multiple=True, metavar="@ORG/TEAM",
              help="Platform owners who approve manifest and policy changes (CODEOWNERS).")
@click.option("--repo", default=None, metavar="OWNER/NAME", help="GitHub repository (forge).")
def init_cmd(directory: str, store: str, owners: tuple[str, ...], repo: str | None) -> None:
    """Create an empty registry in DIRECTORY (a git repository; created if needed).

    Writes mlreg.yaml, production.yaml, policies/default.yaml, models/, the gate and report
    workflows and CODEOWNERS. Refuses to overwrite any existing file.
    """
    from mlreg.scaffold import init_registry

    written = init_registry(directory, store=store, owners=list(owners), repo=repo)
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"initialized an empty mlreg registry in {directory}")


@click.command("validate")
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--rev", default=None, metavar="REV", help="Validate the registry at a revision.")
@json_option
def validate_cmd(path: str, rev: str | None, as_json: bool) -> None:
    """Validate every file of the registry at PATH against its schema and check references.

    Exit 0 when clean, 2 when any problem is found (all are listed, grouped by file).
    """
    from mlreg.validate import validate_registry

    with open_registry(path, rev) as reg:
        problems, counts = validate_registry(reg)
        label = reg.source.label
    if as_json:
        click.echo(to_json({"registry": label, "ok": not problems, "checked": counts,
                            "problems": [p.to_dict() for p in problems]}))
    else:
        checked = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        if not problems:
            click.echo(f"ok: {label}: {checked or 'nothing'} checked, no problems")
        else:
            current = None
            for p in problems:
                if p.file != current:
                    click.echo(p.file)
                    current = p.file
                click.echo(f"  {p.path}: {p.message}")
            click.echo(f"{len(problems)} problem(s) in "
                       f"{len({p.file for p in problems})} file(s); {checked} checked")
    if problems:
        raise SystemExit(2)


@click.command("list")
@click.argument("model", required=False)
@registry_options
@json_option
def list_cmd(model: str | None, registry: str, rev: str | None, as_json: bool) -> None:
    """List models (with version counts and what they serve), or the versions of MODEL."""
    with open_registry(registry, rev) as reg:
        if model is None:
            rows = _model_rows(reg)
            if as_json:
                click.echo(to_json(rows))
            else:
                click.echo(table(["model", "versions", "latest", "serving"],
                                 [[r["model"], r["versions"], r["latest"],
                                   ", ".join(r["serving"]) or "-"] for r in rows]))
            return
        rows = _version_rows(reg, model)
    if as_json:
        click.echo(to_json(rows))
    else:
        click.echo(table(["version", "created", "commit", "serving"],
                         [[r["version"], r["created"], (r["commit"] or "")[:10],
                           ", ".join(r["serving"]) or "-"] for r in rows]))


def _serving(reg) -> dict[tuple[str, str], list[str]]:  # noqa: ANN001
    out: dict[tuple[str, str], list[str]] = {}
    for dep in reg.deployments().values():
        out.setdefault((dep.model, dep.stable), []).append(dep.service)
        if dep.canary:
            out.setdefault((dep.model, dep.canary), []).append(
                f"{dep.service} (canary {dep.canary_percent:g}%)")
    return out


def _model_rows(reg) -> list[dict]:  # noqa: ANN001
    serving = _serving(reg)
    versions = reg.version_files()
    rows = []
    for m in reg.models():
        vs = versions.get(m, [])
        rows.append({
            "model": m, "versions": len(vs), "latest": vs[-1] if vs else None,
            "serving": [f"{s} ({v})" if "canary" not in s else f"{s.replace(')', '')}: {v})"
                        for (mm, v), ss in sorted(serving.items()) if mm == m for s in ss],
        })
    return rows


def _version_rows(reg, model: str) -> list[dict]:  # noqa: ANN001
    from mlreg.errors import NotFound

    versions = reg.versions(model)
    if not versions and not reg.has_model(model):
        raise NotFound(f"model {model!r} not found (models: {', '.join(reg.models()) or 'none'})")
    serving = _serving(reg)
    rows = []
    for v in versions:
        rec = reg.record(model, v)
        rows.append({"model": model, "version": v, "created": rec["created"],
                     "commit": rec["code"]["commit"], "serving": serving.get((model, v), [])})
    return rows


@click.command("show")
@click.argument("name")
@registry_options
@json_option
def show_cmd(name: str, registry: str, rev: str | None, as_json: bool) -> None:
    """Show the lineage record NAME: MODEL@VERSION, MODEL@latest, or a SERVICE (its stable)."""
    from mlreg.yamlio import dump_yaml

    with open_registry(registry, rev) as reg:
        resolved = reg.resolve(name)
        loaded = reg.record_loaded(resolved.model, resolved.version)
    if as_json:
        click.echo(to_json(loaded.data))
        return
    if resolved.deployment is not None:
        d = resolved.deployment
        extra = f", canary {d.model}@{d.canary} at {d.canary_percent:g}%" if d.canary else ""
        click.echo(f"# service {d.service}: stable {d.model}@{d.stable}{extra}")
    click.echo(f"# {loaded.path}")
    click.echo(dump_yaml(loaded.data), nl=False)


@click.command("deployed")
@registry_options
@json_option
def deployed_cmd(registry: str, rev: str | None, as_json: bool) -> None:
    """Show every service: its model, stable version, canary version and traffic share."""
    with open_registry(registry, rev) as reg:
        deps = reg.deployments()
    rows = [deps[s].to_dict() for s in sorted(deps)]
    if as_json:
        click.echo(to_json(rows))
        return
    if not rows:
        click.echo("no services are deployed (production.yaml has no services)")
        return
    click.echo(table(
        ["service", "model", "stable", "canary", "share", "surface"],
        [[r["service"], r["model"], r["stable"], r["canary"],
          f"{r['canary_percent']:g}%" if r["canary_percent"] is not None else None,
          r["surface"]] for r in rows]))


@click.command("schema")
@click.argument("kind", type=click.Choice(["record", "model", "deployments", "settings",
                                           "policy", "online", "result"]))
def schema_cmd(kind: str) -> None:
    """Print the JSON Schema (2020-12) of a registry file KIND."""
    from mlreg.errors import NotFound
    from mlreg.records import schema_text

    try:
        click.echo(schema_text(kind), nl=False)
    except FileNotFoundError:
        raise NotFound(f"this mlreg has no {kind} schema yet") from None


@click.command("migrate")
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--check", is_flag=True, help="Only report files that need migration (exit 1).")
def migrate_cmd(path: str, check: bool) -> None:
    """Rewrite registry files written for older schema versions to the current ones.

    Merged records are immutable, so a migration writes new files in a branch you review; with
    only v1 schemas in existence every file is current and nothing is rewritten.
    """
    from mlreg.migrate import migrate_registry

    with open_registry(path) as reg:
        plan = migrate_registry(reg, apply=not check)
    if not plan:
        click.echo("ok: every file is at the current schema version")
        return
    for f, old, new in plan:
        click.echo(f"{'would migrate' if check else 'migrated'} {f}: {old} -> {new}")
    if check:
        raise SystemExit(1)
