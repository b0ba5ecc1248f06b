"""Facts about one Python interpreter: version, implementation, installed distributions.

Standard library only and free of mlreg imports, because the same source also runs inside
*another* interpreter (``mlreg capture --python venv/bin/python``, ``reproduce --python``) as
``python -c <this file>``, printing the facts as JSON.

The package list is what ``importlib.metadata`` sees on ``sys.path``: names normalized the PEP
503 way (``Scikit_Learn`` -> ``scikit-learn``), the first distribution of a name on the path
wins (the one ``import`` would load), and the digest is the sha256 of the sorted
``name==version`` lines, each ending in a newline.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re

_NORMALIZE = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return _NORMALIZE.sub("-", name).lower()


def installed_packages() -> dict[str, str]:
    """Normalized name -> version of every distribution importable here, sorted by name."""
    import importlib.metadata as md

    found: dict[str, str] = {}
    for dist in md.distributions():
        try:
            name = dist.metadata["Name"]
            version = dist.version
        except Exception:  # a broken dist-info folder: skip it rather than fail the probe
            continue
        if not name or version is None:
            continue
        found.setdefault(normalize(name), str(version))
    return dict(sorted(found.items()))


def packages_digest(packages: dict[str, str]) -> str:
    text = "".join(f"{name}=={version}\n" for name, version in sorted(packages.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def facts() -> dict:
    pkgs = installed_packages()
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "packages": {"sha256": packages_digest(pkgs), "count": len(pkgs), "list": pkgs},
    }


if __name__ == "__main__":
    print(json.dumps(facts()))
