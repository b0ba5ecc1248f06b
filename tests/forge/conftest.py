"""Makes ``tests/fakegithub`` importable and offers its fixtures to the forge tests."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from fakegithub.plugin import fake_github, make_forge  # noqa: E402, F401
