"""Read-your-writes on a replica: wait until the follower applied a given commit of the primary.

A primary names each successful write's commit (``X-Elkyn-Seq``, ``X-Elkyn-Database``); a
replica that forwarded the write waits, bounded, until its own store holds that commit, so the
writer reading this replica next sees its write.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .storage import LogEntry
    from .store import Store

__all__ = [
    "caught_up",
    "data_database",
    "followed_database",
    "wait_caught_up",
    "wait_caught_up_sync",
]

_FOLLOWED = b"followed_database_id"
"""The store's meta key holding the id of the primary database its data came from."""


def followed_database(store: Store) -> str:
    """The id of the primary database this replica's data came from ("" before the first)."""
    with store.env.read() as txn:
        raw = txn.get(_FOLLOWED, db=store.env.meta)
    return bytes(raw).decode() if raw is not None else ""


def data_database(store: Store) -> str:
    """The id of the primary database the store's data came from (its own once promoted, or
    never a replica): what an election ranks servers by."""
    return followed_database(store) or store.database_id


def caught_up(store: Store, database: str, seq: int) -> bool:
    """Whether ``store`` follows ``database`` and has applied its commit ``seq``."""
    return followed_database(store) == database and store.last_seq() >= seq


async def wait_caught_up(store: Store, database: str, seq: int, timeout: float) -> bool:
    """Wait (at most ``timeout`` s, without blocking the loop) for :func:`caught_up`."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def on_commit(_: list[LogEntry]) -> None:  # on the writer's thread
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(woken.set)

    remove = store.on_commit(on_commit)  # before the first look: no commit slips by
    deadline = time.monotonic() + timeout
    try:
        while True:
            woken.clear()  # before the look: a commit after it sets it again
            if caught_up(store, database, seq):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), remaining)
    finally:
        remove()


def wait_caught_up_sync(store: Store, database: str, seq: int, timeout: float) -> bool:
    """:func:`wait_caught_up` for threads (the plugins' forwarding writer)."""
    woken = threading.Event()
    remove = store.on_commit(lambda _: woken.set())
    deadline = time.monotonic() + timeout
    try:
        while True:
            woken.clear()  # before the look: a commit after it sets it again
            if caught_up(store, database, seq):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            woken.wait(remaining)
    finally:
        remove()
