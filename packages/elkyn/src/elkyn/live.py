"""Elkyn as the platform's live-state sink: other plugins' state written into the store.

The gateway hands this sink to every plugin with live state (``platform_core.live``): the
lake's catalog lands at ``/datasets``, its members at ``/nodes``, so a browser subscribes to
them over SSE instead of polling. Writes go in as the admin caller (no user may write there:
the publisher reserves the subtree with rules that say so).

Both sinks are also a :class:`platform_core.ClusterState` (the gateway keeps revoked tokens,
login counters and the audit trail there): reads come from this platform's copy, writes go
into the store on a primary and to the primary's REST API on a replica (its writer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .plugin_writers import DatabaseWriter
from .store import ADMIN, Store

__all__ = ["ElectedSink", "ReplicaSink", "StoreSink"]


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

    def reserve_platform(self, key: str, rules: Mapping[str, Any]) -> None:
        self.store.reserve(key, rules, platform_only=True)

    def read(self, path: str) -> Any:
        return self.store.get(path, caller=ADMIN)

    def update(self, path: str, values: Mapping[str, Any]) -> Any:
        return self.store.update(path, values, caller=ADMIN)

    def push(self, path: str, value: Any) -> str:
        return self.store.push(path, value, caller=ADMIN)


class ReplicaSink:
    """A replica's sink: reservations in memory, live publications dropped (the primary's
    platform publishes the same cluster-wide state, and it reaches here by replication);
    the platform's own state written through ``writer`` (forwarded to the primary)."""

    def __init__(self, store: Store, writer: DatabaseWriter | None) -> None:
        self.store = store
        self.writer = writer

    def reserve(self, key: str, rules: Mapping[str, Any]) -> None:
        self.store.reserve(key, rules)

    def publish(self, path: str, value: Any) -> None:
        return None

    def publish_many(self, values: Mapping[str, Any]) -> None:
        return None

    def reserve_platform(self, key: str, rules: Mapping[str, Any]) -> None:
        self.store.reserve(key, rules, platform_only=True)

    def read(self, path: str) -> Any:
        return self.store.get(path, caller=ADMIN)

    def update(self, path: str, values: Mapping[str, Any]) -> Any:
        return self._writer().update(path, values)

    def push(self, path: str, value: Any) -> str:
        return self._writer().push(path, value)

    def _writer(self) -> DatabaseWriter:
        if self.writer is None:
            from .errors import PrimaryUnavailableError

            raise PrimaryUnavailableError("this replica has no writer to its primary yet")
        return self.writer


class ElectedSink(ReplicaSink):
    """The sink of a platform in an election cluster: publishes live state while its Elkyn is
    the primary (as :class:`StoreSink`), drops it while a replica (the primary's platform
    publishes it); the platform's own state always goes through the (elected) writer."""

    def publish(self, path: str, value: Any) -> None:
        if self._primary():
            StoreSink(self.store).publish(path, value)

    def publish_many(self, values: Mapping[str, Any]) -> None:
        if self._primary():
            StoreSink(self.store).publish_many(values)

    def _primary(self) -> bool:
        return self.writer is not None and self.writer.role == "primary"
