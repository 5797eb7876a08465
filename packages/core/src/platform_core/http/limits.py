"""Request body size limit: a pure-ASGI middleware answering 413 ``over_budget`` JSON.

It checks ``Content-Length`` before the app runs, and counts the bytes of streamed (chunked)
bodies as the app reads them, so neither kind can make a server buffer more than the limit.
Once a streamed body passes the limit, the client gets the JSON 413 whatever the route does
with the error, including a mounted app (which would otherwise answer in its own shape, e.g.
Starlette's plain-text 413), unless the app had already started its answer.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BadInputError, OverBudgetError
from .handlers import error_response

__all__ = ["BodyLimitMiddleware", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit.

    An ``HTTPException`` so that FastAPI's body parsing passes it on (it turns other errors into
    a 400) and the middleware answers 413 in the JSON shape.
    """

    def __init__(self, message: str) -> None:
        super().__init__(OverBudgetError.status, message)


class BodyLimitMiddleware:
    """Rejects HTTP request bodies larger than ``max_bytes`` with 413 JSON.

    ``setting`` names what to raise in the message (``PLATFORM_MAX_BODY_BYTES``).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, setting: str = "PLATFORM_MAX_BODY_BYTES"
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = (
            f"request body is larger than the limit of {max_bytes} bytes "
            f"(send large data as chunked uploads, or raise {setting})"
        )

    def _too_large(self) -> ASGIApp:
        return error_response(OverBudgetError.status, self.message, OverBudgetError.kind)

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
                    bad = error_response(
                        BadInputError.status, "Content-Length is not a number", BadInputError.kind
                    )
                    await bad(scope, receive, send)
                    return
                if declared > limit:
                    await self._too_large()(scope, receive, send)
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
                    raise BodyTooLarge(self.message)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over_limit and not started:
                # The app's own answer to a body it did not get whole (a mounted app's
                # text/plain 413, say): dropped, the middleware answers below instead.
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
        except Exception:
            if not over_limit or started:
                raise
        if over_limit and not started:
            await self._too_large()(scope, receive, send)
