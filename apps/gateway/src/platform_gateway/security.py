"""Auth as route dependencies: ``require_token`` and ``require_admin``, plus the dev-mode rules.

Dependencies rather than middleware, so an unknown route is still a 404, and public routes
(``/health``, ``/docs``, login, ...) simply do not declare them. They take an
``HTTPConnection``, so they guard WebSocket routes as well as HTTP ones.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from platform_core import (
    ForbiddenError,
    PlatformSettings,
    SettingsError,
    UnauthorizedError,
    host_header_name,
    is_local_request,
    is_loopback,
)
from platform_core.auth import Claims, TokenSigner, bearer_token

__all__ = [
    "admin_password",
    "host_header_name",
    "is_local_connection",
    "is_loopback",
    "login_mode",
    "require_admin",
    "require_token",
]


class _DocsOnlyBearer(HTTPBearer):
    """``HTTPBearer`` declared only so /docs shows an "Authorize" button.

    It parses nothing (``require_token`` reads the header and ``?auth=`` itself), so it
    behaves the same on HTTP and WebSocket connections.
    """

    async def __call__(self, request: HTTPConnection) -> None:
        return None


_bearer_scheme = _DocsOnlyBearer(
    auto_error=False,
    scheme_name="HTTPBearer",
    description="A platform token from `POST /api/login` or `platform token` "
    "(also accepted as the `?auth=` query parameter, e.g. for SSE and WebSockets).",
)


async def require_token(
    conn: HTTPConnection, _scheme: Annotated[None, Depends(_bearer_scheme)] = None
) -> Claims:
    """The claims of the connection's valid user token (also on ``conn.state.claims``).

    The token comes from ``Authorization: Bearer <token>`` or ``?auth=<token>``. Without a
    valid one: 401 on HTTP; on a WebSocket, the handshake is refused with close code 1008.
    """
    token = bearer_token(conn.headers.get("authorization")) or conn.query_params.get("auth")
    if not token:
        raise UnauthorizedError(
            "this route needs a token: send 'Authorization: Bearer <token>' or '?auth=<token>' "
            "(get one from POST /api/login or `platform token`)"
        )
    token_signer: TokenSigner = conn.app.state.signer
    claims = token_signer.verify(token)
    conn.state.claims = claims
    return claims


async def require_admin(claims: Annotated[Claims, Depends(require_token)]) -> Claims:
    """Like :func:`require_token`, but the token must carry ``admin``; else 403."""
    if not claims.admin:
        raise ForbiddenError(f"{claims.sub!r} is not an admin; this route needs an admin token")
    return claims


def is_local_connection(conn: HTTPConnection) -> bool:
    """Whether the peer is on this machine and asked for a loopback name (no DNS rebinding),
    and no other site's page is behind it (core's :func:`platform_core.is_local_request`)."""
    client = conn.client
    return is_local_request(
        client.host if client is not None else None,
        conn.headers.get("host"),
        conn.headers.get("origin"),
        conn.headers.get("sec-fetch-site"),
    )


def admin_password(settings: PlatformSettings) -> str | None:
    """The admin password, or ``None`` when unset (core's settings turn an empty one into unset)."""
    secret = settings.admin_password
    return secret.get_secret_value() if secret is not None else None


def login_mode(settings: PlatformSettings) -> bool:
    """``True`` for dev mode (no password, loopback); raises ``SettingsError`` if unsafe."""
    password = admin_password(settings)
    if password is not None:
        return False
    if is_loopback(settings.host):
        return True
    raise SettingsError(
        f"the gateway would listen on {settings.host!r}, reachable from other machines, but "
        "PLATFORM_ADMIN_PASSWORD is not set, so anyone could log in as admin; set "
        "PLATFORM_ADMIN_PASSWORD, or bind 127.0.0.1 (--host 127.0.0.1) for local dev mode"
    )
