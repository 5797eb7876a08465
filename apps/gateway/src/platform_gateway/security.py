"""Auth as route dependencies: ``require_token`` and ``require_admin``, plus the dev-mode rule.

Dependencies rather than middleware, so an unknown route is still a 404, and public routes
(``/health``, ``/docs``, login, ...) simply do not declare them.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from platform_core import ForbiddenError, PlatformSettings, SettingsError, UnauthorizedError
from platform_core.auth import Claims, TokenSigner, bearer_token

__all__ = ["admin_password", "is_loopback", "login_mode", "require_admin", "require_token"]

# Declared only so /docs shows an "Authorize" button; the header is parsed below.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A platform token from `POST /api/login` or `platform token` "
    "(also accepted as the `?auth=` query parameter, e.g. for SSE).",
)


async def require_token(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)] = None,
) -> Claims:
    """The claims of the request's valid user token (also on ``request.state.claims``); else 401."""
    token = bearer_token(request.headers.get("authorization")) or request.query_params.get("auth")
    if not token:
        raise UnauthorizedError(
            "this route needs a token: send 'Authorization: Bearer <token>' or '?auth=<token>' "
            "(get one from POST /api/login or `platform token`)"
        )
    token_signer: TokenSigner = request.app.state.signer
    claims = token_signer.verify(token)
    request.state.claims = claims
    return claims


async def require_admin(claims: Annotated[Claims, Depends(require_token)]) -> Claims:
    """Like :func:`require_token`, but the token must carry ``admin``; else 403."""
    if not claims.admin:
        raise ForbiddenError(f"{claims.sub!r} is not an admin; this route needs an admin token")
    return claims


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin_password(settings: PlatformSettings) -> str | None:
    """The admin password, or ``None`` when unset (an empty value counts as unset)."""
    secret = settings.admin_password
    value = secret.get_secret_value() if secret is not None else ""
    return value or None


def login_mode(settings: PlatformSettings) -> bool:
    """``True`` for dev mode (no password, loopback); raises ``SettingsError`` if unsafe."""
    if admin_password(settings) is not None:
        return False
    if is_loopback(settings.host):
        return True
    raise SettingsError(
        f"the gateway would listen on {settings.host!r}, reachable from other machines, but "
        "PLATFORM_ADMIN_PASSWORD is not set, so anyone could log in as admin; set "
        "PLATFORM_ADMIN_PASSWORD, or bind 127.0.0.1 (--host 127.0.0.1) for local dev mode"
    )
