"""The login throttle: attempts reserved in the cluster's shared state *before* the password check.

Three counters per window of ``PLATFORM_LOGIN_WINDOW_SECONDS`` (60 s, kept under the
platform-only subtree ``/throttle`` of the cluster state, so they hold across platforms and
restarts). A limit applies to a sliding window: this window's count plus the previous one's,
weighted by how much of it still lies within the last ``window`` seconds, so a burst that
straddles a window boundary is counted whole, not twice the limit. (The weighting is the
sliding-window counter's approximation: as the previous window's attempts age out, new ones
are admitted at the limit's rate, so a burst that lasts seconds across a boundary may get a
check or two beyond the limit; within one window the limit is exact.)

- per (user name, client address): the first ``FREE_ATTEMPTS`` go at once, then each waits
  longer (0.5 s, 1 s, 2 s), and past ``PAIR_LIMIT`` the answer is 429 with ``Retry-After``;
- per client address (an IPv6 client by its /64), whatever names it tries: ``CLIENT_LIMIT``;
- per user name, from clients that have *not* signed in as that user before (a success from
  an address is remembered ``KNOWN_DAYS``): ``NAME_LIMIT``. This bounds a burst spread over
  many addresses, while the user's own clients keep their own allowance: the account is
  never locked.

An attempt is counted by one atomic increment (Elkyn's ``increment`` server value, on the
primary) whose answer is the count *including* this attempt, so of a concurrent burst only
the first ``limit`` get a password check, on one platform or across several. A success
clears its (name, client) counter and gives back its other reservations.

:class:`CheckGate` bounds the password checks running at once (argon2 is memory- and
CPU-hard on purpose), with a small queue; a login beyond it answers 429 at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from platform_core import ClusterState, escape_key

__all__ = [
    "CLIENT_LIMIT",
    "NAME_LIMIT",
    "PAIR_LIMIT",
    "WINDOW_SECONDS",
    "CheckGate",
    "Reservation",
    "TooManyLogins",
    "client_key",
    "reserve",
    "succeeded",
]

KEY: Final = "throttle"
RULES: Final[Mapping[str, Any]] = {".read": "auth != null && auth.admin === true"}
WINDOW_SECONDS: Final = 60
PAIR_LIMIT: Final = 5
"""Attempts per (user name, client address) in a window."""
CLIENT_LIMIT: Final = 20
"""Attempts per client address in a window, whichever names it tries."""
NAME_LIMIT: Final = 10
"""Attempts per user name in a window from clients never signed in as that user."""
FREE_ATTEMPTS: Final = 2
"""Attempts per (name, client) in a window before each one waits."""
DELAY_BASE_SECONDS: Final = 0.5
KNOWN_DAYS: Final = 30
_INCREMENT: Final = {".sv": {"increment": 1}}
_GIVE_BACK: Final = {".sv": {"increment": -1}}


class TooManyLogins(Exception):
    """The login is refused before any check: 429 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


def client_key(host: str | None) -> str:
    """The client as counted: an IPv4 address, an IPv6 client's /64 network (one host has
    billions of addresses), else the text; as a store key."""
    text = host or "unknown"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return escape_key(text[:100])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        text = str(ipaddress.IPv6Network(f"{address}/64", strict=False).network_address) + "/64"
    elif isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        text = str(address.ipv4_mapped)
    return escape_key(text)


@dataclass(frozen=True)
class Reservation:
    """One admitted attempt: where it was counted, and how long it waits before its check."""

    name: str
    client: str
    bucket: int
    counted_name: bool
    pair_count: int
    delay: float


def _window(now: float, window: int = WINDOW_SECONDS) -> tuple[int, int]:
    bucket = int(now // window)
    return bucket, math.ceil((bucket + 1) * window - now)


def _count(answer: Any, rel: str) -> int:
    value = answer.get(rel) if isinstance(answer, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _at(tree: Any, rel: str) -> Any:
    """The value at ``rel`` (``a/b``) of a tree read from the state, or None."""
    for part in rel.split("/"):
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


def reserve(
    state: ClusterState,
    name: str,
    host: str | None,
    now: float | None = None,
    window: int = WINDOW_SECONDS,
) -> Reservation:
    """Count one login attempt for ``name`` from ``host``; ``TooManyLogins`` if over a limit.

    ``window`` is ``PLATFORM_LOGIN_WINDOW_SECONDS``.
    Blocking (a commit, or a round trip to the primary): call it off the event loop.
    """
    now = time.time() if now is None else now
    bucket, retry = _window(now, window)
    user, client = escape_key(name), client_key(host)
    pair_rel, client_rel = f"p/{user}@{client}", f"c/{client}"
    answer = state.update(f"/{KEY}/w/{bucket}", {pair_rel: _INCREMENT, client_rel: _INCREMENT})
    previous = state.read(f"/{KEY}/w/{bucket - 1}")
    still = 1.0 - (now - bucket * window) / window  # the previous window's share still recent

    def recent(counted: Any, rel: str) -> float:
        return _count(counted, rel) + still * _count({rel: _at(previous, rel)}, rel)

    pair, per_client = recent(answer, pair_rel), recent(answer, client_rel)
    if pair > PAIR_LIMIT:
        raise TooManyLogins(
            f"too many failed logins for {name!r} from this address; try again in {retry} s",
            retry,
        )
    if per_client > CLIENT_LIMIT:
        raise TooManyLogins(
            f"too many failed logins from this address; try again in {retry} s", retry
        )
    known = state.read(f"/{KEY}/known/{user}/{client}")
    is_known = isinstance(known, (int, float)) and now - known < KNOWN_DAYS * 86400
    counted_name = False
    if not is_known:
        name_rel = f"n/{user}"
        per_name = recent(state.update(f"/{KEY}/w/{bucket}", {name_rel: _INCREMENT}), name_rel)
        counted_name = True
        if per_name > NAME_LIMIT:
            raise TooManyLogins(
                f"too many failed logins for {name!r} from new addresses; try again in "
                f"{retry} s (a client that signed in as {name!r} before is not held back)",
                retry,
            )
    extra = math.ceil(pair) - FREE_ATTEMPTS
    delay = DELAY_BASE_SECONDS * 2 ** (extra - 1) if extra > 0 else 0.0
    return Reservation(name, client, bucket, counted_name, math.ceil(pair), delay)


def succeeded(state: ClusterState, r: Reservation, now: float | None = None) -> None:
    """A correct password: clear the (name, client) count, give back the other reservations
    and remember the client as one this user signs in from."""
    now = time.time() if now is None else now
    user = escape_key(r.name)
    values: dict[str, Any] = {
        f"w/{r.bucket}/p/{user}@{r.client}": None,
        f"w/{r.bucket}/c/{r.client}": _GIVE_BACK,
        f"known/{user}/{r.client}": int(now),
    }
    if r.counted_name:
        values[f"w/{r.bucket}/n/{user}"] = _GIVE_BACK
    state.update(f"/{KEY}", values)


def prune(state: ClusterState, now: float | None = None, window: int = WINDOW_SECONDS) -> None:
    """Drop the counters of windows that have ended (called every minute or so)."""
    now = time.time() if now is None else now
    bucket, _ = _window(now, window)
    windows = state.read(f"/{KEY}/w")
    if not isinstance(windows, Mapping):
        return
    old = {f"w/{b}": None for b in windows if not str(b).isdigit() or int(b) < bucket - 1}
    if old:
        state.update(f"/{KEY}", old)


class CheckGate:
    """At most ``checks`` password checks at once and ``queue`` waiting; more get 429."""

    def __init__(self, checks: int, queue: int) -> None:
        self.checks = checks
        self.queue = queue
        self.executor = ThreadPoolExecutor(checks, thread_name_prefix="login-check")
        """Where the checks run: threads of their own, so a flood of logins cannot take the
        threads that other routes use."""
        self._slots = asyncio.Semaphore(checks)
        self._admitted = 0
        self.refused = 0

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self._admitted >= self.checks + self.queue:
            self.refused += 1
            raise TooManyLogins(
                f"the platform is checking {self.checks} passwords and has {self.queue} "
                "waiting; try again in a moment",
                1,
            )
        self._admitted += 1
        try:
            async with self._slots:
                yield
        finally:
            self._admitted -= 1
