"""How ``platform up --join A --ray`` learns A's Ray head: its address and token, from A.

A platform running a Ray head answers ``GET /internal/platform/ray`` to cluster tokens only
(as its other node-to-node routes do), over the platform's own listener (HTTPS when its TLS
settings are on). The joining platform asks it before starting its own Ray worker node, so
the user types only ``--join A``; Ray's token never needs a copy in anyone's ``$HOME``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from platform_core import PlatformSettings, UnavailableError, auth
from platform_core.http import http_client, require_cluster
from platform_core.tls import scheme_of, server_tls

__all__ = ["RAY_HEAD_PATH", "learn_head", "router"]

RAY_HEAD_PATH = "/internal/platform/ray"

router = APIRouter()


@router.get(RAY_HEAD_PATH, include_in_schema=False, dependencies=[Depends(require_cluster)])
def ray_head(request: Request) -> dict[str, Any]:
    """This platform's Ray head: its address and token (cluster token); 404 without one."""
    node = getattr(request.app.state, "ray_node", None)
    if node is None or not node.head:
        raise HTTPException(404, "this platform runs no Ray head (start it with --ray)")
    if node.state != "running":
        raise HTTPException(503, f"this platform's Ray head is {node.state}")
    token = Path(node.token_path).read_text().strip()
    return {"address": node.address, "token": token}


def learn_head(settings: PlatformSettings, timeout: float = 15.0) -> tuple[str, str]:
    """``(address, token)`` of the Ray head of the platform ``settings.join`` names; raises
    ``UnavailableError`` with what to do when it has none or cannot be asked."""
    import httpx

    join = settings.join
    assert join is not None
    url = f"{scheme_of(server_tls(settings))}://{join}"
    token = auth.signer(settings, create=False).cluster_token("ray")
    try:
        with http_client(settings, base_url=url, token=token, timeout=timeout) as client:
            r = client.get(RAY_HEAD_PATH)
    except httpx.HTTPError as exc:
        raise UnavailableError(
            f"cannot ask {join} for its Ray head ({type(exc).__name__}: {exc}); is it up?"
        ) from None
    if r.status_code == 404:
        raise UnavailableError(
            f"{join} runs no Ray head: start it with `platform up --ray`, or leave --ray out"
        )
    if r.status_code != 200:
        raise UnavailableError(f"{join} did not give its Ray head: HTTP {r.status_code} {r.text}")
    body = r.json()
    return str(body["address"]), str(body["token"])
