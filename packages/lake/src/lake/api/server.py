"""``lake node`` alone: a FastAPI app serving the lake router under ``/api/lake``.

It checks user tokens, limits bodies and answers errors with the kit's parts
(:mod:`platform_core.http`), as the gateway does for the embedded node, and opens the node
in its lifespan.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from platform_core.apidocs import install_docs
from platform_core.auth import TokenSigner
from platform_core.http import (
    BodyLimitMiddleware,
    CatchAllMiddleware,
    install_error_handlers,
    require_token,
)
from platform_core.tls import scheme_of, server_tls

from ..cluster.group import PEER_PREFIX
from ..node import LakeNode
from ..settings import LakeSettings
from .peer_routes import make_peer_app
from .routes import NodeHolder, make_router

__all__ = ["PREFIX", "create_app"]

log = logging.getLogger(__name__)

PREFIX = "/api/lake"


def create_app(
    settings: LakeSettings,
    signer: TokenSigner,
    holder: NodeHolder | None = None,
    *,
    http_addr: str | None = None,
    join: str | None = None,
) -> FastAPI:
    """The app of a standalone node; its lifespan opens and closes the node."""
    holder = holder or NodeHolder()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if holder.node is None:
            node = await run_in_threadpool(LakeNode, settings)
            node.start()
            if http_addr is not None:
                cluster = await run_in_threadpool(node.start_cluster, signer, http_addr, join)
                url = f"{scheme_of(server_tls(settings))}://{http_addr}"
                flight = cluster.flight_addr
                flight = flight if "://" in flight else f"grpc://{flight}"
                print(
                    f"lake node {node.node_id} serving at {url} (flight {flight})\n"
                    f"clients: lake ls --node {url} (lake upload, query, ... take "
                    "the same --node; a token: --token, PLATFORM_TOKEN or PLATFORM_SECRET)",
                    flush=True,
                )
            holder.node = node
        try:
            yield
        finally:
            node, holder.node = holder.node, None
            if node is not None:
                node.stop()

    # FastAPI's own /docs loads its assets from a CDN: the kit's page is served offline.
    app = FastAPI(title="lake node", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_docs(app)
    app.state.holder = holder
    app.state.signer = signer  # read by the kit's require_token
    install_error_handlers(app)
    # Added last means outermost: CatchAll sees everything, including the body limit.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=max(settings.max_body_bytes, settings.max_part_bytes + (1 << 16)),
        setting="PLATFORM_MAX_BODY_BYTES (or LAKE_MAX_PART_BYTES)",
    )
    app.add_middleware(CatchAllMiddleware)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(
        make_router(holder, PREFIX),
        prefix=PREFIX,
        dependencies=[Depends(require_token)],
        tags=["lake"],
    )

    app.mount(PEER_PREFIX, make_peer_app(holder, signer))

    return app
