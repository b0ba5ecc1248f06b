"""The forge interface, its value types, and the pure decisions shared by every implementation.

Nothing here talks to a network or imports PyGithub.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from mlreg.errors import InputError
from mlreg.reports.markdown_safe import GITHUB_BODY_LIMIT, truncate_body

__all__ = [
    "DEFAULT_MARKER",
    "COMMIT_STATES",
    "STATUS_DESCRIPTION_LIMIT",
    "Forge",
    "CommentOutcome",
    "PullRequestInfo",
    "PullRequestRef",
    "Review",
    "ExistingComment",
    "StickyPlan",
    "plan_sticky",
    "prepare_sticky_body",
    "check_marker",
    "check_commit_state",
    "clip_description",
]

#: The hidden marker that identifies mlreg's sticky gate comment.
DEFAULT_MARKER = "<!-- mlreg:gate -->"
#: Commit status states GitHub accepts.
COMMIT_STATES = ("error", "failure", "pending", "success")
#: GitHub rejects longer commit status descriptions.
STATUS_DESCRIPTION_LIMIT = 140

_MARKER = re.compile(r"<!--(?!-)(?:(?!--)[^<>])+-->")


@dataclass(frozen=True)
class CommentOutcome:
    """What ``upsert_sticky_comment`` did.

    ``action`` is ``created``, ``updated`` (edited in place) or ``unchanged`` (same body, nothing
    sent); ``comment_id`` and ``url`` name the sticky comment that now stands;
    ``duplicates_removed`` counts older copies deleted (left by concurrent runs); ``truncated``
    says the body was cut to fit GitHub's limit.
    """

    action: Literal["created", "updated", "unchanged"]
    comment_id: int
    url: str
    duplicates_removed: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class PullRequestInfo:
    """The facts about a pull request that mlreg uses."""

    number: int
    url: str
    state: str  # "open" | "closed"
    title: str
    head_ref: str
    head_sha: str
    base_ref: str
    author: str | None = None
    merged: bool = False
    head_repo: str | None = None  # "owner/name"; differs from the base repo for a fork PR


class PullRequestRef(NamedTuple):
    """What ``open_pr`` returns: ``number, url = forge.open_pr(...)``."""

    number: int
    url: str


class Review(NamedTuple):
    """One submitted review: ``state`` is APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED..."""

    user: str
    state: str
    submitted_at: datetime | None


@runtime_checkable
class Forge(Protocol):
    """What mlreg needs from a forge. ``GitHubForge`` talks to GitHub; ``InMemoryForge`` is for
    tests and examples. Failures raise ``ForgeError`` (exit 3) or, for a pull request or commit
    that does not exist, ``NotFound`` (exit 2)."""

    def upsert_sticky_comment(
        self, pr: int, body: str, marker: str = DEFAULT_MARKER
    ) -> CommentOutcome: ...

    def set_commit_status(
        self, sha: str, state: str, context: str, description: str,
        target_url: str | None = None,
    ) -> None: ...

    def get_pr(self, pr: int) -> PullRequestInfo: ...

    def find_open_pr(self, head_branch: str) -> PullRequestInfo | None: ...

    def open_pr(self, base: str, head: str, title: str, body: str) -> PullRequestRef: ...

    def pr_head_sha(self, pr: int) -> str: ...

    def pr_reviews(self, pr: int) -> list[Review]: ...

    def pr_files(self, pr: int) -> list[str]: ...

    def pulls_for_commit(self, sha: str) -> list[PullRequestInfo]: ...


# ---------------------------------------------------------------------------- pure decisions


@dataclass(frozen=True)
class ExistingComment:
    """A comment as the sticky-comment decision sees it."""

    id: int
    author: str
    body: str


@dataclass(frozen=True)
class StickyPlan:
    """What to do: ``create`` a comment, ``update`` or leave ``unchanged`` the comment ``target``;
    then delete the comments in ``delete`` (older copies of ours)."""

    action: Literal["create", "update", "unchanged"]
    target: int | None
    delete: tuple[int, ...] = ()


def _same(a: str, b: str) -> bool:
    # GitHub may hand back CRLF for a body sent with LF (edits made in the web UI do).
    return a.replace("\r\n", "\n") == b.replace("\r\n", "\n")


def plan_sticky(
    comments: Iterable[ExistingComment], *, bot_login: str, marker: str, body: str
) -> StickyPlan:
    """Decide how to make ``body`` the one sticky comment on a PR.

    Ours are the comments that contain ``marker`` AND were written by ``bot_login`` (compared
    case-insensitively, as GitHub logins are): anyone can paste the marker, and anyone with write
    access can edit a comment, so the author is what counts. The newest of ours (highest id;
    GitHub's ids only grow) is kept and edited; the others are duplicates from racing runs.
    """
    login = bot_login.casefold()
    ours = sorted((c for c in comments if c.author.casefold() == login and marker in c.body),
                  key=lambda c: c.id)
    if not ours:
        return StickyPlan("create", None)
    newest, older = ours[-1], tuple(c.id for c in ours[:-1])
    action: Literal["update", "unchanged"] = "unchanged" if _same(newest.body, body) else "update"
    return StickyPlan(action, newest.id, older)


def check_marker(marker: str) -> str:
    """A marker must be one HTML comment (``<!-- name -->``), invisible once rendered."""
    if not isinstance(marker, str) or not _MARKER.fullmatch(marker):
        raise InputError(
            f"sticky comment marker {marker!r} must be one HTML comment such as "
            f"{DEFAULT_MARKER!r} (no '--', '<' or '>' inside)"
        )
    return marker


def prepare_sticky_body(body: str, marker: str, limit: int = GITHUB_BODY_LIMIT) -> tuple[str, bool]:
    """Return (body to send, truncated?): the marker is put first when missing, and a body over
    GitHub's limit is cut safely (the marker kept, a note added)."""
    check_marker(marker)
    if not isinstance(body, str) or not body.strip():
        raise InputError("the sticky comment body is empty")
    if marker not in body:
        body = f"{marker}\n{body}"
    out = truncate_body(body, limit, keep=marker)
    return out, out != body


def check_commit_state(state: str) -> str:
    if state not in COMMIT_STATES:
        raise InputError(f"commit status state {state!r} is not one of {', '.join(COMMIT_STATES)}")
    return state


def clip_description(description: str, limit: int = STATUS_DESCRIPTION_LIMIT) -> str:
    """Commit status descriptions longer than 140 characters are rejected: clip with an ellipsis."""
    text = " ".join(description.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def split_head(head: str, default_owner: str) -> tuple[str, str]:
    """``owner:branch`` or ``branch`` -> (owner, branch)."""
    owner, _, branch = head.rpartition(":")
    if not branch:
        raise InputError(f"head branch {head!r} is empty")
    return owner or default_owner, branch


def check_pr_number(pr: int) -> int:
    if isinstance(pr, bool) or not isinstance(pr, int) or pr <= 0:
        raise InputError(f"pull request number must be a positive integer, not {pr!r}")
    return pr
