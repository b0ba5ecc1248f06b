"""Metrics and gates: ``mlreg evaluate`` (any predictions file) and ``mlreg gate`` (a promotion).

Exit codes: 0 every gate passed; 1 a gate failed (the report is printed first); 2 bad input;
3 the artifact store is unreachable. numpy and pandas are imported inside the commands only.
"""

from __future__ import annotations

from typing import Any

import click

from mlreg.commands.options import open_registry, registry_options
from mlreg.errors import CheckFailed, InputError
from mlreg.render import table, to_json
from mlreg.scale.cli import DIALECTS, cells_option, engine_option

__all__ = ["evaluate_cmd", "gate_cmd", "resolve_promotion"]


# -- mlreg evaluate ------------------------------------------------------------------------------

@click.command("evaluate")
@click.argument("predictions", required=False)
@click.option("--label", default="label", show_default=True, help="Label column (0/1).")
@click.option("--score", "scores", multiple=True, metavar="COL",
              help="Score column of a model; repeat for several models. Default: score.")
@click.option("--baseline", default=None, metavar="COL",
              help="Score column of the baseline: every other model gets paired deltas "
              "(model - baseline) on the same rows.")
@click.option("--weight", default=None, metavar="COL", help="Example weight column.")
@click.option("--slice", "slices", multiple=True, metavar="COL",
              help="Slice by every value of COL; repeat for several columns.")
@click.option("--cross", "crosses", multiple=True, metavar="COL1,COL2",
              help="Slice by every present combination of these columns.")
@click.option("--group", "groups", multiple=True, metavar="COL",
              help="Protected group column: metrics per group and the max-min gap, per slice.")
@click.option("--query", default=None, metavar="COL", help="Query id column (ranking metrics).")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="Metric to compute (repeat): auc, calibration_slope, precision@0.3, ndcg@10, "
              "...; default: the engine's binary-classification set.")
@click.option("--threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Decision threshold for precision, recall and F1 written without '@'.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default=None,
              help="File format (default: from the file name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--no-intervals", "point_only", is_flag=True,
              help="Point estimates only (faster; no intervals, no interval-based deltas).")
@click.option("--jobs", "n_jobs", default=None, type=click.IntRange(1, 256), metavar="N",
              help="Threads for the in-memory engine (default: the cores, at most 4).")
@engine_option
@cells_option
@click.option("--emit-sql", is_flag=True,
              help="Print the portable pass-1 SQL (the cell table) instead of evaluating.")
@click.option("--dialect", type=click.Choice(DIALECTS), default="duckdb", show_default=True,
              help="SQL dialect of --emit-sql.")
@click.option("--table", "table_name", default=None, metavar="NAME",
              help="Table the emitted SQL reads (default: PREDICTIONS).")
@click.option("--buckets", default=None, type=click.FloatRange(0.01, 100_000), metavar="R",
              help="Scale engines: logit buckets per unit of logit (default 1000; the AUC "
              "bound is about 0.075/R).")
def evaluate_cmd(predictions: str | None, label: str, scores: tuple[str, ...],
                 baseline: str | None, weight: str | None, slices: tuple[str, ...],
                 crosses: tuple[str, ...], groups: tuple[str, ...], query: str | None,
                 metrics: tuple[str, ...], threshold: float, fmt: str | None, as_json: bool,
                 point_only: bool, n_jobs: int | None, engine: str | None, cells: str | None, emit_sql: bool, dialect: str,
                 table_name: str | None, buckets: float | None) -> None:
    """Compute slice metrics with 95% intervals from PREDICTIONS (Parquet or CSV, a local file
    or a store URI such as s3://bucket/preds.parquet). No registry needed.

    \b
    mlreg evaluate preds.parquet --slice country --slice device --group age_band
    mlreg evaluate both.csv --score new --baseline old     # paired deltas new - old
    mlreg evaluate 's3://b/eval/*.parquet' --engine duckdb --score new --baseline old
    mlreg evaluate --emit-sql --dialect bigquery --table p.d.preds > pass1.sql
    mlreg evaluate --cells cells.parquet --score new --baseline old   # its result, back
    """
    from mlreg.metrics import evaluate_predictions, read_predictions

    columns = list(dict.fromkeys([*(scores or ("score",)), *([baseline] if baseline else [])]))
    if emit_sql or cells or (engine or "memory") != "memory":
        if point_only or n_jobs is not None:
            raise click.UsageError("--no-intervals and --jobs apply to the in-memory engine "
                                   "only (leave out --engine, --cells and --emit-sql)")
        from mlreg.scale.cli import scaled_evaluate

        result = scaled_evaluate(
            predictions, engine=engine, cells=cells, emit_sql=emit_sql, dialect=dialect,
            table=table_name, buckets=buckets, label=label, scores=columns, baseline=baseline,
            weight=weight, slice_columns=slices, crosses=[c.split(",") for c in crosses],
            group_columns=groups, metrics=metrics, threshold=threshold)
        if isinstance(result, str):
            click.echo(result, nl=False)
            return
        predictions = predictions or cells
    else:
        if predictions is None:
            raise click.UsageError("missing argument PREDICTIONS")
        frame = read_predictions(predictions, format=fmt)
        result = evaluate_predictions(
            frame, label=label, scores=columns, baseline=baseline, weight=weight,
            slice_columns=list(slices), crosses=[tuple(c.split(",")) for c in crosses],
            group_columns=list(groups), query=query, metrics=list(metrics) or None,
            threshold=threshold, n_jobs=n_jobs, intervals=not point_only)
    if as_json:
        click.echo(to_json({"predictions": predictions, **result.to_dict()}))
        return
    click.echo(_evaluate_text(predictions, result))


def _cell(m: Any) -> str:
    if m is None:
        return "-"
    if not m.defined:
        return "undefined"
    v, lo, hi = m.value, m.lo, m.hi
    if lo == lo and hi == hi and lo != hi:  # not NaN, a real interval
        return f"{v:.4f} [{lo:.4f}, {hi:.4f}]"
    return f"{v:g}" if float(v).is_integer() else f"{v:.4f}"


def _evaluate_text(predictions: str, res: Any) -> str:
    settings = res.settings
    kind = (f"{settings.get('confidence', 0.95):.0%} intervals"
            if settings.get("intervals", True) else "point estimates only")
    out = [f"{predictions}: {res.n:,} rows, threshold {settings.get('threshold', 0.5):g}, "
           f"{kind}"]
    metrics = [m for m in res.metrics if m not in ("count", "weight")]
    for model in res.models:
        out += ["", f"model {model!r}" + (" (baseline)" if model == res.baseline else "")]
        out.append(table(["slice", "n", *metrics],
                         [[s.name, s.n, *(_cell(s.metrics[model].get(m)) for m in metrics)]
                          for s in res.slices]))
    for model in res.models:
        if model == res.baseline or not res.baseline:
            continue
        out += ["", f"paired delta {model} - {res.baseline}"]
        out.append(table(["slice", "n", *metrics],
                         [[s.name, s.n, *(_cell(s.deltas[model].get(m)) for m in metrics)]
                          for s in res.slices]))
    for s in res.slices:
        for col, br in s.groups.items():
            for model, gaps in br.gaps.items():
                shown = [f"{m} {_cell(g)} ({g.max_group} vs {g.min_group})"
                         for m, g in gaps.items() if g.defined]
                if shown:
                    out.append(f"{s.name} by {col}, {model!r}: gap " + "; ".join(shown))
    out += [f"warning: {w}" for w in res.warnings]
    if getattr(res, "scale", None) is not None:
        out.append(res.scale.describe(list(res.metrics)))
    return "\n".join(out)


# -- mlreg gate ----------------------------------------------------------------------------------

def resolve_promotion(reg: Any, candidate: str, baseline: str | None, service: str | None,
                      mode: str, canary: float | None) -> Any:
    """The Promotion a ``mlreg gate`` command line asks for (InputError when ambiguous)."""
    from mlreg.gates.inputs import Promotion

    cand = reg.resolve(candidate)
    if cand.deployment is not None:
        raise InputError(f"--candidate names a version (MODEL@VERSION), not the service "
                         f"{candidate!r}")
    dep = None
    if service is not None:
        if mode != "bootstrap" or service in reg.deployments():
            dep = reg.deployment(service)  # NotFound unless a first deployment
    elif baseline is None and mode != "bootstrap":
        serving = [d for d in reg.deployments().values() if d.model == cand.model]
        if len(serving) == 1:
            dep = serving[0]
        elif not serving:
            raise InputError(f"{cand.model} serves no service: name --baseline MODEL@VERSION or "
                             f"--service SERVICE, or --mode bootstrap for a first deployment")
        else:
            names = ", ".join(sorted(d.service for d in serving))
            raise InputError(f"{cand.model} serves several services ({names}): name one with "
                             "--service, or --baseline MODEL@VERSION")
    from_model = from_version = None
    if mode != "bootstrap":
        if baseline is not None:
            b = reg.resolve(baseline)
            from_model, from_version = b.model, b.version
        elif dep is not None:
            from_model, from_version = dep.model, dep.stable
    return Promotion(
        model=cand.model, to_version=cand.version, service=dep.service if dep else service,
        from_version=from_version, from_model=from_model, canary_percent=canary,
        mode=mode, target=dep.target if dep else None)  # type: ignore[arg-type]


def _write(path: str, text: str) -> None:
    if path == "-":
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None


@click.command("gate")
@click.option("--candidate", default=None, metavar="MODEL@VERSION",
              help="The version to promote (MODEL@latest works too).")
@click.option("--base", "base_rev", default=None, metavar="REV",
              help="PR mode (with --head): gate everything REV..HEAD changes, read from git.")
@click.option("--head", "head_rev", default=None, metavar="REV",
              help="PR mode: the revision under review (e.g. the PR's merge commit).")
@click.option("--baseline", default=None, metavar="MODEL@VERSION",
              help="Compare with this version (default: what the service serves).")
@click.option("--service", default=None, metavar="SERVICE",
              help="The service being promoted; its stable version is the baseline. "
              "Default: the one service the model serves.")
@click.option("--mode", type=click.Choice(["promotion", "rollback", "bootstrap"]),
              default="promotion", show_default=True,
              help="bootstrap: the first deployment of a service (no baseline; change rules "
              "skipped); rollback: only the policy's rollback gates block.")
@click.option("--canary", default=None, type=click.FloatRange(0, 100), metavar="PERCENT",
              help="Traffic share of a canary promotion (recorded in the result).")
@registry_options
@click.option("--json", "json_path", default=None, metavar="FILE",
              help="Write the decision record (mlreg/result/v1 JSON); '-' for stdout.")
@click.option("--markdown", "markdown_path", default=None, metavar="FILE",
              help="Write the Markdown report (the PR comment); '-' for stdout.")
@click.option("--all-rows", is_flag=True, help="Show every passing row in the terminal table.")
@engine_option
@cells_option
def gate_cmd(candidate: str | None, base_rev: str | None, head_rev: str | None,
             baseline: str | None, service: str | None, mode: str,
             canary: float | None, registry: str, rev: str | None, json_path: str | None,
             markdown_path: str | None, all_rows: bool, engine: str | None,
             cells: str | None) -> None:
    """Evaluate promoting --candidate under the registry's policies (policies/default.yaml
    and policies/MODEL.yaml), against the baseline served by the service.

    Metrics are recomputed from both versions' evaluation predictions, joined on the example
    id; artifacts are hashed in the store. Exit 0 when every gate passes, 1 when one fails.

    \b
    mlreg gate --candidate fraud@127 --service fraud-scoring --markdown report.md
    mlreg gate --candidate fraud@128 --baseline fraud@127 --json result.json
    mlreg gate --base origin/main --head HEAD --json result.json   # a whole PR
    """
    if base_rev or head_rev:  # the PR flow: mlreg.commands.flow
        if candidate:
            raise click.UsageError("--candidate or --base/--head, not both")
        from mlreg.commands.flow import run_pr_gate

        run_pr_gate(registry, base_rev, head_rev, json_path, markdown_path)
        return
    if not candidate:
        raise click.UsageError("name --candidate MODEL@VERSION, or --base REV --head REV")
    from mlreg.gates.result import validate_result
    from mlreg.gates.run import gate_promotion
    from mlreg.reports.markdown import render_markdown
    from mlreg.reports.terminal import render_terminal

    if mode == "bootstrap" and baseline:
        raise click.UsageError("--mode bootstrap has no baseline; drop --baseline")
    with open_registry(registry, rev) as reg:
        promotion = resolve_promotion(reg, candidate, baseline, service, mode, canary)
        result = gate_promotion(reg, reg, promotion, engine="cells" if cells else engine,
                                engine_options={"cells": cells} if cells else None)
    doc = result.to_json_dict()
    validate_result(doc)  # what CI uploads is re-read as untrusted data: never write a bad one
    stdout_taken = "-" in (json_path, markdown_path)
    if json_path:
        _write(json_path, to_json(doc))
    if markdown_path:
        _write(markdown_path, render_markdown(doc))
    if not stdout_taken:
        click.echo(render_terminal(doc, max_passing=10**6 if all_rows else 25))
    if not result.passed:
        s = doc["summary"]
        raise CheckFailed(f"gate failed: {s['failed']} of {s['gates']} gates, "
                          f"{s['failing_rows']} failing row(s) ({promotion.model}@"
                          f"{promotion.to_version})")
