"""The error exit of every CLI: one line on stderr, an exit code by kind, no traceback.

An expected failure (a :class:`PlatformError`, or an ``OSError`` a command names) is a
message for the user, not a crash: ``error: <message>`` on stderr and the code of its kind.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Final, NoReturn

import typer

from platform_core.errors import PlatformError

__all__ = ["EXIT_CODES", "exit_code", "expected_errors", "fail", "warn"]

EXIT_CODES: Final[dict[str, int]] = {
    "internal": 1,
    "bad_input": 2,
    "unauthorized": 3,
    "forbidden": 3,
    "not_found": 4,
    "conflict": 5,
    "over_budget": 6,
    "unavailable": 7,
    "corrupt_data": 8,
}
"""Exit code per error kind; 2 is also what Typer gives a bad option, 130 is Ctrl-C."""


def exit_code(error: BaseException) -> int:
    """The exit code for ``error``: its kind's, 1 for anything else."""
    kind = getattr(error, "kind", "internal")
    return EXIT_CODES.get(kind if isinstance(kind, str) else "internal", 1)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def warn(message: str) -> None:
    """Print ``message`` as one line on stderr (no markup: it is printed as is)."""
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)


def fail(error: BaseException | str, code: int | None = None) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with ``code`` (default: by kind)."""
    if isinstance(error, str):
        message, default = error, 1
    else:
        message = error.message if isinstance(error, PlatformError) else str(error)
        if isinstance(error, OSError) and error.strerror and error.filename:
            message = f"{error.filename}: {error.strerror}"
        default = exit_code(error)
    warn(message)
    raise typer.Exit(default if code is None else code)


@contextlib.contextmanager
def expected_errors(*also: type[BaseException]) -> Iterator[None]:
    """Turn a ``PlatformError`` (and the ``also`` types) raised inside into :func:`fail`."""
    caught: tuple[type[BaseException], ...] = (PlatformError, *also)
    try:
        yield
    except caught as exc:
        fail(exc)
