"""The --dev loopback rule is not fooled by repeated Host or Origin headers, from a real
process (issue 11 item 11)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from elkyn.testing import start_server, stop_server


def _status(url: str, head: str, body: bytes = b'{"uid":"u"}') -> int:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"POST /auth/token HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "head",
    [
        # "the last header wins" let a request naming evil.com first pass as local
        "Host: evil.com\r\nHost: localhost\r\n",
        "Host: localhost\r\nOrigin: http://evil.com\r\nOrigin: http://localhost\r\n",
    ],
)
def test_repeated_host_or_origin_is_not_local(tmp_path: Path, head: str) -> None:
    srv = start_server(tmp_path / "h", "--dev", "--memory")
    try:
        assert _status(srv.url, "Host: localhost\r\n") == 200  # the control: one Host
        assert _status(srv.url, head) in (403, 404)  # refused: no token minted
    finally:
        stop_server(srv)
