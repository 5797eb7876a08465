"""``platform status``'s data: what every platform of the cluster runs, asked of each.

Each gateway reports itself at ``GET /internal/platform/status`` (cluster tokens only): every
plugin's ``status()`` (the lake node and its chunks, Elkyn's role, Elytra's workers) and its
own Ray node when ``platform up --ray`` runs one. An admin's
``GET /api/platform/status`` adds the report of each peer the plugins name (the lake's
members), asked in parallel with a short timeout: a peer that does not answer is listed with
the state gossip gives it and why it did not answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from platform_core import Plugin
from platform_core.http import async_http_client, require_admin, require_cluster
from platform_core.services import ServiceRegistry, call_hook

__all__ = ["PEER_STATUS_PATH", "router"]

log = logging.getLogger(__name__)

PEER_STATUS_PATH = "/internal/platform/status"
_PEER_TIMEOUT = 3.0
_MAX_PEER_BYTES = 1 << 20

router = APIRouter()


def own_status(plugins: list[Plugin], services: ServiceRegistry) -> dict[str, Any]:
    """Each plugin's report; one that fails says why instead of failing the whole."""
    out: dict[str, Any] = {}
    for plugin in plugins:
        if plugin.status is None:
            continue
        try:
            out[plugin.name] = call_hook(plugin.status, services.view(plugin))
        except Exception as exc:  # a plugin starting or stopping: say so, report the rest
            out[plugin.name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


@router.get(PEER_STATUS_PATH, include_in_schema=False, dependencies=[Depends(require_cluster)])
async def peer_status(request: Request) -> dict[str, Any]:
    """This platform's own report, for its peers (cluster token)."""
    return {
        "plugins": await run_in_threadpool(
            own_status, request.app.state.plugins, request.app.state.services
        ),
        "ray": ray_status(request),
    }


def ray_status(request: Request) -> dict[str, Any] | None:
    """The platform's own Ray node (``platform up --ray``): role, address, ports, state."""
    node = getattr(request.app.state, "ray_node", None)
    return None if node is None else dict(node.status())


@router.get("/api/platform/status", tags=["gateway"], dependencies=[Depends(require_admin)])
async def platform_status(request: Request) -> dict[str, Any]:
    """Every platform of the cluster: this one's report and each peer's (or why it did not
    answer). Role: admin."""
    plugins: list[Plugin] = request.app.state.plugins
    mine = await run_in_threadpool(own_status, plugins, request.app.state.services)
    peers = [
        p for report in mine.values() if isinstance(report, dict) for p in report.get("peers", [])
    ]
    token = request.app.state.signer.cluster_token("status")
    async with async_http_client(request.app.state.settings, timeout=_PEER_TIMEOUT) as client:
        reports = await asyncio.gather(*(_ask(client, p, token) for p in peers))
    return {"self": {"plugins": mine, "ray": ray_status(request)}, "peers": reports}


async def _ask(client: httpx.AsyncClient, peer: dict[str, Any], token: str) -> dict[str, Any]:
    out = {"id": peer.get("id"), "url": peer.get("url"), "state": peer.get("state")}
    if peer.get("state") == "dead":
        return {**out, "plugins": None, "error": "declared dead by the cluster"}
    try:
        r = await client.get(
            f"{peer['url']}{PEER_STATUS_PATH}", headers={"authorization": f"Bearer {token}"}
        )
        if len(r.content) > _MAX_PEER_BYTES:
            raise ValueError(f"its report is over {_MAX_PEER_BYTES} bytes")
        r.raise_for_status()
        body = r.json()
        return {**out, "plugins": body.get("plugins"), "ray": body.get("ray"), "error": None}
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return {**out, "plugins": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
