"""SQL expressions (sqlglot trees) as the platform's expression language, for ``session.sql``.

A query's expressions are rewritten onto the pipeline's column names and handed to
``platform_core.expr``'s parser, so SQL and pipelines share one expression language, one
type table and one rendering to DuckDB. What that language lacks is said as a
``SQLPlanError`` naming the expression, never run some other way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from sqlglot import exp

from platform_core.expr import Expr, parse

from .errors import SQLPlanError

__all__ = ["fold_dates", "to_expr", "to_text"]


_UNITS = {"DAY": "days", "MONTH": "months", "YEAR": "years", "WEEK": "weeks"}


def _shift(day: dt.date, amount: int, unit: str) -> dt.date:
    """``day`` plus ``amount`` of a calendar unit, as DuckDB adds an interval to a date
    (a month past the end of the shorter month lands on its last day)."""
    if unit == "DAY":
        return day + dt.timedelta(days=amount)
    if unit == "WEEK":
        return day + dt.timedelta(weeks=amount)
    months = amount * (12 if unit == "YEAR" else 1)
    y, m = divmod(day.year * 12 + day.month - 1 + months, 12)
    m += 1
    for d in (day.day, 31, 30, 29, 28):
        try:
            return dt.date(y, m, min(day.day, d))
        except ValueError:
            continue
    raise AssertionError("unreachable: day 28 exists in every month")


def _date_of(node: exp.Expr) -> dt.date | None:
    """The date of a constant ``DATE 'x'`` / ``CAST('x' AS DATE)``, else None."""
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DATE):
        inner = node.this
        if isinstance(inner, exp.Literal) and inner.is_string:
            try:
                return dt.date.fromisoformat(inner.this)
            except ValueError:
                return None
    return None


def _interval_of(node: exp.Expr) -> tuple[int, str] | None:
    if not isinstance(node, exp.Interval):
        return None
    unit = node.unit.name.upper() if node.unit is not None else ""
    unit = unit.rstrip("S") if unit.endswith("S") and unit[:-1] in _UNITS else unit
    value = node.this
    if unit not in _UNITS or not isinstance(value, exp.Literal):
        return None
    try:
        return int(str(value.this)), unit
    except ValueError:
        return None


_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.Between)


def fold_dates(tree: exp.Expr, copy: bool = True) -> exp.Expr:
    """Constant ``date ± INTERVAL n unit`` folded to a date literal (TPC-H's parameters), as
    DuckDB computes it; other interval arithmetic is left for the parser to refuse. Without
    ``copy``, ``tree`` is rewritten in place (a copy the caller owns)."""

    def fold(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Add | exp.Sub):
            day, iv = _date_of(node.this), _interval_of(node.expression)
            if day is None and isinstance(node, exp.Add):
                day, iv = _date_of(node.expression), _interval_of(node.this)
            if day is not None and iv is not None:
                amount, unit = iv
                shifted = _shift(day, -amount if isinstance(node, exp.Sub) else amount, unit)
                if isinstance(node.parent, _COMPARISONS):  # equal to a date at midnight
                    return exp.cast(exp.Literal.string(shifted.isoformat()), "DATE")
                # DuckDB's date + interval is a TIMESTAMP: so is the value a query returns
                return exp.cast(exp.Literal.string(f"{shifted.isoformat()} 00:00:00"), "TIMESTAMP")
        return node

    return tree.transform(fold, copy=copy)


_EXACT_DIGITS = 15
"""A decimal literal this short is exact through a double (DuckDB types it DECIMAL)."""


def _decimal_literal(node: exp.Literal) -> exp.Expr:
    """``0.05`` as DuckDB types it, DECIMAL(3, 2): integer digits (a bare ``0`` counts) plus
    fraction digits. Longer ones stay a DOUBLE (a float cannot carry them exactly)."""
    text = str(node.this)
    whole, _, frac = text.lstrip("+-").partition(".")
    digits = len(whole) + len(frac)
    if not frac.isdigit() or not (whole.isdigit() or whole == "") or digits > _EXACT_DIGITS:
        return node
    return exp.Cast(this=node, to=exp.DataType.build(f"DECIMAL({max(digits, 1)}, {len(frac)})"))


def _rewrite(node: exp.Expr) -> exp.Expr:
    """DuckDB spellings the expression language writes another way."""
    if isinstance(node, exp.Literal) and not node.is_string and "." in str(node.this):
        return _decimal_literal(node)
    if isinstance(node, exp.Extract):
        part = node.this.name.lower()
        if part in ("year", "month", "day"):
            return exp.Anonymous(this=part, expressions=[node.expression])
    if isinstance(node, exp.Substring):
        args = [node.this, node.args.get("start") or exp.Literal.number(1)]
        if node.args.get("length") is not None:
            args.append(node.args["length"])
        return exp.Anonymous(this="substr", expressions=args)
    if isinstance(node, exp.Cast):
        day = _date_of(node)
        if day is not None:
            return exp.Var(this=f"DATE '{day.isoformat()}'")  # the language's date literal
    return node


def to_text(
    node: exp.Expr,
    column: Callable[[exp.Column], str],
    replace: Mapping[str, str] | None = None,
) -> str:
    """``node`` as expression-language text: each column is ``column(c)`` (a pipeline name,
    quoted), and each sub-expression whose SQL is a key of ``replace`` is that column
    (a group key or an aggregate already computed)."""
    replace = replace or {}

    def swap(n: exp.Expr) -> exp.Expr:
        named = replace.get(n.sql(dialect="duckdb")) if replace else None
        if named is not None:
            return exp.column(named, quoted=True)
        if isinstance(n, exp.Column):
            return exp.column(column(n), quoted=True)
        return n

    # aggregates and group keys are swapped for their columns first: their SQL is the
    # unfolded text they were named by. One copy (the first transform's), rewritten in place.
    rewritten = fold_dates(node.transform(swap), copy=False).transform(_rewrite, copy=False)
    return rewritten.sql(dialect="duckdb")


def to_expr(
    node: exp.Expr,
    column: Callable[[exp.Column], str],
    replace: Mapping[str, str] | None = None,
) -> Expr:
    """``to_text`` parsed by the expression language; a construct it lacks is a
    ``SQLPlanError`` that names the SQL."""
    nested = node.find(exp.Query)
    if nested is not None:
        raise SQLPlanError(
            f"cannot plan the subquery {nested.sql(dialect='duckdb')!r} where it stands into "
            "stages yet: sqlglot could not turn it into a join (a correlated subquery that "
            "compares with the outer query other than by =, or one in the select list)"
        )
    text = to_text(node, column, replace)
    try:
        return parse(text)
    except Exception as exc:  # the expression language's own error, re-said for SQL
        raise SQLPlanError(
            f"cannot plan {node.sql(dialect='duckdb')!r} into stages: {exc}"
        ) from None
