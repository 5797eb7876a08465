"""A process-local :class:`platform_core.ClusterState`, for a gateway without a store plugin.

Without Elkyn there is no cluster to share with, so revoked tokens, login counters and the
audit trail live in this process's memory (and are lost when it stops). It follows the same
path and server-value rules as Elkyn's sinks, so the accounts code has one shape.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["MemoryState"]


def _keys(path: str) -> list[str]:
    return [k for k in path.split("/") if k]


class MemoryState:
    """A JSON tree in memory with atomic multi-path updates and ``increment`` server values."""

    def __init__(self) -> None:
        self._root: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()

    def reserve_platform(self, key: str, rules: Mapping[str, Any]) -> None:
        return None  # nobody else reaches this process's memory

    def read(self, path: str) -> Any:
        with self._lock:
            node: Any = self._root
            for key in _keys(path):
                if not isinstance(node, dict) or key not in node:
                    return None
                node = node[key]
            return copy.deepcopy(node)

    def update(self, path: str, values: Mapping[str, Any]) -> Any:
        base = _keys(path)
        answer: dict[str, Any] = {}
        with self._lock:
            for rel, value in values.items():
                keys = base + _keys(rel)
                if isinstance(value, Mapping) and set(value) == {".sv"}:
                    current = self._get(keys)
                    current = current if isinstance(current, (int, float)) else 0
                    value = current + value[".sv"]["increment"]
                self._set(keys, copy.deepcopy(value))
                answer[rel] = copy.deepcopy(value)
        return answer

    def push(self, path: str, value: Any) -> str:
        key = f"{time.time_ns():020d}{next(self._seq):06d}"
        self.update(path, {key: value})
        return key

    def _get(self, keys: list[str]) -> Any:
        node: Any = self._root
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def _set(self, keys: list[str], value: Any) -> None:
        node = self._root
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
