"""Auth: tokens on included plugin routes (HTTP and WebSocket), login, dev mode's limits."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.websockets import WebSocketDisconnect

from platform_core import PlatformSettings, Plugin, SettingsError, load_settings
from platform_core.auth import Claims, TokenSigner, load_secret
from platform_gateway import create_app, require_admin
from platform_gateway.security import host_header_name, is_loopback

SECRET_ROUTE = "/api/testplug/secret"


def assert_unauthorized(response: object) -> None:
    assert response.status_code == 401, response.text  # type: ignore[attr-defined]
    assert response.headers["www-authenticate"] == "Bearer"  # type: ignore[attr-defined]
    assert response.json()["type"] == "unauthorized"  # type: ignore[attr-defined]


def test_included_router_needs_a_token(client: TestClient) -> None:
    response = client.get(SECRET_ROUTE)
    assert_unauthorized(response)
    assert "POST /api/login" in response.json()["error"]


def test_a_token_from_login_opens_the_route_and_carries_its_sub(client: TestClient) -> None:
    login = client.post("/api/login", json={"sub": "ada"})
    assert login.status_code == 200
    body = login.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == PlatformSettings().token_ttl_seconds
    response = client.get(SECRET_ROUTE, headers={"Authorization": f"Bearer {body['token']}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "ada", "admin": True}


def test_the_token_may_come_as_the_auth_query_parameter(client: TestClient, token: str) -> None:
    assert client.get(SECRET_ROUTE, params={"auth": token}).json()["sub"] == "admin"


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-jwt", "Basic dXNlcjpwdw==", "Bearer ", "Token abc"],
)
def test_a_malformed_token_or_header_is_401(client: TestClient, header: str) -> None:
    assert_unauthorized(client.get(SECRET_ROUTE, headers={"Authorization": header}))


def test_a_token_signed_with_another_secret_is_401(client: TestClient) -> None:
    forged = TokenSigner("x" * 40).issue("mallory", admin=True)
    response = client.get(SECRET_ROUTE, headers={"Authorization": f"Bearer {forged}"})
    assert_unauthorized(response)
    assert "invalid token" in response.json()["error"]


def test_an_expired_token_is_401(client: TestClient, settings: PlatformSettings) -> None:
    past = int(time.time()) - 3600  # well beyond the verifier's leeway
    expired = jwt.encode(
        {"sub": "ada", "admin": True, "iat": past - 60, "exp": past},
        load_secret(settings),
        algorithm="HS256",
    )
    response = client.get(SECRET_ROUTE, headers={"Authorization": f"Bearer {expired}"})
    assert_unauthorized(response)
    assert "expired" in response.json()["error"]


def test_a_cluster_token_is_not_a_user_token(client: TestClient) -> None:
    cluster = client.app.state.signer.cluster_token("node-1")  # type: ignore[attr-defined]
    response = client.get(SECRET_ROUTE, headers={"Authorization": f"Bearer {cluster}"})
    assert_unauthorized(response)
    assert "cluster token" in response.json()["error"]


def test_a_worker_token_is_refused_on_user_routes_http_and_websocket(client: TestClient) -> None:
    worker = client.app.state.signer.worker_token("tab-1")  # type: ignore[attr-defined]
    response = client.get(SECRET_ROUTE, headers={"Authorization": f"Bearer {worker}"})
    assert_unauthorized(response)
    assert "worker token" in response.json()["error"]
    assert_unauthorized(client.get("/api/testplug/missing", params={"auth": worker}))
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(f"{WS_ROUTE}?auth={worker}") as ws,
    ):
        ws.receive_json()
    assert refused.value.code == 1008


def test_the_secret_is_created_under_home_and_signs_the_tokens(
    client: TestClient, settings: PlatformSettings, token: str
) -> None:
    assert (Path(settings.home) / "secret").is_file()
    assert TokenSigner(load_secret(settings)).verify(token).sub == "admin"


def test_require_admin_refuses_a_non_admin_token(
    settings: PlatformSettings, test_plugins: list[Plugin]
) -> None:
    app: FastAPI = create_app(settings, test_plugins)

    @app.get("/api/admin-only")
    async def admin_only(claims: Claims = Depends(require_admin)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    signer: TokenSigner = app.state.signer
    with TestClient(app) as client:
        user = signer.issue("bob")
        admin = signer.issue("root", admin=True)
        denied = client.get("/api/admin-only", headers={"Authorization": f"Bearer {user}"})
        assert denied.status_code == 403
        assert denied.json()["type"] == "forbidden"
        allowed = client.get("/api/admin-only", headers={"Authorization": f"Bearer {admin}"})
        assert allowed.json() == {"sub": "root"}
        assert_unauthorized(client.get("/api/admin-only"))


def test_login_with_a_password_set(tmp_path: Path, test_plugins: list[Plugin]) -> None:
    settings = PlatformSettings(home=tmp_path, admin_password=SecretStr("correct horse ünïcode"))
    with TestClient(create_app(settings, test_plugins)) as client:
        right = client.post("/api/login", json={"password": "correct horse ünïcode", "sub": "ada"})
        assert right.status_code == 200
        token = right.json()["token"]
        claims = client.app.state.signer.verify(token)  # type: ignore[attr-defined]
        assert (claims.sub, claims.admin) == ("ada", True)
        for body in ({"password": "wrong"}, {}, {"password": None}, {"password": ""}):
            assert_unauthorized(client.post("/api/login", json=body))


def test_dev_mode_on_loopback_needs_no_password_and_says_so(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    # The client fixture started the app, so the warning was logged during test setup.
    warnings = [r for r in caplog.get_records("setup") if r.levelno == logging.WARNING]
    assert any("dev mode" in r.getMessage() for r in warnings)
    assert client.post("/api/login", json={"password": "anything"}).status_code == 200


def test_no_dev_mode_warning_when_a_password_is_set(
    tmp_path: Path, test_plugins: list[Plugin], caplog: pytest.LogCaptureFixture
) -> None:
    settings = PlatformSettings(home=tmp_path, admin_password=SecretStr("pw"))
    with TestClient(create_app(settings, test_plugins)):
        pass
    assert "dev mode" not in caplog.text


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_a_non_loopback_host_without_password_is_refused(tmp_path: Path, host: str) -> None:
    settings = PlatformSettings(home=tmp_path, host=host)
    with pytest.raises(SettingsError, match="PLATFORM_ADMIN_PASSWORD is not set"):
        create_app(settings, [])


def test_an_empty_password_set_in_code_is_no_password(tmp_path: Path) -> None:
    # Empty means unset (core's settings): never a password that an empty login would match.
    settings = PlatformSettings(home=tmp_path, host="0.0.0.0", admin_password=SecretStr(""))
    assert settings.admin_password is None
    with pytest.raises(SettingsError, match="PLATFORM_ADMIN_PASSWORD"):
        create_app(settings, [])


def test_an_empty_password_from_the_environment_means_dev_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_ADMIN_PASSWORD", "")
    settings = load_settings(PlatformSettings, home=tmp_path)
    assert create_app(settings, []).state.dev_mode is True


def test_a_non_loopback_host_with_a_password_is_fine(tmp_path: Path) -> None:
    settings = PlatformSettings(home=tmp_path, host="0.0.0.0", admin_password=SecretStr("pw"))
    assert create_app(settings, []).state.dev_mode is False


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def dev_login(app: FastAPI, *, client: tuple[str, int], host: str) -> Any:
    """``POST /api/login`` in dev mode from the address ``client`` with ``Host: host``."""
    with TestClient(app, base_url="http://127.0.0.1:8080", client=client) as test_client:
        return test_client.post("/api/login", json={}, headers={"Host": host})


LOOPBACK_CLIENT = ("127.0.0.1", 50000)


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8080", "127.0.0.1:8080", "127.9.9.9", "[::1]:8080", "[::1]"]
)
def test_dev_mode_login_from_this_machine_with_a_loopback_host(app: FastAPI, host: str) -> None:
    assert dev_login(app, client=LOOPBACK_CLIENT, host=host).status_code == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io", "[::2]"],
)
def test_dev_mode_login_with_a_foreign_host_header_is_403(app: FastAPI, host: str) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example.
    response = dev_login(app, client=LOOPBACK_CLIENT, host=host)
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["type"] == "forbidden"
    assert "dev-mode login is only allowed from this machine" in body["error"]
    assert "PLATFORM_ADMIN_PASSWORD" in body["error"]


@pytest.mark.parametrize("peer", ["192.168.1.20", "10.0.0.7", "testclient", "::ffff:10.0.0.1"])
def test_dev_mode_login_from_another_machine_is_403(app: FastAPI, peer: str) -> None:
    # Someone ran the app on 0.0.0.0 through uvicorn directly, bypassing the startup check.
    response = dev_login(app, client=(peer, 40000), host="127.0.0.1:8080")
    assert response.status_code == 403, response.text
    assert "only allowed from this machine" in response.json()["error"]


def test_login_with_a_password_works_from_anywhere(
    tmp_path: Path, test_plugins: list[Plugin]
) -> None:
    settings = PlatformSettings(home=tmp_path, admin_password=SecretStr("pw"))
    app = create_app(settings, test_plugins)
    with TestClient(app, base_url="http://gateway.example", client=("203.0.113.9", 1)) as client:
        assert client.post("/api/login", json={"password": "pw"}).status_code == 200
        assert_unauthorized(client.post("/api/login"))


@pytest.mark.parametrize(
    ("value", "hostname"),
    [
        ("localhost", "localhost"),
        ("localhost:8080", "localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::1", None),
        ("", None),
        (None, None),
    ],
)
def test_host_header_name(value: str | None, hostname: str | None) -> None:
    assert host_header_name(value) == hostname


def test_login_without_a_body_is_like_an_empty_one(client: TestClient) -> None:
    # `curl -X POST http://127.0.0.1:8080/api/login` in dev mode.
    response = client.post("/api/login")
    assert response.status_code == 200, response.text
    claims = client.app.state.signer.verify(response.json()["token"])  # type: ignore[attr-defined]
    assert (claims.sub, claims.admin) == ("admin", True)


def test_login_with_a_json_empty_body_as_the_readme_sends_it(client: TestClient) -> None:
    response = client.post(
        "/api/login", content=b"{}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


WS_ROUTE = "/api/testplug/ws"


@pytest.mark.parametrize(
    "how",
    [
        {},
        {"params": "auth=not-a-jwt"},
        {"headers": {"Authorization": "Bearer not-a-jwt"}},
        {"headers": {"Authorization": "Basic dXNlcjpwdw=="}},
    ],
    ids=["no-token", "bad-query-token", "bad-bearer-token", "not-bearer"],
)
def test_a_websocket_without_a_valid_token_is_refused_with_1008(
    client: TestClient, how: dict[str, Any]
) -> None:
    url = WS_ROUTE + (f"?{how['params']}" if "params" in how else "")
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(url, headers=how.get("headers", {})) as ws,
    ):
        ws.receive_json()
    assert refused.value.code == 1008


@pytest.mark.parametrize("via", ["query", "header"])
def test_a_websocket_with_a_token_is_accepted_and_echoes(
    client: TestClient, token: str, via: str
) -> None:
    if via == "query":
        connection = client.websocket_connect(f"{WS_ROUTE}?auth={token}")
    else:
        connection = client.websocket_connect(
            WS_ROUTE, headers={"Authorization": f"Bearer {token}"}
        )
    with connection as ws:
        assert ws.receive_json() == {"sub": "admin"}
        ws.send_text("hi")
        assert ws.receive_text() == "echo: hi"
