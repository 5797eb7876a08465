"""Group commit: one writer thread applies queued writes in one LMDB transaction per batch.

Each write runs in its own nested transaction, so a write that fails (bad data, a rule, an
ETag mismatch) is rolled back alone while the rest of the batch commits. A caller's future is
resolved only after the batch's commit returned, so every acknowledged write is durable (the
commit fsyncs unless the store was opened with ``sync=False``). When the map is full the batch
is retried after the map has grown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import lmdb

from .errors import NestedWriteError, StoreClosedError
from .events import Hub
from .storage import Environment, LogEntry, Tree

__all__ = ["Job", "Writer"]

log = logging.getLogger(__name__)

JobFn = Callable[[Tree, int], tuple[Any, list[LogEntry]]]
"""Applies one write in ``tree`` at time ``now_ms``; returns its result and its log entries."""


@dataclass
class Job:
    fn: JobFn
    future: Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    afuture: asyncio.Future[Any] | None = None

    def settle(self, ok: bool, value: Any) -> None:
        """Resolve a thread caller's future (async callers are resolved per loop, in bulk)."""
        if self.future is not None:
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)


@dataclass
class WriterStats:
    commits: int = 0
    writes: int = 0
    failed: int = 0
    grows: int = 0


class Writer:
    """The store's only writer: batches of up to ``max_batch`` writes per commit."""

    def __init__(
        self,
        env: Environment,
        hub: Hub,
        *,
        max_batch: int = 1024,
        log_size: int = 100_000,
        on_commit: Callable[[list[LogEntry]], None] | None = None,
    ) -> None:
        self.env = env
        self.hub = hub
        self.max_batch = max_batch
        self.log_size = log_size
        self.on_commit = on_commit
        self.stats = WriterStats()
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="elkyn-writer", daemon=True)
        self._thread.start()

    def _check_caller(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed; open it again to write")
        if threading.current_thread() is self._thread:
            # the job would wait for its own commit, which waits for this job: a deadlock
            raise NestedWriteError(
                "writes inside a transaction function are not allowed (it runs on the writer "
                "thread); return the new value instead, or write after the transaction"
            )

    def submit(self, fn: JobFn) -> Future[Any]:
        """Queue a write for a thread caller; the future resolves after its commit."""
        self._check_caller()
        future: Future[Any] = Future()
        self._queue.put(Job(fn, future=future))
        return future

    def submit_async(self, fn: JobFn) -> asyncio.Future[Any]:
        """Queue a write from a coroutine: one loop wake-up per batch, not one per write."""
        self._check_caller()
        loop = asyncio.get_running_loop()
        afuture = loop.create_future()
        self._queue.put(Job(fn, loop=loop, afuture=afuture))
        return afuture

    def close(self) -> None:
        """Finish the queued writes, then stop."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._commit(batch)

    def _commit(self, batch: list[Job]) -> None:
        while True:
            try:
                outcomes = self._apply(batch)
                break
            except lmdb.MapFullError:
                size = self.env.grow()
                self.stats.grows += 1
                log.info("LMDB map full: grew it to %d MiB", size >> 20)
            except Exception as exc:  # the commit itself failed: no write of the batch is acked
                log.exception("commit of %d writes failed", len(batch))
                self._settle(batch, [(False, exc, [])] * len(batch))
                return
        entries: list[LogEntry] = []
        for ok, _, job_entries in outcomes:
            if ok:
                entries.extend(job_entries)
        self._settle(batch, outcomes)
        self.stats.commits += 1
        self.stats.writes += sum(1 for ok, _, _ in outcomes if ok)
        self.stats.failed += sum(1 for ok, _, _ in outcomes if not ok)
        if entries:
            if self.on_commit is not None:
                self.on_commit(entries)
            self.hub.publish(entries)

    def _settle(self, batch: list[Job], outcomes: list[tuple[bool, Any, list[LogEntry]]]) -> None:
        per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, (ok, value, _) in zip(batch, outcomes, strict=True):
            if job.loop is not None and job.afuture is not None:
                per_loop.setdefault(job.loop, []).append((job.afuture, ok, value))
            else:
                job.settle(ok, value)
        for loop, items in per_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_resolve, items)

    def _apply(self, batch: list[Job]) -> list[tuple[bool, Any, list[LogEntry]]]:
        env = self.env.env
        outcomes: list[tuple[bool, Any, list[LogEntry]]] = []
        with self.env.gate.shared():
            if self.env.closed:
                raise StoreClosedError("the store is closed")
            txn = env.begin(write=True)
            try:
                for job in batch:
                    child = env.begin(write=True, parent=txn)
                    try:
                        value, job_entries = job.fn(Tree(self.env, child), _now_ms())
                    except lmdb.MapFullError:
                        child.abort()
                        raise
                    except Exception as exc:
                        child.abort()
                        outcomes.append((False, exc, []))
                    else:
                        child.commit()
                        outcomes.append((True, value, job_entries))
                if any(ok and e for ok, _, e in outcomes):
                    Tree(self.env, txn).trim_log(self.log_size)
                txn.commit()
            except BaseException:
                txn.abort()
                raise
        return outcomes


def _resolve(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for afuture, ok, value in items:
        if afuture.done():  # the caller went away (cancelled)
            continue
        if ok:
            afuture.set_result(value)
        else:
            afuture.set_exception(value)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
