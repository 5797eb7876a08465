"""A query run as one task, handed to DuckDB whole: its own text over the task's scans.

A SQL job small enough to run as one task (``Driver.whole``) gains nothing from being cut
into our operators: DuckDB plans the whole statement better than the tree sqlglot
decorrelated for stages (TPC-H q21's EXISTS as a delim join instead of two min/max
aggregates over all of lineitem: 1.39 s as our plan against 0.32 s as DuckDB's, at SF 1).
So ``session.sql`` keeps, beside the pipeline it plans, the query's text with each table
replaced by a placeholder (:class:`NativeSql`); the driver hands that task the text and,
per placeholder, the scan of the table's files, and the task runs it under its cap
(:func:`run_native`). The pipeline's plan stays the task's fallback (DuckDB refuses the
text or runs out of memory) and the plan of every job run as stages.

Only a query that planned is kept: every function in it is one the planner translates, and
every table one the caller gave (``sqlplan._only_named_tables``), so the text reads nothing
else. A pipeline grown from it by more steps has no text, and runs its plan.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
from sqlglot import exp

from emsqrt import plan as lp
from emsqrt.planning import (
    Fragment,
    KernelRun,
    kernel_fragment,
    plan_from_json,
    plan_to_json,
    run_fragment,
)
from lake.sql.readonly import cte_in_scope

__all__ = [
    "NativeSql",
    "called_functions",
    "native_of",
    "native_task",
    "placeheld",
    "run_native",
    "source_of",
]

_STEM = "__elytra_table_"


class Table(Protocol):
    """What a query's table is read as here: a pipeline's plan and sources (``Pipeline``,
    which names this module's :class:`NativeSql`: named here by what it has, no circle)."""

    @property
    def node(self) -> lp.Node: ...

    @property
    def sources(self) -> Mapping[str, Any]: ...

    """Each a ``sources.Source`` (by name only: ``task`` imports this module, and ``sources``
    leads back to ``task``)."""

    @property
    def columns(self) -> list[str]: ...


@dataclass(frozen=True)
class NativeSql:
    """DuckDB's text of a query whose tables are placeholders, and the source each reads."""

    text: str
    tables: tuple[tuple[str, str], ...]
    """(placeholder, source name) pairs: the source is the one a pipeline's ``Input`` names."""


def native_of(
    text: str, tree: exp.Query, tables: Mapping[str, Table], planned: exp.Expr
) -> NativeSql | None:
    """``tree`` (``text`` as parsed, before sqlglot's optimizer) with each table it reads as
    a placeholder, or None when a table it reads is not a source as it is (a pipeline with
    steps of its own: only its plan says what it holds), a CTE's name is also a table's, or
    it calls a function ``planned`` (the tree the planner checked) does not. Kept for the same text over the same sources (``_KEPT``): a query run again, as
    dashboards do, is not written out again."""
    if not called_functions(tree) <= called_functions(planned):
        return None  # a function sqlglot's optimizer dropped, which the planner never saw
    sources = {k.lower(): source_of(v) for k, v in tables.items()}
    key = (text, tuple(sorted(sources.items(), key=lambda kv: kv[0])))
    with _KEPT_LOCK:
        if key in _KEPT:
            _KEPT.move_to_end(key)
            return _KEPT[key]
    native = placeheld(tree, sources)
    with _KEPT_LOCK:
        _KEPT[key] = native
        while len(_KEPT) > _KEPT_MAX:
            _KEPT.popitem(last=False)
    return native


def _set_args(t: exp.Table) -> set[str]:
    """The parts of a table reference that are set (a name, an alias, a sample, ...)."""
    return {k for k, v in t.args.items() if v is not None and v != [] and v is not False}


_KEPT: OrderedDict[tuple[Any, ...], NativeSql | None] = OrderedDict()
_KEPT_MAX = 128
_KEPT_LOCK = threading.Lock()


def called_functions(tree: exp.Expr) -> set[str]:
    """The functions ``tree`` calls, by sqlglot's class and a named function's name. The text
    DuckDB runs is the parsed tree, the one the planner checked is the optimized tree: a
    function only in the first (a derived table's ORDER BY under a DISTINCT, an unused CTE,
    ``TRUE OR f()``) was never checked, and ran (a break-it pass read DuckDB's
    ``current_setting('temp_directory')`` out of a result's order this way)."""
    return {
        f"{type(f).__name__}:{f.name.lower() if isinstance(f, exp.Anonymous) else ''}"
        for f in tree.find_all(exp.Func)
        if not isinstance(f, _LOGIC)  # AND, EXISTS, =: what decorrelation rewrites, no function
    }


_LOGIC = (exp.Connector, exp.Predicate, exp.SubqueryPredicate, exp.Exists, exp.Not)


def placeheld(tree: exp.Query, sources: Mapping[str, str | None]) -> NativeSql | None:
    """:func:`native_of` made anew (``sources``: table name -> the source it reads as it is)."""
    ctes = {c.alias.lower() for c in tree.find_all(exp.CTE)}
    if ctes & set(sources):
        return None
    tree = tree.copy()
    token = secrets.token_hex(6)  # a placeholder no literal of the text can spell by chance
    placeholders: dict[str, str] = {}
    for t in list(tree.find_all(exp.Table)):
        name = t.name.lower()
        if name in ctes and cte_in_scope(t):
            continue
        if name in ctes:  # a CTE's name out of its scope: DuckDB would read a file or a
            return None  # catalog table by it (found from outside: a path as a CTE name)
        source = sources.get(name)
        if source is None or _set_args(t) - {"this", "alias"}:
            return None  # a table with more than its name (a sample, an UNPIVOT): not here
        placeholder = placeholders.setdefault(source, f"{_STEM}{token}_{len(placeholders)}")
        alias = t.args.get("alias") or exp.TableAlias(this=exp.to_identifier(t.name, quoted=True))
        t.replace(exp.Table(this=exp.to_identifier(placeholder, quoted=True), alias=alias))
    if not placeholders:
        return None
    pairs = tuple((p, s) for s, p in placeholders.items())
    return NativeSql(tree.sql(dialect="duckdb"), pairs)


def source_of(p: Table | None) -> str | None:
    """The source ``p`` reads as it is (its plan one ``Input`` of all the source's columns)."""
    if p is None or not isinstance(p.node, lp.Input) or p.node.name not in p.sources:
        return None
    source = p.sources[p.node.name]
    return p.node.name if list(source.schema.names) == list(p.columns) else None


def native_task(native: NativeSql, scans: Callable[[str], lp.Node]) -> str:
    """The JSON a task carries for ``native``: its text and, per placeholder, the plan JSON
    of the scan ``scans(source name)`` of the files the task reads (the chunk names in it
    resolved where it runs, as in its plan)."""
    tables = {p: json.loads(plan_to_json(scans(source))) for p, source in native.tables}
    return json.dumps({"query": native.text, "tables": tables}, separators=(",", ":"))


def run_native(
    sql: str,
    schema: pa.Schema | None,
    cap: int,
    spill_dir: str,
    threads: int,
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
) -> KernelRun | None:
    """Run a task's ``sql`` (:func:`native_task`) on DuckDB under ``cap``, its rows in
    ``schema`` (None: as DuckDB makes them, ``KernelRun.schema``); None when DuckDB cannot
    (it refuses the text, runs out of memory before a row was handed on, or its rows do not
    conform): the task then runs its plan, or has none and says so."""
    spec: dict[str, Any] = json.loads(sql)
    query = str(spec["query"])
    files: list[str] = []
    for placeholder, scan in spec["tables"].items():
        node = plan_from_json(json.dumps(scan), trusted=True)  # the job's driver made it
        fragment = kernel_fragment(node, cap)  # None: a cap below DuckDB's floor, or CSV
        if fragment is None or fragment.tables:  # only files are read here
            return None
        files += fragment.files
        quoted = exp.to_identifier(placeholder, quoted=True).sql(dialect="duckdb")
        query = query.replace(quoted, f"({fragment.sql})")
    statement = Fragment(query, schema, {}, files, ordered=True)
    return run_fragment(statement, cap, spill_dir, threads, on_batch)
