"""Metrics and gates: ``mlreg evaluate`` (any predictions file) and ``mlreg gate`` (a promotion).

Exit codes: 0 every gate passed; 1 a gate failed (the report is printed first); 2 bad input;
3 the artifact store is unreachable. numpy and pandas are imported inside the commands only.
"""

from __future__ import annotations

import os
from typing import Any

import click

from mlreg.commands.options import open_registry, registry_options
from mlreg.errors import CheckFailed, InputError, NotFound
from mlreg.render import table, to_json

__all__ = ["evaluate_cmd", "gate_cmd", "resolve_promotion"]


# -- mlreg evaluate ------------------------------------------------------------------------------

def _read_any(path: str) -> tuple[bytes, str]:
    """Bytes of a local file or a store URI (hashed by the store, then downloaded verified)."""
    if "://" not in path:
        try:
            with open(path, "rb") as fh:
                return fh.read(), path
        except FileNotFoundError:
            raise NotFound(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a directory, not a predictions file") from None
    import tempfile

    from mlreg.storage import open_store

    scheme, _, rest = path.partition("://")
    bucket, _, key = rest.partition("/")
    store = open_store(f"{scheme}://{bucket}")
    digest = store.hash_object(key)
    with tempfile.TemporaryDirectory(prefix="mlreg-evaluate-") as tmp:
        dest = os.path.join(tmp, "predictions")
        store.get_file(key, dest, sha256=digest.sha256, size=digest.size)
        with open(dest, "rb") as fh:
            return fh.read(), path


@click.command("evaluate")
@click.argument("predictions")
@click.option("--label", default="label", show_default=True, help="Label column (0/1).")
@click.option("--score", "scores", multiple=True, metavar="COL",
              help="Score column; repeat for several models (the first is the candidate, "
              "deltas are first minus each other). Default: score.")
@click.option("--weight", default=None, metavar="COL", help="Example weight column.")
@click.option("--slice", "slices", multiple=True, metavar="COL",
              help="Slice by every value of COL; repeat for several columns.")
@click.option("--cross", "crosses", multiple=True, metavar="COL1,COL2",
              help="Slice by every combination of these columns.")
@click.option("--group", "groups", multiple=True, metavar="COL",
              help="Protected group column: metrics per group and the max-min gap.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="Metric to compute (repeat); default: the binary-classification set.")
@click.option("--threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Decision threshold for precision, recall and F1.")
@click.option("--confidence", default=0.95, show_default=True,
              type=click.FloatRange(0.5, 1, min_open=True, max_open=True),
              help="Confidence level of the intervals.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default=None,
              help="File format (default: from the file name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def evaluate_cmd(predictions: str, label: str, scores: tuple[str, ...], weight: str | None,
                 slices: tuple[str, ...], crosses: tuple[str, ...], groups: tuple[str, ...],
                 metrics: tuple[str, ...], threshold: float, confidence: float,
                 fmt: str | None, as_json: bool) -> None:
    """Compute slice metrics with 95% intervals from PREDICTIONS (Parquet or CSV, a local file
    or a store URI). No registry needed.

    \b
    mlreg evaluate preds.parquet --slice country --slice device --group age_band
    mlreg evaluate both.csv --score new --score old      # deltas new - old, paired
    """
    from mlreg.gates.engine import DEFAULT_METRICS, evaluate_table
    from mlreg.gates.run import read_predictions

    data, shown = _read_any(predictions)
    frame = read_predictions(data, fmt, shown)
    result = evaluate_table(
        frame, label=label, scores=list(scores or ("score",)), weight=weight,
        slice_columns=list(slices), crosses=[tuple(c.split(",")) for c in crosses],
        group_columns=list(groups), metrics=tuple(metrics or DEFAULT_METRICS),
        threshold=threshold, confidence=confidence)
    result["predictions"] = shown
    if as_json:
        click.echo(to_json(result))
        return
    click.echo(_evaluate_text(result))


def _cell(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "undefined" if m else "-"
    v = m["value"]
    if m.get("lo") is not None and m.get("hi") is not None and m["lo"] != m["hi"]:
        return f"{v:.4f} [{m['lo']:.4f}, {m['hi']:.4f}]"
    return f"{v:.4f}" if isinstance(v, float) and not float(v).is_integer() else f"{v:g}"


def _evaluate_text(result: dict) -> str:
    out = [f"{result['predictions']}: {result['rows']:,} rows, label {result['label']!r}, "
           f"threshold {result['threshold']:g}, {result['confidence']:.0%} intervals"]
    metrics = [m for m in result["metrics"] if m != "count"]
    for col in result["scores"]:
        out.append("")
        out.append(f"score {col!r}")
        out.append(table(["slice", "n", *metrics],
                         [[s["slice"], s["n"], *(_cell(s["metrics"][col][m]) for m in metrics)]
                          for s in result["slices"]]))
    for pair in (result["slices"][0].get("deltas") or {}):
        out.append("")
        out.append(f"paired delta {pair}")
        out.append(table(["slice", "n", *metrics],
                         [[s["slice"], s["n"], *(_cell(s["deltas"][pair][m]) for m in metrics)]
                          for s in result["slices"]]))
    for s in result["slices"]:
        for col, g in (s.get("groups") or {}).items():
            for score, gaps in g["gaps"].items():
                shown = [f"{m} {gaps[m]['value']:.4f} ({gaps[m]['max_group']} vs "
                         f"{gaps[m]['min_group']})" for m in metrics if gaps.get(m)]
                if shown:
                    out.append(f"{s['slice']} by {col}, {score!r}: gap " + "; ".join(shown))
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
@click.option("--candidate", required=True, metavar="MODEL@VERSION",
              help="The version to promote (MODEL@latest works too).")
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
def gate_cmd(candidate: str, baseline: str | None, service: str | None, mode: str,
             canary: float | None, registry: str, rev: str | None, json_path: str | None,
             markdown_path: str | None, all_rows: bool) -> None:
    """Evaluate promoting --candidate under the registry's policies (policies/default.yaml
    and policies/MODEL.yaml), against the baseline served by the service.

    Metrics are recomputed from both versions' evaluation predictions, joined on the example
    id; artifacts are hashed in the store. Exit 0 when every gate passes, 1 when one fails.

    \b
    mlreg gate --candidate fraud@127 --service fraud-scoring --markdown report.md
    mlreg gate --candidate fraud@128 --baseline fraud@127 --json result.json
    """
    from mlreg.gates.result import validate_result
    from mlreg.gates.run import gate_promotion
    from mlreg.reports.markdown import render_markdown
    from mlreg.reports.terminal import render_terminal

    if mode == "bootstrap" and baseline:
        raise click.UsageError("--mode bootstrap has no baseline; drop --baseline")
    with open_registry(registry, rev) as reg:
        promotion = resolve_promotion(reg, candidate, baseline, service, mode, canary)
        result = gate_promotion(reg, reg, promotion)
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
