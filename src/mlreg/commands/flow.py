"""The pull-request flow: ``gate --base/--head``, ``report``, ``promote``, ``rollback``,
``codeowners``.

Exit codes: 0 ok (a gate passed, a PR opened or found, nothing to do); 1 a gate failed, a stale
CODEOWNERS under ``--check``, or a PR that moved on; 2 bad input (invalid files at head, a
shallow clone, a missing revision, a refused rollback); 3 git remote or forge unreachable.
"""

from __future__ import annotations

import os

import click

from mlreg.commands.options import registry_option
from mlreg.errors import CheckFailed, InputError, MlregError
from mlreg.render import to_json

__all__ = ["report_cmd", "promote_cmd", "rollback_cmd", "codeowners_cmd", "run_pr_gate",
           "append_step_summary"]

STEP_SUMMARY_LIMIT = 1024 * 1024


def _write(path: str, text: str) -> None:
    if path == "-":
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def append_step_summary(markdown: str, path: str | None = None) -> bool:
    """Append to ``$GITHUB_STEP_SUMMARY`` (1 MiB per step): cut to what is left, never over."""
    from mlreg.reports.markdown_safe import truncate_body

    path = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    try:
        used = os.path.getsize(path)
    except OSError:
        used = 0
    room = STEP_SUMMARY_LIMIT - used - 1
    data = markdown.encode("utf-8")
    if len(data) > room:
        if room < 4096:
            return False
        # truncate_body counts characters; a UTF-8 character takes at most 4 bytes.
        markdown = truncate_body(markdown, room // 4)
        data = markdown.encode("utf-8")
    try:
        with open(path, "ab") as fh:
            fh.write(data + b"\n")
    except OSError as exc:
        raise InputError(f"GITHUB_STEP_SUMMARY {path}: cannot write: {exc.strerror or exc}"
                         ) from None
    return True


# -- mlreg gate --base REV --head REV ------------------------------------------------------------

def run_pr_gate(registry: str, base: str | None, head: str | None, json_path: str | None,
                markdown_path: str | None) -> None:
    """The ``--base/--head`` mode of ``mlreg gate`` (called from mlreg.commands.gate)."""
    from mlreg.gitops.prgate import gate_revisions
    from mlreg.gitops.prresult import error_document, render_pr_markdown, validate_pr_document

    if not base or not head:
        raise click.UsageError("--base and --head go together (two revisions to compare)")
    try:
        result = gate_revisions(registry, base, head)
        doc = result.to_json_dict()
        validate_pr_document(doc)  # CI re-reads it as untrusted data: never write a bad one
    except MlregError as exc:
        doc = error_document(base, head, exc)
        _outputs(doc, json_path, markdown_path, render_pr_markdown)
        raise
    _outputs(doc, json_path, markdown_path, render_pr_markdown)
    if "-" not in (json_path, markdown_path):
        click.echo(_pr_text(doc))
    if doc["verdict"] != "pass":
        s = doc["summary"]
        raise CheckFailed(f"gate failed: {s['failed']} failing change(s) between {base} and "
                          f"{head}")


def _outputs(doc: dict, json_path: str | None, markdown_path: str | None, render) -> None:  # noqa: ANN001
    markdown = render(doc)
    if json_path:
        _write(json_path, to_json(doc))
    if markdown_path:
        _write(markdown_path, markdown)
    append_step_summary(markdown)


def _pr_text(doc: dict) -> str:
    from mlreg.reports.terminal import render_terminal

    out = [f"mlreg gate {doc['base']['rev']}..{doc['head']['rev']} "
           f"({(doc['base']['commit'] or '')[:12]}..{(doc['head']['commit'] or '')[:12]})"]
    out += [f"note: {n}" for n in doc["notes"]]
    for c in doc["changes"]:
        out.append(f"  {c['verdict'].upper():4}  {c['kind']} {c['status']}: {c['subject']}: "
                   f"{c['reason']}")
    for res in doc["results"]:
        text = render_terminal(res, max_passing=25)
        cut = text.find("\n\n[")
        if res["verdict"] == "pass" and cut > 0:  # a passing gate: its summary is enough
            text = text[:cut] + "\n  (the tables: --markdown FILE or --json FILE)"
        out += ["", text]
    s = doc["summary"]
    out.append("")
    out.append(f"{'PASS' if doc['verdict'] == 'pass' else 'FAIL'}: {s['changes']} change(s), "
               f"{s['promotions']} promotion(s), {s['records']} new record(s), "
               f"{s['failed']} failing" + (f", {s['ignored']} other file(s) ignored"
                                           if s["ignored"] else ""))
    return "\n".join(out)


# -- mlreg report --------------------------------------------------------------------------------

@click.command("report")
@click.option("--result", "result_path", required=True, metavar="FILE",
              help="The gate's JSON result (mlreg/pr-gate/v1 or mlreg/result/v1), e.g. the "
              "artifact downloaded from the gate workflow. Read as untrusted data.")
@click.option("--pr", "pr", required=True, type=click.IntRange(min=1), metavar="N",
              help="The pull request to comment on.")
@click.option("--head-sha", default=None, metavar="SHA",
              help="The commit the result is for (workflow_run.head_sha): the PR's head must "
              "equal it, else nothing is posted. Required in GitHub Actions.")
@click.option("--repo", default=None, metavar="OWNER/NAME",
              help="Repository (default: $GITHUB_REPOSITORY, else forge.repo in mlreg.yaml).")
@click.option("--api-url", default=None, metavar="URL",
              help="REST API root (default: $GITHUB_API_URL, else https://api.github.com; "
              "GitHub Enterprise Server: https://HOST/api/v3).")
@click.option("--token-env", default="GITHUB_TOKEN", show_default=True, metavar="VAR",
              help="Environment variable holding the token.")
@click.option("--status", is_flag=True,
              help="Also set the commit status 'mlreg/gate' (needs statuses: write).")
@click.option("--max-bytes", default=None, type=click.IntRange(min=1024), hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def report_cmd(result_path: str, pr: int, head_sha: str | None, repo: str | None,
               api_url: str | None, token_env: str, status: bool, max_bytes: int | None,
               as_json: bool) -> None:
    """Post the gate result as the one sticky comment on pull request N.

    The result file is untrusted (it comes from a run of the PR's workflow): it is size-capped,
    schema-checked and escaped, and nothing is posted unless PR N's head is --head-sha.

    \b
    mlreg report --result result.json --pr 42 --head-sha "$HEAD_SHA"
    """
    from mlreg.forge import GitHubForge
    from mlreg.gitops.forgeconf import FORGE_OPTIONS
    from mlreg.gitops.prresult import MAX_RESULT_BYTES, load_untrusted, render_pr_markdown
    from mlreg.gitops.report import post_report

    doc = load_untrusted(result_path, max_bytes=max_bytes or MAX_RESULT_BYTES)
    if head_sha is None and os.environ.get("GITHUB_ACTIONS") == "true":
        raise click.UsageError("--head-sha is required in GitHub Actions (pass "
                               "github.event.workflow_run.head_sha through env:)")
    conf: dict = {}
    if not repo or not api_url:
        try:
            from mlreg.gitops.branches import settings_of

            conf = dict(settings_of(".").get("forge") or {})
        except MlregError:
            conf = {}
    repo = repo or os.environ.get("GITHUB_REPOSITORY") or conf.get("repo")
    api = api_url or os.environ.get("GITHUB_API_URL") or conf.get("api_url") or \
        "https://api.github.com"
    if not repo:
        raise click.UsageError("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY")
    token = os.environ.get(token_env, "")
    forge = GitHubForge(repo, token, api, **FORGE_OPTIONS)
    markdown = render_pr_markdown(doc)
    outcome = post_report(forge, pr, doc, markdown, head_sha=head_sha, status=status)
    if as_json:
        click.echo(to_json(outcome.to_dict()))
        return
    if head_sha is None:
        click.echo("warning: --head-sha not given: the PR's head was not checked", err=True)
    click.echo(f"{outcome.action} the mlreg comment on PR #{pr}: {outcome.comment_url}"
               + (f" (commit status {outcome.status_set})" if outcome.status_set else ""))


# -- mlreg promote / rollback --------------------------------------------------------------------

def _published_lines(pub, main_branch: str) -> list[str]:  # noqa: ANN001
    lines = [f"branch {pub.branch} at {pub.commit[:12]}"
             + (" (already there: reused)" if pub.reused else " (new commit)")]
    if pub.remote:
        lines.append(f"pushed to origin/{pub.branch}" if pub.pushed else "not pushed")
    if pub.pr_url:
        lines.append(("found the open pull request" if pub.pr_existing else
                      "opened pull request") + f" #{pub.pr_number}: {pub.pr_url}")
    else:
        lines.append(f"no pull request opened: {pub.forge}")
        if pub.remote:
            lines.append(f"open it: a pull request from {pub.branch} into {main_branch} "
                         f"(gh pr create --base {main_branch} --head {pub.branch} --fill)")
        else:
            lines.append(f"no remote: merge it locally after review (git merge --squash "
                         f"{pub.branch}), or push it (git push origin {pub.branch}) and open a "
                         "pull request")
    return lines


@click.command("promote")
@click.argument("service")
@click.argument("ref", metavar="MODEL@VERSION")
@click.option("--canary", default=None, type=click.FloatRange(0, 100, min_open=True),
              metavar="PERCENT", help="Serve the version to PERCENT of traffic next to the "
              "stable version (kept).")
@click.option("--reason", default=None, metavar="TEXT", help="Why (goes into the commit and PR).")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def promote_cmd(service: str, ref: str, canary: float | None, reason: str | None,
                registry: str, as_json: bool) -> None:
    """Open the promotion of MODEL@VERSION to SERVICE: a branch from the main branch, one
    commit that edits only SERVICE's entry in the deployment manifest, a push to origin and a
    pull request (when mlreg.yaml names a forge and its token is set). Running it again finds
    the same branch and pull request. Nothing is checked out.

    \b
    mlreg promote fraud-scoring fraud@127 --canary 5 --reason "weekly retrain"
    mlreg promote fraud-scoring fraud@127            # the canary becomes stable
    """
    from mlreg.gitops.promote import promote

    out = promote(registry, service, ref, canary=canary, reason=reason)
    if as_json:
        click.echo(to_json(out.to_dict()))
        return
    if out.action == "noop":
        for n in out.notes:
            click.echo(n)
        return
    click.echo(f"{out.title}")
    click.echo(f"  {service}: {out.before.describe() if out.before else 'not deployed'} -> "
               f"{out.after.describe()} (from {out.main.ref} {out.main.commit[:12]})")
    for n in out.notes:
        click.echo(f"  note: {n}")
    assert out.published is not None
    for line in _published_lines(out.published, out.main.branch):
        click.echo(f"  {line}")


@click.command("rollback")
@click.argument("service")
@click.option("--reason", default=None, metavar="TEXT",
              help="Why (goes into the revert commit and the PR).")
@click.option("--commit", "commit", default=None, metavar="SHA",
              help="Revert this promotion commit (default: the latest change to SERVICE); "
              "refused when a later change superseded it.")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def rollback_cmd(service: str, reason: str | None, commit: str | None, registry: str,
                 as_json: bool) -> None:
    """Open the rollback of SERVICE: revert the commit that put its current version in place
    (git's "This reverts commit <sha>." plus the reason), on a branch, pushed, as a pull
    request. Refused, naming the commit, when a later change superseded it.

    \b
    mlreg rollback fraud-scoring --reason "p99 latency spike"
    """
    from mlreg.gitops.rollback import rollback

    out = rollback(registry, service, reason=reason, commit=commit)
    if as_json:
        click.echo(to_json(out.to_dict()))
        return
    click.echo(out.title)
    click.echo(f"  reverts {out.target[:12]} {out.target_subject!r} (from {out.main.ref} "
               f"{out.main.commit[:12]})")
    for n in out.notes:
        click.echo(f"  note: {n}")
    assert out.published is not None
    for line in _published_lines(out.published, out.main.branch):
        click.echo(f"  {line}")


# -- mlreg codeowners ----------------------------------------------------------------------------

@click.command("codeowners")
@registry_option
@click.option("--check", is_flag=True, help="Exit 1 when .github/CODEOWNERS is stale; write "
              "nothing.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print it instead of writing it.")
def codeowners_cmd(registry: str, check: bool, to_stdout: bool) -> None:
    """Regenerate .github/CODEOWNERS: platform owners (mlreg.yaml) own the manifests, policies,
    mlreg.yaml and .github/; each model's reviewers and owner (model.yaml) own its folder."""
    from mlreg.gitops.codeowners import codeowners_for

    path, text = codeowners_for(registry)
    if to_stdout:
        click.echo(text, nl=False)
        return
    try:
        with open(path, encoding="utf-8") as fh:
            current = fh.read()
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if current == text:
        click.echo(f"ok: {path} is up to date")
        return
    if check:
        click.echo(f"{path} is {'missing' if current is None else 'stale'}: run "
                   "'mlreg codeowners' to regenerate it", err=True)
        raise SystemExit(1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    click.echo(f"{'wrote' if current is None else 'updated'} {path}")
