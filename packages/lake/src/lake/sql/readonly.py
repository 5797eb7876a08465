"""Read-only SQL over one node's chunks: a sqlglot gate, then a sandboxed DuckDB connection.

Two independent locks keep queries read-only:

1. The gate (:func:`check_read_only`): the text is parsed with sqlglot's DuckDB dialect; only
   one statement is allowed, and only ``SELECT`` (with ``WITH``, set operations, windows,
   joins), ``SHOW TABLES``, ``DESCRIBE <dataset>`` and ``EXPLAIN <select>``. Every table a
   query names must be a dataset or a CTE visible in that table's own scope (a CTE in one
   branch does not cover a name in another): table functions (``read_csv(...)``), file
   paths, qualified names and everything else are refused with the position. Then DuckDB's
   own parser (``json_serialize_sql``) must agree: no table function, no path-like or
   unknown table name in its AST, so a parser difference cannot smuggle a file read in.
2. The sandbox (:func:`sandboxed_connection`): each query gets a fresh in-memory DuckDB whose
   file access is limited to this node's chunk and spill directories
   (``allowed_directories``), with ``enable_external_access = false``, extension autoloading
   off and ``lock_configuration = true``, so even SQL that slipped past the gate can neither
   read other files nor change the settings back.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from ..errors import LakeError, QueryMemoryError, SQLError

__all__ = [
    "Statement",
    "check_read_only",
    "cte_in_scope",
    "duckdb_error",
    "sandboxed_connection",
    "view_sql",
]

MAX_SQL_CHARS = 256 * 1024


@dataclass(frozen=True)
class Statement:
    """A statement that passed the gate."""

    kind: str
    """``select``, ``show_tables``, ``describe`` or ``explain``."""
    sql: str
    """The SQL to run (for ``explain``: the inner SELECT)."""
    tables: frozenset[str] = field(default_factory=frozenset)
    """Datasets the statement reads (for ``describe``: the one it describes)."""
    tree: exp.Expression | None = None
    analyze: bool = False
    """``EXPLAIN ANALYZE``: the plan with what running it moved and how long each part took."""


def _position(sql: str, offset: int) -> tuple[int, int]:
    line = sql.count("\n", 0, offset) + 1
    col = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, col


def _refuse(sql: str, message: str, node: exp.Expression | None = None) -> SQLError:
    """A refusal naming where the offending piece is (line and column, 1-based)."""
    offset: int | None = None
    if node is not None:
        meta = node.meta if hasattr(node, "meta") else {}
        if "start" in meta:
            offset = int(meta["start"])
        else:
            text = node.sql(dialect="duckdb")
            found = sql.lower().find(text.lower()[:20])
            offset = found if found >= 0 else None
    if offset is None:
        return SQLError(message)
    line, col = _position(sql, offset)
    return SQLError(f"{message} (line {line}, column {col})", line=line, column=col)


_EXPLAIN = re.compile(r"^\s*explain\s+(analyze\s+)?", re.I)
_ALLOWED = (exp.Select, exp.SetOperation, exp.Pivot)
_FORBIDDEN = (exp.DML, exp.DDL, exp.Command, exp.Pragma, exp.Copy)


def check_read_only(sql: str, datasets: Iterable[str]) -> Statement:
    """Parse ``sql`` and let it through only if it is one read-only statement over datasets."""
    try:
        return _check_read_only(sql, datasets)
    except RecursionError:  # sqlglot parses and walks recursively: a 500 before this
        raise SQLError(
            "the query is nested too deeply to be checked (parentheses, operators or "
            "subqueries inside one another, a few hundred levels): flatten it, for example "
            "with a CTE per level or an IN list"
        ) from None


def _check_read_only(sql: str, datasets: Iterable[str]) -> Statement:
    if not isinstance(sql, str) or not sql.strip():
        raise SQLError("empty query: send one SELECT, SHOW TABLES, DESCRIBE or EXPLAIN statement")
    if len(sql) > MAX_SQL_CHARS:
        raise SQLError(f"query of {len(sql)} characters is over the {MAX_SQL_CHARS} limit")
    known = set(datasets)
    m = _EXPLAIN.match(sql)
    if m:
        inner = _check_read_only(sql[m.end() :], known)
        if inner.kind != "select":
            raise SQLError("EXPLAIN takes a SELECT statement")
        return Statement("explain", inner.sql, inner.tables, inner.tree, bool(m.group(1)))
    try:
        trees = [t for t in sqlglot.parse(sql, read="duckdb") if t is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        line, col = int(err.get("line", 1)), int(err.get("col", 1))
        desc = err.get("description", str(exc))
        near = err.get("highlight", "")
        raise SQLError(
            f"syntax error at line {line}, column {col}: {desc}"
            + (f" near {near!r}" if near else ""),
            line=line,
            column=col,
        ) from None
    except TokenError as exc:
        raise SQLError(f"cannot read the query: {exc}") from None
    if len(trees) != 1:
        raise SQLError(f"send exactly one statement, not {len(trees)}")
    tree = trees[0]
    if isinstance(tree, exp.Show):
        if str(tree.name).upper() != "TABLES":
            raise SQLError(f"only SHOW TABLES is supported, not SHOW {tree.name}")
        return Statement("show_tables", sql)
    if isinstance(tree, exp.Describe):
        table = tree.this
        if not isinstance(table, exp.Table) or table.args.get("db") or not table.name:
            raise _refuse(sql, "DESCRIBE takes a dataset name", tree)
        return Statement("describe", sql, frozenset({_dataset(sql, table, known)}), tree)
    if not isinstance(tree, _ALLOWED):
        kind = tree.key.upper() if not isinstance(tree, exp.Command) else str(tree.this).upper()
        raise SQLError(
            f"{kind} is not allowed: queries are read-only (SELECT, WITH, SHOW TABLES, "
            "DESCRIBE, EXPLAIN)"
        )
    for node in tree.walk():
        if isinstance(node, exp.Func) and _func_name(node) in _HIDDEN_FUNCTIONS:
            raise SQLError(
                f"{_func_name(node)}() is not allowed: it shows the node's configuration"
            )
        if isinstance(node, _FORBIDDEN):
            assert isinstance(node, exp.Expression)
            raise _refuse(sql, f"{node.key.upper()} is not allowed in a read-only query", node)
    tables: set[str] = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise _refuse(
                sql,
                f"table function {table.this.sql(dialect='duckdb')[:60]!r} is not allowed: "
                "read datasets by name",
                table,
            )
        if table.args.get("db") or table.args.get("catalog"):
            raise _refuse(
                sql, f"qualified table name {table.sql()!r}: use the dataset's name", table
            )
        if cte_in_scope(table):
            continue
        tables.add(_dataset(sql, table, known))
    _check_with_duckdb_parser(_serializable(tree, sql), known)
    return Statement("select", sql, frozenset(tables), tree)


_PARSER = duckdb.connect()
_PARSER_LOCK = threading.Lock()
_PATHLIKE = re.compile(r"[/\\.:*?~]")


def _walk_refs(node: Any, ctes: set[str], refs: list[dict[str, Any]]) -> None:
    if isinstance(node, dict):
        if node.get("type") in ("BASE_TABLE", "TABLE_FUNCTION"):
            refs.append(node)
        elif node.get("type") == "SHOW_REF" and node.get("table_name"):
            # ``(SHOW name)`` / ``(DESCRIBE name)`` in a subquery names a table by string.
            refs.append({"type": "BASE_TABLE", "table_name": node["table_name"]})
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map", []) or []:
                if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                    ctes.add(entry["key"].lower())
        for value in node.values():
            _walk_refs(value, ctes, refs)
    elif isinstance(node, list):
        for value in node:
            _walk_refs(value, ctes, refs)


_HIDDEN_FUNCTIONS = frozenset(
    {"current_setting", "getvariable", "getenv", "current_database", "current_schema"}
)
"""Scalar functions that reveal the node's settings (its directories) or environment."""


def _func_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return str(node.sql_name()).lower()


def _serializable(tree: exp.Expression, sql: str) -> str:
    """What DuckDB's parser checks: the query, or for a PIVOT statement (which DuckDB will not
    serialize: its columns depend on the data) a SELECT of its pieces over its source."""
    if not isinstance(tree, exp.Pivot) or tree.this is None:
        return sql
    parts = [*tree.expressions, *(tree.args.get("using") or []), *(tree.args.get("group") or [])]
    items = ", ".join(p.sql(dialect="duckdb") for p in parts if isinstance(p, exp.Expression))
    source = tree.this.sql(dialect="duckdb")
    return f"SELECT {items or '*'} FROM {source}"


def _check_with_duckdb_parser(sql: str, known: set[str]) -> None:
    """A second, independent gate: DuckDB's own parser must see the same thing ours did.

    Whatever sqlglot and DuckDB might parse differently, DuckDB's AST (``json_serialize_sql``)
    must name no table function, no qualified table and no table that is neither a dataset
    nor a CTE of the query; a path-like name (``/``, ``.``, ``:`` ...) is refused outright,
    so no replacement scan can turn a name into a file read.
    """
    with _PARSER_LOCK:
        raw = _PARSER.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        tree = json.loads(raw[0]) if raw else {"error": True}

    if tree.get("error"):
        raise SQLError(f"DuckDB cannot parse the query: {tree.get('error_message', 'unknown')}")
    ctes: set[str] = set()
    refs: list[dict[str, Any]] = []
    _walk_refs(tree, ctes, refs)
    lowered = {k.lower() for k in known}
    for ref in refs:
        if ref.get("type") == "TABLE_FUNCTION":
            raise SQLError("table functions are not allowed: read datasets by name")
        name = str(ref.get("table_name") or "")
        if ref.get("schema_name") or ref.get("catalog_name"):
            raise SQLError(f"qualified table name {name!r}: use the dataset's name")
        if _PATHLIKE.search(name):
            raise SQLError(f"{name!r} is not a dataset name: files are not readable by path")
        if name.lower() not in lowered and name.lower() not in ctes:
            raise SQLError(f"no dataset named {name!r}")


def _cte_names(with_: exp.With, upto: int | None = None) -> set[str]:
    return {c.alias_or_name.lower() for c in with_.expressions[:upto]}


def cte_in_scope(table: exp.Table) -> bool:
    """Whether ``table`` names a CTE visible where it stands, as DuckDB binds names.

    A CTE is visible in the body of the query that owns its WITH, in the CTEs after it in the
    same WITH (and in itself with RECURSIVE), and in every subquery inside those; not in a
    sibling branch, an outer query or an earlier CTE. Names compare case-insensitively, as
    DuckDB's identifiers do. Collecting CTE names from the whole query instead let a CTE in
    one branch vouch for a file path read in another.
    """
    name = table.name.lower()
    node: Any = table
    while node.parent is not None:
        parent: Any = node.parent
        if isinstance(parent, exp.With) and isinstance(node, exp.CTE):
            index = next(i for i, c in enumerate(parent.expressions) if c is node)
            recursive = bool(parent.args.get("recursive"))
            if name in _cte_names(parent, index + 1 if recursive else index):
                return True
            if parent.parent is None:
                return False
            node = parent.parent
            continue  # the owning query's own CTEs are not visible inside its WITH
        with_ = (
            parent.args.get("with_", parent.args.get("with"))
            if isinstance(parent, exp.Query)
            else None
        )
        if isinstance(with_, exp.With) and node is not with_ and name in _cte_names(with_):
            return True
        node = parent
    return False


def _dataset(sql: str, table: exp.Table, known: set[str]) -> str:
    """The dataset ``table`` names, matched as DuckDB matches identifiers: case-insensitively.

    ``FROM Sales`` reads dataset ``sales``. Dataset names may differ only in case (``sales``
    and ``Sales``); then the exact spelling wins, and any other spelling is refused as
    ambiguous rather than read from whichever DuckDB would bind first.
    """
    name = table.name
    if name in known:
        return name
    matches = sorted(k for k in known if k.lower() == name.lower())
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise _refuse(
            sql,
            f"{name!r} matches datasets {', '.join(map(repr, matches))}, which differ only in "
            "case: spell the one you mean exactly",
            table,
        )
    raise _not_found(sql, name, known, table)


def _not_found(sql: str, name: str, known: set[str], node: exp.Expression) -> SQLError:
    shown = ", ".join(sorted(known)) or "none"
    return _refuse(sql, f"no dataset named {name!r} (datasets: {shown})", node)


def duckdb_error(sql: str, exc: duckdb.Error) -> LakeError:
    """A DuckDB error as an ``SQLError`` with line and column when DuckDB gave a caret, or a
    ``QueryMemoryError`` when the query ran out of memory (not the SQL's fault as such)."""
    text = str(exc)
    message = text.split("\n\nLINE")[0].strip()
    if isinstance(exc, duckdb.OutOfMemoryException):
        first = message.split("\n\n")[0].strip()
        return QueryMemoryError(
            f"the query needed more memory than this node allows ({first}); aggregate or "
            "filter more, add a LIMIT, or ask an admin for a larger LAKE_QUERY_MEMORY / "
            "PLATFORM_MEMORY_HEADROOM"
        )
    m = re.search(r"LINE (\d+): ([^\n]*)\n( *)\^", text)
    if m:
        line = int(m.group(1))
        col = len(m.group(3)) - len(f"LINE {m.group(1)}: ") + 1
        if col >= 1:
            return SQLError(f"{message} (line {line}, column {col})", line=line, column=col)
    # Binder errors from a relation carry no caret: locate the quoted name they complain about.
    quoted = re.search(r'"([^"\n]+)"', message)
    if quoted:
        hit = re.search(r"(?<![\w])" + re.escape(quoted.group(1)) + r"(?![\w])", sql)
        if hit:
            line, col = _position(sql, hit.start())
            return SQLError(f"{message} (line {line}, column {col})", line=line, column=col)
    return SQLError(message)


def sandboxed_connection(
    allowed: Iterable[Path], *, threads: int, memory_limit: str, temp_dir: Path
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can only read ``allowed`` directories, with settings locked."""
    conn = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "threads": threads,
            "memory_limit": memory_limit,
        },
    )
    temp_dir.mkdir(parents=True, exist_ok=True)
    dirs = [*(str(Path(p).resolve()) + "/" for p in allowed), str(temp_dir.resolve()) + "/"]
    quoted = ", ".join("'" + d.replace("'", "''") + "'" for d in dirs)
    conn.execute(f"SET temp_directory = '{str(temp_dir.resolve()).replace(chr(39), chr(39) * 2)}'")
    conn.execute(f"SET allowed_directories = [{quoted}]")
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")
    return conn


def view_sql(name: str, paths: list[Path]) -> str:
    """``CREATE VIEW`` over a dataset's chunk files (names were validated, paths are ours)."""
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
    return f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{files}])'
