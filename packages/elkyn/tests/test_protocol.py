"""``elkyn serve``'s own HTTP/1.1 protocol (``server/protocol.py``) against uvicorn's.

Both run in this process on uvicorn's server, each with its own ``ElkynApp`` over an
in-memory store: the uvicorn+httptools one is the oracle for the lean one (same requests,
same statuses, bodies and Elkyn headers). The wire-level tests (limits, timeouts, pipelining,
a client leaving mid-body, slow SSE readers) talk to the lean one over raw sockets.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elkyn import Store
from elkyn.server import ElkynApp
from elkyn.server.protocol import ElkynHTTP
from elkyn.settings import elkyn_settings
from platform_core.auth import TokenSigner

SECRET = "p" * 40


class QuickHTTP(ElkynHTTP):
    """The lean protocol with timeouts short enough for a test."""

    header_timeout = 0.5
    body_timeout = 0.5


@dataclass
class Running:
    url: str
    port: int
    store: Store
    app: ElkynApp


class Servers:
    """uvicorn servers on one event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[uvicorn.Server] = []
        self.stores: list[Store] = []
        self.running: list[Any] = []

    def start(self, http: Any, tls: tuple[Path, Path] | None = None, **env: Any) -> Running:
        settings = elkyn_settings(memory=True, **env)
        store = Store(memory=True, max_pending_events=200, max_pending_bytes=1 << 20)
        self.stores.append(store)
        app = ElkynApp(settings, store, TokenSigner(SECRET))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        options: dict[str, Any] = {}
        if tls is not None:
            options = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])}
        config = uvicorn.Config(
            app,
            http=http,
            log_level="warning",
            lifespan="off",
            timeout_keep_alive=2,
            timeout_graceful_shutdown=1,
            **options,
        )
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.servers.append(server)
        self.running.append(
            asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), self.loop)
        )
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        scheme = "https" if tls else "http"
        return Running(f"{scheme}://127.0.0.1:{port}", port, store, app)

    def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True
        for running in self.running:
            running.result(10)

        async def cancel_rest() -> None:  # the streams' keep-alive tickers
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        for store in self.stores:
            store.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lean(servers: Servers) -> Running:
    return servers.start(QuickHTTP, dev=True)


@pytest.fixture(scope="module")
def oracle_pair(servers: Servers) -> tuple[Running, Running]:
    return servers.start(ElkynHTTP, dev=True), servers.start("httptools", dev=True)


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


def statuses(answer: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]


ADMIN = "Authorization: Bearer owner\r\n"


# ---------------------------------------------------------------- wire-level behaviour
def test_pipelined_requests_answered_in_order(lean: Running) -> None:
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
    out = raw(lean.port, reqs, read_for=5)
    assert statuses(out) == [200] * 41
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in out.split(b"HTTP/1.1 ")[1:]]
    assert [int(b) for b in bodies[20:40]] == list(range(20))  # each GET after its PUT, in order
    assert json.loads(bodies[40]) == [*range(20)]  # keys 0..19 read back as an array
    assert out.count(b"connection: close") == 1


def test_keep_alive_and_head(lean: Running) -> None:
    with httpx.Client(base_url=lean.url) as client:
        first = client.get("/health")
        head = client.head("/health")
        second = client.get("/health")
    assert first.status_code == head.status_code == second.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "15"
    out = raw(
        lean.port,
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
def test_malformed_request_is_a_clean_400(lean: Running, request_bytes: bytes) -> None:
    out = raw(lean.port, request_bytes)
    assert statuses(out) == [400], out
    assert b"malformed HTTP request" in out
    assert b"connection: close" in out


def test_oversized_headers_refused(lean: Running) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(ElkynHTTP.max_headers + 1))
    assert statuses(raw(lean.port, b"GET /health HTTP/1.1\r\n" + many + b"\r\n")) == [431]
    big = b"X-Big: " + b"a" * (ElkynHTTP.max_header_bytes + 1) + b"\r\n"
    assert statuses(raw(lean.port, b"GET /health HTTP/1.1\r\n" + big + b"\r\n")) == [431]
    long_url = b"GET /" + b"a" * (ElkynHTTP.max_header_bytes + 1) + b" HTTP/1.1\r\n\r\n"
    assert statuses(raw(lean.port, long_url)) == [431]


def test_oversized_body_refused_on_length_and_while_reading(lean: Running) -> None:
    limit = lean.app.settings.max_write_bytes
    head = (
        f"PUT /big.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: {limit + 1}\r\n\r\n"
    )
    out = raw(lean.port, head.encode() + b"1")  # refused before the body is read
    assert statuses(out) == [400]
    assert b"larger than the write size limit" in out
    assert b"connection: close" in out
    chunk = b'"' + b"a" * (1 << 16) + b'"'
    chunked = f"PUT /big.json?writeSizeLimit=tiny HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}"
    chunked += "Transfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for _ in range(20))
    out = raw(lean.port, chunked.encode() + body + b"0\r\n\r\n", read_for=3)
    assert statuses(out) == [400]
    assert b"larger than the write size limit" in out
    with httpx.Client(base_url=lean.url) as client:
        assert client.get("/big.json", params={"auth": "owner"}).json() is None


def test_chunked_body_and_expect_continue(lean: Running) -> None:
    body = b'{"a": 1, "b": [1, 2]}'
    req = f"PUT /chunked.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Transfer-Encoding: chunked\r\n\r\n"
    out = raw(
        lean.port,
        req.encode()
        + b"5\r\n"
        + body[:5]
        + b"\r\n%x\r\n" % (len(body) - 5)
        + body[5:]
        + b"\r\n0\r\n\r\n",
    )
    assert statuses(out) == [200]
    assert json.loads(out.split(b"\r\n\r\n", 1)[1]) == {
        "a": 1,
        "b": [1, 2],
    }
    with socket.create_connection(("127.0.0.1", lean.port), timeout=3) as s:
        s.sendall(
            f"PUT /cont.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Expect: 100-continue\r\n"
            "Content-Length: 2\r\n\r\n".encode()
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"42")
        answer = s.recv(4096)
    assert statuses(answer) == [200]
    assert answer.endswith(b"42")


def test_slowloris_cut_after_header_timeout(lean: Running) -> None:
    with socket.create_connection(("127.0.0.1", lean.port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        out = b""
        for _ in range(10):  # keeps trickling a header, never ends them
            try:
                s.sendall(b"X-A: b\r\n")
            except OSError:
                break
            time.sleep(0.1)
        s.settimeout(5)
        while chunk := s.recv(4096):
            out += chunk
        took = time.monotonic() - t0
    assert statuses(out) == [408]
    assert took < QuickHTTP.header_timeout + 2


def test_client_leaving_mid_body_writes_nothing(lean: Running) -> None:
    with socket.create_connection(("127.0.0.1", lean.port), timeout=3) as s:
        s.sendall(
            f"PUT /half.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: 100\r\n\r\n"
            '{"partial": '.encode()
        )
        time.sleep(0.1)
    # a body that stops arriving is cut after body_timeout too
    with socket.create_connection(("127.0.0.1", lean.port), timeout=5) as s:
        s.sendall(
            f"PUT /stall.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: 10\r\n\r\n1".encode()
        )
        t0 = time.monotonic()
        assert s.recv(4096) == b""
        assert time.monotonic() - t0 < QuickHTTP.body_timeout + 2
    time.sleep(0.2)
    with httpx.Client(base_url=lean.url) as client:
        assert client.get("/half.json", params={"auth": "owner"}).json() is None
        assert client.get("/stall.json", params={"auth": "owner"}).json() is None


def test_idle_keep_alive_connection_closed(lean: Running) -> None:
    with socket.create_connection(("127.0.0.1", lean.port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert statuses(s.recv(4096)) == [200]
        t0 = time.monotonic()
        assert s.recv(4096) == b""  # closed by the server after its keep-alive timeout
        assert 1 < time.monotonic() - t0 < 5


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


def test_slow_subscriber_cut_others_get_everything(lean: Running) -> None:
    readers = [_Reader(lean.port, "/feed") for _ in range(5)]
    stalled = _Reader(lean.port, "/feed", read=False)
    time.sleep(0.3)
    blob = "x" * 16000  # 400 of them: more than the socket buffers and the stream's bound hold
    with httpx.Client(base_url=lean.url, params={"auth": "owner"}) as client:
        for i in range(400):
            client.patch("/feed.json", json={"n": i, "blob": blob}).raise_for_status()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(len(r.values()) < 400 for r in readers):
        time.sleep(0.05)
    for r in readers:
        assert r.values() == list(range(400))  # 0 lost, in order
    # the stalled one was cut: reading now drains what was buffered, then the end
    stalled.sock.settimeout(5)
    got = b""
    while chunk := stalled.sock.recv(65536):
        got += chunk
    assert got.startswith(b"HTTP/1.1 200")
    assert got.endswith(b"0\r\n\r\n")  # the stream's end, as when uvicorn served it
    for r in [*readers, stalled]:
        r.sock.close()


# ---------------------------------------------------------------- TLS
def test_tls(servers: Servers, tmp_path: Path) -> None:
    from platform_core.testing import make_certificates

    certs = make_certificates(tmp_path)
    served = servers.start(ElkynHTTP, tls=(certs.cert, certs.key))
    context = ssl.create_default_context(cafile=str(certs.ca))
    with httpx.Client(base_url=served.url, verify=context) as client:
        assert client.get("/health").json() == {"status": "ok"}
        put = client.put("/t.json", params={"auth": "owner"}, json={"tls": True})
    assert put.status_code in (200, 401)  # no --dev here: "owner" is not a credential
    assert raw(served.port, b"GET /health HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200") is False


# ---------------------------------------------------------------- the oracle
_paths = st.sampled_from(
    ["/a", "/a/b", "/a/c", "/l", "/l/0", "/", "/.settings/rules", "/bad[", "/x/y/z"]
)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: st.dictionaries(st.sampled_from(["b", "c", "d"]), inner, max_size=3),
    max_leaves=6,
)
_requests = st.lists(
    st.tuples(
        st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        _paths,
        _values,
        st.sampled_from(
            ["", "?print=silent", "?shallow=true", "?orderBy=%22%24key%22", "?print=pretty"]
        ),
        st.sampled_from([None, "owner", "bogus"]),
        st.booleans(),  # ask for the ETag
    ),
    min_size=1,
    max_size=8,
)

_COMPARED = (
    "content-type",
    "content-length",
    "etag",
    "allow",
    "www-authenticate",
    "x-elkyn-reserved",
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_requests)
def test_lean_server_answers_as_uvicorn_does(
    oracle_pair: tuple[Running, Running], requests: list[Any]
) -> None:
    answers = []
    for served in oracle_pair:
        with httpx.Client(base_url=served.url) as client:
            client.delete("/.json", params={"auth": "owner"}).raise_for_status()
            got = []
            for method, path, value, query, token, etag in requests:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                if etag:
                    headers["X-Firebase-ETag"] = "true"
                body = json.dumps(value) if method in ("PUT", "PATCH") else None
                resp = client.request(method, path + ".json" + query, content=body, headers=headers)
                got.append(
                    (
                        resp.status_code,
                        resp.content,
                        {k: resp.headers.get(k) for k in _COMPARED},
                        "x-elkyn-seq" in resp.headers,
                    )
                )
            answers.append(got)
    assert answers[0] == answers[1]


def _stream_events(data: bytes) -> list[tuple[str, str]]:
    """(event line, data line) of each SSE frame in a chunked answer, ids' seq kept only."""
    body = data.split(b"\r\n\r\n", 1)[1]
    text = b"".join(re.split(rb"\r\n[0-9a-f]+\r\n|^[0-9a-f]+\r\n", body)).decode()
    out = []
    for frame in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "event" in lines and lines["event"] != "keep-alive":
            out.append((lines["event"], lines.get("data", ""), lines.get("id", ".").split(".")[0]))
    return out


def test_streams_match_uvicorns(oracle_pair: tuple[Running, Running]) -> None:
    """The broadcaster's direct writes give the same events, in order, as ASGI sends do."""
    got = []
    for served in oracle_pair:
        with httpx.Client(base_url=served.url, params={"auth": "owner"}) as client:
            client.put("/s.json", json={"a": 1}).raise_for_status()
            reader = _Reader(served.port, "/s")
            time.sleep(0.3)
            for i in range(30):
                if i % 3 == 0:
                    client.patch("/s.json", json={"b": i, "c": {"d": i}}).raise_for_status()
                elif i % 3 == 1:
                    client.put(f"/s/l/{i}.json", json=i).raise_for_status()
                else:
                    client.put("/.json", json={"s": {"a": i}}).raise_for_status()
            time.sleep(0.5)
            reader.sock.close()
            reader.thread.join(2)
        got.append(_stream_events(reader.data))
    assert len(got[0]) == 31
    assert got[0] == got[1]


# ---------------------------------------------------------------- read-ahead memory
def _held_by(servers: Servers, path: str) -> int:
    """Body bytes (and heads waiting) the lean server holds for the connection whose running
    request is ``path``: counted from the requests' own buffers, on the server's loop."""

    async def count() -> int:
        held = 0
        for server in servers.servers:
            for conn in server.server_state.connections:
                if (
                    isinstance(conn, ElkynHTTP)
                    and conn.pending
                    and conn.pending[0].scope["path"] == path
                ):
                    held += sum(len(c) for cycle in conn.pending for c in cycle.chunks)
        return held

    return asyncio.run_coroutine_threadsafe(count(), servers.loop).result(5)


def test_read_ahead_bodies_bounded_per_connection(servers: Servers, lean: Running) -> None:
    """A request that keeps running (a stream) with big bodies pipelined behind it: reading
    pauses once the connection holds ``body_high_water`` bytes, whatever the request count."""
    size = 250 * 1024
    put = f"PUT /junk.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: {size}\r\n\r\n"
    data = (
        f"GET /ra.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Accept: text/event-stream\r\n\r\n"
    ).encode() + (put.encode() + json.dumps("y" * (size - 2)).encode()) * 40
    with socket.create_connection(("127.0.0.1", lean.port)) as s:
        s.setblocking(False)
        sent, deadline = 0, time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                sent += s.send(data[sent : sent + 262144])
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(0.3)
        held = _held_by(servers, "/ra.json")
        assert sent > 2 * size  # the client did get well ahead of the stream
        assert 0 < held <= ElkynHTTP.body_high_water + 256 * 1024  # one read past the mark


def test_pipelined_big_bodies_all_answered(lean: Running) -> None:
    """Reading pauses and resumes as the running request takes its body: nothing stalls."""
    size = 200 * 1024
    reqs = b"".join(
        f"PUT /bigpipe/{i}.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{ADMIN}Content-Length: {size}\r\n\r\n".encode()
        + json.dumps(str(i) * (size - 2)).encode()
        for i in range(10)
    )
    reqs += b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    out = raw(lean.port, reqs, read_for=10)
    assert statuses(out) == [200] * 11


def test_http10_keep_alive_answered_as_uvicorn_does(oracle_pair: tuple[Running, Running]) -> None:
    """HTTP/1.0 with ``Connection: keep-alive``: uvicorn answers ``connection: close`` and
    closes; so does the lean one (not an open socket the client will not use)."""
    req = b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    got = []
    for served in oracle_pair:
        t0 = time.monotonic()
        out = raw(served.port, req * 2, read_for=5)
        took = time.monotonic() - t0
        heads = [
            sorted(
                h
                for h in part.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n")[1:]
                if not h.startswith((b"date:", b"server:"))
            )
            for part in out.split(b"HTTP/1.1 ")[1:]
        ]
        got.append((statuses(out), heads, took < 2))  # closed at once, not on a timeout
    assert got[0] == got[1]
    assert got[1][0] == [200]


@pytest.mark.parametrize(
    "head",
    [
        b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n",
    ],
    ids=["request-line", "header"],
)
def test_431_read_whole_not_reset(lean: Running, head: bytes) -> None:
    """The unread rest of an oversized head is read and dropped before closing: the client
    that sends all of it reads the whole 431, not a connection reset."""
    with socket.create_connection(("127.0.0.1", lean.port), timeout=5) as s:
        s.sendall(head)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert statuses(out) == [431]
    assert out.endswith(
        b"the request line and headers are over %d bytes" % ElkynHTTP.max_header_bytes
    )
