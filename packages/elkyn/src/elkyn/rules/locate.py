"""Where a rule sits in the text of a rules document: 1-based line and column.

Rule errors name the rule (``details.rule``, a path such as ``rules/users/$uid/.read``) and,
for expressions, the 0-based ``offset`` in the rule's text. An editor needs the line and column
in the document the user typed, so the server maps them back onto the raw text with a small JSON
scanner (it only skips values; the document was already parsed by ``json``). Keys can repeat in
JSON: like ``json.loads``, the last one wins.
"""

from __future__ import annotations

import json

__all__ = ["line_column", "locate_rule"]

_WS = " \t\r\n"


def line_column(text: str, index: int) -> tuple[int, int]:
    """The 1-based line and column of ``text[index]``."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def locate_rule(text: str, rule: str, offset: int | None = None) -> tuple[int, int] | None:
    """The line and column of rule ``rule`` (``offset`` characters into its string), or None."""
    try:
        start = _value_at(text, _skip(text, 0), rule.split("/"))
    except (IndexError, ValueError):
        return None
    if start is None:
        return None
    if offset is not None and text[start] == '"':
        start = _raw_index(text, start + 1, offset)
    return line_column(text, start)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _value_at(text: str, i: int, keys: list[str]) -> int | None:
    """The index where the value at ``keys`` (below the value starting at ``i``) starts."""
    if not keys:
        return i
    if text[i] != "{":
        return None
    found: int | None = None
    i = _skip(text, i + 1)
    if text[i] == "}":
        return None
    while True:
        key, i = _string(text, i)
        i = _skip(text, i)
        if text[i] != ":":
            raise ValueError("expected ':'")
        i = _skip(text, i + 1)
        if key == keys[0]:
            found = i
        i = _skip(text, _end(text, i))
        if text[i] == "}":
            break
        if text[i] != ",":
            raise ValueError("expected ','")
        i = _skip(text, i + 1)
    return None if found is None else _value_at(text, found, keys[1:])


def _string(text: str, i: int) -> tuple[str, int]:
    """The decoded string starting at ``text[i] == '"'`` and the index after it."""
    if text[i] != '"':
        raise ValueError("expected a string")
    j = i + 1
    while text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    return json.loads(text[i : j + 1]), j + 1


def _end(text: str, i: int) -> int:
    """The index after the JSON value starting at ``i``."""
    c = text[i]
    if c == '"':
        return _string(text, i)[1]
    if c in "{[":
        depth, j = 0, i
        while True:
            ch = text[j]
            if ch == '"':
                j = _string(text, j)[1]
                continue
            if ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
    j = i
    while j < len(text) and text[j] not in _WS + ",}]":
        j += 1
    return j


def _raw_index(text: str, i: int, offset: int) -> int:
    """The index in ``text`` of the ``offset``-th decoded character of the string body at ``i``."""
    for _ in range(offset):
        if text[i] == '"':
            break
        if text[i] == "\\":
            i += 6 if text[i + 1] == "u" else 2
        else:
            i += 1
    return i
