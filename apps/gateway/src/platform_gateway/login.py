"""``POST /api/login``: trade a user's password, or the admin password, for a token; refresh
it (``POST /api/login/refresh``) and sign out (``POST /api/logout``).

- ``{"username", "password"}``: a user of the store (``platform user add``); the token's
  ``sub`` is the user and ``admin`` the user's flag.
- ``{"password"}``: the admin password (``PLATFORM_ADMIN_PASSWORD``) gives an admin token.
- ``{}`` in dev mode (no admin password, loopback only): an admin token.

A wrong name and a wrong password get the same 401 after the same work. Every attempt that
checks a password is first reserved in the cluster's login throttle (:mod:`.throttle`), and
the checks that run at once are bounded (429 with ``Retry-After`` beyond either).

Tokens carry an id (``jti``), a session id (``sid``: the first token's id, kept by refreshes)
and the subject's generation, so signing out, removing a user, a new password or role, and
``platform token revoke`` refuse them on every platform within seconds (:mod:`.accounts`).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Annotated, Final

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from platform_core import (
    BadInputError,
    ForbiddenError,
    NotFoundError,
    PlatformSettings,
    UnauthorizedError,
    UserStore,
    auth,
)
from platform_core.auth import Claims, TokenSigner

from . import throttle
from .accounts import SRC_USER, Accounts
from .security import admin_password, is_local_connection, require_token
from .throttle import CheckGate, TooManyLogins

__all__ = ["LoginRequest", "TokenResponse", "login_gate", "router"]

router = APIRouter(tags=["gateway"])

ADMIN_PASSWORD_KEY: Final = "~admin-password"
"""The throttle's name for logins with the admin password (no user name is a tilde)."""


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


def login_gate(app: FastAPI) -> CheckGate:
    """The app's bound on password checks running at once (made on first use)."""
    gate: CheckGate | None = getattr(app.state, "login_gate", None)
    if gate is None:
        settings: PlatformSettings = app.state.settings
        gate = app.state.login_gate = CheckGate(settings.login_checks, settings.login_queue)
    return gate


def _too_many(exc: TooManyLogins) -> HTTPException:
    return HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)})


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
    accounts: Accounts = request.app.state.accounts
    if body.username is not None:
        if body.sub is not None:
            raise BadInputError("'sub' is for admin-password logins; a user's token is for them")
        name, sub, src = body.username, body.username, SRC_USER
    else:
        name, sub = ADMIN_PASSWORD_KEY, body.sub or "admin"
        src = "password" if admin_password(settings) is not None else "dev"
    checked_gen: int | None = None
    if src == "dev":
        admin, _ = await _check(request, settings, body, None)
    else:
        host = request.client.host if request.client is not None else None
        try:  # counted before the check: a burst gets at most the limit's checks
            reservation = await accounts.run_blocking(
                throttle.reserve,
                accounts.state,
                name,
                host,
                None,
                settings.login_window_seconds,
            )
        except TooManyLogins as exc:
            raise _too_many(exc) from None
        if reservation.delay:
            await asyncio.sleep(reservation.delay)
        try:
            admin, checked_gen = await _check(request, settings, body, login_gate(request.app))
        except TooManyLogins as exc:
            raise _too_many(exc) from None
        await accounts.run_blocking(throttle.succeeded, accounts.state, reservation)
    gen = None
    if src == SRC_USER:
        gen = await accounts.run_blocking(
            _generation_of_check, accounts, settings, sub, checked_gen
        )
    return _issue(request, sub, admin, src, sid=None, gen=gen)


def _generation_of_check(
    accounts: Accounts, settings: PlatformSettings, name: str, checked: int | None
) -> int:
    """The cluster generation a login's token carries: the one its password was checked at.

    A ``passwd`` (or role change) racing the login either lands before the store is read
    again here (the generations differ: refused, sign in again) or after the cluster's
    generation was read (its publication raises the cluster's above the token's: revoked).
    """
    accounts.sync_users()  # a passwd made before the check: its generation is published
    cluster_gen = accounts.user_gen(name)
    try:
        now = UserStore.of(settings).get(name).gen
    except NotFoundError:
        now = None
    if checked is None or now != checked:
        raise UnauthorizedError(
            f"user {name!r}'s password or role changed while signing in; sign in again"
        )
    return cluster_gen


def _issue(
    request: Request, sub: str, admin: bool, src: str, sid: str | None, gen: int | None = None
) -> TokenResponse:
    """A token for ``sub`` of generation ``gen`` (None: the cluster's current one)."""
    settings: PlatformSettings = request.app.state.settings
    accounts: Accounts = request.app.state.accounts
    token_signer: TokenSigner = request.app.state.signer
    ttl = settings.token_ttl_seconds
    jti = auth.new_token_id()
    token = token_signer.issue(
        sub,
        admin=admin,
        ttl_seconds=ttl,
        gen=accounts.user_gen(sub) if gen is None else gen,
        jti=jti,
        extra={"src": src, "sid": sid or jti},
    )
    return TokenResponse(token=token, expires_in=ttl)


@router.post(
    "/api/login/refresh",
    response_model=TokenResponse,
    responses={401: {"description": "The token is invalid, expired or revoked, or its user gone."}},
)
async def refresh(
    request: Request, claims: Annotated[Claims, Depends(require_token)]
) -> TokenResponse:
    """A new token for the same user and session, any signed-in user; the user is re-checked.

    A user of the store must still exist (here or, for a user of another platform's store, in
    the cluster's records) and gets their current role; the old token stays valid until it
    expires unless signed out.
    """
    accounts: Accounts = request.app.state.accounts
    settings: PlatformSettings = request.app.state.settings
    src = claims.extra.get("src")
    admin = claims.admin
    if src == SRC_USER:
        await accounts.run_blocking(accounts.sync_users)
        try:
            admin = (await accounts.run_blocking(UserStore.of(settings).get, claims.sub)).admin
        except NotFoundError:
            record = accounts.record(claims.sub)
            if record is None or record.removed or record.admin is None:
                raise UnauthorizedError(
                    f"user {claims.sub!r} no longer exists; log in again"
                ) from None
            admin = record.admin
    # Revoked while this request waited (passwd, revoke --user, sign-out): refused now, and
    # the new token keeps the old one's generation, so a revocation after this still ends it.
    auth.check_not_revoked(claims)
    sid = claims.extra.get("sid")
    return _issue(
        request,
        claims.sub,
        admin,
        src if isinstance(src, str) else "token",
        sid if isinstance(sid, str) else claims.jti or None,
        gen=claims.gen,
    )


class SignedOut(BaseModel):
    revoked: str = Field(description="The id of the session (or token) now refused everywhere.")


@router.post("/api/logout", response_model=SignedOut)
async def logout(request: Request, claims: Annotated[Claims, Depends(require_token)]) -> SignedOut:
    """Sign out, any signed-in user: this token and every token refreshed from the same login
    are refused on every platform of the cluster within seconds."""
    accounts: Accounts = request.app.state.accounts
    settings: PlatformSettings = request.app.state.settings
    sid = claims.extra.get("sid")
    target = sid if isinstance(sid, str) and sid else claims.jti
    if not target:
        raise BadInputError(
            "this token has no id (it predates token ids), so it cannot be signed out alone; "
            "an admin can revoke all of its user's tokens (`platform token revoke --user`)"
        )
    # Every token of the session expires before this (refreshes are refused from now on).
    until = int(time.time()) + max(settings.token_ttl_seconds, claims.exp - int(time.time()))
    await accounts.run_blocking(accounts.revoke_token, target, until + auth.LEEWAY_SECONDS)
    return SignedOut(revoked=target)


async def _check(
    request: Request, settings: PlatformSettings, body: LoginRequest, gate: CheckGate | None
) -> tuple[bool, int | None]:
    """Whether the token is an admin's, and a store user's generation the password was
    checked at (None for the admin password); ``UnauthorizedError`` for wrong credentials."""
    if body.username is not None:
        assert gate is not None
        store = UserStore.of(settings)
        name, password = body.username, body.password or ""
        async with gate.admit():  # argon2 takes a while on purpose: bounded, off the loop
            loop = asyncio.get_running_loop()
            user = await loop.run_in_executor(gate.executor, store.authenticate, name, password)
        return user.admin, user.gen
    expected = admin_password(settings)
    if expected is None:
        if not is_local_connection(request):
            raise ForbiddenError(
                "dev-mode login is only allowed from this machine (a loopback client address "
                "and Host header); set PLATFORM_ADMIN_PASSWORD to log in from elsewhere"
            )
        return True, None
    given = body.password or ""
    # Constant-time comparison of bytes (compare_digest rejects non-ASCII str).
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise UnauthorizedError(
            "wrong password (it is PLATFORM_ADMIN_PASSWORD; to log in as a user, "
            "send username and password)"
        )
    return True, None
