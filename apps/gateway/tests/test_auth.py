"""Auth: tokens on included plugin routes, login with and without a password, dev mode."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from platform_core import PlatformSettings, Plugin, SettingsError
from platform_core.auth import Claims, TokenSigner, load_secret
from platform_gateway import create_app, require_admin
from platform_gateway.security import is_loopback

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
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
