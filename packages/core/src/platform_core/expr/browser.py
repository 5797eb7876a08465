"""What the browser interpreter refuses, so a task using it is never sent to a browser.

The TypeScript interpreter of the JSON form (``apps/playground/lib/expr``) evaluates every node
and function of the language with this package's semantics, over the types a browser runs
exactly: i32, i64 (as BigInt), f64, bool8, utf8 (and utf8_ref), date and naive timestamp[us].
Anything else it refuses with an ``UnsupportedInBrowser`` error instead of computing it
differently; ``BROWSER_UNSUPPORTED`` is the same list as its ``unsupported.json`` (the
playground's conformance test checks they agree), and ``browser_refusal`` applies it to an
expression before a task is handed to a browser worker.
"""

from __future__ import annotations

from typing import Final

from platform_core.schema import Schema
from platform_core.types import FieldType

from .nodes import Aggregate, Call, Cast, Column, Expr, Literal, walk

__all__ = ["BROWSER_TYPES", "BROWSER_UNSUPPORTED", "browser_refusal"]

#: The types the browser interpreter evaluates (canonical names).
BROWSER_TYPES: Final = frozenset(
    {"i32", "i64", "f64", "bool8", "utf8", "utf8_ref", "date", "timestamp[us]"}
)

_UNSIGNED: Final = (
    "unsigned integers are not implemented in the browser interpreter "
    "(DuckDB's unsigned promotion rules are not reproduced there)"
)
_LISTS: Final = "lists are not implemented in the browser interpreter"

BROWSER_UNSUPPORTED: Final[dict[str, dict[str, str]]] = {
    "types": {
        "u8": _UNSIGNED,
        "u16": _UNSIGNED,
        "u32": _UNSIGNED,
        "f32": "f32 arithmetic and rounding are not reproduced in the browser "
        "(JavaScript computes in f64 only)",
        "decimal": "decimals (exact comparisons at 38 digits, DuckDB's decimal to float "
        "conversion) are not implemented in the browser interpreter",
        "json": "json values are not implemented in the browser interpreter",
        "bytes": "bytes values are not implemented in the browser interpreter",
        "i32_array": _LISTS,
        "f32_array": _LISTS,
        "timestamp[us, tz]": "timestamps with a time zone are not implemented in the browser "
        "interpreter (only naive timestamp[us])",
        "*": "this type is not implemented in the browser interpreter",
    },
    "nodes": {
        "aggregate": "aggregates are never evaluated row by row (emsqrt and lake execute "
        "them), in Python or in the browser",
    },
    "functions": {},
}


def _type_refusal(ftype: FieldType | None, what: str) -> str | None:
    if ftype is None or str(ftype) in BROWSER_TYPES:
        return None
    key = "timestamp[us, tz]" if ftype.kind == "timestamp" else ftype.kind
    reason = BROWSER_UNSUPPORTED["types"].get(key, BROWSER_UNSUPPORTED["types"]["*"])
    return f"{what} of type {ftype}: {reason}"


def browser_refusal(expr: Expr, schema: Schema) -> str | None:
    """Why the browser interpreter would refuse ``expr`` over ``schema``, or None when a
    browser worker evaluates it exactly as ``evaluate`` does."""
    for node in walk(expr):
        reason: str | None = None
        if isinstance(node, Aggregate):
            reason = f"aggregate {node.name}: {BROWSER_UNSUPPORTED['nodes']['aggregate']}"
        elif isinstance(node, Literal):
            reason = _type_refusal(node.type, "a literal")
        elif isinstance(node, Cast):
            reason = _type_refusal(node.to, "a CAST")
        elif isinstance(node, Column) and node.name in schema:
            reason = _type_refusal(schema.field(node.name).type, f'column "{node.name}"')
        elif isinstance(node, Call) and node.name in BROWSER_UNSUPPORTED["functions"]:
            reason = f"{node.name}: {BROWSER_UNSUPPORTED['functions'][node.name]}"
        if reason is not None:
            return reason
    return None
