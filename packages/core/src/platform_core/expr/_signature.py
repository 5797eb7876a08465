"""What the registry is made of: ``Signature`` and ``Function``, and the helpers type rules
share (literal values, DuckDB's adaptable integer literals, NaN tracking)."""

from __future__ import annotations

import datetime as dt
import decimal as _decimal
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import pyarrow as pa

from platform_core.types import FieldType

from ._kernels import (
    Value,
    coerce,
)
from ._types import (
    MaybeType,
    TypeProblem,
    arrow_type,
    common_type,
    is_decimal,
    is_float,
    is_int,
    is_string,
)
from .nodes import Expr, Literal, Unary

__all__ = [
    "Function",
    "Implementation",
    "Signature",
    "TypeRule",
    "adapt",
    "adapted_common_type",
    "bare_integer",
    "cast_args",
    "int_constant",
    "literal_scalar",
    "may_be_nan",
    "require",
    "show",
    "unary_impl",
]


@dataclass(frozen=True, slots=True)
class Signature:
    """What a type rule decided for one call.

    ``args``: the type each argument is brought to (None: left as it is); ``result``: the
    result type (None only for a NULL-only call); ``params``: constants read from literal
    arguments (round digits, substr bounds); ``nan``: per argument, whether it can hold
    NaN (so comparisons apply DuckDB's NaN order only where needed).
    """

    args: tuple[MaybeType, ...]
    result: MaybeType
    params: tuple[object, ...] = ()
    nan: tuple[bool, ...] = ()


TypeRule: TypeAlias = Callable[[Sequence[MaybeType], Sequence[Expr]], Signature]
Implementation: TypeAlias = Callable[[Sequence[Value], Sequence[MaybeType], Signature], Value]


@dataclass(frozen=True, slots=True)
class Function:
    """One entry of the registry. ``implement`` is None for calls the evaluator handles
    itself (``coalesce`` evaluates its arguments lazily; aggregates are not evaluated)."""

    name: str
    min_args: int
    max_args: int | None
    type_rule: TypeRule
    implement: Implementation | None
    summary: str
    constant_null: str = "any"
    """DuckDB's binder turns a call with a constant NULL argument into NULL without
    evaluating the other arguments ("any"); comparisons do so for a NULL on the left only
    ("left"); functions that look at NULLs themselves never do ("none")."""

    def arity_text(self) -> str:
        """``1``, ``2 or 3``, ``at least 1`` for messages."""
        if self.max_args is None:
            return f"at least {self.min_args}"
        if self.max_args == self.min_args:
            return str(self.min_args)
        return f"{self.min_args} to {self.max_args}"


def may_be_nan(node: Expr, source: MaybeType) -> bool:
    """Whether ``node`` (of type ``source``) can evaluate to NaN."""
    if not is_float(source):
        return False
    if isinstance(node, Literal):
        return isinstance(node.value, float) and math.isnan(node.value)
    return True


_RANGES: Final = {
    "u8": range(2**8),
    "u16": range(2**16),
    "u32": range(2**32),
    "i32": range(-(2**31), 2**31),
    "i64": range(-(2**63), 2**63),
}


def bare_integer(node: Expr) -> int | None:
    """The value of an integer literal of its natural type (i32, else i64), else None.

    DuckDB types such a literal (written bare in SQL) by its context: ``u8_col + 1`` is
    u8 arithmetic, ``u8_col + 300`` i32. Literals of any other type are not adaptable.
    """
    if not isinstance(node, Literal) or isinstance(node.value, bool):
        return None
    value = node.value
    if not isinstance(value, int) or node.type is None:
        return None
    natural = "i32" if value in _RANGES["i32"] else "i64"
    return value if node.type.kind == natural else None


def adapt(target: MaybeType, value: int) -> bool:
    """Whether a bare integer literal ``value`` takes the integer type ``target``."""
    return target is not None and target.kind in _RANGES and value in _RANGES[target.kind]


def adapted_common_type(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> MaybeType:
    """``common_type`` where bare integer literals take the type of the other values when
    they fit it (DuckDB: ``coalesce(u8_col, 1)`` is u8, ``greatest(u8_col, 300)`` i32)."""
    literals = [bare_integer(n) for n in nodes]
    others = [t for t, v in zip(types, literals, strict=True) if v is None]
    base = common_type(others)
    if base is None or not is_int(base):
        return common_type(types)
    rest = [t for t, v in zip(types, literals, strict=True) if v is not None and not adapt(base, v)]
    return common_type([base, *rest])


def literal_scalar(value: object, type: MaybeType) -> pa.Scalar:
    """The Arrow scalar of a literal; TypeProblem when the value does not fit its type."""
    if type is None:
        if value is not None:
            raise TypeProblem(f"literal {value!r} has no type")
        return pa.scalar(None, pa.null())
    to = arrow_type(type)
    if value is None:
        return pa.scalar(None, to)
    if not _value_fits_kind(value, type):
        raise TypeProblem(f"literal {value!r} is not a {type} value")
    try:
        if type.kind == "decimal":
            return pa.scalar(_decimal.Decimal(str(value)), to)
        return pa.scalar(value, to)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError) as exc:
        raise TypeProblem(f"literal {value!r} does not fit {type}: {exc}") from None


def _value_fits_kind(value: object, type: FieldType) -> bool:
    if isinstance(value, bool):
        return type.kind == "bool8"
    if isinstance(value, int):
        return is_int(type) or is_float(type) or is_decimal(type)
    if isinstance(value, float):
        return is_float(type) or is_decimal(type)
    if isinstance(value, str):
        if not is_string(type):
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dt.datetime):
        return type.kind == "timestamp"
    if isinstance(value, dt.date):
        return type.kind == "date"
    return False


def require(condition: bool, message: str) -> None:
    if not condition:
        raise TypeProblem(message)


def show(t: MaybeType) -> str:
    return "NULL" if t is None else str(t)


def cast_args(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> list[Value]:
    out = []
    for value, source, target in zip(values, types, sig.args, strict=True):
        out.append(value if target is None else coerce(value, source, target))
    return out


def int_constant(node: Expr, what: str) -> int | None:
    """The integer of a literal argument (``-3`` too); None for NULL; TypeProblem else."""
    if isinstance(node, Unary) and node.op == "neg" and isinstance(node.operand, Literal):
        inner = int_constant(node.operand, what)
        return None if inner is None else -inner
    if isinstance(node, Literal) and node.value is None:
        return None
    if (
        isinstance(node, Literal)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        return node.value
    raise TypeProblem(f"{what} must be an integer literal (pyarrow needs it before the data)")


def unary_impl(kernel: Callable[[Value], Value]) -> Implementation:
    """Cast the one argument as the signature says, then apply ``kernel``."""

    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        (x,) = cast_args(values, types, sig)
        return kernel(x)

    return implement
