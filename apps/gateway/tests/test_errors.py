"""Every error is JSON {"error", "type"}; body size limit; mounted apps keep their own errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

import platform_core.errors
from platform_core import NotFoundError, PlatformError
from platform_core.http import kind_of_status


def test_unknown_route_is_a_json_404_even_without_a_token(client: TestClient) -> None:
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "not found: GET /api/nope", "type": "not_found"}


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.json() == {
        "error": "method not allowed: DELETE /health (allowed: GET)",
        "type": "method_not_allowed",
    }
    assert response.headers["allow"] == "GET"


def test_a_platform_error_keeps_its_status_and_message(
    client: TestClient, auth_headers: dict[str, str]
) -> None:
    response = client.get("/api/testplug/missing", headers=auth_headers)
    assert response.status_code == 404
    assert response.json() == {
        "error": "no thing named 'missing' (there are none)",
        "type": "not_found",
    }


def test_a_bad_body_is_a_400_bad_input_naming_the_field(
    client: TestClient, auth_headers: dict[str, str]
) -> None:
    response = client.post("/api/testplug/items", json={"n": "many"}, headers=auth_headers)
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "bad_input"
    assert body["error"].startswith("body.n: Input should be a valid integer")


def test_several_bad_fields_are_all_named(client: TestClient) -> None:
    response = client.post("/api/login", json={"password": 5, "sub": ""})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "body.password: " in error
    assert "; body.sub: " in error


def test_malformed_json_is_a_json_4xx(client: TestClient) -> None:
    response = client.post(
        "/api/login", content=b'{"sub": ', headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    body = response.json()
    assert body["type"] == "bad_input"
    assert "JSON decode error" in body["error"]


def test_an_unexpected_exception_is_a_500_without_details(
    client: TestClient, auth_headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    response = client.get("/api/testplug/boom", headers=auth_headers)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (logged)", "type": "internal"}
    assert "boom" not in response.text
    # ... but the log has the whole traceback, once.
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1
    assert "RuntimeError: boom" in caplog.text
    assert "Traceback" in caplog.text


def test_an_oversize_body_by_content_length_is_413_before_auth(client: TestClient) -> None:
    # max_body_bytes is 1024 in these tests; no token needed to be turned away.
    response = client.post("/api/testplug/echo", content=b"x" * 2000)
    assert response.status_code == 413
    assert response.json()["type"] == "over_budget"
    assert "1024 bytes" in response.json()["error"]


def test_a_body_at_the_limit_is_accepted(client: TestClient, auth_headers: dict[str, str]) -> None:
    response = client.post("/api/testplug/echo", content=b"x" * 1024, headers=auth_headers)
    assert response.json() == {"bytes": 1024}


def chunks(count: int, size: int = 100) -> Iterator[bytes]:
    """A streamed body: sent chunked, without Content-Length."""
    for _ in range(count):
        yield b"x" * size


@pytest.mark.parametrize("route", ["/api/testplug/echo", "/api/testplug/items"])
def test_an_oversize_streamed_body_is_413(
    client: TestClient, auth_headers: dict[str, str], route: str
) -> None:
    headers = {**auth_headers, "Content-Type": "application/json"}
    response = client.post(route, content=chunks(30), headers=headers)
    assert response.request.headers.get("content-length") is None
    assert response.status_code == 413
    assert response.json()["type"] == "over_budget"


def test_a_small_streamed_body_passes(client: TestClient, auth_headers: dict[str, str]) -> None:
    response = client.post("/api/testplug/echo", content=chunks(5), headers=auth_headers)
    assert response.json() == {"bytes": 500}


def test_the_mounted_app_is_reachable_and_keeps_its_own_errors(client: TestClient) -> None:
    # Mounted apps do their own auth: the gateway does not ask for a token here.
    assert client.get("/mounted/").json() == {"mounted": True, "path": "/mounted/"}
    response = client.get("/mounted/fail")
    assert response.status_code == 418
    assert response.json() == {"mounted_error": "the mounted app's own error"}


@pytest.fixture
def raising_client(app: FastAPI) -> Iterator[TestClient]:
    """The app with gateway routes raising the errors below; a local client."""

    @app.get("/api/raise/not-found")
    async def not_found() -> None:
        raise NotFoundError("no dataset 'sales'", path=Path("/data/sales"), when=date(2024, 5, 1))

    @app.get("/api/raise/http/{status}")
    async def http_error(status: int) -> None:
        raise HTTPException(status, f"raised with {status}")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_error_details_that_are_not_json_are_encoded(raising_client: TestClient) -> None:
    response = raising_client.get("/api/raise/not-found")
    assert response.status_code == 404
    assert response.json() == {
        "error": "no dataset 'sales'",
        "type": "not_found",
        "details": {"path": "/data/sales", "when": "2024-05-01"},
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, "internal"),
        (400, "bad_input"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (409, "conflict"),
        (413, "over_budget"),
        (503, "unavailable"),
        (418, "i'm_a_teapot"),
        (502, "bad_gateway"),
    ],
)
def test_an_http_exception_gets_the_type_of_the_core_error_of_its_status(
    raising_client: TestClient, status: int, kind: str
) -> None:
    response = raising_client.get(f"/api/raise/http/{status}")
    assert response.status_code == status
    assert response.json() == {"error": f"raised with {status}", "type": kind}


def core_errors() -> list[type[PlatformError]]:
    return [
        cls
        for cls in vars(platform_core.errors).values()
        if isinstance(cls, type) and issubclass(cls, PlatformError)
    ]


def test_the_status_types_follow_the_core_error_classes() -> None:
    for cls in core_errors():
        # Every status of a core error maps to the kind of its most general class with it.
        general = [c for c in cls.__mro__ if c in core_errors() and c.status == cls.status]
        assert kind_of_status(cls.status) == general[-1].kind, cls


def test_a_mounted_app_gets_the_gateways_json_413_for_a_streamed_oversize_body(
    client: TestClient,
) -> None:
    # Without the gateway stepping in, the mounted Starlette app would answer text/plain.
    response = client.post("/mounted/echo", content=chunks(30))
    assert response.request.headers.get("content-length") is None
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json()["type"] == "over_budget"
    assert "1024 bytes" in response.json()["error"]


def test_a_mounted_app_gets_the_gateways_json_413_by_content_length(client: TestClient) -> None:
    response = client.post("/mounted/echo", content=b"x" * 2000)
    assert response.status_code == 413
    assert response.json()["type"] == "over_budget"


def test_a_mounted_app_reads_bodies_within_the_limit(client: TestClient) -> None:
    assert client.post("/mounted/echo", content=chunks(5)).json() == {"bytes": 500}
    assert client.post("/mounted/echo", content=b"x" * 1024).json() == {"bytes": 1024}
