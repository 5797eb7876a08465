"""A stored result another platform of the cluster holds, fetched through this gateway.

A result lives on the disk of the platform that ran its job (the job's record names that
platform: ``result.node``). Any other platform asked for it forwards the request, with the
caller's own token (the platforms share one secret, so the holder checks the same owner
rules), and streams the answer back unchanged; a forwarded request is never forwarded again.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from platform_core import UnavailableError
from platform_core.http import http_client

__all__ = ["FORWARDED", "forward"]

FORWARDED = "x-elytra-forwarded"
"""Set on a forwarded request: the platform receiving it answers from its own disk only."""
_PASSED = ("content-type", "x-total-rows")


def forward(base: str, node: str, request: Request, verify: ssl.SSLContext) -> Response:
    """``request`` asked of the platform at ``base`` (node ``node``), its answer streamed."""
    client = http_client(timeout=60.0, read=300.0, verify=verify)
    headers = {FORWARDED: "1", "authorization": request.headers.get("authorization", "")}
    try:
        sent = client.build_request(
            request.method, base + request.url.path, params=request.query_params, headers=headers
        )
        r = client.send(sent, stream=True)
    except httpx.HTTPError as exc:
        client.close()
        raise UnavailableError(
            f"the platform holding this result (node {node!r}, {base}) cannot be reached "
            f"({type(exc).__name__}); retry when it is back"
        ) from None
    kept = {k: r.headers[k] for k in _PASSED if k in r.headers}
    if r.status_code >= 400 or request.method != "GET":
        body = r.read()
        r.close()
        client.close()
        return Response(body, status_code=r.status_code, headers=kept)

    def chunks() -> Iterator[bytes]:
        try:
            yield from r.iter_bytes(1 << 20)
        finally:
            r.close()
            client.close()

    return StreamingResponse(chunks(), status_code=r.status_code, headers=kept)
