"""``elkyn serve``'s HTTP/1.1 connection: an asyncio Protocol on httptools below ASGI.

uvicorn's own httptools protocol costs more per request than Elkyn's handler does (two
socket writes per answer, a flow-control object, per-message checks); this one parses with
the same httptools, builds the same ASGI scope, and calls the same app (``ElkynApp`` behind
uvicorn's middleware), so every route keeps one implementation. An answer with a
Content-Length leaves in one ``transport.write`` (head and body), a stream's chunks go
straight to the transport. uvicorn's server still owns the listening socket, TLS, the
lifespan and graceful shutdown: ``elkyn serve`` passes this class as uvicorn's ``http``.

What a mature server bounds: the request line and headers (bytes and count), the time to send
the headers (slowloris) and each pause inside a body, the idle time between keep-alive
requests, the number of pipelined requests read ahead and the bytes a connection holds for
its requests (bodies not yet taken by the app, heads of requests not yet started: reading
pauses past ``body_high_water`` until the app takes them), and the bytes waiting to be written (the app waits for the socket to drain). The
body size limit is the app's, checked on Content-Length and while reading as under uvicorn.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from collections import deque
from typing import Any
from urllib.parse import unquote

import httptools

__all__ = ["ElkynHTTP"]

log = logging.getLogger("elkyn.http")

_HEADER_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


_STATUS = {code: _status_line(code) for code in range(100, 600)}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _plain(status: int, text: str) -> bytes:
    """A whole answer the protocol gives itself (malformed request, timeout), then closes."""
    body = text.encode()
    return (
        _STATUS[status]
        + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


class _Refused(Exception):
    """A request the protocol answers itself before the app sees it (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Cycle:
    """One request and its answer: the ASGI ``receive`` and ``send`` of that request."""

    __slots__ = (
        "buffered",
        "chunked",
        "chunks",
        "complete",
        "delivered",
        "disconnected",
        "expect_continue",
        "head",
        "head_held",
        "head_only",
        "keep_alive",
        "proto",
        "response_complete",
        "scope",
        "started",
        "waiter",
    )

    def __init__(self, proto: ElkynHTTP, scope: dict[str, Any], keep_alive: bool) -> None:
        self.proto = proto
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = False
        self.chunks: list[bytes] = []
        self.buffered = 0  # body bytes in chunks (counted in the connection's ``held`` too)
        self.head_held = 0  # request head bytes counted in ``held`` until the request starts
        self.complete = False  # the whole body has been parsed
        self.delivered = False  # the last body message went to the app
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.head: bytes = b""
        self.started = False
        self.chunked = False
        self.response_complete = False
        self.head_only = scope["method"] == "HEAD"

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        proto = self.proto
        if self.expect_continue and not self.started and not self.disconnected:
            self.expect_continue = False
            proto.transport.write(_CONTINUE)
        while not (self.disconnected or self.chunks or (self.complete and not self.delivered)):
            if self.response_complete:
                return {"type": "http.disconnect"}
            self.waiter = proto.loop.create_future()
            waiting_for_body = not self.complete
            if waiting_for_body:
                proto.arm_body_timer()
            try:
                await self.waiter
            finally:
                self.waiter = None
                if waiting_for_body:
                    proto.cancel_body_timer()
        if self.disconnected:
            return {"type": "http.disconnect"}
        body = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.drop_body()
        if self.complete:
            self.delivered = True
        return {"type": "http.request", "body": body, "more_body": not self.complete}

    async def send(self, message: dict[str, Any]) -> None:
        proto = self.proto
        if proto.write_paused and not self.disconnected:
            await proto.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self.started = True
            self.expect_continue = False
            self.head = self._head(message["status"], message.get("headers", ()))
            return
        if self.response_complete:
            raise RuntimeError("the response is complete already")
        if kind != "http.response.body":
            raise RuntimeError(f"expected http.response.body, got {kind!r}")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self.head_only:
            body = b""
        elif self.chunked:
            body = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + (
                b"" if more else b"0\r\n\r\n"
            )
        if self.head:
            body = self.head + body
            self.head = b""
        if body:
            proto.transport.write(body)
        if not more:
            self.response_complete = True

    def drop_body(self) -> None:
        """The buffered body is taken (or no longer wanted): the connection holds less."""
        self.chunks = []
        if self.buffered:
            self.proto.release(self.buffered)
            self.buffered = 0

    def write_now(self, piece: bytes) -> bool:
        """A piece of a started chunked answer, written at once (the SSE broadcaster's path);
        False when it cannot go now (not started, over the write buffer's high-water mark,
        gone): the caller sends it the ASGI way instead, which waits for the socket."""
        proto = self.proto
        if (
            not self.chunked
            or self.head
            or self.response_complete
            or self.disconnected
            or proto.write_paused
        ):
            return False
        proto.transport.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        return True

    def _head(self, status: int, headers: Any) -> bytes:
        parts = [_STATUS[status], *self.proto.server_state.default_headers_raw()]
        length = False
        for name, value in headers:
            if _HEADER_VALUE.search(value) or _HEADER_VALUE.search(name):
                raise RuntimeError("invalid HTTP header")
            lower = name.lower()
            if lower == b"content-length":
                length = True
            elif lower == b"connection" and b"close" in value.lower():
                self.keep_alive = False
            parts.append(b"%b: %b\r\n" % (name, value))
        if not self.complete:
            # answered before the body arrived (a refusal): the rest is not read
            self.keep_alive = False
        if not length and not self.head_only and status not in (204, 304):
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


class _State:
    """Shared per-server state: uvicorn's (connections, tasks, default headers)."""

    def __init__(self, server_state: Any) -> None:
        self.inner = server_state
        self._seen: Any = None
        self._raw: list[bytes] = []

    def default_headers_raw(self) -> list[bytes]:
        """uvicorn's ``date`` and ``server`` lines (it renews the list every second)."""
        current = self.inner.default_headers
        if current is not self._seen:
            self._raw = [b"%b: %b\r\n" % (k, v) for k, v in current]
            self._seen = current
        return self._raw


class ElkynHTTP(asyncio.Protocol):
    """One HTTP/1.1 connection (uvicorn's protocol interface: ``http=ElkynHTTP``)."""

    max_header_bytes = 64 * 1024
    """Request line and headers together."""
    max_headers = 100
    header_timeout = 10.0
    """Seconds from a request's first byte to the end of its headers."""
    body_timeout = 30.0
    """Seconds the app may wait for the next piece of a body it is reading."""
    max_pipelined = 16
    """Requests read ahead of the one being answered (reading pauses past this)."""
    linger_timeout = 2.0
    """Seconds the unread rest of a refused body is read and dropped before closing."""
    body_high_water = 64 * 1024  # uvicorn's HIGH_WATER_LIMIT
    """Bytes a connection holds for its requests (bodies not yet taken by the app, across all
    pipelined requests, and the heads of requests not yet started) before reading pauses
    until the app takes them: at most this plus one socket read per connection."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.root_path: str = config.root_path
        self.keep_alive_timeout: float = config.timeout_keep_alive
        self.app_state = app_state
        self.server_state = _State(server_state)
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.pending: deque[_Cycle] = deque()
        self.incoming: _Cycle | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.refused: _Refused | None = None
        self.reading_head = False
        self.lingering = False
        self.discarding = False  # after a broken request: input is dropped unparsed
        self.head_seen = 0  # bytes received while a head was in progress (httptools buffers
        # a header value whole before ``on_header``, so ``on_header`` alone cannot bound it)
        self.broken: bytes | None = None  # the answer to send once the running request ends
        self.write_paused = False
        self.drainers: list[asyncio.Future[None]] = []
        self.read_paused = False
        self.held = 0  # bytes held for pending requests (see ``body_high_water``)
        self.closed = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None

    # ---- connection ----
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.server_state.inner.connections.add(self)
        server = transport.get_extra_info("sockname")
        client = transport.get_extra_info("peername")
        self.server = tuple(server[:2]) if isinstance(server, tuple) else None
        self.client = tuple(client[:2]) if isinstance(client, tuple) else None
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self._arm_idle(self.keep_alive_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server_state.inner.connections.discard(self)
        self._cancel_idle()
        self.cancel_body_timer()
        for cycle in self.pending:
            cycle.disconnected = True
            cycle.wake()
        if self.incoming is not None and self.incoming not in self.pending:
            self.incoming.disconnected = True
        self._wake_drainers()

    def eof_received(self) -> bool | None:
        return None  # close our side too (a half-closed client gets no further answers)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drainers()

    def _wake_drainers(self) -> None:
        drainers, self.drainers = self.drainers, []
        for fut in drainers:
            if not fut.done():
                fut.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark (or it closed)."""
        if self.write_paused and not self.closed:
            fut = self.loop.create_future()
            self.drainers.append(fut)
            await fut

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close when idle, else after the current answer."""
        if not self.pending:
            self.transport.close()
        else:
            self.pending[0].keep_alive = False
            for cycle in list(self.pending)[1:]:
                cycle.disconnected = True  # not started: never answered
            while len(self.pending) > 1:
                self.pending.pop()

    # ---- timers ----
    def _arm_idle(self, seconds: float) -> None:
        self._cancel_idle()
        self.idle_timer = self.loop.call_later(seconds, self._timed_out)

    def _cancel_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _timed_out(self) -> None:
        """Idle between requests: close. Headers not finished in time: 408, then close."""
        self.idle_timer = None
        if self.reading_head and not self.pending and not self.closed:
            self.transport.write(_plain(408, "the request headers took too long; closing"))
        self.transport.close()

    def arm_body_timer(self) -> None:
        self.cancel_body_timer()
        self.body_timer = self.loop.call_later(self.body_timeout, self.transport.close)

    def cancel_body_timer(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    # ---- reading ----
    def data_received(self, data: bytes) -> None:
        if self.discarding:
            return
        if self.reading_head:
            self.head_seen += len(data)
        try:
            self.parser.feed_data(data)
            if self.reading_head and self.head_seen > self.max_header_bytes:
                self._count(0)  # not ended within the limit: 431 whatever httptools holds
        except httptools.HttpParserUpgrade:
            # an Upgrade request: answered as plain HTTP, and the connection ends after it
            if self.pending:
                self.pending[-1].keep_alive = False
            self._pause_reading()
        except httptools.HttpParserError as exc:
            refused = self.refused or _Refused(400, f"malformed HTTP request: {exc}")
            self._break(_plain(refused.status, refused.message))
        except _Refused as refused:  # raised by ``_count`` outside the parser
            self._break(_plain(refused.status, refused.message))

    def _break(self, answer: bytes) -> None:
        """The byte stream is no longer a request: answer once the running one is done."""
        self._pause_reading()
        self._cancel_idle()
        broken_body, self.incoming = self.incoming, None
        if broken_body is not None and not broken_body.complete:
            broken_body.disconnected = True  # its body is not what was meant: nothing written
            broken_body.wake()
        if self.pending:
            self.broken = answer
            self.pending[0].keep_alive = False
            while len(self.pending) > 1:
                self.pending.pop()  # read ahead but not started: dropped with the connection
            return
        self.transport.write(answer)
        self._linger(discard=True)

    def _linger(self, *, discard: bool = False) -> None:
        """Answered before all of the input was read (a refused body; with ``discard``, a
        broken request, whose rest is not parsed): our side ends now, and the rest is read and
        dropped for a moment before closing, so that the client reads the answer instead of a
        connection reset."""
        self.lingering = True
        self.discarding = discard
        self.broken = None
        self.reading_head = False
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._resume_reading()
        self._arm_idle(self.linger_timeout)

    def _pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and not self.closed and self.broken is None:
            self.read_paused = False
            self.transport.resume_reading()

    def hold(self, n: int) -> None:
        """``n`` more bytes held for pending requests: reading pauses past the mark."""
        self.held += n
        if self.held > self.body_high_water:
            self._pause_reading()

    def release(self, n: int) -> None:
        self.held -= n
        self.body_drained()

    def body_drained(self) -> None:
        if (
            self.read_paused
            and len(self.pending) <= self.max_pipelined
            and self.held <= self.body_high_water
        ):
            self._resume_reading()

    # ---- httptools callbacks ----
    def on_message_begin(self) -> None:
        if self.lingering:
            self.transport.close()
            return
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.head_seen = 0
        self.reading_head = True
        self._arm_idle(self.header_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))
        self._count(len(name) + len(value) + 4)
        if len(self.headers) > self.max_headers:
            self.refused = _Refused(431, f"more than {self.max_headers} request headers")
            raise self.refused

    def _count(self, n: int) -> None:
        self.header_bytes += n
        if max(self.header_bytes, self.head_seen) > self.max_header_bytes:
            self.refused = _Refused(
                431, f"the request line and headers are over {self.max_header_bytes} bytes"
            )
            raise self.refused

    def on_headers_complete(self) -> None:
        self._cancel_idle()
        self.reading_head = False
        parser = self.parser
        try:
            parsed = httptools.parse_url(self.url)
            raw_path: bytes = parsed.path
            path = raw_path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            self.refused = _Refused(400, "malformed request target")
            raise self.refused from None
        if "%" in path:
            path = unquote(path)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": parser.get_http_version(),
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": self.root_path,
            "path": self.root_path + path,
            "raw_path": self.root_path.encode("ascii") + raw_path,
            "query_string": parsed.query or b"",
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        # HTTP/1.0 keep-alive is not offered (as under uvicorn): its answer says close
        keep_alive = scope["http_version"] != "1.0" and parser.should_keep_alive()
        cycle = _Cycle(self, scope, keep_alive)
        scope["extensions"] = {"elkyn.write_now": cycle.write_now}
        for name, value in self.headers:
            if name == b"expect" and value.lower() == b"100-continue":
                cycle.expect_continue = True
        self.incoming = cycle
        self.pending.append(cycle)
        self.server_state.inner.total_requests += 1
        if len(self.pending) == 1:
            self._start(cycle)
        else:
            cycle.head_held = self.header_bytes
            self.hold(cycle.head_held)
            if len(self.pending) > self.max_pipelined:
                self._pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.incoming
        if cycle is None or cycle.response_complete or cycle.disconnected:
            return  # answered already (or dropped): the rest of its body is discarded
        cycle.chunks.append(body)
        cycle.buffered += len(body)
        self.hold(len(body))
        if self.body_timer is not None:
            self.arm_body_timer()  # the client is still sending
        cycle.wake()

    def on_message_complete(self) -> None:
        if self.lingering:
            self.transport.close()
            return
        cycle = self.incoming
        self.incoming = None
        if cycle is not None:
            cycle.complete = True
            cycle.wake()

    # ---- running the app ----
    def _start(self, cycle: _Cycle) -> None:
        if cycle.head_held:
            self.release(cycle.head_held)
            cycle.head_held = 0
        task = self.loop.create_task(self._run(cycle))
        tasks = self.server_state.inner.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run(self, cycle: _Cycle) -> None:
        try:
            await self.app(cycle.scope, cycle.receive, cycle.send)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                self.transport.close()
                raise
            log.error("exception in the ASGI app", exc_info=exc)
            if not cycle.started and not cycle.disconnected:
                cycle.keep_alive = False
                self.transport.write(_plain(500, "Internal Server Error"))
            cycle.keep_alive = False
        if not cycle.response_complete and not cycle.disconnected:
            if not cycle.started:
                self.transport.write(_plain(500, "Internal Server Error"))
            cycle.keep_alive = False
        self._done(cycle)

    def _done(self, cycle: _Cycle) -> None:
        if self.pending and self.pending[0] is cycle:
            self.pending.popleft()
        cycle.drop_body()  # a body the app did not read
        if self.closed:
            return
        if not cycle.keep_alive or cycle.disconnected:
            if self.broken is not None:
                self.transport.write(self.broken)
                self._linger(discard=True)
            elif cycle.complete or cycle.disconnected:
                self.transport.close()
            else:
                self._linger()
            return
        if self.pending:
            self._start(self.pending[0])
        elif self.incoming is None:
            self._arm_idle(self.keep_alive_timeout)
        self.body_drained()
