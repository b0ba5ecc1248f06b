"""mlreg: a git-native model registry.

The package import stays light: heavy modules (numpy, pandas, pyarrow, PyGithub) are imported
by the submodules that need them, never here.
"""

from mlreg.errors import (
    CheckFailed,
    DependencyError,
    InputError,
    MlregError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "MlregError",
    "InputError",
    "CheckFailed",
    "DependencyError",
]
