"""``GitHubForge``: the forge interface on GitHub (or GitHub Enterprise Server) through PyGithub.

PyGithub is imported on first use, not when this module is imported, so ``import mlreg.forge``
keeps the CLI's start fast. Every call runs inside ``_translate``, which turns PyGithub and
requests exceptions into mlreg's errors through ``map_github_error`` (see ``mlreg.forge.errors``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlreg.errors import InputError, MlregError
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
from mlreg.forge.errors import ForgeAPIError, map_github_error
from mlreg.reports.markdown_safe import GITHUB_BODY_LIMIT, truncate_body

if TYPE_CHECKING:  # pragma: no cover
    from github.IssueComment import IssueComment
    from github.PullRequest import PullRequest
    from github.Repository import Repository

__all__ = ["GitHubForge", "DEFAULT_BASE_URL", "ACTIONS_BOT_LOGIN", "default_retry"]

DEFAULT_BASE_URL = "https://api.github.com"
#: Who comments with Actions' GITHUB_TOKEN. Installation tokens cannot read ``GET /user`` (403), so
#: this is assumed when that happens; pass ``bot_login`` for another GitHub App ("<slug>[bot]").
ACTIONS_BOT_LOGIN = "github-actions[bot]"

_REPO = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()


def default_retry() -> Any:
    """A small retry for production: up to 3 retries with backoff on 5xx and rate-limit 403s, but
    only for idempotent verbs. PyGithub's own default retries POST too, which can post a comment
    (or open a PR) twice when GitHub answers 502 after doing the work."""
    from github.GithubRetry import GithubRetry

    return GithubRetry(
        total=3, backoff_factor=0.5, raise_on_status=False, max_rate_limit_wait=120,
        allowed_methods=frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"}),
    )


class GitHubForge:
    """GitHub through PyGithub. ``repo`` is ``owner/name``; ``base_url`` is the REST API root
    (``https://ghe.example.com/api/v3`` on GitHub Enterprise Server).

    ``retry``, ``seconds_between_requests`` and ``seconds_between_writes`` go to PyGithub; tests pass
    ``None`` for all three. ``retry`` defaults to ``default_retry()`` (never retries POST); the
    throttles default to PyGithub's (0.25 s between requests, 1 s between writes), which GitHub
    asks integrations to respect. ``bot_login`` skips ``GET /user`` (needed for tokens of GitHub
    Apps other than Actions'); ``per_page`` is the page size for lists (100 is GitHub's maximum).
    """

    def __init__(
        self,
        repo: str,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        bot_login: str | None = None,
        timeout: int = 15,
        per_page: int = 100,
        retry: Any = DEFAULT,
        seconds_between_requests: float | None | Any = DEFAULT,
        seconds_between_writes: float | None | Any = DEFAULT,
        user_agent: str = "mlreg",
    ) -> None:
        if not isinstance(repo, str) or not _REPO.fullmatch(repo):
            raise InputError(f"GitHub repository {repo!r} is not of the form owner/name")
        if not isinstance(token, str) or not token.strip():
            raise InputError("no GitHub token: set GITHUB_TOKEN (or pass --token)")
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise InputError(f"timeout must be a whole number of seconds, not {timeout!r}")
        if not isinstance(per_page, int) or not 1 <= per_page <= 100:
            raise InputError(f"per_page must be between 1 and 100, not {per_page!r}")
        self.repo_name = repo
        self.owner = repo.split("/", 1)[0]
        self.base_url = base_url.rstrip("/")
        self._token = token.strip()
        self._bot_login = bot_login
        self._timeout = timeout
        self._per_page = per_page
        self._retry = retry
        self._between_requests = seconds_between_requests
        self._between_writes = seconds_between_writes
        self._user_agent = user_agent
        self._client: Any = None
        self._repo: Repository | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **kwargs: Any) -> GitHubForge:
        """Build from the variables GitHub Actions sets: ``GITHUB_REPOSITORY``, ``GITHUB_TOKEN``
        (or ``GH_TOKEN``) and ``GITHUB_API_URL`` (GitHub Enterprise Server sets its own). Pass
        ``os.environ``; keyword arguments go to the constructor and win over the environment."""
        repo = kwargs.pop("repo", None) or environ.get("GITHUB_REPOSITORY", "")
        token = kwargs.pop("token", None) or environ.get("GITHUB_TOKEN") or environ.get(
            "GH_TOKEN", "")
        base_url = kwargs.pop("base_url", None) or environ.get("GITHUB_API_URL") or \
            DEFAULT_BASE_URL
        if not repo:
            raise InputError("no GitHub repository: set GITHUB_REPOSITORY=owner/name "
                             "(or pass --repo)")
        return cls(repo, token, base_url, **kwargs)

    def __repr__(self) -> str:  # never show the token
        return f"GitHubForge({self.repo_name!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _translate(self, operation: str, *, missing: str | None = None) -> Iterator[None]:
        try:
            yield
        except MlregError:
            raise
        except Exception as exc:
            err = map_github_error(exc, operation, missing=missing, url=self.base_url)
            if err is None:
                raise
            raise err from exc

    def _github(self) -> Any:
        if self._client is None:
            from github import Auth, Github

            kwargs: dict[str, Any] = {}
            if self._between_requests is not DEFAULT:
                kwargs["seconds_between_requests"] = self._between_requests
            if self._between_writes is not DEFAULT:
                kwargs["seconds_between_writes"] = self._between_writes
            self._client = Github(
                auth=Auth.Token(self._token), base_url=self.base_url, timeout=self._timeout,
                per_page=self._per_page, user_agent=self._user_agent,
                retry=default_retry() if self._retry is DEFAULT else self._retry, **kwargs,
            )
        return self._client

    def _repository(self, operation: str) -> Repository:
        if self._repo is None:
            try:
                self._repo = self._github().get_repo(self.repo_name)
            except Exception as exc:
                err = map_github_error(exc, operation, url=self.base_url)
                if err is None:
                    raise
                if isinstance(err, ForgeAPIError) and err.status == 404:
                    err = ForgeAPIError(
                        operation, 404, err.github_message,
                        f"repository {self.repo_name} does not exist, or the token cannot see it",
                    )
                raise err from exc
        return self._repo

    def _pull(self, operation: str, pr: int) -> PullRequest:
        check_pr_number(pr)
        repo = self._repository(operation)
        with self._translate(operation, missing=f"pull request #{pr} in {self.repo_name}"):
            return repo.get_pull(pr)

    def bot_login(self, operation: str = "identify the token's user") -> str:
        """The login the token comments as (``GET /user``; cached). An Actions installation token
        cannot read ``/user`` (403): then it is ``github-actions[bot]``."""
        if self._bot_login is None:
            from github import GithubException

            with self._translate(operation):
                try:
                    self._bot_login = self._github().get_user().login
                except GithubException as exc:
                    data = exc.data if isinstance(exc.data, dict) else {}
                    message = str(data.get("message", "")).lower()
                    if exc.status == 403 and "not accessible by integration" in message:
                        self._bot_login = ACTIONS_BOT_LOGIN
                    else:
                        raise
        assert self._bot_login is not None
        return self._bot_login

    @staticmethod
    def _info(p: PullRequest) -> PullRequestInfo:
        head_repo = p.head.repo
        return PullRequestInfo(
            number=p.number, url=p.html_url, state=p.state, title=p.title,
            head_ref=p.head.ref, head_sha=p.head.sha, base_ref=p.base.ref,
            author=p.user.login if p.user is not None else None,
            merged=p.merged_at is not None,
            head_repo=head_repo.full_name if head_repo is not None else None,
        )

    @staticmethod
    def _delete_all(comments: Iterable[IssueComment]) -> int:
        """Delete comments; one already gone (a racing run deleted it) is not an error."""
        from github import GithubException

        removed = 0
        for comment in comments:
            try:
                comment.delete()
            except GithubException as exc:
                if exc.status != 404:
                    raise
            else:
                removed += 1
        return removed

    # ------------------------------------------------------------------ sticky comment

    def upsert_sticky_comment(
        self, pr: int, body: str, marker: str = DEFAULT_MARKER
    ) -> CommentOutcome:
        """Make ``body`` the one comment of ours on PR ``pr`` that carries ``marker``.

        Finds the comments holding the marker written by the token's own login, edits the newest
        in place (nothing is sent when the body is unchanged) and deletes older duplicates; creates
        one when there is none, then looks again and removes a duplicate a racing run may have
        posted meanwhile. Bodies over GitHub's limit are cut, keeping the marker.
        """
        check_pr_number(pr)
        text, truncated = prepare_sticky_body(body, marker)
        operation = f"update the sticky comment on PR #{pr}"
        with self._translate(operation):
            login = self.bot_login(operation)
            pull = self._pull(operation, pr)
            for _attempt in range(2):
                listed = list(pull.get_issue_comments())
                plan = plan_sticky(self._existing(listed), bot_login=login, marker=marker,
                                   body=text)
                if plan.action == "create":
                    created = pull.create_issue_comment(text)
                    return self._settle_after_create(pull, created, login, marker, text,
                                                     truncated)
                by_id = {c.id: c for c in listed}
                target = by_id[plan.target]  # type: ignore[index]
                if plan.action == "update":
                    from github import GithubException

                    try:
                        target.edit(text)
                    except GithubException as exc:
                        if exc.status == 404:  # deleted under us by a racing run: look again
                            continue
                        raise
                removed = self._delete_all(by_id[i] for i in plan.delete)
                action = "updated" if plan.action == "update" else "unchanged"
                return CommentOutcome(action, target.id, target.html_url, removed, truncated)
            raise ForgeAPIError(operation, None, "the sticky comment kept disappearing",
                                "another run is editing it; retry")

    @staticmethod
    def _existing(comments: Iterable[IssueComment]) -> list[ExistingComment]:
        return [ExistingComment(c.id, c.user.login if c.user is not None else "", c.body or "")
                for c in comments]

    def _settle_after_create(
        self, pull: PullRequest, created: IssueComment, login: str, marker: str, text: str,
        truncated: bool,
    ) -> CommentOutcome:
        # Two runs that both found no comment both create one. Whoever looks after both exist
        # keeps the newest and deletes the rest, so the PR converges on one comment.
        listed = list(pull.get_issue_comments())
        plan = plan_sticky(self._existing(listed), bot_login=login, marker=marker, body=text)
        by_id = {c.id: c for c in listed}
        if plan.target is None or plan.target not in by_id:
            return CommentOutcome("created", created.id, created.html_url, 0, truncated)
        keep = by_id[plan.target]
        removed = self._delete_all(by_id[i] for i in plan.delete)
        if keep.id == created.id:
            return CommentOutcome("created", created.id, created.html_url, removed, truncated)
        if plan.action == "update":
            keep.edit(text)
        action = "updated" if plan.action == "update" else "unchanged"
        return CommentOutcome(action, keep.id, keep.html_url, removed, truncated)

    # ------------------------------------------------------------------ statuses

    def set_commit_status(
        self, sha: str, state: str, context: str, description: str,
        target_url: str | None = None,
    ) -> None:
        """Set a commit status (``state`` one of error, failure, pending, success). Anyone with
        write access can set statuses, so they inform; they do not prove the gate ran."""
        check_commit_state(state)
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise InputError(f"{sha!r} is not a commit sha")
        if not context:
            raise InputError("a commit status needs a context")
        operation = f"set commit status {context!r} on {sha[:12]}"
        with self._translate(operation):
            repo = self._repository(operation)
            with self._translate(operation, missing=f"commit {sha} in {self.repo_name}"):
                commit = repo.get_commit(sha)
            kwargs: dict[str, str] = {"description": clip_description(description),
                                      "context": context}
            if target_url:
                kwargs["target_url"] = target_url
            commit.create_status(state, **kwargs)

    # ------------------------------------------------------------------ pull requests

    def get_pr(self, pr: int) -> PullRequestInfo:
        operation = f"read pull request #{pr}"
        with self._translate(operation):
            return self._info(self._pull(operation, pr))

    def pr_head_sha(self, pr: int) -> str:
        return self.get_pr(pr).head_sha

    def find_open_pr(self, head_branch: str, base: str | None = None) -> PullRequestInfo | None:
        """The open PR whose head is ``head_branch`` (``branch`` or ``owner:branch``), or None."""
        owner, branch = split_head(head_branch, self.owner)
        operation = f"find an open pull request for {owner}:{branch}"
        with self._translate(operation):
            repo = self._repository(operation)
            kwargs = {"base": base} if base else {}
            for pull in repo.get_pulls(state="open", head=f"{owner}:{branch}", **kwargs):
                return self._info(pull)
        return None

    def open_pr(self, base: str, head: str, title: str, body: str) -> PullRequestRef:
        """Open a PR from ``head`` into ``base``; when one is already open for ``head``, return it
        (so a rerun of promote does not fail or open a second PR)."""
        if not title or not title.strip():
            raise InputError("a pull request needs a title")
        if not base:
            raise InputError("a pull request needs a base branch")
        existing = self.find_open_pr(head)
        if existing is not None:
            return PullRequestRef(existing.number, existing.url)
        owner, branch = split_head(head, self.owner)
        operation = f"open a pull request from {branch} into {base}"
        with self._translate(operation):
            from github import GithubException

            repo = self._repository(operation)
            try:
                pull = repo.create_pull(
                    base=base, head=branch if owner == self.owner else f"{owner}:{branch}",
                    title=title, body=truncate_body(body or "", GITHUB_BODY_LIMIT),
                )
            except GithubException as exc:
                if exc.status == 422 and "already exists" in str(exc.data).lower():
                    existing = self.find_open_pr(head)  # opened by a racing run
                    if existing is not None:
                        return PullRequestRef(existing.number, existing.url)
                raise
            return PullRequestRef(pull.number, pull.html_url)

    def pr_reviews(self, pr: int) -> list[Review]:
        operation = f"read the reviews of pull request #{pr}"
        with self._translate(operation):
            pull = self._pull(operation, pr)
            return [Review(r.user.login if r.user is not None else "ghost", r.state,
                           r.submitted_at) for r in pull.get_reviews()]

    def pr_files(self, pr: int) -> list[str]:
        operation = f"list the files of pull request #{pr}"
        with self._translate(operation):
            pull = self._pull(operation, pr)
            return [f.filename for f in pull.get_files()]

    def pulls_for_commit(self, sha: str) -> list[PullRequestInfo]:
        """Pull requests whose head is ``sha`` or that merged as ``sha``."""
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise InputError(f"{sha!r} is not a commit sha")
        operation = f"find the pull requests of commit {sha[:12]}"
        with self._translate(operation):
            repo = self._repository(operation)
            with self._translate(operation, missing=f"commit {sha} in {self.repo_name}"):
                commit = repo.get_commit(sha)
            return [self._info(p) for p in commit.get_pulls()]
