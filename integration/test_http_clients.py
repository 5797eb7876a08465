"""Every HTTP client of the platform comes from ``platform_core.http.http_client`` (or its
async twin): no package source makes an ``httpx.Client`` / ``httpx.AsyncClient`` or calls
httpx's one-shot functions (``httpx.get``, ``httpx.post``, ...) itself, so TLS verification,
timeouts and retries cannot drift apart again; and what those clients promise, against real
sockets: a server that accepts and never answers times out; a write to a server that reads it
and closes is sent once, never retried; a peer whose certificate comes from another CA is
refused (these from the break-test of issue 27)."""

from __future__ import annotations

import ast
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from elkyn.testing import start_server
from platform_core import load_settings
from platform_core.http import http_client

ROOT = Path(__file__).resolve().parents[1]
FACTORY = ROOT / "packages/core/src/platform_core/http/client.py"
MADE_HERE_ONLY = {
    "Client",
    "AsyncClient",
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "request",
    "stream",
}


def _own_clients(path: Path, text: str | None = None) -> list[str]:
    found = []
    source = path.read_text() if text is None else text
    for node in ast.walk(ast.parse(source, str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "httpx"
            and node.func.attr in MADE_HERE_ONLY
        ):
            found.append(f"{path.name}:{node.lineno}: httpx.{node.func.attr}(...)")
    return found


def test_no_source_configures_an_httpx_client_of_its_own() -> None:
    sources = [*ROOT.glob("packages/*/src/**/*.py"), *ROOT.glob("apps/*/src/**/*.py")]
    assert len(sources) > 100
    found = [hit for path in sources if path != FACTORY for hit in _own_clients(path)]
    assert found == [], "use platform_core.http.http_client instead:\n" + "\n".join(found)
    # the check sees a client where there is one (the factory itself imports httpx lazily)
    made = "import httpx\nc = httpx.Client(verify=False)\nhttpx.get('http://x')\n"
    assert len(_own_clients(FACTORY, made)) == 2


# --------------------------------------------------------------------------------------------
# the HTTP client factory


class _Silent(threading.Thread):
    """A TCP server that accepts, reads what comes, counts connections and never answers
    (``close_after_read``: closes each connection once it has read a request)."""

    def __init__(self, close_after_read: bool = False) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.close_after_read = close_after_read
        self.requests: list[bytes] = []
        self.conns: list[socket.socket] = []

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            conn.settimeout(5)
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if data:
                self.requests.append(data)
            if self.close_after_read:
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_server_that_never_answers_times_out() -> None:
    silent = _Silent()
    silent.start()
    try:
        with http_client(base_url=f"http://127.0.0.1:{silent.port}", timeout=1.5) as client:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                client.get("/x")
            assert time.monotonic() - started < 10
    finally:
        silent.close()


def test_a_write_that_reached_the_server_is_never_resent() -> None:
    from platform_core.http import CONNECT_RETRIES

    cut = _Silent(close_after_read=True)
    cut.start()
    try:
        url = f"http://127.0.0.1:{cut.port}"
        with (
            http_client(base_url=url, timeout=5, retries=CONNECT_RETRIES) as client,
            pytest.raises(httpx.HTTPError),
        ):
            client.post("/api/jobs", json={"once": True})
        time.sleep(0.3)
        assert len([r for r in cut.requests if r.startswith(b"POST ")]) == 1
    finally:
        cut.close()


def test_a_peer_with_another_cas_certificate_is_refused(tmp_path: Path) -> None:
    from platform_core.testing import make_certificates
    from platform_core.tls import client_context

    ours = make_certificates(tmp_path / "ours")
    theirs = make_certificates(tmp_path / "theirs", "theirs")
    server = start_server(tmp_path / "home", env=theirs.server_env())
    try:
        assert server.url.startswith("https://")
        verify = client_context(load_settings(tls_ca=ours.ca))
        with (
            http_client(base_url=server.url, timeout=10, verify=verify) as client,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.get("/health")
        with http_client(
            base_url=server.url, timeout=10, verify=client_context(load_settings(tls_ca=theirs.ca))
        ) as ok:
            assert ok.get("/health").status_code == 200
        # no setting turns verification off
        with pytest.raises(TypeError):
            http_client(base_url=server.url, verify=False)  # type: ignore[arg-type]
    finally:
        server.stop()
