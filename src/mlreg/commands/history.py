"""After-deployment commands: history, diff, lineage, online, audit, dashboard.

Each parses its options, makes one library call (``mlreg.history``) and renders the answer.
"""

from __future__ import annotations

import json

import click

from mlreg.commands.options import json_option, open_registry, registry_option
from mlreg.render import table, to_json

_REV_HELP = "Revision whose first-parent chain is the history (default: main, else HEAD)."


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "\u2026"


def _date(iso: str | None) -> str:
    return (iso or "")[:16].replace("T", " ")


@click.command("history")
@click.argument("target", required=False, metavar="[SERVICE | MODEL | MODEL@VERSION]")
@click.option("--at", "at", default=None, metavar="DATE",
              help="What served each service at DATE (2024-01-26 means the end of that day, "
                   "UTC; or 2024-01-26T10:30Z).")
@click.option("--rev", default=None, metavar="REV", help=_REV_HELP)
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice(["registration", "promotion", "canary", "rollback", "retirement",
                                 "online", "edit", "record_edit", "manifest_error"]),
              help="Only events of this kind (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the last N events.")
@registry_option
@json_option
def history_cmd(target: str | None, at: str | None, rev: str | None, kinds: tuple[str, ...],
                limit: int | None, registry: str, as_json: bool) -> None:
    """The timeline of registrations, promotions, canary changes, rollbacks (with their
    reasons) and online results, in commit order, from git. With --at, what served each
    service at that moment."""
    from mlreg.history.timeline import serving_at, timeline

    if at is not None:
        asof = serving_at(registry, at, rev)
        services = [s for s in asof.services if target in (None, s["service"], s["model"])]
        if as_json:
            click.echo(to_json({**asof.to_dict(), "services": services}))
            return
        if asof.commit is None:
            click.echo(f"at {asof.at}: nothing served ({asof.note})")
            return
        click.echo(f"at {asof.at}: manifest at {asof.commit[:12]} ({asof.commit_date})"
                   + (f" - {asof.note}" if asof.note else ""))
        if not services:
            click.echo("no services" + (f" matching {target!r}" if target else ""))
            return
        click.echo(table(
            ["service", "surface", "model", "stable", "canary", "since"],
            [[s["service"], s["surface"], s["model"], s["stable"],
              f"{s['canary']} ({s['canary_percent']:g}%)" if s["canary"] else None,
              (f"{_date((s['since'] or {}).get('date'))} "
               f"{((s['since'] or {}).get('commit') or '')[:8]}"
               + (f" #{s['since']['pr']}" if (s["since"] or {}).get("pr") else ""))
              if s["since"] else None] for s in services]))
        return
    tl = timeline(registry, rev)
    events = tl.select(target, kinds=kinds or None)
    if limit is not None:
        events = events[-limit:]
    if as_json:
        doc = tl.to_dict(events)
        # Indented JSON is pure-Python in the json module: keep long histories compact.
        click.echo(to_json(doc) if len(events) <= 500 else json.dumps(doc, allow_nan=False))
        return
    if not events:
        click.echo(f"no events{f' for {target}' if target else ''} in {tl.rev} "
                   f"({tl.chain} commits)")
        return
    rows = []
    for e in events:
        what = e.describe()
        if e.kind in ("rollback",) and e.reason:
            what += f": {_short(e.reason, 80)}"
        if e.kind == "online" and (e.online or {}).get("offline"):
            offline = e.online["offline"]
            what += " | offline " + ", ".join(
                f"{k.split('.', 1)[1]} {v:g}" for k, v in offline.items()
                if k.startswith("validation."))
        rows.append([_date(e.date), e.commit[:8], f"#{e.pr}" if e.pr else None, e.author,
                     e.kind, what])
    click.echo(table(["date", "commit", "pr", "author", "event", "what"], rows))
    click.echo(f"{len(events)} event(s) from {tl.commits} commit(s) on the first-parent chain "
               f"of {tl.rev}")


@click.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="[B]", required=False)
@click.option("--rev", default=None, metavar="REV",
              help="Read the registry at this revision instead of the working tree.")
@registry_option
@json_option
def diff_cmd(a: str, b: str | None, rev: str | None, registry: str, as_json: bool) -> None:
    """The lineage difference of B against A, grouped (code, data, features, hyperparameters,
    seeds, environment, hardware, metrics, operational...), with online results beside.

    A and B are MODEL@VERSION, MODEL@latest or a service (its stable). A service alone compares
    its stable with its canary: the question after "the canary shows -3% CTR".
    """
    from mlreg.history.queries import diff_refs

    with open_registry(registry, rev) as reg:
        out = diff_refs(reg, a, b)
    if as_json:
        click.echo(to_json(out))
        return
    if out.get("note"):
        click.echo(f"# {out['note']}")
    groups = out["groups"]
    click.echo(f"{out['a']} -> {out['b']}: {out['changed_fields']} changed field(s) in "
               f"{len(groups)} group(s)")
    for name, g in groups.items():
        click.echo(f"\n{name}")
        for line in g["summary"]:
            click.echo(f"  {line}")
    if out["unchanged_groups"]:
        click.echo(f"\nunchanged: {', '.join(out['unchanged_groups'])}")
    if out["online"]:
        click.echo("\nonline results")
        for r in out["online"]:
            metrics = ", ".join(_metric(k, m) for k, m in (r["metrics"] or {}).items())
            click.echo(f"  {r['model']}@{r['version']} on {r['service']} "
                       f"({r['experiment']}): {metrics}")


def _metric(name: str, m: dict) -> str:
    from mlreg.history.timeline import metric_text

    return metric_text(name, m)


@click.command("lineage")
@click.option("--data", default=None, metavar="URI_OR_PREFIX",
              help="Versions trained or evaluated on this snapshot (a URI, a prefix, or a "
                   "snapshot id / version id / etag).")
@click.option("--feature", default=None, metavar="NAME[@VERSION]",
              help="Versions that used this feature definition (VERSION: a version or a "
                   "sha256 prefix).")
@click.option("--commit", default=None, metavar="SHA_PREFIX",
              help="Versions trained from this code commit.")
@click.option("--package", default=None, metavar="NAME[==VERSION]",
              help="Versions trained with this package (version).")
@click.option("--rev", default=None, metavar="REV",
              help="Query the registry at this revision instead of the working tree.")
@click.option("--no-cache", is_flag=True, help="Parse every record; do not use the index.")
@registry_option
@json_option
def lineage_cmd(data: str | None, feature: str | None, commit: str | None,
                package: str | None, rev: str | None, no_cache: bool, registry: str,
                as_json: bool) -> None:
    """Reverse lineage: which versions used a data snapshot, a feature definition, a code
    commit or a package, and which services serve any of them now (stable or canary).

    Criteria given together must all match. Answers come from an index of record facts cached
    by git blob id in .git/mlreg/ (records are immutable, so it never goes stale).
    """
    from mlreg.history.index import parse_query, reverse_lineage

    q = parse_query(data=data, feature=feature, commit=commit, package=package)
    out = reverse_lineage(registry, q, rev, use_cache=not no_cache)
    if as_json:
        click.echo(to_json(out))
        return
    vs = out["versions"]
    if not vs:
        click.echo(f"no version matches ({out['index']['records']} records searched)")
        return
    click.echo(table(["version", "created", "serving", "matched"],
                     [[f"{v['model']}@{v['version']}", v["created"],
                       ", ".join(v["serving"]) or "-", "; ".join(v["matched"])] for v in vs]))
    click.echo(f"{len(vs)} version(s) of {out['index']['records']} match")
    if out["serving"]:
        click.echo("serving now: " + ", ".join(
            f"{s['service']} {s['model']}@{s['version']} ({s['role']}, {s['percent']:g}%)"
            for s in out["serving"]))
    else:
        click.echo("serving now: none of them")


@click.command("online")
@click.argument("name", metavar="MODEL@VERSION | SERVICE")
@click.option("--experiment", required=True, metavar="ID",
              help="Experiment id (the file name: models/<model>/online/<ID>.yaml).")
@click.option("--service", default=None, metavar="SERVICE", help="Where the experiment ran.")
@click.option("--metric", "metrics", multiple=True, required=True, metavar="NAME=VALUE",
              help="A measured metric, e.g. ctr_lift=-0.03 (lifts are fractions). Repeatable.")
@click.option("--interval", "intervals", multiple=True, metavar="NAME=LOW,HIGH",
              help="A metric's confidence interval, e.g. ctr_lift=-0.045,-0.015. Repeatable.")
@click.option("--traffic", type=click.FloatRange(min=0, max=100, min_open=True), default=None,
              metavar="PERCENT", help="Share of the service's traffic the version received.")
@click.option("--start", default=None, metavar="DATE", help="Experiment start.")
@click.option("--end", default=None, metavar="DATE", help="Experiment end.")
@click.option("--baseline", default=None, metavar="VERSION",
              help="The control arm's version (default: the service's stable).")
@click.option("--source", default=None, metavar="URI", help="Where the full analysis lives.")
@click.option("--note", default=None, help="Free text kept with the result.")
@registry_option
@json_option
def online_cmd(name: str, experiment: str, service: str | None, metrics: tuple[str, ...],
               intervals: tuple[str, ...], traffic: float | None, start: str | None,
               end: str | None, baseline: str | None, source: str | None, note: str | None,
               registry: str, as_json: bool) -> None:
    """Record an online (A/B or canary) result for a version: an append-only file
    models/<model>/online/<experiment>.yaml (schema mlreg/online/v1) to commit in a PR.

    NAME is MODEL@VERSION, or a SERVICE (its canary when it has one, else its stable).
    """
    from mlreg.history.online import parse_interval_args, parse_metric_args
    from mlreg.history.queries import record_online

    with open_registry(registry) as reg:
        path, doc, target = record_online(
            reg, name, experiment=experiment, service=service,
            metrics=parse_metric_args(metrics), intervals=parse_interval_args(intervals),
            traffic_percent=traffic, start=start, end=end, baseline=baseline, source=source,
            notes=note)
    if as_json:
        click.echo(to_json({"path": path, "result": doc}))
        return
    if target.note:
        click.echo(f"# {target.note}")
    metrics_text = ", ".join(_metric(k, m) for k, m in doc["metrics"].items())
    click.echo(f"wrote {path}: {doc['model']}@{doc['version']} on {doc['service']}: "
               f"{metrics_text}")
    click.echo("commit it in a pull request; results are append-only")


@click.command("audit")
@click.argument("name", metavar="MODEL@VERSION | SERVICE")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md",
              show_default=True, help="Report format.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report to FILE instead of standard output.")
@click.option("--rev", default=None, metavar="REV", help=_REV_HELP)
@click.option("--no-verify", is_flag=True, help="Do not re-hash artifacts and snapshots.")
@click.option("--no-gates", is_flag=True, help="Do not re-derive the gate decisions.")
@registry_option
def audit_cmd(name: str, fmt: str, out_path: str | None, rev: str | None, no_verify: bool,
              no_gates: bool, registry: str) -> None:
    """An audit report for a version: data provenance with snapshot identities and their
    verification, the gate decisions re-derived from git (policy digest, gates, slices,
    fairness), the approvals (PR reviews through the forge when configured; merge commit and
    committer otherwise), deployment events, rollbacks and online results.
    """
    from mlreg.history.audit import audit_version, render_html, render_markdown

    report = audit_version(registry, name, rev=rev, verify=not no_verify, gates=not no_gates)
    text = (to_json(report) + "\n" if fmt == "json" else
            render_html(report) if fmt == "html" else render_markdown(report))
    if out_path:
        with open(out_path, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {out_path}")
    else:
        click.echo(text, nl=False)


@click.command("dashboard")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the site into (new, empty, or an earlier dashboard).")
@click.option("--rev", default=None, metavar="REV",
              help="Show the registry at this revision instead of the working tree.")
@click.option("--gates", is_flag=True,
              help="Re-derive the gate decisions behind what every service serves now.")
@click.option("--results", "results_dir", default=None, type=click.Path(file_okay=False,
                                                                         exists=True),
              help="A directory of gate result JSON files (mlreg/result/v1) to show.")
@click.option("--calibration", "calibration_versions", type=click.IntRange(min=0), default=3,
              show_default=True,
              help="Reliability plots for the versions serving now and this many latest "
                   "versions per binary model (0: none).")
@registry_option
@json_option
def dashboard_cmd(out_dir: str, rev: str | None, gates: bool, results_dir: str | None,
                  calibration_versions: int, registry: str, as_json: bool) -> None:
    """Generate the static dashboard: deployed now per service and surface, models and
    versions with their records, metric trends, calibration plots per slice, deployment
    timelines with rollbacks, online next to offline metrics, data snapshots, lineage links.

    Plain HTML and inline SVG charts: open OUT/index.html from disk or publish OUT on
    GitHub Pages; no server, no scripts, no network.
    """
    from mlreg.history.dashboard import build_dashboard

    summary = build_dashboard(registry, out_dir, rev=rev, gates=gates, results_dir=results_dir,
                              calibration_versions=calibration_versions)
    if as_json:
        click.echo(to_json(summary.to_dict()))
        return
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {summary.pages} pages to {summary.out_dir} ({summary.versions} versions, "
               f"{summary.services} services, {summary.events} events, {summary.calibration} "
               f"calibration curves, {summary.gate_results} gate results) in "
               f"{summary.seconds:.1f}s; open {summary.out_dir}/index.html")
