"""Helpers for error messages: "did you mean ...?" suggestions and column-not-found errors."""

from __future__ import annotations

from collections.abc import Iterable

from platform_core.errors import BadInputError


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The choice most similar to ``value`` (case-insensitive), or None if nothing is close."""
    import difflib  # only when an error is being worded, not at `import platform_core`

    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    match = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``'; did you mean "x"?'`` for the closest choice, or ``''`` when none is close."""
    best = closest(value, choices)
    return f'; did you mean "{best}"?' if best is not None else ""


def column_not_found(name: str, columns: Iterable[str], *, what: str = "column") -> BadInputError:
    """The error for an unknown column: names it, suggests the closest one, lists them all."""
    columns = list(columns)
    listed = ", ".join(columns) if columns else "none"
    return BadInputError(
        f'{what} "{name}" not found{did_you_mean(name, columns)} (columns: {listed})',
        column=name,
        columns=columns,
    )
