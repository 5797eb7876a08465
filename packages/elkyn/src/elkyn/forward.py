"""A replica forwards client writes to its primary and answers with the primary's answer.

The replica never decides on a write: it checks the body's size bound as a primary would,
sends the request (method, path, query, the client's ``Authorization``, ``If-Match``,
``X-Firebase-ETag``) to the primary, which checks the token and the rules, and returns the
primary's status, body and headers. A successful write's answer names its commit
(``X-Elkyn-Seq``, ``X-Elkyn-Database``); the replica waits, at most ``catch_up_seconds``, until
its follower applied it, so the client reads its write here next (else it answers anyway with
``X-Elkyn-Caught-Up: false``). Connect and read timeouts bound every forward and
``forward_max_answer_bytes`` the primary's answer; a primary that cannot be reached is a 503
naming it.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

from platform_core import auth
from platform_core.http import async_http_client
from platform_core.tls import client_context

from .catchup import wait_caught_up
from .errors import PrimaryUnavailableError
from .replica import Follower
from .settings import ElkynSettings

if TYPE_CHECKING:
    from .fencing import Fence
    from .server.http import Request, Send
    from .store import Store

__all__ = ["Forwarder", "Replicable", "follow", "primary_unavailable"]

REQUEST_HEADERS = ("authorization", "content-type", "if-match", "x-firebase-etag")
"""What of the client's request the primary needs to answer it as if asked directly."""
ANSWER_HEADERS = (
    "etag",
    "www-authenticate",
    "x-elkyn-seq",
    "x-elkyn-database",
    "x-elkyn-term",
    "allow",
)
"""What of the primary's answer goes back to the client (with its status, body and type)."""
SEQ = re.compile(r"[0-9]{1,19}")


def primary_unavailable(primary: str, exc: httpx.HTTPError, timeout: float) -> Exception:
    """The one-line 503 for a forward that failed: what happened, and what still works."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        what = f"the primary {primary} is unreachable ({exc or type(exc).__name__})"
    elif isinstance(exc, httpx.TimeoutException):
        what = (
            f"the primary {primary} did not answer within {timeout:g} s (the write may have "
            "been applied there)"
        )
    else:
        what = (
            f"the connection to the primary {primary} broke ({exc or type(exc).__name__}; the "
            "write may have been applied there)"
        )
    return PrimaryUnavailableError(
        f"{what}: writes fail until it is back; reads continue on this replica"
    )


class Forwarder:
    """Sends a replica's client writes to its follower's primary (one client per app)."""

    def __init__(self, follower: Follower, settings: ElkynSettings) -> None:
        self.follower = follower
        self.store = follower.store
        self.settings = settings
        self.read_timeout = settings.forward_timeout
        self.max_answer = settings.forward_max_answer_bytes
        self.catch_up = settings.catch_up_seconds
        self._client: httpx.AsyncClient | None = None

    @property
    def primary(self) -> str:
        return self.follower.primary

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def forward(self, req: Request, send: Send, method: str, body: bytes) -> None:
        """Forward ``method`` of ``req`` (its body already read, within its bound) and answer."""
        from .server.http import respond

        primary = self.primary
        url = primary + quote(req.path, safe="/") + (f"?{req.query}" if req.query else "")
        headers = {k: v for k in REQUEST_HEADERS if (v := req.headers.get(k)) is not None}
        if self.follower.term is not None:  # the primary refuses a write for another term
            headers["x-elkyn-term"] = str(self.follower.term)
        status, content_type, kept, content = await self._unless_deposed(
            self._send(primary, method, url, headers, body)
        )
        answer = [(k.encode(), v.encode("latin-1")) for k, v in kept.items()]
        seq, database = kept.get("x-elkyn-seq", ""), kept.get("x-elkyn-database", "")
        wrote = 200 <= status < 300 and SEQ.fullmatch(seq) is not None and database != ""
        if wrote and not await wait_caught_up(self.store, database, int(seq), self.catch_up):
            answer.append((b"x-elkyn-caught-up", b"false"))
        await respond(send, status, content, content_type.encode("latin-1"), headers=answer)

    async def _unless_deposed(self, sending: Any) -> Any:
        """Await ``sending`` unless the follower stops meanwhile (an election named another
        primary, or fenced this server): then a 503, not a wait on a paused or dead primary."""
        task = asyncio.ensure_future(sending)
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.2)
            if done:
                return task.result()
            if self.follower.stop.is_set():
                task.cancel()
                raise PrimaryUnavailableError(
                    f"the primary {self.primary} was replaced while this write was forwarded "
                    "to it (the write may have been applied there, never acknowledged); retry"
                )

    async def _send(
        self, primary: str, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, dict[str, str], bytes]:
        if self._client is None:
            # no retries: a primary that is gone must fail the write at once (503)
            self._client = async_http_client(
                self.settings,
                timeout=self.read_timeout,
                connect=self.settings.forward_connect_timeout,
                pool=self.settings.forward_connect_timeout,
                verify=self.follower.context,
            )
        try:
            async with self._client.stream(method, url, headers=headers, content=body) as resp:
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_answer:
                        raise PrimaryUnavailableError(
                            f"the primary {primary} answered more than {self.max_answer} bytes "
                            f"to a forwarded write (status {resp.status_code}); raise "
                            "ELKYN_FORWARD_MAX_ANSWER_BYTES, or write with print=silent",
                        )
                    chunks.append(chunk)
                kept = {k: v for k in ANSWER_HEADERS if (v := resp.headers.get(k)) is not None}
                content_type = resp.headers.get("content-type", "application/json; charset=utf-8")
                return resp.status_code, content_type, kept, b"".join(chunks)
        except httpx.HTTPError as exc:
            err = primary_unavailable(primary, exc, self.read_timeout)
            if self.follower.term is not None:  # an elected primary: say when it changes
                err = PrimaryUnavailableError(
                    f"{err} (term {self.follower.term}; a new primary is elected once a "
                    "majority of the servers answer, and writes then go to it)"
                )
            raise err from None


class Replicable(Protocol):
    """What :func:`follow` needs of the app it makes a replica (``elkyn.server.ElkynApp``,
    which imports this module): its store, and a place for its follower and forwarder."""

    follower: Follower | None
    forwarder: Forwarder | None

    def current_store(self) -> Store: ...


def follow(
    app: Replicable,
    primary: str,
    settings: ElkynSettings,
    *,
    term: int | None = None,
    name: str = "",
    fence: Fence | None = None,
) -> Follower:
    """Make ``app`` a replica of ``primary``: follow its log, forward client writes to it
    (``term``, ``name``, ``fence``: in an election cluster, the term followed, this server's
    URL and its fence)."""
    signer = auth.signer(settings, create=False)
    cached: dict[str, Any] = {"token": None, "until": 0.0}

    def token() -> str:
        if time.time() > cached["until"]:
            cached["token"] = signer.cluster_token("elkyn-replica", ttl_seconds=3600)
            cached["until"] = time.time() + 3000
        return str(cached["token"])

    store = app.current_store()
    follower = Follower(
        store,
        primary,
        token,
        max_bytes=settings.max_replication_bytes,
        context=client_context(settings),
        term=term,
        name=name,
        fence=fence,
    )
    store.replica_of = follower.given
    app.follower = follower
    app.forwarder = Forwarder(follower, settings)
    follower.start()
    return follower
