"""Pull requests and commit statuses through GitHubForge against the fake GitHub."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fakegithub.server import BOT_TOKEN, FakeGitHub
from mlreg.errors import ForgeError, InputError
from mlreg.forge import GitHubForge, PullRequestInfo, PullRequestRef, Review


def test_open_pr_is_idempotent(fake_github, make_forge):
    fake_github.set_ref("o/r", "promote/fraud-127")
    forge = make_forge()

    first = forge.open_pr("main", "promote/fraud-127", "Promote fraud 127", "body")
    again = forge.open_pr("main", "promote/fraud-127", "Promote fraud 127 (rerun)", "other")

    assert isinstance(first, PullRequestRef) and first == again
    number, url = first
    assert url.endswith(f"/o/r/pull/{number}")
    assert fake_github.count("POST", "/pulls$") == 1
    pr = fake_github.pull("o/r", number)
    assert (pr.title, pr.body, pr.head_ref, pr.base_ref, pr.user) == (
        "Promote fraud 127", "body", "promote/fraud-127", "main", "mlreg-bot")


def test_open_pr_after_the_old_one_merged_opens_a_new_one(fake_github, make_forge):
    fake_github.set_ref("o/r", "promote/x")
    forge = make_forge()
    first, _ = forge.open_pr("main", "promote/x", "t", "b")
    fake_github.merge_pull("o/r", first)
    fake_github.set_ref("o/r", "promote/x")  # the branch moves on
    second, _ = forge.open_pr("main", "promote/x", "t", "b")
    assert second != first


def test_open_pr_race_returns_the_pr_a_racing_run_opened(fake_github, make_forge):
    fake_github.set_ref("o/r", "promote/y")
    numbers: list[int] = []
    fake_github.before("POST", "/pulls$", lambda fake: numbers.append(
        fake.add_pull(head="promote/y", user="mlreg-bot")))
    number, _ = make_forge().open_pr("main", "promote/y", "t", "b")
    assert number == numbers[0]
    assert len(fake_github.requests_matching("POST", "/pulls$")) == 1


def test_open_pr_for_a_missing_branch_is_a_422_forge_error(make_forge):
    with pytest.raises(ForgeError, match="HTTP 422 Validation Failed: PullRequest head invalid"):
        make_forge().open_pr("main", "no-such-branch", "t", "b")


def test_open_pr_needs_a_title(make_forge):
    with pytest.raises(InputError, match="title"):
        make_forge().open_pr("main", "x", " ", "b")


def test_find_open_pr_filters_by_owner_branch_and_state(fake_github, make_forge):
    closed = fake_github.add_pull(head="feat")
    fake_github.close_pull("o/r", closed)
    fork = fake_github.add_pull(head="feat", head_owner="forker")
    mine = fake_github.add_pull(head="feat")
    forge = make_forge()

    found = forge.find_open_pr("feat")
    assert isinstance(found, PullRequestInfo) and found.number == mine
    assert forge.find_open_pr("forker:feat").number == fork
    assert forge.find_open_pr("other") is None
    assert forge.find_open_pr("feat", base="release") is None
    assert fake_github.requests_matching("GET", "/pulls$")[0].query == {
        "state": "open", "head": "o:feat", "per_page": "100"}


def test_get_pr_and_head_sha_follow_pushes(fake_github, make_forge):
    pr = fake_github.add_pull(head="feat", title="Promote")
    forge = make_forge()
    info = forge.get_pr(pr)
    assert (info.number, info.state, info.title, info.head_ref, info.base_ref, info.author,
            info.merged, info.head_repo) == (pr, "open", "Promote", "feat", "main", "alice",
                                            False, "o/r")
    fake_github.set_head_sha("o/r", pr, "c" * 40)
    assert forge.pr_head_sha(pr) == "c" * 40


def test_merged_pr_reads_as_merged(fake_github, make_forge):
    pr = fake_github.add_pull()
    fake_github.merge_pull("o/r", pr)
    info = make_forge().get_pr(pr)
    assert info.merged and info.state == "closed"


def test_reviews_and_files(fake_github, make_forge):
    pr = fake_github.add_pull(files=["models/fraud/127.yaml", "production.yaml"])
    when = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    fake_github.add_review("o/r", pr, user="carol", state="CHANGES_REQUESTED", submitted_at=when)
    fake_github.add_review("o/r", pr, user="dave", state="APPROVED")
    forge = make_forge()

    reviews = forge.pr_reviews(pr)
    assert reviews[0] == Review("carol", "CHANGES_REQUESTED", when)
    assert [(r.user, r.state) for r in reviews] == [("carol", "CHANGES_REQUESTED"),
                                                    ("dave", "APPROVED")]
    assert forge.pr_files(pr) == ["models/fraud/127.yaml", "production.yaml"]


def test_many_files_are_paginated(fake_github, make_forge):
    pr = fake_github.add_pull(files=[f"f{i:03}.yaml" for i in range(75)])
    assert len(make_forge(per_page=30).pr_files(pr)) == 75
    assert fake_github.count("GET", "/files$") == 3


def test_pulls_for_commit_finds_head_and_merge_commits(fake_github, make_forge):
    pr = fake_github.add_pull(head="feat")
    head = fake_github.pull("o/r", pr).head_sha
    forge = make_forge()
    assert [p.number for p in forge.pulls_for_commit(head)] == [pr]
    merge = fake_github.merge_pull("o/r", pr)
    (merged,) = forge.pulls_for_commit(merge)
    assert merged.number == pr and merged.merged
    lonely = fake_github.add_commit("o/r")
    assert forge.pulls_for_commit(lonely) == []


def test_commit_status_is_set(fake_github, make_forge):
    pr = fake_github.add_pull()
    sha = fake_github.pull("o/r", pr).head_sha
    forge = make_forge()
    forge.set_commit_status(sha, "pending", "mlreg/gate", "evaluating")
    forge.set_commit_status(sha, "failure", "mlreg/gate", "auc on slice 'new users' dropped " * 10,
                            target_url="https://ci.example/run/1")
    first, second = fake_github.statuses("o/r", sha)
    assert (first["state"], first["context"], first["description"], first["target_url"]) == (
        "pending", "mlreg/gate", "evaluating", None)
    assert second["state"] == "failure" and second["target_url"] == "https://ci.example/run/1"
    assert len(second["description"]) == 140 and second["description"].endswith("\u2026")
    assert second["creator"] == "mlreg-bot"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("a" * 40, "passed", "ctx", "d"), "state"),
        (("not a sha", "success", "ctx", "d"), "not a commit sha"),
        (("a" * 40, "success", "", "d"), "context"),
    ],
)
def test_commit_status_input_errors(fake_github, make_forge, args, match):
    with pytest.raises(InputError, match=match):
        make_forge().set_commit_status(*args)
    assert fake_github.requests == []


@pytest.mark.parametrize("pr", [0, -1, True, "5"])
def test_pr_numbers_are_checked(make_forge, pr):
    with pytest.raises(InputError, match="positive integer"):
        make_forge().get_pr(pr)


def test_ghes_prefix_works_end_to_end():
    with FakeGitHub(prefix="/api/v3") as fake:
        fake.add_repo("o/r")
        pr = fake.add_pull()
        for i in range(35):
            fake.add_comment("o/r", pr, f"c{i}")
        forge = GitHubForge("o/r", BOT_TOKEN, fake.base_url, retry=None, per_page=30,
                            seconds_between_requests=None, seconds_between_writes=None)
        assert fake.base_url.endswith("/api/v3")
        assert forge.upsert_sticky_comment(pr, "hello").action == "created"
        assert forge.upsert_sticky_comment(pr, "hello").action == "unchanged"
        assert forge.get_pr(pr).url == f"http://127.0.0.1:{fake.port}/o/r/pull/{pr}"
