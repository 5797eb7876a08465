"""Type checking against a ``Schema``: the result type of every node, or an ExpressionError.

``check(expr, schema)`` gives the type of the whole expression; ``Checker`` keeps the type
(and the operator signature) of every node, keyed by node identity, for the evaluator.
The rules are DuckDB 2.0's for the platform's vocabulary (see ``functions`` and
``_types``). An untyped ``NULL`` takes the type its context gives it; a ``NULL`` with no
context at all (``NULL`` alone, ``coalesce(NULL)``) is reported as utf8.

Errors name what is wrong and quote the expression::

    cannot compare utf8 with i64 in "region > 5"
    column "regoin" not found; did you mean "region"? (columns: amount, region)
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Final

from platform_core._suggest import column_not_found
from platform_core.schema import Schema
from platform_core.types import BOOL8, UTF8, FieldType

from . import _strings as strings
from ._casts import cast_problem
from ._types import MaybeType, TypeProblem, compare_type, is_comparable, is_string
from .errors import ExpressionError
from .functions import (
    AGGREGATE_FUNCTIONS,
    OPERATORS,
    SCALAR_FUNCTIONS,
    Function,
    Signature,
    adapted_common_type,
    literal_scalar,
    may_be_nan,
)
from .nodes import (
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
    children,
)
from .serde import MAX_DEPTH

__all__ = ["Checker", "check", "describe", "node_types"]

NULL_TYPE: Final = UTF8
"""The reported type of an expression that is only an untyped NULL."""

_MAX_DEPTH: Final = MAX_DEPTH  # as the JSON form: 200 levels


def check(expr: Expr, schema: Schema, *, aggregates: bool = False) -> FieldType:
    """The result type of ``expr`` over ``schema``; ExpressionError if it is ill-typed.

    ``aggregates=True`` allows aggregate calls (``count(*)``, ``sum(x)``, ...), which
    cannot nest.
    """
    return Checker(schema, aggregates=aggregates).check(expr)


def node_types(expr: Expr, schema: Schema, *, aggregates: bool = False) -> dict[int, FieldType]:
    """``{id(node): type}`` for every node of ``expr`` (checking it first)."""
    checker = Checker(schema, aggregates=aggregates)
    checker.check(expr)
    return checker.node_types(expr)


class Checker:
    """Types the nodes of expressions over one schema, caching by node identity.

    ``check(expr)`` types a whole expression; afterwards ``type_of(node)`` and
    ``signature(node)`` answer for any of its nodes. The cache holds the nodes it was
    given, so identities stay valid while the checker lives.
    """

    def __init__(self, schema: Schema, *, aggregates: bool = False) -> None:
        if not isinstance(schema, Schema):
            raise ExpressionError(f"expected a Schema, got {type(schema).__name__}")
        self.schema = schema
        self.aggregates = aggregates
        self._types: dict[int, tuple[Expr, MaybeType]] = {}
        self._signatures: dict[int, tuple[Expr, Signature]] = {}

    # --- public ------------------------------------------------------------------------------

    def check(self, expr: Expr) -> FieldType:
        """The result type of ``expr`` (an untyped NULL alone is reported as utf8)."""
        if not isinstance(expr, Expr):
            raise ExpressionError(f"expected an expression node, got {type(expr).__name__}")
        if _depth(expr) > _MAX_DEPTH:
            raise ExpressionError(
                f"expression is nested more than {_MAX_DEPTH} levels deep; simplify it"
            )
        result = self._type(expr, in_aggregate=False)
        return NULL_TYPE if result is None else result

    def type_of(self, node: Expr) -> FieldType:
        """The type of ``node`` (checked on first use); untyped NULL reports as utf8."""
        result = self.raw_type(node)
        return NULL_TYPE if result is None else result

    def raw_type(self, node: Expr) -> MaybeType:
        """The type of ``node``, None for an untyped NULL that takes its context's type."""
        entry = self._types.get(id(node))
        if entry is None or entry[0] is not node:
            self.check(node)
            entry = self._types[id(node)]
        return entry[1]

    def signature(self, node: Expr) -> Signature:
        """The signature chosen for an operator, function, predicate or CAST node."""
        entry = self._signatures.get(id(node))
        if entry is None or entry[0] is not node:
            self.check(node)
            entry = self._signatures[id(node)]
        return entry[1]

    def node_types(self, expr: Expr) -> dict[int, FieldType]:
        """``{id(node): type}`` for ``expr`` and all its descendants."""
        return {id(node): self.type_of(node) for node in _walk(expr)}

    # --- rules -------------------------------------------------------------------------------

    def _type(self, node: Expr, *, in_aggregate: bool) -> MaybeType:
        entry = self._types.get(id(node))
        if entry is not None and entry[0] is node and not isinstance(node, Aggregate):
            return entry[1]
        result = self._infer(node, in_aggregate)
        self._types[id(node)] = (node, result)
        return result

    def _remember(self, node: Expr, signature: Signature) -> MaybeType:
        self._signatures[id(node)] = (node, signature)
        return signature.result

    def _infer(self, node: Expr, in_aggregate: bool) -> MaybeType:
        kids = (
            [
                self._type(child, in_aggregate=in_aggregate or isinstance(node, Aggregate))
                for child in children(node)
            ]
            if not isinstance(node, Aggregate)
            else []
        )
        match node:
            case Literal():
                return self._literal(node)
            case Column(name=name):
                if not isinstance(name, str) or name not in self.schema:
                    raise ExpressionError(column_not_found(str(name), self.schema.names).message)
                field_type = self.schema.field(name).type
                return UTF8 if field_type.kind == "utf8_ref" else field_type
            case Unary(op=op) | Binary(op=op):
                function = OPERATORS.get(op)
                if function is None:
                    raise ExpressionError(f'unknown operator "{op}" in "{describe(node)}"')
                return self._apply(node, function, kids, list(children(node)))
            case Call(name=name, args=args):
                return self._call(node, name, args, kids)
            case IsNull():
                return self._remember(node, Signature((None,), BOOL8))
            case InList(operand=operand, items=items):
                return self._in_list(node, operand, items, kids)
            case Between():
                return self._between(node, kids)
            case Like():
                return self._like(node, kids)
            case Case(whens=whens, otherwise=otherwise):
                return self._case(node, whens, otherwise, kids)
            case Cast(to=to):
                problem = cast_problem(kids[0], to)
                if problem is not None:
                    raise ExpressionError(f'{problem} in "{describe(node)}"')
                return self._remember(node, Signature((None,), to))
            case Aggregate():
                return self._aggregate(node, in_aggregate)
        raise ExpressionError(f"not an expression node: {node!r}")

    def _literal(self, node: Literal) -> MaybeType:
        try:
            literal_scalar(node.value, node.type)
        except TypeProblem as exc:
            raise ExpressionError(str(exc)) from None
        return node.type

    def _apply(
        self, node: Expr, function: Function, kids: list[MaybeType], args: list[Expr]
    ) -> MaybeType:
        try:
            signature = function.type_rule(kids, args)
        except TypeProblem as exc:
            prefix = f"{function.name}: " if isinstance(node, Call) else ""
            raise ExpressionError(f'{prefix}{exc} in "{describe(node)}"') from None
        return self._remember(node, signature)

    def _call(
        self, node: Call, name: str, args: tuple[Expr, ...], kids: list[MaybeType]
    ) -> MaybeType:
        key = name.lower() if isinstance(name, str) else name
        if key in AGGREGATE_FUNCTIONS:
            raise ExpressionError(
                f'{key} is an aggregate; use an aggregate call, not a function, in "{describe(node)}"'
            )
        function = SCALAR_FUNCTIONS.get(key)
        if function is None:
            raise ExpressionError(
                f'unknown function "{name}" (supported: {", ".join(SCALAR_FUNCTIONS)}; '
                f"aggregates: {', '.join(AGGREGATE_FUNCTIONS)})"
            )
        count = len(args)
        if count < function.min_args or (
            function.max_args is not None and count > function.max_args
        ):
            raise ExpressionError(
                f"{function.name} takes {function.arity_text()} argument"
                f"{'' if function.arity_text().endswith(' 1') or function.arity_text() == '1' else 's'}, got {count} "
                f'in "{describe(node)}"'
            )
        return self._apply(node, function, kids, list(args))

    def _in_list(
        self, node: InList, operand: Expr, items: tuple[Expr, ...], kids: list[MaybeType]
    ) -> MaybeType:
        if not items:
            raise ExpressionError(f'IN needs at least one value in "{describe(node)}"')
        target: MaybeType = kids[0]
        try:
            for item_type in kids[1:]:
                target = compare_type(target, item_type)
        except TypeProblem:
            shown = ", ".join(sorted({_show(t) for t in kids[1:]}))
            raise ExpressionError(
                f'cannot compare {_show(kids[0])} with {shown} in "{describe(node)}"'
            ) from None
        nan = tuple(may_be_nan(n, t) for n, t in zip((operand, *items), kids, strict=True))
        return self._remember(node, Signature(tuple(target for _ in kids), BOOL8, nan=nan))

    def _between(self, node: Between, kids: list[MaybeType]) -> MaybeType:
        target: MaybeType = kids[0]
        try:
            for bound in kids[1:]:
                target = compare_type(target, bound)
        except TypeProblem:
            raise ExpressionError(
                f"cannot compare {_show(kids[0])} with {_show(kids[1])} and {_show(kids[2])} "
                f'in "{describe(node)}"'
            ) from None
        if not is_comparable(target):
            raise ExpressionError(f'values of type {target} have no order in "{describe(node)}"')
        nodes = (node.operand, node.low, node.high)
        nan = tuple(may_be_nan(n, t) for n, t in zip(nodes, kids, strict=True))
        return self._remember(node, Signature((target, target, target), BOOL8, nan=nan))

    def _like(self, node: Like, kids: list[MaybeType]) -> MaybeType:
        word = "ILIKE" if node.case_insensitive else "LIKE"
        if kids[0] is not None and not is_string(kids[0]):
            raise ExpressionError(f'{word} takes utf8, got {kids[0]} in "{describe(node)}"')
        pattern = node.pattern
        if not (
            isinstance(pattern, Literal)
            and (pattern.value is None or isinstance(pattern.value, str))
        ):
            raise ExpressionError(
                f'the {word} pattern must be a string literal in "{describe(node)}"'
            )
        escape = node.escape
        if escape is not None and (not isinstance(escape, str) or len(escape) > 1):
            raise ExpressionError(
                f"the {word} ESCAPE must be one character or empty, got {escape!r} "
                f'in "{describe(node)}"'
            )
        plan = None
        if isinstance(pattern.value, str):
            text = pattern.value
            if node.case_insensitive:
                text = strings.lower_text(text)
                escape = strings.lower_text(escape) if escape else escape
            try:
                plan = strings.plan_like(text, escape)
            except ExpressionError as exc:
                raise ExpressionError(f'{exc.reason} in "{describe(node)}"') from None
        return self._remember(node, Signature((UTF8, None), BOOL8, params=(plan,)))

    def _case(
        self,
        node: Case,
        whens: tuple[tuple[Expr, Expr], ...],
        otherwise: Expr | None,
        kids: list[MaybeType],
    ) -> MaybeType:
        if not whens:
            raise ExpressionError("CASE needs at least one WHEN")
        conditions = kids[0 : 2 * len(whens) : 2]
        values = kids[1 : 2 * len(whens) : 2] + ([kids[-1]] if otherwise is not None else [])
        for (condition, _), t in zip(whens, conditions, strict=True):
            if t is not None and t != BOOL8:
                raise ExpressionError(
                    f'a CASE condition must be bool8, got {t} in "{describe(condition)}"'
                )
        value_nodes = [v for _, v in whens] + ([otherwise] if otherwise is not None else [])
        try:
            result = adapted_common_type(values, value_nodes)
        except TypeProblem as exc:
            raise ExpressionError(
                f'CASE branches must share a type: {exc} in "{describe(node)}"'
            ) from None
        args = tuple(
            BOOL8 if i % 2 == 0 and i < 2 * len(whens) else result for i in range(len(kids))
        )
        return self._remember(node, Signature(args, result))

    def _aggregate(self, node: Aggregate, in_aggregate: bool) -> MaybeType:
        if not self.aggregates:
            raise ExpressionError(
                f"aggregate {describe(node)} is not allowed here: filters and computed columns "
                "are evaluated row by row (aggregates belong in an aggregation)"
            )
        if in_aggregate:
            raise ExpressionError(f'aggregate calls cannot be nested: "{describe(node)}"')
        function = AGGREGATE_FUNCTIONS.get(node.name.lower() if isinstance(node.name, str) else "")
        if function is None:
            raise ExpressionError(
                f'unknown aggregate "{node.name}" (supported: {", ".join(AGGREGATE_FUNCTIONS)})'
            )
        if node.arg is None:
            if function.name != "count" or node.distinct:
                raise ExpressionError(
                    f"{function.name}(*) is not an aggregate; did you mean count(*)?"
                )
            return self._remember(node, Signature((), function.type_rule([], []).result))
        if node.distinct and function.name not in ("count", "sum", "avg", "min", "max"):
            raise ExpressionError(
                f'DISTINCT is not supported in {function.name}, in "{describe(node)}"'
            )
        args = list(node.args)
        if len(args) != function.max_args:
            raise ExpressionError(
                f"{function.name} takes {function.arity_text()} argument"
                f"{'' if function.max_args == 1 else 's'}, got {len(args)}, "
                f'in "{describe(node)}"'
            )
        arg_types = [self._type(a, in_aggregate=True) for a in args]
        return self._apply(node, function, arg_types, args)


def _show(t: MaybeType) -> str:
    return "NULL" if t is None else str(t)


def _walk(expr: Expr) -> Iterator[Expr]:
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def _depth(expr: Expr) -> int:
    deepest = 0
    stack = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > _MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children(node))
    return deepest


# --- text for messages -------------------------------------------------------------------------


def describe(expr: Expr) -> str:
    """Compact SQL-like text of ``expr`` for messages (not for execution: see render)."""
    try:
        text = _text(expr)
    except RecursionError:
        return "<expression nested too deeply to show>"
    return text if len(text) <= 200 else text[:197] + "..."


_SIMPLE_NAME: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789")


def _text(node: Expr) -> str:
    match node:
        case Literal(value=value, type=t):
            return _literal_text(value, t)
        case Column(name=name):
            simple = name and set(name) <= _SIMPLE_NAME and not name[0].isdigit()
            return name if simple else '"' + name.replace('"', '""') + '"'
        case Unary(op="neg", operand=x):
            return f"-{_wrapped(x)}"
        case Unary(operand=x):
            return f"NOT {_wrapped(x)}"
        case Binary(op=op, left=a, right=b):
            return f"{_wrapped(a)} {op.upper()} {_wrapped(b)}"
        case IsNull(operand=x, negated=negated):
            return f"{_wrapped(x)} IS {'NOT ' if negated else ''}NULL"
        case InList(operand=x, items=items, negated=negated):
            inner = ", ".join(_text(i) for i in items)
            return f"{_wrapped(x)} {'NOT ' if negated else ''}IN ({inner})"
        case Between(operand=x, low=lo, high=hi, negated=negated):
            word = "NOT BETWEEN" if negated else "BETWEEN"
            return f"{_wrapped(x)} {word} {_wrapped(lo)} AND {_wrapped(hi)}"
        case Like(operand=x, pattern=p, escape=esc, negated=negated, case_insensitive=ci):
            word = ("NOT " if negated else "") + ("ILIKE" if ci else "LIKE")
            tail = "" if esc is None else f" ESCAPE {_literal_text(esc, UTF8)}"
            return f"{_wrapped(x)} {word} {_text(p)}{tail}"
        case Case(whens=whens, otherwise=other):
            parts = " ".join(f"WHEN {_text(c)} THEN {_text(v)}" for c, v in whens)
            tail = "" if other is None else f" ELSE {_text(other)}"
            return f"CASE {parts}{tail} END"
        case Cast(operand=x, to=to):
            return f"CAST({_text(x)} AS {to})"
        case Call(name=name, args=args):
            return f"{name}({', '.join(_text(a) for a in args)})"
        case Aggregate(name=name, arg=arg, distinct=distinct, extra_args=extra):
            inner = "*" if arg is None else ", ".join(_text(a) for a in (arg, *extra))
            return f"{name}({'DISTINCT ' if distinct else ''}{inner})"
    return repr(node)


def _wrapped(node: Expr) -> str:
    text = _text(node)
    compound = isinstance(node, Binary | Between | InList | Like | IsNull) or (
        isinstance(node, Unary) and node.op == "not"
    )
    return f"({text})" if compound else text


def _literal_text(value: object, t: FieldType | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and not math.isfinite(value):
        return f"'{value}'::DOUBLE"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return str(value)
