"""The gateway plugin: Elkyn's app mounted at ``/db``, its store opened by the lifespan.

Without ``ELKYN_REPLICA_OF`` the gateway's database is a primary and serves its operation log
to cluster tokens (``/db/.replication/log``); with it, the lifespan makes it a replica of that
URL (its own LMDB under its own home): it follows the primary's log and forwards client
writes there. Other plugins read through :func:`current_store` and write through
:func:`current_writer` (local on a primary, forwarded on a replica).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from platform_core import PlatformSettings, Plugin, auth

from .settings import elkyn_settings

if TYPE_CHECKING:
    from .live import ReplicaSink, StoreSink
    from .replica import Follower
    from .server import ElkynApp
    from .store import Store
    from .writers import DatabaseWriter

# The server, the store (LMDB) and the live sink are imported by the factories below, when
# the gateway starts, not by every command that loads the plugins for their CLIs.

__all__ = [
    "current_follower",
    "current_store",
    "current_writer",
    "plugin",
    "replication_status",
]

_STATE: dict[str, Any] = {}
"""What the gateway's lifespan opened: ``store``, ``writer`` and, on a replica, ``follower``."""


def current_store() -> Store | None:
    """The store this process's gateway serves at ``/db``, once its lifespan has opened it.

    For reads. On a replica its write methods raise ``ReplicaWriteError``: write through
    :func:`current_writer`.
    """
    store: Store | None = _STATE.get("store")
    return store


def current_writer() -> DatabaseWriter | None:
    """Where this process's plugins write (as the admin): the store itself on a primary, the
    primary's REST API (cluster token, then waiting until this replica applied the write) on a
    replica. ``None`` before the gateway's lifespan opened the store."""
    writer: DatabaseWriter | None = _STATE.get("writer")
    return writer


def current_follower() -> Follower | None:
    """The follower keeping this process's store in step with its primary (None: a primary)."""
    follower: Follower | None = _STATE.get("follower")
    return follower


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""
    holder: dict[str, ElkynApp] = {}

    def make_app(settings: PlatformSettings) -> ElkynApp:
        from .replica import serve_log
        from .server import ElkynApp

        # Never dev mode behind the gateway: it may bind any address, which the plugin cannot
        # see, and dev mode hands out admin tokens without a password.
        es = elkyn_settings(settings, dev=False)
        app = ElkynApp(es, signer=auth.signer(es))
        app.replication = serve_log  # cluster tokens only; a replica refuses (409, its primary)
        holder["app"] = app
        return app

    @asynccontextmanager
    async def lifespan(settings: PlatformSettings) -> AsyncIterator[None]:
        from .store import Store
        from .writers import ForwardingWriter, LocalWriter

        es = elkyn_settings(settings, dev=False)
        app = holder.get("app")
        store = await asyncio.to_thread(
            lambda: Store(
                None if es.memory else es.db_path(),
                memory=es.memory,
                map_size=es.map_size,
                log_size=es.log_size,
                signer=auth.signer(es),
                max_pending_events=es.max_pending_events,
                max_pending_bytes=es.max_pending_bytes,
            )
        )
        if app is None:  # no app made (a test of the lifespan alone): serve nothing
            from .server import ElkynApp

            app = ElkynApp(es, signer=auth.signer(es))
        app.store = store
        _STATE["store"] = store
        if es.replica_of is not None:
            from .forward import follow

            follower = follow(app, es.replica_of, es)
            _STATE["follower"] = follower
            _STATE["writer"] = ForwardingWriter(follower, follower.token_fn, es)
        else:
            _STATE["writer"] = LocalWriter(store)
        try:
            yield
        finally:
            writer = _STATE.pop("writer", None)
            _STATE.pop("follower", None)
            _STATE.pop("store", None)
            await app.stop_replica()
            if isinstance(writer, ForwardingWriter):
                writer.close()
            app.store = None
            await asyncio.to_thread(store.close)

    def live_sink() -> StoreSink | ReplicaSink | None:
        from .live import ReplicaSink, StoreSink

        store = current_store()
        if store is None:
            return None
        if store.replica_of is not None:
            return ReplicaSink(store, current_writer())
        return StoreSink(store)

    from .cli import cli

    return Plugin(
        name="elkyn",
        prefix="/db",
        app=make_app,
        lifespan=lifespan,
        cli=cli,
        live_sink=live_sink,
        status=_status,
        description="Real-time JSON tree database (Firebase REST and streaming).",
    )


def replication_status(
    store: Store | None = None, follower: Follower | None = None
) -> dict[str, Any]:
    """``elkyn.status.replication_status`` of ``store`` (and ``follower``); without arguments,
    of the store (and follower) this process's gateway serves at ``/db``."""
    from . import status
    from .errors import StoreClosedError

    if store is None:
        store, follower = current_store(), current_follower()
        if store is None:
            raise StoreClosedError("the database is not open yet; retry in a moment")
    return status.replication_status(store, follower)


def _status() -> dict[str, Any]:
    """This database's role and replication state (``platform status``)."""
    return replication_status()
