"""Pytest fixtures for the fake GitHub server.

Use them from any test directory by putting ``tests/`` on ``sys.path`` in that directory's
``conftest.py`` and importing them (see ``tests/forge/conftest.py``)::

    from fakegithub.plugin import fake_github, make_forge  # noqa: F401

``fake_github`` is a started ``FakeGitHub`` holding the repository ``o/r`` (branch ``main``), with
two tokens: ``BOT_TOKEN`` (login ``mlreg-bot``) and ``HUMAN_TOKEN`` (login ``alice``).
``make_forge(token=BOT_TOKEN, **kwargs)`` builds a ``GitHubForge`` on it with PyGithub's retries
and throttles off, so tests stay fast and deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fakegithub.server import BOT_TOKEN, FakeGitHub


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo("o/r")
        yield fake


@pytest.fixture
def make_forge(fake_github: FakeGitHub) -> Callable[..., Any]:
    from mlreg.forge import GitHubForge

    def make(token: str = BOT_TOKEN, *, repo: str = "o/r", **kwargs: Any) -> GitHubForge:
        kwargs.setdefault("retry", None)
        kwargs.setdefault("seconds_between_requests", None)
        kwargs.setdefault("seconds_between_writes", None)
        kwargs.setdefault("timeout", 5)
        return GitHubForge(repo, token, fake_github.base_url, **kwargs)

    return make
