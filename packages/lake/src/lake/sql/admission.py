"""Admission of queries: the query pool, a per-user limit, and cancelling queries still waiting.

Queries run on their own thread pool, so however many are running or waiting, routes that do
not query (the catalog, cancel, uploads, health) are never stuck behind them. A user may have
``per_user`` queries admitted (running or waiting for a pool thread) at once; one more is
refused with :class:`TooManyQueriesError` (429 with Retry-After) instead of queueing without
bound. Who admitted a query is kept, so only its submitter (or an admin) may cancel it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import QueryTimeoutError, TooManyQueriesError, UploadStateError

__all__ = ["QueryAdmission", "Ticket"]

T = TypeVar("T")


@dataclass
class Ticket:
    """One admitted query: its id, its submitter, and whether it was cancelled while waiting."""

    query_id: str
    user: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: bool = False


class QueryAdmission:
    """The query pool and the per-user count of admitted queries of one node."""

    def __init__(self, workers: int, per_user: int) -> None:
        self.workers = workers
        self.per_user = per_user
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lake-query")
        self._tickets: dict[str, Ticket] = {}
        self._lock = threading.Lock()

    def admit(self, user: str, query_id: str) -> Ticket:
        """A ticket for ``query_id``; refused past the user's limit or for an id in use."""
        with self._lock:
            if query_id in self._tickets:
                raise UploadStateError(
                    f"a query with id {query_id!r} is already running; pick another id"
                )
            mine = sum(1 for t in self._tickets.values() if t.user == user)
            if mine >= self.per_user:
                raise TooManyQueriesError(
                    f"{user!r} already has {mine} queries running or waiting, the limit per "
                    f"user (LAKE_MAX_QUERIES_PER_USER={self.per_user}); wait for one to finish "
                    "or cancel it (DELETE /api/lake/query/<id>), then retry",
                    retry_after=1,
                )
            ticket = Ticket(query_id, user)
            self._tickets[query_id] = ticket
            return ticket

    def release(self, ticket: Ticket) -> None:
        with self._lock:
            if self._tickets.get(ticket.query_id) is ticket:
                del self._tickets[ticket.query_id]

    def get(self, query_id: str) -> Ticket | None:
        with self._lock:
            return self._tickets.get(query_id)

    def cancel_waiting(self, query_id: str) -> bool:
        """Mark an admitted query cancelled; True if it had not yet started on the pool."""
        ticket = self.get(query_id)
        if ticket is None:
            return False
        ticket.cancelled.set()
        return not ticket.started

    def submit(self, ticket: Ticket, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the query pool, unless the ticket is cancelled before it starts."""

        def job() -> T:
            ticket.started = True
            if ticket.cancelled.is_set():
                raise QueryTimeoutError(
                    f"query {ticket.query_id} was cancelled", query_id=ticket.query_id
                )
            return fn()

        return self.pool.submit(job)

    def counts(self) -> dict[str, int]:
        """Admitted queries: started on the pool and waiting for it."""
        with self._lock:
            started = sum(1 for t in self._tickets.values() if t.started)
            return {"queries_running": started, "queries_waiting": len(self._tickets) - started}

    def close(self) -> None:
        with self._lock:
            for t in self._tickets.values():
                t.cancelled.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
