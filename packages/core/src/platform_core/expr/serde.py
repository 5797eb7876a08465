"""The canonical JSON form of the AST, read by browser workers: exact round trip, strict reading.

Every node is an object with a ``"kind"`` and the node's fields (all of them are written, but
an aggregate's ``extra_args`` only when it has some, so one-argument aggregates keep their
older form; when reading, fields that have a default may be left out). Literal values are encoded by the
literal's type so that JavaScript can read them without loss: i64 as a decimal string (JS
numbers hold 53 bits), floats as numbers or "NaN"/"Infinity"/"-Infinity", dates as
"YYYY-MM-DD", timestamps as naive "YYYY-MM-DDTHH:MM:SS.ffffff" (UTC). The full shape is in the
package README. ``to_json`` is canonical (sorted keys, no spaces), so equal ASTs give equal text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable
from typing import Any, Final, NoReturn, cast

from platform_core.errors import BadInputError
from platform_core.integrity import canonical_json
from platform_core.types import FieldType, parse_type

from .errors import ExpressionError
from .nodes import (
    AGGREGATES,
    BINARY_OPS,
    FUNCTIONS,
    TWO_ARGUMENT_AGGREGATES,
    UNARY_OPS,
    Aggregate,
    Between,
    Binary,
    BinaryOp,
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
    children,
)

__all__ = [
    "KINDS",
    "MAX_DEPTH",
    "MAX_JSON_LENGTH",
    "depth",
    "from_dict",
    "from_json",
    "to_dict",
    "to_json",
]

MAX_DEPTH: Final = 200
"""Deepest AST accepted anywhere (text, JSON, rendering): tree walks stay far from Python's
recursion limit. A chain of N ANDs/ORs nests N levels; long lists belong in IN."""

MAX_JSON_LENGTH: Final = 1 << 20
"""Longest JSON text ``from_json`` reads (1 MiB)."""

#: The ``"kind"`` of each node class in the JSON form.
KINDS: Final[dict[type[Expr], str]] = {
    Literal: "literal",
    Column: "column",
    Unary: "unary",
    Binary: "binary",
    IsNull: "is_null",
    InList: "in",
    Between: "between",
    Like: "like",
    Case: "case",
    Cast: "cast",
    Call: "call",
    Aggregate: "aggregate",
}

_INT_RANGES: Final = {
    "u8": (0, 2**8 - 1),
    "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1),
}
_TEXT_KINDS: Final = frozenset({"utf8", "utf8_ref", "json", "bytes"})
_SPECIAL_FLOATS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_I64_RE: Final = re.compile(r"-?(?:0|[1-9][0-9]{0,18})")
_DECIMAL_RE: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z?"
)


def depth(expr: Expr) -> int:
    """How many levels ``expr`` nests (a leaf is 1), computed without recursion."""
    deepest = 0
    stack = [(expr, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children(node))
    return deepest


def _check_depth(expr: Expr) -> None:
    levels = depth(expr)
    if levels > MAX_DEPTH:
        raise ExpressionError(
            f"expression nests {levels} levels deep; at most {MAX_DEPTH} are allowed"
        )


# --- writing -----------------------------------------------------------------------------


def to_json(expr: Expr) -> str:
    """The canonical JSON text of ``expr`` (sorted keys, no whitespace, UTF-8)."""
    return canonical_json(to_dict(expr))


def to_dict(expr: Expr) -> dict[str, Any]:
    """The JSON-ready dict of ``expr``; raises ExpressionError for a node that has no JSON form."""
    if not isinstance(expr, Expr):
        raise ExpressionError(f"to_dict takes an expression node, got {type(expr).__name__}")
    _check_depth(expr)
    return _to_dict(expr, "$")


def _to_dict(e: Expr, path: str) -> dict[str, Any]:
    for cls in type(e).__mro__:
        write = _WRITERS.get(cls)
        if write is not None:
            return write(e, path)
    _fail(path, f"not an expression node: {type(e).__name__}")


def _sub(child: Expr, path: str, key: str) -> dict[str, Any]:
    return _to_dict(child, f"{path}.{key}")


def _write_literal(e: Literal, path: str) -> dict[str, Any]:
    return {
        "kind": "literal",
        "type": None if e.type is None else str(e.type),
        "value": _encode_value(e.value, e.type, path),
    }


def _write_column(e: Column, path: str) -> dict[str, Any]:
    _check_name(e.name, path)
    return {"kind": "column", "name": e.name}


def _write_unary(e: Unary, path: str) -> dict[str, Any]:
    _check_choice(e.op, UNARY_OPS, "unary op", path)
    return {"kind": "unary", "op": e.op, "operand": _sub(e.operand, path, "operand")}


def _write_binary(e: Binary, path: str) -> dict[str, Any]:
    _check_choice(e.op, BINARY_OPS, "binary op", path)
    return {
        "kind": "binary",
        "op": e.op,
        "left": _sub(e.left, path, "left"),
        "right": _sub(e.right, path, "right"),
    }


def _write_is_null(e: IsNull, path: str) -> dict[str, Any]:
    return {
        "kind": "is_null",
        "operand": _sub(e.operand, path, "operand"),
        "negated": _bool(e.negated, path),
    }


def _write_in(e: InList, path: str) -> dict[str, Any]:
    return {
        "kind": "in",
        "operand": _sub(e.operand, path, "operand"),
        "items": [_sub(item, path, f"items[{i}]") for i, item in enumerate(e.items)],
        "negated": _bool(e.negated, path),
    }


def _write_between(e: Between, path: str) -> dict[str, Any]:
    return {
        "kind": "between",
        "operand": _sub(e.operand, path, "operand"),
        "low": _sub(e.low, path, "low"),
        "high": _sub(e.high, path, "high"),
        "negated": _bool(e.negated, path),
    }


def _write_like(e: Like, path: str) -> dict[str, Any]:
    _check_escape(e.escape, path)
    return {
        "kind": "like",
        "operand": _sub(e.operand, path, "operand"),
        "pattern": _sub(e.pattern, path, "pattern"),
        "escape": e.escape,
        "negated": _bool(e.negated, path),
        "case_insensitive": _bool(e.case_insensitive, path),
    }


def _write_case(e: Case, path: str) -> dict[str, Any]:
    return {
        "kind": "case",
        "whens": [
            [_sub(c, path, f"whens[{i}][0]"), _sub(v, path, f"whens[{i}][1]")]
            for i, (c, v) in enumerate(e.whens)
        ],
        "otherwise": None if e.otherwise is None else _sub(e.otherwise, path, "otherwise"),
    }


def _write_cast(e: Cast, path: str) -> dict[str, Any]:
    if not isinstance(e.to, FieldType):
        _fail(path, f"a cast's target is a FieldType, got {type(e.to).__name__}")
    return {"kind": "cast", "operand": _sub(e.operand, path, "operand"), "to": str(e.to)}


def _write_call(e: Call, path: str) -> dict[str, Any]:
    _check_choice(e.name, FUNCTIONS, "function", path)
    return {
        "kind": "call",
        "name": e.name,
        "args": [_sub(a, path, f"args[{i}]") for i, a in enumerate(e.args)],
    }


def _write_aggregate(e: Aggregate, path: str) -> dict[str, Any]:
    name, arg, extra = e.name, e.arg, e.extra_args
    _check_choice(name, AGGREGATES, "aggregate", path)
    if arg is None and name != "count":
        _fail(path, f"only count has no argument (count(*)), not {name}")
    if not isinstance(extra, tuple):
        _fail(path, f"extra_args is a tuple, got {type(extra).__name__}")
    _check_extra_args(name, arg, len(extra), path)
    out: dict[str, Any] = {
        "kind": "aggregate",
        "name": name,
        "arg": None if arg is None else _sub(arg, path, "arg"),
        "distinct": _bool(e.distinct, path),
    }
    if extra:
        out["extra_args"] = [_sub(a, path, f"extra_args[{i}]") for i, a in enumerate(extra)]
    return out


_WRITERS: Final[dict[type[Expr], Callable[[Any, str], dict[str, Any]]]] = {
    Literal: _write_literal,
    Column: _write_column,
    Unary: _write_unary,
    Binary: _write_binary,
    IsNull: _write_is_null,
    InList: _write_in,
    Between: _write_between,
    Like: _write_like,
    Case: _write_case,
    Cast: _write_cast,
    Call: _write_call,
    Aggregate: _write_aggregate,
}
"""How each node type is written (the one place its JSON form is built)."""


def _encode_value(value: LiteralValue, ftype: FieldType | None, path: str) -> Any:
    """The JSON value of a literal, chosen by its type (see the module docstring)."""
    if ftype is None:
        if value is not None:
            _fail(path, f"a literal without a type must be NULL, got {value!r}")
        return None
    if not isinstance(ftype, FieldType):
        _fail(path, f"a literal's type is a FieldType, got {type(ftype).__name__}")
    if value is None:
        return None
    kind = ftype.kind
    if kind == "bool8":
        if isinstance(value, bool):
            return value
    elif kind in _INT_RANGES:
        if isinstance(value, int) and not isinstance(value, bool):
            _check_int_range(value, kind, path)
            return str(value) if kind == "i64" else value
    elif kind in ("f32", "f64"):
        if isinstance(value, int) and not isinstance(value, bool) and _exact_float(value):
            value = float(value)
        if isinstance(value, float):
            if math.isnan(value):
                return "NaN"
            if math.isinf(value):
                return "Infinity" if value > 0 else "-Infinity"
            return value
    elif kind in _TEXT_KINDS:
        if isinstance(value, str):
            return value
    elif kind == "date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value.isoformat()
    elif kind == "timestamp":
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                _fail(path, "timestamp literal values are naive (UTC); drop the tzinfo")
            return value.isoformat(timespec="microseconds")
    elif kind == "decimal":
        if isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
    _fail(path, f"a {ftype} literal cannot hold {type(value).__name__} {value!r}")


def _exact_float(value: int) -> bool:
    try:
        return float(value) == value
    except OverflowError:
        return False


# --- reading -----------------------------------------------------------------------------


def from_json(text: str | bytes) -> Expr:
    """Read an expression from its JSON form; malformed input raises ExpressionError."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ExpressionError(f"expression JSON is not UTF-8: {e}") from None
    if not isinstance(text, str):
        raise ExpressionError(f"from_json takes JSON text, got {type(text).__name__}")
    if len(text) > MAX_JSON_LENGTH:
        raise ExpressionError(
            f"expression JSON is {len(text)} characters; at most {MAX_JSON_LENGTH} are allowed"
        )
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise ExpressionError(
            f"malformed expression JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    except RecursionError:
        raise ExpressionError(
            f"expression JSON nests too deeply (at most {MAX_DEPTH} levels)"
        ) from None
    except ValueError as e:  # a constant or duplicate key, or an integer with too many digits
        raise ExpressionError(f"malformed expression JSON: {e}") from None
    return from_dict(data)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f'bare {name} is not JSON; write the string "{name}" as a float literal value')


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f'duplicate key "{key}"')
        out[key] = value
    return out


def from_dict(data: object) -> Expr:
    """Read an expression from its dict form (as ``json.loads`` gives it)."""
    return _from_dict(data, "$", 1)


_FIELDS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    # kind: (required keys, optional keys), "kind" itself aside
    "literal": (frozenset({"type", "value"}), frozenset()),
    "column": (frozenset({"name"}), frozenset()),
    "unary": (frozenset({"op", "operand"}), frozenset()),
    "binary": (frozenset({"op", "left", "right"}), frozenset()),
    "is_null": (frozenset({"operand"}), frozenset({"negated"})),
    "in": (frozenset({"operand", "items"}), frozenset({"negated"})),
    "between": (frozenset({"operand", "low", "high"}), frozenset({"negated"})),
    "like": (
        frozenset({"operand", "pattern"}),
        frozenset({"escape", "negated", "case_insensitive"}),
    ),
    "case": (frozenset({"whens"}), frozenset({"otherwise"})),
    "cast": (frozenset({"operand", "to"}), frozenset()),
    "call": (frozenset({"name", "args"}), frozenset()),
    "aggregate": (frozenset({"name"}), frozenset({"arg", "distinct", "extra_args"})),
}


def _from_dict(d: object, path: str, level: int) -> Expr:
    if level > MAX_DEPTH:
        _fail(path, f"expression nests more than {MAX_DEPTH} levels deep")
    if not isinstance(d, dict):
        _fail(path, f"expected an expression object, got {_json_type(d)}")
    kind = _checked_kind(d, path)
    return _READERS[kind](_Node(d, path, level))


def _checked_kind(d: dict[str, Any], path: str) -> str:
    """``d``'s kind, once its keys are those of that kind (required ones there, no others)."""
    kind = d.get("kind")
    if not isinstance(kind, str) or kind not in _FIELDS:
        known = ", ".join(_FIELDS)
        _fail(
            path,
            f"unknown kind {kind!r} (kinds: {known})"
            if "kind" in d
            else f'missing "kind" (kinds: {known})',
        )
    required, optional = _FIELDS[kind]
    missing = sorted(required - d.keys())
    if missing:
        _fail(path, f"a {kind} node needs {', '.join(repr(k) for k in missing)}")
    extra = sorted(d.keys() - required - optional - {"kind"})
    if extra:
        allowed = ", ".join(sorted(required | optional))
        _fail(path, f"unknown key {extra[0]!r} in a {kind} node (keys: kind, {allowed})")
    return kind


class _Node:
    """One JSON node being read: its dict, where it is, how deep, and its fields, checked."""

    __slots__ = ("d", "level", "path")

    def __init__(self, d: dict[str, Any], path: str, level: int) -> None:
        self.d, self.path, self.level = d, path, level

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def child(self, value: object, where: str) -> Expr:
        return _from_dict(value, where, self.level + 1)

    def sub(self, key: str) -> Expr:
        return self.child(self.d[key], self.at(key))

    def subs(self, key: str, values: list[Any]) -> tuple[Expr, ...]:
        return tuple(self.child(v, f"{self.path}.{key}[{i}]") for i, v in enumerate(values))

    def flag(self, key: str) -> bool:
        value = self.d.get(key, False)
        if not isinstance(value, bool):
            _fail(self.at(key), f"expected true or false, got {_json_type(value)}")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.d[key]
        if not isinstance(value, list):
            _fail(self.at(key), f"expected a list, got {_json_type(value)}")
        return value


def _read_literal(n: _Node) -> Expr:
    ftype = _read_type(n.d["type"], n.at("type"), nullable=True)
    return Literal(_decode_value(n.d["value"], ftype, n.at("value")), ftype)


def _read_column(n: _Node) -> Expr:
    _check_name(n.d["name"], n.at("name"))
    return Column(n.d["name"])


def _read_unary(n: _Node) -> Expr:
    op = _check_choice(n.d["op"], UNARY_OPS, "unary op", n.at("op"))
    return Unary(cast(Any, op), n.sub("operand"))


def _read_binary(n: _Node) -> Expr:
    op = _check_choice(n.d["op"], BINARY_OPS, "binary op", n.at("op"))
    return Binary(cast(BinaryOp, op), n.sub("left"), n.sub("right"))


def _read_is_null(n: _Node) -> Expr:
    return IsNull(n.sub("operand"), negated=n.flag("negated"))


def _read_in(n: _Node) -> Expr:
    values = n.items("items")
    return InList(n.sub("operand"), n.subs("items", values), negated=n.flag("negated"))


def _read_between(n: _Node) -> Expr:
    return Between(n.sub("operand"), n.sub("low"), n.sub("high"), negated=n.flag("negated"))


def _read_like(n: _Node) -> Expr:
    escape = n.d.get("escape")
    _check_escape(escape, n.at("escape"))
    return Like(
        n.sub("operand"),
        n.sub("pattern"),
        escape,
        negated=n.flag("negated"),
        case_insensitive=n.flag("case_insensitive"),
    )


def _read_case(n: _Node) -> Expr:
    whens: list[tuple[Expr, Expr]] = []
    for i, pair in enumerate(n.items("whens")):
        where = f"{n.path}.whens[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            _fail(where, f"expected a [condition, value] pair, got {_json_type(pair)}")
        whens.append((n.child(pair[0], f"{where}[0]"), n.child(pair[1], f"{where}[1]")))
    if not whens:
        _fail(n.at("whens"), "a case needs at least one [condition, value] pair")
    other = n.d.get("otherwise")
    return Case(tuple(whens), None if other is None else n.sub("otherwise"))


def _read_cast(n: _Node) -> Expr:
    to = _read_type(n.d["to"], n.at("to"), nullable=False)
    assert to is not None
    return Cast(n.sub("operand"), to)


def _read_call(n: _Node) -> Expr:
    name = _check_choice(n.d["name"], FUNCTIONS, "function", n.at("name"))
    args = n.items("args")
    return Call(name, n.subs("args", args))


def _read_aggregate(n: _Node) -> Expr:
    name = _check_choice(n.d["name"], AGGREGATES, "aggregate", n.at("name"))
    arg = n.d.get("arg")
    if arg is None and name != "count":
        _fail(n.at("arg"), f"only count has no argument (count(*)), not {name}")
    extra = n.items("extra_args") if "extra_args" in n.d else []
    _check_extra_args(name, arg, len(extra), n.at("extra_args"))
    return Aggregate(
        name,
        None if arg is None else n.sub("arg"),
        n.flag("distinct"),
        n.subs("extra_args", extra),
    )


_READERS: Final[dict[str, Callable[[_Node], Expr]]] = {
    "literal": _read_literal,
    "column": _read_column,
    "unary": _read_unary,
    "binary": _read_binary,
    "is_null": _read_is_null,
    "in": _read_in,
    "between": _read_between,
    "like": _read_like,
    "case": _read_case,
    "cast": _read_cast,
    "call": _read_call,
    "aggregate": _read_aggregate,
}
"""How each kind is read (``_FIELDS`` has checked its keys first)."""


def _check_extra_args(name: str, arg: object, count: int, path: str) -> None:
    """Two-argument aggregates carry their second argument in ``extra_args``; others none."""
    wanted = 1 if name in TWO_ARGUMENT_AGGREGATES else 0
    if count != wanted or (count and arg is None):
        _fail(
            path,
            f"{name} takes {wanted + 1} argument{'s' if wanted else ''}: "
            + (
                'the first in "arg", the second as the one item of "extra_args"'
                if wanted
                else '"arg" only, no "extra_args"'
            )
            + f", got {count} extra",
        )


def _read_type(value: object, path: str, *, nullable: bool) -> FieldType | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        _fail(path, f'expected a type name such as "i64", got {_json_type(value)}')
    try:
        ftype = parse_type(value)
    except BadInputError as e:
        _fail(path, e.message)
    if str(ftype) != value:
        _fail(path, f'type "{value}" is not written canonically; write "{ftype}"')
    return ftype


def _decode_value(value: object, ftype: FieldType | None, path: str) -> LiteralValue:
    """The Python value of a literal's JSON value; the inverse of ``_encode_value``."""
    if value is None:
        return None
    if ftype is None:
        _fail(path, f"a literal with type null must have value null, got {_json_type(value)}")
    kind = ftype.kind
    expected: str
    if kind == "bool8":
        expected = "true or false"
        if isinstance(value, bool):
            return value
    elif kind == "i64":
        expected = 'a string of decimal digits such as "-42"'
        if isinstance(value, str) and _I64_RE.fullmatch(value):
            number = int(value)
            _check_int_range(number, kind, path)
            return number
    elif kind in _INT_RANGES:
        expected = "an integer"
        if isinstance(value, int) and not isinstance(value, bool):
            _check_int_range(value, kind, path)
            return value
    elif kind in ("f32", "f64"):
        expected = 'a number or "NaN", "Infinity", "-Infinity"'
        if isinstance(value, str) and value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        exact_int = isinstance(value, int) and not isinstance(value, bool) and _exact_float(value)
        if isinstance(value, float) or exact_int:
            as_float = float(cast(float, value))
            if math.isfinite(as_float):
                return as_float
    elif kind in _TEXT_KINDS:
        expected = "a string"
        if isinstance(value, str):
            return value
    elif kind == "date":
        expected = 'a date "YYYY-MM-DD"'
        if isinstance(value, str) and _DATE_RE.fullmatch(value):
            return _parse_iso(dt.date.fromisoformat, value, path)
    elif kind == "timestamp":
        expected = 'a naive timestamp "YYYY-MM-DDTHH:MM:SS.ffffff"'
        if isinstance(value, str) and _TIMESTAMP_RE.fullmatch(value):
            return _parse_iso(dt.datetime.fromisoformat, value.removesuffix("Z"), path)
    else:  # decimal
        expected = 'an integer, a number or a decimal string such as "12.50"'
        if isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    _fail(path, f"a {ftype} literal value must be {expected}, got {_json_type(value)} {value!r}")


def _parse_iso(parse: Callable[[str], dt.date], value: str, path: str) -> dt.date:
    try:
        return parse(value)
    except ValueError as e:
        _fail(path, f"malformed {value!r}: {e}")


# --- shared checks -----------------------------------------------------------------------


def _check_int_range(value: int, kind: str, path: str) -> None:
    low, high = _INT_RANGES[kind]
    if not low <= value <= high:
        _fail(path, f"{value} is out of range for {kind} ({low}..{high})")


def _check_name(name: object, path: str) -> None:
    if not isinstance(name, str) or not name:
        _fail(path, f"a column name is a non-empty string, got {_json_type(name)} {name!r}")


def _check_choice(value: object, choices: tuple[str, ...], what: str, path: str) -> str:
    if not isinstance(value, str) or value not in choices:
        _fail(path, f"unknown {what} {value!r} ({what}s: {', '.join(choices)})")
    return value


def _check_escape(escape: object, path: str) -> None:
    if escape is not None and (not isinstance(escape, str) or len(escape) != 1):
        _fail(path, f"a LIKE escape is null or one character, got {escape!r}")


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        _fail(path, f"expected a bool flag, got {type(value).__name__} {value!r}")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _fail(path: str, message: str) -> NoReturn:
    raise ExpressionError(f"{message} (at {path})")
