"""Which engine answers a statement of the query route: a plugin's executor, else the lake's.

When a higher package's plugin has handed the node an :class:`~lake.interfaces.SQLExecutor`
(elytra's stages), SELECT and EXPLAIN go to it first. What it declines (a construct it does not
plan, SHOW TABLES, DESCRIBE, or a run that failed) runs on the lake's own planner, and an
EXPLAIN says which engine ran and why. Cancels and timeouts end either engine's run as the
same ``QueryTimeoutError``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

from platform_core import new_id

from ..errors import TIMEOUT_ADVICE, QueryTimeoutError
from ..interfaces import GatherBound, SQLDeclined, SQLExecutor, SQLRun
from .engine import QueryEngine, ResultStream

__all__ = ["open_query"]

_KIND_REASON = {
    "show_tables": "SHOW TABLES reads the catalog only",
    "describe": "DESCRIBE reads the catalog only",
}


def open_query(
    engine: QueryEngine,
    executor: SQLExecutor | None,
    sql: str,
    *,
    user: str,
    timeout: float,
    query_id: str | None = None,
    cancelled: threading.Event | None = None,
) -> ResultStream:
    """``sql``'s result stream from ``executor`` if it takes the statement, else from
    ``engine`` (the gate runs first either way, so refusals and their errors are the lake's)."""
    stmt = engine.gate(sql)
    query_id = query_id or new_id()
    cancelled = cancelled if cancelled is not None else threading.Event()
    started = time.perf_counter()
    bound: GatherBound | None = None
    if executor is None:
        why = "no other engine is installed beside this lake node"
    elif stmt.kind not in ("select", "explain"):
        why = _KIND_REASON.get(stmt.kind, f"{stmt.kind} is answered by the lake")
    else:
        mode: Literal["run", "explain", "analyze"] = (
            "run" if stmt.kind == "select" else "analyze" if stmt.analyze else "explain"
        )
        try:
            run = executor.run_sql(
                stmt.sql,
                mode=mode,
                user=user,
                timeout=timeout,
                query_id=query_id,
                cancelled=cancelled,
            )
        except SQLDeclined as exc:
            why, bound = f"{executor.name} declined: {exc}", exc.bound
        else:
            stream = _stream_of(run, query_id, stmt.kind, started)
            stream.engine, stream.plan = executor.name, run.plan
            return stream
    # the time left, once another engine has spent some of it (else the caller's own limit)
    left = (
        timeout
        if executor is None or stmt.kind not in ("select", "explain")
        else (timeout - (time.perf_counter() - started))
    )
    if left <= 0:  # the other engine spent the query's time
        raise QueryTimeoutError(
            f"query {query_id} ran past its timeout of {timeout:g} s{TIMEOUT_ADVICE}",
            query_id=query_id,
        )
    stream = engine.open(
        sql, timeout=left, query_id=query_id, cancelled=cancelled, gated=stmt, bound=bound
    )
    if stmt.kind == "explain":
        stream.plan = _lake_plan(stream.plan, why, executor)
    return stream


def _stream_of(run: SQLRun, query_id: str, kind: str, started: float) -> ResultStream:
    """The executor's rows as the route's stream: from its answer on disk batch by batch (let
    go when the stream ends, however it ends), else from its table in memory."""
    if run.answer is None:
        assert run.table is not None, "an SQLRun holds a table or an answer"
        return ResultStream.of_table(run.table, query_id, kind, started=started, reads=run.reads)
    answer = run.answer
    return ResultStream(
        answer.schema,
        answer.batches(),
        query_id,
        kind,
        started=started,
        reads=run.reads,
        on_finish=lambda _ok: answer.close(),
    )


def _lake_plan(
    plan: dict[str, Any] | None, why: str, executor: SQLExecutor | None
) -> dict[str, Any]:
    """The lake's EXPLAIN plan, naming its engine and why the other one did not run it."""
    out: dict[str, Any] = {"engine": "lake", "why": why}
    if executor is not None:
        out["declined_by"] = executor.name
    return {**(plan or {}), **out}
