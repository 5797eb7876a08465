"""The gateway plugin: Elkyn's app mounted at ``/db``, its store opened by the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from platform_core import PlatformSettings, Plugin, auth

from .settings import elkyn_settings

if TYPE_CHECKING:
    from .live import StoreSink
    from .server import ElkynApp
    from .store import Store

# The server, the store (LMDB) and the live sink are imported by the factories below, when
# the gateway starts, not by every command that loads the plugins for their CLIs.

__all__ = ["current_store", "plugin"]

_STORES: dict[str, Store] = {}
"""The store the gateway's lifespan opened: other plugins in the process (elytra's job
records) write through it, so streams see their changes."""


def current_store() -> Store | None:
    """The store this process's gateway serves at ``/db``, once its lifespan has opened it."""
    return _STORES.get("store")


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""
    holder: dict[str, ElkynApp] = {}

    def make_app(settings: PlatformSettings) -> ElkynApp:
        from .server import ElkynApp

        # Never dev mode behind the gateway: it may bind any address, which the plugin cannot
        # see, and dev mode hands out admin tokens without a password.
        es = elkyn_settings(settings, dev=False)
        app = ElkynApp(es, signer=auth.signer(es))
        holder["app"] = app
        return app

    @asynccontextmanager
    async def lifespan(settings: PlatformSettings) -> AsyncIterator[None]:
        from .store import Store

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
        if app is not None:
            app.store = store
        _STORES["store"] = store
        try:
            yield
        finally:
            _STORES.pop("store", None)
            if app is not None:
                app.store = None
            await asyncio.to_thread(store.close)

    def live_sink() -> StoreSink | None:
        from .live import StoreSink

        store = _STORES.get("store")
        return None if store is None else StoreSink(store)

    from .cli import cli

    return Plugin(
        name="elkyn",
        prefix="/db",
        app=make_app,
        lifespan=lifespan,
        cli=cli,
        live_sink=live_sink,
        description="Real-time JSON tree database (Firebase REST and streaming).",
    )
