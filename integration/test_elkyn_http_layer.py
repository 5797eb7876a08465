"""`elkyn serve` (on stock uvicorn) and the gateway's `/db` as an HTTP server, from raw sockets:
pipelined requests answered in order; bodies bounded (a Content-Length over the limit, a
chunked body growing past it, a body shorter than its Content-Length, a client leaving
mid-body: nothing written); the 401 hint only for a client without credentials; many SSE
subscribers (fast, slow, leaving) while writers write, each stream's replayed tree equal to
the export; a server SIGKILLed while writing keeps every write it acknowledged. The gateway's
`/db` (what `platform up` gives users) keeps the same body limits, hint and streams.

(Part of the break-test of issue 27, "break27".)
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from elkyn.testing import ServerProcess, start_server
from platform_core import PlatformSettings, auth, load_settings

# --------------------------------------------------------------------------------------------
# elkyn serve: raw HTTP/1.1 on a socket


def _addr(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def _exchange(
    server: ServerProcess, data: bytes, *, wait: float = 3.0, half_close: bool = False
) -> bytes:
    """Send ``data`` on one connection and read until the server closes or ``wait`` passes."""
    with socket.create_connection(_addr(server.url)) as s:
        s.settimeout(wait)
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
        return out


def _request(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


@pytest.fixture(scope="module")
def elkyn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("elkyn")
    env = {"ELKYN_BODY_TIMEOUT_SECONDS": "2", "ELKYN_MAX_WRITE_BYTES": "1000"}
    server = start_server(home, "--dev", env=env)
    try:
        yield server
    finally:
        server.stop()


def _get(server: ServerProcess, path: str) -> Any:
    r = httpx.get(f"{server.url}{path}.json", params={"auth": "owner"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_pipelined_requests_are_answered_in_order(elkyn: ServerProcess) -> None:
    steps = []
    for i in range(20):
        steps.append(_request("PUT", "/pipe/n.json?auth=owner", str(i).encode()))
        steps.append(_request("GET", "/pipe/n.json?auth=owner"))
    raw = _exchange(elkyn, b"".join(steps), wait=3)
    assert _statuses(raw) == [200] * 40
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert all(b"content-length: " in part for part in raw.split(b"HTTP/1.1 ")[1:])
    assert bodies == [str(i // 2).encode() for i in range(40)]


def test_bodies_are_bounded_and_a_broken_one_writes_nothing(elkyn: ServerProcess) -> None:
    # Content-Length over ELKYN_MAX_WRITE_BYTES: refused before the body is read
    raw = _exchange(elkyn, _request("PUT", "/b/cl.json?auth=owner", b"1" * 5000), wait=2)
    assert _statuses(raw) == [400]
    assert b"larger than the write size limit" in raw
    # a chunked body growing past the limit: refused; the next request on the connection works
    big = b"[" + b"1," * 2000 + b"1]"
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(big[i : i + 100]), big[i : i + 100]) for i in range(0, len(big), 100)
    )
    chunked = b"PUT /b/te.json?auth=owner HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = _exchange(
        elkyn, chunked + chunks + b"0\r\n\r\n" + _request("GET", "/b/te.json?auth=owner")
    )
    assert _statuses(raw) == [400, 200]
    assert raw.endswith(b"null")
    # a body shorter than its Content-Length: 408 after ELKYN_BODY_TIMEOUT_SECONDS, closed
    started = time.monotonic()
    short = (
        b"PUT /b/short.json?auth=owner HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n12"
    )
    raw = _exchange(elkyn, short, wait=10)
    assert _statuses(raw) == [408]
    assert b"connection: close" in raw.lower()
    assert 1.5 < time.monotonic() - started < 9
    # the client leaves mid-body
    assert _exchange(elkyn, short, wait=5, half_close=True) == b""
    # Content-Length and Transfer-Encoding both, or two Content-Lengths: 400, closed
    for smuggle in [
        b"PUT /b/s.json?auth=owner HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n1\r\n5\r\n0\r\n\r\n",
        b"PUT /b/s.json?auth=owner HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n12",
    ]:
        assert _statuses(_exchange(elkyn, smuggle, wait=3)) == [400]
    assert _get(elkyn, "/b") is None  # nothing of any of them was written


def test_a_plain_client_gets_a_hint_a_client_with_a_token_firebases_error(
    elkyn: ServerProcess,
) -> None:
    plain = httpx.get(f"{elkyn.url}/secret.json", timeout=10)
    assert plain.status_code == 401
    assert plain.headers["www-authenticate"] == "Bearer"
    body = plain.json()
    assert body["error"] == "Permission denied"
    assert set(body) == {"error", "hint"}
    for token in ["garbage", "a.b.c"]:
        judged = httpx.get(f"{elkyn.url}/secret.json", params={"auth": token}, timeout=10)
        assert judged.status_code == 401
        assert set(judged.json()) == {"error"}
        assert token not in judged.text
    # Firebase REST semantics over the new server: ETags, print=silent, shallow
    h = {"X-Firebase-ETag": "true"}
    put = httpx.put(f"{elkyn.url}/fb.json?auth=owner", json={"a": {"x": 1}, "b": 2}, headers=h)
    etag = put.headers["etag"]
    stale = httpx.put(
        f"{elkyn.url}/fb/b.json?auth=owner", json=3, headers={"if-match": "nope"}, timeout=10
    )
    assert stale.status_code == 412
    assert stale.headers["etag"]
    fresh = httpx.get(f"{elkyn.url}/fb.json?auth=owner", headers={"if-none-match": etag})
    assert fresh.status_code == 304
    assert fresh.content == b""
    silent = httpx.put(f"{elkyn.url}/fb/b.json?auth=owner&print=silent", json=4)
    assert silent.status_code == 204
    assert silent.content == b""
    shallow = httpx.get(f"{elkyn.url}/fb.json", params={"auth": "owner", "shallow": "true"})
    assert shallow.json() == {"a": True, "b": True}
    head = httpx.head(f"{elkyn.url}/health", timeout=10)
    assert head.status_code == 200
    assert head.content == b""


# --------------------------------------------------------------------------------------------
# SSE: many subscribers while writers write


class _Reader(threading.Thread):
    """An SSE client on a raw socket: reads ``delay`` seconds apart (a slow reader) or at
    once; ``leave_after`` events, then closes mid-stream. Replays the events into a tree."""

    def __init__(
        self, server: ServerProcess, delay: float = 0.0, leave_after: int | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.server, self.delay, self.leave_after = server, delay, leave_after
        self.tree: dict[str, Any] = {}
        self.events = 0
        self.last_id = ""
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.ended = False

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        with socket.create_connection(_addr(self.server.url)) as s:
            s.settimeout(30)
            s.sendall(
                b"GET /live.json?auth=owner HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
            )
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, buf = buf.split(b"\r\n\r\n", 1)
            assert b" 200 " in head.split(b"\r\n")[0], head
            chunked = b"transfer-encoding: chunked" in head.lower()
            raw = b""
            while not self.stop.is_set():
                if self.delay:
                    time.sleep(self.delay)
                try:
                    piece = s.recv(4096 if self.delay else 65536)
                except TimeoutError:
                    continue
                if not piece:
                    self.ended = True
                    return
                buf += piece
                if chunked:
                    buf, data = _dechunk(buf)
                    raw += data
                else:
                    raw, buf = raw + buf, b""
                while b"\n\n" in raw:
                    event, raw = raw.split(b"\n\n", 1)
                    self._apply(event.decode())
                    if self.leave_after is not None and self.events >= self.leave_after:
                        return

    def _apply(self, event: str) -> None:
        fields = dict(line.split(": ", 1) for line in event.split("\n") if ": " in line)
        kind = fields.get("event")
        if kind not in ("put", "patch"):
            return
        self.events += 1
        self.last_id = fields.get("id", self.last_id)
        msg = json.loads(fields["data"])
        path = [p for p in msg["path"].split("/") if p]
        if kind == "put":
            _set(self.tree, path, msg["data"])
        else:
            for key, value in msg["data"].items():
                _set(self.tree, path + [p for p in key.split("/") if p], value)


def _dechunk(buf: bytes) -> tuple[bytes, bytes]:
    out = b""
    while True:
        line, sep, rest = buf.partition(b"\r\n")
        if not sep:
            return buf, out
        size = int(line, 16)
        if len(rest) < size + 2:
            return buf, out
        out += rest[:size]
        buf = rest[size + 2 :]


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Firebase's write of ``value`` at ``path``: null deletes, empty parents vanish."""
    if not path:
        tree.clear()
        if isinstance(value, dict):
            tree.update(value)
        return
    node = tree
    for key in path[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    _prune(tree)


def _prune(tree: dict[str, Any]) -> None:
    for key in list(tree):
        if isinstance(tree[key], dict):
            _prune(tree[key])
            if not tree[key]:
                del tree[key]


def test_many_subscribers_while_writers_write_see_every_change(elkyn: ServerProcess) -> None:
    fast = [_Reader(elkyn) for _ in range(30)]
    slow = [_Reader(elkyn, delay=0.02) for _ in range(3)]
    leaving = [_Reader(elkyn, leave_after=n) for n in (1, 5, 40)]
    readers = fast + slow + leaving
    for r in readers:
        r.start()
    time.sleep(1.0)

    def writer(w: int) -> None:
        with httpx.Client(base_url=elkyn.url, params={"auth": "owner"}, timeout=30) as h:
            for i in range(60):
                key = f"/live/w{w}/k{i % 7}.json"
                if i % 11 == 10:
                    assert h.delete(key).status_code == 200
                elif i % 5 == 4:
                    body = {f"k{i % 7}": {"i": i, "pad": "x" * (i * 3)}, "n": i}
                    assert h.patch(f"/live/w{w}.json", json=body).status_code == 200
                else:
                    assert h.put(key, json={"i": i, "w": w}).status_code == 200

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    want = _get(elkyn, "/live")
    deadline = time.monotonic() + 60
    for r in fast + slow:
        while r.tree != want and time.monotonic() < deadline and r.error is None and not r.ended:
            time.sleep(0.1)
    for r in readers:
        r.stop.set()
    for r in readers:
        r.join(10)
        assert r.error is None, r.error
    for r in fast + slow:
        assert not r.ended, "a stream ended while writers wrote"
        assert r.tree == want
    assert [r.events >= r.leave_after for r in leaving if r.leave_after] == [True] * 3
    # the server still answers, and still serves a new stream after the leavers
    late = _Reader(elkyn, leave_after=1)
    late.start()
    late.join(10)
    assert late.error is None
    assert late.tree == want


# --------------------------------------------------------------------------------------------
# SIGKILL mid-write: no acknowledged write lost


def test_sigkill_mid_write_loses_no_acknowledged_write(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = start_server(home, "--dev")
    acked: list[str] = []
    stop = threading.Event()

    def write(w: int) -> None:
        with httpx.Client(base_url=server.url, params={"auth": "owner"}, timeout=10) as h:
            i = 0
            while not stop.is_set():
                try:
                    r = h.put(f"/acks/w{w}k{i}.json", json={"i": i, "pad": "y" * 200})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    acked.append(f"w{w}k{i}")
                i += 1

    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    while len(acked) < 150:
        time.sleep(0.01)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(20)
    again = start_server(home, "--dev")
    try:
        stored = httpx.get(f"{again.url}/acks.json", params={"auth": "owner"}, timeout=30).json()
        missing = [key for key in acked if key not in stored]
        assert missing == [], f"{len(missing)} acknowledged writes lost"
    finally:
        again.stop()


def test_the_gateways_db_bounds_bodies_and_streams_like_elkyn_serve(
    sums_platform: tuple[Any, str, Path],
) -> None:
    """The gateway's `/db` (what `platform up` gives users): the same body limits, the 401
    hint only without credentials, and a stream that sees every write."""
    server, _token, csv = sums_platform
    home = csv.parent / "home"
    db = f"{server.url}/db"
    plain = httpx.get(f"{db}/notes.json", timeout=10)
    assert plain.status_code == 401
    assert plain.headers.get("www-authenticate") == "Bearer"
    assert set(plain.json()) == {"error", "hint"}
    judged = httpx.get(f"{db}/notes.json", params={"auth": "nope"}, timeout=10)
    assert judged.status_code == 401
    assert set(judged.json()) == {"error"}
    admin = auth.signer(load_settings(PlatformSettings, home=home), create=False).issue(
        "ops", admin=True
    )
    h = {"Authorization": f"Bearer {admin}"}
    too_big = httpx.put(f"{db}/notes/big.json", content=b"1" * 5000, headers=h, timeout=10)
    assert too_big.status_code == 400
    assert "larger than the write size limit" in too_big.text

    def grow() -> Iterator[bytes]:
        for _ in range(50):
            yield b"[" + b"1," * 100 + b"1]"  # chunked: no Content-Length

    chunked = httpx.put(f"{db}/notes/chunked.json", content=grow(), headers=h, timeout=10)
    assert chunked.status_code == 400
    assert httpx.get(f"{db}/notes.json", headers=h, timeout=10).json() is None
    got: list[Any] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream(
            "GET", f"{db}/notes.json", headers={**h, "Accept": "text/event-stream"}, timeout=30
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: null":
                    got.append(json.loads(line[6:]))
                    ready.set()
                    if len(got) == 41:
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(30)
    with httpx.Client(headers=h, timeout=10) as c:
        for i in range(40):
            assert c.put(f"{db}/notes/n{i}.json", json=i).status_code == 200
    t.join(30)
    assert [g["data"] for g in got[1:]] == list(range(40))
