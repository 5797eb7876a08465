"""The loopback rule: client, Host header and the browser's Origin must all be this machine."""

from __future__ import annotations

import pytest

from platform_core import host_header_name, is_local_request, origin_is_local


@pytest.mark.parametrize(
    ("client", "host", "origin", "site", "local"),
    [
        ("127.0.0.1", "localhost:8080", None, None, True),
        ("::1", "[::1]:80", "http://127.0.0.1:3000", "same-site", True),
        ("::ffff:127.0.0.1", "127.0.0.1", None, "same-origin", True),
        ("127.0.0.1", "evil.example:8080", None, None, False),  # DNS rebinding
        ("127.0.0.1", None, None, None, False),
        ("127.0.0.1", "localhost", "https://evil.example", None, False),
        ("127.0.0.1", "localhost", "null", None, False),
        ("127.0.0.1", "localhost", None, "cross-site", False),
        ("127.0.0.1", "localhost", "http://localhost.evil.example", None, False),
        ("203.0.113.9", "localhost", None, None, False),
        ("", "localhost", None, None, False),
    ],
)
def test_is_local_request(
    client: str, host: str | None, origin: str | None, site: str | None, local: bool
) -> None:
    assert is_local_request(client, host, origin, site) is local


def test_host_header_and_origin_parsing() -> None:
    assert host_header_name("[::1]:8080") == "::1"
    assert host_header_name("a:80") == "a"
    assert host_header_name("") is None
    assert origin_is_local("http://[::1]:9")
    assert not origin_is_local("file://")
    assert not origin_is_local("http://[bad")
