"""Which forge promote, rollback and report talk to, from ``mlreg.yaml`` and the environment.

``mlreg.yaml``::

    forge:
      type: github
      repo: acme/model-registry
      api_url: https://ghe.example.com/api/v3     # optional: GitHub Enterprise Server
      token_env: GITHUB_TOKEN                     # optional: where the token is

No ``forge:`` or no token in the named variable means no forge: promote and rollback stop after
the local branch, commit and push, and say how to open the pull request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from mlreg.forge.github_forge import DEFAULT_BASE_URL

__all__ = ["forge_from_settings", "web_url", "FORGE_OPTIONS"]

#: Extra keyword arguments for GitHubForge (tests turn off PyGithub's throttles and retries).
FORGE_OPTIONS: dict[str, Any] = {}


def forge_from_settings(settings: Mapping[str, Any], env: Mapping[str, str]
                        ) -> tuple[Any | None, str]:
    """(a GitHubForge or None, one line saying which forge is used or why none)."""
    conf = settings.get("forge") or {}
    if not conf:
        return None, "no forge is configured in mlreg.yaml (forge: {type: github, repo: O/R})"
    token_env = conf.get("token_env") or "GITHUB_TOKEN"
    token = env.get(token_env, "").strip()
    if not token:
        return None, f"no token in ${token_env} for the forge {conf.get('repo')}"
    from mlreg.forge import GitHubForge

    base_url = conf.get("api_url") or DEFAULT_BASE_URL
    forge = GitHubForge(conf["repo"], token, base_url, **FORGE_OPTIONS)
    return forge, f"GitHub {conf['repo']} at {base_url}"


def web_url(settings: Mapping[str, Any]) -> str | None:
    """The web root of the forge's repository (https://github.com/o/r), or None."""
    conf = settings.get("forge") or {}
    if not conf.get("repo"):
        return None
    api = (conf.get("api_url") or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(api)
    host = parts.netloc
    if host == "api.github.com":
        host = "github.com"
    path = parts.path
    if path.endswith("/api/v3"):
        path = path[: -len("/api/v3")]
    return f"{parts.scheme}://{host}{path}/{conf['repo']}"
