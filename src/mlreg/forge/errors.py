"""Forge errors, and the one function that translates PyGithub's and requests' exceptions into them.

    ForgeError (mlreg.errors, exit 3)
    ├── ForgeAPIError       GitHub answered with an error status (401, 403, 409, 422, 5xx, ...)
    └── ForgeUnreachable    no answer: connection refused, DNS, TLS, timeout, too many retries
    NotFound (mlreg.errors, exit 2)
    └── ForgeNotFound       the pull request or commit the caller named does not exist (404,
                            or 422 "No commit found")

Why 404 splits in two: once the repository itself has been read, a 404 on ``pulls/{n}`` means the
caller passed a PR number that does not exist -- bad input, exit 2 (``ForgeNotFound``). A 404 on the
repository (or on anything the caller did not name) is ambiguous: GitHub answers 404, not 403, when
a token cannot see a private repository, so it stays a dependency failure, exit 3, with a hint.

Messages are one line: ``GitHub: <operation> failed: <status> <GitHub's message> (<hint>)``.
"""

from __future__ import annotations

import re
import socket
from typing import Any

from mlreg.errors import ForgeError, MlregError, NotFound

__all__ = ["ForgeAPIError", "ForgeUnreachable", "ForgeNotFound", "map_github_error"]


class ForgeAPIError(ForgeError):
    """GitHub answered ``status`` to ``operation``; ``github_message`` is its ``message`` field."""

    def __init__(self, operation: str, status: int | None, github_message: str, hint: str = ""
                 ) -> None:
        self.operation = operation
        self.status = status
        self.github_message = github_message
        self.hint = hint
        code = f"HTTP {status}" if status is not None else "error"
        text = f"GitHub: {operation} failed: {code} {github_message}".rstrip()
        super().__init__(f"{text} ({hint})" if hint else text)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "operation": self.operation, "status": self.status}


class ForgeUnreachable(ForgeError):
    """No usable answer from the forge at ``url`` (network, TLS, timeout, retries exhausted)."""

    def __init__(self, operation: str, url: str, reason: str) -> None:
        self.operation = operation
        self.url = url
        self.reason = reason
        super().__init__(f"GitHub: {operation} failed: cannot reach {url}: {reason}")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "operation": self.operation, "url": self.url}


class ForgeNotFound(NotFound):
    """The pull request or commit named by the caller does not exist (exit 2)."""

    def __init__(self, operation: str, what: str, status: int | None) -> None:
        self.operation = operation
        self.what = what
        self.status = status
        super().__init__(f"GitHub: {what} not found (HTTP {status}) while trying to {operation}")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "operation": self.operation, "status": self.status}


_HINTS = {
    401: "the token is missing, invalid or expired",
    403: "the token lacks a permission this needs (a fork PR's token is read-only)",
    404: "it does not exist, or the token cannot see it",
    409: "conflict: the object changed meanwhile",
    410: "gone: the feature is disabled for this repository",
    422: "GitHub refused the request",
}


def _one_line(text: Any, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _github_message(data: Any) -> str:
    """GitHub's ``message`` plus the ``errors[].message``/``code`` details of a 422."""
    if not isinstance(data, dict):
        return _one_line(data) if data else ""
    msg = str(data.get("message") or "")
    details = []
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            detail = err.get("message") or " ".join(
                str(err[k]) for k in ("resource", "field", "code") if err.get(k))
            if detail:
                details.append(str(detail))
        elif err:
            details.append(str(err))
    if details:
        msg = f"{msg}: {'; '.join(details)}" if msg else "; ".join(details)
    return _one_line(msg)


def _network_reason(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if m:
        return _one_line(m.group(1).strip().rstrip(".").lower(), 120)
    for pattern, reason in (
        (r"(?i)read timed out|timed out", "timed out"),
        (r"(?i)RemoteDisconnected|Connection aborted|connection closed", "the connection was "
                                                                         "closed without an answer"),
        (r"(?i)too many (5\d\d )?error responses|max retries", "too many failed attempts"),
        (r"(?i)certificate|SSL", "TLS error"),
        (r"(?i)Name or service not known|getaddrinfo|nodename", "unknown host"),
    ):
        if re.search(pattern, text):
            return reason
    return _one_line(type(exc).__name__, 120)


def map_github_error(
    exc: BaseException, operation: str, *, missing: str | None = None, url: str = "GitHub"
) -> MlregError | None:
    """Translate an exception raised by PyGithub or requests into mlreg's error tree.

    ``operation`` names what was being done ("update the sticky comment on PR #5"); ``missing``
    names what the caller asked for ("pull request #5"), turning a 404 (or 422 "No commit found")
    into ``ForgeNotFound``; ``url`` is the API base, for network errors. Returns None for anything
    that is not a forge failure (a bug should surface as itself).
    """
    if isinstance(exc, MlregError):
        return exc
    # Imported here, not at module level: importing mlreg.forge must not import PyGithub. By the
    # time one of their exceptions exists, the modules are loaded anyway.
    import requests
    from github.GithubException import (
        BadAttributeException,
        BadCredentialsException,
        GithubException,
        RateLimitExceededException,
    )

    network_errors = (
        requests.exceptions.ConnectionError, requests.exceptions.Timeout,
        requests.exceptions.RetryError, requests.exceptions.ChunkedEncodingError,
        ConnectionError, TimeoutError, socket.gaierror,
    )

    if isinstance(exc, GithubException):
        status = exc.status
        message = _github_message(exc.data) or _one_line(exc.message or "")
        if isinstance(exc, BadCredentialsException):
            return ForgeAPIError(operation, status, message or "Bad credentials", _HINTS[401])
        if isinstance(exc, RateLimitExceededException):
            return ForgeAPIError(operation, status, message or "API rate limit exceeded",
                                 "rate limited: wait for the reset, or use a token with a "
                                 "higher limit")
        if missing is not None and (
            status == 404 or (status == 422 and "no commit found" in message.lower())
        ):
            return ForgeNotFound(operation, missing, status)
        if status is not None and 500 <= status < 600:
            hint = "GitHub is failing; retry later"
        else:
            hint = _HINTS.get(status or 0, "")
        return ForgeAPIError(operation, status, message, hint)
    if isinstance(exc, BadAttributeException):
        return ForgeAPIError(operation, None, "unexpected response from GitHub",
                             _one_line(exc, 200))
    if isinstance(exc, network_errors):
        return ForgeUnreachable(operation, url, _network_reason(exc))
    return None
