"""Evaluation on Arrow with DuckDB 2.0's semantics, and pushdown as ``pc.Expression``.

``evaluate(expr, table)`` type-checks, then evaluates batch by batch with vectorised
``pyarrow.compute`` kernels (no Python per row); a literal-only expression is broadcast to
the row count. ``to_arrow_expression(expr, schema)`` runs the same operator code with
``pc.Expression`` values instead of arrays, giving a filter or projection that
``pyarrow.dataset`` scans can push down; the few operators that need an eager correction
raise ``ExpressionError`` there instead.

Like DuckDB, ``CASE`` evaluates a branch only on the rows that reach it and ``coalesce`` an
argument only on the rows still NULL, so ``CASE WHEN x <> 0 THEN 10 % x END`` does not
raise on ``x = 0``. (A pushed-down ``pc.Expression`` evaluates every branch on every row:
such an error surfaces from the scan.) ``AND``/``OR`` evaluate both sides, as DuckDB does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_core.errors import BadInputError
from platform_core.schema import Field, Schema
from platform_core.types import BOOL8, UTF8, FieldType

from . import _strings as strings
from ._casts import explicit_cast
from ._kernels import (
    ConversionError,
    DivisionByZeroError,
    EvaluationError,
    NotPushableError,
    OutOfRangeError,
    Value,
    and_,
    coerce,
    compare,
    fill,
    lift,
    not_,
    null,
    or_,
    translate_arrow_error,
)
from ._types import MaybeType, arrow_type, is_float
from .checker import NULL_TYPE, Checker, describe
from .errors import ExpressionError
from .functions import OPERATORS, SCALAR_FUNCTIONS, Function, literal_scalar
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

__all__ = [
    "ConversionError",
    "DivisionByZeroError",
    "EvaluationError",
    "NotPushableError",
    "OutOfRangeError",
    "evaluate",
    "to_arrow_expression",
]

_ONE_ROW: Final = pa.record_batch({"_": pa.nulls(1)})
_IS_IN_MIN_ITEMS: Final = 8
"""Literal IN lists at least this long use one hash lookup instead of a chain of ``=``."""


def evaluate(
    expr: Expr, data: pa.Table | pa.RecordBatch, *, schema: Schema | None = None
) -> pa.Array | pa.ChunkedArray:
    """Evaluate ``expr`` over every row of ``data``: an Array for a RecordBatch, a
    ChunkedArray (one chunk per batch) for a Table.

    ``schema`` defaults to the data's own (Arrow types widened to the vocabulary); given,
    the referenced columns are cast to it. Raises ExpressionError for ill-typed
    expressions and its subclasses (OutOfRangeError, DivisionByZeroError,
    ConversionError) where DuckDB would raise on the data.
    """
    if not isinstance(data, pa.Table | pa.RecordBatch):
        raise ExpressionError(
            f"evaluate takes a pyarrow Table or RecordBatch, got {type(data).__name__}"
        )
    checker = Checker(schema if schema is not None else _schema_of(data, expr))
    result_type = checker.check(expr)
    to = arrow_type(result_type)
    plan = _Plan()
    if isinstance(data, pa.RecordBatch):
        return _evaluate_batch(checker, expr, data, to, plan)
    batches = data.to_batches()
    if not batches:  # nothing runs on no rows, but what DuckDB's binder computes still does
        batches = [_empty_batch(data.schema)]
    chunks = [_evaluate_batch(checker, expr, batch, to, plan) for batch in batches]
    return pa.chunked_array(chunks, type=to)


def to_arrow_expression(expr: Expr, schema: Schema) -> pc.Expression:
    """``expr`` as a ``pyarrow.compute.Expression`` over columns stored as ``schema`` says.

    Use it as ``dataset.to_table(filter=...)`` (a bool8 expression) or in ``columns=``.
    Raises ExpressionError for aggregates and for operators that need an eager correction
    (listed in the README). Errors DuckDB raises on data (overflow, ``% 0``) are raised by
    the scan as ``pyarrow.ArrowInvalid``.
    """
    checker = Checker(schema)
    checker.check(expr)
    evaluator = _Evaluator(checker, None)
    evaluator.prepare(expr)
    try:
        result = evaluator.value(expr)
    except RecursionError:
        raise ExpressionError("expression is nested too deeply to push down") from None
    return result if isinstance(result, pc.Expression) else pc.scalar(result)


def _evaluate_batch(
    checker: Checker,
    expr: Expr,
    batch: pa.RecordBatch,
    to: pa.DataType,
    plan: _Plan,
) -> pa.Array:
    evaluator = _Evaluator(checker, batch, plan)
    evaluator.prepare(expr)
    if batch.num_rows == 0:  # DuckDB runs nothing on no rows
        return pa.array([], type=to)
    try:
        result = evaluator.value(expr)
    except RecursionError:
        raise ExpressionError("expression is nested too deeply to evaluate") from None
    array = _as_array(result, batch.num_rows, to)
    return array if array.type == to else array.cast(to)


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.record_batch([pa.array([], type=field.type) for field in schema], schema=schema)


def _schema_of(data: pa.Table | pa.RecordBatch, expr: Expr) -> Schema:
    """The data's schema in the vocabulary; unsupported columns only matter if used."""
    used = {node.name for node in _nodes(expr) if isinstance(node, Column)}
    fields = []
    for arrow_field in data.schema:
        try:
            fields.append(Field.from_arrow(arrow_field))
        except BadInputError as exc:
            if arrow_field.name in used:
                raise ExpressionError(exc.message) from None
    return Schema(fields)


def _nodes(expr: Expr) -> list[Expr]:
    """Every node, parents before children (iteratively: expressions may be deep)."""
    out, stack = [], [expr]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(children(node))
    return out


def _as_array(value: Value, length: int, to: pa.DataType) -> pa.Array:
    """``value`` as an Array of ``length`` rows (a scalar is repeated)."""
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    if isinstance(value, pa.Scalar):
        if value.type != to:
            value = value.cast(to)
        return pa.repeat(value, length)
    assert isinstance(value, pa.Array)
    return value


def _null_folding_args(function: Function, args: list[Expr]) -> list[Expr]:
    if function.constant_null == "any":
        return args
    return args[:1] if function.constant_null == "left" else []


class _Plan:
    """What is known about nodes independently of the data, shared by all batches:
    foldable subtrees, calls the binder folds to NULL, and the folded constants."""

    def __init__(self) -> None:
        self.folded: dict[int, bool] = {}
        self.bind_null: dict[int, bool] = {}
        self.constants: dict[int, pa.Scalar | ExpressionError] = {}


class _Evaluator:
    """Evaluates nodes over one RecordBatch, or builds ``pc.Expression``s (batch None)."""

    def __init__(
        self, checker: Checker, batch: pa.RecordBatch | None, plan: _Plan | None = None
    ) -> None:
        self.checker = checker
        self.batch = batch
        self.lazy = batch is None
        self.plan = _Plan() if plan is None else plan

    def value(self, node: Expr) -> Value:
        """The value of ``node``: NULL if DuckDB's binder folds it so, the cached constant
        if it has no columns, else evaluated (Arrow errors become ExpressionErrors)."""
        if self._bind_null(node):
            return null(arrow_type(self.checker.raw_type(node) or NULL_TYPE), lazy=False)
        if self._folded(node) and not isinstance(node, Literal):
            return self._constant(node)
        return self._evaluate(node)

    def _evaluate(self, node: Expr) -> Value:
        try:
            return self._value(node)
        except pa.ArrowException as exc:
            raise translate_arrow_error(exc, f'"{describe(node)}"') from None

    def prepare(self, expr: Expr) -> None:
        """Decide folding bottom-up, so that later lookups never recurse deeply.

        DuckDB's binder computes ``-x`` for a column-free ``x`` while binding, so an error
        in such an ``x`` is raised even where the expression would never evaluate it.
        """
        for node in reversed(_nodes(expr)):
            self._folded(node)
            if not (isinstance(node, Unary) and node.op == "neg"):
                continue
            if self._folded(node.operand) and not self._bind_null(node.operand):
                self._constant(node.operand)

    def _type(self, node: Expr) -> MaybeType:
        return self.checker.raw_type(node)

    def _value(self, node: Expr) -> Value:
        match node:
            case Literal(value=v, type=t):
                return literal_scalar(v, t)
            case Column(name=name):
                return self._column(name)
            case Unary(op=op) | Binary(op=op):
                return self._apply(node, OPERATORS[op], list(children(node)))
            case Call(name=name, args=args):
                if name.lower() == "coalesce":
                    return self._coalesce(node, args)
                return self._apply(node, SCALAR_FUNCTIONS[name.lower()], list(args))
            case IsNull(operand=x, negated=negated):
                v = self.value(x)
                return pc.is_valid(v) if negated else pc.is_null(v)
            case InList():
                return self._in_list(node)
            case Between(operand=x, low=lo, high=hi, negated=negated):
                sig = self.checker.signature(node)
                target = sig.args[0]
                a = self._coerced(x, target)
                if isinstance(a, pa.Scalar) and not a.is_valid:
                    return null(pa.bool_(), lazy=False)  # both comparisons stop at NULL
                low, high = (self._coerced(n, target) for n in (lo, hi))
                inside = and_(
                    compare(">=", a, low, a_nan=sig.nan[0], b_nan=sig.nan[1]),
                    compare("<=", a, high, a_nan=sig.nan[0], b_nan=sig.nan[2]),
                )
                return not_(inside) if negated else inside
            case Like():
                return self._like(node)
            case Case():
                return self._case(node)
            case Cast(operand=x, to=to):
                return explicit_cast(self.value(x), self._type(x), to)
            case Aggregate():
                raise ExpressionError(
                    f"aggregate {describe(node)} cannot be evaluated row by row; "
                    "aggregations are executed by emsqrt and lake"
                )
        raise ExpressionError(f"not an expression node: {node!r}")  # pragma: no cover

    # --- pieces ----------------------------------------------------------------------------

    def _folded(self, node: Expr) -> bool:
        """DuckDB's "foldable": no column left once constant-NULL calls are folded."""
        known = self.plan.folded.get(id(node))
        if known is None:
            if isinstance(node, Column | Aggregate):
                known = False
            else:
                known = self._bind_null(node) or all(self._folded(c) for c in children(node))
            self.plan.folded[id(node)] = known
        return known

    def _bind_null(self, node: Expr) -> bool:
        """Whether DuckDB's binder replaces ``node`` by NULL: a call with default NULL
        handling whose (left, for comparisons) argument is a constant that is NULL. The
        other arguments are then never evaluated, so their errors do not happen."""
        known = self.plan.bind_null.get(id(node))
        if known is None:
            known = False
            candidates: list[Expr] = []
            match node:
                case Unary(op=op) | Binary(op=op):
                    candidates = _null_folding_args(OPERATORS[op], list(children(node)))
                case Call(name=name, args=args) if name.lower() in SCALAR_FUNCTIONS:
                    candidates = _null_folding_args(SCALAR_FUNCTIONS[name.lower()], list(args))
                case Like(operand=x, pattern=p):
                    candidates = [x, p]
                case Between(operand=x):  # DuckDB: (x >= low) AND (x <= high)
                    candidates = [x]
            known = any(self._is_null_constant(a) for a in candidates)
            self.plan.bind_null[id(node)] = known
        return known

    def _constant(self, node: Expr) -> pa.Scalar:
        """A foldable subtree, evaluated once (value or error) and reused as a scalar."""
        known = self.plan.constants.get(id(node))
        if known is None:
            try:
                value = _Evaluator(self.checker, _ONE_ROW, self.plan)._evaluate(node)
                known = value[0] if isinstance(value, pa.Array) else value
            except ExpressionError as exc:
                known = exc
            self.plan.constants[id(node)] = known
        if isinstance(known, ExpressionError):
            raise known
        return known

    def _is_null_constant(self, node: Expr) -> bool:
        """Whether ``node`` has DuckDB's NULL type (an untyped NULL, a CASE of only those),
        or is foldable and evaluates to NULL (an error counts as no)."""
        if self.checker.raw_type(node) is None:
            return True
        if not self._folded(node):
            return False
        if self._bind_null(node):
            return True
        try:
            return not self._constant(node).is_valid
        except ExpressionError:
            return False

    def _column(self, name: str) -> Value:
        field_type = self.checker.schema.field(name).type
        to = arrow_type(field_type)
        if self.batch is None:
            field = pc.field(name)
            return field.cast(to) if field_type.kind in ("utf8_ref", "json") else field
        if name not in self.batch.schema.names:
            raise ExpressionError(f'column "{name}" is in the schema but not in the data')
        column = self.batch.column(name)
        if column.type != to:
            try:
                column = pc.cast(column, to)
            except pa.ArrowException as exc:
                raise ExpressionError(
                    f'column "{name}" of Arrow type {column.type} does not fit its schema type '
                    f"{field_type}: {exc}"
                ) from None
        return column

    def _coerced(self, node: Expr, target: MaybeType) -> Value:
        value = self.value(node)
        return value if target is None else coerce(value, self._type(node), target)

    def _apply(self, node: Expr, function: Function, args: list[Expr]) -> Value:
        """Evaluate the arguments in order, then the implementation.

        As DuckDB's executor does for calls with default NULL handling, an argument that
        comes out a constant NULL ends the call there: NULL, later arguments unevaluated.
        """
        sig = self.checker.signature(node)
        to = arrow_type(sig.result or NULL_TYPE)
        assert function.implement is not None
        values = []
        for position, arg in enumerate(args):
            value = self.value(arg)
            values.append(value)
            stops = function.constant_null == "any" or (
                function.constant_null == "left" and position == 0
            )
            if stops and isinstance(value, pa.Scalar) and not value.is_valid:
                return null(to, lazy=False)
        result = function.implement(values, [self._type(a) for a in args], sig)
        if isinstance(result, pa.Array | pa.Scalar) and result.type != to:
            result = result.cast(to)
        return result

    def _in_list(self, node: InList) -> Value:
        sig = self.checker.signature(node)
        target = sig.args[0]
        x = self._coerced(node.operand, target)
        items = node.items
        if target is None:
            return null(pa.bool_(), lazy=False)
        fast = self._value_set(items, target)
        if fast is not None:
            values, has_null = fast
            found = pc.is_in(x, value_set=values, skip_nulls=True)
            unknown = null(pa.bool_(), lazy=False)
            result = (
                or_(found, unknown)
                if has_null
                else pc.if_else(*lift(pc.is_valid(x), found, unknown))
            )
        else:
            result = None
            for item, nan in zip(items, sig.nan[1:], strict=True):
                term = compare("=", x, self._coerced(item, target), a_nan=sig.nan[0], b_nan=nan)
                result = term if result is None else or_(result, term)
        return not_(result) if node.negated else result

    def _value_set(self, items: Sequence[Expr], target: FieldType) -> tuple[pa.Array, bool] | None:
        """A hashable value set for long all-literal IN lists (not for floats: NaN, -0.0)."""
        if len(items) < _IS_IN_MIN_ITEMS or is_float(target):
            return None
        if not all(isinstance(item, Literal) for item in items):
            return None
        to = arrow_type(target)
        values = []
        has_null = False
        for item in items:
            assert isinstance(item, Literal)
            if item.value is None:
                has_null = True
                continue
            scalar = coerce(literal_scalar(item.value, item.type), item.type, target)
            assert isinstance(scalar, pa.Scalar)
            values.append(scalar)
        return pa.array([v.as_py() for v in values], type=to), has_null

    def _like(self, node: Like) -> Value:
        (plan,) = self.checker.signature(node).params
        if plan is None:
            return null(pa.bool_(), lazy=False)
        text = self._coerced(node.operand, UTF8)
        assert isinstance(plan, strings.LikePlan)
        if node.case_insensitive:
            text = strings.duckdb_lower(text)
        return strings.like(text, plan, negated=node.negated)

    # --- lazy special forms ----------------------------------------------------------------

    def _case(self, node: Case) -> Value:
        sig = self.checker.signature(node)
        result_type = sig.result if sig.result is not None else NULL_TYPE
        to = arrow_type(result_type)
        if self.lazy:
            # Branches behind a constant condition are decided now: a pushed-down CASE
            # evaluates every branch it keeps on every row.
            branches: list[tuple[Value, Expr]] = []
            out = self._branch(node.otherwise, result_type)
            for condition, value in node.whens:
                test = fill(self._coerced(condition, BOOL8), False)
                if isinstance(test, pa.Scalar):
                    if not test.as_py():
                        continue
                    out = self._branch(value, result_type)
                    break
                branches.append((test, value))
            for test, value in reversed(branches):
                out = pc.if_else(*lift(test, self._branch(value, result_type), out))
            return out
        assert self.batch is not None
        rows = self.batch.num_rows
        out_array = pa.nulls(rows, to)
        remaining = np.ones(rows, dtype=bool)
        for condition, value in node.whens:
            if not remaining.any():
                break
            positions = np.flatnonzero(remaining)
            test = self._select(condition, positions)
            if not test.any():
                continue
            if test.all() and positions.size == rows:
                # DuckDB: everything true in the first check that takes rows: the THEN
                # value is the result as it is (a constant stays a constant).
                return self._coerced(value, result_type)
            taken = positions[test]
            out_array = self._fill(out_array, taken, value, result_type)
            remaining[taken] = False
        if remaining.all():  # nothing taken: the ELSE value (or NULL) as it is
            return self._branch(node.otherwise, result_type)
        if node.otherwise is not None and remaining.any():
            out_array = self._fill(
                out_array, np.flatnonzero(remaining), node.otherwise, result_type
            )
        return out_array

    def _select(self, condition: Expr, positions: np.ndarray) -> np.ndarray:
        """Which of the rows at ``positions`` satisfy ``condition`` (NULL counts as no).

        As DuckDB selects rows for a CASE branch: ``AND`` evaluates its right side only
        on the rows its left side kept, ``OR`` only on the rows its left side did not.
        """
        if isinstance(condition, Between) and not condition.negated:
            # DuckDB: x >= low on the rows, then x <= high on those that passed
            above = self._select(Binary(">=", condition.operand, condition.low), positions)
            kept = positions[above]
            below = self._select(Binary("<=", condition.operand, condition.high), kept)
            out = np.zeros(positions.size, dtype=bool)
            out[np.flatnonzero(above)[below]] = True
            return out
        if isinstance(condition, Binary) and condition.op in ("and", "or"):
            left = self._select(condition.left, positions)
            rest = positions[left] if condition.op == "and" else positions[~left]
            right = self._select(condition.right, rest) if rest.size else np.zeros(0, bool)
            if condition.op == "and":
                out = np.zeros(positions.size, dtype=bool)
                out[np.flatnonzero(left)[right]] = True
                return out
            out = left.copy()
            out[np.flatnonzero(~left)[right]] = True
            return out
        subset = self._subset(positions, condition)
        test = fill(subset._coerced(condition, BOOL8), False)
        mask: np.ndarray = _as_array(test, positions.size, pa.bool_()).to_numpy(
            zero_copy_only=False
        )
        return mask

    def _branch(self, node: Expr | None, result_type: FieldType) -> Value:
        if node is None:
            return null(arrow_type(result_type), lazy=False)
        return self._coerced(node, result_type)

    def _coalesce(self, node: Call, args: Sequence[Expr]) -> Value:
        sig = self.checker.signature(node)
        result_type = sig.result if sig.result is not None else NULL_TYPE
        if self.lazy:
            return pc.coalesce(*lift(*(self._coerced(a, result_type) for a in args)))
        assert self.batch is not None
        rows = self.batch.num_rows
        first = 0
        value = self._coerced(args[0], result_type)
        # While every row is still NULL, DuckDB evaluates the next argument on all rows
        # and passes a constant through as it is (a constant NULL stays one).
        while isinstance(value, pa.Scalar) and not value.is_valid and first + 1 < len(args):
            first += 1
            value = self._coerced(args[first], result_type)
        if isinstance(value, pa.Scalar):
            return value
        out = _as_array(value, rows, arrow_type(result_type))
        for arg in args[first + 1 :]:
            missing = np.flatnonzero(out.is_null().to_numpy(zero_copy_only=False))
            if not missing.size:
                break
            out = self._fill(out, missing, arg, result_type)
        return out

    def _subset(self, positions: np.ndarray, node: Expr) -> _Evaluator:
        """An evaluator over the rows at ``positions``, with only the columns ``node`` uses."""
        assert self.batch is not None
        # Only columns present: the one-row batch of constant folding has none, and a column
        # under a NULL-bound call is never read.
        present = set(self.batch.schema.names)
        names = sorted({n.name for n in _nodes(node) if isinstance(n, Column)} & present)
        batch = (
            self.batch.select(names)
            if names
            else pa.record_batch({"_": pa.nulls(self.batch.num_rows)})
        )
        if positions.size != self.batch.num_rows:
            batch = batch.take(pa.array(positions, pa.int64()))
        return _Evaluator(self.checker, batch, self.plan)

    def _fill(
        self, out: pa.Array, positions: np.ndarray, node: Expr, result_type: FieldType
    ) -> pa.Array:
        """``out`` with the rows at ``positions`` set to ``node`` evaluated on those rows."""
        to = arrow_type(result_type)
        values = _as_array(
            self._subset(positions, node)._coerced(node, result_type), positions.size, to
        )
        mask = np.zeros(len(out), dtype=bool)
        mask[positions] = True
        return pc.replace_with_mask(out, pa.array(mask), values.cast(to))
