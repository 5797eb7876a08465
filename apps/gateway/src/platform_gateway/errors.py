"""Every gateway error is JSON ``{"error": ..., "type": ...}``; tracebacks are logged, never sent.

``PlatformError`` keeps its own status and body; Starlette's ``HTTPException`` (unknown route,
wrong method, a plugin's ``raise HTTPException``) and request validation failures are reshaped
to the same form; anything else becomes a 500 whose details stay in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_core import PlatformError, UnauthorizedError

__all__ = ["CatchAllMiddleware", "error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

# The same ``type`` words PlatformError subclasses use, so clients switch on one vocabulary.
_TYPES = {
    400: "bad_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "over_budget",
    503: "unavailable",
}


def error_response(
    status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error shape of the gateway."""
    return JSONResponse({"error": message, "type": kind}, status_code=status, headers=headers)


def _status_type(status: int) -> str:
    if status in _TYPES:
        return _TYPES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


async def _platform_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PlatformError)
    if exc.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message, exc_info=exc)
    # RFC 6750: a 401 names the scheme the client should use.
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "HTTP error"
    if exc.detail == phrase:
        # Starlette's default detail ("Not Found"): say which request it was instead.
        message = f"{phrase.lower()}: {request.method} {request.url.path}"
        allow = (exc.headers or {}).get("Allow")
        if exc.status_code == 405 and allow:
            message += f" (allowed: {allow})"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, _status_type(exc.status_code), exc.headers)


def _describe(err: Any) -> str:
    where = ".".join(str(part) for part in err.get("loc", ())) or "request"
    message = str(err.get("msg", "invalid"))
    reason = (err.get("ctx") or {}).get("error")
    if err.get("type") == "json_invalid" and reason:
        message = f"{message} ({reason})"
    return f"{where}: {message}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message = "; ".join(_describe(err) for err in exc.errors()) or "invalid request"
    return error_response(422, message, "bad_input")


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app`` (mounted apps keep their own)."""
    app.add_exception_handler(PlatformError, _platform_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
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
