"""``mlreg report``: post a gate result (an untrusted CI artifact) as the PR's one sticky comment.

The report workflow runs with a write token and must never be steered by the pull request it
reports on. So:

1. the result file is untrusted data: size-capped, parsed strictly, schema-checked
   (:func:`mlreg.gitops.prresult.load_untrusted`), every name escaped when rendered;
2. the PR number also comes from the artifact, so before anything is written the PR's head SHA
   is read from the API and must equal the head SHA of the workflow run that produced the
   artifact (``workflow_run.head_sha``): an artifact cannot make us comment on another PR;
3. one sticky comment per PR (a hidden marker matched together with the bot's login; edited in
   place, skipped when unchanged, racing duplicates removed): ``forge.upsert_sticky_comment``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlreg.errors import CheckFailed, InputError

__all__ = ["ReportOutcome", "post_report", "STATUS_CONTEXT"]

STATUS_CONTEXT = "mlreg/gate"
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class ReportOutcome:
    pr: int
    action: str  # created | updated | unchanged
    comment_url: str
    verdict: str
    status_set: str | None = None
    truncated: bool = False

    def to_dict(self) -> dict:
        return {"pr": self.pr, "action": self.action, "comment_url": self.comment_url,
                "verdict": self.verdict, "status": self.status_set, "truncated": self.truncated}


class HeadMismatch(CheckFailed):
    """The PR's head moved on (or the artifact names another PR): nothing is posted."""


def post_report(forge: Any, pr: int, doc: dict, markdown: str, *, head_sha: str | None,
                status: bool = False, details_url: str | None = None) -> ReportOutcome:
    """Post ``markdown`` (rendered from ``doc``) as the sticky comment on ``pr``.

    ``head_sha`` is the commit the result was computed for (``workflow_run.head_sha``); the PR's
    current head must equal it, else :class:`HeadMismatch` (exit 1) and nothing is written.
    ``status=True`` also sets the commit status ``mlreg/gate`` on that commit.
    """
    if head_sha is not None:
        head_sha = head_sha.strip().lower()
        if not _SHA.match(head_sha):
            raise InputError(f"--head-sha {head_sha[:80]!r} is not a full commit sha")
        actual = forge.pr_head_sha(pr)
        if actual.lower() != head_sha:
            raise HeadMismatch(
                f"PR #{pr} is at {actual[:12]}, but this result is for {head_sha[:12]}: not "
                "posting (the PR moved on, or the artifact names another PR)")
    verdict = str(doc.get("verdict"))
    outcome = forge.upsert_sticky_comment(pr, markdown)
    status_set = None
    if status:
        if head_sha is None:
            head_sha = forge.pr_head_sha(pr)
        state = {"pass": "success", "fail": "failure"}.get(verdict, "error")
        summary = doc.get("summary") or {}
        if verdict == "pass":
            text = "all gates passed"
        elif verdict == "fail":
            text = f"{summary.get('failed', '?')} failing (see the PR comment)"
        else:
            text = "the gate could not decide (see the PR comment)"
        forge.set_commit_status(head_sha, state, STATUS_CONTEXT, f"mlreg gate: {text}",
                                target_url=details_url)
        status_set = state
    return ReportOutcome(pr, outcome.action, outcome.url, verdict, status_set, outcome.truncated)
