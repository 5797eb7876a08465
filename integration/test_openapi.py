"""Every HTTP surface in an OpenAPI document its server serves, with docs that load offline.

The installed `platform up`, `elkyn serve` and `lake node` run on free ports; each one's
document is fetched over HTTP and validated (openapi-spec-validator), every route the app
serves (its routes walked in process, Elkyn's read from its router) must appear in it, and
the docs page must name no URL outside the server's own origin.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from servers import Server, command, launch

from platform_core import load_settings

ELKYN_PARAMS = {
    "auth",
    "print",
    "shallow",
    "orderBy",
    "startAt",
    "endAt",
    "equalTo",
    "limitToFirst",
    "limitToLast",
    "format",
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    base = tmp_path_factory.mktemp("openapi")
    started: dict[str, Server] = {}
    try:
        started["gateway"] = launch(
            [str(command("platform")), "up", "--port", "0", "--home", str(base / "gw")],
            base / "gw-run",
        )
        started["elkyn"] = launch(
            [str(command("elkyn")), "serve", "--port", "0", "--memory", "--dev"],
            base / "elkyn-run",
            {"PLATFORM_HOME": str(base / "elkyn")},
        )
        started["lake"] = launch(
            [str(command("lake")), "node", "--port", "0", "--home", str(base / "lake")],
            base / "lake-run",
        )
        yield started
    finally:
        for server in started.values():
            server.stop()


DOC_PATH = {"gateway": "/openapi.json", "lake": "/openapi.json", "elkyn": "/.openapi.json"}


def _document(server: Server, name: str) -> dict[str, Any]:
    response = httpx.get(server.url + DOC_PATH[name], timeout=10)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "patch", "delete"}
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


def _route_template(path: str) -> str:
    """Starlette's ``{name:path}`` converters are plain ``{name}`` in OpenAPI."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def _served(app: Any, prefix: str = "") -> set[tuple[str, str]]:
    """(path, method) of every route ``app`` serves, mounted apps included (not docs routes)."""
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        if type(route).__name__ == "Mount":
            sub = route.app
            if hasattr(sub, "routes"):
                served |= _served(sub, prefix + route.path)
            elif hasattr(sub, "openapi_fragment"):
                served |= {(prefix + route.path + p, m) for p, m in _elkyn_routes()}
            continue
        if not getattr(route, "include_in_schema", True) or not getattr(route, "methods", None):
            continue
        path = _route_template(prefix + route.path)
        served |= {(path, m) for m in route.methods if m != "HEAD"}
    return served


def _elkyn_routes() -> set[tuple[str, str]]:
    """Elkyn's routes, read from its plain ASGI router: each literal path it compares to."""
    from elkyn.server.app import ElkynApp

    source = inspect.getsource(ElkynApp._handle)
    literals = set(re.findall(r'path == "(/[^"]+)"', source))
    assert {"/health", "/metrics", "/auth/token"} <= literals, "the router changed shape"
    methods = {
        "/auth/token": ["POST"],
        "/.settings/rules.json": ["GET", "PUT"],
        "/.replication/fence": ["POST"],
        "/.replication/members": ["GET", "POST", "DELETE"],
    }
    routes = {(p, m) for p in literals for m in methods.get(p, ["GET"])}
    for data in ("/.json", "/{path}.json"):
        routes |= {(data, m) for m in ("GET", "PUT", "PATCH", "POST", "DELETE")}
    assert '.endswith("/.watch")' in source
    routes.add(("/{path}/.watch", "GET"))
    return routes


@pytest.mark.parametrize("name", ["gateway", "elkyn", "lake"])
def test_each_server_serves_a_valid_document(servers: dict[str, Server], name: str) -> None:
    document = _document(servers[name], name)
    validate(document)  # raises with the path of the first problem
    assert document["paths"]


def test_the_gateway_documents_every_route_it_serves(
    servers: dict[str, Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from platform_gateway import create_app

    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path))
    app = create_app(load_settings())
    documented = _operations(_document(servers["gateway"], "gateway"))
    missing = _served(app) - documented
    assert not missing, f"served but not in the gateway's /openapi.json: {sorted(missing)}"
    assert ("/db/{path}.json", "PATCH") in documented


def test_the_gateway_describes_elkyn_firebase_rest(servers: dict[str, Server]) -> None:
    document = _document(servers["gateway"], "gateway")
    item = document["paths"]["/db/{path}.json"]
    assert set(item) >= {"get", "put", "patch", "post", "delete"}
    params = {p["name"] for p in item["get"]["parameters"]}
    assert params >= ELKYN_PARAMS | {"Last-Event-ID"}
    assert "If-Match" in {p["name"] for p in item["put"]["parameters"]}
    assert "text/event-stream" in item["get"]["responses"]["200"]["content"]
    assert item["get"]["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ElkynError"
    }
    assert "ElkynError" in document["components"]["schemas"]


def test_the_lake_node_documents_every_route_it_serves(
    servers: dict[str, Server], tmp_path: Path
) -> None:
    from lake.api.server import create_app
    from lake.settings import lake_settings
    from platform_core import auth

    settings = lake_settings(None, home=tmp_path)
    app = create_app(settings, auth.signer(settings))
    documented = _operations(_document(servers["lake"], "lake"))
    missing = _served(app) - documented
    assert not missing, f"served but not in lake node's /openapi.json: {sorted(missing)}"
    assert any(path.startswith("/api/lake/") for path, _ in documented)


def test_elkyn_serve_documents_every_route_it_serves(servers: dict[str, Server]) -> None:
    server = servers["elkyn"]
    documented = _operations(_document(server, "elkyn"))
    missing = _elkyn_routes() - documented
    assert not missing, f"served but not in elkyn's /.openapi.json: {sorted(missing)}"
    # ... and everything documented is really served (the server is --dev: 'owner' is admin).
    with httpx.Client(base_url=server.url, timeout=10, params={"auth": "owner"}) as http:
        for path, method in sorted(documented):
            if method not in ("GET", "POST"):
                continue
            url = path.replace("{path}", "probe")
            body = {"uid": "probe"} if path == "/auth/token" else {"a": 1}
            payload = None if method == "GET" else body
            # a stream answers its status at once, then runs until closed: read the head only
            with http.stream(method, url, json=payload) as response:
                assert response.status_code not in (404, 405), (method, url)


@pytest.mark.parametrize(
    ("name", "page"),
    [("gateway", "/docs"), ("elkyn", "/docs"), ("lake", "/docs"), ("gateway", "/db/docs")],
)
def test_docs_pages_load_from_the_server_alone(
    servers: dict[str, Server], name: str, page: str
) -> None:
    server = servers[name]
    response = httpx.get(server.url + page, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    foreign = [
        u
        for u in re.findall(r"https?://[^\s\"'<>]+", response.text)
        if not u.startswith(server.url)
    ]
    assert not foreign, f"{page} of {name} names URLs outside the server: {foreign}"
    base = httpx.URL(server.url + page)
    refs = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    refs += re.findall(r'"url": "([^"]+)"', response.text)
    assert len(refs) == 4, refs  # stylesheet, icon, script, document
    for ref in refs:
        asset = httpx.get(base.join(ref), timeout=10)
        assert asset.status_code == 200, (ref, asset.status_code)
        assert asset.content
