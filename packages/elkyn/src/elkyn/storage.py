"""The JSON tree in LMDB: one record per object member, keyed by (parent node id, key).

Why not the full path as the LMDB key: a legal path can be 32 keys of 768 bytes, while an LMDB
key stops at 511 bytes. So every object gets an 8-byte node id, and each member is stored at
``parent_id (8 bytes, big-endian) + key``. A key longer than 480 bytes is stored as its first
448 bytes + ``0xff`` (never part of UTF-8) + a 16-byte BLAKE2b of the whole key, with the full
key kept in the record. A path lookup is one B-tree get per level; the members of an object
are one contiguous range, so a subtree read is one range scan per object in it.

Records are a tag byte and a body: ``L`` + MessagePack scalar (a leaf), ``N`` + 8-byte id (an
object); lowercase ``l``/``n`` carry the full key first (2-byte length + bytes) for long keys.
The same transaction appends each change to the operation log (``seq`` -> MessagePack).
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import lmdb
import msgpack

from platform_core.ownership import DirectoryLock, lock_directory

from ._gate import Gate
from .errors import ElkynError, StoreClosedError
from .paths import Path

__all__ = ["Environment", "LogEntry", "ReadTooLarge", "Tree"]

_ID = struct.Struct(">Q")
Buf = bytes | memoryview
ROOT_ID = 0
_SHORT_KEY = 480
_LONG_PREFIX = 448
_NEXT_ID = b"next_id"
_LAST_SEQ = b"last_seq"
_DATABASE_ID = b"database_id"


def _child_key(parent: int, key: str) -> bytes:
    raw = key.encode()
    if len(raw) <= _SHORT_KEY:
        return _ID.pack(parent) + raw
    digest = hashlib.blake2b(raw, digest_size=16).digest()
    return _ID.pack(parent) + raw[:_LONG_PREFIX] + b"\xff" + digest


def _is_long(raw_key: bytes) -> bool:
    return len(raw_key) == 8 + _LONG_PREFIX + 1 + 16 and raw_key[8 + _LONG_PREFIX] == 0xFF


def _pack(value: Any) -> bytes:
    out: bytes = msgpack.packb(value, use_bin_type=True)
    return out


def _leaf(key: str, value: Any) -> bytes:
    body = _pack(value)
    raw = key.encode()
    if len(raw) <= _SHORT_KEY:
        return b"L" + body
    return b"l" + struct.pack(">H", len(raw)) + raw + body


def _node(key: str, node_id: int) -> bytes:
    raw = key.encode()
    if len(raw) <= _SHORT_KEY:
        return b"N" + _ID.pack(node_id)
    return b"n" + struct.pack(">H", len(raw)) + raw + _ID.pack(node_id)


class ReadTooLarge(Exception):
    """A bounded read (``Tree.read(path, limit=N)``) met more than N records: the caller
    reads again where a long read may run (a worker thread, not the event loop)."""


@dataclass(frozen=True)
class _Rec:
    """A decoded member record: its key, and either a leaf value or an object's node id."""

    key: str
    node: int | None
    value: Any


def _decode(raw_key: Buf, rec: Buf) -> _Rec:
    tag = rec[0:1]
    if tag in (b"L", b"N"):
        key = bytes(raw_key[8:]).decode()
        body = rec[1:]
    elif tag in (b"l", b"n"):
        (n,) = struct.unpack_from(">H", rec, 1)
        key = bytes(rec[3 : 3 + n]).decode()
        body = rec[3 + n :]
    else:
        raise ElkynError(f"corrupt record under key {bytes(raw_key)[:40]!r}: tag {tag!r}")
    if tag in (b"N", b"n"):
        return _Rec(key, _ID.unpack(body)[0], None)
    return _Rec(key, None, msgpack.unpackb(body, raw=False))


@dataclass(frozen=True)
class LogEntry:
    """One committed change: ``put`` (value at path) or ``patch`` (children of path)."""

    seq: int
    ts: int
    kind: str
    path: Path
    data: Any
    size: int = field(default=0, compare=False)
    """Bytes of the packed entry (0 when not known): what a queued event of it costs."""

    def pack(self) -> bytes:
        return _pack([self.ts, self.kind, list(self.path), self.data])

    def nbytes(self) -> int:
        """Bytes of the packed entry; packed here if it was made without (a replica's copy)."""
        return self.size or len(self.pack())

    @classmethod
    def unpack(cls, seq: int, raw: Buf) -> LogEntry:
        ts, kind, path, data = msgpack.unpackb(raw, raw=False)
        return cls(seq, ts, kind, tuple(path), data, len(raw))


class Environment:
    """An LMDB environment (a directory, or a private tmpfs directory in memory mode)."""

    def __init__(
        self,
        path: str | FsPath | None = None,
        *,
        memory: bool = False,
        map_size: int = 64 << 20,
        sync: bool = True,
        max_readers: int = 256,
        readonly: bool = False,
    ) -> None:
        if (path is None) == (not memory):
            raise ElkynError("give a directory path, or memory=True (not both)")
        self._owned_dir: FsPath | None = None
        if memory:
            shm = FsPath("/dev/shm")
            base = str(shm) if shm.is_dir() else None
            self._owned_dir = FsPath(tempfile.mkdtemp(prefix="elkyn-mem-", dir=base))
            path = self._owned_dir
            sync = False
        assert path is not None
        self.path = FsPath(path)
        self.memory = memory
        self.sync = sync
        self._owner: DirectoryLock | None = None
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
            if not memory:  # one owner process per directory (platform_core.ownership)
                self._owner = lock_directory(
                    self.path, what="the Elkyn database", setting="ELKYN_PATH or --path"
                )
        try:
            self._open_lmdb(map_size, max_readers, readonly)
        except BaseException:
            if self._owner is not None:
                self._owner.release()
            raise

    def _open_lmdb(self, map_size: int, max_readers: int, readonly: bool) -> None:
        sync = self.sync
        self.env = lmdb.open(
            str(self.path),
            map_size=map_size,
            max_dbs=4,
            subdir=True,
            sync=sync,
            metasync=sync,
            readonly=readonly,
            lock=True,
            max_readers=max_readers,
            writemap=False,  # nested transactions (one per grouped write) need it off
        )
        self.nodes = self.env.open_db(b"nodes", create=not readonly)
        self.log = self.env.open_db(b"log", create=not readonly)
        self.meta = self.env.open_db(b"meta", create=not readonly)
        self.gate = Gate()
        self.closed = False
        self.database_id = self._database_id(create=not readonly)

    def _database_id(self, *, create: bool) -> str:
        """This database's identity: made at creation, new on restore and in memory mode.

        Sequence numbers count within one database only; a replica or a resuming stream
        compares the id to tell "the same database, later" from "another database".
        """
        with self.env.begin(write=create) as txn:
            raw = txn.get(_DATABASE_ID, db=self.meta)
            if raw is None and create:
                raw = uuid.uuid4().hex.encode()
                txn.put(_DATABASE_ID, raw, db=self.meta)
        return bytes(raw).decode() if raw is not None else ""

    def renew_database_id(self, txn: lmdb.Transaction | None = None) -> str:
        """Give this database a new identity (a restored copy is not the database it came from).

        Within ``txn`` if given (then set ``database_id`` once it commits), else on its own.
        """
        new = uuid.uuid4().hex
        if txn is not None:
            txn.put(_DATABASE_ID, new.encode(), db=self.meta)
            return new
        with self.gate.shared(), self.env.begin(write=True) as own:
            own.put(_DATABASE_ID, new.encode(), db=self.meta)
        self.database_id = new
        return new

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        """A read transaction (a consistent snapshot)."""
        with self.gate.shared():
            if self.closed:
                raise StoreClosedError("the store is closed")
            with self.env.begin(buffers=False) as txn:
                yield txn

    def grow(self) -> int:
        """Double the map size (called when a write found the map full); returns the new size."""
        with self.gate.exclusive():
            size = int(self.env.info()["map_size"]) * 2
            self.env.set_mapsize(size)
            return size

    def map_size(self) -> int:
        return int(self.env.info()["map_size"])

    def last_seq(self, txn: lmdb.Transaction) -> int:
        raw = txn.get(_LAST_SEQ, db=self.meta)
        return _ID.unpack(raw)[0] if raw else 0

    def copy_to(self, target: str | FsPath) -> None:
        """A consistent copy of the live environment (compacted) into an empty directory."""
        FsPath(target).mkdir(parents=True, exist_ok=True)
        with self.gate.shared():
            self.env.copy(str(target), compact=True)

    def close(self) -> None:
        with self.gate.exclusive():
            if self.closed:
                return
            self.closed = True
            self.env.close()
            if self._owner is not None:
                self._owner.release()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)


class Tree:
    """Tree operations inside one LMDB transaction of ``env``."""

    def __init__(self, env: Environment, txn: lmdb.Transaction) -> None:
        self.env = env
        self.txn = txn
        self._db = env.nodes

    # ---- reads ----
    def _get(self, parent: int, key: str) -> _Rec | None:
        raw_key = _child_key(parent, key)
        rec = self.txn.get(raw_key, db=self._db)
        if rec is None:
            return None
        out = _decode(raw_key, rec)
        if out.key != key:  # a 128-bit hash collision of two long keys: refuse, never mix up
            raise ElkynError(f"key hash collision between {out.key[:40]!r} and {key[:40]!r}")
        return out

    def lookup(self, path: Path) -> _Rec | None:
        """The record at ``path``; the root is an object with node id 0; ``None`` if absent."""
        rec = _Rec("", ROOT_ID, None)
        for key in path:
            if rec.node is None:
                return None
            found = self._get(rec.node, key)
            if found is None:
                return None
            rec = found
        return rec

    def members(self, node: int) -> Iterator[_Rec]:
        """The members of an object, in storage order (one range scan)."""
        prefix = _ID.pack(node)
        cur = self.txn.cursor(db=self._db)
        if not cur.set_range(prefix):
            return
        for raw_key, rec in cur:
            if raw_key[:8] != prefix:
                break
            yield _decode(raw_key, rec)

    def has_members(self, node: int) -> bool:
        cur = self.txn.cursor(db=self._db)
        prefix = _ID.pack(node)
        return cur.set_range(prefix) and cur.key()[:8] == prefix

    def read_node(self, node: int) -> dict[str, Any]:
        return {
            r.key: (r.value if r.node is None else self.read_node(r.node))
            for r in self.members(node)
        }

    def _read_bounded(self, node: int, budget: list[int]) -> dict[str, Any]:
        """``read_node`` that raises ``ReadTooLarge`` once ``budget[0]`` records were read."""
        out: dict[str, Any] = {}
        for r in self.members(node):
            budget[0] -= 1
            if budget[0] < 0:
                raise ReadTooLarge
            out[r.key] = r.value if r.node is None else self._read_bounded(r.node, budget)
        return out

    def read(self, path: Path, limit: int | None = None) -> Any:
        """The value at ``path`` in stored form (``None`` if absent); with ``limit``, raise
        ``ReadTooLarge`` rather than read more than that many records."""
        rec = self.lookup(path)
        if rec is None:
            return None
        if rec.node is None:
            return rec.value
        if limit is not None:
            return self._read_bounded(rec.node, [limit]) or None
        return self.read_node(rec.node) or None

    def shallow(self, path: Path) -> Any:
        """Firebase ``shallow=true``: an object's keys mapped to ``true``, or the leaf value."""
        rec = self.lookup(path)
        if rec is None:
            return None
        if rec.node is None:
            return rec.value
        return {r.key: True for r in self.members(rec.node)} or None

    def child_values(self, path: Path) -> list[tuple[str, Any]]:
        """Members of the object at ``path`` with their values (for queries)."""
        rec = self.lookup(path)
        if rec is None or rec.node is None:
            return []
        return [
            (r.key, r.value if r.node is None else self.read_node(r.node))
            for r in self.members(rec.node)
        ]

    # ---- writes ----
    def _new_id(self) -> int:
        raw = self.txn.get(_NEXT_ID, db=self.env.meta)
        node = _ID.unpack(raw)[0] if raw else 1
        self.txn.put(_NEXT_ID, _ID.pack(node + 1), db=self.env.meta)
        return node

    def _put(self, parent: int, key: str, value: Any) -> None:
        if isinstance(value, dict):
            node = self._new_id()
            self.txn.put(_child_key(parent, key), _node(key, node), db=self._db)
            for k, v in value.items():
                self._put(node, k, v)
        else:
            self.txn.put(_child_key(parent, key), _leaf(key, value), db=self._db)

    def _drop_node(self, node: int) -> None:
        """Delete every record of the object ``node`` and of its descendants."""
        prefix = _ID.pack(node)
        cur = self.txn.cursor(db=self._db)
        children: list[int] = []
        if cur.set_range(prefix):
            while cur.key()[:8] == prefix:
                rec = cur.value()
                if rec[0:1] in (b"N", b"n"):
                    children.append(_ID.unpack(rec[-8:])[0])
                if not cur.delete():
                    break
        for child in children:
            self._drop_node(child)

    def write(self, path: Path, value: Any) -> None:
        """Replace the value at ``path`` with ``value`` (stored form; ``None`` deletes)."""
        if not path:
            self._drop_node(ROOT_ID)
            if value is not None:
                if not isinstance(value, dict):
                    raise ElkynError("the root holds an object; write a key under it")
                for k, v in value.items():
                    self._put(ROOT_ID, k, v)
            return
        if value is None:
            self._delete(path)
            return
        parent = ROOT_ID
        for key in path[:-1]:
            rec = self._get(parent, key)
            if rec is None or rec.node is None:  # missing, or a leaf that becomes an object
                node = self._new_id()
                self.txn.put(_child_key(parent, key), _node(key, node), db=self._db)
                parent = node
            else:
                parent = rec.node
        old = self._get(parent, path[-1])
        if old is not None and old.node is not None:
            self._drop_node(old.node)
        self._put(parent, path[-1], value)

    def _delete(self, path: Path) -> None:
        chain: list[int] = [ROOT_ID]
        for key in path[:-1]:
            rec = self._get(chain[-1], key)
            if rec is None or rec.node is None:
                return  # nothing stored there
            chain.append(rec.node)
        old = self._get(chain[-1], path[-1])
        if old is None:
            return
        if old.node is not None:
            self._drop_node(old.node)
        self.txn.delete(_child_key(chain[-1], path[-1]), db=self._db)
        # Firebase keeps no empty objects: remove ancestors left without members.
        for depth in range(len(path) - 1, 0, -1):
            if self.has_members(chain[depth]):
                break
            self.txn.delete(_child_key(chain[depth - 1], path[depth - 1]), db=self._db)

    # ---- operation log ----
    def append_log(self, kind: str, path: Path, data: Any, ts: int) -> LogEntry:
        seq = self.env.last_seq(self.txn) + 1
        packed = LogEntry(seq, ts, kind, path, data).pack()
        entry = LogEntry(seq, ts, kind, path, data, len(packed))
        self.txn.put(_ID.pack(seq), packed, db=self.env.log)
        self.txn.put(_LAST_SEQ, _ID.pack(seq), db=self.env.meta)
        return entry

    def append_log_at(self, entry: LogEntry) -> None:
        """Record an entry under its own sequence number (a replica copying the primary's)."""
        self.txn.put(_ID.pack(entry.seq), entry.pack(), db=self.env.log)
        self.txn.put(_LAST_SEQ, _ID.pack(entry.seq), db=self.env.meta)

    def reset_log(self) -> None:
        """Drop every log entry (a replica starting over from another database's snapshot)."""
        self.txn.drop(self.env.log, delete=False)
        self.txn.put(_LAST_SEQ, _ID.pack(0), db=self.env.meta)

    def trim_log(self, keep: int) -> None:
        """Drop the oldest log entries so at most ``keep`` remain."""
        last = self.env.last_seq(self.txn)
        cut = _ID.pack(max(0, last - keep + 1))
        cur = self.txn.cursor(db=self.env.log)
        if cur.first():
            while bytes(cur.key()) < cut:
                if not cur.delete():
                    break

    def log_since(self, seq: int, limit: int = 10_000) -> list[LogEntry]:
        """Log entries after ``seq`` (oldest first), at most ``limit``."""
        cur = self.txn.cursor(db=self.env.log)
        out: list[LogEntry] = []
        if not cur.set_range(_ID.pack(seq + 1)):
            return out
        for raw_key, raw in cur:
            out.append(LogEntry.unpack(_ID.unpack(raw_key)[0], raw))
            if len(out) >= limit:
                break
        return out

    def first_log_seq(self) -> int:
        cur = self.txn.cursor(db=self.env.log)
        return _ID.unpack(cur.key())[0] if cur.first() else self.env.last_seq(self.txn) + 1
