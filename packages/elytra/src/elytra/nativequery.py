"""A query handed to DuckDB whole before it is planned: the SQL route's short path.

A SELECT small enough to run as one task runs as DuckDB's own plan of its text
(``nativesql``), so translating it into our operators first is work thrown away unless
DuckDB declines. Profiled on three platforms at TPC-H SF 1, that translation
(``session.sql``) and the stages made of it took 10-60 ms of CPU a query in the gateway,
as much as DuckDB took to answer some of them. So the route first asks for a
:class:`NativeQuery`: the text parsed once, its tables the caller's datasets as they are,
every function one the planner also translates (:func:`allowed_functions`). The driver
runs it as one task with no plan (``Driver.submit_native``), its rows as DuckDB makes them;
where DuckDB declines there (out of its cap, a text it refuses, a name twice in its
result), the task says so and the route plans the query as before. What does not qualify
here is planned as before, at once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from platform_core.expr.nodes import AGGREGATE_ALIASES, AGGREGATES, FUNCTIONS

from .nativesql import NativeSql, Table, _functions, _placeheld, _source_of
from .sources import ArrowSource, Source

__all__ = ["NativeQuery", "allowed_functions", "native_query"]

_CONSTRUCTS = (
    "CAST(x AS INT)",
    "CASE WHEN x THEN 1 ELSE 2 END",
    "EXTRACT(year FROM x)",
    "substring(x FROM 1 FOR 2)",
)
"""SQL the planner translates that sqlglot parses into function nodes of their own."""


@functools.cache
def allowed_functions() -> frozenset[str]:
    """The functions (``nativesql._functions``' keys) a query run before it is planned may
    call: those of the expression language and its aggregates as sqlglot parses them, and
    CAST, CASE and EXTRACT. None reads a file, a setting or the environment; a query that
    calls anything else is planned first, as before."""
    keys: set[str] = set()
    for name in (*FUNCTIONS, *AGGREGATES, *AGGREGATE_ALIASES):
        for args in ("x", "x, y", "x, y, z"):
            try:
                keys |= _functions(sqlglot.parse_one(f"SELECT {name}({args})", read="duckdb"))
            except sqlglot.errors.SqlglotError:
                continue  # not a call of that many arguments
    for text in _CONSTRUCTS:
        keys |= _functions(sqlglot.parse_one(f"SELECT {text}", read="duckdb"))
    return frozenset(keys)


@dataclass(frozen=True)
class NativeQuery:
    """A query DuckDB runs whole from its text, before (and unless) it is planned."""

    native: NativeSql
    sources: Mapping[str, Source]
    """By source name (``NativeSql.tables``' second element): what each placeholder reads."""
    columns: Mapping[str, tuple[str, ...]]
    """By source name: the columns the text may read of it (a superset: each column name the
    text says), for the bytes a job reads (``Driver.whole_native``)."""


def native_query(text: str, tree: exp.Query, tables: Mapping[str, Table]) -> NativeQuery | None:
    """``text`` (``tree`` as ``sqlplan.parse_query`` parsed and checked it) as a
    :class:`NativeQuery` over ``tables`` (name -> the dataset's pipeline), or None when it
    must be planned first: a function outside :func:`allowed_functions`, a table that is not
    a file or lake source as it is, a CTE named like a table."""
    if not _functions(tree) <= allowed_functions():
        return None
    named = {k.lower(): v for k, v in tables.items()}
    sources: dict[str, Source] = {}
    by_table: dict[str, str | None] = {}
    for name, p in named.items():
        source = _source_of(p)
        by_table[name] = source
        if source is None:
            return None
        src = p.sources[source]
        if not isinstance(src, Source) or isinstance(src, ArrowSource) or src.partitions:
            return None  # held in this process, or cut into parts its user chose
        sources[source] = src
    native = _placeheld(tree, by_table)
    if native is None:
        return None
    said = _column_names(tree)
    columns = {
        s: tuple(c for c in src.schema.names if said is None or c.lower() in said)
        for s, src in sources.items()
    }
    return NativeQuery(native, sources, columns)


def _column_names(tree: exp.Query) -> set[str] | None:
    """Every column name the text says (lowercased), or None where a ``*`` selects all of a
    table's (not the one of ``count(*)``, nor one under EXISTS, whose columns are unread)."""
    for star in tree.find_all(exp.Star):
        if isinstance(star.parent, exp.Count) or star.find_ancestor(exp.Exists) is not None:
            continue
        return None
    return {c.name.lower() for c in tree.find_all(exp.Column) if c.name}
