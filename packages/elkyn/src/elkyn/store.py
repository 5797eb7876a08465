"""The embedded API: ``Store(path)`` or ``Store(memory=True)``, usable from threads and asyncio.

Calls without a token act as admin (rules bypassed, as Firebase's Admin SDK does); calls with a
platform token (``platform_core.auth``) are checked by the rules. Writes go through the group
commit writer and return once durable; reads are LMDB snapshots taken in the calling thread.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import msgpack

from platform_core.auth import TokenSigner

from .errors import (
    ElkynError,
    InvalidDataError,
    PermissionDeniedError,
    PreconditionFailedError,
    ReplicaWriteError,
)
from .events import MAX_PENDING, MAX_PENDING_BYTES, OVERFLOW, Event, EventQueue, Hub, Subscription
from .group_commit import Writer
from .paths import Path, check_key, is_prefix, join, parse_path, path_str
from .pushid import PushIds
from .query import Query, run_query
from .rules import Rules, query_variables
from .storage import Environment, LogEntry, Tree
from .values import has_server_value, normalize, to_wire

__all__ = ["ABORT", "ADMIN", "ANONYMOUS", "Caller", "Store", "TransactionResult", "etag_of"]

_RULES_KEY = b"rules"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the admin (rules bypassed), or ``auth`` as the rules see it (None: anonymous)."""

    admin: bool
    auth: Mapping[str, Any] | None = None
    exp: int | None = None
    claims: Any = field(default=None, compare=False, repr=False)
    """The verified token's claims (``platform_core.auth.Claims``), so that a long stream can
    re-check them against the platform's revocations; None for the platform itself."""


ADMIN = Caller(admin=True)
ANONYMOUS = Caller(admin=False)


class _Abort:
    def __repr__(self) -> str:
        return "ABORT"


ABORT: Any = _Abort()
"""Return this from a transaction function to leave the value unchanged."""


@dataclass(frozen=True)
class TransactionResult:
    committed: bool
    value: Any


def etag_of(stored: Any) -> str:
    """Firebase-style ETag: base64 SHA-1 of the value's canonical JSON (``null`` included)."""
    text = json.dumps(to_wire(stored), sort_keys=True, separators=(",", ":"))
    return base64.b64encode(hashlib.sha1(text.encode()).digest()).decode()


def _split_updates(path: Path, updates: Mapping[str, Any]) -> list[tuple[Path, str, Any]]:
    """Multi-path update entries as (full path, relative text, value), overlap refused."""
    if not isinstance(updates, Mapping):
        raise InvalidDataError(
            f"Invalid data at {path_str(path)}: an update needs an object of paths to values"
        )
    out: list[tuple[Path, str, Any]] = []
    for rel_text, value in updates.items():
        if not isinstance(rel_text, str):
            raise InvalidDataError(f"update keys must be path strings, not {rel_text!r}")
        rel = parse_path(rel_text)
        if not rel:
            raise InvalidDataError(
                f"Invalid data at {path_str(path)}: an update key names the location itself "
                "(use set instead)"
            )
        out.append((join(path, rel), "/".join(rel), value))
    ordered = sorted(out, key=lambda t: t[0])
    for (a, a_text, _), (b, b_text, _) in itertools.pairwise(ordered):
        if is_prefix(a, b):
            raise InvalidDataError(
                f"Invalid data; path {path_str(path)}/{b_text} is a child of "
                f"{path_str(path)}/{a_text} in the same update"
            )
    return out


class Store:
    """A JSON tree database: an LMDB directory, or memory only (a private tmpfs directory)."""

    def __init__(
        self,
        path: str | FsPath | None = None,
        *,
        memory: bool = False,
        map_size: int = 64 << 20,
        sync: bool = True,
        log_size: int = 100_000,
        max_batch: int = 1024,
        signer: TokenSigner | None = None,
        max_pending_events: int = MAX_PENDING,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.env = Environment(path, memory=memory, map_size=map_size, sync=sync)
        self.hub = Hub()
        self.push_ids = PushIds()
        self.signer = signer
        self.max_pending_events = max_pending_events
        self.max_pending_bytes = max_pending_bytes
        self._commit_listeners: list[Callable[[list[LogEntry]], None]] = []
        self._rules_listeners: list[Callable[[Rules], None]] = []
        self._reset_listeners: list[Callable[[], None]] = []
        self.writer = Writer(
            self.env, self.hub, max_batch=max_batch, log_size=log_size, on_commit=self._committed
        )
        self._reserved: dict[str, Any] = {}
        self._platform_only: frozenset[str] = frozenset()
        self.replica_of: str | None = None
        """The primary's URL while a follower keeps this store in step with it: then writes
        through this store's API are refused (they would fork it from the primary)."""
        with self.env.read() as txn:
            raw = txn.get(_RULES_KEY, db=self.env.meta)
        self._rules = Rules.parse(msgpack.unpackb(raw, raw=False)) if raw else Rules.default()

    # ---- lifecycle ----
    def close(self) -> None:
        """Finish queued writes, stop the writer and event threads, close LMDB."""
        self.writer.close()
        self.hub.close()
        self.env.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on_commit(self, listener: Callable[[list[LogEntry]], None]) -> Callable[[], None]:
        """Call ``listener(entries)`` on the writer's thread after each commit; returns a remover."""
        self._commit_listeners.append(listener)
        return lambda: self._commit_listeners.remove(listener)

    def on_rules_change(self, listener: Callable[[Rules], None]) -> Callable[[], None]:
        """Call ``listener(rules)`` after new rules are installed; returns a remover."""
        self._rules_listeners.append(listener)
        return lambda: self._rules_listeners.remove(listener)

    def on_reset(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` when the database starts over under a new id (a replica's resync).

        Sequence numbers go back then, so whoever tracks them (an SSE stream) must start over.
        """
        self._reset_listeners.append(listener)
        return lambda: self._reset_listeners.remove(listener)

    def _announce_reset(self) -> None:
        for listener in list(self._reset_listeners):
            listener()

    def _committed(self, entries: list[LogEntry]) -> None:
        for listener in list(self._commit_listeners):  # listeners come and go on other threads
            listener(entries)

    # ---- callers ----
    def caller(self, token: str | None) -> Caller:
        """The caller a token stands for (admin when no token is given)."""
        if token is None:
            return ADMIN
        if self.signer is None:
            raise PermissionDeniedError("this store has no token signer; it cannot check tokens")
        claims = self.signer.verify(token)
        return caller_of_claims(claims.sub, claims.admin, claims.exp, dict(claims.extra))

    def _who(self, token: str | None, caller: Caller | None) -> Caller:
        return caller if caller is not None else self.caller(token)

    # ---- reads ----
    def _answer(self, tree: Tree, who: Caller, at: Path, sent: Any, stored: Any) -> Any:
        """What a write answers: the stored value, unless server values made it from data the
        caller may not read (an increment of a write-only counter): then the value as sent."""
        if who.admin or not has_server_value(sent):
            return to_wire(stored)
        if self._rules.can_read(who.auth, at, tree.read, _now(), query_variables(None)):
            return to_wire(stored)
        return sent

    def _read_allowed(
        self, tree: Tree, who: Caller, path: Path, query: Query | None = None
    ) -> None:
        if who.admin:
            return
        qvars = query_variables(query)
        if not self._rules.can_read(who.auth, path, tree.read, _now(), qvars):
            raise PermissionDeniedError()

    def get(
        self,
        path: str | Path = "/",
        *,
        token: str | None = None,
        caller: Caller | None = None,
        shallow: bool = False,
        query: Query | None = None,
        require_index: bool = False,
        max_records: int | None = None,
    ) -> Any:
        """The JSON value at ``path`` (``None`` if absent), optionally shallow or queried.
        ``max_records`` bounds a plain read: past it, ``ReadTooLarge`` is raised."""
        keys = parse_path(path) if isinstance(path, str) else path
        who = self._who(token, caller)
        if shallow and query is not None:
            raise InvalidDataError("shallow cannot be used with any other query parameters")
        with self.env.read() as txn:
            tree = Tree(self.env, txn)
            self._read_allowed(tree, who, keys, query)
            if shallow:
                return tree.shallow(keys)
            if query is None:
                return to_wire(tree.read(keys, max_records))
            if require_index:
                self._check_index(keys, query)
            rec = tree.lookup(keys)
            if rec is not None and rec.node is None:
                return to_wire(rec.value)
            rows = run_query(query, tree.child_values(keys))
        return {k: to_wire(v) for k, v in rows} if rows else None

    def _check_index(self, keys: Path, query: Query) -> None:
        if query.order_by == "$key":
            return
        want = ".value" if query.order_by == "$value" else query.order_by
        if want not in self._rules.index_on(keys):
            raise InvalidDataError(
                f'Index not defined, add ".indexOn": "{want}", for path '
                f'"{path_str(keys)}", to the rules'
            )

    def get_with_etag(
        self, path: str | Path = "/", *, caller: Caller | None = None
    ) -> tuple[Any, str]:
        """The value at ``path`` and its ETag, read in one snapshot."""
        keys = parse_path(path) if isinstance(path, str) else path
        who = caller if caller is not None else ADMIN
        with self.env.read() as txn:
            tree = Tree(self.env, txn)
            self._read_allowed(tree, who, keys)
            stored = tree.read(keys)
        return to_wire(stored), etag_of(stored)

    def export(self, path: str | Path = "/", *, caller: Caller | None = None) -> Any:
        """The value at ``path`` for ``format=export`` (no priorities are stored, so the same)."""
        return self.get(path, caller=caller)

    # ---- writes ----
    def _server_values(self, tree: Tree, now: int) -> Callable[[Path, Any], Any]:
        def resolve(at: Path, spec: Any) -> Any:
            if spec == "timestamp":
                return now
            if isinstance(spec, dict) and set(spec) == {"increment"}:
                delta = spec["increment"]
                if isinstance(delta, bool) or not isinstance(delta, (int, float)):
                    raise InvalidDataError(
                        f"Invalid data at {path_str(at)}: increment needs a number, not {delta!r}"
                    )
                current = tree.read(at)
                if isinstance(current, bool) or not isinstance(current, (int, float)):
                    current = 0
                return current + delta
            raise InvalidDataError(
                f"Invalid data at {path_str(at)}: unknown server value {spec!r} "
                '(known: "timestamp", {"increment": n})'
            )

        return resolve

    def _write_allowed(
        self, tree: Tree, who: Caller, writes: list[tuple[Path, Any]], now: int
    ) -> None:
        if self._platform_only and not (who.admin and who.auth is None):
            for path, _ in writes:
                key = path[0] if path else None
                if key is None or key in self._platform_only:
                    where = (
                        f"/{key}"
                        if key
                        else "/ (which holds "
                        + ", ".join(f"/{k}" for k in sorted(self._platform_only))
                        + ")"
                    )
                    raise PermissionDeniedError(
                        f"Permission denied: {where} is kept by the platform itself; no token "
                        "writes there over REST, an admin's included"
                    )
        if not who.admin and not self._rules.can_write(who.auth, writes, tree.read, now):
            raise PermissionDeniedError()

    def _check_writable(self) -> None:
        if self.replica_of is not None:
            raise ReplicaWriteError(
                f"this store is a read replica of {self.replica_of}: a write here would fork it "
                "from the primary; write through the database writer (a plugin: services.get("
                "elkyn.services.DB_WRITER), which forwards)"
            )

    def _submit_set(
        self,
        keys: Path,
        value: Any,
        who: Caller,
        if_match: str | None = None,
        push: bool = False,
        asynchronous: bool = False,
    ) -> Any:
        self._check_writable()

        def job(tree: Tree, now: int) -> tuple[Any, list[LogEntry]]:
            at = (*keys, self.push_ids.next(now)) if push else keys
            if push:
                join(keys, at[-1:])
            stored = normalize(value, at, self._server_values(tree, now))
            if not at and stored is not None and not isinstance(stored, dict):
                raise InvalidDataError("Invalid data; the root can only hold an object")
            # Permission first: a 412 carries the current value, so it must never answer a
            # caller who may not write here, and carries the value only to one who may read it.
            self._write_allowed(tree, who, [(at, stored)], now)
            if if_match is not None:
                current = tree.read(at)
                if etag_of(current) != if_match:
                    self._read_allowed(tree, who, at)
                    raise PreconditionFailedError(
                        "ETag mismatch", value=to_wire(current), etag=etag_of(current)
                    )
            tree.write(at, stored)
            entry = tree.append_log("put", at, stored, now)
            if push:
                return at[-1], [entry]
            return self._answer(tree, who, at, value, stored), [entry]

        return self.writer.submit_async(job) if asynchronous else self.writer.submit(job)

    def _submit_update(
        self, keys: Path, updates: Mapping[str, Any], who: Caller, asynchronous: bool = False
    ) -> Any:
        self._check_writable()
        parts = _split_updates(keys, updates)

        def job(tree: Tree, now: int) -> tuple[Any, list[LogEntry]]:
            resolve = self._server_values(tree, now)
            stored = [(full, rel, normalize(v, full, resolve)) for full, rel, v in parts]
            if not stored:
                return {}, []
            self._write_allowed(tree, who, [(full, v) for full, _, v in stored], now)
            for full, _, v in stored:
                tree.write(full, v)
            data = {rel: v for _, rel, v in stored}
            entry = tree.append_log("patch", keys, data, now)
            sent = dict(zip((rel for _, rel, _ in parts), (v for _, _, v in parts), strict=True))
            answer = {rel: self._answer(tree, who, full, sent[rel], v) for full, rel, v in stored}
            return answer, [entry]

        return self.writer.submit_async(job) if asynchronous else self.writer.submit(job)

    def set(
        self,
        path: str,
        value: Any,
        *,
        token: str | None = None,
        caller: Caller | None = None,
        if_match: str | None = None,
    ) -> Any:
        """Replace the value at ``path``; returns what was stored (server values resolved)."""
        return self._submit_set(
            parse_path(path), value, self._who(token, caller), if_match
        ).result()

    def update(
        self,
        path: str,
        updates: Mapping[str, Any],
        *,
        token: str | None = None,
        caller: Caller | None = None,
    ) -> Any:
        """Multi-path update: each ``"rel/path": value`` replaces that location, atomically."""
        return self._submit_update(parse_path(path), updates, self._who(token, caller)).result()

    def push(
        self, path: str, value: Any, *, token: str | None = None, caller: Caller | None = None
    ) -> str:
        """Store ``value`` under a new chronological push id below ``path``; returns the id."""
        result: str = self._submit_set(
            parse_path(path), value, self._who(token, caller), push=True
        ).result()
        return result

    def delete(self, path: str, *, token: str | None = None, caller: Caller | None = None) -> None:
        """Remove the value at ``path`` (and any ancestors left empty)."""
        self._submit_set(parse_path(path), None, self._who(token, caller)).result()

    def transaction(
        self,
        path: str,
        fn: Callable[[Any], Any],
        *,
        token: str | None = None,
        caller: Caller | None = None,
    ) -> TransactionResult:
        """Read-modify-write: ``fn(current)`` returns the new value, ``None`` (delete) or ``ABORT``.

        ``fn`` runs on the writer's thread between the read and the write of one transaction,
        so no other write can get in between and it never needs a retry; keep it short. It gets
        a private copy of the current value. An exception from ``fn`` is raised here, and
        nothing is written. ``fn`` must not write (that raises ``NestedWriteError``: return the
        new value instead) and should be pure: if the map fills, the batch is re-run after the
        map grows, so ``fn`` can be called more than once for one commit.
        """
        self._check_writable()
        keys = parse_path(path)
        who = self._who(token, caller)

        def job(tree: Tree, now: int) -> tuple[Any, list[LogEntry]]:
            self._read_allowed(tree, who, keys)
            stored = tree.read(keys)
            new = fn(copy.deepcopy(to_wire(stored)))
            if new is ABORT:
                return TransactionResult(False, to_wire(stored)), []
            value = normalize(new, keys, self._server_values(tree, now))
            if not keys and value is not None and not isinstance(value, dict):
                raise InvalidDataError("Invalid data; the root can only hold an object")
            self._write_allowed(tree, who, [(keys, value)], now)
            tree.write(keys, value)
            entry = tree.append_log("put", keys, value, now)
            return TransactionResult(True, to_wire(value)), [entry]

        result: TransactionResult = self.writer.submit(job).result()
        return result

    # ---- async variants (for servers and asyncio apps) ----
    async def aset(self, path: str | Path, value: Any, *, caller: Caller = ADMIN, **kw: Any) -> Any:
        """``set`` for coroutines: the loop is not blocked, and is woken once per commit."""
        keys = parse_path(path) if isinstance(path, str) else path
        return await self._submit_set(keys, value, caller, asynchronous=True, **kw)

    async def aupdate(
        self, path: str | Path, updates: Mapping[str, Any], *, caller: Caller = ADMIN
    ) -> Any:
        """``update`` for coroutines."""
        keys = parse_path(path) if isinstance(path, str) else path
        return await self._submit_update(keys, updates, caller, asynchronous=True)

    async def apush(self, path: str | Path, value: Any, *, caller: Caller = ADMIN) -> str:
        """``push`` for coroutines."""
        keys = parse_path(path) if isinstance(path, str) else path
        result: str = await self._submit_set(keys, value, caller, push=True, asynchronous=True)
        return result

    async def adelete(self, path: str | Path, *, caller: Caller = ADMIN, **kw: Any) -> None:
        """``delete`` for coroutines."""
        keys = parse_path(path) if isinstance(path, str) else path
        await self._submit_set(keys, None, caller, asynchronous=True, **kw)

    # ---- watching ----
    def watch(
        self,
        path: str,
        callback: Callable[[Event], None] | None = None,
        *,
        token: str | None = None,
        caller: Caller | None = None,
    ) -> Any:
        """With ``callback``: call it for each event, returns a ``Subscription`` to close.

        Without: an async iterator of events (use ``async for ev in store.watch(path)``).
        The first event is a ``put`` at ``/`` with the current value.
        """
        keys = parse_path(path)
        who = self._who(token, caller)
        if callback is not None:
            return self._watch_callback(keys, who, callback)
        return self._watch_async(keys, who)

    def _watch_callback(
        self, keys: Path, who: Caller, callback: Callable[[Event], None]
    ) -> Subscription:
        # Events that race the snapshot wait until it has been delivered; those it already
        # contains (seq not above the snapshot's) are dropped, so each change arrives once.
        lock = threading.Lock()
        pending: list[Event] = []
        snapshot_seq: list[int] = []

        def deliver(ev: Event) -> None:
            with lock:
                if not snapshot_seq:
                    pending.append(ev)
                elif ev.seq > snapshot_seq[0]:
                    callback(ev)

        sub = Subscription(self.hub, keys, callback=deliver)
        self.hub.add(sub)
        try:
            with self.env.read() as txn:
                tree = Tree(self.env, txn)
                self._read_allowed(tree, who, keys)
                snapshot, seq = tree.read(keys), self.env.last_seq(txn)
        except BaseException:
            sub.close()
            raise
        with lock:
            callback(Event("put", "/", snapshot, seq))
            snapshot_seq.append(seq)
            for ev in pending:
                if ev.seq > seq:
                    callback(ev)
        return sub

    async def _watch_async(self, keys: Path, who: Caller) -> AsyncIterator[Event]:
        sub, first = self.subscribe(keys, who)
        try:
            yield first
            assert sub.queue is not None
            while True:
                ev = await sub.queue.get()
                if ev is OVERFLOW:
                    raise ElkynError(
                        f"the watcher of {path_str(keys)} fell {self.max_pending_events} "
                        f"events or {self.max_pending_bytes} bytes behind and was stopped; "
                        "read events faster, or watch again"
                    )
                if ev.seq > first.seq:  # older ones are already in the snapshot
                    yield ev
        finally:
            sub.close()

    def subscribe(self, keys: Path, who: Caller) -> tuple[Subscription, Event]:
        """An asyncio-queue subscription on the running loop and its first event (snapshot).

        Subscribing before reading the snapshot means no change is missed; the caller drops
        queued events whose ``seq`` is not above the snapshot's (already in it).
        """
        loop = asyncio.get_running_loop()
        # bounded: a watcher that stops reading gets OVERFLOW and ends (see events.OVERFLOW);
        # the extra slot is for the marker, and control items (keep-alive ...) fit besides
        q = EventQueue(self.max_pending_events + 1, self.max_pending_bytes)
        sub = Subscription(self.hub, keys, loop=loop, queue_=q)
        self.hub.add(sub)
        try:
            with self.env.read() as txn:
                tree = Tree(self.env, txn)
                self._read_allowed(tree, who, keys)
                snapshot = tree.read(keys)
                seq = self.env.last_seq(txn)
        except BaseException:
            sub.close()
            raise
        return sub, Event("put", "/", snapshot, seq)

    # ---- operation log ----
    @property
    def database_id(self) -> str:
        """This database's identity; sequence numbers compare only within one identity."""
        return self.env.database_id

    def last_seq(self) -> int:
        with self.env.read() as txn:
            return self.env.last_seq(txn)

    def log_since(self, seq: int, limit: int = 10_000) -> tuple[int, list[LogEntry]]:
        """The first sequence number still logged, and the entries after ``seq``."""
        with self.env.read() as txn:
            tree = Tree(self.env, txn)
            return tree.first_log_seq(), tree.log_since(seq, limit)

    # ---- rules ----
    @property
    def rules(self) -> Rules:
        return self._rules

    def get_rules(self) -> Any:
        """The rules document as set (``{"rules": {...}}``)."""
        return self._rules.source

    def set_rules(self, document: Any) -> None:
        """Parse and install a rules document; a rule that fails to parse is refused whole.

        The change is logged (kind ``rules``) so replicas install it in order with the data.
        """
        self._check_writable()
        rules = Rules.parse(document, self._reserved)

        def job(tree: Tree, now: int) -> tuple[Any, list[LogEntry]]:
            self.store_rules(tree, rules.source)
            return None, [tree.append_log("rules", (), rules.source, now)]

        self.writer.submit(job).result()
        self._use_rules(rules)

    @property
    def reserved(self) -> list[str]:
        """The top-level keys whose rules the platform owns (see :meth:`reserve`), sorted."""
        return sorted(self._reserved)

    def reserve(self, key: str, rules: Mapping[str, Any], *, platform_only: bool = False) -> None:
        """Own the rules of the top-level subtree ``key`` (``jobs``): merged into the served
        document from now on, and no rule a user sets can loosen them (see ``Rules.parse``).
        Not persisted: the platform reserves its subtrees each time it starts. On a replica
        the reservation is applied in memory only (its rules document comes from the primary,
        whose platform reserves the same subtrees).

        ``platform_only``: no caller with a token may write there, an admin's included; only
        the in-process admin (``ADMIN``, no token) and a peer's cluster token (the admin
        without ``auth``) do. The platform's own records (revoked tokens, the audit trail)
        live there, so nobody can rewrite them over REST."""
        check_key(key, " (a reserved subtree)")
        self._reserved[key] = dict(rules)
        if platform_only:
            self._platform_only = self._platform_only | {key}
        if self.replica_of is not None:
            self._use_rules(Rules.parse(self._rules.source, self._reserved))
        else:
            self.set_rules(self._rules.source)

    def parse_rules(self, document: Any) -> Rules:
        """``document`` parsed with this store's reserved subtrees (a replica's rules)."""
        return Rules.parse(document, self._reserved)

    def store_rules(self, tree: Tree, source: Any) -> None:
        """Write a rules document in ``tree``'s transaction (call ``_use_rules`` after commit)."""
        tree.txn.put(_RULES_KEY, msgpack.packb(source, use_bin_type=True), db=self.env.meta)

    def _use_rules(self, rules: Rules) -> None:
        self._rules = rules
        for listener in self._rules_listeners:
            listener(rules)

    # ---- tokens ----
    def issue_token(self, uid: str, *, ttl_seconds: int = 3600, **claims: Any) -> str:
        """A platform token for ``uid`` signed by this store's signer (``auth.uid`` in rules)."""
        if self.signer is None:
            raise PermissionDeniedError("this store has no token signer")
        admin = bool(claims.pop("admin", False))
        return self.signer.issue(uid, admin=admin, ttl_seconds=ttl_seconds, extra=claims)


def caller_of_claims(sub: str, admin: bool, exp: int | None, extra: dict[str, Any]) -> Caller:
    """The caller for verified claims; ``auth`` as the rules see it (``auth.uid``, ``auth.token``)."""
    token = {**extra, "sub": sub, "admin": admin}
    if exp is not None:
        token["exp"] = exp
    auth = {"uid": sub, "provider": "custom", "admin": admin, "token": token}
    return Caller(admin=admin, auth=auth, exp=exp)


def _now() -> int:
    return time.time_ns() // 1_000_000
