"""The fake GitHub itself, driven through PyGithub and raw HTTP: it must answer like GitHub where
PyGithub (and our adapter) look, or the forge tests prove nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from github import Auth, Github, GithubException, UnknownObjectException

from fakegithub.server import BOT_TOKEN, HUMAN_TOKEN, FakeGitHub


def client(fake: FakeGitHub, token: str = BOT_TOKEN, **kwargs) -> Github:
    return Github(auth=Auth.Token(token), base_url=fake.base_url, retry=None,
                  seconds_between_requests=None, seconds_between_writes=None, **kwargs)


def raw(fake: FakeGitHub, method: str, path: str, body: dict | None = None,
        token: str | None = BOT_TOKEN) -> tuple[int, dict, dict | list | None]:
    req = urllib.request.Request(fake.base_url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            data = resp.read()
            return resp.status, dict(resp.headers), json.loads(data) if data else None
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


def test_errors_have_github_shapes(fake_github):
    status, _, body = raw(fake_github, "GET", "/repos/o/r", token="bad")
    assert status == 401 and body["message"] == "Bad credentials" and "documentation_url" in body
    status, _, body = raw(fake_github, "GET", "/repos/o/missing")
    assert (status, body["message"]) == (404, "Not Found")
    status, _, body = raw(fake_github, "POST", "/repos/o/r/issues/1/comments", {"body": "x"},
                          token=None)
    assert (status, body["message"]) == (401, "Requires authentication")
    pr = fake_github.add_pull()
    status, _, body = raw(fake_github, "POST", f"/repos/o/r/issues/{pr}/comments",
                          {"body": "x" * 65537})
    assert status == 422 and "body is too long" in body["errors"][0]["message"]
    status, _, body = raw(fake_github, "POST", f"/repos/o/r/issues/{pr}/comments", {})
    assert status == 422 and body["errors"][0]["code"] == "missing_field"


def test_user_endpoint_maps_tokens_to_logins(fake_github):
    assert client(fake_github).get_user().login == "mlreg-bot"
    assert client(fake_github, HUMAN_TOKEN).get_user().login == "alice"


def test_comment_lifecycle_and_link_pagination(fake_github):
    pr = fake_github.add_pull()
    for i in range(65):
        fake_github.add_comment("o/r", pr, f"c{i}")
    status, headers, page = raw(fake_github, "GET", f"/repos/o/r/issues/{pr}/comments?per_page=30")
    assert status == 200 and len(page) == 30
    link = headers["Link"]
    base = fake_github.base_url
    assert f'<{base}/repos/o/r/issues/{pr}/comments?per_page=30&page=2>; rel="next"' in link
    assert 'page=3>; rel="last"' in link
    _, headers, page = raw(fake_github, "GET",
                           f"/repos/o/r/issues/{pr}/comments?per_page=30&page=3")
    assert len(page) == 5 and 'rel="prev"' in headers["Link"] and 'rel="next"' not in headers[
        "Link"]

    repo = client(fake_github).get_repo("o/r")
    pull = repo.get_pull(pr)
    assert len(list(pull.get_issue_comments())) == 65
    created = pull.create_issue_comment("mine")
    assert created.user.login == "mlreg-bot"
    created.edit("edited")
    assert fake_github.comments(number=pr)[-1]["body"] == "edited"
    created.delete()
    assert fake_github.requests[-1].status == 204
    assert len(fake_github.comments(number=pr)) == 65
    with pytest.raises(UnknownObjectException):
        created.delete()


def test_git_refs(fake_github):
    repo = client(fake_github).get_repo("o/r")
    main = repo.get_git_ref("heads/main")
    assert main.object.sha == fake_github.ref("o/r", "main")
    ref = repo.create_git_ref("refs/heads/promote/x", main.object.sha)
    assert ref.ref == "refs/heads/promote/x"
    with pytest.raises(GithubException) as info:
        repo.create_git_ref("refs/heads/promote/x", main.object.sha)
    assert (info.value.status, info.value.data["message"]) == (422, "Reference already exists")
    with pytest.raises(UnknownObjectException):
        repo.get_git_ref("heads/nope")


def test_contents_get_and_put(fake_github):
    repo = client(fake_github).get_repo("o/r")
    readme = repo.get_contents("README.md", ref="main")
    assert readme.decoded_content == b"fake\n"
    repo.create_git_ref("refs/heads/edit", fake_github.ref("o/r", "main"))
    made = repo.create_file("production.yaml", "add manifest", "services: {}\n", branch="edit")
    assert made["commit"].sha == fake_github.ref("o/r", "edit")
    assert fake_github.file_at("o/r", "edit", "production.yaml") == b"services: {}\n"
    with pytest.raises(GithubException) as info:  # an update needs the blob sha
        repo.create_file("production.yaml", "again", "x", branch="edit")
    assert info.value.status == 422
    current = repo.get_contents("production.yaml", ref="edit")
    repo.update_file("production.yaml", "change", "services: {a: 1}\n", current.sha,
                     branch="edit")
    assert fake_github.file_at("o/r", "edit", "production.yaml") == b"services: {a: 1}\n"
    assert fake_github.file_at("o/r", "main", "production.yaml") is None
    with pytest.raises(GithubException) as info:
        repo.update_file("production.yaml", "stale", "x", current.sha, branch="edit")
    assert info.value.status == 409


def test_statuses_and_combined_status(fake_github):
    pr = fake_github.add_pull()
    sha = fake_github.pull("o/r", pr).head_sha
    commit = client(fake_github).get_repo("o/r").get_commit(sha)
    commit.create_status("pending", context="a")
    commit.create_status("success", context="a")
    commit.create_status("failure", context="b", description="no")
    combined = commit.get_combined_status()
    assert combined.state == "failure" and combined.total_count == 2
    assert [s.state for s in commit.get_statuses()] == ["failure", "success", "pending"]
    with pytest.raises(GithubException) as info:
        commit.create_status("bogus")
    assert info.value.status == 422


def test_pull_reviews_files_and_commit_pulls_through_pygithub(fake_github):
    pr = fake_github.add_pull(files=["a.yaml"])
    fake_github.add_review("o/r", pr, user="carol")
    repo = client(fake_github).get_repo("o/r")
    pull = repo.get_pull(pr)
    assert [r.user.login for r in pull.get_reviews()] == ["carol"]
    assert [f.filename for f in pull.get_files()] == ["a.yaml"]
    assert [p.number for p in repo.get_commit(pull.head.sha).get_pulls()] == [pr]
    assert [p.number for p in repo.get_pulls(state="open", head="o:feature")] == [pr]


def test_faults_fail_drop_and_hooks(fake_github):
    fake_github.fail_next(2, status=503, path="^/repos/o/r$")
    assert raw(fake_github, "GET", "/repos/o/r")[0] == 503
    assert raw(fake_github, "GET", "/user")[0] == 200  # does not match the fault
    assert raw(fake_github, "GET", "/repos/o/r")[0] == 503
    assert raw(fake_github, "GET", "/repos/o/r")[0] == 200
    seen = []
    fake_github.before("GET", "^/user$", lambda fake: seen.append(len(fake.requests)), times=2)
    for _ in range(3):
        raw(fake_github, "GET", "/user")
    assert len(seen) == 2
    fake_github.drop_next(1)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        raw(fake_github, "GET", "/user")
    assert raw(fake_github, "GET", "/user")[0] == 200


def test_prefix_is_required_and_used_in_urls():
    with FakeGitHub(prefix="api/v3/") as fake:
        fake.add_repo("o/r")
        assert fake.base_url.endswith(f":{fake.port}/api/v3")
        status, _, body = raw(fake, "GET", "/repos/o/r")
        assert status == 200 and body["url"] == f"{fake.base_url}/repos/o/r"
        req = urllib.request.Request(f"http://127.0.0.1:{fake.port}/repos/o/r")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 404
        assert client(fake).get_repo("o/r").full_name == "o/r"


def test_private_repo_is_invisible_without_a_token():
    with FakeGitHub() as fake:
        fake.add_repo("o/secret", private=True)
        assert raw(fake, "GET", "/repos/o/secret", token=None)[0] == 404
        assert raw(fake, "GET", "/repos/o/secret")[0] == 200
