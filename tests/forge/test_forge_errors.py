"""PyGithub and requests failures become mlreg errors at the adapter boundary, in one place."""

from __future__ import annotations

import socket

import pytest
import requests
from github import GithubException
from github.GithubException import (
    BadAttributeException,
    BadCredentialsException,
    RateLimitExceededException,
    UnknownObjectException,
)

from fakegithub.server import FakeGitHub
from mlreg.errors import DependencyError, ForgeError, InputError, NotFound
from mlreg.forge import GitHubForge
from mlreg.forge.errors import ForgeAPIError, ForgeNotFound, ForgeUnreachable, map_github_error
from mlreg.forge.github_forge import default_retry

OP = "update the sticky comment on PR #5"


# ---------------------------------------------------------------------------- the mapping itself


@pytest.mark.parametrize(
    ("exc", "cls", "status", "words"),
    [
        (BadCredentialsException(401, {"message": "Bad credentials"}), ForgeAPIError, 401,
         ["HTTP 401", "Bad credentials", "token"]),
        (GithubException(403, {"message": "Resource not accessible by integration"}),
         ForgeAPIError, 403, ["HTTP 403", "not accessible", "permission"]),
        (RateLimitExceededException(403, {"message": "API rate limit exceeded for 1.2.3.4"}),
         ForgeAPIError, 403, ["rate limit"]),
        (UnknownObjectException(404, {"message": "Not Found"}), ForgeAPIError, 404,
         ["HTTP 404", "does not exist"]),
        (GithubException(409, {"message": "is at 1234 but expected 5678"}), ForgeAPIError, 409,
         ["HTTP 409", "conflict"]),
        (GithubException(422, {"message": "Validation Failed", "errors": [
            {"resource": "IssueComment", "code": "custom", "field": "body",
             "message": "body is too long (maximum is 65536 characters)"}]}),
         ForgeAPIError, 422, ["HTTP 422", "Validation Failed: body is too long"]),
        (GithubException(422, {"message": "Validation Failed", "errors": [
            {"resource": "PullRequest", "field": "head", "code": "invalid"}]}),
         ForgeAPIError, 422, ["PullRequest head invalid"]),
        (GithubException(502, {"message": "Server Error"}), ForgeAPIError, 502,
         ["HTTP 502", "retry later"]),
        (GithubException(503, "<html>\n<body>unicorn</body>\n</html>"), ForgeAPIError, 503,
         ["HTTP 503", "unicorn"]),
        (BadAttributeException("x", int, None), ForgeAPIError, None, ["unexpected response"]),
    ],
)
def test_github_exceptions_map_to_forge_errors(exc, cls, status, words):
    err = map_github_error(exc, OP)
    assert type(err) is cls and isinstance(err, ForgeError)
    assert err.exit_code == 3
    assert err.status == status
    message = str(err)
    assert message.startswith(f"GitHub: {OP} failed: ")
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (requests.exceptions.ConnectionError(
            "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /user "
            "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection>: Failed to "
            "establish a new connection: [Errno 111] Connection refused'))"), "connection refused"),
        (requests.exceptions.ReadTimeout("HTTPConnectionPool(host='x', port=1): Read timed out. "
                                         "(read timeout=5)"), "timed out"),
        (requests.exceptions.RetryError("Max retries exceeded (too many 502 error responses)"),
         "too many failed attempts"),
        (requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected("
                                             "'Remote end closed connection without response'))"),
         "the connection was closed without an answer"),
        (requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                                      "failed"), "TLS error"),
        (requests.exceptions.ConnectionError(
            "HTTPSConnectionPool(host='ghe.invalid', port=443): Max retries exceeded with url: "
            "/user (Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection>: Failed "
            "to resolve 'ghe.invalid' ([Errno -2] Name or service not known)\"))"),
         "name or service not known"),
        (socket.gaierror(-2, "Name or service not known"), "name or service not known"),
        (TimeoutError("timed out"), "timed out"),
    ],
)
def test_network_errors_map_to_forge_unreachable(exc, reason):
    err = map_github_error(exc, OP, url="https://ghe.example.com/api/v3")
    assert isinstance(err, ForgeUnreachable) and err.exit_code == 3
    assert str(err) == (f"GitHub: {OP} failed: cannot reach https://ghe.example.com/api/v3: "
                        f"{reason}")


def test_a_missing_pr_or_commit_is_not_found_exit_2():
    err = map_github_error(UnknownObjectException(404, {"message": "Not Found"}), OP,
                           missing="pull request #5 in o/r")
    assert isinstance(err, ForgeNotFound) and isinstance(err, NotFound)
    assert err.exit_code == 2
    assert str(err) == f"GitHub: pull request #5 in o/r not found (HTTP 404) while trying to {OP}"
    err = map_github_error(GithubException(422, {"message": "No commit found for SHA: abc"}),
                           OP, missing="commit abc")
    assert isinstance(err, ForgeNotFound)


def test_missing_does_not_turn_other_statuses_into_not_found():
    err = map_github_error(GithubException(500, {"message": "x"}), OP, missing="pull request #5")
    assert isinstance(err, ForgeAPIError)


def test_other_exceptions_are_not_forge_errors():
    assert map_github_error(ValueError("a bug"), OP) is None
    assert map_github_error(KeyError("a bug"), OP) is None
    mlreg_error = InputError("already ours")
    assert map_github_error(mlreg_error, OP) is mlreg_error


def test_long_messages_stay_on_one_short_line():
    err = map_github_error(GithubException(500, {"message": "x\n" * 1000}), OP)
    assert "\n" not in str(err) and len(str(err)) < 500


def test_to_dict_carries_structured_fields():
    err = map_github_error(GithubException(502, {"message": "Server Error"}), OP)
    assert err.to_dict() == {"error": "ForgeAPIError", "message": str(err), "operation": OP,
                             "status": 502}


# ---------------------------------------------------------------------------- end to end


def test_bad_token_is_401_forge_error(fake_github, make_forge):
    pr = fake_github.add_pull()
    with pytest.raises(ForgeError) as info:
        make_forge("ghp_not_a_valid_token").upsert_sticky_comment(pr, "body")
    err = info.value
    assert err.exit_code == 3 and err.status == 401
    assert str(err) == (f"GitHub: update the sticky comment on PR #{pr} failed: HTTP 401 Bad "
                        "credentials (the token is missing, invalid or expired)")
    assert isinstance(err.__cause__, BadCredentialsException)


def test_injected_502_is_forge_error(fake_github, make_forge):
    pr = fake_github.add_pull()
    forge = make_forge()
    forge.upsert_sticky_comment(pr, "first")
    fake_github.fail_next(1, status=502, method="PATCH")
    with pytest.raises(ForgeError, match=r"HTTP 502 Server Error \(GitHub is failing"):
        forge.upsert_sticky_comment(pr, "second")


def test_injected_502_is_retried_by_the_default_retry_for_gets(fake_github):
    """The production retry recovers from a transient 502 on a GET (but not on a POST)."""
    pr = fake_github.add_pull()
    forge = GitHubForge("o/r", "ghp_bot_token_for_tests", fake_github.base_url,
                        retry=default_retry().new(backoff_factor=0),
                        seconds_between_requests=None, seconds_between_writes=None)
    fake_github.fail_next(2, status=502, method="GET", path=r"/pulls/\d+$")
    assert forge.pr_head_sha(pr) == fake_github.pull("o/r", pr).head_sha
    assert fake_github.count("GET", r"/pulls/\d+$") == 3

    fake_github.fail_next(1, status=502, method="POST")
    with pytest.raises(ForgeError, match="HTTP 502"):
        forge.upsert_sticky_comment(pr, "body")
    assert fake_github.count("POST") == 1  # never retried: it might have been done
    assert fake_github.comments(number=pr) == []


def test_connection_refused_on_a_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens there now.
    forge = GitHubForge("o/r", "t", f"http://127.0.0.1:{port}", retry=None,
                        seconds_between_requests=None, seconds_between_writes=None, timeout=2)
    with pytest.raises(DependencyError) as info:
        forge.get_pr(1)
    err = info.value
    assert isinstance(err, ForgeUnreachable) and err.exit_code == 3
    assert str(err) == (f"GitHub: read pull request #1 failed: cannot reach "
                        f"http://127.0.0.1:{port}: connection refused")


def test_a_dropped_connection_is_unreachable(fake_github, make_forge):
    fake_github.drop_next(1, path="^/repos/o/r$")
    with pytest.raises(ForgeUnreachable, match="closed without an answer"):
        make_forge().find_open_pr("x")


def test_a_slow_server_times_out(fake_github, make_forge):
    fake_github.delay_next(1.6, path="^/repos/o/r$")
    with pytest.raises(ForgeUnreachable, match="timed out"):
        make_forge(timeout=1).find_open_pr("x")


def test_missing_pr_is_not_found(fake_github, make_forge):
    with pytest.raises(NotFound) as info:
        make_forge().upsert_sticky_comment(42, "body")
    assert info.value.exit_code == 2
    assert "pull request #42 in o/r not found (HTTP 404)" in str(info.value)
    assert fake_github.count("POST") == 0


def test_an_issue_is_not_a_pr(fake_github, make_forge):
    number = fake_github.add_issue()
    with pytest.raises(NotFound):
        make_forge().get_pr(number)


def test_unknown_commit_is_not_found(fake_github, make_forge):
    with pytest.raises(NotFound, match="commit"):
        make_forge().set_commit_status("a" * 40, "success", "mlreg/gate", "ok")


def test_missing_repository_is_a_forge_error_with_a_hint(fake_github, make_forge):
    with pytest.raises(ForgeAPIError) as info:
        make_forge(repo="o/nope").get_pr(1)
    assert info.value.exit_code == 3
    assert "repository o/nope does not exist, or the token cannot see it" in str(info.value)


def test_read_only_token_is_403(make_forge):
    with FakeGitHub(readonly_tokens={"ghp_ro"}, tokens={"ghp_ro": "forker"}) as fake:
        fake.add_repo("o/r")
        pr = fake.add_pull()
        forge = GitHubForge("o/r", "ghp_ro", fake.base_url, retry=None,
                            seconds_between_requests=None, seconds_between_writes=None)
        with pytest.raises(ForgeAPIError, match="HTTP 403 Resource not accessible by integration"):
            forge.upsert_sticky_comment(pr, "body")


def test_the_token_never_appears_in_errors_or_repr(fake_github, make_forge):
    secret = "ghp_SECRET_never_printed"
    forge = make_forge(secret)
    with pytest.raises(ForgeError) as info:
        forge.get_pr(1)
    assert secret not in str(info.value) and secret not in repr(forge)
    assert secret not in str(info.value.to_dict())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repo": "not-a-repo", "token": "t"}, "owner/name"),
        ({"repo": "o/r", "token": " "}, "no GitHub token"),
        ({"repo": "o/r", "token": "t", "per_page": 0}, "per_page"),
    ],
)
def test_bad_construction_is_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        GitHubForge(**kwargs)


def test_from_env_reads_the_actions_variables(fake_github):
    env = {"GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": "ghp_bot_token_for_tests",
           "GITHUB_API_URL": fake_github.base_url}
    forge = GitHubForge.from_env(env, retry=None, seconds_between_requests=None,
                                 seconds_between_writes=None)
    assert forge.base_url == fake_github.base_url and forge.repo_name == "o/r"
    assert forge.bot_login() == "mlreg-bot"
    assert GitHubForge.from_env({"GITHUB_REPOSITORY": "a/b", "GH_TOKEN": "x"}).base_url == (
        "https://api.github.com")
    with pytest.raises(InputError, match="GITHUB_REPOSITORY"):
        GitHubForge.from_env({"GITHUB_TOKEN": "x"})
    with pytest.raises(InputError, match="GITHUB_TOKEN"):
        GitHubForge.from_env({"GITHUB_REPOSITORY": "a/b"})
