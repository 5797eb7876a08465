"""What a client sees on the wire from `elkyn serve` (stock uvicorn + httptools), raw sockets.

The bounds a client meets: the write size limit (on Content-Length and while reading a chunked
body), a body that stops arriving (``ELKYN_BODY_TIMEOUT_SECONDS``: 408, nothing written, the
connection closed), a client leaving mid-body (nothing written), idle keep-alive connections
(closed after ``PLATFORM_KEEP_ALIVE_SECONDS``, 5 s here), malformed requests (400, closed); and
pipelining, HEAD, chunked bodies, ``Expect: 100-continue``, and a slow SSE reader cut while
the others get every change in order (the broadcaster's direct ASGI sends and the queue).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from elkyn.testing import stop_server

from .conftest import Server, serve

ADMIN = "Authorization: Bearer owner\r\n"
BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = serve(
        tmp_path_factory.mktemp("wire"),
        "--dev",
        "--memory",
        ELKYN_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        ELKYN_MAX_PENDING_EVENTS="200",
        ELKYN_MAX_PENDING_BYTES=str(1 << 20),
        # uvicorn's own 5 s, which these tests time (the servers' default is 75 s)
        PLATFORM_KEEP_ALIVE_SECONDS="5",
    )
    yield srv
    stop_server(srv.process)


def _port(srv: Server) -> int:
    return int(srv.url.rsplit(":", 1)[1])


def raw(port: int, data: bytes, *, read_for: float = 1.0) -> bytes:
    """Send ``data`` on a fresh connection; everything read until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_for) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def read_until_closed(s: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    s.settimeout(timeout)
    t0 = time.monotonic()
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out, time.monotonic() - t0


def statuses(answer: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]


def test_pipelined_requests_answered_in_order(wire: Server) -> None:
    reqs = b"".join(
        f"PUT /pipe/{i}.json HTTP/1.1\r\nHost: localhost\r\n{ADMIN}"
        f"Content-Length: {len(str(i))}\r\n\r\n{i}".encode()
        for i in range(20)
    )
    reqs += b"".join(
        f"GET /pipe/{i}.json HTTP/1.1\r\nHost: localhost\r\n{ADMIN}\r\n".encode() for i in range(20)
    )
    reqs += (
        f"GET /pipe.json HTTP/1.1\r\nHost: localhost\r\n{ADMIN}Connection: close\r\n\r\n".encode()
    )
    out = raw(_port(wire), reqs, read_for=5)
    assert statuses(out) == [200] * 41
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in out.split(b"HTTP/1.1 ")[1:]]
    assert [int(b) for b in bodies[20:40]] == list(range(20))  # each GET after its PUT, in order
    assert json.loads(bodies[40]) == [*range(20)]  # keys 0..19 read back as an array


def test_keep_alive_and_head(wire: Server) -> None:
    with httpx.Client(base_url=wire.url) as client:
        first = client.get("/health")
        head = client.head("/health")
        second = client.get("/health")
    assert first.status_code == head.status_code == second.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "15"
    out = raw(
        _port(wire),
        b"HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    assert statuses(out) == [200, 200]
    assert out.endswith(b'{"status":"ok"}')


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST /x.json HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_request_is_a_400_and_the_connection_closes(
    wire: Server, request_bytes: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", _port(wire)), timeout=5) as s:
        s.sendall(request_bytes)
        out, _ = read_until_closed(s, 5)  # closed by the server, not by our timeout
    assert statuses(out) == [400], out


def test_oversized_body_refused_on_length_and_while_reading(wire: Server) -> None:
    limit = 256 * 1024 * 1024  # ELKYN_MAX_WRITE_BYTES's default (Firebase's 256 MB)
    head = (
        f"PUT /big.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: {limit + 1}\r\n\r\n"
    )
    out = raw(_port(wire), head.encode() + b"1")  # refused before the body is read
    assert statuses(out) == [400]
    assert b"larger than the write size limit" in out
    chunk = b'"' + b"a" * (1 << 16) + b'"'
    chunked = f"PUT /big.json?writeSizeLimit=tiny HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}"
    chunked += "Transfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for _ in range(20))
    out = raw(_port(wire), chunked.encode() + body + b"0\r\n\r\n", read_for=3)
    assert statuses(out) == [400]
    assert b"larger than the write size limit" in out
    with httpx.Client(base_url=wire.url) as client:
        assert client.get("/big.json", params={"auth": "owner"}).json() is None


def test_chunked_body_and_expect_continue(wire: Server) -> None:
    body = b'{"a": 1, "b": [1, 2]}'
    req = f"PUT /chunked.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Transfer-Encoding: chunked\r\n\r\n"
    out = raw(
        _port(wire),
        req.encode()
        + b"5\r\n"
        + body[:5]
        + b"\r\n%x\r\n" % (len(body) - 5)
        + body[5:]
        + b"\r\n0\r\n\r\n",
    )
    assert statuses(out) == [200]
    assert json.loads(out.split(b"\r\n\r\n", 1)[1]) == {"a": 1, "b": [1, 2]}
    with socket.create_connection(("127.0.0.1", _port(wire)), timeout=3) as s:
        s.sendall(
            f"PUT /cont.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Expect: 100-continue\r\n"
            "Content-Length: 2\r\n\r\n".encode()
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"42")
        answer = b""
        while not answer.endswith(b"\r\n\r\n42"):  # head and body may come in two writes
            answer += s.recv(4096)
    assert statuses(answer) == [200]
    assert answer.endswith(b"42")


def test_a_body_shorter_than_its_content_length_writes_nothing(wire: Server) -> None:
    """The client leaves mid-body: what arrived is not the value it meant."""
    with socket.create_connection(("127.0.0.1", _port(wire)), timeout=3) as s:
        s.sendall(
            f"PUT /half.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: 100\r\n\r\n"
            '{"partial": 1}'.encode()
        )
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
    time.sleep(0.2)
    with httpx.Client(base_url=wire.url) as client:
        assert client.get("/half.json", params={"auth": "owner"}).json() is None


def test_a_stalled_body_is_a_408_and_the_connection_closes(wire: Server) -> None:
    """A body that stops arriving is answered after ELKYN_BODY_TIMEOUT_SECONDS, nothing
    written, and the server closes the connection (the rest of the body is not awaited)."""
    with socket.create_connection(("127.0.0.1", _port(wire)), timeout=5) as s:
        s.sendall(
            f"PUT /stall.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: 10\r\n\r\n1".encode()
        )
        out, took = read_until_closed(s, BODY_TIMEOUT + 5)
    assert statuses(out) == [408], out
    assert b"stopped arriving" in out
    assert BODY_TIMEOUT - 0.2 < took < BODY_TIMEOUT + 3
    with httpx.Client(base_url=wire.url) as client:
        assert client.get("/stall.json", params={"auth": "owner"}).json() is None


def test_a_trickled_body_within_the_timeout_is_taken(wire: Server) -> None:
    """Each pause is bounded, not the whole body: a slow but steady client gets through."""
    with socket.create_connection(("127.0.0.1", _port(wire)), timeout=10) as s:
        s.sendall(
            f"PUT /slow.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: 4\r\n\r\n".encode()
        )
        for piece in (b"1", b"2", b"3", b"4"):
            time.sleep(BODY_TIMEOUT / 2)
            s.sendall(piece)
        answer = b""
        while not answer.endswith(b"\r\n\r\n1234"):
            answer += s.recv(4096)
    assert statuses(answer) == [200]
    assert answer.endswith(b"1234")


def test_idle_keep_alive_connection_closed(wire: Server) -> None:
    with socket.create_connection(("127.0.0.1", _port(wire)), timeout=15) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += s.recv(4096)
        assert statuses(first) == [200]
        rest, took = read_until_closed(s, 15)
    assert rest == b""
    assert 4 < took < 10  # PLATFORM_KEEP_ALIVE_SECONDS (5 s here)


def test_http10_answered_and_closed(wire: Server) -> None:
    req = b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    with socket.create_connection(("127.0.0.1", _port(wire)), timeout=5) as s:
        s.sendall(req)
        out, took = read_until_closed(s, 5)
    assert statuses(out) == [200]
    assert out.endswith(b'{"status":"ok"}')
    assert took < 2  # closed at once, not on a timeout


def test_pipelined_big_bodies_all_answered(wire: Server) -> None:
    size = 200 * 1024
    reqs = b"".join(
        f"PUT /bigpipe/{i}.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: {size}\r\n\r\n".encode()
        + json.dumps(str(i) * (size - 2)).encode()
        for i in range(10)
    )
    reqs += b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    out = raw(_port(wire), reqs, read_for=10)
    assert statuses(out) == [200] * 11


# ---------------------------------------------------------------- streams
class _Reader:
    """An SSE client on a raw socket that counts the change events it got."""

    def __init__(self, port: int, path: str, read: bool = True) -> None:
        self.sock = socket.socket()
        if not read:  # a small window: the server's buffers fill soon
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            f"GET {path}.json HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{ADMIN}\r\n".encode()
        )
        self.data = b""
        if read:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.data += chunk
        except OSError:
            pass

    def values(self) -> list[int]:
        out = []
        for event in self.data.split(b"\n\n")[:-1]:  # the last piece may be half received
            if b"event: patch" in event:
                out.append(json.loads(event.split(b"data: ", 1)[1])["data"]["n"])
        return out


def test_slow_subscriber_cut_others_get_everything(wire: Server) -> None:
    """Caught-up readers get each change from the broadcaster's direct ``send``; the reader
    that stopped reading fills the server's buffer (its sends wait, then its queue) and is
    cut, without losing or reordering anything for the others."""
    port = _port(wire)
    readers = [_Reader(port, "/feed") for _ in range(5)]
    stalled = _Reader(port, "/feed", read=False)
    time.sleep(0.3)
    blob = "x" * 16000  # 400 of them: more than the socket buffers and the stream's bound hold
    with httpx.Client(base_url=wire.url, params={"auth": "owner"}, timeout=30) as client:
        for i in range(400):
            client.patch("/feed.json", json={"n": i, "blob": blob}).raise_for_status()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(len(r.values()) < 400 for r in readers):
        time.sleep(0.05)
    for r in readers:
        assert r.values() == list(range(400))  # 0 lost, in order
    # the stalled one was cut: reading now drains what was buffered, then the end
    got, _ = read_until_closed(stalled.sock, 10)
    assert got.startswith(b"HTTP/1.1 200")
    assert got.endswith(b"0\r\n\r\n")  # the chunked stream's end
    for r in [*readers, stalled]:
        r.sock.close()


def test_stream_events_in_order_under_a_burst(wire: Server) -> None:
    """Changes written faster than a reader takes them mix the direct path and the queue:
    every one arrives, once, in commit order."""
    port = _port(wire)
    reader = _Reader(port, "/burst")
    time.sleep(0.3)
    with httpx.Client(base_url=wire.url, params={"auth": "owner"}) as client:
        for i in range(300):
            client.patch("/burst.json", json={"n": i}).raise_for_status()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(reader.values()) < 300:
        time.sleep(0.05)
    reader.sock.close()
    assert reader.values() == list(range(300))
