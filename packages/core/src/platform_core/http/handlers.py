"""The exception handlers and the catch-all middleware every FastAPI server installs.

``PlatformError`` answers with its own status and body; Starlette's ``HTTPException``
(unknown route, wrong method) and request validation failures (``bad_input`` 400, like any
other bad input) are reshaped to the same ``{"error", "type"}`` form; a foreign error known
to :mod:`platform_core.http.foreign` answers as its core kind; anything else is a 500 whose
traceback stays in the log. On a WebSocket the same errors close the connection instead:
1008 (policy violation) for a 4xx, 1011 (internal error) for a 5xx.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from ..errors import BadInputError, PlatformError, UnauthorizedError
from .foreign import translate
from .wire import error_body, kind_of_status

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "CatchAllMiddleware",
    "error_response",
    "install_error_handlers",
    "platform_error_response",
]

log = logging.getLogger(__name__)

WS_POLICY_VIOLATION = 1008
WS_INTERNAL_ERROR = 1011
_WS_REASON_BYTES = 123  # the most a WebSocket close frame can carry


def error_response(
    status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error shape of every server: ``{"error": message, "type": kind}``."""
    return JSONResponse({"error": message, "type": kind}, status_code=status, headers=headers)


def platform_error_response(exc: PlatformError) -> JSONResponse:
    """The answer for ``exc``: its status and body; a 401 names the Bearer scheme (RFC 6750)."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)


async def _close_websocket(websocket: WebSocket, status: int, message: str) -> None:
    """Close ``websocket`` for an error of HTTP ``status`` (refusing the handshake if need be)."""
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    code = WS_INTERNAL_ERROR if status >= 500 else WS_POLICY_VIOLATION
    reason = message.encode()[:_WS_REASON_BYTES].decode(errors="ignore")
    await websocket.close(code=code, reason=reason)


def _describe_request(conn: HTTPConnection) -> str:
    method = conn.scope.get("method", "WEBSOCKET")
    return f"{method} {conn.url.path}"


async def _platform_error(conn: HTTPConnection, exc: Exception) -> JSONResponse | None:
    assert isinstance(exc, PlatformError)
    if exc.status >= 500:
        log.error("%s failed: %s", _describe_request(conn), exc.message, exc_info=exc)
    if isinstance(conn, WebSocket):
        await _close_websocket(conn, exc.status, exc.message)
        return None
    return platform_error_response(exc)


async def _http_exception(conn: HTTPConnection, exc: Exception) -> JSONResponse | None:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "HTTP error"
    if exc.detail == phrase:
        # Starlette's default detail ("Not Found"): say which request it was instead.
        message = f"{phrase.lower()}: {_describe_request(conn)}"
        allow = (exc.headers or {}).get("Allow")
        if exc.status_code == 405 and allow:
            message += f" (allowed: {allow})"
    else:
        message = str(exc.detail)
    if isinstance(conn, WebSocket):
        await _close_websocket(conn, exc.status_code, message)
        return None
    return error_response(exc.status_code, message, kind_of_status(exc.status_code), exc.headers)


def _describe(err: Any) -> str:
    where = ".".join(str(part) for part in err.get("loc", ())) or "request"
    message = str(err.get("msg", "invalid"))
    reason = (err.get("ctx") or {}).get("error")
    if err.get("type") == "json_invalid" and reason:
        message = f"{message} ({reason})"
    return f"{where}: {message}"


async def _validation_error(conn: HTTPConnection, exc: Exception) -> JSONResponse:
    errors = cast(Any, exc).errors()
    message = "; ".join(_describe(err) for err in errors) or "invalid request"
    return error_response(BadInputError.status, message, BadInputError.kind)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app`` (mounted apps keep their own)."""
    from fastapi.exceptions import RequestValidationError

    # Starlette types a handler as for HTTP or for WebSockets; these two serve both.
    app.add_exception_handler(PlatformError, cast(ExceptionHandler, _platform_error))
    app.add_exception_handler(StarletteHTTPException, cast(ExceptionHandler, _http_exception))
    app.add_exception_handler(RequestValidationError, _validation_error)


class CatchAllMiddleware:
    """Turns an exception no handler took into JSON: a known foreign error as its core kind,
    anything else a 500 whose traceback is logged once.

    A pure-ASGI middleware rather than an ``Exception`` handler: Starlette re-raises after such
    a handler, so the server would log the same traceback a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            where = f"{scope.get('method')} {scope.get('path')}"
            known = translate(exc)
            if known is None or known.status >= 500:
                log.error("unhandled error in %s", where, exc_info=exc)
            else:
                log.info("%s: %s (%s)", where, known.message, type(exc).__name__)
            if started:  # too late for a clean answer; let the server drop the connection
                raise
            if known is not None:
                response = platform_error_response(known)
            else:
                response = error_response(500, "internal error (logged)", "internal")
            await response(scope, receive, send)
