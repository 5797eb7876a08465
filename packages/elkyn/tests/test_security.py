"""Regressions found in review: dev-only features stay on loopback, request bodies."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from elkyn import ClientDisconnectedError, InvalidDataError, Store
from elkyn.plugin import plugin
from elkyn.server import ElkynApp
from elkyn.server.http import Request
from elkyn.settings import elkyn_settings, is_loopback
from platform_core import PlatformSettings, load_settings
from platform_core.auth import TokenSigner
from platform_core.services import ServiceRegistry

SECRET = "s" * 40


def _call(
    app: ElkynApp,
    method: str,
    path: str,
    client: str,
    body: bytes = b"",
    query: bytes = b"",
    **h: str,
) -> tuple[int, Any]:
    """One request straight into the ASGI app, from the given client address."""

    async def run() -> tuple[int, Any]:
        out: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            out.append(message)

        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query,
            "headers": [(k.encode(), v.encode()) for k, v in h.items()],
            "client": (client, 5555),
        }
        await app(scope, receive, send)
        payload = b"".join(m.get("body", b"") for m in out[1:])
        return out[0]["status"], json.loads(payload)

    return asyncio.run(run())


@pytest.mark.parametrize("client", ["203.0.113.9", "10.0.0.2", "::ffff:192.0.2.1", ""])
def test_dev_features_refused_to_remote_clients(tmp_path: Path, client: str) -> None:
    settings = elkyn_settings(home=str(tmp_path), secret=SECRET, dev=True, memory=True)
    with Store(memory=True) as db:
        db.set("/secret", "x")
        db.set_rules({"rules": {".read": False, ".write": False}})
        app = ElkynApp(settings, store=db, signer=TokenSigner(SECRET))
        status, body = _call(app, "POST", "/auth/token", client, b'{"uid":"x","admin":true}')
        assert status == 404, body
        status, body = _call(
            app, "GET", "/.settings/rules.json", client, authorization="Bearer owner"
        )
        assert status == 401, body
        status, body = _call(
            app,
            "GET",
            "/secret.json",
            client,
            query=b'auth_variable_override={"uid":"x"}',
        )
        assert status == 400, body
        assert "loopback" in body["error"]
        # the same requests from loopback work (dev mode itself is intact)
        for local in ("127.0.0.1", "::1"):
            status, body = _call(
                app, "POST", "/auth/token", local, b'{"uid":"x"}', host="localhost:9"
            )
            assert status == 200, body
            assert "token" in body
            status, body = _call(
                app, "GET", "/secret.json", local, host="127.0.0.1", authorization="Bearer owner"
            )
            assert (status, body) == (200, "x")


def test_gateway_plugin_never_runs_in_dev_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELKYN_DEV", "1")
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path))
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    assert elkyn_settings().dev  # the variable is seen ...
    p = plugin()
    settings = load_settings(PlatformSettings)
    services = ServiceRegistry().view(p)
    app = p.app(settings, services)
    assert isinstance(app, ElkynApp)
    assert not app.settings.dev  # ... but the gateway mount ignores it

    async def run() -> tuple[int, Any]:
        async with p.lifespan(settings, services):
            return await asyncio.to_thread(
                _call, app, "POST", "/auth/token", "127.0.0.1", b'{"uid":"x","admin":true}'
            )

    status, _ = asyncio.run(run())
    assert status == 404


def test_is_loopback() -> None:
    for host in ("127.0.0.1", "127.9.9.9", "::1", "localhost", "::ffff:127.0.0.1"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "203.0.113.9", "", "example.com", "::ffff:10.0.0.1"):
        assert not is_loopback(host), host


def _request_with(messages: list[dict[str, Any]], content_length: str | None) -> Request:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    headers = {} if content_length is None else {"content-length": content_length}
    return Request("PUT", "/x.json", {}, headers, receive)


def test_request_body_refuses_disconnects_and_short_bodies() -> None:
    part = {"type": "http.request", "body": b"1000", "more_body": True}
    gone = {"type": "http.disconnect"}
    with pytest.raises(ClientDisconnectedError, match="after 4 bytes"):
        asyncio.run(_request_with([part, gone], "7").body(100))
    with pytest.raises(ClientDisconnectedError, match="after 4 bytes"):
        asyncio.run(_request_with([part, gone], None).body(100))  # chunked
    short = {"type": "http.request", "body": b"1000", "more_body": False}
    with pytest.raises(InvalidDataError, match="Content-Length says 7"):
        asyncio.run(_request_with([short], "7").body(100))
    assert asyncio.run(_request_with([short], "4").body(100)) == b"1000"
    assert asyncio.run(_request_with([short], None).body(100)) == b"1000"
