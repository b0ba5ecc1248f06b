"""Fixtures for the PR-flow tests: real git repositories and the fake GitHub server."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
_TESTS = str(Path(__file__).resolve().parents[1])
for p in (_TESTS, _HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

from flowkit import Flow  # noqa: E402

from fakegithub.plugin import fake_github, make_forge  # noqa: E402, F401
from fakegithub.server import BOT_TOKEN, FakeGitHub  # noqa: E402


@pytest.fixture
def flow(tmp_path: Path) -> Flow:
    """The example registry in a bare origin and a working clone (no forge configured)."""
    return Flow(tmp_path)


@pytest.fixture
def no_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """GitHubForge built by the library (promote, report) without PyGithub's sleeps/retries."""
    from mlreg.gitops import forgeconf

    monkeypatch.setattr(forgeconf, "FORGE_OPTIONS", {
        "retry": None, "seconds_between_requests": None, "seconds_between_writes": None,
        "timeout": 5})


@pytest.fixture
def forge_flow(tmp_path: Path, fake_github: FakeGitHub, no_throttle: None,  # noqa: F811
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    """A flow whose mlreg.yaml names the fake GitHub as its forge; the fake's refs follow the
    bare origin (synced just before every pull-request request, as a push would)."""
    f = Flow(tmp_path)
    settings = f.work / "mlreg.yaml"
    settings.write_text(settings.read_text() + (
        f"forge:\n  type: github\n  repo: o/r\n  api_url: {fake_github.base_url}\n"
        "  token_env: MLREG_TEST_TOKEN\n"))
    f.git("commit", "-q", "-am", "forge: the fake GitHub")
    f.git("push", "-q", "origin", "main")
    monkeypatch.setenv("MLREG_TEST_TOKEN", BOT_TOKEN)

    def sync(fake: FakeGitHub) -> None:
        for branch, sha in f.refs().items():
            fake.set_ref("o/r", branch, sha)

    sync(fake_github)
    fake_github.before(None, r"/pulls", sync, times=10_000)
    f.fake = fake_github  # type: ignore[attr-defined]
    yield f


@pytest.fixture
def sync_refs(forge_flow: Flow) -> Callable[[], None]:
    def sync() -> None:
        for branch, sha in forge_flow.refs().items():
            forge_flow.fake.set_ref("o/r", branch, sha)  # type: ignore[attr-defined]
    return sync
