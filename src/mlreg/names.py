"""Names and references: the grammar of model, version and service names, and URI hygiene.

Names become file paths (``models/<model>/<version>.yaml``) and git branch names, so the grammar is
strict: lower case (no two models that differ only in case on a case-insensitive file system),
ASCII letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit, no ``..``, at
most 64 characters. Versions must start with a digit, which keeps them apart from ``model.yaml``
and from the word ``latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from mlreg.errors import InputError, InvalidName

__all__ = [
    "NAME_PATTERN",
    "VERSION_PATTERN",
    "check_name",
    "check_version",
    "check_uri",
    "uri_problem",
    "natural_key",
    "Ref",
    "parse_ref",
]

NAME_PATTERN = r"^(?!.*\.\.)(?!.*\n)[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"
VERSION_PATTERN = r"^(?!.*\.\.)(?!.*\n)[0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)
_VERSION_RE = re.compile(VERSION_PATTERN)
_DIGITS = re.compile(r"(\d+)")

# Query parameters that carry a credential in a signed or token-bearing URL.
_SECRET_PARAMS = {
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid",
    "signature", "sig", "token", "access_token", "x-goog-signature", "x-goog-credential",
    "sv", "se", "password", "secret", "api_key", "apikey", "key",
}


def _name_problem(value: object, pattern: re.Pattern[str], what: str) -> str | None:
    if not isinstance(value, str):
        return f"{what} must be a string, got {type(value).__name__} {value!r}"
    if ".." in value:
        return f"{what} {value!r} contains '..'"
    if not pattern.fullmatch(value):
        if what == "version":
            return (f"{what} {value!r} is not a valid version: start with a digit, then "
                    "lower-case letters, digits, '.', '_' or '-' (at most 64 characters)")
        return (f"{what} {value!r} is not a valid name: lower-case letters, digits, '.', '_' "
                "or '-', starting and ending with a letter or digit (at most 64 characters)")
    return None


def check_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a valid model or service name, else raise InvalidName."""
    problem = _name_problem(value, _NAME_RE, what)
    if problem:
        raise InvalidName(problem)
    return value  # type: ignore[return-value]


def check_version(value: object) -> str:
    """Return ``value`` if it is a valid version, else raise InvalidName."""
    problem = _name_problem(value, _VERSION_RE, "version")
    if problem:
        raise InvalidName(problem)
    return value  # type: ignore[return-value]


def uri_problem(uri: str) -> str | None:
    """Say why ``uri`` must not be stored in the registry, or None when it is fine.

    Records are public to everyone who can read the repository and live forever in git history,
    so a URI must never embed a credential: no ``user:password@``, no signed-URL parameters.
    """
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        return f"not a valid URI ({exc})"
    if parts.password is not None or (parts.username is not None and parts.scheme not in ("",)):
        return "embeds credentials (user[:password]@host); keep secrets out of the registry"
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _SECRET_PARAMS:
            return (f"carries the credential parameter {key!r} (a signed or token URL); "
                    "store the plain object URI instead")
    return None


def check_uri(uri: str, where: str = "uri") -> str:
    problem = uri_problem(uri)
    if problem:
        raise InputError(f"{where}: {uri_problem_safe(uri)} {problem}")
    return uri


def uri_problem_safe(uri: str) -> str:
    """The URI with any password and query removed, safe to show in an error message."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = "***@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{parts.path}" + ("?..." if parts.query else "")


def natural_key(version: str) -> tuple:
    """Sort key giving natural order: 9 < 10 < 127, and 1.2 < 1.10."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in _DIGITS.split(version) if part != ""
    )


@dataclass(frozen=True)
class Ref:
    """A reference typed by a human or a script: ``fraud@127``, ``fraud@latest`` or a service."""

    model: str | None
    version: str | None  # a version, "latest", or None when the ref names a service
    service: str | None

    def __str__(self) -> str:
        if self.service:
            return self.service
        return f"{self.model}@{self.version}"


def parse_ref(text: str) -> Ref:
    """Parse ``MODEL@VERSION``, ``MODEL@latest`` or ``SERVICE``."""
    if "@" in text:
        model, _, version = text.partition("@")
        check_name(model, "model")
        if version != "latest":
            check_version(version)
        return Ref(model=model, version=version, service=None)
    check_name(text, "service")
    return Ref(model=None, version=None, service=text)
