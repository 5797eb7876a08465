"""The embedded API: queries, push ids, transactions, watch (callback and async)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from elkyn import ABORT, Event, InvalidDataError, NestedWriteError, Query, Store

DINOS = {
    "bruhathkayosaurus": {"height": 25, "length": 44},
    "lambeosaurus": {"height": 2.1, "length": 12.5},
    "linhenykus": {"height": 0.6, "length": 1},
    "pterodactyl": {"height": 0.6, "length": 0.8},
    "stegosaurus": {"height": 4, "length": 9},
    "triceratops": {"height": 3, "length": 9},
}


def test_order_by_child_with_ranges_and_limits(memory_store: Store) -> None:
    memory_store.set("/dinos", DINOS)
    q = Query("height", start_at=3, has_start_at=True)
    assert set(memory_store.get("/dinos", query=q)) == {
        "bruhathkayosaurus",
        "stegosaurus",
        "triceratops",
    }
    q = Query("height", limit_to_first=2)  # ties broken by key
    assert list(memory_store.get("/dinos", query=q)) == ["linhenykus", "pterodactyl"]
    q = Query("length", limit_to_last=2)
    assert list(memory_store.get("/dinos", query=q)) == ["lambeosaurus", "bruhathkayosaurus"]
    q = Query("height", equal_to=0.6, has_equal_to=True)
    assert set(memory_store.get("/dinos", query=q)) == {"linhenykus", "pterodactyl"}


def test_order_by_key_and_value(memory_store: Store) -> None:
    memory_store.set("/s", {"b": 3, "a": "x", "10": True, "9": None, "c": 1, "2": False})
    keys = list(memory_store.get("/s", query=Query("$key")))
    assert keys == ["2", "10", "a", "b", "c"]  # integers numerically, first
    values = list(memory_store.get("/s", query=Query("$value")))
    assert values == ["2", "10", "c", "b", "a"]  # false < true < numbers < strings
    q = Query("$key", start_at="a", end_at="b", has_start_at=True, has_end_at=True)
    assert list(memory_store.get("/s", query=q)) == ["a", "b"]
    with pytest.raises(InvalidDataError, match="string bounds"):
        Query("$key", start_at=1, has_start_at=True)
    with pytest.raises(InvalidDataError, match="both"):
        Query("$key", limit_to_first=1, limit_to_last=1)


def test_query_needs_index_when_required(memory_store: Store) -> None:
    memory_store.set("/dinos", DINOS)
    with pytest.raises(InvalidDataError, match=r'Index not defined, add ".indexOn": "height"'):
        memory_store.get("/dinos", query=Query("height"), require_index=True)
    memory_store.set_rules({"rules": {"dinos": {".indexOn": ["height"]}}})
    assert memory_store.get("/dinos", query=Query("height"), require_index=True)


def test_push_ids_sort_chronologically(memory_store: Store) -> None:
    ids = [memory_store.push("/log", i) for i in range(50)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    assert all(len(i) == 20 for i in ids)
    assert list(memory_store.get("/log", query=Query("$key")).values()) == list(range(50))


def test_transactions_from_threads_lose_no_increment(memory_store: Store) -> None:
    def bump() -> None:
        for _ in range(25):
            assert memory_store.transaction("/count", lambda v: (v or 0) + 1).committed

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert memory_store.get("/count") == 150
    result = memory_store.transaction("/count", lambda v: ABORT)
    assert not result.committed
    assert result.value == 150


@pytest.mark.timeout(30)
def test_write_inside_a_transaction_function_is_refused_not_deadlocked(
    memory_store: Store,
) -> None:
    """A write from ``fn`` would wait for its own commit; it must fail fast instead."""
    db = memory_store

    async def awrite() -> None:
        await db.aset("/audit/last", "tx")

    writes: list[Callable[[], Any]] = [
        lambda: db.set("/audit/last", "tx"),
        lambda: db.update("/audit", {"last": "tx"}),
        lambda: db.push("/audit", "tx"),
        lambda: db.delete("/audit"),
        lambda: db.transaction("/audit/n", lambda v: 1),
        lambda: asyncio.run(awrite()),
    ]
    for write in writes:

        def fn(current: Any, write: Callable[[], Any] = write) -> Any:
            write()
            return (current or 0) + 1

        with pytest.raises(NestedWriteError, match="return the new value instead"):
            db.transaction("/counter", fn)
    assert db.get("/counter") is None  # nothing written by the failed transactions
    assert db.get("/audit") is None
    db.set("/x", 1)  # the writer is still alive
    assert db.transaction("/counter", lambda v: (v or 0) + 1).value == 1


def test_watch_callback_gets_snapshot_then_relative_events(memory_store: Store) -> None:
    memory_store.set("/rooms/a", {"topic": "x"})
    got: list[Event] = []
    done = threading.Event()

    def on(ev: Event) -> None:
        got.append(ev)
        if len(got) == 5:
            done.set()

    sub = memory_store.watch("/rooms", on)
    memory_store.set("/rooms/a/topic", "y")
    memory_store.update("/rooms", {"b/topic": "z", "a/n": 1})
    memory_store.set("/", {"rooms": {"c": 1}})  # above the watched path
    memory_store.set("/other", 1)  # elsewhere: not delivered
    memory_store.delete("/rooms/c")
    assert done.wait(5)
    sub.close()
    assert [(e.kind, e.path, e.data) for e in got] == [
        ("put", "/", {"a": {"topic": "x"}}),
        ("put", "/a/topic", "y"),
        ("patch", "/", {"b/topic": "z", "a/n": 1}),
        ("put", "/", {"c": 1}),
        ("put", "/c", None),
    ]


def test_async_watch_iterator() -> None:
    async def main() -> list[Any]:
        with Store(memory=True) as db:
            db.set("/jobs/1", {"state": "queued"})
            events = []
            stream = db.watch("/jobs/1")
            async for ev in stream:
                events.append((ev.kind, ev.path, ev.data))
                if len(events) == 1:
                    await db.aset("/jobs/1/state", "running")
                    await db.aupdate("/jobs/1", {"progress": 0.5})
                if len(events) == 3:
                    break
            await stream.aclose()
            return events

    assert asyncio.run(main()) == [
        ("put", "/", {"state": "queued"}),
        ("put", "/state", "running"),
        ("patch", "/", {"progress": 0.5}),
    ]
