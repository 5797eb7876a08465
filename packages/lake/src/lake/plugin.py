"""The gateway plugins: the lake router at ``/api/lake`` and the node-to-node routes at
``/internal/lake``. The lake plugin's lifespan opens the node and provides it as
:data:`lake.services.LAKE_NODE`; every other part (the routes, the peer routes, the status, the
live mirror, and other plugins such as elytra) reads it from the gateway's services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from platform_core import Plugin

from .cluster.peer_link import PEER_PREFIX
from .services import LAKE_NODE

if TYPE_CHECKING:  # settings (pydantic) load when the gateway starts, not for `platform --help`
    from platform_core import LiveSink, PlatformSettings, Services

# The API (FastAPI), the node (DuckDB, sqlglot, Flight) and the live mirror are imported by
# the factories below, when the gateway starts: `platform --help`, `platform token` and every
# other command that loads the plugins only for their CLIs start without them.

__all__ = ["peer_plugin", "plugin"]

log = logging.getLogger(__name__)

REJOIN_WAIT = 10.0
"""Seconds a platform restarted without ``--join`` waits, at start, for the first pass over
the peers its lake node remembers: it answers ready knowing its cluster (a job right after
the restart found no holder of a chunk: issue 34's "ready means ready"). A peer whose host
is up but platform down refuses at once, so a platform back first does not wait them out; a
host that is down costs up to the ping timeout (2 s) a peer, within this bound."""


def peer_plugin() -> Plugin:
    """Entry point for the node-to-node routes (cluster tokens only), at ``/internal/lake``."""

    def app(settings: PlatformSettings, services: Services) -> Any:
        from platform_core import auth

        from .api.peer_routes import make_peer_app

        return make_peer_app(lambda: services.get(LAKE_NODE), auth.signer(settings))

    return Plugin(
        name="lake-peer",
        prefix=PEER_PREFIX,
        app=app,
        requires=(LAKE_NODE,),
        description="Lake node-to-node gossip (cluster token).",
    )


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""
    from .cli import cli

    return Plugin(
        name="lake",
        status=_status,
        prefix="/api/lake",
        router=_router,
        lifespan=_lifespan,
        cli=cli,
        live_source=_live_source,
        provides=(LAKE_NODE,),
        description="Chunked, checksummed datasets and read-only SQL.",
    )


def _router(settings: PlatformSettings, services: Services) -> Any:
    """The user routes, built when the gateway starts; the node comes from its services."""
    from .api.routes import make_router

    return make_router(lambda: services.get(LAKE_NODE), "/api/lake")


@asynccontextmanager
async def _lifespan(
    settings: PlatformSettings, services: Services
) -> AsyncIterator[dict[Any, Any]]:
    """Open this gateway's node, join its cluster (``LAKE_JOIN``), provide it as LAKE_NODE."""
    from starlette.concurrency import run_in_threadpool

    from .node import LakeNode
    from .settings import lake_settings

    ls = lake_settings(settings)
    node = await run_in_threadpool(LakeNode, ls)
    node.start()
    from platform_core import auth

    addr = f"{ls.advertise_host}:{settings.port}"
    cluster = await run_in_threadpool(node.start_cluster, auth.signer(ls), addr, ls.join)
    log.info("lake node %s: Flight at %s", node.node_id, cluster.flight_addr)
    if ls.join:
        try:  # a JoinError (no answer, another secret) stops `platform up` in one line
            await run_in_threadpool(cluster.wait_joined, ls.join_timeout_seconds)
        except BaseException:
            node.stop()
            raise
        log.info("lake node %s joined the cluster through %s", node.node_id, ls.join)
    else:
        try:
            rejoined = await run_in_threadpool(cluster.rejoined, REJOIN_WAIT)
        except BaseException:
            node.stop()
            raise
        if not rejoined:
            log.warning(
                "lake node %s: none of the peers it saw alive before answered; it starts "
                "alone and joins them when one answers (%s)",
                node.node_id,
                cluster.gossip.join_problem,
            )
    try:
        yield {LAKE_NODE: node}  # withdrawn by the gateway before this exits
    finally:
        node.stop()


@asynccontextmanager
async def _live_source(sink: LiveSink, services: Services) -> AsyncIterator[None]:
    """Mirror the catalog and the members into the platform's live store while it runs."""
    node = services.get(LAKE_NODE)
    from starlette.concurrency import run_in_threadpool

    from .api.live import LiveMirror

    mirror = LiveMirror(node, sink)
    await run_in_threadpool(mirror.start)
    try:
        yield
    finally:
        await run_in_threadpool(mirror.stop)


def _status(services: Services) -> dict[str, Any]:
    """This node, what it holds, and the members it knows (``platform status``)."""
    node = services.get(LAKE_NODE)
    shas = node.catalog.chunks.all()
    out: dict[str, Any] = {
        "node": node.node_id,
        "chunks": len(shas),
        "bytes": node.catalog.chunks.size(shas),
        "datasets": len(node.catalog.names()),
        "peers": [],
    }
    if node.cluster is not None:
        me = node.cluster.members.me
        out.update(state=me.state, flight=me.flight, http=me.http)
        scheme = "https" if node.settings.tls_cert is not None else "http"  # all or none
        out["peers"] = [
            {"id": m.id, "url": f"{scheme}://{m.http}", "state": m.state}
            for m in node.cluster.members.all()
            if m.id != me.id
        ]
    return out
