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
    def sub(child: Expr, key: str) -> dict[str, Any]:
        return _to_dict(child, f"{path}.{key}")

    match e:
        case Literal(value=value, type=ftype):
            return {
                "kind": "literal",
                "type": None if ftype is None else str(ftype),
                "value": _encode_value(value, ftype, path),
            }
        case Column(name=name):
            _check_name(name, path)
            return {"kind": "column", "name": name}
        case Unary(op=op, operand=x):
            _check_choice(op, UNARY_OPS, "unary op", path)
            return {"kind": "unary", "op": op, "operand": sub(x, "operand")}
        case Binary(op=op, left=a, right=b):
            _check_choice(op, BINARY_OPS, "binary op", path)
            return {"kind": "binary", "op": op, "left": sub(a, "left"), "right": sub(b, "right")}
        case IsNull(operand=x, negated=negated):
            return {
                "kind": "is_null",
                "operand": sub(x, "operand"),
                "negated": _bool(negated, path),
            }
        case InList(operand=x, items=items, negated=negated):
            return {
                "kind": "in",
                "operand": sub(x, "operand"),
                "items": [sub(item, f"items[{i}]") for i, item in enumerate(items)],
                "negated": _bool(negated, path),
            }
        case Between(operand=x, low=low, high=high, negated=negated):
            return {
                "kind": "between",
                "operand": sub(x, "operand"),
                "low": sub(low, "low"),
                "high": sub(high, "high"),
                "negated": _bool(negated, path),
            }
        case Like(operand=x, pattern=p, escape=esc, negated=negated, case_insensitive=ci):
            _check_escape(esc, path)
            return {
                "kind": "like",
                "operand": sub(x, "operand"),
                "pattern": sub(p, "pattern"),
                "escape": esc,
                "negated": _bool(negated, path),
                "case_insensitive": _bool(ci, path),
            }
        case Case(whens=whens, otherwise=other):
            return {
                "kind": "case",
                "whens": [
                    [sub(c, f"whens[{i}][0]"), sub(v, f"whens[{i}][1]")]
                    for i, (c, v) in enumerate(whens)
                ],
                "otherwise": None if other is None else sub(other, "otherwise"),
            }
        case Cast(operand=x, to=to):
            if not isinstance(to, FieldType):
                _fail(path, f"a cast's target is a FieldType, got {type(to).__name__}")
            return {"kind": "cast", "operand": sub(x, "operand"), "to": str(to)}
        case Call(name=name, args=args):
            _check_choice(name, FUNCTIONS, "function", path)
            return {
                "kind": "call",
                "name": name,
                "args": [sub(a, f"args[{i}]") for i, a in enumerate(args)],
            }
        case Aggregate(name=name, arg=arg, distinct=distinct, extra_args=extra):
            _check_choice(name, AGGREGATES, "aggregate", path)
            if arg is None and name != "count":
                _fail(path, f"only count has no argument (count(*)), not {name}")
            if not isinstance(extra, tuple):
                _fail(path, f"extra_args is a tuple, got {type(extra).__name__}")
            _check_extra_args(name, arg, len(extra), path)
            out: dict[str, Any] = {
                "kind": "aggregate",
                "name": name,
                "arg": None if arg is None else sub(arg, "arg"),
                "distinct": _bool(distinct, path),
            }
            if extra:
                out["extra_args"] = [sub(a, f"extra_args[{i}]") for i, a in enumerate(extra)]
            return out
    _fail(path, f"not an expression node: {type(e).__name__}")


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

    def sub(key: str) -> Expr:
        return _from_dict(d[key], f"{path}.{key}", level + 1)

    def flag(key: str) -> bool:
        value = d.get(key, False)
        if not isinstance(value, bool):
            _fail(f"{path}.{key}", f"expected true or false, got {_json_type(value)}")
        return value

    def items(key: str) -> list[Any]:
        value = d[key]
        if not isinstance(value, list):
            _fail(f"{path}.{key}", f"expected a list, got {_json_type(value)}")
        return value

    if kind == "literal":
        ftype = _read_type(d["type"], f"{path}.type", nullable=True)
        return Literal(_decode_value(d["value"], ftype, f"{path}.value"), ftype)
    if kind == "column":
        _check_name(d["name"], f"{path}.name")
        return Column(d["name"])
    if kind == "unary":
        op = _check_choice(d["op"], UNARY_OPS, "unary op", f"{path}.op")
        return Unary(cast(Any, op), sub("operand"))
    if kind == "binary":
        op = _check_choice(d["op"], BINARY_OPS, "binary op", f"{path}.op")
        return Binary(cast(BinaryOp, op), sub("left"), sub("right"))
    if kind == "is_null":
        return IsNull(sub("operand"), negated=flag("negated"))
    if kind == "in":
        values = items("items")
        return InList(
            sub("operand"),
            tuple(_from_dict(v, f"{path}.items[{i}]", level + 1) for i, v in enumerate(values)),
            negated=flag("negated"),
        )
    if kind == "between":
        return Between(sub("operand"), sub("low"), sub("high"), negated=flag("negated"))
    if kind == "like":
        escape = d.get("escape")
        _check_escape(escape, f"{path}.escape")
        return Like(
            sub("operand"),
            sub("pattern"),
            escape,
            negated=flag("negated"),
            case_insensitive=flag("case_insensitive"),
        )
    if kind == "case":
        whens: list[tuple[Expr, Expr]] = []
        for i, pair in enumerate(items("whens")):
            where = f"{path}.whens[{i}]"
            if not isinstance(pair, list) or len(pair) != 2:
                _fail(where, f"expected a [condition, value] pair, got {_json_type(pair)}")
            whens.append(
                (
                    _from_dict(pair[0], f"{where}[0]", level + 1),
                    _from_dict(pair[1], f"{where}[1]", level + 1),
                )
            )
        if not whens:
            _fail(f"{path}.whens", "a case needs at least one [condition, value] pair")
        other = d.get("otherwise")
        return Case(tuple(whens), None if other is None else sub("otherwise"))
    if kind == "cast":
        to = _read_type(d["to"], f"{path}.to", nullable=False)
        assert to is not None
        return Cast(sub("operand"), to)
    if kind == "call":
        name = _check_choice(d["name"], FUNCTIONS, "function", f"{path}.name")
        args = items("args")
        return Call(
            name, tuple(_from_dict(a, f"{path}.args[{i}]", level + 1) for i, a in enumerate(args))
        )
    name = _check_choice(d["name"], AGGREGATES, "aggregate", f"{path}.name")
    arg = d.get("arg")
    if arg is None and name != "count":
        _fail(f"{path}.arg", f"only count has no argument (count(*)), not {name}")
    extra = items("extra_args") if "extra_args" in d else []
    _check_extra_args(name, arg, len(extra), f"{path}.extra_args")
    return Aggregate(
        name,
        None if arg is None else sub("arg"),
        flag("distinct"),
        tuple(_from_dict(a, f"{path}.extra_args[{i}]", level + 1) for i, a in enumerate(extra)),
    )


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
