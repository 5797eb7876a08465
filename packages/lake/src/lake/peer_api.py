"""Node-to-node HTTP routes (``/internal/lake``): ping, indirect ping, manifests, fault hook.

Mounted as its own app, both by ``lake node`` and by the gateway, because these routes take
a cluster token (``platform_core.auth.verify_cluster``) and nothing else, while the user
routes under ``/api/lake`` take user tokens only.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from platform_core import PlatformError, UnauthorizedError, UnavailableError
from platform_core.auth import TokenSigner, bearer_token

from .api import NodeHolder
from .membership import Member
from .names import check_dataset_name

__all__ = ["make_peer_app"]

MAX_BODY = 16 << 20


def make_peer_app(holder: NodeHolder, signer: TokenSigner) -> Starlette:
    def cluster(request: Request) -> Any:
        token = bearer_token(request.headers.get("authorization"))
        if not token:
            raise UnauthorizedError("node-to-node routes need a cluster token")
        signer.verify_cluster(token)
        node = holder()
        if node.cluster is None:
            raise UnavailableError("this node is not part of a cluster")
        return node.cluster

    async def body(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise PlatformError("gossip body too large")
        return json.loads(raw)

    async def ping(request: Request) -> JSONResponse:
        c = cluster(request)
        data = await body(request)
        try:
            return JSONResponse(await run_in_threadpool(c.receive, data))
        except ConnectionRefusedError:
            return JSONResponse({"error": "link dropped", "type": "unavailable"}, 503)

    async def ping_req(request: Request) -> JSONResponse:
        c = cluster(request)
        target = Member.from_dict((await body(request))["target"])
        ok = await run_in_threadpool(c.ping_req, target)
        return JSONResponse({"ok": ok})

    async def manifests(request: Request) -> JSONResponse:
        c = cluster(request)
        out = []
        for name in request.query_params.getlist("name"):
            m = c.node.catalog.head(check_dataset_name(name))
            if m is not None:
                out.append(m.to_dict())
        return JSONResponse(out)

    async def fault(request: Request) -> JSONResponse:
        c = cluster(request)
        drop = (await body(request)).get("drop", [])
        c.drop_links({str(x) for x in drop})
        return JSONResponse({"dropped": sorted(c.dropped)})

    async def chunks(request: Request) -> JSONResponse:
        c = cluster(request)
        return JSONResponse(c.node.chunks.all())

    async def scrub(request: Request) -> JSONResponse:
        c = cluster(request)
        return JSONResponse(await run_in_threadpool(c.scrub_once))

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PlatformError)
        return JSONResponse(exc.to_dict(), exc.status)

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["POST"]),
            Route("/ping-req", ping_req, methods=["POST"]),
            Route("/manifests", manifests),
            Route("/fault", fault, methods=["POST"]),
            Route("/chunks", chunks),
            Route("/scrub", scrub, methods=["POST"]),
        ],
        exception_handlers={PlatformError: on_error},
    )
