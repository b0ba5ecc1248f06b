"""The dashboard: a static site of the registry, from git alone.

    summary = build_dashboard(".", "site/")       # then open site/index.html, or publish it

What it shows (Uber's and Netflix's registry dashboards, from the seed): what is deployed now per
service and surface; every model and version with its lineage record; metric trends over versions
(charts); calibration (reliability) plots per version and slice, computed from the evaluation
predictions; the deployment timeline per service and surface with canaries and rollbacks (and
their reasons); online results next to offline metrics; gate results when available; lineage links
between versions (parent, children), data snapshots and the versions that used them; services.

Static and self-contained: plain HTML, one CSS file, charts as inline SVG (:mod:`mlreg.history.svg`),
relative links only, no JavaScript, no CDN, no network - it works from ``file://`` and from GitHub
Pages. Every name is escaped. Facts come from the lineage index (:mod:`mlreg.history.index`), so
10,000 versions cost one warm index load, not 10,000 YAML parses.

Gate results: ``gates=True`` re-derives the decision behind what every service serves now (the
gates library; seconds per decision), and ``results_dir`` adds ``mlreg/result/v1`` JSON files
(CI artifacts). Without either, version pages say how to get them.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mlreg.errors import InputError, MlregError
from mlreg.history import svg
from mlreg.names import natural_key

__all__ = ["build_dashboard", "DashboardSummary", "MARKER"]

MARKER = ".mlreg-dashboard"
_TIMELINE_ROWS = 1000
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d1d1f;
background:#fafafa}
header{background:#24292f;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;
align-items:baseline;flex-wrap:wrap}
header a{color:#fff;text-decoration:none}header .brand{font-weight:700;font-size:1.1em}
main{padding:1em 1.5em;max-width:1200px}
h1{font-size:1.5em;margin:.3em 0}h2{font-size:1.15em;margin:1.4em 0 .4em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.4em 0;background:#fff}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f0f2f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
pre{background:#fff;border:1px solid #ddd;padding:.8em;overflow:auto;max-height:40em}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fff;border:1px solid #e3e3e3}
.badge{display:inline-block;padding:0 .45em;border-radius:8px;font-size:12px;margin:0 .15em;
background:#e8f0fe;color:#174ea6}.badge.canary{background:#fff4e5;color:#8a4b00}
.badge.fail,.fail{color:#b3261e}.badge.pass,.pass{color:#137333}.muted{color:#666}
.kind-rollback{color:#b3261e;font-weight:600}
footer{color:#777;font-size:12px;padding:1em 1.5em}
"""


def _e(x: Any) -> str:
    return html.escape("–" if x is None else str(x), quote=True)


def _q(x: str) -> str:
    return quote(str(x), safe="")


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return _e(x)


@dataclass
class DashboardSummary:
    out_dir: str
    pages: int = 0
    versions: int = 0
    services: int = 0
    events: int = 0
    calibration: int = 0  # (version, slice) reliability curves drawn
    gate_results: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class _Site:
    def __init__(self, out: str, generated: str, source: str) -> None:
        self.out = out
        self.generated = generated
        self.source = source
        self.pages = 0

    def write(self, rel: str, title: str, body: str) -> None:
        depth = rel.count("/")
        root = "../" * depth
        nav = "".join(f'<a href="{root}{href}">{label}</a>' for href, label in (
            ("index.html", "Deployed"), ("models.html", "Models"),
            ("timeline.html", "Timeline"), ("data.html", "Data snapshots")))
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)} · mlreg</title>"
            '<link rel="icon" href="data:,">'
            f'<link rel="stylesheet" href="{root}assets/style.css"></head><body>'
            f'<header><a class="brand" href="{root}index.html">mlreg registry</a>{nav}</header>'
            f"<main>{body}</main><footer>Generated {_e(self.generated)} from "
            f"{_e(self.source)} by mlreg. Static: no scripts, no network.</footer>"
            "</body></html>\n")
        path = os.path.join(self.out, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)
        self.pages += 1


def _version_href(model: str, version: str, depth: int) -> str:
    return f"{'../' * depth}models/{_q(model)}/v/{_q(version)}.html"


def _model_href(model: str, depth: int) -> str:
    return f"{'../' * depth}models/{_q(model)}/index.html"


def _service_href(service: str, depth: int) -> str:
    return f"{'../' * depth}services/{_q(service)}.html"


def _data_href(uri: str, depth: int) -> str:
    return f"{'../' * depth}data.html#{_anchor(uri)}"


def _anchor(uri: str) -> str:
    return "d-" + hashlib.sha1(uri.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _vlink(model: str, version: str, depth: int, known: set[tuple[str, str]]) -> str:
    text = f"{_e(model)}@{_e(version)}"
    if (model, version) in known:
        return f'<a href="{_version_href(model, version, depth)}">{text}</a>'
    return text


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()
           ) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
        for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------- calibration
def _calibration(registry: Any, facts: Mapping[str, Any], record_preds: Mapping[str, Any],
                 model_info: Mapping[str, Any], files: Any, max_slices: int
                 ) -> tuple[dict[str, list[tuple[float, float, int]]], str | None]:
    """``{slice key: [(mean score, observed rate, n)]}`` from a version's predictions."""
    from mlreg.metrics.binary import reliability_curve

    data, check = files.read_verified("candidate", "predictions", dict(record_preds))
    if data is None:
        return {}, f"predictions not readable: {check.problem}"
    label = record_preds.get("label_column") or model_info.get("label_column") or "label"
    score = record_preds.get("score_column") or "score"
    slice_cols = [c for c in model_info.get("slice_columns") or [] if isinstance(c, str)]
    import pandas as pd

    try:
        fmt = record_preds.get("format") or ("csv" if str(record_preds.get("uri", ""))
                                             .endswith(".csv") else "parquet")
        if fmt == "csv":
            df = pd.read_csv(io.BytesIO(data))
        else:
            import pyarrow.parquet as pq

            names = set(pq.ParquetFile(io.BytesIO(data)).schema_arrow.names)
            cols = [c for c in [label, score, *slice_cols] if c in names]
            df = pd.read_parquet(io.BytesIO(data), columns=cols)
    except Exception as exc:  # noqa: BLE001 - pyarrow/pandas raise many types for bad files
        return {}, f"predictions cannot be read: {type(exc).__name__}: {exc}"
    if label not in df.columns or score not in df.columns:
        return {}, f"predictions lack the {label!r} or {score!r} column"
    y = df[label].to_numpy()
    s = df[score].to_numpy()
    out: dict[str, list[tuple[float, float, int]]] = {}

    def curve(mask: Any = None) -> list[tuple[float, float, int]]:
        bins = reliability_curve(y if mask is None else y[mask], s if mask is None else s[mask],
                                 n_bins=10)
        return [(b.mean_score, b.mean_label, b.count) for b in bins if b.count]

    try:
        out["overall"] = curve()
        for col in slice_cols:
            if col not in df.columns:
                continue
            counts = df[col].value_counts()
            for value in list(counts.index[:max_slices]):
                out[f"{col}={value}"] = curve((df[col] == value).to_numpy())
    except (InputError, ValueError) as exc:
        return out, f"reliability not computable: {exc}"
    return out, None


# ------------------------------------------------------------------------------- the build
def build_dashboard(root: str, out_dir: str, *, rev: str | None = None, gates: bool = False,
                    results_dir: str | None = None, calibration_versions: int = 3,
                    calibration_slices: int = 4, history_rev: str | None = None
                    ) -> DashboardSummary:
    """Write the static site for the registry at ``root`` (``rev``: a revision instead of the
    working tree) into ``out_dir``; see the module docstring. ``calibration_versions``: per
    binary-classification model, reliability plots for the versions serving now plus this many
    of the latest (0: none). ``history_rev``: the first-parent chain for the timeline (default:
    main). Refuses to write into a non-empty directory that is not an earlier dashboard."""
    from mlreg.history.index import load_index
    from mlreg.history.online import online_results
    from mlreg.history.timeline import timeline
    from mlreg.registry import Registry

    started = time.perf_counter()
    out = os.path.abspath(out_dir)
    _prepare(out)
    summary = DashboardSummary(out_dir=out)
    reg = Registry.open(root, rev)
    try:
        index = load_index(root, rev)
        facts = {(f["model"], f["version"]): f for f in index.entries}
        known = set(facts)
        deps = reg.deployments()
        models = sorted({m for m, _ in facts} | set(reg.models()))
        model_info: dict[str, dict] = {}
        for m in models:
            try:
                model_info[m] = dict(reg.model_info(m))
            except MlregError:
                model_info[m] = {}
        try:
            online = online_results(reg)
        except MlregError as exc:
            online = []
            summary.notes.append(f"online results not shown: {exc}")
        try:
            tl = timeline(root, history_rev or (rev if rev else None))
            events = tl.events
            source = f"{tl.rev} ({tl.head[:12]})"
        except MlregError as exc:
            events = []
            source = rev or "working tree"
            summary.notes.append(f"no history: {exc}")
        if rev is None:
            source = f"working tree; history of {source}"
        summary.events = len(events)
        children: dict[tuple[str, str], list[str]] = defaultdict(list)
        for (m, v), f in facts.items():
            if f.get("parent"):
                children[(m, f["parent"])].append(v)
        serving: dict[tuple[str, str], list[tuple[str, str, float]]] = defaultdict(list)
        for s, d in deps.items():
            share = 100.0 - (d.canary_percent or 0.0) if d.canary else 100.0
            serving[(d.model, d.stable)].append((s, "stable", share))
            if d.canary:
                serving[(d.model, d.canary)].append((s, "canary", d.canary_percent or 0.0))
        decisions = _gate_results(root, events, deps, gates, results_dir, summary)
        calib = _all_calibration(reg, facts, model_info, deps, calibration_versions,
                                 calibration_slices, summary)
        generated = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        site = _Site(out, generated, source)
        ctx = _Ctx(reg, facts, known, deps, models, model_info, online, events, children,
                   serving, decisions, calib)
        _write_assets(out)
        _index_page(site, ctx)
        _models_page(site, ctx)
        for m in models:
            _model_page(site, ctx, m)
        for (m, v) in sorted(facts, key=lambda k: (k[0], natural_key(k[1]))):
            _version_page(site, ctx, m, v)
        for s in sorted(set(deps) | {e.service for e in events if e.service
                                     and e.kind != "online"} | {r["service"] for r in online}):
            _service_page(site, ctx, s)
        _timeline_page(site, ctx)
        _data_page(site, ctx)
        summary.pages = site.pages
        summary.versions = len(facts)
        summary.services = len(deps)
    finally:
        reg.close()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


@dataclass
class _Ctx:
    reg: Any
    facts: dict[tuple[str, str], dict]
    known: set[tuple[str, str]]
    deps: dict[str, Any]
    models: list[str]
    model_info: dict[str, dict]
    online: list[dict]
    events: list[Any]
    children: dict[tuple[str, str], list[str]]
    serving: dict[tuple[str, str], list[tuple[str, str, float]]]
    decisions: dict[tuple[str, str], list[dict]]
    calib: dict[tuple[str, str], tuple[dict, str | None]]

    def __post_init__(self) -> None:
        # Indexes built once: pages look things up instead of scanning every event or fact.
        versions: dict[str, list[str]] = defaultdict(list)
        keys: dict[str, dict[str, None]] = defaultdict(dict)
        for (m, v), f in self.facts.items():
            versions[m].append(v)
            for k in f.get("metrics") or {}:
                keys[m][k] = None
        self._versions = {m: sorted(vs, key=natural_key) for m, vs in versions.items()}
        self._keys = {m: sorted(ks, key=lambda k: (not k.startswith("validation."), k))
                      for m, ks in keys.items()}
        self.by_version: dict[tuple[str, str], list[Any]] = defaultdict(list)
        self.by_service: dict[str, list[Any]] = defaultdict(list)
        self.services_of_model: dict[str, set[str]] = defaultdict(set)
        for e in self.events:
            if not e.service or e.kind == "online":
                continue
            self.by_service[e.service].append(e)
            models = e.models()
            for m in models:
                self.services_of_model[m].add(e.service)
                for v in e.versions():
                    self.by_version[(m, v)].append(e)

    def versions_of(self, model: str) -> list[str]:
        return self._versions.get(model, [])

    def metric_keys(self, model: str) -> list[str]:
        return self._keys.get(model, [])

    def badges(self, model: str, version: str, depth: int) -> str:
        out = []
        for s, role, pct in self.serving.get((model, version), []):
            cls = "badge canary" if role == "canary" else "badge"
            out.append(f'<a class="{cls}" href="{_service_href(s, depth)}">{_e(s)} '
                       f"{_e(role)} {pct:g}%</a>")
        return "".join(out)


def _prepare(out: str) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"{out} exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(os.path.join(out, MARKER)):
            raise InputError(f"{out} is not empty and holds no earlier dashboard (no {MARKER}); "
                             "choose an empty or new directory")
        for name in ("models", "services", "assets"):
            shutil.rmtree(os.path.join(out, name), ignore_errors=True)
        for name in os.listdir(out):
            if name.endswith(".html"):
                os.unlink(os.path.join(out, name))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, MARKER), "w", encoding="utf-8") as fh:
        fh.write("generated by mlreg dashboard; the directory is rewritten on each run\n")


def _write_assets(out: str) -> None:
    os.makedirs(os.path.join(out, "assets"), exist_ok=True)
    with open(os.path.join(out, "assets", "style.css"), "w", encoding="utf-8") as fh:
        fh.write(_CSS.lstrip())
    # GitHub Pages: serve files as they are (no Jekyll processing of names).
    with open(os.path.join(out, ".nojekyll"), "w", encoding="utf-8") as fh:
        fh.write("")


def _gate_results(root: str, events: list[Any], deps: Mapping[str, Any], gates: bool,
                  results_dir: str | None, summary: DashboardSummary
                  ) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    if results_dir:
        from mlreg.gates.result import validate_result

        for name in sorted(os.listdir(results_dir)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(results_dir, name)
            try:
                with open(path, encoding="utf-8") as fh:
                    doc = json.load(fh)
                validate_result(doc, path)
            except (OSError, ValueError, MlregError) as exc:
                summary.notes.append(f"{name}: not a gate result ({str(exc)[:200]})")
                continue
            cand = doc["candidate"]
            out[(cand["model"], cand["version"])].append(
                {"status": "ok", "source": name, "verdict": doc["verdict"], "mode": doc["mode"],
                 "policy_sha256": doc["policy"]["sha256"], "service":
                 doc["promotion"].get("service"), "gates": doc["gates"], "commit": None})
            summary.gate_results += 1
    if gates:
        from mlreg.history.audit import _derive_gate

        for svc, d in deps.items():
            for role, version in [("stable", d.stable)] + ([("canary", d.canary)]
                                                           if d.canary else []):
                ev = _introduced(events, svc, version, role)
                if ev is None:
                    continue
                dec = _derive_gate(root, ev, d.model, version)
                if dec.get("status") != "ok":
                    summary.notes.append(f"gate of {d.model}@{version} on {svc} at "
                                         f"{ev.commit[:12]}: {dec.get('status')}: "
                                         f"{str(dec.get('reason'))[:300]}")
                    continue
                dec.update({"service": svc, "source": f"re-derived at {ev.commit[:12]}",
                            "gates": dec["result"]["gates"]})
                dec.pop("result", None)
                out[(d.model, version)].append(dec)
                summary.gate_results += 1
    return out


def _introduced(events: Sequence[Any], service: str, version: str, role: str) -> Any:
    """The last event that made ``version`` the service's ``role`` (stable or canary)."""
    for e in reversed(events):
        if e.service != service or e.after is None:
            continue
        now = e.after.stable if role == "stable" else e.after.canary
        was = None if e.before is None else (
            e.before.stable if role == "stable" else e.before.canary)
        if now == version and was != version:
            return e
    return None


def _all_calibration(reg: Any, facts: Mapping[tuple[str, str], dict],
                     model_info: Mapping[str, dict], deps: Mapping[str, Any], latest: int,
                     slices: int, summary: DashboardSummary
                     ) -> dict[tuple[str, str], tuple[dict, str | None]]:
    out: dict[tuple[str, str], tuple[dict, str | None]] = {}
    if latest <= 0:
        return out
    try:
        from mlreg.gates.files import FileAccess

        files = FileAccess(reg)
    except ImportError as exc:  # pragma: no cover
        summary.notes.append(f"calibration plots not available: {exc}")
        return out
    by_model: dict[str, list[str]] = defaultdict(list)
    for m, v in facts:
        by_model[m].append(v)
    for vs in by_model.values():
        vs.sort(key=natural_key)
    for model, info in model_info.items():
        if info.get("task") != "binary_classification":
            continue
        versions = by_model.get(model, [])
        wanted = versions[-latest:]
        for d in deps.values():
            if d.model == model:
                wanted += [v for v in (d.stable, d.canary) if v and v in versions]
        for v in sorted(set(wanted), key=natural_key):
            try:
                rec = reg.record(model, v)
            except MlregError as exc:
                out[(model, v)] = ({}, str(exc))
                continue
            preds = (rec.get("evaluation") or {}).get("predictions")
            if not preds:
                out[(model, v)] = ({}, "the record has no evaluation predictions")
                continue
            try:
                curves, why = _calibration(reg, facts[(model, v)], preds, info, files, slices)
            except MlregError as exc:
                curves, why = {}, str(exc)
            out[(model, v)] = (curves, why)
            summary.calibration += len(curves)
    return out


# ------------------------------------------------------------------------------------ pages
def _index_page(site: _Site, ctx: _Ctx) -> None:
    last_change: dict[str, Any] = {}
    for ev in ctx.events:
        if ev.service and ev.kind in ("promotion", "canary", "rollback", "edit"):
            last_change[ev.service] = ev
    by_surface: dict[str, list[str]] = defaultdict(list)
    for s, d in ctx.deps.items():
        by_surface[d.surface or d.target or "-"].append(s)
    rows = []
    for surface in sorted(by_surface):
        for s in sorted(by_surface[surface]):
            d = ctx.deps[s]
            ev = last_change.get(s)
            since = (f"{_e(ev.date[:10])} <code>{_e(ev.commit[:8])}</code>"
                     + (f" #{ev.pr}" if ev.pr else "") + f" {_e(ev.kind)}") if ev else "–"
            rows.append([
                _e(surface), f'<a href="{_service_href(s, 0)}">{_e(s)}</a>',
                f'<a href="{_model_href(d.model, 0)}">{_e(d.model)}</a>',
                _vlink(d.model, d.stable, 0, ctx.known),
                (_vlink(d.model, d.canary, 0, ctx.known) + f" ({d.canary_percent:g}%)")
                if d.canary else "–", since])
    body = ["<h1>Deployed now</h1>",
            _table(["surface / target", "service", "model", "stable", "canary", "since"], rows)
            if rows else "<p>No services are deployed.</p>"]
    body.append("<h2>Models</h2>")
    body.append(_models_table(ctx, 0))
    charts = []
    for m in ctx.models[:24]:
        versions = ctx.versions_of(m)
        keys = _metric_keys(ctx, m)
        if not keys or not versions:
            continue
        key = keys[0]
        charts.append(f'<a href="{_model_href(m, 0)}">' + svg.line_chart(
            f"{m}: {key}", versions, [(key, [ctx.facts[(m, v)].get("metrics", {}).get(key)
                                             for v in versions])],
            width=380, height=180,
            highlight=[i for i, v in enumerate(versions) if (m, v) in ctx.serving]) + "</a>")
    if charts:
        body.append("<h2>Metric trends</h2><div class=charts>" + "".join(charts) + "</div>")
    recent = ctx.events[-15:]
    if recent:
        body.append("<h2>Recent events</h2>")
        body.append(_events_table(list(reversed(recent)), ctx, 0))
        body.append('<p><a href="timeline.html">Full timeline</a></p>')
    site.write("index.html", "Deployed now", "".join(body))


def _models_table(ctx: _Ctx, depth: int) -> str:
    rows = []
    for m in ctx.models:
        vs = ctx.versions_of(m)
        info = ctx.model_info.get(m, {})
        serving = "".join(ctx.badges(m, v, depth) for v in vs)
        rows.append([f'<a href="{_model_href(m, depth)}">{_e(m)}</a>', _e(info.get("task")),
                     _e(info.get("owner")), str(len(vs)),
                     _vlink(m, vs[-1], depth, ctx.known) if vs else "–", serving or "–"])
    return _table(["model", "task", "owner", "versions", "latest", "serving"], rows, (3,))


def _models_page(site: _Site, ctx: _Ctx) -> None:
    site.write("models.html", "Models", "<h1>Models</h1>" + _models_table(ctx, 0))


def _metric_keys(ctx: _Ctx, model: str) -> list[str]:
    return ctx.metric_keys(model)


def _online_rows(ctx: _Ctx, model: str, version: str | None = None) -> list[dict]:
    return [r for r in ctx.online if r.get("model") == model
            and (version is None or r.get("version") == version)]


def _online_section(ctx: _Ctx, model: str, depth: int, version: str | None = None) -> str:
    """Online results next to offline metrics, per service (surface) and version."""
    rows = _online_rows(ctx, model, version)
    if not rows:
        return "<p class=muted>No online results recorded (<code>mlreg online</code>).</p>"
    online_keys = sorted({k for r in rows for k in r.get("metrics") or {}})
    offline_keys = [k for k in _metric_keys(ctx, model) if k.startswith("validation.")][:4]
    table_rows = []
    for r in sorted(rows, key=lambda r: (r.get("service") or "", natural_key(r["version"]))):
        f = ctx.facts.get((model, r["version"]), {})
        cells = [f'<a href="{_service_href(r["service"], depth)}">{_e(r["service"])}</a>',
                 _e(r.get("surface")), _vlink(model, r["version"], depth, ctx.known),
                 _e(r.get("experiment")),
                 _num(r.get("traffic_percent")) + ("%" if r.get("traffic_percent") else "")]
        cells += [_num((f.get("metrics") or {}).get(k)) for k in offline_keys]
        for k in online_keys:
            m = (r.get("metrics") or {}).get(k)
            if not m:
                cells.append("–")
                continue
            text = _num(m.get("value"))
            if m.get("interval"):
                text += f" [{_num(m['interval'][0])}, {_num(m['interval'][1])}]"
            cells.append(text)
        table_rows.append(cells)
    headers = ["service", "surface", "version", "experiment", "traffic"] + [
        f"offline {k.split('.', 1)[1]}" for k in offline_keys] + [f"online {k}"
                                                                  for k in online_keys]
    out = [_table(headers, table_rows)]
    charts = []
    for k in online_keys:
        items = []
        for r in rows:
            m = (r.get("metrics") or {}).get(k)
            if m and isinstance(m.get("value"), (int, float)):
                iv = m.get("interval") or [None, None]
                items.append((f"{r['service']} {model}@{r['version']}", m["value"], iv[0],
                              iv[1]))
        pct = k.endswith(("_lift", "_rate"))
        charts.append(svg.interval_chart(f"online {k}", items, as_percent=pct, zero=pct))
    out.append("<div class=charts>" + "".join(charts) + "</div>")
    return "".join(out)


def _model_page(site: _Site, ctx: _Ctx, model: str) -> None:
    depth = 2
    info = ctx.model_info.get(model, {})
    versions = ctx.versions_of(model)
    body = [f"<h1>Model {_e(model)}</h1>",
            f"<p>{_e(info.get('description') or '')}</p>",
            _table(["task", "owner", "slice columns", "protected columns"],
                   [[_e(info.get("task")), _e(info.get("owner")),
                     _e(", ".join(info.get("slice_columns") or []) or "–"),
                     _e(", ".join(info.get("protected_columns") or []) or "–")]])]
    highlight = [i for i, v in enumerate(versions) if (model, v) in ctx.serving]
    charts = []
    for key in _metric_keys(ctx, model):
        charts.append(svg.line_chart(key, versions, [(key, [
            ctx.facts[(model, v)].get("metrics", {}).get(key) for v in versions])],
            highlight=highlight, width=520, height=220))
    lat = [(k, [((ctx.facts[(model, v)].get("latency") or {}).get(k)) for v in versions])
           for k in ("p50_ms", "p99_ms")]
    if any(x is not None for _, vs in lat for x in vs):
        charts.append(svg.line_chart("latency (ms)", versions, lat, width=520, height=220))
    body.append("<h2>Metric trends over versions</h2>")
    body.append('<p class=muted>Offline metrics as each record reports them; shaded: '
                "serving now.</p>")
    body.append("<div class=charts>" + "".join(charts) + "</div>" if charts else
                "<p class=muted>No numeric metrics in the records.</p>")
    curves = []
    for v in versions:
        c, _why = ctx.calib.get((model, v), ({}, None))
        if c.get("overall"):
            curves.append((f"{model}@{v}", c["overall"]))
    if curves:
        body.append("<h2>Calibration (overall)</h2><div class=charts>"
                    + svg.reliability_chart("reliability, overall", curves[-6:], size=320)
                    + "</div>")
    body.append("<h2>Online and offline</h2>")
    body.append(_online_section(ctx, model, depth))
    svcs = sorted(ctx.services_of_model.get(model, set()) | {
        s for s, d in ctx.deps.items() if d.model == model})
    if svcs:
        body.append("<h2>Services</h2><p>" + ", ".join(
            f'<a href="{_service_href(s, depth)}">{_e(s)}</a>' for s in svcs) + "</p>")
    rows = []
    for v in reversed(versions):
        f = ctx.facts[(model, v)]
        train = next((d for d in f.get("data") or [] if d.get("role") == "train"), None)
        rows.append([
            _vlink(model, v, depth, ctx.known) + ctx.badges(model, v, depth),
            _e(f.get("created")),
            _vlink(model, f["parent"], depth, ctx.known) if f.get("parent") else "–",
            f"<code>{_e((f.get('commit') or '')[:10])}</code>",
            f'<a href="{_data_href(train["uri"], depth)}">{_e(train["uri"])}</a>'
            if train and train.get("uri") else "–",
            ", ".join(f"{_e(k.split('.', 1)[1])} {_num(val)}" for k, val in
                      (f.get("metrics") or {}).items() if k.startswith("validation.")) or "–",
            f'<span class="fail">{_e(f["error"])}</span>' if f.get("error") else ""])
    body.append("<h2>Versions</h2>")
    body.append(_table(["version", "created", "parent", "commit", "train data",
                        "validation metrics", ""], rows))
    site.write(f"models/{model}/index.html", f"Model {model}", "".join(body))


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    return "<table><tbody>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>"
                                      for k, v in rows) + "</tbody></table>"


def _version_page(site: _Site, ctx: _Ctx, model: str, version: str) -> None:
    depth = 3
    f = ctx.facts[(model, version)]
    kids = sorted(ctx.children.get((model, version), []), key=natural_key)
    body = [f"<h1>{_e(model)}@{_e(version)} {ctx.badges(model, version, depth)}</h1>",
            f'<p><a href="{_model_href(model, depth)}">all versions of {_e(model)}</a></p>']
    if f.get("error"):
        body.append(f'<p class="fail">This record cannot be read: {_e(f["error"])}</p>')
    body.append(_kv([
        ("created", _e(f.get("created"))), ("owner", _e(f.get("owner"))),
        ("parent", _vlink(model, f["parent"], depth, ctx.known) if f.get("parent") else "–"),
        ("children", ", ".join(_vlink(model, k, depth, ctx.known) for k in kids) or "–"),
        ("code", f"{_e(f.get('repository'))} <code>{_e(f.get('commit'))}</code>"
         + (' <span class="fail">dirty</span>' if f.get("dirty") else "")),
        ("python", _e(f.get("python"))),
        ("gpu", _e(", ".join(f"{k} {v}" for k, v in (f.get("gpu") or {}).items()
                             if v is not None) or "none")),
        ("latency", _e(", ".join(f"{k} {v}" for k, v in (f.get("latency") or {}).items()
                                 if v is not None) or "–")),
        ("record", f"<code>{_e(f.get('path'))}</code> (blob <code>{_e(f.get('blob'))}</code>)"),
    ]))
    data_rows = [[_e(d.get("role")),
                  f'<a href="{_data_href(d["uri"], depth)}">{_e(d["uri"])}</a>'
                  if d.get("uri") else "–", _e(d.get("id")), _num(d.get("rows")),
                  _e(d.get("immutable"))] for d in f.get("data") or []]
    ev = f.get("eval")
    if ev and ev.get("uri"):
        data_rows.append(["evaluation", f'<a href="{_data_href(ev["uri"], depth)}">'
                          f'{_e(ev["uri"])}</a>', _e(ev.get("id")), _num(ev.get("rows")), ""])
    body.append("<h2>Data snapshots</h2>")
    body.append(_table(["role", "snapshot", "identity", "rows", "immutable"], data_rows))
    if f.get("features"):
        body.append("<h2>Features</h2>")
        body.append(_table(["name", "version", "sha256", "source"], [
            [_e(x.get("name")), _e(x.get("version")), f"<code>{_e((x.get('sha256') or '')[:16])}"
             "</code>", _e(x.get("source"))] for x in f["features"]]))
    if f.get("packages"):
        body.append("<h2>Packages</h2><p>" + ", ".join(
            f"{_e(k)}=={_e(v)}" for k, v in sorted(f["packages"].items())) + "</p>")
    metrics = f.get("metrics") or {}
    parent = ctx.facts.get((model, f.get("parent"))) if f.get("parent") else None
    if metrics:
        body.append("<h2>Offline metrics</h2>")
        rows = []
        for k, v in metrics.items():
            pv = (parent.get("metrics") or {}).get(k) if parent else None
            delta = f"{v - pv:+.4g}" if isinstance(pv, (int, float)) else "–"
            rows.append([_e(k), _num(v), _num(pv), delta])
        body.append(_table(["metric", "value", f"parent {f.get('parent') or ''}", "delta"],
                           rows, (1, 2, 3)))
    body.append("<h2>Online results</h2>")
    body.append(_online_section(ctx, model, depth, version))
    curves, why = ctx.calib.get((model, version), ({}, None))
    body.append("<h2>Calibration by slice</h2>")
    if curves:
        pcurves = ctx.calib.get((model, f.get("parent")), ({}, None))[0] if f.get("parent") \
            else {}
        charts = []
        for key, pts in curves.items():
            series = [(f"{version}", pts)]
            dashed = [False]
            if key in pcurves:
                series.append((f"{f['parent']} (parent)", pcurves[key]))
                dashed.append(True)
            charts.append(svg.reliability_chart(key, series, dashed=dashed))
        body.append("<p class=muted>Mean predicted score against the observed rate in ten score "
                    "bins of the evaluation predictions; the diagonal is perfect calibration."
                    "</p><div class=charts>" + "".join(charts) + "</div>")
    else:
        body.append(f"<p class=muted>{_e(why or 'Not computed for this version (binary models: the versions serving now and the latest ones).')}</p>")
    body.append("<h2>Gate results</h2>")
    decs = ctx.decisions.get((model, version), [])
    if not decs:
        body.append("<p class=muted>Not available here: build the dashboard with "
                    "<code>--gates</code> (re-derives the decisions behind what serves now) or "
                    "<code>--results DIR</code> (gate result JSON files), or run "
                    f"<code>mlreg audit {_e(model)}@{_e(version)}</code>.</p>")
    for d in decs:
        cls = "pass" if d.get("verdict") == "pass" else "fail"
        body.append(f"<p>{_e(d.get('service') or '')} {_e(d.get('source'))}: verdict "
                    f'<b class="{cls}">{_e(d.get("verdict"))}</b> ({_e(d.get("mode"))}), '
                    f"policy <code>{_e((d.get('policy_sha256') or '')[:16])}</code></p>")
        body.append(_table(["gate", "rule", "slices", "verdict", "reason"], [
            [_e(g["id"]), _e(g.get("rule")), _e(g.get("slices")),
             f'<span class="{"pass" if g["verdict"] == "pass" else "fail" if g["verdict"] == "fail" else "muted"}">'
             f'{_e(g["verdict"])}</span>', _e(g.get("reason"))] for g in d.get("gates") or []]))
    evs = ctx.by_version.get((model, version), [])
    body.append("<h2>Deployment events</h2>")
    body.append(_events_table(evs, ctx, depth) if evs else "<p class=muted>Never deployed.</p>")
    raw = ctx.reg.read_bytes(f.get("path") or "")
    body.append("<h2>Record</h2>")
    body.append(f"<pre>{_e(raw.decode('utf-8', 'replace') if raw else '(not readable)')}</pre>")
    site.write(f"models/{model}/v/{version}.html", f"{model}@{version}", "".join(body))


def _events_table(events: Sequence[Any], ctx: _Ctx, depth: int) -> str:
    rows = []
    for ev in events:
        what = _e(ev.describe())
        if ev.kind == "rollback" and ev.reason:
            what += f"<br><b>reason:</b> {_e(ev.reason)}"
        svc = (f'<a href="{_service_href(ev.service, depth)}">{_e(ev.service)}</a>'
               if ev.service else "–")
        version = "–"
        if ev.model and ev.version:
            version = _vlink(ev.model, ev.version, depth, ctx.known)
        rows.append([_e(ev.date[:16].replace("T", " ")), f"<code>{_e(ev.commit[:8])}</code>",
                     f"#{ev.pr}" if ev.pr else "–", _e(ev.author),
                     f'<span class="kind-{_e(ev.kind)}">{_e(ev.kind)}</span>', svc, version,
                     what])
    return _table(["date", "commit", "PR", "author", "event", "service", "version", "what"],
                  rows)


def _service_page(site: _Site, ctx: _Ctx, service: str) -> None:
    depth = 1
    evs = ctx.by_service.get(service, [])
    d = ctx.deps.get(service)
    body = [f"<h1>Service {_e(service)}</h1>"]
    if d is not None:
        body.append(_kv([
            ("model", f'<a href="{_model_href(d.model, depth)}">{_e(d.model)}</a>'),
            ("stable", _vlink(d.model, d.stable, depth, ctx.known)),
            ("canary", (_vlink(d.model, d.canary, depth, ctx.known)
                        + f" at {d.canary_percent:g}%") if d.canary else "–"),
            ("surface", _e(d.surface)), ("target", _e(d.target))]))
    else:
        body.append("<p class=muted>Not in the deployment manifest now (retired).</p>")
    points = []
    versions: set[str] = set()
    for ev in evs:
        a = ev.after
        if a is None:
            points.append({"label": ev.date[:10], "stable": None, "kind": ev.kind})
            continue
        versions.add(a.stable)
        if a.canary:
            versions.add(a.canary)
        tip = f"{ev.date[:16]} {ev.describe()}" + (f" - {ev.reason}" if ev.kind == "rollback"
                                                   and ev.reason else "")
        points.append({"label": ev.date[:10], "stable": a.stable, "canary": a.canary,
                       "percent": a.canary_percent, "kind": ev.kind, "tooltip": tip})
    body.append("<h2>Deployment timeline</h2>")
    body.append('<p class=muted>In commit order. Solid: the stable version; dashed: a canary; '
                "a red cross: a rollback.</p>")
    body.append(svg.step_chart(f"{service}: versions served", points,
                               sorted(versions, key=natural_key)))
    body.append(_events_table(evs, ctx, depth) if evs else "<p>No deployment events.</p>")
    res = [r for r in ctx.online if r.get("service") == service]
    if res:
        body.append("<h2>Online results on this service</h2>")
        models = sorted({r["model"] for r in res})
        for m in models:
            body.append(_online_section_for_service(ctx, m, service, depth))
    site.write(f"services/{service}.html", f"Service {service}", "".join(body))


def _online_section_for_service(ctx: _Ctx, model: str, service: str, depth: int) -> str:
    saved = ctx.online
    try:
        ctx.online = [r for r in saved if r.get("service") == service]
        return _online_section(ctx, model, depth)
    finally:
        ctx.online = saved


def _timeline_page(site: _Site, ctx: _Ctx) -> None:
    evs = ctx.events[-_TIMELINE_ROWS:]
    body = ["<h1>Timeline</h1>",
            f"<p class=muted>{len(ctx.events)} events in commit order (newest first)"
            + (f"; the latest {_TIMELINE_ROWS} are shown; <code>mlreg history</code> lists "
               "all" if len(ctx.events) > _TIMELINE_ROWS else "") + ".</p>",
            _events_table(list(reversed(evs)), ctx, 0)]
    site.write("timeline.html", "Timeline", "".join(body))


def _data_page(site: _Site, ctx: _Ctx) -> None:
    by_uri: dict[str, list[tuple[str, str, str, str | None]]] = defaultdict(list)
    for (m, v), f in ctx.facts.items():
        for d in f.get("data") or []:
            if d.get("uri"):
                by_uri[d["uri"]].append((m, v, d.get("role") or "data", d.get("id")))
        ev = f.get("eval")
        if ev and ev.get("uri"):
            by_uri[ev["uri"]].append((m, v, "evaluation", ev.get("id")))
    rows = []
    for uri in sorted(by_uri):
        users = sorted(by_uri[uri], key=lambda t: (t[0], natural_key(t[1])))
        shown = users[:50]
        ids = sorted({i for *_rest, i in users if i})
        links = ", ".join(f"{_vlink(m, v, 0, ctx.known)} ({_e(role)})"
                          for m, v, role, _i in dict.fromkeys(shown))
        if len(users) > len(shown):
            links += f" and {len(users) - len(shown)} more"
        serving = sorted({s for m, v, _r, _i in users for s, *_ in ctx.serving.get((m, v), [])})
        rows.append([f'<span id="{_anchor(uri)}">{_e(uri)}</span>',
                     _e(", ".join(ids[:3]) or "–"), links,
                     ", ".join(f'<a href="{_service_href(s, 0)}">{_e(s)}</a>' for s in serving)
                     or "–"])
    body = ["<h1>Data snapshots</h1>",
            "<p class=muted>Every snapshot a record names (training, validation, evaluation), "
            "the versions that used it and the services serving any of them now. "
            "<code>mlreg lineage --data URI_OR_PREFIX</code> answers the same from the command "
            "line.</p>",
            _table(["snapshot", "identity", "used by", "served by"], rows)]
    site.write("data.html", "Data snapshots", "".join(body))


