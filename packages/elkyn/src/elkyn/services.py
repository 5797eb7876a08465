"""The services Elkyn's gateway plugin provides to other plugins (see ``platform_core.services``).

A plugin reads through :data:`DB_STORE` and writes through :data:`DB_WRITER`: on a replica
the store refuses writes (``ReplicaWriteError``) and the writer forwards them to the primary.
Declaring a key imports nothing heavy (its type is named, resolved when a value is checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_core.services import ServiceKey

if TYPE_CHECKING:
    from .plugin_writers import DatabaseWriter
    from .store import Store

__all__ = ["DB_STORE", "DB_WRITER"]

DB_STORE: ServiceKey[Store] = ServiceKey(
    "elkyn.store", "elkyn.store:Store", "the database (the gateway's Elkyn store)"
)
"""The store the gateway serves at ``/db``: for reads (and rules, ``reserve``)."""

DB_WRITER: ServiceKey[DatabaseWriter] = ServiceKey(
    "elkyn.writer", "elkyn.plugin_writers:DatabaseWriter", "the database's writer"
)
"""Where plugins write as the admin: the store on a primary, forwarded to it on a replica."""
