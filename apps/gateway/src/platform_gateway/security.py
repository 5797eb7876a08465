"""Auth as route dependencies: ``require_token`` and ``require_admin``, plus the dev-mode rules.

Dependencies rather than middleware, so an unknown route is still a 404, and public routes
(``/health``, ``/docs``, login, ...) simply do not declare them. They take an
``HTTPConnection``, so they guard WebSocket routes as well as HTTP ones.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from platform_core import ForbiddenError, PlatformSettings, SettingsError, UnauthorizedError
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1, from a dual-stack socket
    return address.is_loopback


def host_header_name(value: str | None) -> str | None:
    """The hostname of a ``Host`` header: ``"[::1]:8080"`` -> ``"::1"``, ``"a:80"`` -> ``"a"``."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else None
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value or None


def is_local_connection(conn: HTTPConnection) -> bool:
    """Whether the peer is on this machine and asked for a loopback name (no DNS rebinding).

    Both must hold: the client address is loopback, and the ``Host`` header names a loopback
    host (``localhost``, ``127.x.x.x``, ``[::1]``), which a page from another site cannot make
    a browser send.
    """
    client = conn.client
    if client is None or not is_loopback(client.host):
        return False
    hostname = host_header_name(conn.headers.get("host"))
    return hostname is not None and is_loopback(hostname)


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
