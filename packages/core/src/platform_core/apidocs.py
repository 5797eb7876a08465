"""API docs served offline: one OpenAPI document per server, one Swagger UI page, no CDN.

Every HTTP surface of the platform (the gateway, ``lake node``, ``elkyn serve``) serves its
OpenAPI document and a Swagger UI page whose JavaScript, CSS and favicon come from the server
itself (the files of the ``fastapi-offline`` distribution, which each serving package
declares): the platform runs on machines without internet access. Apps mounted inside a
FastAPI app are merged into its document: a FastAPI sub-app with its own ``openapi()``, a
plain ASGI app exposing ``openapi_fragment()`` (Elkyn), or a Starlette app whose routes are
described from their endpoints. This module imports no web framework at import time.
"""

# No ``from __future__ import annotations``: FastAPI must see the real ``Request`` class in
# the endpoints ``install_docs`` defines, which import it locally.
import html
import importlib.util
import inspect
import json
from pathlib import Path
from typing import Any

from .errors import PlatformError

__all__ = [
    "ASSETS",
    "ASSETS_PATH",
    "DOCS_PATH",
    "asset",
    "install_docs",
    "merge_mounted",
    "swagger_page",
]

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
"""The files the page loads, with their content types."""

_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


def _assets_dir() -> Path:
    # find_spec does not run the package: a plain ASGI server needs only its files.
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise PlatformError(
            "the API docs need the Swagger UI files of the fastapi-offline distribution: "
            "install it (pip install fastapi-offline) in this environment"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of one of ``ASSETS``, or ``None`` for any other name."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    return (_assets_dir() / name).read_bytes(), content_type


def swagger_page(title: str, openapi_url: str, assets_url: str) -> str:
    """The Swagger UI page for ``openapi_url``, loading only ``assets_url/<asset>``.

    Both URLs are paths on the server itself; the spec validator (which would send the
    document to validator.swagger.io) is off.
    """
    esc = html.escape
    config = json.dumps(
        {
            "url": openapi_url,
            "dom_id": "#swagger-ui",
            "layout": "BaseLayout",
            "deepLinking": True,
            "validatorUrl": None,
            "persistAuthorization": True,
        }
    ).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{esc(title)}</title>
<link rel="stylesheet" href="{esc(assets_url)}/swagger-ui.css">
<link rel="icon" href="{esc(assets_url)}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{esc(assets_url)}/swagger-ui-bundle.js"></script>
<script>
const config = {config};
config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
window.ui = SwaggerUIBundle(config);
</script>
</body>
</html>
"""


def _starlette_paths(app: Any) -> dict[str, Any]:
    """Operations for a plain Starlette app's routes, described from their endpoints."""
    paths: dict[str, Any] = {}
    for route in getattr(app, "routes", []):
        methods = getattr(route, "methods", None)
        path = getattr(route, "path", None)
        if not methods or path is None:
            continue
        doc = inspect.getdoc(getattr(route, "endpoint", None)) or ""
        name = getattr(route, "name", path)
        for method in sorted(m.lower() for m in methods if m.lower() != "head"):
            paths.setdefault(path, {})[method] = {
                "summary": doc.splitlines()[0] if doc else name.replace("_", " "),
                "description": doc,
                "operationId": f"{name}_{method}_{path.strip('/').replace('/', '_')}",
                "responses": {"200": {"description": "OK"}},
            }
    return paths


def _fragment(sub: Any) -> dict[str, Any] | None:
    """The OpenAPI document of a mounted app, if it can describe itself."""
    own = getattr(sub, "openapi_fragment", None)
    if callable(own):
        result: dict[str, Any] = own()
        return result
    if callable(getattr(sub, "openapi", None)) and hasattr(sub, "openapi_schema"):
        result = sub.openapi()  # a FastAPI app
        return result
    if hasattr(sub, "routes"):
        return {"paths": _starlette_paths(sub)}
    return None


def merge_mounted(app: Any, schema: dict[str, Any], tags: dict[str, str] | None = None) -> None:
    """Add the operations of every app mounted in ``app`` to ``schema``, under its prefix.

    ``tags`` names the tag each mount's operations get (by mount path; default: the mount's
    name). Component schemas and security schemes are merged; a clash raises, so a mounted
    app cannot silently replace the host's definitions.
    """
    for route in getattr(app, "routes", []):
        sub = getattr(route, "app", None)
        prefix = getattr(route, "path", None)
        if sub is None or prefix is None or type(route).__name__ != "Mount":
            continue
        part = _fragment(sub)
        if not part:
            continue
        tag = (tags or {}).get(prefix) or getattr(route, "name", None) or prefix.strip("/")
        paths = schema.setdefault("paths", {})
        for path, item in part.get("paths", {}).items():
            for method, operation in item.items():
                if method in _METHODS and isinstance(operation, dict):
                    operation.setdefault("tags", [tag])
            paths[prefix.rstrip("/") + path] = item
        for section, entries in part.get("components", {}).items():
            mine = schema.setdefault("components", {}).setdefault(section, {})
            for name, entry in entries.items():
                if name in mine and mine[name] != entry:
                    raise PlatformError(
                        f"the app mounted at {prefix} defines components.{section}.{name} "
                        "differently from its host; rename one of them"
                    )
                mine[name] = entry


def install_docs(app: Any) -> None:
    """Serve ``app``'s document (with its mounted apps) at its ``openapi_url``, docs offline.

    ``app`` is a FastAPI app built with ``docs_url=None, redoc_url=None``: this adds
    ``/docs`` (Swagger UI) and ``/docs/assets/*`` from this server alone.
    """
    from fastapi import FastAPI, Request
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import HTMLResponse, Response

    if not isinstance(app, FastAPI):
        raise TypeError(f"install_docs takes a FastAPI app, not {type(app).__name__}")
    openapi_url = app.openapi_url or "/openapi.json"

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            merge_mounted(app, schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        found = asset(name)
        if found is None:
            return Response(status_code=404)
        body, content_type = found
        return Response(body, media_type=content_type, headers={"cache-control": "max-age=86400"})

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = swagger_page(f"{app.title} - API docs", f"{root}{openapi_url}", root + ASSETS_PATH)
        return HTMLResponse(page)
