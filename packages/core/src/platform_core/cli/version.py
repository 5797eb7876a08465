"""The ``--version`` option every CLI has: the versions of the named distributions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import typer

__all__ = ["distribution_versions", "version_option"]


def distribution_versions(*names: str) -> dict[str, str]:
    """``{name: version}`` of installed distributions (``unknown`` for one that is not)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def version_option(
    *distributions: str,
    versions: Callable[[], Mapping[str, str]] | None = None,
    **labelled: str,
) -> Any:
    """A ``--version`` option printing ``<name> <version>`` lines, then exiting.

    Use as ``version: Annotated[bool, version_option(lake="platform-lake")] = False`` in a
    Typer callback (prints ``lake 0.1.0``); positional names print as themselves, and
    ``versions`` replaces the list (the gateway names every installed platform package).
    """

    def show(value: bool) -> None:
        if not value:
            return
        if versions is not None:
            found = dict(versions())
        else:
            found = distribution_versions(*distributions)
            for label, dist in labelled.items():
                found[label] = distribution_versions(dist)[dist]
        for name, number in found.items():
            typer.echo(f"{name} {number}")
        raise typer.Exit()

    return typer.Option(
        "--version", callback=show, is_eager=True, help="Print the version and exit."
    )
