"""The forge interface: both implementations satisfy it, behave alike, and the package is light."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import mlreg.forge
from mlreg.errors import InputError, NotFound
from mlreg.forge import DEFAULT_MARKER, Forge, GitHubForge, InMemoryForge


def test_both_implementations_satisfy_the_protocol():
    assert isinstance(InMemoryForge(), Forge)
    assert isinstance(GitHubForge("o/r", "t"), Forge)


def test_signatures_match_the_protocol():
    for name, proto in inspect.getmembers(Forge, inspect.isfunction):
        if name.startswith("_"):
            continue
        wanted = list(inspect.signature(proto).parameters)
        for impl in (GitHubForge, InMemoryForge):
            got = list(inspect.signature(getattr(impl, name)).parameters)
            assert got[: len(wanted)] == wanted, (impl.__name__, name)


def test_public_api_is_declared():
    for name in mlreg.forge.__all__:
        assert hasattr(mlreg.forge, name), name


def test_importing_the_forge_does_not_import_pygithub():
    code = (
        "import sys, mlreg.forge, mlreg.reports.markdown_safe\n"
        "mlreg.forge.GitHubForge('o/r', 'token')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('github', 'requests', "
        "'urllib3'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_memory_forge_sticky_comment_follows_the_same_rules():
    forge = InMemoryForge()
    pr = forge.add_pr()
    forged = forge.add_comment(pr, f"{DEFAULT_MARKER} fake", author="eve")
    older = forge.add_comment(pr, f"{DEFAULT_MARKER} run 1", author="mlreg-bot")
    newer = forge.add_comment(pr, f"{DEFAULT_MARKER} run 2", author="mlreg-bot")

    out = forge.upsert_sticky_comment(pr, "run 3")
    assert (out.action, out.comment_id, out.duplicates_removed) == ("updated", newer, 1)
    assert {c.id for c in forge.comments_on(pr)} == {forged, newer}
    assert forge.upsert_sticky_comment(pr, "run 3").action == "unchanged"
    assert older not in {c.id for c in forge.comments_on(pr)}


def test_memory_forge_prs_statuses_and_errors():
    forge = InMemoryForge()
    number, url = forge.open_pr("main", "promote/a", "Promote a", "body")
    assert forge.open_pr("main", "promote/a", "again", "body") == (number, url)
    assert forge.find_open_pr("promote/a").number == number
    assert forge.find_open_pr("other:promote/a") is None
    forge.add_review(number, "carol")
    assert [r.user for r in forge.pr_reviews(number)] == ["carol"]
    forge.merge(number, "m" * 40)
    assert forge.pulls_for_commit("m" * 40)[0].merged
    assert forge.find_open_pr("promote/a") is None
    forge.set_commit_status("a" * 40, "success", "mlreg/gate", "x" * 200)
    assert len(forge.statuses[0].description) == 140
    with pytest.raises(InputError):
        forge.set_commit_status("a" * 40, "ok", "mlreg/gate", "x")
    with pytest.raises(NotFound):
        forge.get_pr(99)
    with pytest.raises(NotFound):
        forge.upsert_sticky_comment(99, "x")


def test_both_forges_agree_on_a_sticky_sequence(fake_github, make_forge):
    """The same sequence of calls gives the same actions on GitHub (fake) and in memory."""
    memory = InMemoryForge()
    mpr = memory.add_pr()
    gpr = fake_github.add_pull()
    github = make_forge()
    memory.add_comment(mpr, f"{DEFAULT_MARKER} by a human", author="alice")
    fake_github.add_comment("o/r", gpr, f"{DEFAULT_MARKER} by a human", user="alice")
    for text in ["a", "a", "b", "b" * 70_000, "b" * 70_000, "c"]:
        m = memory.upsert_sticky_comment(mpr, text)
        g = github.upsert_sticky_comment(gpr, text)
        assert (m.action, m.truncated) == (g.action, g.truncated), text[:10]
