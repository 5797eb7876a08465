"""A small thread-safe LRU of values that are pure functions of their key, bounded in bytes.

Queries repeat: the gate's verdict on a text, its distributed plan and its output names depend
only on the text and the datasets' names or schemas, so they are kept instead of re-parsed
each time. Every kept value has a cost in bytes (estimated from what it is made of, with the
rates below measured with tracemalloc), and a memo holds at most ``size`` entries and
``budget`` bytes of cost; only texts up to ``MEMO_SQL_CHARS`` are kept at all.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

__all__ = [
    "MEMO_SQL_CHARS",
    "PLAN_BYTES_PER_CHAR",
    "TEXT_BYTES_PER_CHAR",
    "TREE_BYTES_PER_CHAR",
    "Memo",
    "fingerprint",
    "sql_cost",
]

V = TypeVar("V")

MiB = 1 << 20

MEMO_SQL_CHARS = 2 * 1024
"""Only texts up to this long are memoized (the small repeated queries this is for); a longer
one is gated, planned and probed afresh each time, as before memos."""
TEXT_BYTES_PER_CHAR = 4
"""A Python string's widest character (a key's text; output names)."""
TREE_BYTES_PER_CHAR = 1024
"""Cost per character of a gate verdict (its text and sqlglot tree). Measured with tracemalloc
over 2 KiB texts of 30 shapes: at most 507 B/char (``SELECT a[1], a[1], ...``), 312 for a
column list, 130-310 for most; this is twice the worst seen."""
PLAN_BYTES_PER_CHAR = 128
"""Cost per character of a distributed plan (two SQL strings, no tree): ``avg`` expands to the
most, 12.9 characters of plan per character of text, at most 4 bytes each (52 B/char)."""


def sql_cost(sql: str, per_char: int, extra: int = 0) -> int | None:
    """The cost of a value made from ``sql`` at ``per_char`` bytes a character (plus
    ``extra``), or None when the text is over ``MEMO_SQL_CHARS`` and must not be kept."""
    if len(sql) > MEMO_SQL_CHARS:
        return None
    return len(sql) * per_char + extra


def fingerprint(parts: Iterable[str]) -> bytes:
    """A 16-byte digest of ``parts`` for a memo key, so a key does not hold (and keep alive)
    every dataset name or schema it depends on."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.digest()


class Memo(Generic[V]):
    """``get(key, make, cost)``: the value kept for ``key``, else ``make()``, kept when its cost
    is not None and at most ``budget``; the least recent are dropped past ``size`` entries or
    ``budget`` bytes. An exception from ``make`` is raised and nothing is kept."""

    def __init__(self, size: int = 256, budget: int = 32 * MiB) -> None:
        self.size = size
        self.budget = budget
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V], cost: Callable[[V], int | None]) -> V:
        """``cost(value)``: the bytes the key and value hold (None: do not keep the value)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value = make()
        n = cost(value)
        if n is None or n > self.budget:
            return value
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, n)
            self._bytes += n
            while len(self._items) > self.size or self._bytes > self.budget:
                self._bytes -= self._items.popitem(last=False)[1][1]
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def kept_bytes(self) -> int:
        """The cost of what is kept now (at most ``budget``)."""
        with self._lock:
            return self._bytes
