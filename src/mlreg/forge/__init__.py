"""The forge: GitHub pull requests, comments and statuses behind a small interface.

``Forge`` is the protocol the rest of mlreg uses; ``GitHubForge`` implements it with PyGithub
(imported lazily: importing this package does not import PyGithub or requests), and
``InMemoryForge`` without any network, for tests and examples. PyGithub and requests exceptions
are translated at this boundary (``mlreg.forge.errors.map_github_error``): API failures raise
``ForgeError`` (exit 3), a pull request or commit that does not exist raises ``NotFound`` (exit 2).
"""

from mlreg.forge.base import (
    COMMIT_STATES,
    DEFAULT_MARKER,
    CommentOutcome,
    Forge,
    PullRequestInfo,
    PullRequestRef,
    Review,
)
from mlreg.forge.errors import ForgeAPIError, ForgeNotFound, ForgeUnreachable, map_github_error
from mlreg.forge.github_forge import DEFAULT_BASE_URL, GitHubForge
from mlreg.forge.memory import InMemoryForge

__all__ = [
    "Forge",
    "GitHubForge",
    "InMemoryForge",
    "CommentOutcome",
    "PullRequestInfo",
    "PullRequestRef",
    "Review",
    "DEFAULT_MARKER",
    "DEFAULT_BASE_URL",
    "COMMIT_STATES",
    "ForgeAPIError",
    "ForgeNotFound",
    "ForgeUnreachable",
    "map_github_error",
]
