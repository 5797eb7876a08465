"""The gateway plugin: Elkyn's app mounted at ``/db``, its store opened by the lifespan.

Without ``ELKYN_REPLICA_OF`` the gateway's database is a primary and serves its operation log
to cluster tokens (``/db/.replication/log``); with it, the lifespan makes it a replica of that
URL (its own LMDB under its own home): it follows the primary's log and forwards client
writes there. The lifespan provides the store (:data:`elkyn.services.DB_STORE`, for reads)
and the writer (:data:`elkyn.services.DB_WRITER`: local on a primary, forwarded on a replica)
to the plugins that require them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from platform_core import Plugin

from .services import DB_STORE, DB_WRITER

if TYPE_CHECKING:  # settings (pydantic) and auth (PyJWT) load when the gateway starts
    from platform_core import PlatformSettings, Services
    from platform_core.auth import TokenSigner

    from .live import ReplicaSink, StoreSink
    from .plugin_writers import ForwardingWriter, LocalWriter
    from .replica import Follower
    from .server import ElkynApp
    from .settings import ElkynSettings
    from .store import Store

# The server, the store (LMDB) and the live sink are imported by the factories below, when
# the gateway starts, not by every command that loads the plugins for their CLIs.

__all__ = ["plugin", "replication_status"]


def elkyn_settings(base: PlatformSettings | None = None, **overrides: Any) -> ElkynSettings:
    """:func:`elkyn.settings.elkyn_settings`, imported when the gateway starts (not for
    `platform --help`, which loads the plugin for its CLI)."""
    from .settings import elkyn_settings as load

    return load(base, **overrides)


def _signer(settings: PlatformSettings) -> TokenSigner:
    from platform_core import auth

    return auth.signer(settings)


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""
    holder: dict[str, ElkynApp] = {}  # this plugin's app, made by make_app, served by lifespan

    def make_app(settings: PlatformSettings, services: Services) -> ElkynApp:
        from .replica import serve_log
        from .server import ElkynApp

        # Never dev mode behind the gateway: it may bind any address, which the plugin cannot
        # see, and dev mode hands out admin tokens without a password.
        es = elkyn_settings(settings, dev=False)
        app = ElkynApp(es, signer=_signer(es))
        app.replication = serve_log  # cluster tokens only; a replica refuses (409, its primary)
        holder["app"] = app
        return app

    @asynccontextmanager
    async def lifespan(
        settings: PlatformSettings, services: Services
    ) -> AsyncIterator[dict[Any, Any]]:
        from .plugin_writers import ElectedWriter, ForwardingWriter

        es = elkyn_settings(settings, dev=False)
        app = holder.get("app")
        store = await asyncio.to_thread(_open_store, es)
        if app is None:  # no app made (a test of the lifespan alone): serve nothing
            from .server import ElkynApp

            app = holder["app"] = ElkynApp(es, signer=_signer(es))
        app.store = store
        if es.replica_of is None:  # elected among the platforms of the cluster (--join)
            from .platform_election import start_platform_election
            from .plugin_writers import ElectedWriter

            try:
                await asyncio.to_thread(start_platform_election, app, es, settings)
                await _await_a_role(app)
            except BaseException:
                await _close_election(app)
                app.store = None
                await asyncio.to_thread(store.close)
                raise
            writer: Any = ElectedWriter(app, store, es)
        else:  # ELKYN_REPLICA_OF: a fixed replica of that primary, no election
            writer = _db_writer(app, store, es)
        try:
            yield {DB_STORE: store, DB_WRITER: writer}  # withdrawn before this exits
        finally:
            await _close_election(app)
            await app.stop_replica()
            if isinstance(writer, ForwardingWriter | ElectedWriter):
                writer.close()
            app.store = None
            await asyncio.to_thread(store.close)

    def status(services: Services) -> dict[str, Any]:
        """This database's role and replication state (``platform status``)."""
        app = holder.get("app")
        body = replication_status(services.get(DB_STORE), app.follower if app else None)
        if app is not None and app.fence is not None:
            from .membership import election_status

            body.update(election_status(app, body["seq"]))
        return body

    from .cli import cli

    return Plugin(
        name="elkyn",
        prefix="/db",
        app=make_app,
        lifespan=lifespan,
        cli=cli,
        live_sink=_live_sink,
        status=status,
        provides=(DB_STORE, DB_WRITER),
        description="Real-time JSON tree database (Firebase REST and streaming).",
    )


FIRST_ROLE_WAIT = 10.0
"""Seconds the plugin's start waits for the election to give this platform its role (a
platform restarted on its home or joining a cluster), so that the plugins after it start as
the primary or as a replica: a restarted primary reconciles its killed jobs and restores its
login counters. A single member's election settles in about a second; one without a majority
never does, and its platform starts after this wait, its writes refused until a majority."""


async def _await_a_role(app: ElkynApp) -> None:
    """Wait (at most ``FIRST_ROLE_WAIT``) for the election to name this platform's role;
    polled on the loop, so a stop during the wait ends it at once."""
    fence = app.fence
    if fence is None:
        return
    deadline = time.monotonic() + FIRST_ROLE_WAIT
    while not fence.named.is_set():
        if time.monotonic() > deadline:
            logging.getLogger("elkyn").warning(
                "the election gave this platform no role within %g s (no primary named, or "
                "the one named does not answer; is a majority of its members up?): starting "
                "without one; writes are refused until it does",
                FIRST_ROLE_WAIT,
            )
            return
        await asyncio.sleep(0.05)


async def _close_election(app: ElkynApp) -> None:
    """Stop the Raft node and the elector of ``app`` (the member stays in the cluster)."""
    election, app.election = app.election, None
    if election is not None:
        await asyncio.to_thread(election.close)


def _open_store(es: ElkynSettings) -> Store:
    """The gateway's database as ``es`` says: its LMDB under the home, or in memory."""
    from .store import Store

    return Store(
        None if es.memory else es.db_path(),
        memory=es.memory,
        map_size=es.map_size,
        log_size=es.log_size,
        signer=_signer(es),
        max_pending_events=es.max_pending_events,
        max_pending_bytes=es.max_pending_bytes,
    )


def _db_writer(app: ElkynApp, store: Store, es: ElkynSettings) -> LocalWriter | ForwardingWriter:
    """The other plugins' writer: into ``store`` on a primary; on a replica (``es.replica_of``)
    forwarded to the primary that ``app`` now follows."""
    from .plugin_writers import ForwardingWriter, LocalWriter

    if es.replica_of is not None:
        from .forward import follow

        follower = follow(app, es.replica_of, es)
        return ForwardingWriter(follower, follower.token_fn, es)
    return LocalWriter(store)


def _live_sink(services: Services) -> StoreSink | ReplicaSink | None:
    """Where live changes to the database go: the store, or on a replica through the writer
    (in an election cluster: by the role of the moment, ``ElectedSink``)."""
    from .live import ElectedSink, ReplicaSink, StoreSink
    from .plugin_writers import ElectedWriter

    if not services.running(DB_STORE):
        return None
    store = services.get(DB_STORE)
    writer = services.get(DB_WRITER) if services.running(DB_WRITER) else None
    if isinstance(writer, ElectedWriter):
        return ElectedSink(store, writer)
    if store.replica_of is not None:
        return ReplicaSink(store, services.get(DB_WRITER))
    return StoreSink(store)


def replication_status(
    store: Store | None = None, follower: Follower | None = None
) -> dict[str, Any]:
    """``elkyn.status.replication_status`` of ``store`` (and, on a replica, its ``follower``)."""
    from . import status

    if store is None:
        raise TypeError(
            "replication_status(store, follower=None) needs the store: the gateway's own store "
            "is no longer a module global (a plugin gets it as services.get(elkyn.services."
            "DB_STORE); `platform status` and GET /db/.replication/status report it)"
        )
    return status.replication_status(store, follower)
