"""The expression language: one safe, typed, serialisable language for filters and columns.

Text is parsed with sqlglot into a typed AST of frozen dataclasses (never ``eval``ed),
type-checked against a ``Schema``, evaluated on Arrow with ``pyarrow.compute`` (DuckDB's
semantics), rendered to DuckDB SQL, and stored as canonical JSON for browser workers.
"""

from .checker import Checker, check, node_types
from .errors import ExpressionError
from .evaluate import (
    ConversionError,
    DivisionByZeroError,
    EvaluationError,
    NotPushableError,
    OutOfRangeError,
    evaluate,
    to_arrow_expression,
)
from .nodes import (
    AGGREGATE_ALIASES,
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
from .parser import parse
from .render import default_name, to_sql
from .serde import from_dict, from_json, to_dict, to_json

__all__ = [
    "AGGREGATES",
    "AGGREGATE_ALIASES",
    "FUNCTIONS",
    "Aggregate",
    "Between",
    "Binary",
    "Call",
    "Case",
    "Cast",
    "Checker",
    "Column",
    "ConversionError",
    "DivisionByZeroError",
    "EvaluationError",
    "Expr",
    "ExpressionError",
    "InList",
    "IsNull",
    "Like",
    "Literal",
    "NotPushableError",
    "OutOfRangeError",
    "Unary",
    "check",
    "col",
    "default_name",
    "evaluate",
    "from_dict",
    "from_json",
    "lit",
    "node_types",
    "parse",
    "to_arrow_expression",
    "to_dict",
    "to_json",
    "to_sql",
    "walk",
]
