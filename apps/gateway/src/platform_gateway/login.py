"""``POST /api/login``: trade the admin password (none in dev mode) for an admin token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

from platform_core import ForbiddenError, PlatformSettings, UnauthorizedError
from platform_core.auth import TokenSigner

from .security import admin_password, is_local_connection

__all__ = ["LoginRequest", "TokenResponse", "router"]

router = APIRouter(tags=["gateway"])


class LoginRequest(BaseModel):
    """Login body; ``password`` may be left out in dev mode, and the body too (same as ``{}``)."""

    password: str | None = None
    sub: str = Field(
        default="admin", min_length=1, max_length=128, description="Subject of the token."
    )


class TokenResponse(BaseModel):
    """A bearer token to send as ``Authorization: Bearer <token>``."""

    token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


@router.post("/api/login", response_model=TokenResponse)
async def login(
    request: Request, body: Annotated[LoginRequest | None, Body()] = None
) -> TokenResponse:
    """Issue an admin token for ``sub`` if the password is right.

    Dev mode (no ``PLATFORM_ADMIN_PASSWORD``) needs no password, but only from this machine:
    the client address and the ``Host`` header must both be loopback, else 403.
    """
    body = body if body is not None else LoginRequest()
    settings: PlatformSettings = request.app.state.settings
    expected = admin_password(settings)
    if expected is None:
        if not is_local_connection(request):
            raise ForbiddenError(
                "dev-mode login is only allowed from this machine (a loopback client address "
                "and Host header); set PLATFORM_ADMIN_PASSWORD to log in from elsewhere"
            )
    else:
        given = body.password or ""
        # Constant-time comparison of bytes (compare_digest rejects non-ASCII str).
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise UnauthorizedError("wrong password (it is PLATFORM_ADMIN_PASSWORD)")
    token_signer: TokenSigner = request.app.state.signer
    ttl = settings.token_ttl_seconds
    token = token_signer.issue(body.sub, admin=True, ttl_seconds=ttl)
    return TokenResponse(token=token, expires_in=ttl)
