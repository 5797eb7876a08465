"""Replication status: this database's role, its primary, and how far behind it is.

The same dict is ``GET /.replication/status`` (cluster or admin token; ``platform status``
reads it, :func:`serve_status` answers it) and :func:`replication_status` of a store.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .replica import LogServer, check_cluster

if TYPE_CHECKING:
    from .replica import Follower
    from .server.http import Request, Send
    from .store import Store

__all__ = ["replication_status", "serve_status"]


def replication_status(store: Store, follower: Follower | None = None) -> dict[str, Any]:
    """``{"role", "primary", "seq", "primary_seq", "lag_seconds", "database", "connected"}``.

    ``role`` is ``"primary"`` or ``"replica"``; ``primary`` the URL followed (after resolving
    replicas of replicas; ``None`` on a primary); ``seq`` this store's last sequence number;
    ``primary_seq`` the primary's in its latest answer; ``lag_seconds`` 0 while in step, else
    seconds since the replica last was (``None``: never, or a primary); ``database`` this
    store's id; ``connected`` whether the follower's latest request to the primary succeeded.
    ``elkyn.replication_status()`` without arguments is this for the gateway's own store
    (``elkyn.plugin.replication_status``).
    """
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


async def serve_status(app: LogServer, req: Request, send: Send) -> None:
    """``GET /.replication/status`` (cluster token or admin): role, primary, seq and lag."""
    from .server.http import respond_json

    check_cluster(app, req, admin_too=True)
    store = app.current_store()
    body = await asyncio.to_thread(replication_status, store, app.follower)
    fence = getattr(app, "fence", None)
    if fence is not None:  # an election cluster: the term, the fence, replicas' acks
        body.update(
            term=fence.term,
            fenced=fence.fenced,
            serving=fence.serving(),
            sync_replicas=fence.sync_replicas,
            acks=dict(fence.acks),
        )
        if app.follower is None and not fence.serving():
            body["role"] = "fenced"  # waiting for the election to name a primary
        election = getattr(app, "election", None)
        if election is not None:
            body["election"] = election.status()
    await respond_json(send, 200, body)
