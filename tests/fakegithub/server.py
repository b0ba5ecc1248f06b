"""A small, stateful fake of the GitHub REST API, served over real HTTP on loopback.

Tests drive it through PyGithub itself, so it has to answer the way github.com does where PyGithub
(or our adapter) looks: every ``url`` field is built from the request's own scheme, host, port and
path prefix (PyGithub asserts on them; a prefix such as ``/api/v3`` stands in for GitHub Enterprise
Server), creates answer 201, deletes 204, errors carry ``{"message", "documentation_url"}`` with
GitHub's status codes (401 bad token, 403 read-only token, 404, 409, 422 validation), and lists are
paginated with ``per_page``/``page`` and a ``Link`` header (30 per page unless asked otherwise).

Usage::

    fake = FakeGitHub(tokens={"bot-token": "mlreg-bot", "human-token": "alice"}).start()
    try:
        gh = github.Github(auth=github.Auth.Token("bot-token"), base_url=fake.base_url, retry=None,
                           seconds_between_requests=None, seconds_between_writes=None)
        ...
    finally:
        fake.stop()

or ``with FakeGitHub(...) as fake:``. The pytest fixture ``fake_github`` (``tests/forge/conftest.py``)
does this for you and creates the repository ``o/r`` with a ``main`` branch.

State can be set up and inspected directly (``add_pull``, ``add_comment``, ``merge_pull``,
``set_head_sha``, ``add_review``, ``set_ref``, ``comments``, ``statuses``, ``requests``), and faults
injected (``fail_next``: the next N matching requests answer an error; ``drop_next``: close the
connection without an answer; ``delay_next``; ``before``: run a callback just before a matching
request is handled, e.g. to create a comment "concurrently").
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

__all__ = ["FakeGitHub", "HTTPError", "RecordedRequest", "BOT_TOKEN", "HUMAN_TOKEN", "BOT_LOGIN",
           "HUMAN_LOGIN"]

DOCS = "https://docs.github.com/rest"
MAX_BODY = 65536

BOT_TOKEN = "ghp_bot_token_for_tests"
HUMAN_TOKEN = "ghp_human_token_for_tests"
BOT_LOGIN = "mlreg-bot"
HUMAN_LOGIN = "alice"

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class HTTPError(Exception):
    """Raised inside a handler to answer with a GitHub-shaped error."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


@dataclass
class RecordedRequest:
    """One request the fake answered: ``path`` is without the prefix and without the query."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    login: str | None


@dataclass
class _Fault:
    kind: str  # "fail" | "drop" | "delay"
    remaining: int
    method: str | None
    path: re.Pattern[str] | None
    status: int = 502
    message: str = "Server Error"
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path.search(path) is not None


@dataclass
class _Hook:
    method: str | None
    path: re.Pattern[str] | None
    callback: Callable[[FakeGitHub], None]
    remaining: int


@dataclass
class _Comment:
    id: int
    issue: int
    body: str
    user: str
    created_at: datetime
    updated_at: datetime


@dataclass
class _Pull:
    number: int
    title: str
    body: str | None
    head_ref: str
    head_sha: str
    head_owner: str
    base_ref: str
    base_sha: str
    user: str
    created_at: datetime
    state: str = "open"
    merged: bool = False
    merged_at: datetime | None = None
    merge_commit_sha: str | None = None
    closed_at: datetime | None = None
    draft: bool = False
    files: list[dict] = field(default_factory=list)
    reviews: list[dict] = field(default_factory=list)


@dataclass
class _Commit:
    sha: str
    files: dict[str, bytes]
    message: str
    parents: list[str]
    date: datetime


@dataclass
class _Repo:
    owner: str
    name: str
    id: int
    default_branch: str
    private: bool
    refs: dict[str, str] = field(default_factory=dict)  # "heads/main" -> sha
    commits: dict[str, _Commit] = field(default_factory=dict)
    pulls: dict[int, _Pull] = field(default_factory=dict)
    issues: dict[int, dict] = field(default_factory=dict)  # plain issues (not PRs)
    statuses: dict[str, list[dict]] = field(default_factory=dict)  # sha -> newest last
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeGitHub:
    """An in-memory GitHub behind a real loopback HTTP server. Thread-safe; one lock for state."""

    def __init__(
        self,
        *,
        tokens: dict[str, str] | None = None,
        integration_tokens: dict[str, str] | None = None,
        readonly_tokens: set[str] | frozenset[str] = frozenset(),
        prefix: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """``tokens`` maps a token to the login it authenticates as; ``integration_tokens`` are
        GitHub App installation tokens (like Actions' GITHUB_TOKEN): they act as the given login
        (e.g. ``github-actions[bot]``) but ``GET /user`` answers 403 for them, as on github.com.
        ``readonly_tokens`` get 403 on every write."""
        self.tokens = dict(tokens if tokens is not None else {BOT_TOKEN: BOT_LOGIN,
                                                              HUMAN_TOKEN: HUMAN_LOGIN})
        self.integration_tokens = dict(integration_tokens or {})
        self.readonly_tokens = set(readonly_tokens)
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._bind = (host, port)
        self.lock = threading.RLock()
        self.repos: dict[str, _Repo] = {}
        self.comments_by_id: dict[int, tuple[str, _Comment]] = {}
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._hooks: list[_Hook] = []
        self._ids = itertools.count(1000)
        self._shas = itertools.count(1)
        self._clock = _EPOCH
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(_Handler):
            owner = fake

        server = ThreadingHTTPServer(self._bind, Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fake-github", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What to pass as PyGithub's ``base_url`` (includes the prefix)."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    # ------------------------------------------------------------------ set-up helpers

    def _now(self) -> datetime:
        # A fake clock: every write is one second after the previous one, so "newest" is exact.
        with self.lock:
            self._clock += timedelta(seconds=1)
            return self._clock

    def new_sha(self) -> str:
        with self.lock:
            return hashlib.sha1(b"fake-commit-%d" % next(self._shas)).hexdigest()

    def add_repo(self, full_name: str = "o/r", *, default_branch: str = "main",
                 private: bool = False, files: dict[str, bytes | str] | None = None) -> str:
        """Create a repository with one commit on ``default_branch``; returns that commit's sha."""
        owner, name = full_name.split("/", 1)
        with self.lock:
            repo = _Repo(owner=owner, name=name, id=next(self._ids), default_branch=default_branch,
                         private=private)
            self.repos[full_name] = repo
            sha = self.add_commit(full_name, files=files or {"README.md": b"fake\n"},
                                  message="initial commit")
            repo.refs[f"heads/{default_branch}"] = sha
            return sha

    def _repo(self, full_name: str) -> _Repo:
        try:
            return self.repos[full_name]
        except KeyError:
            raise KeyError(f"no fake repo {full_name!r}; call add_repo first") from None

    def add_commit(self, repo: str = "o/r", *, sha: str | None = None,
                   files: dict[str, bytes | str] | None = None, parent: str | None = None,
                   message: str = "a commit") -> str:
        """Register a commit (its files default to the parent's)."""
        with self.lock:
            r = self._repo(repo)
            sha = sha or self.new_sha()
            tree = dict(r.commits[parent].files) if parent in r.commits else {}
            for path, data in (files or {}).items():
                tree[path] = data.encode() if isinstance(data, str) else data
            r.commits[sha] = _Commit(sha=sha, files=tree, message=message,
                                     parents=[parent] if parent else [], date=self._now())
            return sha

    def set_ref(self, repo: str, branch: str, sha: str | None = None) -> str:
        """Point ``heads/<branch>`` at ``sha`` (a new commit on top of the default branch if None)."""
        with self.lock:
            r = self._repo(repo)
            if sha is None:
                sha = self.add_commit(repo, parent=r.refs.get(f"heads/{r.default_branch}"),
                                      message=f"work on {branch}")
            elif sha not in r.commits:
                self.add_commit(repo, sha=sha)
            r.refs[f"heads/{branch}"] = sha
            return sha

    def add_pull(self, repo: str = "o/r", *, head: str = "feature", base: str | None = None,
                 title: str = "A pull request", body: str | None = "", user: str = HUMAN_LOGIN,
                 head_sha: str | None = None, head_owner: str | None = None,
                 files: list[str] | None = None) -> int:
        """Open a PR directly (creating the head branch if needed); returns its number."""
        with self.lock:
            r = self._repo(repo)
            base = base or r.default_branch
            if head_sha is None:
                head_sha = r.refs.get(f"heads/{head}") or self.set_ref(repo, head)
            elif head_sha not in r.commits:
                self.add_commit(repo, sha=head_sha)
            number = r.next_number
            r.next_number += 1
            r.pulls[number] = _Pull(
                number=number, title=title, body=body, head_ref=head, head_sha=head_sha,
                head_owner=head_owner or r.owner, base_ref=base,
                base_sha=r.refs.get(f"heads/{base}", ""), user=user, created_at=self._now(),
                files=[self._file_entry(f) for f in (files or [])],
            )
            return number

    @staticmethod
    def _file_entry(filename: str) -> dict:
        return {"sha": _blob_sha(filename.encode()), "filename": filename, "status": "modified",
                "additions": 1, "deletions": 0, "changes": 1, "patch": "@@ -1 +1 @@"}

    def set_pr_files(self, repo: str, number: int, files: list[str]) -> None:
        with self.lock:
            self._repo(repo).pulls[number].files = [self._file_entry(f) for f in files]

    def add_issue(self, repo: str = "o/r", *, title: str = "An issue") -> int:
        with self.lock:
            r = self._repo(repo)
            number = r.next_number
            r.next_number += 1
            r.issues[number] = {"title": title, "created_at": self._now()}
            return number

    def merge_pull(self, repo: str, number: int, *, merge_sha: str | None = None) -> str:
        """Merge a PR: the base branch moves to a new commit; returns the merge commit sha."""
        with self.lock:
            r = self._repo(repo)
            pr = r.pulls[number]
            base_sha = r.refs.get(f"heads/{pr.base_ref}")
            head_files = r.commits[pr.head_sha].files if pr.head_sha in r.commits else {}
            merge_sha = self.add_commit(repo, sha=merge_sha, parent=base_sha, files=head_files,
                                        message=f"{pr.title} (#{number})")
            r.refs[f"heads/{pr.base_ref}"] = merge_sha
            pr.state, pr.merged, pr.merge_commit_sha = "closed", True, merge_sha
            pr.merged_at = pr.closed_at = self._now()
            return merge_sha

    def close_pull(self, repo: str, number: int) -> None:
        with self.lock:
            pr = self._repo(repo).pulls[number]
            pr.state, pr.closed_at = "closed", self._now()

    def set_head_sha(self, repo: str, number: int, sha: str) -> None:
        """Simulate a push to the PR's branch."""
        with self.lock:
            pr = self._repo(repo).pulls[number]
            self.set_ref(repo, pr.head_ref, sha)
            pr.head_sha = sha

    def add_review(self, repo: str, number: int, *, user: str, state: str = "APPROVED",
                   body: str = "", submitted_at: datetime | None = None) -> int:
        with self.lock:
            pr = self._repo(repo).pulls[number]
            rid = next(self._ids)
            pr.reviews.append({"id": rid, "user": user, "state": state, "body": body,
                               "commit_id": pr.head_sha,
                               "submitted_at": submitted_at or self._now()})
            return rid

    def add_comment(self, repo: str, number: int, body: str, *, user: str = HUMAN_LOGIN) -> int:
        """Create an issue comment as ``user`` directly (no HTTP); returns its id."""
        with self.lock:
            self._issue_exists(self._repo(repo), number)
            now = self._now()
            c = _Comment(id=next(self._ids), issue=number, body=body, user=user, created_at=now,
                         updated_at=now)
            self.comments_by_id[c.id] = (repo, c)
            return c.id

    # ------------------------------------------------------------------ inspection helpers

    def comments(self, repo: str = "o/r", number: int | None = None) -> list[dict]:
        """Comments on one issue/PR (or all), oldest first, as plain dicts."""
        with self.lock:
            out = [
                {"id": c.id, "issue": c.issue, "body": c.body, "user": c.user,
                 "created_at": c.created_at, "updated_at": c.updated_at}
                for rn, c in self.comments_by_id.values()
                if rn == repo and (number is None or c.issue == number)
            ]
            return sorted(out, key=lambda d: d["id"])

    def statuses(self, repo: str, sha: str) -> list[dict]:
        """Statuses set on ``sha``, oldest first (with ``creator`` as a login)."""
        with self.lock:
            return [dict(s) for s in self._repo(repo).statuses.get(sha, [])]

    def pull(self, repo: str, number: int) -> _Pull:
        with self.lock:
            return self._repo(repo).pulls[number]

    def ref(self, repo: str, branch: str) -> str | None:
        with self.lock:
            return self._repo(repo).refs.get(f"heads/{branch}")

    def file_at(self, repo: str, ref: str, path: str) -> bytes | None:
        with self.lock:
            r = self._repo(repo)
            sha = r.refs.get(f"heads/{ref}", ref)
            c = r.commits.get(sha)
            return None if c is None else c.files.get(path)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many logged requests match ``method`` and the regex ``path`` (searched)."""
        return len(self.requests_matching(method, path))

    def requests_matching(self, method: str | None = None,
                          path: str | None = None) -> list[RecordedRequest]:
        pat = re.compile(path) if path else None
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method)
                    and (pat is None or pat.search(r.path))]

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    # ------------------------------------------------------------------ faults

    def fail_next(self, n: int = 1, *, status: int = 502, message: str = "Server Error",
                  method: str | None = None, path: str | None = None) -> None:
        """The next ``n`` requests matching ``method`` / regex ``path`` answer ``status``."""
        self._add_fault(_Fault("fail", n, method, re.compile(path) if path else None,
                               status=status, message=message))

    def drop_next(self, n: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """The next ``n`` matching requests get their connection closed with no answer."""
        self._add_fault(_Fault("drop", n, method, re.compile(path) if path else None))

    def delay_next(self, seconds: float, n: int = 1, *, method: str | None = None,
                   path: str | None = None) -> None:
        self._add_fault(_Fault("delay", n, method, re.compile(path) if path else None,
                               seconds=seconds))

    def _add_fault(self, fault: _Fault) -> None:
        with self.lock:
            self._faults.append(fault)

    def before(self, method: str | None, path: str | None,
               callback: Callable[[FakeGitHub], None], *, times: int = 1) -> None:
        """Run ``callback(fake)`` just before the next ``times`` matching requests are handled."""
        with self.lock:
            self._hooks.append(_Hook(method, re.compile(path) if path else None, callback, times))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self.lock:
            for f in self._faults:
                if f.remaining > 0 and f.matches(method, path):
                    f.remaining -= 1
                    return f
            return None

    def _run_hooks(self, method: str, path: str) -> None:
        with self.lock:
            due = []
            for h in self._hooks:
                if h.remaining > 0 and (h.method is None or h.method == method) and (
                        h.path is None or h.path.search(path)):
                    h.remaining -= 1
                    due.append(h)
            for h in due:
                h.callback(self)

    # ------------------------------------------------------------------ JSON builders

    def _user_json(self, ctx: _Ctx, login: str) -> dict:
        bot = login.endswith("[bot]")
        uid = int(hashlib.sha1(login.encode()).hexdigest()[:7], 16)
        return {"login": login, "id": uid, "node_id": f"U_{uid}", "type": "Bot" if bot else "User",
                "site_admin": False, "url": f"{ctx.api}/users/{quote(login)}",
                "html_url": f"{ctx.web}/{quote(login)}"}

    def _repo_json(self, ctx: _Ctx, r: _Repo) -> dict:
        api = f"{ctx.api}/repos/{r.full_name}"
        return {
            "id": r.id, "node_id": f"R_{r.id}", "name": r.name, "full_name": r.full_name,
            "owner": self._user_json(ctx, r.owner), "private": r.private,
            "visibility": "private" if r.private else "public", "fork": False,
            "default_branch": r.default_branch, "url": api,
            "html_url": f"{ctx.web}/{r.full_name}",
            "pulls_url": api + "/pulls{/number}", "issues_url": api + "/issues{/number}",
            "statuses_url": api + "/statuses/{sha}", "commits_url": api + "/commits{/sha}",
            "git_refs_url": api + "/git/refs{/sha}", "contents_url": api + "/contents/{+path}",
            "permissions": {"admin": False, "maintain": False, "push": True, "triage": True,
                            "pull": True},
        }

    def _pull_json(self, ctx: _Ctx, r: _Repo, p: _Pull, *, full: bool = True) -> dict:
        """A PR; list endpoints (``full=False``) leave out ``merged``, ``mergeable`` and the
        counters, as GitHub does, so a client that reads them pays for a second GET."""
        out = self._pull_json_full(ctx, r, p)
        if not full:
            for key in ("merged", "mergeable", "comments"):
                out.pop(key)
        return out

    def _pull_json_full(self, ctx: _Ctx, r: _Repo, p: _Pull) -> dict:
        api = f"{ctx.api}/repos/{r.full_name}"
        repo_json = self._repo_json(ctx, r)
        return {
            "id": 500000 + p.number, "node_id": f"PR_{p.number}", "number": p.number,
            "state": p.state, "locked": False, "title": p.title, "body": p.body,
            "user": self._user_json(ctx, p.user), "draft": p.draft,
            "url": f"{api}/pulls/{p.number}", "html_url": f"{ctx.web}/{r.full_name}/pull/{p.number}",
            "issue_url": f"{api}/issues/{p.number}",
            "comments_url": f"{api}/issues/{p.number}/comments",
            "review_comments_url": f"{api}/pulls/{p.number}/comments",
            "commits_url": f"{api}/pulls/{p.number}/commits",
            "statuses_url": f"{api}/statuses/{p.head_sha}",
            "head": {"label": f"{p.head_owner}:{p.head_ref}", "ref": p.head_ref, "sha": p.head_sha,
                     "user": self._user_json(ctx, p.head_owner), "repo": repo_json},
            "base": {"label": f"{r.owner}:{p.base_ref}", "ref": p.base_ref, "sha": p.base_sha,
                     "user": self._user_json(ctx, r.owner), "repo": repo_json},
            "merged": p.merged, "merged_at": _iso(p.merged_at),
            "merge_commit_sha": p.merge_commit_sha, "closed_at": _iso(p.closed_at),
            "created_at": _iso(p.created_at), "updated_at": _iso(p.created_at),
            "mergeable": None, "comments": sum(1 for rn, c in self.comments_by_id.values()
                                               if rn == r.full_name and c.issue == p.number),
        }

    def _comment_json(self, ctx: _Ctx, repo: str, c: _Comment) -> dict:
        api = f"{ctx.api}/repos/{repo}"
        assoc = "OWNER" if c.user == repo.split("/")[0] else (
            "NONE" if c.user.endswith("[bot]") else "CONTRIBUTOR")
        return {
            "id": c.id, "node_id": f"IC_{c.id}", "body": c.body,
            "user": self._user_json(ctx, c.user), "author_association": assoc,
            "created_at": _iso(c.created_at), "updated_at": _iso(c.updated_at),
            "url": f"{api}/issues/comments/{c.id}", "issue_url": f"{api}/issues/{c.issue}",
            "html_url": f"{ctx.web}/{repo}/pull/{c.issue}#issuecomment-{c.id}",
        }

    def _status_json(self, ctx: _Ctx, r: _Repo, s: dict) -> dict:
        out = {k: v for k, v in s.items() if k not in ("creator", "created_at", "updated_at")}
        out.update(creator=self._user_json(ctx, s["creator"]),
                   created_at=_iso(s["created_at"]), updated_at=_iso(s["updated_at"]),
                   node_id=f"SC_{s['id']}", url=f"{ctx.api}/repos/{r.full_name}/statuses/{s['sha']}")
        return out

    def _commit_json(self, ctx: _Ctx, r: _Repo, c: _Commit) -> dict:
        api = f"{ctx.api}/repos/{r.full_name}"
        person = {"name": "Fake", "email": "fake@example.com", "date": _iso(c.date)}
        return {
            "sha": c.sha, "node_id": f"C_{c.sha[:8]}", "url": f"{api}/commits/{c.sha}",
            "html_url": f"{ctx.web}/{r.full_name}/commit/{c.sha}",
            "comments_url": f"{api}/commits/{c.sha}/comments",
            "commit": {"message": c.message, "author": person, "committer": person,
                       "url": f"{api}/git/commits/{c.sha}",
                       "tree": {"sha": _blob_sha(c.sha.encode()), "url": f"{api}/git/trees/x"}},
            "parents": [{"sha": p, "url": f"{api}/commits/{p}"} for p in c.parents],
            "files": [], "stats": {"additions": 0, "deletions": 0, "total": 0},
        }

    def _ref_json(self, ctx: _Ctx, r: _Repo, ref: str, sha: str) -> dict:
        api = f"{ctx.api}/repos/{r.full_name}"
        return {"ref": f"refs/{ref}", "node_id": f"REF_{ref}", "url": f"{api}/git/refs/{ref}",
                "object": {"sha": sha, "type": "commit", "url": f"{api}/git/commits/{sha}"}}

    def _content_json(self, ctx: _Ctx, r: _Repo, path: str, data: bytes, ref: str) -> dict:
        api = f"{ctx.api}/repos/{r.full_name}"
        sha = _blob_sha(data)
        return {
            "type": "file", "encoding": "base64", "size": len(data),
            "name": path.rsplit("/", 1)[-1], "path": path, "sha": sha,
            "content": base64.encodebytes(data).decode(),
            "url": f"{api}/contents/{quote(path)}?ref={quote(ref)}",
            "git_url": f"{api}/git/blobs/{sha}",
            "html_url": f"{ctx.web}/{r.full_name}/blob/{quote(ref)}/{quote(path)}",
            "download_url": f"{ctx.web}/{r.full_name}/raw/{quote(ref)}/{quote(path)}",
        }

    # ------------------------------------------------------------------ request handling

    def _issue_exists(self, r: _Repo, number: int) -> None:
        if number not in r.pulls and number not in r.issues:
            raise HTTPError(404, "Not Found")

    def handle(self, ctx: _Ctx) -> tuple[int, Any, dict[str, str]]:
        """Route one request; returns (status, JSON-able body or None, extra headers)."""
        path = ctx.path
        if path == "/user":
            if ctx.login is None:
                raise HTTPError(401, "Requires authentication")
            if ctx.integration:
                raise HTTPError(403, "Resource not accessible by integration")
            return 200, self._user_json(ctx, ctx.login), {}
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
        if not m:
            raise HTTPError(404, "Not Found")
        full = f"{m.group(1)}/{m.group(2)}"
        r = self.repos.get(full)
        if r is None or (r.private and ctx.login is None):
            raise HTTPError(404, "Not Found")
        if ctx.method in ("POST", "PATCH", "PUT", "DELETE"):
            if ctx.login is None:
                raise HTTPError(401, "Requires authentication")
            if ctx.readonly:
                raise HTTPError(403, "Resource not accessible by integration")
        rest = m.group(3) or ""
        for method, pattern, fn in _ROUTES:
            if method == ctx.method:
                mm = re.fullmatch(pattern, rest)
                if mm:
                    return fn(self, ctx, r, *mm.groups())
        if any(re.fullmatch(p, rest) for _, p, _ in _ROUTES):
            raise HTTPError(404, "Not Found")  # GitHub answers 404 for unsupported verbs too
        raise HTTPError(404, "Not Found")

    def _paginate(self, ctx: _Ctx, items: list[Any]) -> tuple[int, list[Any], dict[str, str]]:
        try:
            per_page = max(1, min(100, int(ctx.query.get("per_page", 30))))
            page = max(1, int(ctx.query.get("page", 1)))
        except ValueError:
            raise HTTPError(422, "Validation Failed") from None
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []

        def link(p: int, rel: str) -> str:
            q = dict(ctx.query, page=str(p))
            if "per_page" in ctx.query:
                q["per_page"] = str(per_page)
            return f'<{ctx.api}{quote(ctx.path)}?{urlencode(q)}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        return 200, chunk, ({"Link": ", ".join(links)} if links else {})

    # --- repos
    def _get_repo(self, ctx: _Ctx, r: _Repo) -> tuple:
        return 200, self._repo_json(ctx, r), {}

    # --- pulls
    def _list_pulls(self, ctx: _Ctx, r: _Repo) -> tuple:
        state = ctx.query.get("state", "open")
        head = ctx.query.get("head")
        base = ctx.query.get("base")
        pulls = []
        for p in sorted(r.pulls.values(), key=lambda p: -p.number):  # newest first, like GitHub
            if state != "all" and p.state != state:
                continue
            if head is not None:
                owner, _, branch = head.rpartition(":")
                if (owner or p.head_owner) != p.head_owner or branch != p.head_ref:
                    continue
            if base is not None and p.base_ref != base:
                continue
            pulls.append(p)
        status, chunk, headers = self._paginate(ctx, pulls)
        return status, [self._pull_json(ctx, r, p, full=False) for p in chunk], headers

    def _create_pull(self, ctx: _Ctx, r: _Repo) -> tuple:
        body = ctx.json_body()
        missing = [k for k in ("head", "base") if not body.get(k)]
        if not body.get("title") and not body.get("issue"):
            missing.append("title")
        if missing:
            raise HTTPError(422, "Validation Failed", [
                {"resource": "PullRequest", "field": k, "code": "missing_field"} for k in missing])
        owner, _, branch = str(body["head"]).rpartition(":")
        owner = owner or r.owner
        base = str(body["base"])
        if f"heads/{branch}" not in r.refs or owner != r.owner:
            raise HTTPError(422, "Validation Failed", [
                {"resource": "PullRequest", "field": "head", "code": "invalid"}])
        if f"heads/{base}" not in r.refs:
            raise HTTPError(422, "Validation Failed", [
                {"resource": "PullRequest", "field": "base", "code": "invalid"}])
        for p in r.pulls.values():
            if p.state == "open" and p.head_ref == branch and p.head_owner == owner \
                    and p.base_ref == base:
                raise HTTPError(422, "Validation Failed", [
                    {"resource": "PullRequest", "code": "custom",
                     "message": f"A pull request already exists for {owner}:{branch}."}])
        if r.refs[f"heads/{branch}"] == r.refs[f"heads/{base}"]:
            raise HTTPError(422, "Validation Failed", [
                {"resource": "PullRequest", "code": "custom",
                 "message": f"No commits between {base} and {branch}"}])
        if len(body.get("body") or "") > MAX_BODY:
            raise HTTPError(422, "Validation Failed", [
                {"resource": "PullRequest", "code": "custom", "field": "body",
                 "message": f"body is too long (maximum is {MAX_BODY} characters)"}])
        number = self.add_pull(r.full_name, head=branch, base=base, title=str(body["title"]),
                               body=body.get("body"), user=ctx.login or "",
                               head_sha=r.refs[f"heads/{branch}"])
        r.pulls[number].draft = bool(body.get("draft", False))
        return 201, self._pull_json(ctx, r, r.pulls[number]), {}

    def _pull(self, r: _Repo, number: str) -> _Pull:
        p = r.pulls.get(int(number))
        if p is None:
            raise HTTPError(404, "Not Found")
        return p

    def _get_pull(self, ctx: _Ctx, r: _Repo, number: str) -> tuple:
        return 200, self._pull_json(ctx, r, self._pull(r, number)), {}

    def _patch_pull(self, ctx: _Ctx, r: _Repo, number: str) -> tuple:
        p = self._pull(r, number)
        body = ctx.json_body()
        if "title" in body:
            p.title = str(body["title"])
        if "body" in body:
            p.body = body["body"]
        if body.get("state") in ("open", "closed"):
            p.state = body["state"]
            p.closed_at = self._now() if p.state == "closed" else None
        return 200, self._pull_json(ctx, r, p), {}

    def _pull_files(self, ctx: _Ctx, r: _Repo, number: str) -> tuple:
        return self._paginate(ctx, list(self._pull(r, number).files))

    def _pull_reviews(self, ctx: _Ctx, r: _Repo, number: str) -> tuple:
        p = self._pull(r, number)
        api = f"{ctx.api}/repos/{r.full_name}"
        items = [
            {"id": rv["id"], "node_id": f"PRR_{rv['id']}", "user": self._user_json(ctx, rv["user"]),
             "body": rv["body"], "state": rv["state"], "commit_id": rv["commit_id"],
             "submitted_at": _iso(rv["submitted_at"]),
             "html_url": f"{ctx.web}/{r.full_name}/pull/{p.number}#pullrequestreview-{rv['id']}",
             "pull_request_url": f"{api}/pulls/{p.number}"}
            for rv in p.reviews
        ]
        return self._paginate(ctx, items)

    # --- issues and comments
    def _get_issue(self, ctx: _Ctx, r: _Repo, number: str) -> tuple:
        n = int(number)
        self._issue_exists(r, n)
        api = f"{ctx.api}/repos/{r.full_name}"
        if n in r.pulls:
            p = r.pulls[n]
            data = {"title": p.title, "body": p.body, "state": p.state, "user": p.user,
                    "created_at": p.created_at,
                    "pull_request": {"url": f"{api}/pulls/{n}",
                                     "html_url": f"{ctx.web}/{r.full_name}/pull/{n}"}}
        else:
            i = r.issues[n]
            data = {"title": i["title"], "body": "", "state": "open", "user": r.owner,
                    "created_at": i["created_at"]}
        out = dict(data, id=700000 + n, number=n, url=f"{api}/issues/{n}",
                   html_url=f"{ctx.web}/{r.full_name}/issues/{n}",
                   comments_url=f"{api}/issues/{n}/comments",
                   user=self._user_json(ctx, data["user"]), created_at=_iso(data["created_at"]))
        return 200, out, {}

    def _list_comments(self, ctx: _Ctx, r: _Repo, number: str) -> tuple:
        n = int(number)
        self._issue_exists(r, n)
        items = sorted((c for rn, c in self.comments_by_id.values()
                        if rn == r.full_name and c.issue == n), key=lambda c: c.id)
        status, chunk, headers = self._paginate(ctx, items)
        return status, [self._comment_json(ctx, r.full_name, c) for c in chunk], headers

    @staticmethod
    def _check_body(body: dict, resource: str) -> str:
        text = body.get("body")
        if not isinstance(text, str) or not text:
            raise HTTPError(422, "Validation Failed", [
                {"resource": resource, "code": "missing_field", "field": "body"}])
        if len(text) > MAX_BODY:
            raise HTTPError(422, "Validation Failed", [
                {"resource": resource, "code": "custom", "field": "body",
                 "message": f"body is too long (maximum is {MAX_BODY} characters)"}])
        return text

    def _create_comment(self, ctx: _Ctx, r: _Repo, number: str) -> tuple:
        n = int(number)
        self._issue_exists(r, n)
        text = self._check_body(ctx.json_body(), "IssueComment")
        cid = self.add_comment(r.full_name, n, text, user=ctx.login or "")
        c = self.comments_by_id[cid][1]
        return 201, self._comment_json(ctx, r.full_name, c), {}

    def _comment(self, r: _Repo, cid: str) -> _Comment:
        found = self.comments_by_id.get(int(cid))
        if found is None or found[0] != r.full_name:
            raise HTTPError(404, "Not Found")
        return found[1]

    def _get_comment(self, ctx: _Ctx, r: _Repo, cid: str) -> tuple:
        return 200, self._comment_json(ctx, r.full_name, self._comment(r, cid)), {}

    def _edit_comment(self, ctx: _Ctx, r: _Repo, cid: str) -> tuple:
        c = self._comment(r, cid)
        c.body = self._check_body(ctx.json_body(), "IssueComment")
        c.updated_at = self._now()
        return 200, self._comment_json(ctx, r.full_name, c), {}

    def _delete_comment(self, ctx: _Ctx, r: _Repo, cid: str) -> tuple:
        c = self._comment(r, cid)
        del self.comments_by_id[c.id]
        return 204, None, {}

    # --- commits and statuses
    def _commit(self, r: _Repo, sha: str) -> _Commit:
        c = r.commits.get(sha)
        if c is None:
            matches = [c for s, c in r.commits.items() if len(sha) >= 7 and s.startswith(sha)]
            if len(matches) == 1:
                return matches[0]
            ref = r.refs.get(f"heads/{sha}")
            if ref:
                return r.commits[ref]
            raise HTTPError(422, f"No commit found for SHA: {sha}")
        return c

    def _get_commit(self, ctx: _Ctx, r: _Repo, sha: str) -> tuple:
        return 200, self._commit_json(ctx, r, self._commit(r, sha)), {}

    def _create_status(self, ctx: _Ctx, r: _Repo, sha: str) -> tuple:
        body = ctx.json_body()
        commit = self._commit(r, sha)
        state = body.get("state")
        if state not in ("error", "failure", "pending", "success"):
            raise HTTPError(422, "Validation Failed", [
                {"resource": "Status", "field": "state", "code": "custom",
                 "message": "state is not included in the list"}])
        desc = body.get("description")
        if desc is not None and len(desc) > 140:
            raise HTTPError(422, "Validation Failed", [
                {"resource": "Status", "field": "description", "code": "custom",
                 "message": "description is too long (maximum is 140 characters)"}])
        now = self._now()
        s = {"id": next(self._ids), "sha": commit.sha, "state": state, "description": desc,
             "target_url": body.get("target_url"), "context": body.get("context") or "default",
             "creator": ctx.login or "", "created_at": now, "updated_at": now}
        r.statuses.setdefault(commit.sha, []).append(s)
        return 201, self._status_json(ctx, r, s), {}

    def _list_statuses(self, ctx: _Ctx, r: _Repo, sha: str) -> tuple:
        commit = self._commit(r, sha)
        items = list(reversed(r.statuses.get(commit.sha, [])))
        status, chunk, headers = self._paginate(ctx, items)
        return status, [self._status_json(ctx, r, s) for s in chunk], headers

    def _combined_status(self, ctx: _Ctx, r: _Repo, sha: str) -> tuple:
        commit = self._commit(r, sha)
        latest: dict[str, dict] = {}
        for s in r.statuses.get(commit.sha, []):
            latest[s["context"]] = s
        states = {s["state"] for s in latest.values()}
        if not latest or "pending" in states:
            combined = "pending"
        elif states & {"error", "failure"}:
            combined = "failure"
        else:
            combined = "success"
        api = f"{ctx.api}/repos/{r.full_name}"
        return 200, {
            "state": combined, "sha": commit.sha, "total_count": len(latest),
            "statuses": [self._status_json(ctx, r, s) for s in latest.values()],
            "repository": self._repo_json(ctx, r), "commit_url": f"{api}/commits/{commit.sha}",
            "url": f"{api}/commits/{commit.sha}/status",
        }, {}

    def _commit_pulls(self, ctx: _Ctx, r: _Repo, sha: str) -> tuple:
        pulls = [p for p in sorted(r.pulls.values(), key=lambda p: -p.number)
                 if p.head_sha == sha or p.merge_commit_sha == sha]
        status, chunk, headers = self._paginate(ctx, pulls)
        return status, [self._pull_json(ctx, r, p, full=False) for p in chunk], headers

    # --- git refs
    def _get_ref(self, ctx: _Ctx, r: _Repo, ref: str) -> tuple:
        sha = r.refs.get(ref)
        if sha is None:
            raise HTTPError(404, "Not Found")
        return 200, self._ref_json(ctx, r, ref, sha), {}

    def _create_ref(self, ctx: _Ctx, r: _Repo) -> tuple:
        body = ctx.json_body()
        ref, sha = body.get("ref"), body.get("sha")
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise HTTPError(422, "Reference name must start with 'refs/' and have at least two "
                                 "slashes.")
        if not isinstance(sha, str) or sha not in r.commits:
            raise HTTPError(422, "Object does not exist")
        short = ref[len("refs/"):]
        if short in r.refs:
            raise HTTPError(422, "Reference already exists")
        r.refs[short] = sha
        return 201, self._ref_json(ctx, r, short, sha), {}

    def _update_ref(self, ctx: _Ctx, r: _Repo, ref: str) -> tuple:
        body = ctx.json_body()
        if ref not in r.refs:
            raise HTTPError(422, "Reference does not exist")
        sha = body.get("sha")
        if sha not in r.commits:
            raise HTTPError(422, "Object does not exist")
        r.refs[ref] = sha
        return 200, self._ref_json(ctx, r, ref, sha), {}

    def _delete_ref(self, ctx: _Ctx, r: _Repo, ref: str) -> tuple:
        if r.refs.pop(ref, None) is None:
            raise HTTPError(422, "Reference does not exist")
        return 204, None, {}

    # --- contents
    def _resolve(self, r: _Repo, ref: str | None) -> tuple[str, _Commit]:
        ref = ref or r.default_branch
        sha = r.refs.get(f"heads/{ref}") or (ref if ref in r.commits else None)
        if sha is None:
            raise HTTPError(404, f"No commit found for the ref {ref}")
        return ref, r.commits[sha]

    def _get_contents(self, ctx: _Ctx, r: _Repo, path: str) -> tuple:
        path = unquote(path).strip("/")
        ref, commit = self._resolve(r, ctx.query.get("ref"))
        if path in commit.files:
            return 200, self._content_json(ctx, r, path, commit.files[path], ref), {}
        children = sorted(p for p in commit.files if p.startswith(path + "/") or not path)
        if not children:
            raise HTTPError(404, "Not Found")
        entries, seen = [], set()
        for p in children:
            name = p[len(path) + 1:].split("/", 1)[0] if path else p.split("/", 1)[0]
            full = f"{path}/{name}" if path else name
            if full in seen:
                continue
            seen.add(full)
            if full in commit.files:
                entries.append(self._content_json(ctx, r, full, commit.files[full], ref))
            else:
                entries.append({"type": "dir", "name": name, "path": full, "sha": _blob_sha(
                    full.encode()), "size": 0,
                    "url": f"{ctx.api}/repos/{r.full_name}/contents/{quote(full)}?ref={ref}"})
        return 200, entries, {}

    def _put_contents(self, ctx: _Ctx, r: _Repo, path: str) -> tuple:
        path = unquote(path).strip("/")
        body = ctx.json_body()
        if not body.get("message") or "content" not in body:
            raise HTTPError(422, "Invalid request.\n\n\"message\" and \"content\" are required.")
        branch = body.get("branch") or r.default_branch
        if f"heads/{branch}" not in r.refs:
            raise HTTPError(404, f"Branch {branch} not found")
        _, commit = self._resolve(r, branch)
        try:
            data = base64.b64decode(body["content"], validate=True)
        except ValueError:
            raise HTTPError(422, "content is not valid Base64") from None
        exists = path in commit.files
        if exists:
            if not body.get("sha"):
                raise HTTPError(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
            if body["sha"] != _blob_sha(commit.files[path]):
                raise HTTPError(409, f"{path} does not match {body['sha']}")
        new = self.add_commit(r.full_name, parent=commit.sha, files={path: data},
                              message=str(body["message"]))
        r.refs[f"heads/{branch}"] = new
        c = r.commits[new]
        return (200 if exists else 201), {
            "content": self._content_json(ctx, r, path, data, branch),
            "commit": {"sha": new, "url": f"{ctx.api}/repos/{r.full_name}/git/commits/{new}",
                       "html_url": f"{ctx.web}/{r.full_name}/commit/{new}",
                       "message": c.message, "parents": [{"sha": p} for p in c.parents]},
        }, {}


_ROUTES: list[tuple[str, str, Callable[..., tuple]]] = [
    ("GET", r"", FakeGitHub._get_repo),
    ("GET", r"/pulls", FakeGitHub._list_pulls),
    ("POST", r"/pulls", FakeGitHub._create_pull),
    ("GET", r"/pulls/(\d+)", FakeGitHub._get_pull),
    ("PATCH", r"/pulls/(\d+)", FakeGitHub._patch_pull),
    ("GET", r"/pulls/(\d+)/files", FakeGitHub._pull_files),
    ("GET", r"/pulls/(\d+)/reviews", FakeGitHub._pull_reviews),
    ("GET", r"/issues/(\d+)", FakeGitHub._get_issue),
    ("GET", r"/issues/(\d+)/comments", FakeGitHub._list_comments),
    ("POST", r"/issues/(\d+)/comments", FakeGitHub._create_comment),
    ("GET", r"/issues/comments/(\d+)", FakeGitHub._get_comment),
    ("PATCH", r"/issues/comments/(\d+)", FakeGitHub._edit_comment),
    ("DELETE", r"/issues/comments/(\d+)", FakeGitHub._delete_comment),
    ("POST", r"/statuses/([0-9a-fA-F]+)", FakeGitHub._create_status),
    ("GET", r"/statuses/([0-9a-fA-F]+)", FakeGitHub._list_statuses),
    ("GET", r"/commits/([^/]+)", FakeGitHub._get_commit),
    ("GET", r"/commits/([^/]+)/status", FakeGitHub._combined_status),
    ("GET", r"/commits/([^/]+)/statuses", FakeGitHub._list_statuses),
    ("GET", r"/commits/([^/]+)/pulls", FakeGitHub._commit_pulls),
    ("GET", r"/git/ref/(heads/.+|tags/.+)", FakeGitHub._get_ref),
    ("GET", r"/git/refs/(heads/.+|tags/.+)", FakeGitHub._get_ref),
    ("POST", r"/git/refs", FakeGitHub._create_ref),
    ("PATCH", r"/git/refs/(heads/.+|tags/.+)", FakeGitHub._update_ref),
    ("DELETE", r"/git/refs/(heads/.+|tags/.+)", FakeGitHub._delete_ref),
    ("GET", r"/contents(?:/(.*))?", FakeGitHub._get_contents),
    ("PUT", r"/contents/(.+)", FakeGitHub._put_contents),
]


@dataclass
class _Ctx:
    """One request as the routes see it."""

    method: str
    path: str  # without prefix and query
    query: dict[str, str]
    raw_body: bytes
    api: str  # scheme://host:port/prefix, from the request itself
    web: str  # scheme://host:port (html_url base)
    login: str | None
    integration: bool
    readonly: bool

    def json_body(self) -> dict:
        if not self.raw_body:
            return {}
        try:
            data = json.loads(self.raw_body)
        except ValueError:
            raise HTTPError(400, "Problems parsing JSON") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "Problems parsing JSON")
        return data


class _Handler(BaseHTTPRequestHandler):
    owner: FakeGitHub
    protocol_version = "HTTP/1.1"  # keep-alive, as PyGithub's requests session expects
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server_version = "GitHub.com"
    sys_version = ""
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; the fake keeps its own request log

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        fake = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        full_path = unquote(split.path)
        host = self.headers.get("Host") or f"127.0.0.1:{fake.port}"
        web = f"http://{host}"
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}

        token = None
        auth = self.headers.get("Authorization") or ""
        parts = auth.split(None, 1)
        if len(parts) == 2 and parts[0].lower() in ("token", "bearer"):
            token = parts[1].strip()
        login = None
        integration = False
        bad_token = False
        if token is not None:
            if token in fake.tokens:
                login = fake.tokens[token]
            elif token in fake.integration_tokens:
                login, integration = fake.integration_tokens[token], True
            else:
                bad_token = True

        in_prefix = full_path == fake.prefix or full_path.startswith(fake.prefix + "/")
        path = full_path[len(fake.prefix):] if in_prefix else full_path
        path = path.rstrip("/") or "/"
        try:
            body_json = json.loads(raw) if raw else None
        except ValueError:
            body_json = raw.decode(errors="replace")

        fault = fake._take_fault(method, path)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        elif fault is not None and fault.kind == "drop":
            with fake.lock:
                fake.requests.append(RecordedRequest(method, path, query, body_json, 0, login))
            self.close_connection = True
            self.connection.shutdown(2)
            return

        headers: dict[str, str] = {}
        if fault is not None and fault.kind == "fail":
            status, payload = fault.status, {"message": fault.message, "documentation_url": DOCS}
        elif bad_token:
            status, payload = 401, {"message": "Bad credentials", "documentation_url": DOCS,
                                    "status": "401"}
        elif not in_prefix:
            status, payload = 404, {"message": "Not Found", "documentation_url": DOCS}
        else:
            ctx = _Ctx(method=method, path=path, query=query, raw_body=raw,
                       api=web + fake.prefix, web=web, login=login, integration=integration,
                       readonly=token in fake.readonly_tokens)
            try:
                fake._run_hooks(method, path)
                with fake.lock:
                    status, payload, headers = fake.handle(ctx)
            except HTTPError as e:
                status = e.status
                payload = {"message": e.message, "documentation_url": DOCS, "status": str(status)}
                if e.errors:
                    payload["errors"] = e.errors
        with fake.lock:
            fake.requests.append(RecordedRequest(method, path, query, body_json, status, login))

        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self._respond(status, data, headers)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            self.close_connection = True

    def _respond(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        fake = self.owner
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        self.send_header("X-GitHub-Request-Id", f"FAKE:{len(fake.requests)}")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)
