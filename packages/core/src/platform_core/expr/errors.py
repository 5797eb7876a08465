"""Errors of the expression language: one class, with the text and a caret where known."""

from __future__ import annotations

from platform_core.errors import BadInputError

__all__ = ["ExpressionError", "caret"]


def caret(text: str, position: int | None) -> str:
    """The text on one line with a caret under ``position`` (0-based), for error messages."""
    if position is None:
        return f"  {text}"
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    line = text[line_start : None if line_end < 0 else line_end]
    return f"  {line}\n  {' ' * (position - line_start)}^"


class ExpressionError(BadInputError):
    """An expression is malformed, mistyped, or uses something the language does not have."""

    def __init__(self, message: str, *, text: str | None = None, position: int | None = None):
        full = message if text is None else f"{message}\n{caret(text, position)}"
        super().__init__(full)
        self.reason = message
        self.text = text
        self.position = position
