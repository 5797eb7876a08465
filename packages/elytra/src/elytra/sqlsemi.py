"""A LEFT JOIN that only tests for a match, recognised as the semi join it is.

sqlglot decorrelates ``x IN (SELECT y ...)`` and ``EXISTS (SELECT ... WHERE y = x AND ...)``
into ``LEFT JOIN (SELECT y ... GROUP BY y) AS u ON u.y = x ... WHERE NOT u.y IS NULL``. Planned
as written, that is a distinct over the subquery's rows (all of lineitem's keys in TPC-H
q04) joined back, and DuckDB's hash join builds on the big side. A semi join of the outer
rows against the subquery's rows says the same with no distinct: each outer row is kept
once when some row matches, and a NULL key matches nothing, as ``IS NOT NULL`` required.

The rewrite holds only when the derived table's columns are exactly its GROUP BY keys (no
aggregate, HAVING, DISTINCT, LIMIT or window), the ON clause is equalities of each of its
columns with the outer query's (a key left out of ON makes a row per value), the outer
query reads its columns nowhere but there and in the one ``NOT u.k IS NULL`` conjunct of
WHERE, and no RIGHT or FULL join of the same SELECT adds rows that the test in WHERE would
drop again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

__all__ = ["SemiJoin", "semi_join_of"]


@dataclass
class SemiJoin:
    """What replaces one LEFT JOIN: the outer rows kept where ``query`` has a match."""

    alias: str
    """The derived table's alias (lowercase), which ``keys``' inner columns name."""
    query: exp.Select
    """The derived table's SELECT without its GROUP BY (a copy: the planner may build on it)."""
    keys: list[tuple[exp.Expr, exp.Column]]
    """(outer expression, inner column) pairs that must be equal."""
    test: exp.Expr
    """The WHERE conjunct ``NOT u.k IS NULL`` the semi join answers (not filtered again)."""


def _derived(j: exp.Join, ctes: dict[str, exp.Expr]) -> exp.Select | None:
    """The SELECT a joined table names: a CTE's, or a derived table's."""
    node = j.this
    if isinstance(node, exp.Table) and not node.args.get("db"):
        found = ctes.get(node.name.lower())
    elif isinstance(node, exp.Subquery):
        found = node.this
    else:
        return None
    return found if isinstance(found, exp.Select) else None


def _only_keys(q: exp.Select) -> bool:
    """Whether ``q`` selects exactly its GROUP BY keys, as plain columns, and nothing else
    shapes its rows."""
    group = q.args.get("group")
    if group is None or group.args.get("rollup") or group.args.get("cube"):
        return False
    if group.args.get("grouping_sets") or group.args.get("all"):
        return False
    for arg in ("having", "distinct", "limit", "offset", "order", "qualify", "laterals"):
        if q.args.get(arg):
            return False
    if q.find(exp.Window, exp.AggFunc) is not None:
        return False
    selected = [s.unalias() for s in q.selects]
    if not selected or not all(isinstance(s, exp.Column) for s in selected):
        return False
    keys = group.expressions
    return {s.sql() for s in selected} == {k.sql() for k in keys} and len(keys) == len(selected)


def _is_not_null_test(c: exp.Expr, alias: str) -> exp.Column | None:
    """The column of ``alias`` in a ``NOT alias.k IS NULL`` conjunct."""
    node = c.unnest()
    if not isinstance(node, exp.Not):
        return None
    inner = node.this.unnest()
    if not isinstance(inner, exp.Is) or not isinstance(inner.expression, exp.Null):
        return None
    col = inner.this
    if isinstance(col, exp.Column) and col.table.lower() == alias:
        return col
    return None


def semi_join_of(
    node: exp.Select, j: exp.Join, where: list[exp.Expr], ctes: dict[str, exp.Expr]
) -> SemiJoin | None:
    """``j`` (a join of ``node``, whose WHERE conjuncts are ``where``) as a semi join, or
    None when it is anything else (see the module doc)."""
    if (j.side or "").upper() != "LEFT" or (j.kind or "").upper() not in ("", "OUTER"):
        return None
    if j.args.get("using") or j.args.get("method"):
        return None
    q = _derived(j, ctes)
    alias = j.this.alias_or_name.lower()
    if q is None or not alias or not _only_keys(q):
        return None
    if any((o.side or "").upper() in ("RIGHT", "FULL") for o in node.args.get("joins") or []):
        return None  # WHERE's test also drops the NULL rows those add: not the semi join's
    outputs = {s.alias_or_name.lower() for s in q.selects}
    on = j.args.get("on")
    if on is None:
        return None
    keys: list[tuple[exp.Expr, exp.Column]] = []
    for c in on.flatten() if isinstance(on, exp.And) else [on.unnest()]:
        c = c.unnest()
        if not isinstance(c, exp.EQ):
            return None
        a, b = c.this, c.expression
        for inner, outer in ((a, b), (b, a)):
            if (
                isinstance(inner, exp.Column)
                and inner.table.lower() == alias
                and inner.name.lower() in outputs
                and all(t.table.lower() != alias for t in outer.find_all(exp.Column))
                and outer.find(exp.Column) is not None
                and outer.find(exp.Query) is None
            ):
                keys.append((outer, inner))
                break
        else:
            return None
    if {k.name.lower() for _, k in keys} != outputs:
        return None  # a key not in ON makes a row per its value: a join, not a test
    tests: list[tuple[exp.Expr, exp.Column]] = []
    for c in where:
        col = _is_not_null_test(c, alias)
        if col is not None:
            tests.append((c, col))
    if len(tests) != 1 or tests[0][1].name.lower() not in {k.name.lower() for _, k in keys}:
        return None
    # the derived table's columns are read in ON and in the test, nowhere else
    reads = [c for c in node.find_all(exp.Column) if c.table.lower() == alias]
    if len(reads) != len(keys) + 1:
        return None
    query = q.copy()
    query.set("group", None)
    return SemiJoin(alias, query, keys, tests[0][0])
