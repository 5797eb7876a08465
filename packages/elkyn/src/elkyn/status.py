"""Replication status: this database's role, its primary, and how far behind it is.

The same dict is ``GET /.replication/status`` (cluster or admin token; ``platform status``
reads it) and :func:`replication_status` for the store of this process's gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import StoreClosedError

if TYPE_CHECKING:
    from .replica import Follower
    from .store import Store

__all__ = ["replication_status"]


def replication_status(
    store: Store | None = None, follower: Follower | None = None
) -> dict[str, Any]:
    """``{"role", "primary", "seq", "primary_seq", "lag_seconds", "database", "connected"}``.

    ``role`` is ``"primary"`` or ``"replica"``; ``primary`` the URL followed (after resolving
    replicas of replicas; ``None`` on a primary); ``seq`` this store's last sequence number;
    ``primary_seq`` the primary's in its latest answer; ``lag_seconds`` 0 while in step, else
    seconds since the replica last was (``None``: never, or a primary); ``database`` this
    store's id; ``connected`` whether the follower's latest request to the primary succeeded.
    Without arguments: the store (and follower) of this process's gateway (``elkyn.plugin``).
    """
    if store is None:
        from .plugin import current_follower, current_store

        store, follower = current_store(), current_follower()
        if store is None:
            raise StoreClosedError("the database is not open yet; retry in a moment")
    seq = store.last_seq()
    if follower is None:
        return {
            "role": "primary",
            "primary": None,
            "seq": seq,
            "primary_seq": None,
            "lag_seconds": None,
            "database": store.database_id,
            "connected": True,
        }
    lag = follower.lag_seconds(seq)
    return {
        "role": "replica",
        "primary": follower.primary,
        "seq": seq,
        "primary_seq": follower.primary_seq,
        "lag_seconds": None if lag is None else round(lag, 3),
        "database": store.database_id,
        "connected": follower.connected,
    }
