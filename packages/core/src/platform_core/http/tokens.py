"""The token dependency with roles: ``require_token`` (any user), ``require_admin`` (admin),
``require_cluster`` (node-to-node), ``require_worker`` (elytra's browser workers), and the checks :func:`check_admin` and :func:`check_owner`
(the owner of an object, or an admin) for routes whose object is known only inside.

Route dependencies rather than middleware, so an unknown route is still a 404 and public
routes simply do not declare them. The signer is ``app.state.signer`` of the app serving the
connection. They take an ``HTTPConnection``, so they guard WebSocket routes as well.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from ..auth import Claims, TokenSigner, bearer_token
from ..errors import ForbiddenError, UnauthorizedError
from ..netloc import is_local_request

__all__ = [
    "check_admin",
    "check_owner",
    "connection_token",
    "is_local_connection",
    "require_admin",
    "require_cluster",
    "require_token",
    "require_worker",
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


def connection_token(conn: HTTPConnection) -> str | None:
    """The token of ``Authorization: Bearer <token>``, else of ``?auth=``, else ``None``."""
    return bearer_token(conn.headers.get("authorization")) or conn.query_params.get("auth")


def _signer(conn: HTTPConnection) -> TokenSigner:
    signer: TokenSigner | None = getattr(conn.app.state, "signer", None)
    if signer is None:
        raise UnauthorizedError("this server has no token secret; it cannot check tokens")
    return signer


async def require_token(
    conn: HTTPConnection, _scheme: Annotated[None, Depends(_bearer_scheme)] = None
) -> Claims:
    """The claims of the connection's valid user token (also on ``conn.state.claims``).

    Without a valid one: 401 on HTTP; on a WebSocket, the handshake is refused (1008).
    """
    token = connection_token(conn)
    if not token:
        raise UnauthorizedError(
            "this route needs a token: send 'Authorization: Bearer <token>' or '?auth=<token>' "
            "(get one from POST /api/login or `platform token`)"
        )
    claims = _signer(conn).verify(token)
    conn.state.claims = claims
    return claims


async def require_admin(claims: Annotated[Claims, Depends(require_token)]) -> Claims:
    """Like :func:`require_token`, but the token must carry ``admin``; else 403."""
    if not claims.admin:
        raise ForbiddenError(f"{claims.sub!r} is not an admin; this route needs an admin token")
    return claims


async def require_cluster(conn: HTTPConnection) -> Claims:
    """The claims of a cluster token (node-to-node routes); a user token is refused (401)."""
    token = connection_token(conn)
    if not token:
        raise UnauthorizedError("this node-to-node route needs a cluster token")
    claims = _signer(conn).verify_cluster(token)
    conn.state.claims = claims
    return claims


async def require_worker(conn: HTTPConnection) -> Claims:
    """The claims of a worker token (the worker routes); user, admin and cluster tokens are
    refused (401; a WebSocket handshake is refused)."""
    token = connection_token(conn)
    if not token:
        raise UnauthorizedError("this worker route needs a worker token")
    claims = _signer(conn).verify_worker(token)
    conn.state.claims = claims
    return claims


def check_admin(claims: Claims, what: str) -> None:
    """Allow an admin only; else 403 naming ``what`` needs an admin token."""
    if not claims.admin:
        raise ForbiddenError(f"{claims.sub!r} is not an admin; {what} needs an admin token")


def check_owner(claims: Claims, owner: str | None, what: str) -> None:
    """Allow the owner of ``what`` (its uploader, submitter, ...) or an admin; else 403.

    An object without a recorded owner is left to admins.
    """
    if claims.admin or (owner is not None and claims.sub == owner):
        return
    if owner is None:
        raise ForbiddenError(
            f"{what} has no recorded owner (it predates owners); only an admin may change it"
        )
    raise ForbiddenError(f"{what} belongs to {owner!r}; only its owner or an admin may change it")


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
