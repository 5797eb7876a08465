"""The platform started as a user starts it: the installed `platform up`, then stopped with SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import httpx

from platform_gateway.testing import free_port

StartPlatform = Callable[[int], Any]  # the `start_platform` fixture (see conftest.py)


def test_platform_up_serves_and_stops_cleanly(start_platform: StartPlatform) -> None:
    port = free_port()
    platform = start_platform(port)
    assert platform.url == f"http://127.0.0.1:{port}"
    banner = platform.banner()
    assert banner is not None
    assert banner.group(2) == f"http://127.0.0.1:{port}/docs"

    with httpx.Client(base_url=platform.url, timeout=10) as http:
        assert http.get("/health").json() == {"status": "ok"}

        docs = http.get("/docs")
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")
        assert "swagger-ui" in docs.text
        assert http.get("/docs/assets/swagger-ui-bundle.js").status_code == 200

        versions = http.get("/api/version").json()
        assert {"platform-core", "platform-gateway"} <= versions.keys()

        missing = http.get("/no/such/route")
        assert missing.status_code == 404
        assert missing.json() == {"error": "not found: GET /no/such/route", "type": "not_found"}

        denied = http.get("/api/testplug/secret")
        assert denied.status_code == 401
        assert denied.json()["type"] == "unauthorized"

        login = http.post("/api/login", json={"sub": "e2e"})  # dev mode: loopback, no password
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        allowed = http.get("/api/testplug/secret", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200
        assert allowed.json() == {"sub": "e2e", "admin": True}

        assert http.get("/mounted/").json()["mounted"] is True

    assert (platform.home / "secret").is_file()  # --home was used
    assert platform.events() == ["enter testmount", "enter testplug"]

    code = platform.stop(signal.SIGTERM)
    assert code == 0, platform.output()
    assert platform.events() == [
        "enter testmount",
        "enter testplug",
        "exit testplug",
        "exit testmount",
    ]
    assert "Traceback" not in platform.output()


def test_port_zero_reports_the_bound_port_and_ctrl_c_stops_it(
    start_platform: StartPlatform,
) -> None:
    platform = start_platform(0)
    port = int(platform.url.rsplit(":", 1)[1])
    assert port > 0
    assert httpx.get(f"{platform.url}/health", timeout=10).status_code == 200
    assert platform.stop(signal.SIGINT) == 0, platform.output()
    assert platform.events()[-2:] == ["exit testplug", "exit testmount"]
