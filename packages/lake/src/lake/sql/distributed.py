"""Distributed queries: plan over chunks, push fragments to replicas, finish in DuckDB.

Two plans, chosen from the statement's shape:

- **Partial aggregation** (one table, no joins, windows, subqueries or CTEs; aggregates are
  COUNT, SUM, MIN, MAX, AVG and one COUNT(DISTINCT x)): each node computes PARTIAL states for
  its chunks (``count``, ``sum``, ``min``, ``max``, AVG as ``sum`` + ``count``, and the
  distinct values of ``x`` as an extra group key), filtered by the WHERE clause; the
  coordinator merges them in a FINAL step (sum of counts, sum / count for AVG, count of
  distinct ``x``) with the original HAVING, ORDER BY and LIMIT (Trino's partial/final split).
  Only partial states cross the network, so a few-group GROUP BY moves very little.
- **Scan pushdown** (anything else: joins, windows, ...): each node returns only the columns
  the query names, filtered by the WHERE clause when the query reads one table; the
  coordinator registers the pulled Arrow tables and runs the original SQL in DuckDB.

Each chunk is read by the first live member of its rendezvous ranking (so reads spread over
the replicas); if a node fails mid-query its chunks are retried on their next replica.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl
import sqlglot
from sqlglot import exp

from platform_core import PlatformError, UnavailableError, new_id

from ..errors import QueryMemoryError, QueryTimeoutError, SQLError, TooLargeError
from ..interfaces import DistributedResult, GatherBound, LocalQueries, PeerGroup
from ..memo import PLAN_BYTES_PER_CHAR, TEXT_BYTES_PER_CHAR, Memo, fingerprint, sql_cost
from ..storage.chunks import ChunkStore
from ..storage.manifest import Manifest
from .gathered import GatherBudget, read_counted
from .pushdown import TableRead, needs_every_column, plan_reads
from .readonly import Statement

__all__ = ["Coordinator", "DistributedResult", "aggregate_plan"]

log = logging.getLogger(__name__)

PARTIALS = "__partials"


def _failure_kind(exc: BaseException) -> str:
    """Why a fragment failed: ``fatal`` (bad SQL, the query's timeout or cancel: no other node
    would do better), ``missing`` (not stored, corrupt, or any other answer from the node),
    or ``unreachable`` (no answer: skip the node for the rest of the query)."""
    if isinstance(exc, QueryTimeoutError):
        return "fatal"
    if isinstance(exc, PlatformError):
        return "fatal" if exc.status in (400, 413, 422) else "missing"
    if isinstance(exc, fl.FlightServerError):
        text = str(exc)
        if text.startswith(("bad_input:", "over_budget:", "timeout:")):
            return "fatal"
        return "missing"
    if isinstance(exc, fl.FlightTimedOutError | fl.FlightUnavailableError | OSError):
        return "unreachable"
    return "missing"


def _sql(node: exp.Expression) -> str:
    return node.sql(dialect="duckdb")


@dataclass(frozen=True)
class AggregatePlan:
    fragment: str
    final: str


def aggregate_plan(tree: exp.Expression, dataset: str) -> AggregatePlan | None:
    """Split a one-table aggregate query into a per-node fragment and a final query."""
    table = _single_table(tree)
    if table is None:
        return None
    final = tree.copy()
    aggs = list(final.find_all(exp.AggFunc))
    group = tree.args.get("group")
    keys = _plain_group_keys(group)
    if not aggs or keys is None:
        return None
    by_key = _key_partials(keys)
    by_agg = _aggregate_partials(aggs)
    if by_key is None or by_agg is None:
        return None
    frag_items, frag_group, key_cols, key_map = by_key
    agg_items, finals, distinct = by_agg
    frag_items += agg_items
    if distinct is not None:
        frag_items.append(f"{distinct} AS __d")
        frag_group.append(distinct)
    for node_, text in finals:
        node_.replace(sqlglot.parse_one(text, read="duckdb"))
    if key_map:
        for node in list(final.walk()):
            if isinstance(node, exp.Expression) and node is not final and _sql(node) in key_map:
                node.replace(exp.column(key_map[_sql(node)]))
    final.set("where", None)
    final.set(
        "from_",
        sqlglot.parse_one(
            f'SELECT 1 FROM {PARTIALS} AS "{table.alias_or_name}"', read="duckdb"
        ).args["from_"],
    )
    if group is not None:
        final.set("group", exp.Group(expressions=key_cols))
    where = tree.args.get("where")
    fragment = f"SELECT {', '.join(frag_items)} FROM {_sql(table)}"
    if where is not None:
        fragment += f" {_sql(where)}"
    if frag_group:
        fragment += f" GROUP BY {', '.join(frag_group)}"
    return AggregatePlan(fragment, _sql(final))


def _single_table(tree: exp.Expression) -> exp.Table | None:
    """The one table a query of the partial-aggregate shape reads; None for any other shape
    (joins, CTEs, DISTINCT, windows, subqueries, FILTER, QUALIFY, laterals, ``*``, a
    select-list alias used elsewhere), which the coordinator gathers instead."""
    if not isinstance(tree, exp.Select):
        return None
    if tree.args.get("joins") or _with(tree) is not None or tree.args.get("distinct"):
        return None
    if tree.find(exp.Window, exp.Subquery, exp.Filter) or tree.args.get("qualify"):
        return None  # FILTER (WHERE ...) would need its columns in the final query
    if needs_every_column(tree) or tree.args.get("laterals") or tree.find(exp.Lateral):
        return None
    aliases = {e.alias.lower() for e in tree.expressions if isinstance(e, exp.Alias)}
    if any(c.name.lower() in aliases and not c.table for c in tree.find_all(exp.Column)):
        return None  # a select-list alias used in WHERE/GROUP BY/HAVING: gather instead
    source = tree.args.get("from_")
    if source is None or not isinstance(source.this, exp.Table):
        return None
    return source.this


def _plain_group_keys(group: exp.Group | None) -> list[exp.Expression] | None:
    """The GROUP BY keys (none without GROUP BY); None for ALL, positions, ROLLUP, CUBE and
    GROUPING SETS, which the coordinator gathers instead."""
    keys = list(group.expressions) if group is not None else []
    if group is not None and (
        group.args.get("all")
        or group.args.get("rollup")
        or group.args.get("cube")
        or group.args.get("grouping_sets")
    ):
        return None
    if any(isinstance(k, exp.Literal | exp.Rollup | exp.Cube | exp.GroupingSets) for k in keys):
        return None  # positions and grouping sets: gather
    return keys


def _key_partials(
    keys: list[exp.Expression],
) -> tuple[list[str], list[str], list[exp.Expression], dict[str, str]] | None:
    """The fragment's select items and GROUP BY for the keys, the final query's group keys,
    and the final names of computed keys (``__k<i>``); None if a key holds an aggregate."""
    frag_items: list[str] = []
    frag_group: list[str] = []
    key_cols: list[exp.Expression] = []
    key_map: dict[str, str] = {}
    for i, k in enumerate(keys):
        if k.find(exp.AggFunc):
            return None
        if isinstance(k, exp.Column):
            frag_items.append(f'{_sql(k)} AS "{k.name}"')
            key_cols.append(k.copy())
        else:
            name = f"__k{i}"
            frag_items.append(f"{_sql(k)} AS {name}")
            key_map[_sql(k)] = name
            key_cols.append(exp.column(name))
        frag_group.append(_sql(k))
    return frag_items, frag_group, key_cols, key_map


def _aggregate_partials(
    aggs: list[exp.AggFunc],
) -> tuple[list[str], list[tuple[exp.Expression, str]], str | None] | None:
    """Each aggregate's PARTIAL states as fragment items (``__p<i>``) and its FINAL merge,
    and the one COUNT(DISTINCT x) argument (an extra key ``__d``); None for an aggregate with
    no partial form (nested, FILTER, DISTINCT other than one COUNT, anything but COUNT, SUM,
    MIN, MAX and AVG)."""
    frag_items: list[str] = []
    distinct: str | None = None
    finals: list[tuple[exp.Expression, str]] = []
    partial = 0
    for agg in aggs:
        if agg.find_ancestor(exp.AggFunc) is not None or any(
            isinstance(a, exp.AggFunc) for a in agg.find_all(exp.AggFunc) if a is not agg
        ):
            return None
        arg = agg.this
        if isinstance(agg, exp.Count) and isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1:
                return None
            d = _sql(arg.expressions[0])
            if distinct is not None and d != distinct:
                return None
            distinct = d
            finals.append((agg, "count(DISTINCT __d)"))
            continue
        if isinstance(arg, exp.Distinct) or agg.args.get("filter"):
            return None
        p = f"__p{partial}"
        partial += 1
        if isinstance(agg, exp.Count):
            inner = "*" if arg is None or isinstance(arg, exp.Star) else _sql(arg)
            frag_items.append(f"count({inner}) AS {p}")
            finals.append((agg, f"CAST(sum({p}) AS BIGINT)"))
        elif isinstance(agg, exp.Sum | exp.Min | exp.Max) and type(agg) in (
            exp.Sum,
            exp.Min,
            exp.Max,
        ):
            fn = {exp.Sum: "sum", exp.Min: "min", exp.Max: "max"}[type(agg)]
            frag_items.append(f"{fn}({_sql(arg)}) AS {p}")
            finals.append((agg, f"{fn}({p})"))
        elif type(agg) is exp.Avg:
            q = f"__p{partial}"
            partial += 1
            frag_items.append(f"sum({_sql(arg)}) AS {p}")
            frag_items.append(f"count({_sql(arg)}) AS {q}")
            finals.append((agg, f"CAST(sum({p}) AS DOUBLE) / nullif(sum({q}), 0)"))
        else:
            return None
    return frag_items, finals, distinct


def _with(tree: exp.Expression) -> Any:
    return tree.args.get("with_", tree.args.get("with"))


def _versions(manifests: dict[str, Manifest]) -> list[str]:
    """Each dataset's name and the commit of its version (its node, number and time), in name
    order: a committed version never changes, so its schema is fixed by these (O(1) each,
    where the schema's text would cost O(columns) on every query)."""
    out = []
    for name, m in sorted(manifests.items()):
        out += [name, str(m.version), m.origin, repr(m.created)]
    return out


class Coordinator:
    """Runs a gated SELECT across the members holding the chunks.

    It knows the cluster only as a :class:`~lake.interfaces.PeerGroup` and this node's chunks;
    the engine that asks hands itself in per query (``local``) for the fragments run here and
    the final step.
    """

    def __init__(
        self, peers: PeerGroup, chunks: ChunkStore, max_gather_bytes: int = 1 << 30
    ) -> None:
        self.peers = peers
        self.chunks = chunks
        self.max_gather_bytes = max_gather_bytes
        """What one query may gather into this process (``LAKE_MAX_GATHER_BYTES``)."""
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lake-coord")
        self.fail_hook: Any = None
        """Tests: called with (member id, fragment) before each remote fragment."""
        self._plans: Memo[AggregatePlan | None] = Memo(256, 8 << 20)
        """(gated SQL, dataset) -> its partial-aggregate plan (None: scan pushdown)."""
        self._names: Memo[list[str]] = Memo(256, 8 << 20)
        """(gated SQL, digest of each dataset's version) -> the result's column names."""
        self._reads: Memo[dict[str, TableRead]] = Memo(256, 8 << 20)
        """(gated SQL, digest of each dataset's version) -> each dataset's pushed read."""

    def has_peers(self) -> bool:
        """Whether any other member is live (else the engine runs the query alone)."""
        return len(self.peers.live_ids()) > 1

    def run(
        self,
        stmt: Statement,
        local: LocalQueries,
        *,
        timeout: float,
        query_id: str,
        bound: GatherBound | None = None,
    ) -> DistributedResult:
        """``stmt`` run across the members: each dataset's fragment where its chunks are,
        their rows gathered here (at most ``max_gather_bytes``, or ``bound``'s tighter limit,
        counted as they arrive), and the final step over them."""
        engine = local
        budget = GatherBudget(self.max_gather_bytes, query_id, bound)
        manifests = engine.snapshot(stmt.tables)
        assert stmt.tree is not None
        plan = None
        if len(manifests) == 1:
            (name,) = manifests
            tree = stmt.tree
            plan = self._plans.get(
                (stmt.sql, name),
                lambda: aggregate_plan(tree, name),
                lambda _: sql_cost(stmt.sql, PLAN_BYTES_PER_CHAR),
            )
        reads: list[dict[str, Any]] = []
        moves: list[dict[str, Any]] = []
        inputs: dict[str, pa.Table] = {}
        fragments: dict[str, str] = {}
        pushdown: dict[str, TableRead] = {}
        if plan is None:
            pushdown = self._pushdown(stmt, manifests)
        for name, manifest in manifests.items():
            fragment = plan.fragment if plan is not None else pushdown[name].fragment()
            fragments[name] = fragment
            inputs[name] = _Gather(
                self, local, name, manifest, fragment, timeout, reads, moves, budget
            ).run()
        if plan is not None:
            (name,) = manifests
            table = budget.read(
                engine.stream(
                    plan.final,
                    {},
                    {},
                    timeout=timeout,
                    query_id=query_id,
                    arrow_tables={PARTIALS: inputs[name]},
                )
            )
            names = self._output_names(local, stmt, manifests, timeout)
            table = table.rename_columns(names)
            kind = "partial aggregate"
        else:
            table = budget.read(  # the final step's rows are held here too
                engine.stream(
                    stmt.sql, {}, {}, timeout=timeout, query_id=query_id, arrow_tables=inputs
                )
            )
            kind = "scan pushdown"
        final = plan.final if plan is not None else stmt.sql
        return DistributedResult(
            table,
            reads,
            moves,
            kind,
            fragments,
            final,
            {n: r.explain() for n, r in pushdown.items()},
        )

    def _pushdown(self, stmt: Statement, manifests: dict[str, Manifest]) -> dict[str, TableRead]:
        """Each dataset's filter and columns (see :mod:`lake.sql.pushdown`), kept per SQL and
        dataset versions (a version fixes the schema the analysis used)."""
        assert stmt.tree is not None
        tree = stmt.tree
        schemas = {
            n: [f.name for f in m.schema.fields] if m.schema is not None else []
            for n, m in manifests.items()
        }
        return self._reads.get(
            (stmt.sql, fingerprint(_versions(manifests))),
            lambda: plan_reads(tree, schemas),
            lambda _: sql_cost(stmt.sql, PLAN_BYTES_PER_CHAR),
        )

    def _choose(
        self, sha: str, origin: str, tried: dict[str, set[str]], unreachable: set[str]
    ) -> Any:
        """The first candidate for ``sha`` not yet tried; this node only if it holds it."""
        me = self.peers.me_id
        later = None
        for m in self.peers.candidates(sha, origin):
            if m.id in unreachable or m.id in tried[sha]:
                continue
            if m.id == me and not self.chunks.has(sha):
                later = later or m  # listed here before replication: try the holders first
                continue
            return m
        return later

    def _output_names(
        self, local: LocalQueries, stmt: Statement, manifests: dict[str, Manifest], timeout: float
    ) -> list[str]:
        """The names DuckDB gives the original query's columns (the final query renames them):
        the query run over empty tables of the datasets' schemas, kept per SQL and dataset versions."""
        key = (stmt.sql, fingerprint(_versions(manifests)))
        return list(
            self._names.get(
                key,
                lambda: self._probe_names(local, stmt, manifests, timeout),
                lambda names: sql_cost(
                    stmt.sql, TEXT_BYTES_PER_CHAR, sum(sys.getsizeof(n) + 8 for n in names)
                ),
            )
        )

    def _probe_names(
        self, local: LocalQueries, stmt: Statement, manifests: dict[str, Manifest], timeout: float
    ) -> list[str]:
        empty = {
            n: (m.schema.to_arrow().empty_table() if m.schema is not None else pa.table({}))
            for n, m in manifests.items()
        }
        probe = local.execute(
            stmt.sql, {}, {}, timeout=timeout, query_id=f"names-{new_id()}", arrow_tables=empty
        )
        return list(probe.column_names)


class _Gather:
    """One dataset's fragment run over every chunk of its manifest, on nodes that hold them.

    Their rows count against the query's ``budget`` batch by batch as they arrive, from
    this node and from others: past it the query stops (a peer's transfer is cut off).
    Each chunk goes to the first of its candidates (replicas, origin, the rest) that may
    hold it; this node comes first only when it really holds the chunk (it may list a
    dataset before replication brings the chunks). A node that answers "not stored here"
    or "corrupt" is skipped for that chunk only; a node that cannot be reached is skipped
    for the rest of the query; a fragment refused as bad input fails the query (the same
    SQL fails everywhere) without counting against the node. Only when every candidate of
    a chunk has been tried does the query fail. Chunks whose node failed are read again in
    the next round, until none is left or the query's timeout has passed.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        local: LocalQueries,
        name: str,
        manifest: Manifest,
        fragment: str,
        timeout: float,
        reads: list[dict[str, Any]],
        moves: list[dict[str, Any]],
        budget: GatherBudget,
    ) -> None:
        self.coordinator = coordinator
        self.budget = budget
        self.peers = coordinator.peers
        self.me = coordinator.peers.me_id
        self.local = local
        self.name = name
        self.manifest = manifest
        self.fragment = fragment
        self.timeout = timeout
        self.reads = reads
        self.moves = moves
        self.unreachable: set[str] = set()
        self.tried: dict[str, set[str]] = defaultdict(set)
        self.parts: list[pa.Table] = []
        self.lock = threading.Lock()

    def run(self) -> pa.Table:
        """Rounds until every chunk was read; the fragment's parts as one table."""
        pending = list(self.manifest.chunks)
        attempt = 0
        deadline = time.monotonic() + self.timeout
        while pending:
            attempt += 1
            if attempt > 1 and time.monotonic() > deadline:
                raise QueryTimeoutError(
                    f"reading {self.name!r} took longer than the query's timeout of "
                    f"{self.timeout:g} s (replicas were tried one after another)"
                )
            assignment = self._assign(pending)
            failed: list[Any] = []
            futures = [
                self.coordinator._pool.submit(self._run_on, member, refs, attempt, failed)
                for member, refs in assignment.values()
            ]
            errors = []
            for f in futures:
                try:
                    f.result()
                except Exception as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
            pending = failed
        if not self.parts:
            self.parts.append(self._empty())
        return pa.concat_tables(self.parts, promote_options="permissive")

    def _assign(self, pending: list[Any]) -> dict[str, tuple[Any, list[Any]]]:
        """Member id -> (the member, the chunks it reads this round)."""
        assignment: dict[str, tuple[Any, list[Any]]] = {}
        for ref in pending:
            choice = self.coordinator._choose(
                ref.sha256, self.manifest.origin, self.tried, self.unreachable
            )
            if choice is None:
                raise UnavailableError(
                    f"no live replica of chunk {ref.sha256[:12]} of {self.name!r} could be read "
                    f"(tried {sorted(self.tried[ref.sha256] | self.unreachable)}); retry once the "
                    "cluster has re-replicated it"
                )
            assignment.setdefault(choice.id, (choice, []))[1].append(ref)
        return assignment

    def _run_on(self, member: Any, refs: list[Any], attempt: int, failed: list[Any]) -> None:
        """The fragment over ``refs`` on ``member``; a failure that another node may not
        have puts the chunks on ``failed`` for the next round."""
        shas = [r.sha256 for r in refs]
        taken = 0

        def take(nbytes: int) -> None:
            nonlocal taken
            taken += nbytes
            self.budget.take(nbytes)

        try:
            result, moved = self._fragment_on(member, shas, take)
        except Exception as exc:
            # the transfer's rows are dropped and read again elsewhere: counted once, there
            self.budget.give_back(taken)
            self._failed(member, shas, refs, exc, failed)
            return
        with self.lock:
            self.parts.append(result)
            self.moves.append(
                {
                    "node": member.id,
                    "dataset": self.name,
                    "bytes": moved,
                    "gathered": result.nbytes,
                    "rows": result.num_rows,
                    "attempt": attempt,
                }
            )
            self.reads.extend(
                {
                    "node": member.id,
                    "dataset": self.name,
                    "chunk": r.sha256,
                    "bytes": r.bytes,
                    "rows": r.rows,
                    "attempt": attempt,
                }
                for r in refs
            )

    def _fragment_on(
        self, member: Any, shas: list[str], take: Callable[[int], None]
    ) -> tuple[pa.Table, int]:
        """The fragment's result over ``shas`` on ``member``, each batch's bytes counted by
        ``take`` as it arrives, and the bytes it moved here."""
        if member.id == self.me:
            paths = self.local.chunk_paths_for(shas)  # repairs a corrupt one
            stream = self.local.stream(
                self.fragment,
                {},
                {self.name: paths},
                timeout=self.timeout,
                query_id=f"frag-{new_id()}",
            )
            return read_counted(stream, take), 0  # produced here: nothing crossed the network
        if self.coordinator.fail_hook is not None:
            self.coordinator.fail_hook(member.id, self.fragment)
        peer = self.peers.flight(member.flight, self.timeout)
        try:
            result = peer.fragment(self.fragment, {self.name: shas}, self.timeout, take=take)
        finally:
            peer.close()
        return result, result.nbytes

    def _failed(
        self, member: Any, shas: list[str], refs: list[Any], exc: Exception, failed: list[Any]
    ) -> None:
        """Raise what fails the query (as a local run would); else remember whom the chunks
        were tried on, and the node as unreachable if it did not answer."""
        if self.budget.over is not None:  # past the query's bound: no node would gather less
            raise self.budget.over
        kind = _failure_kind(exc)
        if kind == "fatal" and isinstance(exc, fl.FlightServerError):
            # a peer refused the fragment: the same error a local run gives
            text = str(exc).split(". Detail:", 1)[0]
            if text.startswith("over_budget:"):
                why = text.split(":", 1)[1].strip()
                over = QueryMemoryError if "memory" in why else TooLargeError
                raise over(why) from None
            raise SQLError(text) from None
        if kind == "fatal":
            raise exc  # the fragment itself is wrong, or the query is over
        log.warning(
            "fragment on %s failed (%s: %s); reading its chunks elsewhere", member.id, kind, exc
        )
        if kind == "unreachable" and member.id != self.me:
            self.peers.forget_flight(member.flight)
        with self.lock:
            for sha in shas:
                self.tried[sha].add(member.id)
            if kind == "unreachable":
                self.unreachable.add(member.id)
            failed.extend(refs)

    def _empty(self) -> pa.Table:
        """The fragment over an empty table of the dataset's schema (a dataset of no chunks)."""
        m = self.manifest
        schema = m.schema.to_arrow() if m.schema is not None else pa.schema([])
        return self.local.execute(
            self.fragment,
            {},
            {},
            timeout=self.timeout,
            query_id=f"frag-{new_id()}",
            arrow_tables={self.name: schema.empty_table()},
        )
