"""Request body size limit: a pure-ASGI middleware answering 413 for bodies over the limit.

It checks ``Content-Length`` before the app runs, and counts the bytes of streamed (chunked)
bodies as the app reads them, so neither kind can make the gateway buffer more than the limit.
Once a streamed body passes the limit, the client gets the gateway's JSON 413 whatever the
route does with the error, including a mounted app (which would otherwise answer in its own
shape, e.g. Starlette's plain-text 413), unless the app had already started its answer.
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
        over_limit = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over_limit
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over_limit = True
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over_limit and not started:
                # The app's own answer to a body it did not get whole (a mounted app's
                # text/plain 413, say): dropped, the gateway answers below instead.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            # Reached when no handler answered it (a raw ASGI app lets it through).
            if started:
                raise
        if over_limit and not started:
            await error_response(413, _message(limit), "over_budget")(scope, receive, send)
