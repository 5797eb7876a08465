"""Firebase queries: ``orderBy`` child/``$key``/``$value``, range filters and limits.

Ordering by a value follows Firebase: missing/null < false < true < numbers (ascending) <
strings (by code point) < objects, ties broken by key; keys order 32-bit integers numerically
before other strings. Filters compare in that same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InvalidDataError
from .paths import Path, check_key
from .values import key_order

__all__ = ["Query", "run_query", "value_order"]

_MISSING: Any = None


def value_order(value: Any) -> tuple[Any, ...]:
    """Sort key of a value in Firebase's cross-type order."""
    if value is None:
        return (0,)
    if value is False:
        return (1,)
    if value is True:
        return (2,)
    if isinstance(value, (int, float)):
        return (3, value)
    if isinstance(value, str):
        return (4, value)
    return (5,)


@dataclass(frozen=True)
class Query:
    """A Firebase query; ``order_by`` is ``"$key"``, ``"$value"``, ``"$priority"`` or a child path."""

    order_by: str
    start_at: Any = _MISSING
    end_at: Any = _MISSING
    equal_to: Any = _MISSING
    start_after: Any = _MISSING
    end_before: Any = _MISSING
    limit_to_first: int | None = None
    limit_to_last: int | None = None
    has_start_at: bool = False
    has_end_at: bool = False
    has_equal_to: bool = False
    has_start_after: bool = False
    has_end_before: bool = False

    def __post_init__(self) -> None:
        if self.order_by == "$priority":
            raise InvalidDataError('orderBy "$priority" is not supported (no priorities)')
        if not self.order_by.startswith("$"):
            for part in self.order_by.split("/"):
                check_key(part, f" in orderBy {self.order_by!r}")
        elif self.order_by not in ("$key", "$value"):
            raise InvalidDataError(
                f'orderBy must be "$key", "$value" or a child path, not {self.order_by!r}'
            )
        if self.limit_to_first is not None and self.limit_to_last is not None:
            raise InvalidDataError("Can't set both limitToFirst and limitToLast; use one")
        for name in ("limit_to_first", "limit_to_last"):
            n = getattr(self, name)
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
                raise InvalidDataError(f"{name} must be a non-negative integer, not {n!r}")
        if self.has_equal_to and (
            self.has_start_at or self.has_end_at or self.has_start_after or self.has_end_before
        ):
            raise InvalidDataError("equalTo cannot be combined with startAt/endAt/After/Before")
        if self.order_by == "$key":
            for flag, name in (
                ("has_start_at", "start_at"),
                ("has_end_at", "end_at"),
                ("has_equal_to", "equal_to"),
                ("has_start_after", "start_after"),
                ("has_end_before", "end_before"),
            ):
                if getattr(self, flag) and not isinstance(getattr(self, name), str):
                    raise InvalidDataError(
                        f'orderBy "$key" needs string bounds; {name} is {getattr(self, name)!r}'
                    )

    @property
    def child_path(self) -> Path:
        return tuple(self.order_by.split("/")) if not self.order_by.startswith("$") else ()

    def _key(self, key: str, value: Any) -> tuple[Any, ...]:
        if self.order_by == "$key":
            return (key_order(key),)
        if self.order_by == "$value":
            v = value
        else:
            v = value
            for part in self.child_path:
                v = v.get(part) if isinstance(v, dict) else None
        return (value_order(v), key_order(key))

    def _bound(self, bound: Any) -> tuple[Any, ...]:
        if self.order_by == "$key":
            return (key_order(bound),)
        return (value_order(bound),)


def run_query(query: Query, items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Order ``items`` (key, stored value) by ``query``, filter and limit them."""
    keyed = sorted(((query._key(k, v), k, v) for k, v in items), key=lambda t: t[0])
    out = []
    for sort_key, k, v in keyed:
        head = sort_key[:1]  # filters compare the ordered value only, never the key tie-break
        if query.has_equal_to and head != query._bound(query.equal_to):
            continue
        if query.has_start_at and head < query._bound(query.start_at):
            continue
        if query.has_end_at and head > query._bound(query.end_at):
            continue
        if query.has_start_after and head <= query._bound(query.start_after):
            continue
        if query.has_end_before and head >= query._bound(query.end_before):
            continue
        out.append((k, v))
    if query.limit_to_first is not None:
        out = out[: query.limit_to_first]
    if query.limit_to_last is not None:
        out = out[len(out) - query.limit_to_last :] if query.limit_to_last else []
    return out
