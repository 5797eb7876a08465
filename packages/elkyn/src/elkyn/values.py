"""JSON values as Firebase stores them: no nulls, no empty objects, arrays as integer-keyed objects.

``normalize`` checks a value about to be written (keys, depth, numbers, server values) and
returns its stored form, or ``None`` when it deletes. ``to_wire`` turns stored objects back into
arrays the way Firebase does (all keys integers and more than half the slots filled).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .errors import InvalidDataError
from .paths import MAX_DEPTH, Path, check_key, path_str

__all__ = [
    "ServerValueResolver",
    "has_server_value",
    "is_array_like",
    "key_order",
    "normalize",
    "to_wire",
]

ServerValueResolver = Callable[[Path, Any], Any]
"""Turns the ``.sv`` spec written at a path into its value (timestamp, increment)."""

_INT32_MAX = 2**31 - 1


def has_server_value(value: Any) -> bool:
    """Whether a value as sent holds a ``{".sv": ...}`` anywhere (its stored form is then
    computed from data the writer may not be allowed to read)."""
    if not isinstance(value, dict):
        return isinstance(value, list) and any(has_server_value(v) for v in value)
    return ".sv" in value or any(has_server_value(v) for v in value.values())


def _reject_sv(path: Path, spec: Any) -> Any:
    raise InvalidDataError(f"server values are not allowed here (at {path_str(path)})")


def normalize(value: Any, path: Path, resolve_sv: ServerValueResolver = _reject_sv) -> Any:
    """The stored form of ``value`` written at ``path``; ``None`` means the write deletes."""
    return _norm(value, path, resolve_sv)


def _norm(value: Any, path: Path, resolve_sv: ServerValueResolver) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise InvalidDataError(
                f"Invalid data at {path_str(path)}: integer {value} is out of 64-bit range"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidDataError(
                f"Invalid data at {path_str(path)}: {value} is not a JSON number"
            )
        return value
    if isinstance(value, (list, tuple)):
        value = {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise InvalidDataError(
            f"Invalid data at {path_str(path)}: {type(value).__name__} is not a JSON value"
        )
    if ".sv" in value:
        if len(value) != 1:
            raise InvalidDataError(
                f"Invalid data at {path_str(path)}: a server value object has only the '.sv' key"
            )
        return _norm(resolve_sv(path, value[".sv"]), path, _reject_sv)
    if len(path) >= MAX_DEPTH:
        raise InvalidDataError(
            f"Invalid data at {path_str(path)}: data nested deeper than {MAX_DEPTH} levels"
        )
    out: dict[str, Any] = {}
    for key, child in value.items():
        if key in (".priority", ".value"):
            raise InvalidDataError(
                f"Invalid data at {path_str(path)}: priorities ({key!r}) are not supported; "
                "store the value under a normal key"
            )
        check_key(key, f" at {path_str(path)}")
        stored = _norm(child, (*path, key), resolve_sv)
        if stored is not None:
            out[key] = stored
    return out or None


def _int_key(key: str) -> int | None:
    """The integer a key names, if it is the canonical form of a 32-bit integer."""
    if not key or len(key) > 11:
        return None
    digits = key[1:] if key[0] == "-" else key
    if not digits.isdigit() or not digits.isascii():
        return None
    if (digits[0] == "0" and len(digits) > 1) or key == "-0":
        return None
    n = int(key)
    return n if -(2**31) <= n <= _INT32_MAX else None


def key_order(key: str) -> tuple[int, int, str]:
    """Firebase's key order: 32-bit integer keys numerically first, then strings by code point."""
    n = _int_key(key)
    return (0, n, "") if n is not None else (1, 0, key)


def is_array_like(value: dict[str, Any]) -> bool:
    """Firebase returns an object as an array when all keys are integers >= 0 and over half set."""
    top = -1
    for key in value:
        n = _int_key(key)
        if n is None or n < 0:
            return False
        top = max(top, n)
    return top >= 0 and len(value) * 2 > top + 1


def to_wire(value: Any) -> Any:
    """Stored form to the JSON Firebase answers with (array-like objects become arrays)."""
    if not isinstance(value, dict):
        return value
    if is_array_like(value):
        out: list[Any] = [None] * (max(int(k) for k in value) + 1)
        for key, child in value.items():
            out[int(key)] = to_wire(child)
        return out
    return {key: to_wire(child) for key, child in value.items()}
