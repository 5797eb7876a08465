"""Public gateway routes: health, versions, offline docs and the OpenAPI schema."""

from __future__ import annotations

import re
from importlib.metadata import version

from fastapi.testclient import TestClient

import platform_gateway


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_head_health_answers_200_for_probes(client: TestClient) -> None:
    response = client.head("/health")
    assert response.status_code == 200
    assert response.content == b""


def test_the_openapi_version_is_the_package_version(client: TestClient) -> None:
    assert client.get("/openapi.json").json()["info"]["version"] == platform_gateway.__version__
    assert platform_gateway.__version__ == version("platform-gateway")


def test_version_lists_the_platform_distributions(client: TestClient) -> None:
    versions = client.get("/api/version").json()
    assert {"platform-core", "platform-gateway"} <= versions.keys()
    assert all(name.startswith("platform-") for name in versions)
    assert all(re.fullmatch(r"\d+\.\d+\.\d+.*", v) for v in versions.values())


def test_docs_are_served_without_any_network_url(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "cdn" not in html.lower()
    assert "http://" not in html
    assert "https://" not in html
    assets = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert len(assets) == 3  # stylesheet, favicon, script
    for url in assets:
        assert url.startswith("/docs/assets/")
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100


def test_openapi_lists_plugin_routes_behind_bearer_auth(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/testplug/secret" in schema["paths"]
    assert "/api/login" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    secret = schema["paths"]["/api/testplug/secret"]["get"]
    assert secret["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/api/login"]["post"]


def test_public_routes_need_no_token(client: TestClient) -> None:
    for path in ("/health", "/api/version", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path
