"""``POST /api/login``: trade a user's password, or the admin password, for a token.

- ``{"username", "password"}``: a user of the store (``platform user add``); the token's
  ``sub`` is the user and ``admin`` the user's flag.
- ``{"password"}``: the admin password (``PLATFORM_ADMIN_PASSWORD``) gives an admin token.
- ``{}`` in dev mode (no admin password, loopback only): an admin token.

A wrong name and a wrong password get the same 401 after the same work. Failures are
throttled per user name and per client address (429 with ``Retry-After``).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Final

from fastapi import APIRouter, Body, FastAPI, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from platform_core import (
    BadInputError,
    ForbiddenError,
    PlatformSettings,
    UnauthorizedError,
    UserStore,
)
from platform_core.auth import TokenSigner

from .security import admin_password, is_local_connection
from .throttle import FailureThrottle

__all__ = ["LoginRequest", "TokenResponse", "router"]

router = APIRouter(tags=["gateway"])

USER_FAILURES: Final = 5
"""Failed logins per user name (or for the admin password) within the window."""
CLIENT_FAILURES: Final = 20
"""Failed logins per client address within the window, whichever names it tries."""
WINDOW_SECONDS: Final = 60.0


class LoginRequest(BaseModel):
    """Login body: a user and password, the admin password, or nothing (dev mode, as ``{}``)."""

    username: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A user added with `platform user add`; leave out to use the admin password.",
    )
    password: str | None = Field(default=None, max_length=1024)
    sub: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Subject of an admin-password or dev-mode token (default: admin).",
    )


class TokenResponse(BaseModel):
    """A bearer token to send as ``Authorization: Bearer <token>``."""

    token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class _Throttles:
    """The gateway's failure counters: one per user name, one per client address."""

    def __init__(self) -> None:
        self.user = FailureThrottle(USER_FAILURES, WINDOW_SECONDS)
        self.client = FailureThrottle(CLIENT_FAILURES, WINDOW_SECONDS)


def _throttles(app: FastAPI) -> _Throttles:
    throttles: _Throttles | None = getattr(app.state, "login_throttles", None)
    if throttles is None:
        throttles = app.state.login_throttles = _Throttles()
    return throttles


class LoginModeResponse(BaseModel):
    dev_mode: bool = Field(
        description="Whether POST /api/login with {} gives this client an admin token."
    )


@router.get("/api/login", response_model=LoginModeResponse)
async def login_mode_of(request: Request) -> LoginModeResponse:
    """How this client can sign in (the web UI's sign-in page asks); public.

    ``dev_mode`` is true only where ``POST /api/login`` with ``{}`` would succeed: no admin
    password is set and the client is on this machine.
    """
    return LoginModeResponse(
        dev_mode=bool(request.app.state.dev_mode) and is_local_connection(request)
    )


@router.post(
    "/api/login",
    response_model=TokenResponse,
    responses={
        401: {"description": "Wrong user name or password (the same answer for both)."},
        429: {"description": "Too many failed logins; retry after `Retry-After` seconds."},
    },
)
async def login(
    request: Request, body: Annotated[LoginRequest | None, Body()] = None
) -> TokenResponse:
    """Issue a token for a user of the store, or an admin token for the admin password.

    Dev mode (no ``PLATFORM_ADMIN_PASSWORD``) gives an admin token without a password, but
    only from this machine: the client address and the ``Host`` header must both be
    loopback, else 403.
    """
    body = body if body is not None else LoginRequest()
    settings: PlatformSettings = request.app.state.settings
    if body.username is not None:
        if body.sub is not None:
            raise BadInputError("'sub' is for admin-password logins; a user's token is for them")
        user_key, sub = f"user:{body.username}", body.username
    else:
        user_key, sub = "admin-password", body.sub or "admin"
    client_key = request.client.host if request.client is not None else "unknown"
    throttles = _throttles(request.app)
    wait = max(throttles.user.retry_after(user_key), throttles.client.retry_after(client_key))
    if wait:
        raise HTTPException(
            429,
            f"too many failed logins; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    try:
        admin = await _check(request, settings, body)
    except UnauthorizedError:
        throttles.user.failed(user_key)
        throttles.client.failed(client_key)
        raise
    throttles.user.forget(user_key)
    token_signer: TokenSigner = request.app.state.signer
    ttl = settings.token_ttl_seconds
    token = token_signer.issue(sub, admin=admin, ttl_seconds=ttl)
    return TokenResponse(token=token, expires_in=ttl)


async def _check(request: Request, settings: PlatformSettings, body: LoginRequest) -> bool:
    """Whether the token is an admin's; ``UnauthorizedError`` for wrong credentials."""
    if body.username is not None:
        store = UserStore.of(settings)
        # argon2 takes a while on purpose: off the event loop.
        user = await run_in_threadpool(store.authenticate, body.username, body.password or "")
        return user.admin
    expected = admin_password(settings)
    if expected is None:
        if not is_local_connection(request):
            raise ForbiddenError(
                "dev-mode login is only allowed from this machine (a loopback client address "
                "and Host header); set PLATFORM_ADMIN_PASSWORD to log in from elsewhere"
            )
        return True
    given = body.password or ""
    # Constant-time comparison of bytes (compare_digest rejects non-ASCII str).
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise UnauthorizedError(
            "wrong password (it is PLATFORM_ADMIN_PASSWORD; to log in as a user, "
            "send username and password)"
        )
    return True
