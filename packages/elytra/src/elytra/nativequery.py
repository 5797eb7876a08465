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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from platform_core.expr.nodes import AGGREGATE_ALIASES, AGGREGATES, FUNCTIONS

from .nativesql import NativeSql, Table, called_functions, placeheld, source_of
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
    """The functions (``nativesql.called_functions``' keys) a query run before it is planned may
    call: those of the expression language and its aggregates as sqlglot parses them, and
    CAST, CASE and EXTRACT. None reads a file, a setting or the environment; a query that
    calls anything else is planned first, as before."""
    keys: set[str] = set()
    for name in (*FUNCTIONS, *AGGREGATES, *AGGREGATE_ALIASES):
        for args in ("x", "x, y", "x, y, z"):
            try:
                keys |= called_functions(sqlglot.parse_one(f"SELECT {name}({args})", read="duckdb"))
            except sqlglot.errors.SqlglotError:
                continue  # not a call of that many arguments
    for text in _CONSTRUCTS:
        keys |= called_functions(sqlglot.parse_one(f"SELECT {text}", read="duckdb"))
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
    if not called_functions(tree) <= allowed_functions():
        return None
    named = {k.lower(): v for k, v in tables.items()}
    sources: dict[str, Source] = {}
    by_table: dict[str, str | None] = {}
    for name, p in named.items():
        source = source_of(p)
        by_table[name] = source
        if source is None:
            return None
        src = p.sources[source]
        if not isinstance(src, Source) or isinstance(src, ArrowSource) or src.partitions:
            return None  # held in this process, or cut into parts its user chose
        sources[source] = src
    if _named_by_its_text(tree):
        return None
    native = placeheld(tree, by_table)
    if native is None:
        return None
    known = {c.lower() for src in sources.values() for c in src.schema.names}
    said = _column_names(tree, known)
    columns = {
        s: tuple(c for c in src.schema.names if said is None or c.lower() in said)
        for s, src in sources.items()
    }
    return NativeQuery(native, sources, columns)


def _named_by_its_text(tree: exp.Query) -> bool:
    """Whether DuckDB would name or type a result column by text the task does not run as
    written. The task runs sqlglot's rendering of the tree (what was checked), not the
    caller's text: an unnamed expression is named after its text (``k::VARCHAR`` rendered
    ``CAST(k AS TEXT)``, ``len(s)`` as ``length(s)``, a subquery with the chunks' paths in
    place of its table: found from outside). (A number written ``.5`` is typed as DuckDB
    types it before it is parsed: ``sqlplan._points_typed``.)
    Such a query is planned, named as DuckDB names the caller's text (``sqlplan``)."""
    if any(
        not isinstance(item, exp.Alias) and item.find(exp.Query) is not None
        for select in tree.find_all(exp.Select)
        for item in select.expressions
    ):
        return True
    naming = list(_naming_selects(tree))
    if any(_star(i) for s in naming for i in s.expressions):
        # a star passes on a derived table's or CTE's names: every one of them names
        naming += [
            d.this
            for d in tree.find_all(exp.Subquery, exp.CTE)
            if isinstance(d.this, exp.Select) and not _renamed(d)
        ]
    return any(
        not isinstance(item, exp.Alias | exp.Column | exp.Star)
        for select in naming
        for item in select.expressions
    )


def _star(item: exp.Expr) -> bool:
    """Whether a select item is ``*`` or ``t.*`` (not ``count(*)``'s)."""
    return isinstance(item, exp.Star) or (
        isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
    )


def _naming_selects(q: exp.Expr) -> Iterator[exp.Select]:
    """The SELECTs whose items name the result: the query's, or each branch of a UNION."""
    if isinstance(q, exp.SetOperation):
        yield from _naming_selects(q.left)
        yield from _naming_selects(q.right)
    elif isinstance(q, exp.Subquery):
        yield from _naming_selects(q.this)
    elif isinstance(q, exp.Select):
        yield q


def _renamed(d: exp.Expr) -> bool:
    """Whether a derived table or CTE names its columns itself (``AS s(a, b)``)."""
    alias = d.args.get("alias")
    return isinstance(alias, exp.TableAlias) and bool(alias.columns)


def _column_names(tree: exp.Query, known: set[str]) -> set[str] | None:
    """Every column name the text says (lowercased), or None where it may read columns it
    does not name, all of whose tables' columns are then weighed: a ``*`` (not the one of
    ``count(*)``, nor one under EXISTS, whose columns are unread), ``COLUMNS(...)``, a
    positional ``#n``, a NATURAL join, and a name that is no column of ``known`` nor an
    alias of the text (a table read as a row, ``SELECT t1 FROM t1``; a struct's field)."""
    for star in tree.find_all(exp.Star):
        if isinstance(star.parent, exp.Count) or star.find_ancestor(exp.Exists) is not None:
            continue
        return None
    if tree.find(exp.Columns, exp.PositionalColumn) is not None:
        return None
    if any(j.method.upper() == "NATURAL" for j in tree.find_all(exp.Join)):
        return None
    if any(isinstance(ta.parent, exp.Table) and ta.columns for ta in tree.find_all(exp.TableAlias)):
        return None  # a table's columns renamed (``FROM w AS t(a, b)``): a name is any of them
    tables = {n.lower() for t in tree.find_all(exp.Table) for n in (t.name, t.alias) if n} | {
        a.alias.lower() for a in tree.find_all(exp.CTE, exp.Subquery) if a.alias
    }
    aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)} | {
        c.name.lower() for ta in tree.find_all(exp.TableAlias) for c in ta.columns
    }
    said: set[str] = set()
    for c in tree.find_all(exp.Column):
        name = c.name.lower()
        if name not in known and (name not in aliases or (name in tables and _own(c, name))):
            return None  # a name no column has, or a table's whole row: weigh it all
        if c.table and c.table.lower() not in tables:
            return None  # a struct's field (``s.f``): its column is the table part
        said.add(name)
    using = (i.name.lower() for j in tree.find_all(exp.Join) for i in j.args.get("using") or ())
    return said | set(using)


def _own(column: exp.Column, name: str) -> bool:
    """Whether ``column``'s own SELECT names an item ``name``: with a table of that name in
    the text, DuckDB may read it as that table's row rather than the alias."""
    select = column.find_ancestor(exp.Select)
    items = select.expressions if select is not None else []
    return name in {e.alias.lower() for e in items if isinstance(e, exp.Alias)}
