"""The expression language: one safe, typed, serialisable language for filters and columns.

Text is parsed with sqlglot into a typed AST of frozen dataclasses (never ``eval``ed),
type-checked against a ``Schema``, evaluated on Arrow with ``pyarrow.compute`` (DuckDB's
semantics), rendered to DuckDB SQL, and stored as canonical JSON for browser workers.
"""

from .errors import ExpressionError
from .nodes import (
    AGGREGATES,
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
    Unary,
    col,
    lit,
    walk,
)

__all__ = [
    "AGGREGATES",
    "FUNCTIONS",
    "Aggregate",
    "Between",
    "Binary",
    "Call",
    "Case",
    "Cast",
    "Column",
    "Expr",
    "ExpressionError",
    "InList",
    "IsNull",
    "Like",
    "Literal",
    "Unary",
    "col",
    "lit",
    "walk",
]
