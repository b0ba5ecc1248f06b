"""The audit report of one version: where its data came from, which gates it passed, who
approved it, where it ran and how it did online - re-derived from git, not remembered.

    report = audit_version(".", "fraud@127")          # dict, schema mlreg/audit/v1
    render_markdown(report); render_html(report)

Sections:

* ``subject``: the record (path, sha256 of its bytes, created, owner, parent) and the commit
  that registered it.
* ``provenance``: code, every data snapshot with its identity (version id, etag, digest,
  partitions) and whether it is immutable, the evaluation snapshot, features, environment and
  hardware; ``verification`` re-hashes what can be checked through the storage module (artifacts,
  evaluation predictions, local snapshots; remote snapshots are identified, not re-hashed).
* ``decisions``: for every manifest change that gave this version traffic, the gate decision
  re-derived by the gates library at that commit (the rules in force at its first parent, the
  baseline served there; policy digest, every gate with its slices and fairness groups). A
  version never deployed is gated against its parent at the audited revision, marked
  ``hypothetical``.
* ``approvals``: per such change (and the registration), the pull request's reviews through the
  forge API when one is configured; otherwise the merge commit, its author and committer.
* ``events`` (deployments, canaries, rollbacks with reasons) and ``online`` results.

Whatever cannot be computed says why (``status: unavailable``) instead of failing the report.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from collections.abc import Mapping
from typing import Any

from mlreg.errors import MlregError, NotFound

__all__ = ["audit_version", "render_markdown", "render_html", "AUDIT_SCHEMA"]

AUDIT_SCHEMA = "mlreg/audit/v1"


def _unavailable(exc: BaseException | str) -> dict:
    return {"status": "unavailable", "reason": str(exc)}


def _provenance(record: Mapping[str, Any]) -> dict:
    code = record.get("code") or {}
    env = record.get("environment") or {}
    gpu = (record.get("hardware") or {}).get("gpu") or {}
    data = []
    for d in record.get("data") or []:
        ident = {k: d[k] for k in ("sha256", "version_id", "etag", "snapshot_id", "partitions",
                                   "size") if d.get(k) is not None}
        data.append({"role": d.get("role"), "name": d.get("name"), "uri": d.get("uri"),
                     "immutable": d.get("immutable"), "rows": d.get("rows"),
                     "identity": ident, "reason": d.get("reason")})
    ev = (record.get("evaluation") or {})
    return {
        "code": {k: code.get(k) for k in ("repository", "commit", "branch", "dirty",
                                          "diff_sha256", "entrypoint")},
        "data": data,
        "evaluation": {"snapshot": ev.get("snapshot"), "predictions": ev.get("predictions")},
        "features": record.get("features") or [],
        "environment": {"python": (env.get("python") or {}).get("version"),
                        "os": (env.get("os") or {}).get("platform")
                        or (env.get("os") or {}).get("system"),
                        "packages_sha256": (env.get("packages") or {}).get("sha256"),
                        "packages": (env.get("packages") or {}).get("count"),
                        "container_image": env.get("container_image")},
        "hardware": {k: gpu.get(k) for k in ("present", "type", "count", "driver", "cuda",
                                             "cudnn")},
        "seeds": record.get("seeds"),
        "hyperparameters": record.get("hyperparameters"),
    }


def _verify(root: str, record: Mapping[str, Any], settings: Mapping[str, Any]) -> dict:
    from mlreg.lineage.verify import verify_record

    try:
        rep = verify_record(root, dict(record), dict(settings))
    except MlregError as exc:
        return _unavailable(exc)
    out = rep.to_dict()
    out["status"] = "ok" if rep.ok else "failed"
    return out


def _gate_summary(result: Any) -> dict:
    doc = result.to_json_dict()
    gates = []
    for g in doc["gates"]:
        rows = g["rows"]
        gates.append({
            "id": g["id"], "type": g["type"], "category": g["category"], "metric": g["metric"],
            "rule": g["rule"], "slices": g["slices"], "verdict": g["verdict"],
            "reason": g["reason"], "matched": g["matched"],
            "rows": [{k: r[k] for k in ("item", "kind", "verdict", "reason", "n", "candidate",
                                        "baseline", "delta", "observed", "lower", "upper",
                                        "observed_interval", "groups")} for r in rows[:200]],
            "fairness": any(r["kind"] == "group" or r["groups"] for r in rows),
        })
    return {"status": "ok", "verdict": doc["verdict"], "mode": doc["mode"],
            "policy_sha256": doc["policy"]["sha256"], "policy_sources": doc["policy"]["sources"],
            "candidate": doc["candidate"], "baseline": doc["baseline"],
            "summary": doc["summary"], "notes": doc["notes"], "gates": gates, "result": doc}


def _first_parent(root: str, commit: str) -> str | None:
    from mlreg.gitio import git

    proc = git(root, "rev-parse", "--verify", "--quiet", f"{commit}^1", check=False)
    return proc.stdout.decode().strip() or None


def _derive_gate(root: str, ev: Any, model: str, version: str) -> dict:
    """The gate decision of the manifest change ``ev`` that gave ``model@version`` traffic."""
    try:
        from mlreg.gates import Promotion, gate_promotion
    except ImportError as exc:  # pragma: no cover - the gates package ships with mlreg
        return _unavailable(f"the gates library is not available: {exc}")
    from mlreg.registry import Registry

    before = ev.before
    parent = _first_parent(root, ev.commit)
    mode = "promotion"
    from_version = from_model = None
    if before is None:
        mode = "bootstrap"
    else:
        from_model = before.model
        from_version = before.stable
        if before.model == model and before.stable == version:
            from_version = None  # the canary ended or shrank: nothing new to gate
    if ev.kind == "rollback":
        mode = "rollback"
    if from_version is None and mode != "bootstrap":
        return {"status": "skipped", "reason": f"{model}@{version} already served "
                f"{ev.service} as its stable version before this change"}
    after = ev.after
    promo = Promotion(model=model, to_version=version, service=ev.service,
                      from_version=from_version, from_model=from_model,
                      canary_percent=after.canary_percent if after and after.canary == version
                      else None, mode=mode, target=after.target if after else None)
    try:
        head = Registry.open(root, rev=ev.commit)
    except MlregError as exc:
        return _unavailable(exc)
    base = head
    if parent:
        try:
            base = Registry.open(root, rev=parent)
        except NotFound:
            if mode != "bootstrap":
                head.close()
                return _unavailable(f"no registry at {parent[:12]}, the base of this change")
            # The registry and its first deployment arrived together: its own rules apply.
        except MlregError as exc:
            head.close()
            return _unavailable(exc)
    try:
        out = _gate_summary(gate_promotion(head, base, promo))
    except MlregError as exc:
        return _unavailable(exc)
    finally:
        head.close()
        if base is not head:
            base.close()
    out["commit"] = ev.commit
    out["base"] = parent
    return out


def _approval(root: str, ev: Any, forge: Any) -> dict:
    out: dict[str, Any] = {"commit": ev.commit, "event": ev.kind, "service": ev.service,
                           "pr": ev.pr, "author": ev.author, "author_email": ev.author_email,
                           "committer": ev.committer, "date": ev.date}
    if forge is None:
        out["source"] = "git"
        return out
    out["source"] = "forge"
    try:
        prs = [ev.pr] if ev.pr else [p.number for p in forge.pulls_for_commit(ev.commit)]
        out["pull_requests"] = []
        for n in prs[:5]:
            info = forge.get_pr(n)
            reviews = forge.pr_reviews(n)
            out["pull_requests"].append({
                "number": n, "url": info.url, "title": info.title, "author": info.author,
                "merged": info.merged, "state": info.state,
                "reviews": [{"user": r.user, "state": r.state,
                             "submitted_at": r.submitted_at.isoformat() if r.submitted_at
                             else None} for r in reviews],
                "approved_by": sorted({r.user for r in reviews if r.state == "APPROVED"}),
            })
    except MlregError as exc:
        out["forge_error"] = str(exc)
    return out


def _resolve_forge(forge: Any, settings: Mapping[str, Any], env: Mapping[str, str]
                   ) -> tuple[Any, str]:
    if forge != "auto":
        return forge, "given" if forge is not None else "none"
    try:
        from mlreg.gitops.forgeconf import forge_from_settings
    except ImportError:  # pragma: no cover
        return None, "the forge configuration module is not available"
    try:
        return forge_from_settings(settings, env)
    except MlregError as exc:
        return None, str(exc)


def audit_version(root: str, name: str, *, rev: str | None = None, forge: Any = "auto",
                  verify: bool = True, gates: bool = True,
                  env: Mapping[str, str] | None = None) -> dict:
    """The audit report (``mlreg/audit/v1``) of NAME (MODEL@VERSION, MODEL@latest or a service's
    stable) in the registry at ``root``; history from the first-parent chain of ``rev``
    (default: main). ``forge``: "auto" (from mlreg.yaml and the token in ``env``), a forge
    object, or None (approvals from git alone)."""
    from mlreg.history.online import check_online, online_results
    from mlreg.history.timeline import timeline
    from mlreg.registry import Registry

    env = os.environ if env is None else env
    with Registry.open(root) as reg:
        resolved = reg.resolve(name)
        model, version = resolved.model, resolved.version
        loaded = reg.record_loaded(model, version)
        record = loaded.data
        path = reg.record_path(model, version)
        raw = reg.read_bytes(path) or b""
        settings = reg.settings()
        online = [r for r in online_results(reg, model) if r.get("version") == version]
        deployments = {s: d.to_dict() for s, d in reg.deployments().items()}
    report: dict[str, Any] = {
        "schema": AUDIT_SCHEMA, "model": model, "version": version,
        "subject": {"model": model, "version": version, "path": path,
                    "record_sha256": hashlib.sha256(raw).hexdigest(),
                    "created": record.get("created"), "owner": record.get("owner"),
                    "description": record.get("description"), "parent": record.get("parent"),
                    "registered": None},
        "provenance": _provenance(record),
    }
    report["verification"] = _verify(root, record, settings) if verify else {
        "status": "skipped", "reason": "--no-verify"}
    try:
        tl = timeline(root, rev)
        events = tl.select(f"{model}@{version}")
        report["history"] = {"rev": tl.rev, "head": tl.head}
    except MlregError as exc:
        tl, events = None, []
        report["history"] = _unavailable(exc)
    reg_ev = next((e for e in events if e.kind == "registration"), None)
    if reg_ev is not None:
        report["subject"]["registered"] = {"commit": reg_ev.commit, "date": reg_ev.date,
                                           "author": reg_ev.author, "pr": reg_ev.pr}
    deploy_events = [e for e in events if e.service and e.kind in (
        "promotion", "canary", "rollback", "retirement", "edit")]
    report["events"] = [e.to_dict() for e in deploy_events]
    gaining = [e for e in deploy_events if e.to_version == version and e.kind != "retirement"
               and e.after is not None and e.after.model == model]
    decisions = []
    if gates:
        for ev in gaining:
            d = _derive_gate(root, ev, model, version)
            d.update({"service": ev.service, "event": ev.kind, "action": ev.action,
                      "commit": ev.commit, "date": ev.date, "pr": ev.pr})
            decisions.append(d)
        if not gaining:
            decisions.append(_hypothetical_gate(root, model, version, record, rev))
    else:
        decisions.append({"status": "skipped", "reason": "--no-gates"})
    report["decisions"] = decisions
    fg, forge_note = _resolve_forge(forge, settings, env)
    report["approvals"] = {"forge": forge_note, "changes": [
        _approval(root, e, fg) for e in ([reg_ev] if reg_ev else []) + gaining]}
    services = sorted({e.service for e in deploy_events if e.service} | {
        s for s, d in deployments.items() if d["model"] == model
        and version in (d["stable"], d["canary"])} | {r["service"] for r in online})
    rules = _online_rules(root, model)
    from mlreg.history.online import flat_metrics

    report["offline_metrics"] = flat_metrics(record)
    report["online"] = {"results": online, "rules": rules["rules"], "rules_source":
                        rules["source"], "checks": {
                            s: check_online(rules["rules"], online, s, version, model=model)
                            for s in services} if rules["rules"] else {}}
    report["serving_now"] = [
        {"service": s, "role": "stable" if d["stable"] == version else "canary",
         "percent": (100.0 - (d["canary_percent"] or 0)) if d["stable"] == version
         and d["canary"] else (100.0 if d["stable"] == version else d["canary_percent"])}
        for s, d in sorted(deployments.items()) if d["model"] == model
        and version in (d["stable"], d["canary"])]
    return report


def _hypothetical_gate(root: str, model: str, version: str, record: Mapping[str, Any],
                       rev: str | None) -> dict:
    parent = record.get("parent")
    if not parent:
        return {"status": "skipped", "hypothetical": True,
                "reason": f"{model}@{version} was never deployed and names no parent to be "
                          "gated against"}
    try:
        from mlreg.gates import Promotion, gate_promotion
    except ImportError as exc:  # pragma: no cover
        return _unavailable(f"the gates library is not available: {exc}")
    from mlreg.registry import Registry

    try:
        with Registry.open(root) as reg:
            out = _gate_summary(gate_promotion(reg, reg, Promotion(
                model=model, to_version=version, from_version=parent)))
    except (MlregError, NotFound) as exc:
        return _unavailable(exc)
    out.update({"hypothetical": True, "reason": f"never deployed: gated against its parent "
                f"{model}@{parent} under today's policy"})
    return out


def _online_rules(root: str, model: str) -> dict:
    """The merged policy's ``online:`` rules (the same merge the gates use)."""
    from mlreg.gates.policy import load_policy
    from mlreg.registry import Registry

    try:
        with Registry.open(root) as reg:
            policy = load_policy(reg, model)
    except MlregError:
        return {"rules": [], "source": None}
    rules = policy.online
    source = ", ".join(s.path for s in policy.sources) if rules else None
    return {"rules": rules, "source": source}


# ------------------------------------------------------------------------------ rendering
def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in x.items())
    return str(x)


def _md(x: Any) -> str:
    from mlreg.reports.markdown_safe import escape_md

    return escape_md(_fmt(x))


def render_markdown(report: Mapping[str, Any]) -> str:
    """The audit report as GitHub-flavoured Markdown (every value escaped)."""
    e = _md
    s = report["subject"]
    out = [f"# Audit: {e(report['model'])}@{e(report['version'])}", "",
           f"- record: `{s['path']}` (sha256 `{s['record_sha256']}`)",
           f"- created {e(s['created'])} by {e(s['owner'])}; parent {e(s['parent'])}"]
    if s.get("registered"):
        r = s["registered"]
        out.append(f"- registered in commit `{r['commit'][:12]}` on {e(r['date'])} by "
                   f"{e(r['author'])}" + (f" (PR #{r['pr']})" if r.get("pr") else ""))
    now = report.get("serving_now") or []
    out.append("- serving now: " + (", ".join(
        f"{e(x['service'])} ({x['role']}, {x['percent']:g}%)" for x in now) or "nothing"))
    p = report["provenance"]
    out += ["", "## Data provenance", "",
            "| role | snapshot | identity | immutable | rows | verification |",
            "|---|---|---|---|---|---|"]
    checks = {(c.get("kind"), c.get("name")): c for c in
              (report.get("verification") or {}).get("checks") or []}
    for d in p["data"]:
        c = checks.get(("data", d.get("name") or d.get("role")))
        ver = f"{c['status']}: {c['detail']}" if c else (report.get("verification") or {}).get(
            "reason", "–")
        out.append(f"| {e(d['role'])} | {e(d['uri'])} | {e(d['identity'])} | "
                   f"{e(d['immutable'])} | {e(d['rows'])} | {e(ver)} |")
    code = p["code"]
    out += ["", f"Code: {e(code['repository'])} at `{_fmt(code['commit'])}`"
            + (" (dirty)" if code.get("dirty") else "") + ".",
            "Features: " + (", ".join(f"{e(f.get('name'))} v{e(f.get('version'))}"
                                      for f in p["features"]) or "none") + ".",
            f"Environment: Python {e(p['environment']['python'])}, "
            f"{e(p['environment']['packages'])} packages (sha256 "
            f"`{_fmt(p['environment']['packages_sha256'])}`); hardware "
            f"{e(p['hardware'].get('type'))} driver {e(p['hardware'].get('driver'))} CUDA "
            f"{e(p['hardware'].get('cuda'))}."]
    v = report.get("verification") or {}
    out += ["", "## Verification", "", f"Status: **{e(v.get('status'))}**"
            + (f" ({e(v.get('reason'))})" if v.get("reason") else ""), ""]
    for c in v.get("checks") or []:
        out.append(f"- {e(c['kind'])} {e(c['name'])}: {e(c['status'])} {e(c.get('detail'))}")
    out += ["", "## Gate decisions", ""]
    for d in report.get("decisions") or []:
        head = f"### {e(d.get('service') or 'no deployment')}"
        if d.get("commit"):
            head += f" - {e(d.get('event'))} at `{d['commit'][:12]}` ({e(d.get('date'))})"
        out += [head, ""]
        if d.get("status") != "ok":
            out += [f"Not available: {e(d.get('reason'))}", ""]
            continue
        if d.get("hypothetical"):
            out += [f"*Hypothetical*: {e(d.get('reason'))}", ""]
        out += [f"Verdict **{e(d['verdict'])}** ({e(d['mode'])}); policy sha256 "
                f"`{d['policy_sha256']}`; baseline "
                f"{e((d.get('baseline') or {}).get('version'))}.", "",
                "| gate | rule | slices | verdict | reason |", "|---|---|---|---|---|"]
        for g in d["gates"]:
            out.append(f"| {e(g['id'])}{' (fairness)' if g['fairness'] else ''} | "
                       f"{e(g['rule'])} | {e(g['slices'])} | {e(g['verdict'])} | "
                       f"{e(g['reason'])} |")
        out.append("")
    a = report.get("approvals") or {}
    out += ["## Approvals", "", f"Forge: {e(a.get('forge'))}", ""]
    for c in a.get("changes") or []:
        line = (f"- {e(c['event'])} `{c['commit'][:12]}` {e(c.get('service') or '')}: "
                f"author {e(c['author'])}, committer {e(c['committer'])}, {e(c['date'])}")
        if c.get("pr"):
            line += f", PR #{c['pr']}"
        out.append(line)
        for pr in c.get("pull_requests") or []:
            reviews = ", ".join(f"{e(r['user'])} {e(r['state'])}" for r in pr["reviews"])
            out.append(f"  - PR #{pr['number']} by {e(pr['author'])}: {reviews or 'no reviews'}")
        if c.get("forge_error"):
            out.append(f"  - forge error: {e(c['forge_error'])}")
    out += ["", "## Deployment events", ""]
    for ev in report.get("events") or []:
        line = f"- {e(ev['date'])} `{ev['commit'][:8]}` {e(ev['kind'])}: {e(ev['summary'])}"
        if ev.get("reason") and ev["kind"] == "rollback":
            line += f" - reason: {e(ev['reason'])}"
        out.append(line)
    if not report.get("events"):
        out.append("- never deployed")
    on = report.get("online") or {}
    out += ["", "## Online results", ""]
    offline = report.get("offline_metrics") or {}
    if offline:
        out += ["Offline, as recorded: " + ", ".join(f"{e(k)} {e(v)}" for k, v in
                                                     offline.items()) + ".", ""]
    for r in on.get("results") or []:
        metrics = ", ".join(f"{e(k)} {e(m.get('value'))}"
                            + (f" [{e(m['interval'][0])}, {e(m['interval'][1])}]"
                               if m.get("interval") else "") for k, m in r["metrics"].items())
        out.append(f"- {e(r['service'])} ({e(r['experiment'])}, "
                   f"{e(r.get('traffic_percent'))}% traffic, {e(r.get('start'))} - "
                   f"{e(r.get('end'))}): {metrics}")
    if not on.get("results"):
        out.append("- none recorded")
    for svc, checks_ in (on.get("checks") or {}).items():
        for g in checks_:
            out.append(f"- online gate {e(g['id'])} on {e(svc)}: **{e(g['verdict'])}** - "
                       f"{e(g['reason'])}")
    return "\n".join(out) + "\n"


def render_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page of the audit report (no scripts, no external resources)."""
    body = html.escape(json.dumps(report, indent=2, default=str))
    md = render_markdown(report)
    title = html.escape(f"Audit {report['model']}@{report['version']}")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{title}</title><style>body{{font:14px system-ui,sans-serif;margin:2em;"
            "max-width:70em}pre{white-space:pre-wrap;background:#f6f8fa;padding:1em}</style>"
            f"</head><body><h1>{title}</h1><h2>Report</h2><pre>{html.escape(md)}</pre>"
            f"<h2>Data (JSON)</h2><pre>{body}</pre></body></html>\n")
