"""``lake node`` alone: a FastAPI app serving the lake router under ``/api/lake``.

It checks user tokens itself (the gateway does this for the embedded node), answers errors
as ``{"error": ..., "type": ...}`` JSON like the gateway, and opens the node in its lifespan.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_core import PlatformError, UnauthorizedError
from platform_core.apidocs import install_docs
from platform_core.auth import Claims, TokenSigner, bearer_token

from .api import NodeHolder, make_router
from .cluster import PEER_PREFIX
from .node import LakeNode
from .peer_api import make_peer_app
from .settings import LakeSettings

__all__ = ["PREFIX", "create_app"]

log = logging.getLogger(__name__)

PREFIX = "/api/lake"

_scheme = HTTPBearer(auto_error=False, description="A platform token (`platform token`).")


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 (declared or as they stream in)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = JSONResponse(
            {"error": f"request body over {self.max_bytes} bytes", "type": "over_budget"}, 413
        )
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await too_big(scope, receive, send)
            return
        seen = 0
        exceeded = False
        started = False

        async def limited() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Tell the app the client went away; the 413 is sent below.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to the cut-off body is replaced by the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await too_big(scope, receive, send)


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
                print(
                    f"lake node {node.node_id} serving at http://{http_addr} "
                    f"(flight grpc://{cluster.flight_addr})",
                    flush=True,
                )
            holder.node = node
        try:
            yield
        finally:
            node, holder.node = holder.node, None
            if node is not None:
                node.stop()

    async def require_user(
        request: Request, _: Annotated[object, Depends(_scheme)] = None
    ) -> Claims:
        token = bearer_token(request.headers.get("authorization")) or request.query_params.get(
            "auth"
        )
        if not token:
            raise UnauthorizedError(
                "this route needs a token: send 'Authorization: Bearer <token>'"
            )
        claims = signer.verify(token)
        request.state.claims = claims
        return claims

    # FastAPI's own /docs loads its assets from a CDN: the kit's page is served offline.
    app = FastAPI(title="lake node", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_docs(app)
    app.add_middleware(
        BodyLimit, max_bytes=max(settings.max_body_bytes, settings.max_part_bytes + (1 << 16))
    )
    app.state.holder = holder

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(
        make_router(holder, PREFIX),
        prefix=PREFIX,
        dependencies=[Depends(require_user)],
        tags=["lake"],
    )

    app.mount(PEER_PREFIX, make_peer_app(holder, signer))

    @app.exception_handler(PlatformError)
    async def platform_error(request: Request, exc: PlatformError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        # 422 like the gateway, so a client sees one status for one mistake on either.
        return JSONResponse({"error": f"invalid request: {problems}", "type": "bad_input"}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if exc.status_code == 404 else "http"
        text = (
            f"not found: {request.method} {request.url.path}"
            if exc.status_code == 404
            else str(exc.detail)
        )
        return JSONResponse({"error": text, "type": kind}, exc.status_code)

    return app
