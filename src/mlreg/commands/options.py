"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

registry_option = click.option(
    "-C", "--registry", "registry", default=".", show_default=True,
    type=click.Path(file_okay=False), envvar="MLREG_REGISTRY",
    help="Registry directory (a git working tree).",
)
rev_option = click.option(
    "--rev", default=None, metavar="REV",
    help="Read the registry at this git revision instead of the working tree (no checkout).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    return registry_option(rev_option(f))


def open_registry(path: str, rev: str | None = None):  # noqa: ANN201 - Registry, lazily imported
    from mlreg.registry import Registry

    return Registry.open(path, rev)
