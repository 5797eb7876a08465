"""Plain ASGI request and response helpers (the lean path that skips a framework's routing),
and Elkyn's one table of Firebase wire statuses."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from platform_core import PlatformError

from ..errors import (
    BodyTimeoutError,
    ClientDisconnectedError,
    InvalidDataError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PreconditionFailedError,
    TooManyStreamsError,
)

__all__ = [
    "FIREBASE_STATUS",
    "Request",
    "Send",
    "firebase_status",
    "json_body",
    "respond",
    "respond_json",
]

FIREBASE_STATUS: dict[type[PlatformError], int] = {
    PermissionDeniedError: 401,  # Firebase: 401 "Permission denied", with or without a token
    PayloadTooLargeError: 400,  # Firebase: 400 "Invalid data; ... larger than the limit"
    PreconditionFailedError: 412,  # Firebase: 412, the current value and its ETag
    TooManyStreamsError: 429,
    BodyTimeoutError: 408,
}
"""Where Firebase's REST routes answer another status than the error's core kind has (the
platform's routes, ``/health``, ``/auth/token``, ..., answer the core status)."""


def firebase_status(exc: PlatformError) -> int:
    """The status a Firebase REST route answers for ``exc``: the table's, else the core one."""
    for cls in type(exc).__mro__:
        status = FIREBASE_STATUS.get(cls)
        if status is not None:
            return status
    return exc.status


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Request:
    """What a handler needs from one HTTP request."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    receive: Receive
    client: str = ""
    query: str = ""
    """The raw query string (still percent-encoded), for forwarding the request as it came."""
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive) -> Request:
        root: str = scope.get("root_path", "")
        raw_path: bytes | None = scope.get("raw_path")
        if raw_path is not None:  # decode percent escapes once, from the raw bytes, as UTF-8
            raw = raw_path.split(b"?", 1)[0]
            try:
                path = (unquote_to_bytes(raw) if b"%" in raw else raw).decode()
            except UnicodeDecodeError:
                raise InvalidDataError("Invalid path: it is not UTF-8") from None
        else:
            path = scope["path"]
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        qs: bytes = scope.get("query_string", b"")
        params = dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True)) if qs else {}
        # ASGI servers give header names in lowercase already. A repeated header is joined
        # with ", " (RFC 9110 5.3), never "the last one wins": with two Host (or Origin)
        # headers, the --dev loopback check must not see only the friendly one.
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            name, value = k.decode("latin-1"), v.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        client = scope.get("client")
        return cls(
            scope["method"],
            path,
            params,
            headers,
            receive,
            client[0] if client else "",
            qs.decode("latin-1"),
        )

    async def body(self, limit: int, timeout: float = 30.0) -> bytes:
        """The whole request body, at most ``limit`` bytes and as many as Content-Length says.

        Each piece must arrive within ``timeout`` seconds of the one before (the server bounds
        the headers; a body that stalls is bounded here): else ``BodyTimeoutError`` (408).
        """
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(
                f"Invalid data; the request body ({declared} bytes) is larger than the "
                f"write size limit of {limit} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                async with asyncio.timeout(timeout):
                    message = await self.receive()
            except TimeoutError:
                raise BodyTimeoutError(
                    f"the request body stopped arriving for {timeout:g} s after {size} bytes "
                    "(ELKYN_BODY_TIMEOUT_SECONDS); nothing was written, send it again"
                ) from None
            if message["type"] == "http.disconnect":
                # the client went away mid-body: what arrived is not the value it meant
                raise ClientDisconnectedError(
                    f"the client disconnected after {size} bytes of the request body; "
                    "nothing was written"
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"Invalid data; the request body is larger than the write size limit of "
                    f"{limit} bytes"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if declared is not None and declared.isdigit() and size != int(declared):
            raise InvalidDataError(
                f"Invalid data; the request body has {size} bytes but Content-Length says "
                f"{declared}; nothing was written, send the whole body"
            )
        return b"".join(chunks)


def json_body(raw: bytes) -> Any:
    """The JSON value of a request body (Firebase's message when it does not parse)."""
    if not raw.strip():
        raise InvalidDataError("Invalid data; couldn't parse JSON object, array, or value.")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidDataError(
            "Invalid data; couldn't parse JSON object, array, or value."
        ) from None
    if _SURROGATE_ESCAPE.search(raw):  # pairs are fine; a lone one cannot be stored as UTF-8
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidDataError(
                "Invalid data; a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff "
                "without its pair): send valid Unicode text"
            ) from None
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json; charset=utf-8",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        head.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def dumps(value: Any, pretty: bool = False) -> bytes:
    if pretty:
        return json.dumps(value, indent=2, ensure_ascii=False).encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


async def respond_json(
    send: Send,
    status: int,
    value: Any,
    *,
    pretty: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await respond(send, status, dumps(value, pretty), headers=headers)
