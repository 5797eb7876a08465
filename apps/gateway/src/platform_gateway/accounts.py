"""Accounts that end: which tokens the cluster refuses, kept in shared state and cached here.

The state lives in the platform's cluster state (Elkyn, ``platform_core.ClusterState``) under
the platform-only subtree ``/tokens`` (admins read it; no token writes it over REST):

- ``/tokens/users/<name>``: ``{"gen", "admin", "removed", "src": {<store id>: gen}}``. A user
  token whose ``gen`` is below ``gen``, whose ``admin`` claim the user no longer has, or whose
  user is ``removed`` is refused. ``src`` holds each user store's own generation of the name
  last published (a name may live in several homes), so a change made by ``platform user``
  while the gateway was down still raises ``gen`` once, and two homes never mix counters.
- ``/tokens/revoked/<jti>``: the expiry of one revoked token (sign-out, ``revoke --id``).
- ``/tokens/workers/<jti>``: the worker tokens minted (listed for admins); ``/tokens/
  worker_gen``: worker tokens below it are refused (``revoke --workers``).

Every platform reads ``/tokens`` from its own copy every ``PLATFORM_REVOCATION_REFRESH_SECONDS``
(1 s) into memory, and the process's token check (``platform_core.auth.set_token_check``)
looks there: no database round trip per request, and a revocation made anywhere is refused
everywhere within that period plus the replication delay (README, "Users and tokens").

The user store (``users.json`` under the home) is watched: a change made by ``platform user``
is published within ``USERS_POLL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from platform_core import (
    ClusterState,
    PlatformSettings,
    UnauthorizedError,
    UserStore,
    auth,
    escape_key,
    unescape_key,
)
from platform_core.auth import Claims

from .memstate import MemoryState

__all__ = ["Accounts", "UserRecord"]

log = logging.getLogger(__name__)

T = TypeVar("T")

TOKENS_KEY: Final = "tokens"
TOKENS_RULES: Final[Mapping[str, Any]] = {".read": "auth != null && auth.admin === true"}
"""Admins read the token state; nobody writes it by REST (the subtree is platform-only)."""
USERS_POLL_SECONDS: Final = 0.5
PRUNE_SECONDS: Final = 60.0
SRC_USER: Final = "user"
"""The ``src`` claim of a token for a user of the store (refresh re-checks the user)."""


@dataclass(frozen=True)
class UserRecord:
    """The cluster's view of one token subject."""

    gen: int = 0
    admin: bool | None = None
    """``None``: no role recorded (a subject that is not a user of any store)."""
    removed: bool = False
    src: dict[str, int] = field(default_factory=dict)
    """Each user store's (``UserStore.store_id``) generation of this name last published."""


@dataclass
class _Snapshot:
    users: dict[str, UserRecord] = field(default_factory=dict)
    revoked: dict[str, int] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    worker_gen: int = 0
    read_at: float = 0.0


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _int_map(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): _int(v) for k, v in value.items()}


def _parse(tree: Any) -> _Snapshot:
    snap = _Snapshot(read_at=time.monotonic())
    if not isinstance(tree, Mapping):
        return snap
    users = tree.get("users")
    if isinstance(users, Mapping):
        for key, rec in users.items():
            if isinstance(rec, Mapping):
                admin = rec.get("admin")
                snap.users[unescape_key(key)] = UserRecord(
                    gen=_int(rec.get("gen")),
                    admin=admin if isinstance(admin, bool) else None,
                    removed=rec.get("removed") is True,
                    src=_int_map(rec.get("src")),
                )
    revoked = tree.get("revoked")
    if isinstance(revoked, Mapping):
        snap.revoked = {str(k): _int(v) for k, v in revoked.items()}
    workers = tree.get("workers")
    if isinstance(workers, Mapping):
        snap.workers = {str(k): dict(v) for k, v in workers.items() if isinstance(v, Mapping)}
    snap.worker_gen = _int(tree.get("worker_gen"))
    return snap


class Accounts:
    """The token state of this platform's cluster, its cache, and the user-store watcher.

    ``state`` is the cluster's shared state (Elkyn), or a process-local :class:`MemoryState`
    when no plugin offers one. Blocking calls run on a small executor of their own, so a
    flood of logins cannot take the threads other routes use.
    """

    def __init__(self, settings: PlatformSettings, state: ClusterState | None) -> None:
        self.settings = settings
        self.shared = state is not None
        self.state: ClusterState = state if state is not None else MemoryState()
        self.store = UserStore.of(settings)
        self.refresh_seconds = settings.revocation_refresh_seconds
        self._snap = _Snapshot()
        self._users_mark: tuple[int, int, int] | None = None
        self._sync_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="accounts")

    # -- running -----------------------------------------------------------------------------

    async def run_blocking(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the accounts' own threads."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Reserve the subtrees, publish the user store, install the token check, and keep the
        cache fresh until the context ends."""
        from . import audit, throttle

        await self.run_blocking(self.state.reserve_platform, TOKENS_KEY, TOKENS_RULES)
        await self.run_blocking(self.state.reserve_platform, throttle.KEY, throttle.RULES)
        await self.run_blocking(self.state.reserve_platform, audit.KEY, audit.RULES)
        try:
            await self.run_blocking(self.sync_users)
        except Exception:  # a primary away: the loop below publishes once it is back
            log.warning("could not publish the user store yet", exc_info=True)
        await self.run_blocking(self.reload)
        previous = auth.set_token_check(self.check)
        hook = auth.set_issue_hook(self._worker_minted)
        source = auth.set_generation_source(self.generation)
        tasks = [
            asyncio.create_task(self._refresh_loop(), name="accounts-refresh"),
            asyncio.create_task(self._users_loop(), name="accounts-users"),
            asyncio.create_task(self._prune_loop(), name="accounts-prune"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            auth.set_token_check(previous)
            auth.set_issue_hook(hook)
            auth.set_generation_source(source)
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.run_blocking(self.reload)
            except Exception:
                log.warning("could not re-read the revoked tokens", exc_info=True)

    async def _users_loop(self) -> None:
        while True:
            await asyncio.sleep(USERS_POLL_SECONDS)
            try:
                await self.run_blocking(self.sync_users)
            except Exception:
                log.warning("could not publish a change of the user store", exc_info=True)

    async def _prune_loop(self) -> None:
        from . import throttle

        while True:
            try:
                await self.run_blocking(self.prune)
                await self.run_blocking(
                    throttle.prune, self.state, None, self.settings.login_window_seconds
                )
            except Exception:
                log.warning("could not prune expired token records", exc_info=True)
            await asyncio.sleep(PRUNE_SECONDS)

    # -- the check -------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read ``/tokens`` from this platform's copy."""
        self._snap = _parse(self.state.read(f"/{TOKENS_KEY}"))

    def check(self, claims: Claims) -> None:
        """Refuse a revoked token (``UnauthorizedError``); the process's token check."""
        snap = self._snap
        sid = claims.extra.get("sid")
        if (claims.jti and claims.jti in snap.revoked) or (
            isinstance(sid, str) and sid in snap.revoked
        ):
            raise UnauthorizedError(
                "token revoked (signed out, or revoked by an admin); log in again"
            )
        if claims.kind == auth.WORKER_KIND:
            if claims.gen < snap.worker_gen:
                raise UnauthorizedError(
                    "worker token revoked (an admin revoked every worker token); ask for a new one"
                )
            return
        record = snap.users.get(claims.sub)
        if record is None:
            return
        if record.removed:
            raise UnauthorizedError(f"user {claims.sub!r} was removed; this token is revoked")
        if claims.gen < record.gen:
            raise UnauthorizedError(
                f"token revoked: {claims.sub!r}'s password, role or tokens changed since it was "
                "issued; log in again"
            )
        if claims.admin and record.admin is False:
            raise UnauthorizedError(f"token revoked: {claims.sub!r} is no longer an admin")

    def record(self, name: str) -> UserRecord | None:
        """The cluster's record of ``name`` as cached here."""
        return self._snap.users.get(name)

    def cache_age(self) -> float:
        return time.monotonic() - self._snap.read_at

    # -- changes ---------------------------------------------------------------------------

    def _users_path(self, name: str) -> str:
        return f"/{TOKENS_KEY}/users/{escape_key(name)}"

    def sync_users(self, force: bool = False) -> list[tuple[str, str]]:
        """Publish what changed in the user store since the cluster last heard; returns the
        (name, change) pairs published (``passwd/role``, ``removed``, ``added``)."""
        with self._sync_lock:
            try:
                st = os.stat(self.store.path)
                mark: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
            except FileNotFoundError:
                mark = None
            if mark == self._users_mark and not force:
                return []
            generations = self.store.generations()
            current = _parse(self.state.read(f"/{TOKENS_KEY}"))
            changes: list[tuple[str, str]] = []
            here = escape_key(self.store.store_id())
            for name, g in generations.items():
                rec = current.users.get(name)
                published = rec.src.get(here) if rec is not None else None
                # every passwd, role change and removal raises the store's generation, so
                # "this store's generation moved" is the whole test (another home holding
                # the same name publishes its own; the two never undo each other)
                if published is not None and published >= g.gen:
                    continue
                delta = g.gen - (published or 0)
                values: dict[str, Any] = {
                    f"src/{here}": g.gen,
                    "admin": g.admin,
                    "removed": g.removed,
                }
                if delta > 0:
                    values["gen"] = {".sv": {"increment": delta}}
                self.state.update(self._users_path(name), values)
                what = "removed" if g.removed else "added" if rec is None else "changed"
                changes.append((name, what))
            self._users_mark = mark
        if changes:
            self.reload()
            from . import audit

            for name, what in changes:
                if what == "added" and generations[name].gen == 0:
                    continue  # a first publication, not an action worth an audit record
                audit.record_sync(self, name, what)
        return changes

    def revoke_user(self, name: str) -> int:
        """Refuse every token of ``name`` issued so far; returns the new generation."""
        answer = self.state.update(self._users_path(name), {"gen": {".sv": {"increment": 1}}})
        self.reload()
        return _int(answer.get("gen")) if isinstance(answer, Mapping) else 0

    def revoke_token(self, jti: str, exp: int) -> None:
        """Refuse the token with id ``jti`` until it expires anyway (``exp``)."""
        self.state.update(f"/{TOKENS_KEY}/revoked", {escape_key(jti): int(exp)})
        self.reload()

    def revoke_workers(self) -> int:
        """Refuse every worker token minted so far; returns the new worker generation."""
        answer = self.state.update(f"/{TOKENS_KEY}", {"worker_gen": {".sv": {"increment": 1}}})
        self.reload()
        return _int(answer.get("worker_gen")) if isinstance(answer, Mapping) else 0

    def worker_gen(self) -> int:
        return self._snap.worker_gen

    def workers(self) -> list[dict[str, Any]]:
        """The worker tokens minted and not yet expired, oldest first, each with ``revoked``."""
        now = int(time.time())
        snap = self._snap
        out = []
        for jti, info in snap.workers.items():
            exp = _int(info.get("exp"))
            if exp <= now:
                continue
            revoked = jti in snap.revoked or _int(info.get("gen")) < snap.worker_gen
            out.append({"id": jti, **info, "revoked": revoked})
        return sorted(out, key=lambda w: (_int(w.get("iat")), w["id"]))

    def generation(self, sub: str, kind: str) -> int:
        """The current generation of ``sub``'s tokens, or of worker tokens (the gen source)."""
        return self.worker_gen() if kind == auth.WORKER_KIND else self.user_gen(sub)

    def user_gen(self, name: str) -> int:
        record = self._snap.users.get(name)
        return record.gen if record is not None else 0

    def prune(self) -> None:
        """Drop revocations and worker listings of tokens that have expired anyway."""
        horizon = int(time.time()) - auth.LEEWAY_SECONDS - 5
        snap = self._snap
        gone: dict[str, Any] = {
            f"revoked/{jti}": None for jti, exp in snap.revoked.items() if exp < horizon
        }
        gone.update(
            {
                f"workers/{jti}": None
                for jti, info in snap.workers.items()
                if _int(info.get("exp")) < horizon
            }
        )
        if gone:
            self.state.update(f"/{TOKENS_KEY}", gone)
            self.reload()

    def _worker_minted(self, claims: Claims) -> None:
        """The issue hook: list the worker token (off the caller's thread: it may be the loop)."""
        entry = {"sub": claims.sub, "exp": claims.exp, "iat": claims.iat, "gen": claims.gen}

        def write() -> None:
            try:
                self.state.update(f"/{TOKENS_KEY}/workers", {claims.jti: entry})
                self.reload()
            except Exception:
                log.warning("could not list worker token %s", claims.jti, exc_info=True)

        self._pool.submit(write)
