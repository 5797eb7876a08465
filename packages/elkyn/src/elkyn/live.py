"""Elkyn as the platform's live-state sink: other plugins' state written into the store.

The gateway hands this sink to every plugin with live state (``platform_core.live``): the
lake's catalog lands at ``/datasets``, its members at ``/nodes``, so a browser subscribes to
them over SSE instead of polling. Writes go in as the admin caller (no user may write there:
the publisher reserves the subtree with rules that say so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .store import ADMIN, Store

__all__ = ["StoreSink"]


class StoreSink:
    """A :class:`platform_core.LiveSink` over an open :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def reserve(self, key: str, rules: Mapping[str, Any]) -> None:
        self.store.reserve(key, rules)

    def publish(self, path: str, value: Any) -> None:
        self.store.set(path, value, caller=ADMIN)

    def publish_many(self, values: Mapping[str, Any]) -> None:
        if values:
            self.store.update("/", {k.strip("/"): v for k, v in values.items()}, caller=ADMIN)
