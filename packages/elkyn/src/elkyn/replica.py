"""Read replicas: the primary serves its operation log; a replica follows it.

The primary answers ``GET /.replication/log?since=N&wait=S`` (cluster token only) with the log
entries after ``N`` (waiting up to ``S`` seconds for one), or ``"snapshot"`` when its log no
longer reaches back to ``N`` — then the replica fetches ``/.replication/snapshot`` (the whole
tree and the sequence number it reflects) and continues from there. A replica applies entries
with the primary's sequence numbers, so after a restart of either side it resumes from its own
last sequence number. Sequence numbers count within one database only, so every answer names
the primary's database id: when it differs from the one the replica follows (a memory primary
restarted, a restore, a new primary), or the primary's last sequence number is below the
replica's, the replica starts over from a snapshot.

No chains: before following, a replica asks the URL it was given for
``/.replication/status``; when that is itself a replica it follows that one's primary instead
(a few hops at most), and a replica refuses to serve its own log (409 naming its primary).
Client writes on a replica are forwarded to the primary; ``elkyn.forward.follow`` makes an app a
replica (a follower for its store, a forwarder for its writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Protocol

import msgpack

from platform_core import ForbiddenError, NotFoundError, UnauthorizedError
from platform_core.auth import bearer_token
from platform_core.tls import connection_hint

from .catchup import _FOLLOWED, data_database, followed_database
from .errors import ElkynError, InvalidDataError, NotPrimaryError
from .rules import Rules
from .storage import LogEntry, Tree

if TYPE_CHECKING:
    from platform_core.auth import TokenSigner

    from .fencing import Fence
    from .server.http import Request, Send
    from .settings import ElkynSettings
    from .store import Store

__all__ = [
    "Follower",
    "LogServer",
    "apply_entries",
    "install_snapshot",
    "mark_followed",
    "serve_fence",
    "serve_log",
]

log = logging.getLogger(__name__)

MAX_ENTRIES = 5000
MAX_HOPS = 8
"""Replicas of replicas a follower walks through to find the real primary."""

_SEQ = re.compile(r"[0-9]{1,19}")
"""A sequence number as a query parameter: plain ASCII digits that fit in 64 bits."""


class LogServer(Protocol):
    """What the replication routes need of the app serving them (``elkyn.server.ElkynApp``,
    which imports this module): its token signer, its follower on a replica, and its store."""

    signer: TokenSigner | None
    follower: Follower | None
    fence: Fence | None
    settings: ElkynSettings

    def current_store(self) -> Store: ...


def check_cluster(app: LogServer, req: Request, *, admin_too: bool = False) -> None:
    """A cluster token (or, with ``admin_too``, an admin user token), else 401/403."""
    token = bearer_token(req.headers.get("authorization"))
    if token is None or app.signer is None:
        raise UnauthorizedError("replication needs a cluster token (Authorization: Bearer)")
    try:
        app.signer.verify_cluster(token)
    except UnauthorizedError:
        if not admin_too:
            raise
        claims = app.signer.verify(token)  # a bad token: its own 401
        if not claims.admin:
            raise ForbiddenError(
                "replication status needs a cluster token or an admin token"
            ) from None


async def serve_log(app: LogServer, req: Request, send: Send) -> None:
    """``/.replication/log`` on the primary (``?snapshot=true`` for the whole tree)."""
    from .server.http import respond_json

    check_cluster(app, req)
    if app.follower is not None:  # a chain would lag twice and break when the middle goes
        primary = app.follower.primary
        raise NotPrimaryError(
            f"this is a read replica of {primary}; follow {primary} instead",
            primary=primary,
        )
    store = app.current_store()
    since_text = req.params.get("since", "0")
    if not _SEQ.fullmatch(since_text):  # ASCII digits only: str.isdigit takes '²' and '٣'
        raise InvalidDataError("since must be a sequence number")
    since = int(since_text)
    if app.fence is not None:  # a replica's poll acknowledges what it has committed ...
        # ... counted in this database's sequence numbers only: a deposed primary's `since`
        # counts writes this one never had (it resyncs from a snapshot first)
        ours = req.params.get("database") == store.database_id
        app.fence.record_ack(
            req.params.get("replica", "")[:200], req.params.get("term"), since, counts=ours
        )
    if req.params.get("snapshot") == "true":
        with store.env.read() as txn:  # data, rules and seq from one snapshot
            tree = Tree(store.env, txn)
            value, seq = tree.read(()), store.env.last_seq(txn)
            raw_rules = txn.get(b"rules", db=store.env.meta)
        rules = msgpack.unpackb(raw_rules, raw=False) if raw_rules else Rules.default().source
        body = {"seq": seq, "value": value, "rules": rules, "database": store.database_id}
        await respond_json(send, 200, body)
        return
    try:
        wait = min(max(float(req.params.get("wait", "0") or 0), 0.0), 30.0)
    except ValueError:
        raise InvalidDataError("wait must be a number of seconds") from None
    deadline = time.monotonic() + wait
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def on_commit(_: list[LogEntry]) -> None:  # on the writer's thread
        loop.call_soon_threadsafe(woken.set)

    remove = store.on_commit(on_commit)  # before the first look: no commit slips by
    try:
        while True:
            oldest, entries = store.log_since(since, MAX_ENTRIES)
            last = store.last_seq()
            if since + 1 < oldest and last > since:
                body = {"snapshot": True, "last": last, "database": store.database_id}
                await respond_json(send, 200, body)
                return
            remaining = deadline - time.monotonic()
            if entries or remaining <= 0 or since > last:  # ahead of us: answer now
                break
            woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), remaining)
    finally:
        remove()
    body = {
        "last": last,
        "database": store.database_id,
        "entries": [[e.seq, e.ts, e.kind, list(e.path), e.data] for e in entries],
    }
    await respond_json(send, 200, body)


def apply_entries(store: Store, entries: list[LogEntry]) -> None:
    """Apply the primary's entries (in order, keeping their sequence numbers)."""

    def job(tree: Tree, now: int) -> tuple[Any, list[LogEntry]]:
        last = store.env.last_seq(tree.txn)
        applied = []
        for e in entries:
            if e.seq <= last:
                continue
            if e.kind == "rules":
                store.store_rules(tree, e.data)
                new_rules.append(store.parse_rules(e.data))
            elif e.kind == "put":
                tree.write(e.path, e.data)
            else:
                for rel, value in e.data.items():
                    tree.write(e.path + tuple(k for k in rel.split("/") if k), value)
            tree.append_log_at(e)
            applied.append(e)
        return None, applied

    new_rules: list[Rules] = []
    store.writer.submit(job).result()
    if new_rules:
        store._use_rules(new_rules[-1])


def mark_followed(store: Store, database: str) -> None:
    """Record (durably) that the store's data is now ``database``'s (a promotion: its own)."""

    def job(tree: Tree, now: int) -> tuple[Any, list[LogEntry]]:
        tree.txn.put(_FOLLOWED, database.encode(), db=store.env.meta)
        return None, []

    store.writer.submit(job).result()


def install_snapshot(
    store: Store, value: Any, seq: int, rules_source: Any, database: str = ""
) -> None:
    """Replace the whole tree with the primary's snapshot taken at ``seq`` of ``database``.

    When the snapshot is of another database than the one followed so far, or older than the
    replica's own last sequence number, the replica's log is dropped and its own database id
    renewed: its old sequence numbers (and resume ids issued on them) mean nothing any more.
    """
    renewed: list[str] = []

    def job(tree: Tree, now: int) -> tuple[Any, list[LogEntry]]:
        followed = tree.txn.get(_FOLLOWED, db=store.env.meta)
        last = store.env.last_seq(tree.txn)
        if (followed is None or bytes(followed).decode() != database) or seq < last:
            tree.reset_log()
            renewed.append(store.env.renew_database_id(tree.txn))
        tree.txn.put(_FOLLOWED, database.encode(), db=store.env.meta)
        tree.write((), value)
        store.store_rules(tree, rules.source)
        entry = LogEntry(seq, now, "put", (), value)
        tree.append_log_at(entry)
        return None, [entry]

    rules = store.parse_rules(rules_source)
    store.writer.submit(job).result()
    if renewed:
        store.env.database_id = renewed[-1]
    store._use_rules(rules)
    if renewed:
        store._announce_reset()  # open streams end; they resume with a fresh snapshot


class Follower:
    """A thread that keeps a replica's store in step with the primary.

    ``primary`` is the URL it was given until it has asked that URL who the real primary is
    (see the module's docstring); ``primary_seq`` is the primary's last sequence number in its
    latest answer, ``connected`` whether that answer was the latest attempt's.
    """

    def __init__(
        self,
        store: Store,
        primary: str,
        token_fn: Any,
        *,
        max_bytes: int = 1 << 30,
        context: ssl.SSLContext | None = None,
        term: int | None = None,
        name: str = "",
        fence: Fence | None = None,
    ) -> None:
        self.store = store
        self.term = term
        """The election term whose primary this follows (None: no election)."""
        self.fence = fence
        """This server's fence: once fenced above ``term``, nothing more is applied."""
        self.name = name
        """How this replica names itself in its polls (the primary counts acknowledgements)."""
        self.applying = threading.Lock()
        """Held while entries are applied: :meth:`halt` waits for it, so no entry lands after."""
        self.context = context
        """Verifies an https primary (``platform_core.tls.client_context``)."""
        self.given = primary.rstrip("/")
        self.primary = self.given
        self.token_fn = token_fn
        self.max_bytes = max_bytes
        self.stop = threading.Event()
        self.connected = False
        self.resolved = False
        self.primary_seq: int | None = None
        self.in_step_at: float | None = None
        """Wall time the replica last knew it had applied all the primary had."""
        self.thread = threading.Thread(target=self._run, name="elkyn-replica", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop following (the thread ends after its current request, at most its timeout)."""
        self.stop.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def halt(self) -> None:
        """Stop at once: after this returns, nothing more of the primary's log is applied
        (a fenced replica must not take a deposed primary's entries)."""
        self.stop.set()
        with self.applying:
            pass
        self.connected = False

    def deposed(self) -> bool:
        """Whether a coordinator fenced this server above the followed term: a fence that
        landed while this follower was being started found no follower to halt."""
        return self.fence is not None and self.term is not None and self.fence.fenced > self.term

    def lag_seconds(self, seq: int) -> float | None:
        """0 while in step with the primary, else seconds since it last was (None: never)."""
        if self.connected and self.primary_seq is not None and seq >= self.primary_seq:
            return 0.0
        if self.in_step_at is None:
            return None
        return max(0.0, time.time() - self.in_step_at)

    def _fetch(self, url: str, timeout: float) -> Any:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token_fn()}"})
        with urllib.request.urlopen(req, timeout=timeout, context=self.context) as resp:
            raw = resp.read(self.max_bytes + 1)
        if len(raw) > self.max_bytes:
            raise ElkynError(
                f"the primary's answer from {url} is larger than {self.max_bytes} bytes; raise "
                "ELKYN_MAX_REPLICATION_BYTES"
            )
        return json.loads(raw)

    def _get(self, query: str, timeout: float) -> Any:
        if self.term is not None:
            name = urllib.parse.quote(self.name, safe="")
            database = urllib.parse.quote(followed_database(self.store), safe="")
            query += f"&term={self.term}&replica={name}&database={database}"
        return self._fetch(f"{self.primary}/.replication/log?{query}", timeout)

    def resolve(self) -> str:
        """The real primary behind the URL this replica was given (walks replicas' status)."""
        target, seen = self.given, {self.given}
        for _ in range(MAX_HOPS):
            try:
                status = self._fetch(f"{target}/.replication/status", timeout=10)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # a server from before /.replication/status: a primary
                    return target
                raise
            upstream = status.get("primary") if isinstance(status, dict) else None
            if status.get("role") != "replica" or not isinstance(upstream, str):
                return target
            upstream = upstream.rstrip("/")
            if upstream in seen:
                raise ElkynError(f"replicas follow each other in a circle: {sorted(seen)}")
            log.info("%s is a replica of %s: following that instead", target, upstream)
            seen.add(upstream)
            target = upstream
        raise ElkynError(f"more than {MAX_HOPS} replicas in a row from {self.given}")

    def _run(self) -> None:
        backoff = 0.2
        while not self.stop.is_set() and not self.deposed():
            try:
                if not self.connected and self.term is None:  # who leads now? (an election
                    # names the primary itself: its URL is followed as given)
                    self.primary = self.resolve()
                    self.resolved = True
                since = self.store.last_seq()
                body = self._get(f"since={since}&wait=10", timeout=20)
                resync = (
                    body.get("snapshot")
                    or body.get("database") != followed_database(self.store)
                    or int(body.get("last", 0)) < since  # the primary went back
                )
                if resync:
                    snap = self._get(f"since={since}&snapshot=true", timeout=60)
                    self._apply_snapshot(snap)
                else:
                    entries = [
                        LogEntry(seq, ts, kind, tuple(path), data)
                        for seq, ts, kind, path, data in body["entries"]
                    ]
                    with self.applying:
                        if self.stop.is_set() or self.deposed():
                            return
                        if entries:
                            apply_entries(self.store, entries)
                    self.primary_seq = int(body.get("last", 0))
                if self.primary_seq is not None and self.store.last_seq() >= self.primary_seq:
                    self.in_step_at = time.time()
                self.connected = True
                backoff = 0.2
            except (urllib.error.URLError, OSError, ValueError, ElkynError) as exc:
                hint = connection_hint(exc, self.primary)  # TLS mismatch: say what to change
                if self.connected or (hint and backoff == 0.2):
                    log.warning("replica lost the primary %s: %s", self.primary, hint or exc)
                self.connected = False
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0 if self.term is None else 0.5)

    def _apply_snapshot(self, snap: Any) -> None:
        with self.applying:
            if self.stop.is_set() or self.deposed():
                return
            install_snapshot(
                self.store, snap["value"], snap["seq"], snap["rules"], str(snap.get("database", ""))
            )
        self.primary_seq = int(snap["seq"])


def fence_here(app: LogServer, term: int) -> dict[str, Any]:
    """Fence this server at ``term`` (``Fence.fence_at``; its follower halted, so no entry of
    the old primary lands after this) and say what it has applied (``seq``), whose data it is
    (``database``), the id it would serve as primary (``own_database``) and its ``term``.
    ``POST /.replication/fence`` and the elector fencing its own server share it."""
    fence = app.fence
    assert fence is not None  # callers check: only a server of an election has one
    if fence.fence_at(term) and app.follower is not None:
        app.follower.halt()
    store = app.current_store()
    return {
        "seq": store.last_seq(),
        "database": data_database(store),
        "own_database": store.database_id,
        "term": fence.term,
    }


async def serve_fence(app: LogServer, req: Request, send: Send) -> None:
    """``POST /.replication/fence {"term": T}`` (cluster token): from now on take nothing from
    a primary of a term below ``T`` and acknowledge no write of an older term; answer what
    this server has applied (``seq``), whose data it is (``database``) and the id it would
    serve as primary (``own_database``), for the coordinator to pick the most caught-up."""
    from .server.http import respond_json

    check_cluster(app, req)
    fence = app.fence
    if fence is None:
        raise NotFoundError("this server is not in an election cluster (no --election-port)")
    if req.method != "POST":
        raise InvalidDataError('fence with POST {"term": n}')
    try:
        term = json.loads(await req.body(4096, app.settings.body_timeout_seconds))["term"]
    except (ValueError, KeyError, TypeError):
        raise InvalidDataError('the fence body is {"term": n}') from None
    if isinstance(term, bool) or not isinstance(term, int) or term < 1:  # JSON true is no 1
        raise InvalidDataError(f"the fence term must be a positive integer, not {term!r}")
    body = await asyncio.to_thread(fence_here, app, term)
    await respond_json(send, 200, body)
