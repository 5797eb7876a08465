"""The gateway plugin: the lake router at ``/api/lake``, the node opened by the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.concurrency import run_in_threadpool

from platform_core import PlatformSettings, Plugin

from .api import NodeHolder, make_router
from .node import LakeNode
from .settings import lake_settings

__all__ = ["plugin"]


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""
    holder = NodeHolder()

    def router(settings: PlatformSettings) -> Any:
        return make_router(holder, "/api/lake")

    @asynccontextmanager
    async def lifespan(settings: PlatformSettings) -> AsyncIterator[None]:
        ls = lake_settings(settings)
        node = await run_in_threadpool(LakeNode, ls)
        node.start()
        holder.node = node
        try:
            yield
        finally:
            holder.node = None
            node.stop()

    from .cli import cli

    return Plugin(
        name="lake",
        prefix="/api/lake",
        router=router,
        lifespan=lifespan,
        cli=cli,
        description="Chunked, checksummed datasets and read-only SQL.",
    )
