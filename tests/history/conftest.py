"""Fixtures for the history tests: the scripted Uber + Netflix history, and the fake GitHub."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from historykit import build_story  # noqa: E402

from fakegithub.plugin import fake_github, make_forge  # noqa: E402, F401


class Story:
    def __init__(self, path: Path, commits: dict[str, str]) -> None:
        self.path = path
        self.commits = commits
        self.root = str(path)


@pytest.fixture(scope="session")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    """The scripted history (historykit), built once; tests must not change it."""
    path = tmp_path_factory.mktemp("story") / "registry"
    return Story(path, build_story(path))


@pytest.fixture
def fresh_story(tmp_path: Path) -> Story:
    """The same history, built for one test that changes it."""
    path = tmp_path / "registry"
    return Story(path, build_story(path))
