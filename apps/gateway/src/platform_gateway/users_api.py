"""Admin routes for accounts: ``/api/users`` (the user store of this platform), ``/api/tokens``
(revocation, worker tokens) and ``/api/audit`` (the trail). Every route needs an admin token.

Each change raises what the cluster refuses (:mod:`.accounts`) and is appended to the audit
trail (:mod:`.audit`). The store is this platform's home's ``users.json``, the file ``platform
user`` edits; a change here is visible to ``platform user ls`` and the other way round.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, model_validator

from platform_core import BadInputError, PlatformSettings, UserStore
from platform_core.auth import Claims
from platform_core.users import check_user_name

from .accounts import Accounts
from .audit import KEY as AUDIT_KEY
from .audit import recorded
from .security import require_admin

__all__ = ["router"]

router = APIRouter(tags=["accounts"])

Admin = Annotated[Claims, Depends(require_admin)]


class UserOut(BaseModel):
    name: str
    admin: bool
    created: datetime


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=32)
    password: str = Field(min_length=1, max_length=1024)
    admin: bool = False


class NewPassword(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


class UserChange(BaseModel):
    admin: bool = Field(description="Whether the user is an admin.")


class Revocation(BaseModel):
    """Exactly one of ``user``, ``id`` or ``workers``."""

    user: str | None = Field(default=None, min_length=1, max_length=128)
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$")
    workers: bool = False

    @model_validator(mode="after")
    def _one(self) -> Revocation:
        given = [self.user is not None, self.id is not None, self.workers]
        if sum(given) != 1:
            raise ValueError("give exactly one of 'user', 'id' or 'workers': true")
        return self


class Revoked(BaseModel):
    revoked: str
    generation: int | None = None


class WorkerTokenOut(BaseModel):
    id: str
    sub: str
    iat: int
    exp: int
    revoked: bool


class AuditRecord(BaseModel):
    id: str
    who: str
    what: str
    target: str
    at: int
    from_: str = Field(alias="from")
    via: str

    model_config = {"populate_by_name": True}


def _accounts(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


def _store(request: Request) -> UserStore:
    settings: PlatformSettings = request.app.state.settings
    return UserStore.of(settings)


def _out(user: Any) -> UserOut:
    return UserOut(name=user.name, admin=user.admin, created=user.created)


@router.get("/api/users", response_model=list[UserOut])
async def list_users(request: Request, _: Admin) -> list[UserOut]:
    """The users of this platform's store, by name; admin only."""
    users = await _accounts(request).run_blocking(_store(request).users)
    return [_out(u) for u in users]


@router.post("/api/users", response_model=UserOut, status_code=201)
async def add_user(request: Request, body: NewUser, claims: Admin) -> UserOut:
    """Add a user (409 if the name is taken); admin only."""
    accounts = _accounts(request)
    user = await accounts.run_blocking(
        lambda: _store(request).add(body.name, body.password, admin=body.admin)
    )
    await accounts.run_blocking(accounts.sync_users)
    await recorded(request, claims.sub, "user.add", body.name, admin=body.admin)
    return _out(user)


@router.delete("/api/users/{name}", status_code=204)
async def remove_user(request: Request, name: str, claims: Admin) -> Response:
    """Remove a user; their tokens are refused on every platform within seconds; admin only."""
    accounts = _accounts(request)
    check_user_name(name)
    await accounts.run_blocking(_store(request).remove, name)
    await accounts.run_blocking(accounts.sync_users)
    await recorded(request, claims.sub, "user.rm", name)
    return Response(status_code=204)


@router.put("/api/users/{name}/password", status_code=204)
async def set_password(request: Request, name: str, body: NewPassword, claims: Admin) -> Response:
    """Give a user a new password; their older tokens are refused; admin only."""
    accounts = _accounts(request)
    check_user_name(name)
    await accounts.run_blocking(_store(request).set_password, name, body.password)
    await accounts.run_blocking(accounts.sync_users)
    await recorded(request, claims.sub, "user.passwd", name)
    return Response(status_code=204)


@router.patch("/api/users/{name}", response_model=UserOut)
async def change_user(request: Request, name: str, body: UserChange, claims: Admin) -> UserOut:
    """Make a user an admin or not, in place; tokens with the old role are refused; admin only."""
    accounts = _accounts(request)
    check_user_name(name)
    store = _store(request)
    changed = await accounts.run_blocking(store.set_admin, name, body.admin)
    if changed:
        await accounts.run_blocking(accounts.sync_users)
        await recorded(request, claims.sub, "user.role", name, admin=body.admin)
    return _out(await accounts.run_blocking(store.get, name))


@router.post("/api/tokens/revoke", response_model=Revoked)
async def revoke(request: Request, body: Revocation, claims: Admin) -> Revoked:
    """Revoke every token of a user (``user``), one token or sign-in session (``id``: its
    ``jti`` or ``sid``), or every worker token (``workers``); admin only."""
    accounts = _accounts(request)
    if body.user is not None:
        gen = await accounts.run_blocking(accounts.revoke_user, body.user)
        await recorded(request, claims.sub, "token.revoke", f"user:{body.user}")
        return Revoked(revoked=f"user:{body.user}", generation=gen)
    if body.id is not None:
        # No token lives longer than MAX_TOKEN_TTL_SECONDS from its issue (verify refuses
        # longer ones), so one issued before now is dead by then.
        from platform_core.auth import LEEWAY_SECONDS, MAX_TOKEN_TTL_SECONDS

        until = int(time.time()) + MAX_TOKEN_TTL_SECONDS
        await accounts.run_blocking(accounts.revoke_token, body.id, until + LEEWAY_SECONDS)
        await recorded(request, claims.sub, "token.revoke", f"id:{body.id}")
        return Revoked(revoked=f"id:{body.id}")
    gen = await accounts.run_blocking(accounts.revoke_workers)
    await recorded(request, claims.sub, "token.revoke", "workers")
    return Revoked(revoked="workers", generation=gen)


@router.get("/api/tokens/workers", response_model=list[WorkerTokenOut])
async def worker_tokens(request: Request, _: Admin) -> list[WorkerTokenOut]:
    """The worker tokens minted on any platform and not expired, with whether each is
    revoked; admin only (revoke one with ``POST /api/tokens/revoke {"id": ...}``)."""
    return [
        WorkerTokenOut(
            id=w["id"],
            sub=str(w.get("sub", "")),
            iat=int(w.get("iat", 0)),
            exp=int(w.get("exp", 0)),
            revoked=bool(w["revoked"]),
        )
        for w in _accounts(request).workers()
    ]


@router.get("/api/audit", response_model=list[AuditRecord])
async def audit_trail(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditRecord]:
    """The newest ``limit`` audit records, newest first; admin only."""
    accounts = _accounts(request)
    tree = await accounts.run_blocking(accounts.state.read, f"/{AUDIT_KEY}")
    if not isinstance(tree, dict):
        return []
    out: list[AuditRecord] = []
    for key in sorted(tree, reverse=True)[:limit]:
        rec = tree[key]
        if not isinstance(rec, dict):
            continue
        try:
            out.append(AuditRecord.model_validate({"id": key, **rec}))
        except ValueError:
            raise BadInputError(f"audit record {key} is malformed") from None
    return out
