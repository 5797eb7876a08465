"""The platform started as a user starts it: the installed `platform up`, then stopped with SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import httpx

from platform_gateway.testing import SLOW_ENTER_ENV, SLOW_EXIT_ENV, free_port

StartPlatform = Callable[..., Any]  # the `start_platform` fixture (see conftest.py)


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

        # An unknown API path is a JSON 404; any other unknown path is the web UI's 404 page.
        missing = http.get("/api/no/such/route")
        assert missing.status_code == 404
        assert missing.json() == {"error": "not found: GET /api/no/such/route", "type": "not_found"}
        page = http.get("/no/such/page")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")

        denied = http.get("/api/testplug/secret")
        assert denied.status_code == 401
        assert denied.json()["type"] == "unauthorized"

        login = http.post("/api/login", json={"sub": "e2e"})  # dev mode: loopback, no password
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        allowed = http.get("/api/testplug/secret", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200
        assert allowed.json() == {"sub": "e2e", "admin": True}
        # As an EventSource sends it; the access log must not keep the token.
        by_query = http.get("/api/testplug/secret", params={"auth": token, "x": "1"})
        assert by_query.json() == {"sub": "e2e", "admin": True}

        head = http.head("/health")  # load balancers' probes
        assert head.status_code == 200

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
    stderr = platform.stderr.read_text()
    assert token not in stderr
    assert "GET /api/testplug/secret?auth=***&x=1 HTTP/1.1" in stderr  # the line is there


def test_port_zero_reports_the_bound_port_and_ctrl_c_stops_it(
    start_platform: StartPlatform,
) -> None:
    platform = start_platform(0)
    port = int(platform.url.rsplit(":", 1)[1])
    assert port > 0
    assert httpx.get(f"{platform.url}/health", timeout=10).status_code == 200
    assert platform.stop(signal.SIGINT) == 0, platform.output()
    assert platform.events()[-2:] == ["exit testplug", "exit testmount"]


def test_a_second_sigterm_during_a_slow_shutdown_forces_the_exit(
    start_platform: StartPlatform,
) -> None:
    platform = start_platform(0, env={SLOW_EXIT_ENV: "600"})
    platform.proc.send_signal(signal.SIGTERM)
    platform.wait_for_event("stopping testplug slowly")
    started = time.monotonic()
    code = platform.stop(signal.SIGTERM)  # fails the test if it takes more than 10 s
    assert time.monotonic() - started < 5
    assert code == 1, platform.output()
    # testplug was cut short; testmount, stopped after it, still stopped.
    assert platform.events() == [
        "enter testmount",
        "enter testplug",
        "stopping testplug slowly",
        "exit testmount",
    ]
    stderr = platform.stderr.read_text()
    assert "error: stopped by force" in stderr
    assert "plugin 'testplug' was interrupted while stopping" in stderr
    assert "Traceback" not in platform.output()


def test_a_signal_during_startup_stops_it_without_the_banner(
    start_platform: StartPlatform,
) -> None:
    platform = start_platform(0, env={SLOW_ENTER_ENV: "1"}, wait=False)
    platform.wait_for_event("starting testplug slowly")
    code = platform.stop(signal.SIGTERM)
    assert code == 0, platform.output()
    assert platform.banner() is None, platform.output()
    assert "platform is up" not in platform.output()
    assert platform.events() == [
        "enter testmount",
        "starting testplug slowly",
        "enter testplug",
        "exit testplug",
        "exit testmount",
    ]
