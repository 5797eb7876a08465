"""Request body size limit: a pure-ASGI middleware answering 413 for bodies over the limit.

It checks ``Content-Length`` before the app runs, and counts the bytes of streamed (chunked)
bodies as the app reads them, so neither kind can make the gateway buffer more than the limit.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

__all__ = ["BodyLimitMiddleware", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit.

    An ``HTTPException`` so that FastAPI's body parsing passes it on (it turns other errors into
    a 400) and the gateway's handler answers 413 in its JSON shape.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))


def _message(limit: int) -> str:
    return (
        f"request body is larger than the limit of {limit} bytes "
        "(send large data as chunked uploads, or raise PLATFORM_MAX_BODY_BYTES)"
    )


class BodyLimitMiddleware:
    """Rejects HTTP request bodies larger than ``max_bytes`` with 413 JSON."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(400, "Content-Length is not a number", "bad_input")(
                        scope, receive, send
                    )
                    return
                if declared > limit:
                    await error_response(413, _message(limit), "over_budget")(scope, receive, send)
                    return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Reached here when the app read the body outside FastAPI's parsing (a raw
            # ``request.body()`` or a mounted app without a handler for it).
            if started:
                raise
            await error_response(413, _message(limit), "over_budget")(scope, receive, send)
