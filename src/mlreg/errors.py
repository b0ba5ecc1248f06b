"""mlreg's error tree. The library raises these; only the CLI turns them into output.

    MlregError                      base; ``exit_code`` says how the CLI exits
    ├── InputError (2)              bad input: usage, files, names, records, policies
    │   ├── LoadError               a file cannot be read as strict YAML (file, line, fix)
    │   ├── SchemaError             a document violates its JSON Schema (every violation)
    │   ├── InvalidName             a model, version or service name outside the grammar
    │   ├── NotFound                a model, version, service or revision does not exist
    │   └── RegistryError           the registry is inconsistent or an operation is refused
    ├── CheckFailed (1)             a check ran and said no (gate failed, tampered artifact)
    │   └── IntegrityError          bytes do not match their recorded sha256 or size
    └── DependencyError (3)         something outside us is unreachable or failing
        ├── StoreError              object store (missing bucket, permission, timeout, 5xx)
        ├── GitError                the git binary failed in an unexpected way
        └── ForgeError              the forge (GitHub) API failed

Every error renders to one line: ``str(err)``. Subclasses keep structured fields so callers
(and the JSON output of the CLI) can use them without parsing the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MlregError",
    "InputError",
    "LoadError",
    "SchemaError",
    "Violation",
    "InvalidName",
    "NotFound",
    "RegistryError",
    "CheckFailed",
    "IntegrityError",
    "DependencyError",
    "StoreError",
    "GitError",
    "ForgeError",
]


class MlregError(Exception):
    """Base of every error mlreg raises on purpose."""

    exit_code = 2

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "message": str(self)}


class InputError(MlregError):
    """The input (a file, an argument, a name) is wrong; exit code 2."""

    exit_code = 2


class LoadError(InputError):
    """A file cannot be read as strict YAML.

    ``path`` and ``line`` locate the problem (line is 1-based, None when unknown); ``fix`` says
    what to do about it.
    """

    def __init__(
        self, path: str, problem: str, *, line: int | None = None, fix: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        self.fix = fix
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        text = f"{where}: {self.problem}"
        if self.field:
            text = f"{where}: field '{self.field}': {self.problem}"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text

    def to_dict(self) -> dict:
        return {
            "error": type(self).__name__, "message": str(self), "file": self.path,
            "line": self.line, "field": self.field, "fix": self.fix,
        }


@dataclass(frozen=True)
class Violation:
    """One schema violation: where (a JSON path like ``$.artifacts[0].sha256``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SchemaError(InputError):
    """A document violates its schema. ``violations`` holds every one, sorted by path."""

    def __init__(self, path: str, kind: str, violations: Sequence[Violation]) -> None:
        self.path = str(path)
        self.kind = kind
        self.violations = list(violations)
        shown = "; ".join(str(v) for v in self.violations[:20])
        more = len(self.violations) - 20
        if more > 0:
            shown += f"; ... and {more} more"
        n = len(self.violations)
        super().__init__(
            f"{self.path}: {n} schema violation{'s' if n != 1 else ''} ({kind}): {shown}"
        )

    def to_dict(self) -> dict:
        return {
            "error": type(self).__name__, "message": str(self), "file": self.path,
            "kind": self.kind,
            "violations": [{"path": v.path, "message": v.message} for v in self.violations],
        }


class InvalidName(InputError):
    """A model, version or service name does not match the name grammar."""


class NotFound(InputError):
    """A model, version, service, file or revision that does not exist."""


class RegistryError(InputError):
    """The registry is inconsistent, or an operation on it is refused."""


class CheckFailed(MlregError):
    """A check ran and failed; exit code 1."""

    exit_code = 1


class IntegrityError(CheckFailed):
    """Bytes do not match their recorded digest or size."""

    def __init__(self, uri: str, problem: str) -> None:
        self.uri = uri
        self.problem = problem
        super().__init__(f"{uri}: {problem}")


class DependencyError(MlregError):
    """Something mlreg depends on is unreachable or failing; exit code 3."""

    exit_code = 3


class StoreError(DependencyError):
    """The artifact/object store failed (missing bucket, permission denied, timeout, 5xx)."""


class GitError(DependencyError):
    """The git binary failed unexpectedly."""


class ForgeError(DependencyError):
    """The forge API (GitHub) failed."""
