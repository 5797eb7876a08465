"""The gateway plugin: the lake router at ``/api/lake``, the node opened by the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from platform_core import LiveSink, PlatformSettings, Plugin

from .holder import NodeHolder
from .peer_link import PEER_PREFIX

if TYPE_CHECKING:
    from .node import LakeNode

# The API (FastAPI), the node (DuckDB, sqlglot, Flight) and the live mirror are imported by
# the factories below, when the gateway starts: `platform --help`, `platform token` and every
# other command that loads the plugins only for their CLIs start without them.

__all__ = ["current_node", "plugin"]

log = logging.getLogger(__name__)


_HOLDER = NodeHolder()
"""Shared by the two plugins: the user API and the node-to-node routes serve one node."""


def current_node() -> LakeNode:
    """The node this process's gateway runs (503 while it is starting or stopping)."""
    return _HOLDER()


def peer_plugin() -> Plugin:
    """Entry point for the node-to-node routes (cluster tokens only), at ``/internal/lake``."""

    def app(settings: PlatformSettings) -> Any:
        from platform_core import auth

        from .peer_api import make_peer_app

        return make_peer_app(_HOLDER, auth.signer(settings))

    return Plugin(
        name="lake-peer",
        prefix=PEER_PREFIX,
        app=app,
        description="Lake node-to-node gossip (cluster token).",
    )


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""
    holder = _HOLDER

    def router(settings: PlatformSettings) -> Any:
        from .api import make_router

        return make_router(holder, "/api/lake")

    @asynccontextmanager
    async def lifespan(settings: PlatformSettings) -> AsyncIterator[None]:
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
        holder.node = node
        try:
            yield
        finally:
            holder.node = None
            node.stop()

    @asynccontextmanager
    async def live_source(sink: LiveSink) -> AsyncIterator[None]:
        node = holder.node
        if node is None:  # the lifespan did not start it: nothing to mirror
            yield
            return
        from starlette.concurrency import run_in_threadpool

        from .live import LiveMirror

        mirror = LiveMirror(node, sink)
        await run_in_threadpool(mirror.start)
        try:
            yield
        finally:
            await run_in_threadpool(mirror.stop)

    def status() -> dict[str, Any]:
        """This node, what it holds, and the members it knows (``platform status``)."""
        node = holder()
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

    from .cli import cli

    return Plugin(
        name="lake",
        status=status,
        prefix="/api/lake",
        router=router,
        lifespan=lifespan,
        cli=cli,
        live_source=live_source,
        description="Chunked, checksummed datasets and read-only SQL.",
    )
