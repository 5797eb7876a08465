"""Transfer codings: a request body sent with any transfer coding but ``chunked`` is refused.

uvicorn's httptools parser (the one the platform's servers run) takes ``Transfer-Encoding:
gzip, chunked`` as plain chunked framing and hands the app the still-compressed bytes, which
a JSON route then stores as garbage or rejects with a misleading parse error (h11 refuses
such framing with a 400 itself). RFC 9112 (6.1) asks a server
for 501 on a transfer coding it does not implement, so every server on the kit answers
that, in the platform's JSON shape, and closes the connection (the body is left unread).
"""

from __future__ import annotations

import json
from typing import Any

from .wire import kind_of_status

__all__ = ["TransferCodingGuard", "unsupported_coding"]

NOT_IMPLEMENTED = 501


def unsupported_coding(headers: list[tuple[bytes, bytes]] | tuple[()]) -> str | None:
    """The ``Transfer-Encoding`` value of ``headers`` if it names anything but ``chunked``."""
    codings: list[str] = []
    raw: list[str] = []
    for name, value in headers:
        if name.lower() == b"transfer-encoding":
            text = value.decode("latin-1")
            raw.append(text)
            codings += [c.strip().lower() for c in text.split(",") if c.strip()]
    if raw and codings != ["chunked"]:
        return ", ".join(raw)
    return None


class TransferCodingGuard:
    """Answers 501 ``not_implemented`` to an HTTP request framed with an unknown coding.

    Pure ASGI and light, so :func:`platform_core.service.serve` wraps every app with it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        coding = unsupported_coding(scope.get("headers", ())) if scope["type"] == "http" else None
        if coding is None:
            await self.app(scope, receive, send)
            return
        message = (
            f"Transfer-Encoding {coding!r} is not supported: send the body as it is, "
            "with Content-Length or Transfer-Encoding: chunked"
        )
        # Plain ASGI, not a Starlette response: Elkyn's server runs without Starlette.
        body = json.dumps({"error": message, "type": kind_of_status(NOT_IMPLEMENTED)}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": NOT_IMPLEMENTED, "headers": headers})
        await send({"type": "http.response.body", "body": body})
