"""platform_core.http.http_client: every client's httpx setup in one place, against real
servers: TLS verified with the platform's CA setting, finite timeouts, connection retries that
never resend a request that reached the server, no redirects, the bearer token."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from platform_core import load_settings
from platform_core.http import CONNECT_RETRIES, async_http_client, http_client
from platform_core.testing import ServerProcess, TestCertificates, launch, make_certificates

KIT_SERVER = Path(__file__).with_name("kit_server.py")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def https_server(certs: TestCertificates) -> Iterator[ServerProcess]:
    server = launch([sys.executable, str(KIT_SERVER)], env=certs.server_env())
    yield server
    server.stop()


def test_tls_is_verified_with_the_platform_ca(
    https_server: ServerProcess, certs: TestCertificates
) -> None:
    settings = load_settings(tls_ca=certs.ca)
    with http_client(settings, base_url=https_server.url) as client:
        assert client.get("/health").json() == {"status": "ok"}
    system_trust = http_client(load_settings(), base_url=https_server.url)
    with system_trust, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        system_trust.get("/health")


def test_the_async_client_verifies_the_same_way(
    https_server: ServerProcess, certs: TestCertificates
) -> None:
    async def ask(settings_ca: Path | None) -> int:
        async with async_http_client(
            load_settings(tls_ca=settings_ca), base_url=https_server.url
        ) as client:
            return (await client.get("/health")).status_code

    assert asyncio.run(ask(certs.ca)) == 200
    with pytest.raises(httpx.ConnectError):
        asyncio.run(ask(None))


def test_verification_cannot_be_turned_off() -> None:
    with pytest.raises(TypeError, match=r"ssl\.SSLContext"):
        http_client(verify=False)  # type: ignore[arg-type]
    given = ssl.create_default_context()
    with http_client(verify=given) as client:
        assert client._transport._pool._ssl_context is given  # type: ignore[attr-defined]


def test_timeouts_are_finite_and_each_can_be_set() -> None:
    with http_client(timeout=7, read=30, token="t0k", headers={"x-a": "1"}) as client:
        assert client.timeout == httpx.Timeout(7, read=30)
        assert client.headers["authorization"] == "Bearer t0k"
        assert client.headers["x-a"] == "1"
        assert client.follow_redirects is False
    with http_client() as client:
        assert None not in (client.timeout.connect, client.timeout.read, client.timeout.pool)


class _OneShotServer:
    """A TCP port that refuses connections until :meth:`listen_after`; then every
    connection it accepts is closed unanswered, and counted."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        self.port = self.sock.getsockname()[1]
        self.accepted = 0

    def listen_after(self, delay: float) -> None:
        def run() -> None:
            time.sleep(delay)
            self.sock.listen(8)
            self.sock.settimeout(20)
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                self.accepted += 1
                _read_request(conn)  # the whole request arrived: close without an answer
                conn.close()

        threading.Thread(target=run, daemon=True).start()


def _read_request(conn: socket.socket) -> None:
    """Read one whole HTTP request (headers, then Content-Length bytes of body). Closing
    with part of it unread would send a reset (the client's ReadError) instead of the
    orderly close this test means: a busy machine delivers headers and body apart."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def test_retries_reconnect_but_never_resend_a_request() -> None:
    server = _OneShotServer()
    url = f"http://127.0.0.1:{server.port}/write"
    with http_client(timeout=10) as client, pytest.raises(httpx.ConnectError):
        client.post(url, content=b"x")  # no retries: refused at once
    server.listen_after(0.2)
    # the connection is retried until the port listens; the request reaches the server,
    # which closes without answering: that is an error, not a second send
    retrying = http_client(timeout=10, retries=CONNECT_RETRIES + 2)
    with retrying, pytest.raises(httpx.RemoteProtocolError):
        retrying.post(url, content=b"x")
    assert server.accepted == 1
    server.sock.close()
