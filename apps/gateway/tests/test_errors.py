"""Every error is JSON {"error", "type"}; body size limit; mounted apps keep their own errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient


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


def test_a_bad_body_is_a_422_naming_the_field(
    client: TestClient, auth_headers: dict[str, str]
) -> None:
    response = client.post("/api/testplug/items", json={"n": "many"}, headers=auth_headers)
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "bad_input"
    assert body["error"].startswith("body.n: Input should be a valid integer")


def test_several_bad_fields_are_all_named(client: TestClient) -> None:
    response = client.post("/api/login", json={"password": 5, "sub": ""})
    assert response.status_code == 422
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
