"""The service kit: binding (port 0, one-line start failures), the banner, serving."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from platform_core import StartError, bind
from platform_core.service import (
    KEEP_ALIVE_SECONDS,
    banner,
    keep_alive_seconds,
    port_holder,
    url_of,
)
from platform_core.testing import launch

KIT_SERVER = Path(__file__).with_name("kit_server.py")


def test_port_0_binds_a_free_port_and_reports_it() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0
        sock.listen()
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        sock.close()


def test_ipv6_loopback_binds_and_brackets_the_url() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        sock = bind("::1", 0)
    except StartError as exc:
        pytest.skip(f"::1 is not configured here: {exc}")
    with sock:
        assert url_of("::1", sock.getsockname()[1]).startswith("http://[::1]:")


def test_a_port_in_use_is_one_line_naming_port_holder_and_setting() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert port_holder(port) == os.getpid()
        with pytest.raises(StartError) as caught:
            bind("127.0.0.1", port)
    message = caught.value.message
    assert "\n" not in message
    assert f"port {port} on 127.0.0.1 is in use" in message
    assert f"PID {os.getpid()} holds it" in message
    assert "set PLATFORM_PORT or --port" in message


def test_the_setting_to_change_is_the_callers() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(StartError, match=r"; pass --port \(0 picks a free port\)$"):
            bind("127.0.0.1", port, port_setting=None)
        with pytest.raises(StartError, match="set LAKE_PORT or --http-port"):
            bind("127.0.0.1", port, port_setting="LAKE_PORT", port_option="--http-port")


def test_an_unknown_host_names_the_host_setting() -> None:
    with pytest.raises(StartError) as caught:
        bind("no-such-host.invalid", 0)
    assert "'no-such-host.invalid'" in caught.value.message
    assert "set PLATFORM_HOST or --host" in caught.value.message


def test_an_address_of_another_machine_is_refused_clearly() -> None:
    with pytest.raises(StartError, match=r"192\.0\.2\.1: not an address of this machine"):
        bind("192.0.2.1", 0)  # TEST-NET-1: never assigned to a host


def test_the_banner_says_what_where_pid_and_home() -> None:
    line = banner("lake node", "http://127.0.0.1:8700", home="/data", docs="http://x/docs")
    assert line == (
        f"lake node is up at http://127.0.0.1:8700 (docs: http://x/docs, pid {os.getpid()}, "
        "home /data)"
    )


def test_serve_prints_the_banner_once_up_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = launch([sys.executable, str(KIT_SERVER)], timeout=60)
    try:
        assert server.banner.startswith(f"kit is up at {server.url} (pid {server.pid}")
        assert server.banner.endswith("home /nowhere)")
    finally:
        code = server.stop()
    assert code == 0
    assert "Traceback" not in server.stderr() if server.stderr_path.exists() else True


def _raw_exchange(url: str, request: bytes) -> bytes:
    """Sends ``request`` as raw bytes and returns what the server wrote before closing."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and b"connection: close" not in answer.lower():
                break
    return answer


@pytest.mark.parametrize("parser", ["h11", "httptools"])
@pytest.mark.parametrize(
    ("coding", "refused_by"),
    [
        # httptools frames these as chunked and would hand the app still-encoded bytes (the
        # guard answers 501); h11 refuses them itself (400)
        (b"gzip, chunked", {"httptools": b"501", "h11": b"400"}),
        (b"deflate,chunked", {"httptools": b"501", "h11": b"400"}),
        (b"x-custom, chunked", {"httptools": b"501", "h11": b"400"}),
        # chunked not last: both parsers refuse the framing themselves
        (b"gzip", {"httptools": b"400", "h11": b"400"}),
        (b"chunked, chunked", {"httptools": b"400", "h11": b"400"}),
        (b"identity", {"httptools": b"400", "h11": b"400"}),
    ],
)
def test_a_body_in_a_transfer_coding_other_than_chunked_never_reaches_the_app(
    parser: str, coding: bytes, refused_by: dict[str, bytes]
) -> None:
    pytest.importorskip(parser)  # the platform's servers run httptools; core alone has h11
    env = {"KIT_HTTP": parser}
    server = launch([sys.executable, str(KIT_SERVER)], env=env, timeout=60)
    try:
        head = b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: " + coding
        answer = _raw_exchange(server.url, head + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        status_line, _, rest = answer.partition(b"\r\n")
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert status_line.split()[1] == refused_by[parser]
        if refused_by[parser] == b"501":
            assert b"connection: close" in headers.lower()
            payload = json.loads(body)
            assert payload["type"] == "not_implemented"
            assert coding.decode() in payload["error"]
            assert "Content-Length or Transfer-Encoding: chunked" in payload["error"]
        assert b'{"status": "ok"}' not in answer
        # plain chunked and Content-Length bodies still reach the app
        for framing in (
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"Content-Length: 3\r\n\r\nabc",
        ):
            ok = _raw_exchange(server.url, b"POST /health HTTP/1.1\r\nHost: a\r\n" + framing)
            assert ok.startswith(b"HTTP/1.1 200 "), ok
    finally:
        server.stop()


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_an_idle_keep_alive_connection_outlives_a_client_pools_expiry(parser: str) -> None:
    """A connection idle for 6 s (longer than httpx's 5 s pool expiry, and than uvicorn's
    default keep-alive) is still open and answers its next request: the server never closes
    a connection a client pool may be reusing at that moment."""
    pytest.importorskip(parser)  # the platform's servers run httptools; core alone has h11
    assert KEEP_ALIVE_SECONDS > 5
    server = launch([sys.executable, str(KIT_SERVER)], env={"KIT_HTTP": parser}, timeout=60)
    host, port = server.url.removeprefix("http://").split(":")
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    try:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            for _ in range(2):
                conn.sendall(request)
                answer = b""
                while not answer.endswith(b"0\r\n\r\n"):  # the kit's answer is chunked
                    chunk = conn.recv(65536)
                    assert chunk, f"the server closed the connection; had {answer!r}"
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200 "), answer
                assert b'{"status": "ok"}' in answer, answer
                time.sleep(6)
            conn.setblocking(False)
            with pytest.raises(BlockingIOError):  # nothing to read, and no EOF: still open
                conn.recv(1)
    finally:
        server.stop()


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "ten", "99999"])
def test_a_bad_keep_alive_setting_is_one_clear_line(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_KEEP_ALIVE_SECONDS", raw)
    with pytest.raises(StartError, match=r"PLATFORM_KEEP_ALIVE_SECONDS=.* from 0\.1 to 3600"):
        keep_alive_seconds()
    monkeypatch.setenv("PLATFORM_KEEP_ALIVE_SECONDS", "7.5")
    assert keep_alive_seconds() == 7.5
    monkeypatch.delenv("PLATFORM_KEEP_ALIVE_SECONDS")
    assert keep_alive_seconds() == KEEP_ALIVE_SECONDS


def test_the_guard_answers_501_before_the_app_runs() -> None:
    """The guard itself, without a server (core's own session has no httptools)."""
    import asyncio

    from platform_core.http.codings import TransferCodingGuard

    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
        await TransferCodingGuard(app)(scope, receive, send)
        return sent

    sent = asyncio.run(call([(b"transfer-encoding", b"gzip, chunked")]))
    assert reached == []
    assert sent[0]["status"] == 501
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["type"] == "not_implemented"
    assert asyncio.run(call([(b"transfer-encoding", b"chunked")]))[0]["status"] == 200
    assert asyncio.run(call([(b"content-length", b"3")]))[0]["status"] == 200
    assert reached == ["http", "http"]


def test_unsupported_coding_reads_every_transfer_encoding_header() -> None:
    from platform_core.http.codings import unsupported_coding

    assert unsupported_coding([]) is None
    assert unsupported_coding([(b"transfer-encoding", b"chunked")]) is None
    assert unsupported_coding([(b"Transfer-Encoding", b" CHUNKED ")]) is None
    assert unsupported_coding([(b"transfer-encoding", b"gzip, chunked")]) == "gzip, chunked"
    two = [(b"transfer-encoding", b"gzip"), (b"transfer-encoding", b"chunked")]
    assert unsupported_coding(two) == "gzip, chunked"
    assert unsupported_coding([(b"transfer-encoding", b"")]) == ""
