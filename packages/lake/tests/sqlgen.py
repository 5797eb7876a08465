"""Seeded generator of join/subquery SQL over NULL-heavy, skewed tables (pushdown's oracle).

Three tables: ``fact`` (skewed key ``k``, a fifth of it NULL, half of the rest the one value
0; NULLs in every other column), ``dim`` (duplicate and NULL keys) and ``tag`` (few rows). The
queries mix inner, left, right and full joins with conditions on either side in ON and WHERE,
the same table read twice, EXISTS / NOT EXISTS / IN / NOT IN subqueries (correlated or not),
derived tables and CTEs. Each answers with a few aggregates, so results stay small and
comparable without an ORDER BY.
"""

from __future__ import annotations

import random
from pathlib import Path

import duckdb

FACT_ROWS = 6_000

TABLES_SQL = {
    "fact": f"""
        SELECT i AS id,
               CASE WHEN i % 5 = 0 THEN NULL WHEN i % 2 = 0 THEN 0 ELSE (i * 7) % 40 END AS k,
               CASE WHEN i % 10 = 3 THEN NULL
                    ELSE CAST(((i * 37) % 1000) / 10 AS DECIMAL(6, 1)) END AS v,
               CASE WHEN i % 3 = 0 THEN NULL ELSE ['a', 'b', 'c', 'dd'][1 + i % 4] END AS s,
               DATE '2024-01-01' + (i % 90)::INTEGER AS d
        FROM range({FACT_ROWS}) t(i)""",
    "dim": """
        SELECT CASE WHEN i % 9 = 0 THEN NULL ELSE i % 45 END AS k,
               CASE WHEN i % 4 = 0 THEN NULL ELSE 'L' || (i % 6) END AS label,
               (i * 13) % 50 AS w
        FROM range(60) t(i)""",
    "tag": """
        SELECT CASE WHEN i % 7 = 0 THEN NULL ELSE i % 12 END AS k,
               CASE WHEN i % 3 = 0 THEN NULL ELSE ['a', 'b', 'x'][1 + i % 3] END AS s,
               i % 2 = 0 AS flag
        FROM range(25) t(i)""",
}

COLUMNS = {
    "fact": ("id", "k", "v", "s", "d"),
    "dim": ("k", "label", "w"),
    "tag": ("k", "s", "flag"),
}


def write_tables(directory: Path) -> dict[str, Path]:
    """Each table as one Parquet file under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    con = duckdb.connect()
    for name, sql in TABLES_SQL.items():
        path = directory / f"{name}.parquet"
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT PARQUET)")
        out[name] = path
    return out


def _pred(r: random.Random, table: str, a: str) -> str:
    """A condition on one table's columns, NULL-aware or not."""
    k = r.randrange(0, 45)
    options = [
        f"{a}.k = {k}",
        f"{a}.k IS NULL",
        f"{a}.k IS NOT NULL",
        f"{a}.k IN (0, {k}, {k + 1})",
        f"{a}.k BETWEEN {k} AND {k + 10}",
        f"coalesce({a}.k, -1) < {k}",
        f"NOT ({a}.k = {k})",
        f"({a}.k < {k} OR {a}.k IS NULL)",
    ]
    if table == "fact":
        options += [
            f"{a}.v > {r.randrange(0, 100)}",
            f"{a}.v IS NULL",
            f"{a}.s = '{r.choice('abcx')}'",
            f"({a}.s IS NULL OR {a}.v < {r.randrange(0, 100)})",
            f"{a}.d >= DATE '2024-01-01' + INTERVAL {r.randrange(0, 90)} DAY",
            f"{a}.id % {r.randrange(2, 9)} = 0",
        ]
    elif table == "dim":
        options += [f"{a}.label = 'L{r.randrange(6)}'", f"{a}.label IS NULL", f"{a}.w < {k}"]
    else:
        options += [f"{a}.flag", f"NOT {a}.flag", f"{a}.s IS NULL", f"{a}.s = 'x'"]
    return r.choice(options)


def _preds(r: random.Random, table: str, a: str, most: int = 2) -> list[str]:
    return [_pred(r, table, a) for _ in range(r.randrange(0, most + 1))]


def _and(parts: list[str], lead: str) -> str:
    return f" {lead} " + " AND ".join(parts) if parts else ""


def _aggs(cols: list[str]) -> str:
    picked = ", ".join(f"count({c})" for c in cols)
    return f"count(*), {picked}" if picked else "count(*)"


def _join(r: random.Random) -> str:
    """Two or three tables, each join of a random kind, conditions on both sides."""
    kinds = ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"]
    small = r.choice(["dim", "tag"])
    k1 = r.choice(kinds)
    on = ["f.k = x.k", *_preds(r, small, "x", 1), *_preds(r, "fact", "f", 1)]
    where = _preds(r, "fact", "f") + _preds(r, small, "x")
    if r.random() < 0.3:
        where.append(r.choice(["(f.v > x.k OR x.k IS NULL)", "coalesce(f.k, x.k) = 0"]))
    sql = f"FROM fact f {k1} {small} x ON {' AND '.join(on)}"
    cols = ["f.id", "x.k", "f.v"]
    if r.random() < 0.5:
        other = "tag" if small == "dim" else "dim"
        k2 = r.choice(kinds)
        sql += f" {k2} {other} y ON y.k = {r.choice(['x.k', 'f.k'])}"
        sql += _and(_preds(r, other, "y", 1), "AND")
        where += _preds(r, other, "y", 1)
        cols.append("y.k")
    if r.random() < 0.3:
        return f"SELECT x.k AS g, {_aggs(cols)}, sum(f.v) {sql}{_and(where, 'WHERE')} GROUP BY g"
    return f"SELECT {_aggs(cols)}, sum(f.id), min(f.s) {sql}{_and(where, 'WHERE')}"


def _twice(r: random.Random) -> str:
    """One table read by two references with different filters."""
    choice = r.randrange(3)
    if choice == 0:
        kind = r.choice(["JOIN", "LEFT JOIN", "FULL JOIN"])
        where = _preds(r, "fact", "f1") + _preds(r, "fact", "f2")
        return (
            f"SELECT count(*), count(f2.id), sum(f1.v), max(f2.s) FROM fact f1 {kind} fact f2 "
            f"ON f2.id = f1.id + {r.randrange(1, 4)}{_and(_preds(r, 'fact', 'f2', 1), 'AND')}"
            f"{_and(where, 'WHERE')}"
        )
    if choice == 1:
        where = _preds(r, "dim", "a") + _preds(r, "dim", "b")
        kind = r.choice(["JOIN", "LEFT JOIN"])
        return (
            f"SELECT count(*), count(b.w), sum(a.w) FROM fact f JOIN dim a ON f.k = a.k "
            f"{kind} dim b ON f.k = b.w{_and(where, 'WHERE')}"
        )
    where = _preds(r, "fact", "f", 1)
    inner = _preds(r, "fact", "g2", 2)
    return (
        f"SELECT count(*), sum(f.v) FROM fact f WHERE f.k IN (SELECT g2.k FROM fact g2"
        f"{_and(inner, 'WHERE')}){_and(where, 'AND')}"
    )


def _subquery(r: random.Random) -> str:
    """EXISTS / NOT EXISTS / IN / NOT IN / scalar subqueries, correlated or not."""
    outer = r.choice(["dim", "tag"])
    where = _preds(r, outer, "o")
    inner = _preds(r, "fact", "f")
    form = r.randrange(5)
    if form == 0:
        cond = f"{r.choice(['', 'NOT '])}EXISTS (SELECT * FROM fact f WHERE f.k = o.k" + _and(
            inner, "AND"
        )
        cond += ")"
    elif form == 1:
        cond = f"o.k {r.choice(['IN', 'NOT IN'])} (SELECT f.k FROM fact f{_and(inner, 'WHERE')})"
    elif form == 2:
        cond = (
            f"{r.choice(['', 'NOT '])}EXISTS (SELECT * FROM fact f WHERE f.k = o.k AND "
            f"f.v > (SELECT avg(v) FROM fact f3 WHERE f3.s = f.s){_and(inner, 'AND')})"
        )
    elif form == 3:
        cond = (
            f"(SELECT count(*) FROM fact f WHERE f.k = o.k{_and(inner, 'AND')}) > "
            f"{r.randrange(0, 100)}"
        )
    else:
        cond = (
            f"o.k IN (SELECT x.k FROM fact f JOIN dim x ON f.k = x.w{_and(inner, 'WHERE')})"
            f" OR o.k IS NULL"
        )
    text = "o.s" if outer == "tag" else "o.label"
    return (
        f"SELECT count(*), count(o.k), min({text}) FROM {outer} o WHERE {cond}{_and(where, 'AND')}"
    )


def _derived(r: random.Random) -> str:
    """Derived tables and CTEs, with outer conditions on a null-supplying side."""
    inner = _preds(r, "fact", "f")
    if r.random() < 0.5:
        return (
            f"SELECT count(*), sum(t.c), count(d.label) FROM (SELECT f.k, count(*) AS c FROM fact f"
            f"{_and(inner, 'WHERE')} GROUP BY f.k) t LEFT JOIN dim d ON t.k = d.k WHERE "
            f"{r.choice(['d.label IS NULL', 'd.k IS NULL', 't.c > 3', 'd.w > 10 OR d.w IS NULL'])}"
        )
    other = _preds(r, "fact", "b", 1)
    return (
        f"WITH a AS (SELECT * FROM fact f{_and(inner, 'WHERE')}) SELECT count(*), sum(a.v), "
        f"count(b.id) FROM a LEFT JOIN a b ON a.id = b.id - 1{_and(other, 'AND')}"
    )


def queries(seed: int, n: int) -> list[str]:
    """``n`` queries from ``seed`` (the same list every time)."""
    r = random.Random(seed)
    makers = [_join, _join, _twice, _subquery, _subquery, _derived]
    return [r.choice(makers)(r) for _ in range(n)]
