"""The audit trail: admin actions appended to ``/audit`` in the cluster's shared state.

Each record says who (the token's subject), what (``user.add``, ``user.rm``, ``user.passwd``,
``user.role``, ``token.revoke``, ``token.mint_worker``, ``rules.set``, ``dataset.delete``,
``backup``, ...), on what, when (ms since the epoch), from where (the client's address) and
through which platform. The subtree is platform-only: admins read it (``GET /api/audit``, or
``/db/audit.json``), and no user or admin token writes or deletes it over REST; only the
platforms themselves do (cluster tokens, which only the cluster secret mints).

The gateway's own admin routes record themselves; admin actions served by plugins (Elkyn's
rules, the lake's dataset deletes and backups) are recorded by :class:`AuditMiddleware`, which
watches for their successful answers, so those packages need not know about the trail.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Final, Protocol

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_core import ClusterState, PlatformError
from platform_core.http import connection_token

__all__ = ["AuditMiddleware", "record", "recorded"]

log = logging.getLogger(__name__)

KEY: Final = "audit"
RULES: Final = {".read": "auth != null && auth.admin === true"}
ROUTES: Final = [
    ("PUT", re.compile(r"^/db/\.settings/rules\.json$"), "rules.set"),
    ("DELETE", re.compile(r"^/api/lake/datasets/(?P<target>[^/]+)$"), "dataset.delete"),
    ("POST", re.compile(r"^/api/lake/admin/backup(?:/.*)?$"), "backup"),
    ("POST", re.compile(r"^/api/lake/admin/restore(?:/.*)?$"), "restore"),
    ("POST", re.compile(r"^/api/lake/gc$"), "lake.gc"),
    ("POST", re.compile(r"^/api/workers/tokens$"), "token.mint_worker"),
]
"""Admin actions of plugins: (method, path, what); recorded when they answer 2xx."""
MINT_WORKER: Final = "token.mint_worker"
MINT_BODY_BYTES: Final = 64 * 1024
"""The most of a mint's answer read for its target (a worker token is well under 1 KiB)."""


def _minted(gateway: Any, body: bytes) -> str | None:
    """The subject and id of the worker token a mint answered with, as the record's target."""
    try:
        token = json.loads(body)["token"]
        claims = gateway.state.signer.verify_worker(token)
    except (ValueError, KeyError, TypeError, AttributeError, PlatformError):
        return None
    return f"worker:{claims.sub} id:{claims.jti}"


class TrailAccounts(Protocol):
    """What the trail needs of :class:`platform_gateway.accounts.Accounts` (which imports this
    module): the cluster state it appends to, and the accounts' threads it blocks on."""

    state: ClusterState

    async def run_blocking(self, fn: Any, *args: Any) -> Any: ...


def record(
    accounts: TrailAccounts,
    who: str,
    what: str,
    target: str,
    client: str | None,
    via: str,
    **details: Any,
) -> None:
    """Append one record (blocking); a failure is logged, never raised to the action."""
    entry = {
        "who": who,
        "what": what,
        "target": target,
        "at": time.time_ns() // 1_000_000,
        "from": client or "unknown",
        "via": via,
        **{k: v for k, v in details.items() if v is not None},
    }
    try:
        accounts.state.push(f"/{KEY}", entry)
    except Exception:
        log.warning("could not append to the audit trail: %s", entry, exc_info=True)


async def recorded(conn: HTTPConnection, who: str, what: str, target: str, **details: Any) -> None:
    """Record an action of a gateway route (on the accounts' threads)."""
    accounts: TrailAccounts = conn.app.state.accounts
    client = conn.client.host if conn.client is not None else None
    await accounts.run_blocking(
        lambda: record(accounts, who, what, target, client, conn.url.netloc, **details)
    )


def record_sync(accounts: TrailAccounts, name: str, change: str) -> None:
    """A change of the user store made with ``platform user`` (published by the watcher)."""
    what = {"removed": "user.rm", "added": "user.add"}.get(change, "user.change")
    record(accounts, "operator (platform user)", what, name, "localhost", "cli")


class AuditMiddleware:
    """Records the plugins' admin actions listed in ``ROUTES`` when they succeed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        match = next(
            ((what, m) for verb, rx, what in ROUTES if verb == method and (m := rx.match(path))),
            None,
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        gateway = scope.get("app")  # before the call: a mounted app may put itself there
        status: list[int] = []
        body = bytearray()
        minting = match[0] == MINT_WORKER

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            elif (
                minting and message["type"] == "http.response.body" and len(body) < MINT_BODY_BYTES
            ):
                body.extend(message.get("body", b"")[: MINT_BODY_BYTES - len(body)])
            await send(message)

        await self.app(scope, receive, watch)
        if status and 200 <= status[0] < 300:
            target = match[1].groupdict().get("target") or path
            if minting:
                target = _minted(gateway, bytes(body)) or target
            await self._record(gateway, scope, match[0], target)

    async def _record(self, gateway: Any, scope: Scope, what: str, target: str) -> None:
        accounts: TrailAccounts | None = getattr(getattr(gateway, "state", None), "accounts", None)
        if accounts is None:
            return
        conn = HTTPConnection(scope)
        who = "unknown"
        try:
            token = connection_token(conn)
            if token:
                who = gateway.state.signer.verify(token).sub
        except PlatformError:
            who = "a cluster token"
        client = conn.client.host if conn.client is not None else None
        await accounts.run_blocking(
            lambda: record(accounts, who, what, target, client, conn.url.netloc)
        )
