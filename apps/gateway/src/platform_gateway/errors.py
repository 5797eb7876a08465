"""Every gateway error is JSON ``{"error": ..., "type": ...}``; tracebacks are logged, never sent.

``PlatformError`` keeps its own status and body; Starlette's ``HTTPException`` (unknown route,
wrong method, a plugin's ``raise HTTPException``) and request validation failures are reshaped
to the same form, their ``type`` taken from the core error of the same status; anything else
becomes a 500 whose details stay in the log. On a WebSocket the same errors close the
connection instead: 1008 (policy violation) for a 4xx, 1011 (internal error) for a 5xx.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from platform_core import PlatformError, UnauthorizedError

__all__ = ["CatchAllMiddleware", "error_response", "install_error_handlers", "kind_of_status"]

log = logging.getLogger(__name__)

WS_POLICY_VIOLATION = 1008
WS_INTERNAL_ERROR = 1011
_WS_REASON_BYTES = 123  # the most a WebSocket close frame can carry


def _core_kinds() -> dict[int, str]:
    """``{status: type}`` from ``platform_core``'s error classes, the first (most general) winning.

    The root comes first, so 500 is ``internal`` (not ``corrupt_data``), and 400 is
    ``bad_input`` (not its subclass ``SettingsError``'s). Only core's own classes count, so
    the mapping does not depend on which other packages happen to be imported.
    """
    kinds: dict[int, str] = {}
    pending: list[type[PlatformError]] = [PlatformError]
    while pending:
        cls = pending.pop(0)
        if cls.__module__ == PlatformError.__module__:
            kinds.setdefault(cls.status, cls.kind)
        pending.extend(cls.__subclasses__())
    return kinds


_KINDS = _core_kinds()


def kind_of_status(status: int) -> str:
    """The ``type`` word for an HTTP status: core's error kind, else the status phrase."""
    if status in _KINDS:
        return _KINDS[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


def error_response(
    status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error shape of the gateway."""
    return JSONResponse({"error": message, "type": kind}, status_code=status, headers=headers)


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
    # RFC 6750: a 401 names the scheme the client should use.
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    # Details may hold paths, dates, ...: encode them as FastAPI encodes any answer.
    body = jsonable_encoder(exc.to_dict())
    return JSONResponse(body, status_code=exc.status, headers=headers)


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
    assert isinstance(exc, RequestValidationError)
    message = "; ".join(_describe(err) for err in exc.errors()) or "invalid request"
    return error_response(422, message, "bad_input")


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app`` (mounted apps keep their own)."""
    # Starlette types a handler as for HTTP or for WebSockets; these two serve both.
    app.add_exception_handler(PlatformError, cast(ExceptionHandler, _platform_error))
    app.add_exception_handler(StarletteHTTPException, cast(ExceptionHandler, _http_exception))
    app.add_exception_handler(RequestValidationError, _validation_error)


class CatchAllMiddleware:
    """Turns an unexpected exception into a 500 JSON answer and logs its traceback once.

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
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:  # too late for a clean answer; let the server drop the connection
                raise
            response = error_response(500, "internal error (logged)", "internal")
            await response(scope, receive, send)
