"""The web UI at ``/``: the playground's static export, served with its deep links.

Next.js writes one ``index.html`` per page directory (``trailingSlash``), so ``/sql/?x=1``
is ``sql/index.html``; ``/sql`` redirects to ``/sql/`` as a static host would. Hashed assets
under ``/_next/static`` are cached for a year; pages are revalidated on every load. Paths
under ``/api/`` and the plugins' prefixes never fall through to the UI: an unknown API path
stays a JSON 404. Where the build left a gzip copy beside a file (``app.js.gz``, written by
``make setup``) and the browser accepts gzip, the copy is sent: no compression per request.
The export ships inside this package (``platform_gateway/ui``, built by ``make setup``);
``PLATFORM_UI_DIR`` points elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from platform_core import NotFoundError, PlatformSettings
from platform_core.http import error_body
from platform_core.http.wire import kind_of_status

__all__ = ["BUILD_HINT", "CSP", "UIFiles", "page_csp", "ui_root"]

log = logging.getLogger(__name__)

PACKAGED = Path(__file__).parent / "ui"
"""Where ``scripts/setup.sh`` copies the export (and where a wheel carries it)."""

BUILD_HINT = "run `make setup` (or `npm ci && npm run build` in apps/playground)"

CSP = (
    "default-src 'self'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
"""No CDN and no eval: scripts come from this origin only. Next's export bootstraps each page
with inline scripts; a page's CSP allows exactly those, by their SHA-256 (``{scripts}``), not
``'unsafe-inline'``, so markup that ever got into a page (an ``<img onerror>``) cannot run."""

_INLINE_SCRIPT = re.compile(
    rb"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL
)


def page_csp(html: bytes) -> str:
    """The Content-Security-Policy of one page: :data:`CSP` with its inline scripts' hashes."""
    hashes = dict.fromkeys(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.finditer(html)
        if m.group(1)
    )
    return CSP.format(scripts="".join(" " + h for h in hashes))


_IMMUTABLE = "public, max-age=31536000, immutable"


def ui_root(settings: PlatformSettings) -> Path | None:
    """The export to serve, or ``None`` (logged once, with how to build it) when there is none."""
    root = settings.ui_dir if settings.ui_dir is not None else PACKAGED
    if (root / "index.html").is_file():
        return root.resolve()
    log.warning("the web UI is not built (no index.html in %s): %s", root, BUILD_HINT)
    return None


def _is_file(path: Path) -> bool:
    """``Path.is_file``, but ``False`` where the file system refuses the name (too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


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
        self._csp: dict[Path, tuple[int, int, str]] = {}

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
            return JSONResponse(
                {**body, "type": kind_of_status(405)},
                status_code=405,
                headers={"allow": "GET, HEAD"},
            )
        target = self._resolve(path)
        if target is None:
            return self._not_found()
        if _is_dir(target):
            if not path.endswith("/"):
                query = f"?{request.url.query}" if request.url.query else ""
                # One leading slash: `//cluster/` would be protocol-relative (http://cluster/).
                return RedirectResponse("/" + path.lstrip("/") + "/" + query, status_code=308)
            target = target / "index.html"
            if not _is_file(target):
                return self._not_found()
        return self._file(target, status=200, gzip_ok=_accepts_gzip(request))

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
        if _is_file(target) or _is_dir(target):
            return target
        html = target.with_name(target.name + ".html")  # /404 -> 404.html
        return html if _is_file(html) else None

    def _page_csp(self, page: Path) -> str:
        """``page_csp`` of the file, kept while its size and modification time stay the same."""
        st = page.stat()
        known = self._csp.get(page)
        if known is not None and known[:2] == (st.st_mtime_ns, st.st_size):
            return known[2]
        csp = page_csp(page.read_bytes())
        self._csp[page] = (st.st_mtime_ns, st.st_size, csp)
        return csp

    def _not_found(self) -> Response:
        assert self.root is not None
        page = self.root / "404.html"
        if page.is_file():
            return self._file(page, status=404)
        return JSONResponse(error_body(NotFoundError("no such page")), status_code=404)

    def _file(self, target: Path, status: int, *, gzip_ok: bool = False) -> Response:
        headers = {"x-content-type-options": "nosniff"}
        rel = target.relative_to(self.root) if self.root else target
        if rel.parts[:2] == ("_next", "static"):
            headers["cache-control"] = _IMMUTABLE
        else:
            headers["cache-control"] = "no-cache"
        if target.suffix == ".html":
            headers["content-security-policy"] = self._page_csp(target)
            headers["referrer-policy"] = "same-origin"
        packed = target.with_name(target.name + ".gz")
        if target.suffix in _PACKED and _is_file(packed):
            headers["vary"] = "accept-encoding"  # caches keep both forms apart
            if gzip_ok and packed.resolve().parent == target.resolve().parent:
                headers["content-encoding"] = "gzip"
                # The type is the original's: FileResponse would guess from ".gz".
                kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                return FileResponse(packed, status_code=status, headers=headers, media_type=kind)
        return FileResponse(target, status_code=status, headers=headers)


_PACKED = frozenset({".html", ".js", ".css", ".json", ".svg", ".txt", ".map"})
"""The suffixes ``make setup`` writes gzip copies of (text; images and fonts are packed)."""


def _accepts_gzip(request: Request) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip;q=0`` refuses it)."""
    for item in request.headers.get("accept-encoding", "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _quality(q[2:]) == 0.0)
    return False


def _quality(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0
