"""The sticky PR comment, end to end through PyGithub against the fake GitHub."""

from __future__ import annotations

import pytest

from fakegithub.server import BOT_LOGIN, HUMAN_LOGIN, HUMAN_TOKEN, FakeGitHub
from mlreg.errors import InputError
from mlreg.forge import DEFAULT_MARKER
from mlreg.forge.base import ExistingComment, plan_sticky
from mlreg.reports.markdown_safe import GITHUB_BODY_LIMIT, text_length

M = DEFAULT_MARKER
COMMENT_WRITES = r"/issues/(\d+/)?comments"


def body(text: str) -> str:
    return f"{M}\n## mlreg gate\n{text}\n"


def test_first_run_creates_second_is_unchanged_third_edits_in_place(fake_github, make_forge):
    pr = fake_github.add_pull(head="promote-fraud")
    forge = make_forge()

    first = forge.upsert_sticky_comment(pr, body("all gates pass"))
    assert first.action == "created"
    assert [c["body"] for c in fake_github.comments(number=pr)] == [body("all gates pass")]
    assert fake_github.comments(number=pr)[0]["user"] == BOT_LOGIN
    assert first.url.endswith(f"/o/r/pull/{pr}#issuecomment-{first.comment_id}")

    fake_github.clear_log()
    second = forge.upsert_sticky_comment(pr, body("all gates pass"))
    assert (second.action, second.comment_id) == ("unchanged", first.comment_id)
    assert fake_github.count("PATCH") == 0
    assert fake_github.count("POST") == 0

    third = forge.upsert_sticky_comment(pr, body("auc dropped"))
    assert (third.action, third.comment_id) == ("updated", first.comment_id)
    assert fake_github.count("PATCH", COMMENT_WRITES) == 1
    assert [c["body"] for c in fake_github.comments(number=pr)] == [body("auc dropped")]


def test_marker_is_added_when_the_body_lacks_it(fake_github, make_forge):
    pr = fake_github.add_pull()
    make_forge().upsert_sticky_comment(pr, "no marker here")
    (comment,) = fake_github.comments(number=pr)
    assert comment["body"].startswith(M + "\n") and comment["body"].endswith("no marker here")


def test_a_humans_comment_with_the_marker_is_left_alone(fake_github, make_forge):
    pr = fake_github.add_pull()
    forged = fake_github.add_comment("o/r", pr, body("FAKE: all gates pass"), user=HUMAN_LOGIN)

    outcome = make_forge().upsert_sticky_comment(pr, body("auc dropped"))

    assert outcome.action == "created" and outcome.comment_id != forged
    by_id = {c["id"]: c for c in fake_github.comments(number=pr)}
    assert by_id[forged]["body"] == body("FAKE: all gates pass")
    assert by_id[outcome.comment_id]["user"] == BOT_LOGIN
    assert fake_github.count("DELETE") == 0


def test_the_bots_own_comment_without_the_marker_is_left_alone(fake_github, make_forge):
    pr = fake_github.add_pull()
    other = fake_github.add_comment("o/r", pr, "a different bot message", user=BOT_LOGIN)
    outcome = make_forge().upsert_sticky_comment(pr, body("x"))
    assert outcome.action == "created"
    assert other in {c["id"] for c in fake_github.comments(number=pr)}


def test_duplicates_from_a_race_newest_is_edited_older_deleted(fake_github, make_forge):
    pr = fake_github.add_pull()
    older = fake_github.add_comment("o/r", pr, body("run 1"), user=BOT_LOGIN)
    human = fake_github.add_comment("o/r", pr, "LGTM", user=HUMAN_LOGIN)
    newer = fake_github.add_comment("o/r", pr, body("run 2"), user=BOT_LOGIN)

    outcome = make_forge().upsert_sticky_comment(pr, body("run 3"))

    assert (outcome.action, outcome.comment_id, outcome.duplicates_removed) == (
        "updated", newer, 1)
    remaining = {c["id"]: c["body"] for c in fake_github.comments(number=pr)}
    assert remaining == {human: "LGTM", newer: body("run 3")}
    assert older not in remaining


def test_a_comment_created_concurrently_is_cleaned_up_after_create(fake_github, make_forge):
    pr = fake_github.add_pull()
    racer: list[int] = []

    def other_run_posts_first(fake: FakeGitHub) -> None:
        racer.append(fake.add_comment("o/r", pr, body("same result"), user=BOT_LOGIN))

    # The other run posts between our listing and our POST.
    fake_github.before("POST", rf"/issues/{pr}/comments$", other_run_posts_first)
    outcome = make_forge().upsert_sticky_comment(pr, body("same result"))

    ours = [c for c in fake_github.comments(number=pr) if c["user"] == BOT_LOGIN]
    assert len(ours) == 1, "the PR must converge on one sticky comment"
    assert outcome.comment_id == ours[0]["id"] and racer[0] not in {c["id"] for c in ours}
    assert (outcome.action, outcome.duplicates_removed) == ("created", 1)


def test_a_duplicate_already_deleted_by_the_other_run_is_not_an_error(fake_github, make_forge):
    pr = fake_github.add_pull()
    older = fake_github.add_comment("o/r", pr, body("a"), user=BOT_LOGIN)
    newer = fake_github.add_comment("o/r", pr, body("b"), user=BOT_LOGIN)

    def other_run_deletes(fake: FakeGitHub) -> None:
        fake.comments_by_id.pop(older)

    fake_github.before("DELETE", rf"/comments/{older}$", other_run_deletes)
    outcome = make_forge().upsert_sticky_comment(pr, body("c"))
    assert (outcome.comment_id, outcome.duplicates_removed) == (newer, 0)
    assert [c["id"] for c in fake_github.comments(number=pr)] == [newer]


def test_pagination_finds_the_sticky_comment_after_120_others(fake_github, make_forge):
    pr = fake_github.add_pull()
    for i in range(120):
        fake_github.add_comment("o/r", pr, f"chatter {i}", user=HUMAN_LOGIN)
    sticky = fake_github.add_comment("o/r", pr, body("old"), user=BOT_LOGIN)
    forge = make_forge(per_page=30)

    outcome = forge.upsert_sticky_comment(pr, body("new"))

    assert (outcome.action, outcome.comment_id) == ("updated", sticky)
    pages = fake_github.requests_matching("GET", rf"/issues/{pr}/comments$")
    assert len(pages) == 5  # 121 comments, 30 a page, followed through Link rel="next"
    assert [r.query.get("page", "1") for r in pages] == ["1", "2", "3", "4", "5"]
    assert fake_github.count("POST", COMMENT_WRITES) == 0


def test_oversized_body_is_truncated_keeping_the_marker(fake_github, make_forge):
    pr = fake_github.add_pull()
    huge = M + "\n| slice | auc |\n|---|---|\n" + "| s | 0.9 |\n" * 10_000
    outcome = make_forge().upsert_sticky_comment(pr, huge)
    (comment,) = fake_github.comments(number=pr)
    assert outcome.truncated
    assert M in comment["body"] and len(comment["body"]) <= GITHUB_BODY_LIMIT
    assert "truncated" in comment["body"].lower()
    # Rerunning with the same oversized body is recognised as unchanged.
    again = make_forge().upsert_sticky_comment(pr, huge)
    assert again.action == "unchanged"


def test_integration_token_falls_back_to_github_actions_bot():
    with FakeGitHub(integration_tokens={"ghs_actions": "github-actions[bot]"}) as fake:
        fake.add_repo("o/r")
        pr = fake.add_pull()
        old = fake.add_comment("o/r", pr, body("old"), user="github-actions[bot]")
        from mlreg.forge import GitHubForge

        forge = GitHubForge("o/r", "ghs_actions", fake.base_url, retry=None,
                            seconds_between_requests=None, seconds_between_writes=None)
        outcome = forge.upsert_sticky_comment(pr, body("new"))
        assert (outcome.action, outcome.comment_id) == ("updated", old)
        assert fake.requests_matching("GET", "^/user$")[0].status == 403


def test_explicit_bot_login_skips_get_user(fake_github, make_forge):
    pr = fake_github.add_pull()
    make_forge(HUMAN_TOKEN, bot_login=HUMAN_LOGIN).upsert_sticky_comment(pr, body("x"))
    assert fake_github.count("GET", "^/user$") == 0
    assert fake_github.comments(number=pr)[0]["user"] == HUMAN_LOGIN


@pytest.mark.parametrize("marker", ["mlreg", "<!-- a -- b -->", "<!---->", "<!-- x --> y"])
def test_a_marker_must_be_one_html_comment(fake_github, make_forge, marker):
    with pytest.raises(InputError, match="marker"):
        make_forge().upsert_sticky_comment(1, "body", marker=marker)
    assert fake_github.requests == []


def test_empty_body_is_refused(make_forge):
    with pytest.raises(InputError, match="empty"):
        make_forge().upsert_sticky_comment(1, "  \n")


def test_plan_sticky_is_case_insensitive_on_login_and_orders_by_id():
    comments = [ExistingComment(7, "MLReg-Bot", f"{M} a"), ExistingComment(3, "mlreg-bot", f"{M} b"),
                ExistingComment(9, "eve", f"{M} c")]
    plan = plan_sticky(comments, bot_login="mlreg-bot", marker=M, body=f"{M} a")
    assert (plan.action, plan.target, plan.delete) == ("unchanged", 7, (3,))


def test_plan_sticky_treats_crlf_as_unchanged():
    plan = plan_sticky([ExistingComment(1, "bot", f"{M}\r\nx\r\n")], bot_login="bot", marker=M,
                       body=f"{M}\nx\n")
    assert plan.action == "unchanged"


def test_text_length_counts_astral_characters_twice():
    assert text_length("a\U0001f600") == 3


def test_a_racer_posting_after_us_wins_and_our_copy_goes(fake_github, make_forge):
    pr = fake_github.add_pull()
    racer: list[int] = []

    def racer_posts(fake: FakeGitHub) -> None:
        racer.append(fake.add_comment("o/r", pr, body("racer's result"), user=BOT_LOGIN))

    # After our POST, before we look again, the other run posts its own copy (a newer id).
    fake_github.before("POST", rf"/issues/{pr}/comments$", lambda fake: fake.before(
        "GET", rf"/issues/{pr}/comments$", racer_posts))
    outcome = make_forge().upsert_sticky_comment(pr, body("our result"))

    (only,) = fake_github.comments(number=pr)
    assert only["id"] == racer[0] == outcome.comment_id
    assert only["body"] == body("our result")  # we ran last, so our result stands
    assert (outcome.action, outcome.duplicates_removed) == ("updated", 1)


def test_a_sticky_comment_deleted_under_us_is_recreated(fake_github, make_forge):
    pr = fake_github.add_pull()
    old = fake_github.add_comment("o/r", pr, body("old"), user=BOT_LOGIN)
    fake_github.before("PATCH", rf"/comments/{old}$", lambda fake: fake.comments_by_id.pop(old))
    outcome = make_forge().upsert_sticky_comment(pr, body("new"))
    assert outcome.action == "created" and outcome.comment_id != old
    assert [c["body"] for c in fake_github.comments(number=pr)] == [body("new")]
