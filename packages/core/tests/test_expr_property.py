"""Property tests: the expression language evaluated on Arrow equals DuckDB on the rendered SQL.

Random well-typed expressions (``expr_strategies``) over random tables with NULLs are
evaluated twice: by ``evaluate`` on Arrow and by DuckDB on ``to_sql``'s text over the same
table. The results must be equal (floats within 1e-9 relative, NaN equal to NaN, NULL to
NULL; everything else exactly), ``evaluate``'s Arrow type and DuckDB's type must both be
the checker's, and when one side raises the other must too (ours as a ``PlatformError``).

Whether DuckDB raises depends on more than the data: its binder, optimizer and executor skip
work whose result cannot matter. A one-sided error passes only when one of these explains
it, re-checked on the example at hand (``explain_one_sided``; each reason is an event):

* DuckDB's optimizer decides it: DuckDB with the optimizer off agrees with ``evaluate``
  (constant folding raises on ``nullif(1, CAST('x' AS INTEGER))`` in a CASE branch no row
  takes; ``false AND <error>`` is simplified away).
* A stricter CAST from text, as ``_casts`` documents: ``evaluate`` refuses text DuckDB
  reads (never the plain ISO/decimal forms; every such text is listed as an event).
* A known divergence (``KNOWN_DIVERGENCES``): rewriting the expression the way DuckDB
  treats it makes ``evaluate`` agree exactly, or a predicate pins the case down. Each has
  a minimal repro below (xfail). ``EXPR_PROPERTY_STRICT=1`` makes them failures.

Second property: the JSON form and the rendered SQL read back as expressions that check to
the same type and evaluate to the same result (aggregates: read back and check the same).
Run with ``--hypothesis-show-statistics`` for the events: ``op: ...`` (examples using each
operator and function), ``cast: a -> b``, ``type: ...`` and ``outcome: ...``.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import importlib.util
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TypeAlias

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, event, example, find, given, note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument, NoSuchExample

from platform_core.errors import PlatformError
from platform_core.expr.checker import Checker, check, node_types
from platform_core.expr.errors import ExpressionError
from platform_core.expr.evaluate import evaluate
from platform_core.expr.nodes import (
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
    Unary,
    children,
    is_nan_literal,
    lit,
    walk,
)
from platform_core.expr.parser import parse
from platform_core.expr.render import duckdb_type, to_sql
from platform_core.expr.serde import from_json, to_json
from platform_core.types import FieldType, from_arrow, parse_type


def _load_sibling(name: str) -> ModuleType:
    """Import ``tests/<name>.py`` by path (``--import-mode=importlib`` puts no test
    directory on ``sys.path``), once, under a name no other package's tests use."""
    qualified = f"_platform_core_tests_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module


S = _load_sibling("expr_strategies")

pytestmark = pytest.mark.slow

#: `nox -s long` (PLATFORM_TESTS_LONG=1): 1000 examples; CI's default run: 300 (a fresh seed
#: each run, so the runs together still cover the space).
LONG = os.environ.get("PLATFORM_TESTS_LONG") == "1"
EXAMPLES = 1000 if LONG else 300
REL_TOL = 1e-9
STRICT = os.environ.get("EXPR_PROPERTY_STRICT") == "1"

#: Rows of NULLs in every column of the schema.
NULL_ROWS = pa.Table.from_pylist([{}, {}], schema=S.SCHEMA.to_arrow())
_ONE_ROW_OF_SCHEMA = NULL_ROWS.slice(0, 1)

Result: TypeAlias = pa.ChunkedArray | Exception


def say(text: str) -> None:
    """``note`` inside a hypothesis test (shown on failure); nothing elsewhere."""
    with contextlib.suppress(InvalidArgument):
        note(text)


def label(text: str) -> None:
    """``event`` inside a hypothesis test (counted in the statistics); nothing elsewhere."""
    with contextlib.suppress(InvalidArgument):
        event(text)


# --- running both sides --------------------------------------------------------------------


@functools.cache
def _duckdb() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    return con


def run_duckdb(sql: str, table: pa.Table, *, optimize: bool = True) -> Result:
    """``SELECT <sql> AS r FROM t`` over the table; the error if DuckDB raises."""
    con = _duckdb()
    con.execute("PRAGMA enable_optimizer" if optimize else "PRAGMA disable_optimizer")
    con.register("t", table)
    try:
        column: pa.ChunkedArray = con.sql(f"SELECT {sql} AS r FROM t").to_arrow_table()["r"]
        return column
    except duckdb.Error as exc:
        return exc
    finally:
        con.unregister("t")
        con.execute("PRAGMA enable_optimizer")


def run_ours(expr: Expr, table: pa.Table) -> Result:
    """``evaluate`` as a ChunkedArray; the error if it raises a platform error (any other
    exception propagates and fails the test)."""
    try:
        result = evaluate(expr, table)
    except PlatformError as exc:
        return exc
    if isinstance(result, pa.ChunkedArray):
        return result
    chunked: pa.ChunkedArray = pa.chunked_array([result])
    return chunked


def same_value(a: object, b: object) -> bool:
    """NULL = NULL, NaN = NaN, floats within 1e-9 relative, all else exact (bool is no int)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        x, y = float(a), float(b)  # type: ignore[arg-type]
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return x == y or math.isclose(x, y, rel_tol=REL_TOL, abs_tol=0.0)
    return type(a) is type(b) and a == b


def python_values(values: pa.ChunkedArray) -> list[object]:
    """The values as Python objects; dates and timestamps as their day and microsecond
    counts (DuckDB's years beyond 9999, and its infinite dates, do not fit ``datetime``)."""
    if pa.types.is_date32(values.type):
        values = values.cast(pa.int32())
    elif pa.types.is_timestamp(values.type):
        values = values.cast(pa.int64())
    result: list[object] = values.to_pylist()
    return result


def differences(ours: pa.ChunkedArray, theirs: pa.ChunkedArray) -> list[str]:
    """The rows where the two results differ, as text."""
    a, b = python_values(ours), python_values(theirs)
    if len(a) != len(b):
        return [f"{len(a)} rows from evaluate, {len(b)} from DuckDB"]
    return [
        f"row {i}: evaluate {x!r}, DuckDB {y!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True))
        if not same_value(x, y)
    ]


def agree(ours: Result, theirs: Result) -> bool:
    """Both raise, or both give the same values."""
    if isinstance(ours, Exception) or isinstance(theirs, Exception):
        return isinstance(ours, Exception) and isinstance(theirs, Exception)
    return not differences(ours, theirs)


def show(result: Result) -> str:
    if isinstance(result, Exception):
        return f"raises {type(result).__name__}: {str(result).splitlines()[0]}"
    try:
        return f"{result.to_pylist()!r} ({result.type})"
    except (OverflowError, ValueError):  # DuckDB's infinite dates do not fit Python's
        return f"{result} ({result.type})"


# --- the main property ---------------------------------------------------------------------


def compare_with_duckdb(expr: Expr, table: pa.Table, checked: FieldType) -> str:
    """Evaluate ``expr`` both ways and assert they agree; the outcome, for an event."""
    sql = to_sql(expr)
    ours, theirs = run_ours(expr, table), run_duckdb(sql, table)
    say(f"evaluate: {show(ours)}")
    say(f"DuckDB:   {show(theirs)}")
    if isinstance(ours, Exception) != isinstance(theirs, Exception):
        reason = explain_one_sided(expr, sql, table, ours, theirs)
        assert reason is not None, "only one side raised"
        return reason
    if isinstance(ours, Exception):
        return "both raise"
    assert isinstance(theirs, pa.ChunkedArray)
    assert ours.type == checked.to_arrow(), f"evaluate gave {ours.type}, the checker {checked}"
    if theirs.type != pa.null() and from_arrow(theirs.type) != checked:
        # (DuckDB's type of a bare untyped NULL is NULL.)
        assert negated_minimum(expr) is not None, f"DuckDB gave {theirs.type}, checker {checked}"
        assert not STRICT, "known divergence: DuckDB folds -(constant) when binding"
        return "known divergence: DuckDB folds -(constant) when binding"
    assert len(ours) == table.num_rows
    diffs = differences(ours, theirs)
    assert not diffs, "\n".join(diffs)
    return "equal values" if table.num_rows else "equal (no rows)"


def explain_one_sided(
    expr: Expr, sql: str, table: pa.Table, ours: Result, theirs: Result
) -> str | None:
    """Why only one side raised, if a documented DuckDB behaviour explains it (re-checked on
    this example); None otherwise."""
    unoptimized = run_duckdb(sql, table, optimize=False)
    if agree(ours, unoptimized):
        say(f"DuckDB without its optimizer: {show(unoptimized)}")
        return "one-sided: DuckDB's optimizer decides the error"
    if isinstance(ours, ExpressionError) and stricter_text_cast(ours):
        return "one-sided: stricter CAST from text (documented)"
    for divergence in KNOWN_DIVERGENCES:
        if divergence.explains(expr, table, ours, theirs):
            assert not STRICT, f"known divergence: {divergence.name}"
            return f"known divergence: {divergence.name}"
    return None


# Text that any CAST from utf8 must read (the plain ISO and decimal forms); evaluate() may
# refuse other text DuckDB reads (it documents parsing text more strictly than DuckDB).
_SPACE = "[ \t\n\r\f\v]*"
PLAIN_TEXT_FORMS: dict[str, str] = {
    "i32": r"[+-]?[0-9]+",
    "i64": r"[+-]?[0-9]+",
    "f64": r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?",
    "bool8": r"(?i:true|false)",  # a scoped flag: the form is embedded in a larger pattern
    "date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "timestamp": r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?",
}
_CONVERSION = re.compile(
    r"Could not convert string ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") to (\S+)"
)


def stricter_text_cast(error: ExpressionError) -> bool:
    """Whether ``error`` refused text DuckDB reads, outside the plain forms (recorded as an
    event, so the statistics list every text refused this way)."""
    match = _CONVERSION.search(str(error))
    if match is None:
        return False
    text, target = ast.literal_eval(match[1]), parse_type(match[2])
    form = PLAIN_TEXT_FORMS[target.kind]
    if re.fullmatch(f"{_SPACE}(?:{form}){_SPACE}", text):
        return False  # a plain form refused: a real difference
    cast = run_duckdb(f"CAST({to_sql(lit(text))} AS {duckdb_type(target)})", _ONE_ROW)
    say(f"stricter CAST: {text!r} as {target}; DuckDB reads {show(cast)}")
    if isinstance(cast, Exception):
        return False
    label(f"stricter cast: {text!r} as {target}")
    return True


_ONE_ROW = pa.table({"x": [1]})


# --- known divergences: DuckDB behaviours evaluate() does not reproduce ----------------------
#
# Each is checked on the example at hand: rewriting the expression the way DuckDB treats it
# must make evaluate() agree with DuckDB exactly, or the predicate must pin the case down.
# Each also has a minimal repro below (test_known_divergence, xfail).


@dataclasses.dataclass(frozen=True)
class Divergence:
    name: str
    explains: Callable[[Expr, pa.Table, Result, Result], bool]


def _by_rewrite(
    rewrite: Callable[[Expr, pa.Table], Expr],
) -> Callable[[Expr, pa.Table, Result, Result], bool]:
    def explains(expr: Expr, table: pa.Table, ours: Result, theirs: Result) -> bool:
        rewritten = rewrite(expr, table)
        if rewritten == expr:
            return False
        if not agree(run_ours(rewritten, table), theirs):
            return False
        say(f"as DuckDB treats it: {to_sql(rewritten)}")
        return True

    return explains


def skip_arguments_after_null(expr: Expr, table: pa.Table) -> Expr:
    """DuckDB evaluates an operator or function (one with default NULL handling) as NULL
    without evaluating (the rest of) its arguments when one is a NULL it knows of early:

    * binder: an argument that is column-free and NULL (``NULL + x``, ``abs(CAST(NULL AS
      INTEGER)) * x``) or has the type NULL (``CASE WHEN b THEN NULL END + x``) folds the
      call to NULL; no argument is evaluated;
    * executor: an argument that comes out as a constant NULL vector, as a CASE (or
      nullif, a CASE in DuckDB) does when every row takes a NULL branch: the arguments
      after it are not evaluated (``nullif(i, i) * (i * i)`` is NULL, ``(i * i) *
      nullif(i, i)`` overflows). evaluate() follows both rules in most cases; not for
      ``coalesce(nullif(i, i)) * (i * i)``.

    Folds (checked in DuckDB 2.0): arithmetic, comparisons, ``||``, unary minus and NOT,
    CAST, LIKE/ILIKE, the operand of BETWEEN and of IN (binder only) and the one item of
    ``x IN (y)`` (bound as ``x = y``), the first argument of nullif, every argument of the
    other scalar functions but coalesce, greatest and least. A BETWEEN whose two bounds are
    NULL folds too, whatever its operand (bound as ``x >= low AND x <= high``: both sides
    fold to NULL, so the AND does): ``(i BETWEEN NULL AND NULL) || CAST('' AS BOOLEAN)`` is
    NULL in DuckDB, where evaluate() reads the CAST and raises (CI's property run).
    The executor case is approximated by "NULL on every row of the table"."""

    def fold(node: Expr) -> Expr:
        kids = [fold(child) for child in children(node)]
        rebuilt = _with_children(node, kids)
        positions = _null_folding_positions(node, len(kids))
        if any(_bound_null(kids[i]) for i in positions):
            return Literal(None, _raw_type(rebuilt))
        if isinstance(node, Between) and _bound_null(kids[1]) and _bound_null(kids[2]):
            return Literal(None, _raw_type(rebuilt))
        if isinstance(node, InList):
            if len(kids) == 2 and _bound_null(kids[1]):
                # DuckDB binds ``x IN (y)`` as ``x = y``: NULL folds it as it folds ``=``
                return Literal(None, _raw_type(rebuilt))
            return rebuilt
        for i in positions:
            if _case_like(kids[i]) and _null_on_every_row(kids[i], table):
                # The arguments before it were evaluated (their errors surface).
                evaluated = [IsNull(kids[j], negated=True) for j in range(i)]
                return _vector_null(_raw_type(rebuilt), evaluated)
        return rebuilt

    return fold(expr)


def _raw_type(node: Expr) -> FieldType | None:
    checker = Checker(S.SCHEMA)
    checker.check(node)
    return checker.raw_type(node)


def _bound_null(node: Expr) -> bool:
    """A NULL DuckDB's binder sees: NULL-typed, or column-free and evaluating to NULL."""
    if _raw_type(node) is None:
        return True
    if any(isinstance(n, Column) for n in walk(node)):
        return False
    value = run_ours(node, _ONE_ROW_OF_SCHEMA)
    return not isinstance(value, Exception) and value[0].as_py() is None


def _case_like(node: Expr) -> bool:
    """A node that can come out of DuckDB's executor as a constant NULL vector while
    reading columns: CASE and nullif, and coalesce/greatest/least passing one on."""
    names = ("nullif", "coalesce", "greatest", "least")
    return isinstance(node, Case) or (isinstance(node, Call) and node.name in names)


def _null_on_every_row(node: Expr, table: pa.Table) -> bool:
    value = run_ours(node, table)
    return not isinstance(value, Exception) and value.null_count == len(value)


def _vector_null(type_: FieldType | None, evaluated: Sequence[Expr]) -> Expr:
    """A CASE that is NULL on every row (so a constant NULL vector for the parent) after
    evaluating ``evaluated`` on every row."""
    condition: Expr = IsNull(Column(next(iter(S.COLUMNS))))
    for term in evaluated:
        condition = Binary("and", term, condition)
    return Case(((condition, Literal(None, type_)),), Literal(None, type_))


def _null_folding_positions(node: Expr, count: int) -> range:
    match node:
        case Binary(op="and" | "or") | Call(name="coalesce" | "greatest" | "least"):
            return range(0)
        case Binary() | Unary() | Cast() | Like():
            return range(count)
        case InList() | Between() | Call(name="nullif"):
            return range(1)
        case Call():
            return range(count)
    return range(0)


def short_circuit_case_conditions(expr: Expr, table: pa.Table) -> Expr:
    """DuckDB evaluates a CASE condition in "select" mode: ``a AND b`` evaluates ``b`` only
    on the rows where ``a`` is true, ``a OR b`` only where it is not, and ``x BETWEEN lo
    AND hi`` evaluates ``hi`` only where ``x >= lo`` (outside CASE conditions, and for NOT
    BETWEEN, everything on every row). ``CASE WHEN i BETWEEN NULL AND i * i THEN 1 END``
    is NULL in DuckDB where ``i * i`` overflows; evaluate() raises. Rewritten as nested
    CASEs."""

    def condition(node: Expr) -> Expr:
        match node:
            case Binary(op="and", left=a, right=b):
                return Case(((condition(a), condition(b)),), lit(False))
            case Binary(op="or", left=a, right=b):
                return Case(((condition(a), lit(True)),), condition(b))
            case Between(operand=x, low=low, high=high, negated=False):
                x = rewrite(x)
                above = Binary(">=", x, rewrite(low))
                return Case(((above, Binary("<=", x, rewrite(high))),), lit(False))
        return rewrite(node)

    def rewrite(node: Expr) -> Expr:
        if isinstance(node, Case):
            whens = tuple((condition(c), rewrite(v)) for c, v in node.whens)
            other = None if node.otherwise is None else rewrite(node.otherwise)
            return Case(whens, other)
        return _with_children(node, [rewrite(child) for child in children(node)])

    return rewrite(expr)


def both_rewrites(expr: Expr, table: pa.Table) -> Expr:
    return skip_arguments_after_null(short_circuit_case_conditions(expr, table), table)


def negated_constant(expr: Expr, table: pa.Table, ours: Result, theirs: Result) -> bool:
    """DuckDB's binder evaluates ``-x`` for a column-free ``x`` on the spot (to widen the
    type when ``x`` is its type's minimum), so ``-CAST(-2147483648 AS INTEGER)`` is the
    BIGINT 2147483648 (evaluate() raises, as DuckDB does for ``-x`` of a column; the
    platform has no HUGEINT for the i64 case; the wider type also changes the type of what
    contains it) and an error in ``x`` surfaces even where ``-x`` is never evaluated:
    ``coalesce(1, -CAST('x' AS INTEGER))`` raises in DuckDB."""
    if isinstance(theirs, Exception) and not isinstance(ours, Exception):
        for node in _negated_constants(expr):
            alone = run_duckdb(to_sql(node), _ONE_ROW)
            say(f"DuckDB: {to_sql(node)} = {show(alone)}")
            if isinstance(alone, Exception):
                return True
        return False
    overflow = isinstance(ours, ExpressionError) and "overflow" in str(ours).lower()
    return overflow and negated_minimum(expr) is not None


def _negated_constants(expr: Expr) -> list[Unary]:
    return [
        node
        for node in walk(expr)
        if isinstance(node, Unary)
        and node.op == "neg"
        and not any(isinstance(n, Column) for n in walk(node.operand))
    ]


def negated_minimum(expr: Expr) -> Unary | None:
    """A ``-x`` in ``expr`` with a column-free ``x`` at its type's minimum, which DuckDB
    widens (checked in DuckDB); None if there is none."""
    minima = {"i32": -(2**31), "i64": -(2**63)}
    for node in _negated_constants(expr):
        minimum = minima.get(str(_raw_type(node.operand)))
        value = run_ours(node.operand, _ONE_ROW_OF_SCHEMA)
        if minimum is None or isinstance(value, Exception) or value[0].as_py() != minimum:
            continue
        alone = run_duckdb(to_sql(node), _ONE_ROW)
        say(f"DuckDB: {to_sql(node)} = {show(alone)}")
        if not isinstance(alone, Exception) and alone[0].as_py() == -minimum:
            return node
    return None


KNOWN_DIVERGENCES: list[Divergence] = [
    Divergence("DuckDB skips arguments after a NULL", _by_rewrite(skip_arguments_after_null)),
    Divergence("DuckDB short-circuits CASE conditions", _by_rewrite(short_circuit_case_conditions)),
    Divergence("DuckDB skips after NULL + short-circuits CASE", _by_rewrite(both_rewrites)),
    Divergence("DuckDB folds -(constant) when binding", negated_constant),
]


def _with_children(node: Expr, kids: list[Expr]) -> Expr:
    """``node`` with its direct sub-expressions replaced (in ``children`` order)."""
    match node:
        case Literal() | Column():
            return node
        case Unary() | IsNull() | Cast():
            return dataclasses.replace(node, operand=kids[0])
        case Binary():
            return dataclasses.replace(node, left=kids[0], right=kids[1])
        case InList():
            return dataclasses.replace(node, operand=kids[0], items=tuple(kids[1:]))
        case Between():
            return dataclasses.replace(node, operand=kids[0], low=kids[1], high=kids[2])
        case Like():
            return dataclasses.replace(node, operand=kids[0], pattern=kids[1])
        case Case(whens=whens, otherwise=other):
            pairs = tuple((kids[2 * i], kids[2 * i + 1]) for i in range(len(whens)))
            return Case(pairs, None if other is None else kids[-1])
        case Call():
            return dataclasses.replace(node, args=tuple(kids))
    raise AssertionError(f"no rebuild for {node!r}")


# --- the properties -------------------------------------------------------------------------


def label_events(expr: Expr) -> None:
    """One event per operator/function used, plus the CAST source -> target pairs."""
    for name in sorted(S.ops(expr)):
        label(f"op: {name}")
    types = node_types(expr, S.SCHEMA)
    for node in walk(expr):
        if isinstance(node, Cast):
            label(f"cast: {types[id(node.operand)]} -> {node.to}")


def explain(expr: Expr, sql: str, table: pa.Table) -> None:
    say(f"expr: {expr!r}")
    say(f"SQL: SELECT {sql} AS r FROM t")
    say(f"table ({table.num_rows} rows):\n{S.show_table(table)}")


#: A passing run takes well under a minute; a failing one needs minutes to shrink the
#: example (hypothesis stops shrinking after 5), more than the suite's 120 s default.
SHRINK_TIMEOUT = pytest.mark.timeout(600)

_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.mark.long
@SHRINK_TIMEOUT
@settings(_SETTINGS, max_examples=EXAMPLES)
@given(table=S.tables(), expr=S.any_exprs())
@example(table=NULL_ROWS, expr=S.NULL)
def test_evaluate_equals_duckdb(table: pa.Table, expr: Expr) -> None:
    explain(expr, to_sql(expr), table)
    checked = check(expr, S.SCHEMA)
    label(f"type: {checked}")
    label_events(expr)
    label(f"outcome: {compare_with_duckdb(expr, table, checked)}")


def test_one_null_in_a_list_is_bound_as_equals_null() -> None:
    """Found by CI: ``(s1 IN (NULL)) = CAST('' AS BOOLEAN)`` is NULL in DuckDB (its binder
    makes ``x IN (y)`` ``x = y``, which a NULL folds before the CAST runs); evaluate()
    raises on the CAST. The comparison must explain it, not fail on it."""
    expr = Binary(
        "=",
        InList(Column("s1"), (Literal(None, None),), negated=False),
        Cast(lit(""), parse_type("bool8")),
    )
    table = NULL_ROWS.slice(0, 1)
    assert compare_with_duckdb(expr, table, check(expr, S.SCHEMA)).startswith("known divergence")


@pytest.mark.long
@SHRINK_TIMEOUT
@settings(_SETTINGS, max_examples=EXAMPLES // 3)
@given(table=S.tables(), expr=S.any_exprs())
def test_json_and_sql_read_back_to_the_same_result(table: pa.Table, expr: Expr) -> None:
    sql = to_sql(expr)
    explain(expr, sql, table)
    text = to_json(expr)
    from_text = from_json(text)
    assert to_json(from_text) == text
    if not any(map(is_nan_literal, walk(expr))):  # NaN != NaN breaks node equality
        assert from_text == expr
    reparsed = parse(sql)
    say(f"parse(to_sql(expr)): {reparsed!r}")
    checked = check(expr, S.SCHEMA)
    assert check(reparsed, S.SCHEMA) == checked
    expected = run_ours(expr, table)
    for back in (from_text, reparsed):
        got = run_ours(back, table)
        if isinstance(expected, Exception) or isinstance(got, Exception):
            assert type(got) is type(expected), f"{got!r} vs {expected!r}"
            continue
        assert got.type == expected.type
        diffs = differences(got, expected)
        assert not diffs, "\n".join(diffs)


@settings(_SETTINGS, max_examples=100)
@given(S.aggregates())
def test_aggregates_read_back(expr: Aggregate) -> None:
    """Aggregate calls (checked, named and rendered here; run by emsqrt and lake) survive
    the JSON form and the SQL text."""
    text = to_json(expr)
    assert to_json(from_json(text)) == text
    if not any(map(is_nan_literal, walk(expr))):
        assert from_json(text) == expr
    checked = check(expr, S.SCHEMA, aggregates=True)
    reparsed = parse(to_sql(expr))
    say(f"SQL: {to_sql(expr)}; parse(to_sql(expr)): {reparsed!r}")
    assert check(reparsed, S.SCHEMA, aggregates=True) == checked
    assert to_sql(reparsed) == to_sql(parse(to_sql(reparsed)))


# --- the strategy reaches the whole language ------------------------------------------------


def test_strategy_reaches_every_operator_and_function() -> None:
    """Coverage is not left to chance: a fixed-seed run of the strategy reaches every label
    of ``REQUIRED_OPS`` (the whole scalar language) within a small budget."""
    seen: set[str] = set()

    required: frozenset[str] = S.REQUIRED_OPS

    def all_seen(expr: Expr) -> bool:
        seen.update(S.ops(expr))
        return seen >= required

    try:
        find(
            S.any_exprs(),
            all_seen,
            settings=settings(
                max_examples=3000, phases=[Phase.generate], database=None, derandomize=True
            ),
        )
    except NoSuchExample:
        pytest.fail(f"never generated: {', '.join(sorted(S.REQUIRED_OPS - seen))}")


def test_required_ops_name_the_whole_language() -> None:
    """Every operator and scalar function of the AST has its label in REQUIRED_OPS."""
    labels = {op.upper() for op in BINARY_OPS} | set(FUNCTIONS) - {"round", "substr"}
    labels |= {"unary -", "NOT", "round/1", "round/2", "substr/2", "substr/3"}
    assert labels <= S.REQUIRED_OPS


def test_generated_expressions_are_well_typed() -> None:
    """Every expression the strategy makes passes the checker with the kind it was asked."""

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.sampled_from(S.KINDS).flatmap(lambda k: st.tuples(st.just(k), S.exprs(k))))
    def run(pair: tuple[str, Expr]) -> None:
        kind, expr = pair
        assert check(expr, S.SCHEMA) == S.TYPES[kind]

    run()


# --- minimal repros of what the property test found --------------------------------------------


def table_of(**columns: list[object]) -> pa.Table:
    """A table of the schema with these columns (the others all NULL)."""
    rows = len(next(iter(columns.values())))
    data = [{name: values[i] for name, values in columns.items()} for i in range(rows)]
    return pa.Table.from_pylist(data, schema=S.SCHEMA.to_arrow())


#: Former divergences that evaluate() now handles as DuckDB does: kept as regressions.
FIXED_DIVERGENCE_REPROS = [
    pytest.param(
        "CASE WHEN i1 BETWEEN NULL AND i1 * i1 THEN 1 END",
        {"i1": [2147483647]},
        id="case-condition-between",
    ),
    pytest.param(
        "coalesce(nullif(i1, i1)) * (i1 * i1)",
        {"i1": [2147483647]},
        id="constant-null-vector-through-coalesce",
    ),
    pytest.param(
        "coalesce(1, -CAST('x' AS INTEGER))",
        {"i1": [1]},
        id="negated-constant-raises-early",
    ),
]


@pytest.mark.parametrize(("text", "columns"), FIXED_DIVERGENCE_REPROS)
def test_former_divergence_agrees_with_duckdb(text: str, columns: dict[str, list[object]]) -> None:
    expr, table = parse(text), table_of(**columns)
    ours, theirs = run_ours(expr, table), run_duckdb(to_sql(expr), table)
    assert agree(ours, theirs), f"evaluate: {show(ours)}; DuckDB: {show(theirs)}"


#: (expression text, columns, the known divergence that explains it).
KNOWN_DIVERGENCE_REPROS = [
    pytest.param(
        "(i1 BETWEEN NULL AND NULL) || CAST(s1 AS BOOLEAN)",
        {"s1": [""]},
        "DuckDB skips arguments after a NULL",
        id="between-null-bounds-folds",
    ),
    pytest.param(
        "-CAST(-2147483648 AS INTEGER)",
        {"i1": [1]},
        "DuckDB folds -(constant) when binding",
        id="negated-constant-minimum",
    ),
]


@pytest.mark.parametrize(("text", "columns", "name"), KNOWN_DIVERGENCE_REPROS)
def test_known_divergence_is_recognised(
    text: str, columns: dict[str, list[object]], name: str
) -> None:
    """While evaluate() differs from DuckDB here, the property test names the reason."""
    expr, table = parse(text), table_of(**columns)
    ours, theirs = run_ours(expr, table), run_duckdb(to_sql(expr), table)
    if agree(ours, theirs):
        pytest.skip("evaluate() now agrees with DuckDB: drop the known divergence")
    (divergence,) = (d for d in KNOWN_DIVERGENCES if d.name == name)
    assert divergence.explains(expr, table, ours, theirs)


@pytest.mark.xfail(
    strict=True, reason="known divergence from DuckDB, to decide (see KNOWN_DIVERGENCES)"
)
@pytest.mark.parametrize(("text", "columns", "name"), KNOWN_DIVERGENCE_REPROS)
def test_known_divergence_agrees_with_duckdb(
    text: str, columns: dict[str, list[object]], name: str
) -> None:
    expr, table = parse(text), table_of(**columns)
    ours, theirs = run_ours(expr, table), run_duckdb(to_sql(expr), table)
    assert agree(ours, theirs), f"evaluate: {show(ours)}; DuckDB: {show(theirs)}"


@pytest.mark.xfail(
    strict=True,
    reason="the checker accepts LIKE ... ESCAPE '' (DuckDB does too); parse, to_sql and "
    "from_json refuse it, so the strategy does not generate it",
)
def test_empty_like_escape_is_accepted_by_all_or_none() -> None:
    expr = Like(Column("s1"), lit("a%"), escape="")
    check(expr, S.SCHEMA)  # accepted
    sql = to_sql(expr)
    assert parse(sql) == expr
    assert from_json(to_json(expr)) == expr


def test_constant_folding_never_reads_missing_columns() -> None:
    # Found by the property test: folding read columns from a one-row batch without them.
    expr = parse("CASE WHEN NULL = s1 THEN 1 END")  # also coalesce(i2 * NULL, NULL * f1)
    table = table_of(s1=["a", None])
    assert agree(run_ours(expr, table), run_duckdb(to_sql(expr), table))
