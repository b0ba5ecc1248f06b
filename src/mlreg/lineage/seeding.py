"""Seed every RNG in one call, and record what was seeded and how deterministic the run is.

``seed_everything(1234)`` seeds Python's ``random``, NumPy's legacy global RNG, and PyTorch and
TensorFlow when they are importable (``frameworks=`` narrows that, e.g. to avoid importing
TensorFlow in a PyTorch job). With ``deterministic=True`` (the default) it also asks the
frameworks for deterministic kernels: ``torch.use_deterministic_algorithms(True)``,
``cudnn.deterministic = True``, ``cudnn.benchmark = False``, ``CUBLAS_WORKSPACE_CONFIG=:4096:8``
when unset (cuBLAS needs it for reproducible results; it only takes effect before CUDA starts),
and ``tf.config.experimental.enable_op_determinism()``.

``PYTHONHASHSEED`` cannot be changed for the running interpreter, so it is recorded as found
(null: hash randomization was on, and the order of sets of strings may vary between runs).
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["DETERMINISM_ENV", "seed_everything", "determinism_env"]

#: Environment variables that change numeric results; recorded and compared by reproduce.
DETERMINISM_ENV = ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "TF_DETERMINISTIC_OPS",
                   "TF_CUDNN_DETERMINISTIC")
_FRAMEWORKS = ("numpy", "torch", "tensorflow")


def determinism_env(environ: Any = None) -> dict[str, str | None]:
    """The determinism variables as set in ``environ`` (default: this process); None = unset."""
    env = os.environ if environ is None else environ
    return {name: env.get(name) for name in DETERMINISM_ENV}


def _importable(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def seed_everything(seed: int, *, deterministic: bool = True,
                    frameworks: Iterable[str] | None = None) -> tuple[dict, dict]:
    """Seed every available RNG with ``seed``; return ``(seed values, determinism settings)``.

    ``frameworks`` limits the optional ones (``numpy``, ``torch``, ``tensorflow``); the default
    is every one that is importable.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        from mlreg.errors import InputError

        raise InputError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    wanted = set(_FRAMEWORKS if frameworks is None else frameworks)
    unknown = wanted - set(_FRAMEWORKS)
    if unknown:
        from mlreg.errors import InputError

        raise InputError(f"unknown framework(s) {sorted(unknown)}; known: {list(_FRAMEWORKS)}")
    values: dict[str, int] = {}
    flags: dict[str, Any] = {}

    random.seed(seed)
    values["python"] = seed

    if "numpy" in wanted and _importable("numpy"):
        import numpy as np

        np.random.seed(seed)
        values["numpy"] = seed

    if "torch" in wanted and _importable("torch"):
        if deterministic and not os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        import torch

        torch.manual_seed(seed)  # also seeds every CUDA device, lazily
        values["torch"] = seed
        if deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        flags["torch.use_deterministic_algorithms"] = bool(
            torch.are_deterministic_algorithms_enabled())
        flags["torch.backends.cudnn.deterministic"] = bool(torch.backends.cudnn.deterministic)
        flags["torch.backends.cudnn.benchmark"] = bool(torch.backends.cudnn.benchmark)

    if "tensorflow" in wanted and _importable("tensorflow"):
        import tensorflow as tf

        tf.random.set_seed(seed)
        values["tensorflow"] = seed
        if deterministic:
            enable = getattr(tf.config.experimental, "enable_op_determinism", None)
            if enable is not None:
                enable()
                flags["tf.config.experimental.enable_op_determinism"] = True
            else:  # TensorFlow < 2.8 reads the variable when ops are first built
                os.environ["TF_DETERMINISTIC_OPS"] = "1"

    flags = {**determinism_env(), **flags}
    return values, flags
