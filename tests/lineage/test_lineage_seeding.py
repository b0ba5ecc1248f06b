"""seed_everything: every available RNG seeded and recorded; the package imports stay light."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest

import mlreg.lineage
from mlreg.errors import InputError
from mlreg.lineage import seed_everything
from mlreg.lineage.seeding import DETERMINISM_ENV


def draw() -> tuple[float, float]:
    return random.random(), float(np.random.rand())


def test_same_seed_same_draws():
    seed_everything(1234)
    first = draw()
    seed_everything(1234)
    assert draw() == first
    seed_everything(99)
    assert draw() != first


def test_what_is_recorded(monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    values, flags = seed_everything(7)
    assert values["python"] == 7 and values["numpy"] == 7
    for fw in ("torch", "tensorflow"):
        assert (fw in values) == (fw in sys.modules or _importable(fw))
    assert flags["PYTHONHASHSEED"] == "0"
    assert set(DETERMINISM_ENV) <= set(flags)
    values, _ = seed_everything(7, frameworks=[])
    assert values == {"python": 7}


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, True, "7"])
def test_bad_seeds(bad):
    with pytest.raises(InputError):
        seed_everything(bad)
    with pytest.raises(InputError, match="unknown framework"):
        seed_everything(1, frameworks=["jax"])


def test_public_api_is_declared():
    for name in mlreg.lineage.__all__:
        assert getattr(mlreg.lineage, name) is not None


def test_importing_lineage_stays_light():
    code = ("import sys, mlreg.lineage, mlreg.commands.capture; "
            "print(sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'sklearn', 'jsonschema', "
            "'fsspec', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
