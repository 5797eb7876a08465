"""``new_app``: the Typer app every CLI of the platform starts from.

Help and usage errors are click's plain text, not rich panels: a boolean flag reads
``--upload / --no-upload`` (Typer 0.29's rich panels print ``<bool>`` beside every flag,
``--help`` included), and ``--help`` never imports rich (with its markdown and traceback
modules, the larger part of a CLI's start-up). Rich stays for tables and progress bars.
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["new_app"]


def new_app(**options: Any) -> typer.Typer:
    """A ``typer.Typer(**options)`` with plain help and no locals in tracebacks.

    ``rich_markup_mode`` and ``pretty_exceptions_show_locals`` may still be given; a help text
    is then plain words (no ``[bold]`` markup).
    """
    options.setdefault("rich_markup_mode", None)
    options.setdefault("pretty_exceptions_show_locals", False)  # locals may hold secrets
    return typer.Typer(**options)
