"""The web UI at ``/``: the playground's static export, served with its deep links.

Next.js writes one ``index.html`` per page directory (``trailingSlash``), so ``/sql/?x=1``
is ``sql/index.html``; ``/sql`` redirects to ``/sql/`` as a static host would. Hashed assets
under ``/_next/static`` are cached for a year; pages are revalidated on every load. Paths
under ``/api/`` and the plugins' prefixes never fall through to the UI: an unknown API path
stays a JSON 404. The export ships inside this package (``platform_gateway/ui``, built by
``make setup``); ``PLATFORM_UI_DIR`` points elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from platform_core import NotFoundError, PlatformSettings
from platform_core.http import error_body
from platform_core.http.wire import kind_of_status

__all__ = ["BUILD_HINT", "CSP", "UIFiles", "ui_root"]

log = logging.getLogger(__name__)

PACKAGED = Path(__file__).parent / "ui"
"""Where ``scripts/setup.sh`` copies the export (and where a wheel carries it)."""

BUILD_HINT = "run `make setup` (or `npm ci && npm run build` in apps/playground)"

CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
"""No CDN and no eval: scripts come from this origin only. Next's export bootstraps each page
with inline scripts, hence ``'unsafe-inline'`` for scripts (nothing a user writes is ever put
into a page as HTML, so there is no markup to inject them through)."""

_IMMUTABLE = "public, max-age=31536000, immutable"


def ui_root(settings: PlatformSettings) -> Path | None:
    """The export to serve, or ``None`` (logged once, with how to build it) when there is none."""
    root = settings.ui_dir if settings.ui_dir is not None else PACKAGED
    if (root / "index.html").is_file():
        return root.resolve()
    log.warning("the web UI is not built (no index.html in %s): %s", root, BUILD_HINT)
    return None


class UIFiles:
    """The router's default app (what answers when no route matched): files of the export.

    A path under an API prefix, or any path when no UI is built, goes to ``fallback`` (the
    router's own JSON 404), so routes added later still match first and the API's 404s stay
    the API's.
    """

    def __init__(self, root: Path | None, api_prefixes: Sequence[str], fallback: ASGIApp) -> None:
        self.root = root
        self.api_prefixes = tuple(p.rstrip("/") for p in api_prefixes)
        self.fallback = fallback

    def _is_api(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.api_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or self._is_api(path):
            await self.fallback(scope, receive, send)
            return
        response = self._respond(Request(scope, receive))
        await response(scope, receive, send)

    def _respond(self, request: Request) -> Response:
        path = request.url.path
        if self.root is None:
            hint = f"the API works (see /docs); to get the web UI, {BUILD_HINT}"
            exc = NotFoundError(f"the web UI is not built, so nothing is at {path}: {hint}")
            return JSONResponse(error_body(exc), status_code=404)
        if request.method not in ("GET", "HEAD"):
            body = {"error": f"{request.method} {path}: the web UI only answers GET and HEAD"}
            return JSONResponse({**body, "type": kind_of_status(405)}, status_code=405)
        target = self._resolve(path)
        if target is None:
            return self._not_found()
        if target.is_dir():
            if not path.endswith("/"):
                query = f"?{request.url.query}" if request.url.query else ""
                return RedirectResponse(path + "/" + query, status_code=308)
            target = target / "index.html"
            if not target.is_file():
                return self._not_found()
        return self._file(target, status=200)

    def _resolve(self, path: str) -> Path | None:
        """The file or directory ``path`` names inside the root; ``None`` for anything else."""
        assert self.root is not None
        parts = PurePosixPath(path).parts[1:]  # drop the leading "/"
        if any(p in ("..", ".") or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
            return None
        target = self.root.joinpath(*parts)
        try:
            target = target.resolve()
        except (OSError, RuntimeError):
            return None
        if target != self.root and self.root not in target.parents:
            return None  # a symlink out of the export
        if target.is_file() or target.is_dir():
            return target
        html = target.with_name(target.name + ".html")  # /404 -> 404.html
        return html if html.is_file() else None

    def _not_found(self) -> Response:
        assert self.root is not None
        page = self.root / "404.html"
        if page.is_file():
            return self._file(page, status=404)
        return JSONResponse(error_body(NotFoundError("no such page")), status_code=404)

    def _file(self, target: Path, status: int) -> Response:
        headers = {"x-content-type-options": "nosniff"}
        rel = target.relative_to(self.root) if self.root else target
        if rel.parts[:2] == ("_next", "static"):
            headers["cache-control"] = _IMMUTABLE
        else:
            headers["cache-control"] = "no-cache"
        if target.suffix == ".html":
            headers["content-security-policy"] = CSP
            headers["referrer-policy"] = "same-origin"
        return FileResponse(target, status_code=status, headers=headers)
