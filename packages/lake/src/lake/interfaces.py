"""The narrow interfaces a node's parts are handed, so none imports the part it talks to.

``LakeNode`` builds its parts in dependency order (see :mod:`lake.node`) and gives each only
what it needs: the Flight server a :class:`FragmentRunner`, the coordinator a
:class:`PeerGroup` (and, per query, the engine as :class:`LocalQueries`), the query engine a
:class:`Distributor` and a repair callable. A plugin of a higher package (elytra) may hand the
node an :class:`SQLExecutor`, which the query route tries before the lake's own planner: the
lake never imports it. This module imports data types only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa

from .cluster.membership import Member
from .sql.readonly import Statement
from .storage.manifest import Manifest

__all__ = [
    "BatchStream",
    "DistributedResult",
    "Distributor",
    "FlightLink",
    "FragmentRunner",
    "GatherBound",
    "LocalQueries",
    "PeerGroup",
    "SQLAnswer",
    "SQLDeclined",
    "SQLExecutor",
    "SQLRun",
]


class BatchStream(Protocol):
    """A query's rows batch by batch (``lake.sql.engine.ResultStream``, its first batch
    already fetched when it is returned): ``next_batch()`` gives None at the end;
    ``close()`` stops the query and lets its sandbox go."""

    schema: pa.Schema

    def next_batch(self) -> pa.RecordBatch | None: ...

    def close(self) -> None: ...


class FragmentRunner(Protocol):
    """What the Flight server needs: verified chunk files and local SQL over them."""

    timeout: float

    def chunk_paths_for(self, shas: list[str], *, force: bool = False) -> list[Path]: ...

    def execute(
        self,
        sql: str,
        manifests: dict[str, Manifest],
        sources: dict[str, list[Path]],
        *,
        timeout: float | None,
        query_id: str,
        arrow_tables: dict[str, pa.Table] | None = None,
    ) -> pa.Table: ...

    def stream(
        self,
        sql: str,
        manifests: dict[str, Manifest],
        sources: dict[str, list[Path]],
        *,
        timeout: float | None,
        query_id: str,
        arrow_tables: dict[str, pa.Table] | None = None,
        cancelled: threading.Event | None = None,
    ) -> BatchStream: ...


class LocalQueries(FragmentRunner, Protocol):
    """What the coordinator needs of this node's engine: fragments plus a consistent snapshot."""

    def snapshot(self, tables: frozenset[str]) -> dict[str, Manifest]: ...


class PeerGroup(Protocol):
    """What the coordinator needs of the cluster: who is live, where a chunk is, a token."""

    @property
    def me_id(self) -> str: ...

    def live_ids(self) -> list[str]: ...

    def candidates(self, sha: str, origin: str = "") -> list[Member]: ...

    def token(self) -> str: ...

    def flight(self, addr: str, timeout: float) -> FlightLink:
        """A Flight client of the member at ``addr`` (its gossiped Flight address), over a
        connection kept between queries."""
        ...

    def forget_flight(self, addr: str) -> None:
        """Drop the kept connection to ``addr``: the member did not answer."""
        ...


class FlightLink(Protocol):
    """A Flight client of one member (``lake.cluster.flight.FlightPeer``); close it after use."""

    def fetch_chunk(self, sha: str) -> bytes: ...

    def fragment(
        self,
        sql: str,
        tables: dict[str, list[str]],
        timeout: float,
        take: Callable[[int], None] | None = None,
    ) -> pa.Table:
        """The fragment's rows over ``tables``' chunks there; ``take`` is called with each
        batch's bytes as it arrives (it raises to stop the transfer)."""
        ...

    def close(self) -> None: ...


@dataclass
class DistributedResult:
    """A query run across members: its table, the chunks read where, and what crossed the wire."""

    table: pa.Table
    reads: list[dict[str, Any]] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)
    plan: str = ""
    fragments: dict[str, str] = field(default_factory=dict)
    """Per dataset: the SQL each node ran over its chunks of it."""
    final: str = ""
    """The SQL the coordinator ran over what the nodes sent."""
    pushdown: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Gathered plans: per dataset, the columns and filter pushed to the nodes (and why not)."""

    def moved(self) -> dict[str, Any]:
        """What reached the coordinator, per dataset and in total: ``rows``, ``bytes`` (over
        the network from other nodes) and ``gathered_bytes`` (all it held: its own fragments'
        results too)."""
        per: dict[str, dict[str, int]] = {}
        for m in self.moves:
            d = per.setdefault(m["dataset"], {"rows": 0, "bytes": 0, "gathered_bytes": 0})
            d["rows"] += int(m["rows"])
            d["bytes"] += int(m["bytes"])
            d["gathered_bytes"] += int(m.get("gathered", m["bytes"]))
        total = {k: sum(d[k] for d in per.values()) for k in ("rows", "bytes", "gathered_bytes")}
        return {"datasets": dict(sorted(per.items())), **total}


class GatherBound(Protocol):
    """A bound an :class:`SQLExecutor` sets on the lake's rerun of a query it declined:
    at most ``limit`` bytes of rows gathered into the coordinator, and the error that says
    so once the rerun would gather more."""

    limit: int

    def exceeded(self, gathered: int) -> Exception: ...


class Distributor(Protocol):
    """What the query engine needs to run a SELECT across the members."""

    def has_peers(self) -> bool: ...

    def run(
        self,
        stmt: Statement,
        local: LocalQueries,
        *,
        timeout: float,
        query_id: str,
        bound: GatherBound | None = None,
    ) -> DistributedResult: ...


class SQLDeclined(Exception):
    """An :class:`SQLExecutor` will not run a statement; the lake's own planner runs it.

    ``str(exc)`` says why (the construct it does not plan, or what failed), for EXPLAIN.
    ``bound``: what the lake's rerun may gather into the coordinator, when the executor
    sets a tighter bound than the lake's own (its run failed, and the rerun must not take
    more memory than the run it replaces)."""

    def __init__(self, why: str, bound: GatherBound | None = None) -> None:
        super().__init__(why)
        self.bound = bound


class SQLAnswer(Protocol):
    """Rows an executor keeps outside memory (a file on disk), read batch by batch while the
    route streams them; ``close()`` lets them go once the stream ends, fails or is cut off."""

    schema: pa.Schema

    def batches(self) -> Iterator[pa.RecordBatch]: ...

    def close(self) -> None: ...


@dataclass
class SQLRun:
    """What an :class:`SQLExecutor` answered: the rows (for EXPLAIN, one row per task) and,
    for EXPLAIN, its plan as JSON (stages, tasks, joins; with ANALYZE what moved, and times).
    A SELECT's rows may come as ``answer`` instead of ``table``: streamed from disk, never
    held whole in the node's memory."""

    table: pa.Table | None
    plan: dict[str, Any] | None = None
    reads: list[dict[str, Any]] = field(default_factory=list)
    answer: SQLAnswer | None = None


class SQLExecutor(Protocol):
    """Another engine for the query route's SELECTs and EXPLAINs (elytra's stages, when its
    plugin runs beside the node). ``mode`` is ``run``, ``explain`` or ``analyze``. It raises
    :class:`SQLDeclined` for a statement it does not plan (the route then runs it on the lake's
    own planner), ``QueryTimeoutError`` once ``cancelled`` is set or ``timeout`` passes, and
    nothing it ran may outlive the call."""

    name: str

    def run_sql(
        self,
        sql: str,
        *,
        mode: Literal["run", "explain", "analyze"],
        user: str,
        timeout: float,
        query_id: str,
        cancelled: threading.Event,
    ) -> SQLRun: ...
