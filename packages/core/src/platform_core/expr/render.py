"""Render the AST as DuckDB SQL: fully parenthesised, quoted safely, literal types pinned.

Every identifier is double-quoted (``"`` doubled) and every string single-quoted (``'``
doubled), so no column name or string can end its quotes; function names and operators come
from fixed lists and are checked. Every composite node is parenthesised, so DuckDB's precedence
never changes the meaning. Literals are written so that DuckDB gives them the AST's type
(``1.5`` is DECIMAL in DuckDB, so f64 is written ``1.5e0``; an i64 that fits 32 bits is cast).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Final

from platform_core.types import FieldType

from .errors import ExpressionError
from .nodes import (
    AGGREGATES,
    BINARY_OPS,
    FUNCTIONS,
    Aggregate,
    Between,
    Binary,
    Call,
    Case,
    Cast,
    Column,
    Expr,
    InList,
    IsNull,
    Like,
    Literal,
    LiteralValue,
    Unary,
)
from .serde import MAX_DEPTH, depth

__all__ = ["default_name", "duckdb_type", "quote_identifier", "quote_string", "to_sql"]

_DUCKDB_TYPES: Final = {
    "u8": "UTINYINT",
    "u16": "USMALLINT",
    "u32": "UINTEGER",
    "i32": "INTEGER",
    "i64": "BIGINT",
    "f32": "FLOAT",
    "f64": "DOUBLE",
    "bool8": "BOOLEAN",
    "utf8": "VARCHAR",
    "utf8_ref": "VARCHAR",
    "json": "JSON",
    "bytes": "BLOB",
    "i32_array": "INTEGER[]",
    "f32_array": "FLOAT[]",
    "date": "DATE",
}
_I32_RANGE: Final = range(-(2**31), 2**31)
_I64_RANGE: Final = range(-(2**63), 2**63)

# Every DuckDB keyword (duckdb_keywords()): DuckDB quotes these in default column names.
_DUCKDB_KEYWORDS: Final = frozenset(
    """
    abort absolute access action add admin after aggregate all also alter always analyse analyze
    and anti any approx array as asc asof assertion assignment asymmetric at attach attribute
    authorization backward before begin between bigint binary bit boolean both by cache call
    called cascade cascaded case cast catalog centuries century chain char character
    characteristics check checkpoint class close cluster coalesce collate collation column
    columns comment comments commit committed compression concurrently configuration conflict
    connect connection constraint constraints content continue conversion copy cost create cross
    csv cube current cursor cycle data database day days deallocate dec decade decades decimal
    declare default defaults deferrable deferred definer delete delimiter delimiters depends desc
    describe destroy detach dictionary disable discard disconnect distance distinct do document
    domain double drop each else enable encoding encrypted end enum error escape event exact
    except exclude excluding exclusive execute exists explain export export_state extension
    extensions external extract false family fetch filter first float following for force
    foreign forward freeze from full function functions generated glob global grant granted
    group grouping grouping_id groups handler having header hold hour hours identity if ignore
    ilike immediate immutable implicit import in include including increment index indexes
    inherit inherits initially inline inner inout input insensitive insert install instead int
    integer intersect interval into invoker is isnull isolation join json key label lambda
    language large last lateral leading leakproof left level like limit listen load local
    location lock locked logged macro map mapping match matched materialized maxvalue merge
    method microsecond microseconds millennia millennium millisecond milliseconds minute minutes
    minvalue mode month months move name names national natural nchar nearest new next no none
    not nothing notify notnull nowait null nullif nulls numeric object of off offset oids old on
    only operator option options or order ordinality others out outer over overlaps overlay
    overriding owned owner parallel parser partial partition partitioned passing password
    percent persistent pivot pivot_longer pivot_wider placing plans policy position positional
    pragma preceding precision prepare prepared preserve primary prior privileges procedural
    procedure program publication qualify quarter quarters quote range read real reassign
    recheck recursive ref references referencing refresh register reindex relative release
    rename repeatable replace replica reset resource resources respect restart restrict
    returning returns revoke right role rollback rollup row rows rule sample savepoint schema
    schemas scope scroll search second seconds secret secure security select semi sequence
    sequences serializable server session set setof sets share show similar similarity simple
    skip smallint snapshot some sorted source sql stable standalone start statement statistics
    stdin stdout storage stored strict strip struct subscription substring summarize symmetric
    sysid system table tables tablesample tablespace target temp template temporary text then
    ties time timestamp to trailing transaction transform treat trigger trim true truncate
    trusted try_cast tuple type types unbounded uncommitted unencrypted union unique unknown
    unlisten unlogged unpack unpivot until update use user using vacuum valid validate validator
    value values varchar variable variadic varying verbose version view views virtual volatile
    week weeks when where whitespace window with within without work wrapper write xml
    xmlattributes xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot
    xmlserialize xmltable year years yes zone
    """.split()  # noqa: SIM905 (a word list reads better than 508 quoted strings)
)
_PLAIN_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote_identifier(name: str) -> str:
    """``name`` as a DuckDB identifier: always double-quoted, inner quotes doubled (NUL refused)."""
    if not isinstance(name, str) or not name:
        raise ExpressionError(f"a column name is a non-empty string, got {name!r}")
    if "\x00" in name:  # DuckDB reads Arrow column names as C strings: it would see "a", not "a\0b"
        raise ExpressionError(
            f"column name {name!r} contains a NUL character, which DuckDB cannot read from Arrow "
            "data; rename the column"
        )
    return '"' + name.replace('"', '""') + '"'


def quote_string(value: str) -> str:
    """``value`` as a DuckDB string literal: single-quoted, inner quotes doubled.

    DuckDB reads backslashes in '...' literally, so nothing else needs escaping.
    """
    return "'" + value.replace("'", "''") + "'"


def duckdb_type(ftype: FieldType) -> str:
    """The DuckDB type that holds ``ftype`` (every timestamp with a zone is TIMESTAMPTZ)."""
    if ftype.kind == "timestamp":
        return "TIMESTAMP" if ftype.tz is None else "TIMESTAMPTZ"
    if ftype.kind == "decimal":
        return f"DECIMAL({ftype.precision}, {ftype.scale})"
    return _DUCKDB_TYPES[ftype.kind]


def to_sql(expr: Expr) -> str:
    """DuckDB SQL for ``expr`` that DuckDB evaluates with the AST's types and meaning."""
    if not isinstance(expr, Expr):
        raise ExpressionError(f"to_sql takes an expression node, got {type(expr).__name__}")
    levels = depth(expr)
    if levels > MAX_DEPTH:
        raise ExpressionError(
            f"expression nests {levels} levels deep; at most {MAX_DEPTH} are allowed"
        )
    return _sql(expr)


def default_name(expr: Expr) -> str:
    """The output column name for ``expr``: DuckDB's name for a column or an aggregate of one
    (``sum(x)``, ``count_star()``, ``count(DISTINCT "from")``), else the rendered SQL."""
    match expr:
        case Column(name=name):
            return name
        case Aggregate(name=name, arg=None):
            return "count_star()" if name == "count" else to_sql(expr)
        case Aggregate(name=name, arg=Column(name=column), distinct=distinct, extra_args=()):
            shown = (
                column
                if _PLAIN_NAME.fullmatch(column) and column.lower() not in _DUCKDB_KEYWORDS
                else quote_identifier(column)
            )
            return f"{name}({'DISTINCT ' if distinct else ''}{shown})"
    return to_sql(expr)


def _sql(e: Expr) -> str:
    match e:
        case Literal(value=value, type=ftype):
            return _literal(value, ftype)[0]
        case Column(name=name):
            return quote_identifier(name)
        case Unary(op=op, operand=x):
            if op == "neg":
                return f"(- {_negated_operand(x)})"
            if op == "not":
                return f"(NOT {_sql(x)})"
            raise ExpressionError(f"unknown unary operator {op!r}")
        case Binary(op=op, left=a, right=b):
            if op not in BINARY_OPS:
                raise ExpressionError(f"unknown binary operator {op!r}")
            return f"({_sql(a)} {op.upper()} {_sql(b)})"
        case IsNull(operand=x, negated=negated):
            return f"({_sql(x)} IS {'NOT ' if negated else ''}NULL)"
        case InList(operand=x, items=items, negated=negated):
            if not items:
                raise ExpressionError("IN needs at least one value")
            listed = ", ".join(_sql(item) for item in items)
            return f"({_sql(x)} {'NOT ' if negated else ''}IN ({listed}))"
        case Between(operand=x, low=low, high=high, negated=negated):
            return f"({_sql(x)} {'NOT ' if negated else ''}BETWEEN {_sql(low)} AND {_sql(high)})"
        case Like(operand=x, pattern=p, escape=esc, negated=negated, case_insensitive=ci):
            keyword = ("NOT " if negated else "") + ("ILIKE" if ci else "LIKE")
            if esc is None:
                return f"({_sql(x)} {keyword} {_sql(p)})"
            if not isinstance(esc, str) or len(esc) != 1:
                raise ExpressionError(f"a LIKE escape is one character, got {esc!r}")
            return f"({_sql(x)} {keyword} {_sql(p)} ESCAPE {quote_string(esc)})"
        case Case(whens=whens, otherwise=other):
            if not whens:
                raise ExpressionError("CASE needs at least one WHEN ... THEN ...")
            parts = [f"WHEN {_sql(c)} THEN {_sql(v)}" for c, v in whens]
            if other is not None:
                parts.append(f"ELSE {_sql(other)}")
            return f"(CASE {' '.join(parts)} END)"
        case Cast(operand=x, to=to):
            return f"CAST({_sql(x)} AS {duckdb_type(to)})"
        case Call(name=name, args=args):
            if name not in FUNCTIONS:
                raise ExpressionError(
                    f"unknown function {name!r} (functions: {', '.join(FUNCTIONS)})"
                )
            return f"{name}({', '.join(_sql(a) for a in args)})"
        case Aggregate(name=name, arg=arg, distinct=distinct, extra_args=extra):
            if name not in AGGREGATES:
                raise ExpressionError(
                    f"unknown aggregate {name!r} (aggregates: {', '.join(AGGREGATES)})"
                )
            if arg is None:
                if name != "count" or distinct:
                    raise ExpressionError(f"only count has no argument (count(*)), not {name}")
                return "count(*)"
            inner = ", ".join(_sql(a) for a in (arg, *extra))
            return f"{name}({'DISTINCT ' if distinct else ''}{inner})"
    raise ExpressionError(f"not an expression node: {e!r}")


def _negated_operand(x: Expr) -> str:
    """The operand of a unary minus. DuckDB folds ``-(constant)`` into a new constant typed by
    its value (``-(2147483648)`` is an INTEGER); cast where that would change the type."""
    if not isinstance(x, Literal):
        return _sql(x)
    text, natural = _literal(x.value, x.type)
    if not natural:
        return text
    if isinstance(x.value, int) and x.type is not None and _integer_type(-x.value) != x.type:
        return f"CAST({text} AS {duckdb_type(x.type)})"
    return text if text.startswith("(") else f"({text})"


def _integer_type(value: int) -> FieldType | None:
    if value in _I32_RANGE:
        return FieldType("i32")
    if value in _I64_RANGE:
        return FieldType("i64")
    return None


def _literal(value: LiteralValue, ftype: FieldType | None) -> tuple[str, bool]:
    """SQL for a literal, and whether it is a bare numeric constant (which DuckDB may fold)."""
    if value is None:
        return ("NULL" if ftype is None else f"CAST(NULL AS {duckdb_type(ftype)})"), False
    if ftype is None:
        raise ExpressionError(f"a literal without a type must be NULL, got {value!r}")
    natural: FieldType | None
    numeric = False
    if isinstance(value, bool):
        text, natural = ("TRUE" if value else "FALSE"), FieldType("bool8")
    elif isinstance(value, int):
        natural = _integer_type(value)
        if natural is None:
            raise ExpressionError(f"integer literal {value} does not fit in 64 bits")
        text, numeric = (str(value) if value >= 0 else f"({value})"), True
    elif isinstance(value, float):
        natural = FieldType("f64")
        if math.isfinite(value):
            text = repr(value)
            text, numeric = (text if "e" in text else text + "e0"), True
            if value < 0 or text.startswith("-"):
                text = f"({text})"
        else:
            text = f"CAST('{'nan' if math.isnan(value) else 'inf' if value > 0 else '-inf'}' AS DOUBLE)"
    elif isinstance(value, str):
        if ftype.kind == "bytes":  # CAST('..' AS BLOB) would read \x escapes: write the bytes
            return f"from_hex('{value.encode('utf-8').hex()}')", False
        text, natural = quote_string(value), FieldType("utf8")
    elif isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise ExpressionError("timestamp literal values are naive (UTC); drop the tzinfo")
        stamp = value.isoformat(sep=" ", timespec="microseconds")
        if ftype.kind == "timestamp" and ftype.tz is not None:
            # naive values are UTC: write the offset, so the session's TimeZone cannot shift it
            return f"CAST('{stamp}+00:00' AS TIMESTAMPTZ)", False
        text, natural = f"TIMESTAMP '{stamp}'", FieldType("timestamp")
    elif isinstance(value, dt.date):
        text, natural = f"DATE '{value.isoformat()}'", FieldType("date")
    else:
        raise ExpressionError(f"no SQL literal for a {type(value).__name__}: {value!r}")
    if duckdb_type(ftype) == duckdb_type(natural):
        return text, numeric
    return f"CAST({text} AS {duckdb_type(ftype)})", False
