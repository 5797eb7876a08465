"""A small thread-safe LRU of values that are pure functions of their key.

Queries repeat: the gate's verdict on a text, its distributed plan and its output names depend
only on the text and the datasets' names or schemas, so they are kept (at most ``size``
entries, each key's text bounded by the caller) instead of re-parsed each time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Memo"]

V = TypeVar("V")


class Memo(Generic[V]):
    """``get(key, make)``: the value kept for ``key``, else ``make()`` kept (least recent
    dropped past ``size``). An exception from ``make`` is raised and nothing is kept."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
