"""``InMemoryForge``: the forge interface over plain dictionaries, for tests and examples.

It follows the same rules as ``GitHubForge`` (the sticky-comment plan, marker and body checks, the
140-character status description, idempotent ``open_pr``) without any HTTP. Tests that need
GitHub's wire behaviour use the fake server in ``tests/fakegithub`` instead.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from mlreg.errors import InputError
from mlreg.forge.base import (
    DEFAULT_MARKER,
    CommentOutcome,
    ExistingComment,
    PullRequestInfo,
    PullRequestRef,
    Review,
    check_commit_state,
    check_pr_number,
    clip_description,
    plan_sticky,
    prepare_sticky_body,
    split_head,
)
from mlreg.forge.errors import ForgeNotFound
from mlreg.reports.markdown_safe import GITHUB_BODY_LIMIT, truncate_body

__all__ = ["InMemoryForge", "StoredComment", "StoredStatus"]


@dataclass
class StoredComment:
    id: int
    pr: int
    author: str
    body: str


@dataclass(frozen=True)
class StoredStatus:
    sha: str
    state: str
    context: str
    description: str
    target_url: str | None


@dataclass
class _PR:
    info: PullRequestInfo
    files: list[str] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    merge_sha: str | None = None


class InMemoryForge:
    """A forge held in memory: ``comments``, ``statuses`` and ``pulls`` are open for inspection."""

    def __init__(self, repo: str = "o/r", *, bot_login: str = "mlreg-bot",
                 url: str = "https://github.invalid") -> None:
        self.repo_name = repo
        self.owner = repo.split("/", 1)[0]
        self.login = bot_login
        self.url = url.rstrip("/")
        self.comments: list[StoredComment] = []
        self.statuses: list[StoredStatus] = []
        self.pulls: dict[int, _PR] = {}
        self._ids = itertools.count(1)
        self._numbers = itertools.count(1)
        self._clock = datetime(2024, 1, 1, tzinfo=UTC)

    # ------------------------------------------------------------------ set-up helpers

    def add_pr(self, *, head: str = "feature", base: str = "main", title: str = "A pull request",
               head_sha: str = "0" * 40, author: str = "alice", files: list[str] | None = None,
               head_repo: str | None = None) -> int:
        number = next(self._numbers)
        self.pulls[number] = _PR(
            PullRequestInfo(number=number, url=f"{self.url}/{self.repo_name}/pull/{number}",
                            state="open", title=title, head_ref=head, head_sha=head_sha,
                            base_ref=base, author=author, head_repo=head_repo or self.repo_name),
            files=list(files or []),
        )
        return number

    def add_comment(self, pr: int, body: str, *, author: str) -> int:
        self._get(pr, "add a comment")
        comment = StoredComment(next(self._ids), pr, author, body)
        self.comments.append(comment)
        return comment.id

    def add_review(self, pr: int, user: str, state: str = "APPROVED") -> None:
        self._clock += timedelta(minutes=1)
        self._get(pr, "add a review").reviews.append(Review(user, state, self._clock))

    def merge(self, pr: int, merge_sha: str) -> None:
        entry = self._get(pr, "merge")
        entry.info = replace(entry.info, state="closed", merged=True)
        entry.merge_sha = merge_sha

    def comments_on(self, pr: int) -> list[StoredComment]:
        return [c for c in self.comments if c.pr == pr]

    def _get(self, pr: int, operation: str) -> _PR:
        check_pr_number(pr)
        if pr not in self.pulls:
            raise ForgeNotFound(operation, f"pull request #{pr} in {self.repo_name}", 404)
        return self.pulls[pr]

    # ------------------------------------------------------------------ the interface

    def upsert_sticky_comment(
        self, pr: int, body: str, marker: str = DEFAULT_MARKER
    ) -> CommentOutcome:
        check_pr_number(pr)
        text, truncated = prepare_sticky_body(body, marker)
        self._get(pr, f"update the sticky comment on PR #{pr}")
        mine = self.comments_on(pr)
        plan = plan_sticky([ExistingComment(c.id, c.author, c.body) for c in mine],
                           bot_login=self.login, marker=marker, body=text)
        by_id = {c.id: c for c in mine}
        if plan.action == "create":
            cid = self.add_comment(pr, text, author=self.login)
            return CommentOutcome("created", cid, self._comment_url(pr, cid), 0, truncated)
        target = by_id[plan.target]  # type: ignore[index]
        if plan.action == "update":
            target.body = text
        self.comments = [c for c in self.comments if c.id not in plan.delete]
        action = "updated" if plan.action == "update" else "unchanged"
        return CommentOutcome(action, target.id, self._comment_url(pr, target.id),
                              len(plan.delete), truncated)

    def _comment_url(self, pr: int, cid: int) -> str:
        return f"{self.url}/{self.repo_name}/pull/{pr}#issuecomment-{cid}"

    def set_commit_status(
        self, sha: str, state: str, context: str, description: str,
        target_url: str | None = None,
    ) -> None:
        check_commit_state(state)
        if not context:
            raise InputError("a commit status needs a context")
        self.statuses.append(StoredStatus(sha, state, context, clip_description(description),
                                          target_url))

    def get_pr(self, pr: int) -> PullRequestInfo:
        return self._get(pr, f"read pull request #{pr}").info

    def pr_head_sha(self, pr: int) -> str:
        return self.get_pr(pr).head_sha

    def find_open_pr(self, head_branch: str, base: str | None = None) -> PullRequestInfo | None:
        owner, branch = split_head(head_branch, self.owner)
        for number in sorted(self.pulls, reverse=True):
            info = self.pulls[number].info
            head_owner = (info.head_repo or self.repo_name).split("/", 1)[0]
            if info.state == "open" and info.head_ref == branch and head_owner == owner and (
                    base is None or info.base_ref == base):
                return info
        return None

    def open_pr(self, base: str, head: str, title: str, body: str) -> PullRequestRef:
        if not title or not title.strip():
            raise InputError("a pull request needs a title")
        existing = self.find_open_pr(head)
        if existing is not None:
            return PullRequestRef(existing.number, existing.url)
        truncate_body(body or "", GITHUB_BODY_LIMIT)
        owner, branch = split_head(head, self.owner)
        number = self.add_pr(head=branch, base=base, title=title, author=self.login,
                             head_repo=f"{owner}/{self.repo_name.split('/', 1)[1]}")
        return PullRequestRef(number, self.pulls[number].info.url)

    def pr_reviews(self, pr: int) -> list[Review]:
        return list(self._get(pr, f"read the reviews of pull request #{pr}").reviews)

    def pr_files(self, pr: int) -> list[str]:
        return list(self._get(pr, f"list the files of pull request #{pr}").files)

    def pulls_for_commit(self, sha: str) -> list[PullRequestInfo]:
        return [p.info for _, p in sorted(self.pulls.items(), reverse=True)
                if sha in (p.info.head_sha, p.merge_sha)]
