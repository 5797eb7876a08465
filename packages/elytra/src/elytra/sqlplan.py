"""``session.sql(text)``: a SELECT planned into a pipeline, so it runs as stages and tasks.

sqlglot qualifies the query, pushes predicates and projections down and turns subqueries
into joins (its optimizer); this module turns that one tree into pipeline steps: each table
a source (its own filters and columns, as the optimizer left them), joins ordered so that
every join has an equality to what is already joined (the largest source first, so the small
sides are the ones broadcast), then WHERE, GROUP BY with partial aggregates, HAVING, the
select list, DISTINCT, ORDER BY and LIMIT. The engine then does what it does for any
pipeline: per-chunk tasks, broadcast or partitioned joins, exchanges on the workers.

Columns are named ``alias.column`` inside the plan, so a table read twice (TPC-H q21's
lineitem) or two subqueries with the same output names never collide; the result carries
the query's own output names.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer import optimize
from sqlglot.optimizer.merge_subqueries import merge_subqueries
from sqlglot.optimizer.optimizer import RULES as OPTIMIZER_RULES
from sqlglot.optimizer.optimizer import OptimizerFn

from .errors import PipelineError, SQLPlanError
from .nativesql import native_of
from .sqlexpr import fold_dates, to_expr
from .sqlrewrite import array_any_to_extremes
from .sqlsemi import SemiJoin, semi_join_of
from .stages import source_bytes

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["parse_query", "plan_sql", "table_names"]

_JOIN_HOW = {"": "inner", "INNER": "inner", "LEFT": "left", "RIGHT": "right", "FULL": "full"}


def _sql(node: exp.Expr) -> str:
    return node.sql(dialect="duckdb")


_BINDING: duckdb.DuckDBPyConnection | None = None
_BINDING_LOCK = threading.Lock()


def _binder(tables: Mapping[str, Pipeline]) -> duckdb.DuckDBPyConnection:
    """A private DuckDB connection holding empty tables of the same schemas: it binds (never
    runs) the query, cannot touch files nor be reconfigured, and is not the module's shared
    default connection (the gateway plans on several threads). A cursor of one database made
    once: a database of its own cost each query 14 ms; a cursor's registered tables are its
    own (temporary views), so queries planned at once never see each other's."""
    global _BINDING
    with _BINDING_LOCK:
        if _BINDING is None:
            _BINDING = duckdb.connect(
                config={"enable_external_access": False, "lock_configuration": True, "threads": 1}
            )
        con = _BINDING.cursor()
    for name, p in tables.items():
        con.register(name, p.schema.empty_table())
    return con


def _duck_types(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    """DuckDB's type name of each column, for sqlglot's qualification and type inference."""
    rel = con.table(name)
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


@dataclass
class Rel:
    """A planned relation: its pipeline and where each SQL column lives in it."""

    pipe: Pipeline
    cols: dict[tuple[str, str], str] = field(default_factory=dict)
    """(source alias, column name) lowercased -> the pipeline's column."""
    size: int = 0
    """Estimated bytes (a table's catalog size; 0 for derived tables): joins start here."""

    def column(self, c: exp.Column) -> str:
        key = (c.table.lower(), c.name.lower())
        if key in self.cols:
            return self.cols[key]
        if not c.table:
            matches = [v for (t, n), v in self.cols.items() if n == c.name.lower()]
            if len(matches) == 1:
                return matches[0]
        if c.table and c.table.lower() not in self.aliases():
            raise SQLPlanError(
                f"column {_sql(c)!r} is not in scope here: a correlated subquery that compares "
                "with the outer query other than by = (EXISTS, IN or a scalar subquery in a "
                "place sqlglot cannot decorrelate into a join) is not planned into stages yet"
            )
        raise SQLPlanError(f"column {_sql(c)!r} is not in scope here")

    def aliases(self) -> set[str]:
        return {t for t, _ in self.cols}


_MAX_READS = 64
"""Table and CTE reads one query plans: CTEs that join each other twice would otherwise grow
the plan (and the planner's time) as 2**levels."""


class _Planner:
    """One query's translation; ``tables`` are the pipelines the query's names read."""

    def __init__(self, tables: Mapping[str, Pipeline]) -> None:
        self.tables = {k.lower(): v for k, v in tables.items()}
        self.counter = 0
        self.reads = 0
        """Table and CTE reads planned so far (bounded: a CTE is planned at each use)."""
        self.ctes: dict[str, exp.Expr] = {}
        """The CTEs in scope of the SELECT being planned (an IN subquery may name them)."""

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"__{stem}{self.counter}"

    # -- sources -------------------------------------------------------------------------
    def source(
        self, node: exp.Expr, ctes: dict[str, exp.Expr], used: dict[str, set[str]] | None = None
    ) -> Rel:
        """A table (only the columns its scope names: ``used``, alias -> names) or a derived
        table, its columns renamed ``alias.column``."""
        alias = node.alias_or_name.lower()
        if isinstance(node, exp.Table):
            name = node.name.lower()
            self.reads += 1
            if self.reads > _MAX_READS:
                raise SQLPlanError(
                    f"the query reads more than {_MAX_READS} tables (a CTE's tables count at "
                    "each use of the CTE; CTEs that use each other twice double at each level)"
                )
            if name in ctes:
                return self.rename(self.query(ctes[name], ctes), alias)
            if name not in self.tables:
                raise SQLPlanError(
                    f"no table {node.name!r}; tables: {', '.join(sorted(self.tables))}"
                )
            whole = self.tables[name]
            names = whole.columns
            if used is not None:
                names = [c for c in names if c.lower() in used.get(alias, set())] or names[:1]
            pipe = whole.select(*names).rename({c: f"{alias}.{c}" for c in names})
            cols = {(alias, c.lower()): f"{alias}.{c}" for c in names}
            return Rel(pipe, cols, _size_of(whole))
        if isinstance(node, exp.Subquery):
            return self.rename(self.query(node.this, ctes), alias)
        raise SQLPlanError(f"cannot plan the source {_sql(node)!r} into stages")

    def rename(self, rel: Rel, alias: str) -> Rel:
        """A derived table's outputs under ``alias``."""
        names = rel.pipe.columns
        mapping = {c: f"{alias}.{c}" for c in names}
        return Rel(
            rel.pipe.rename(mapping), {(alias, c.lower()): f"{alias}.{c}" for c in names}, rel.size
        )

    # -- queries -------------------------------------------------------------------------
    def query(self, node: exp.Expr, ctes: dict[str, exp.Expr]) -> Rel:
        with_ = node.args.get("with_") or node.args.get("with")
        if with_ is not None:
            ctes = dict(ctes)
            for cte in with_.expressions:
                ctes[cte.alias.lower()] = cte.this
        if isinstance(node, exp.Union):
            left = self.query(node.left, ctes)
            right = self.query(node.right, ctes)
            if left.pipe.columns != right.pipe.columns:
                right = Rel(
                    right.pipe.rename(dict(zip(right.pipe.columns, left.pipe.columns, strict=True)))
                )
            out = Rel(left.pipe.union(right.pipe))
            if node.args.get("distinct"):
                out = Rel(out.pipe.distinct())
            return self.finish(node, out, {c: c for c in left.pipe.columns})
        if isinstance(node, exp.Subquery):
            return self.query(node.this, ctes)
        if not isinstance(node, exp.Select):
            raise SQLPlanError(f"cannot plan {type(node).__name__} into stages (a SELECT can)")
        return self.select(node, ctes)

    def select(self, node: exp.Select, ctes: dict[str, exp.Expr]) -> Rel:
        if node.args.get("laterals") or node.find(exp.Window) or node.args.get("qualify"):
            raise SQLPlanError("window functions and LATERAL are not planned into stages yet")
        outer_ctes, self.ctes = self.ctes, ctes
        try:
            where = node.args.get("where")
            rel, rest = self.joins(node, ctes, _conjuncts(where.this) if where else [])
            if rest:
                rel = self.filter(rel, rest)
            return self.project(node, rel)
        finally:
            self.ctes = outer_ctes

    def filter(self, rel: Rel, conds: list[exp.Expr]) -> Rel:
        """``rel`` where every condition holds: ``[NOT] IN (SELECT ...)`` ones as joins, the
        rest as one filter."""
        plain = []
        for c in conds:
            found = _in_subquery(c)
            if found is None:
                plain.append(c)
            else:
                rel = self.in_subquery(rel, *found, self.ctes)
        if plain:
            cond = exp.and_(*plain) if len(plain) > 1 else plain[0]
            rel = Rel(rel.pipe.filter(to_expr(cond, rel.column)), rel.cols, rel.size)
        return rel

    def in_subquery(
        self,
        rel: Rel,
        value: exp.Expr,
        query: exp.Expr,
        negated: bool,
        ctes: dict[str, exp.Expr],
    ) -> Rel:
        """``value [NOT] IN (SELECT y ...)``: a semi join; NOT IN an anti join that also keeps
        SQL's NULL rule (a NULL among the ``y`` leaves no row; a NULL ``value`` stays only
        when the subquery is empty), from the subquery's counts joined as one row."""
        sub = self.query(query.this if isinstance(query, exp.Subquery) else query, ctes)
        if len(sub.pipe.columns) != 1:
            raise SQLPlanError(f"an IN subquery selects one column: {_sql(query)!r}")
        y = self.fresh("in")
        right = sub.pipe.rename({sub.pipe.columns[0]: y})
        rel, x = self.key_column(rel, value, copy=False)
        if not negated:
            pipe = rel.pipe.join(right, left_on=x, right_on=y, how="semi")
        else:
            n, nn, one = self.fresh("n"), self.fresh("nn"), self.fresh("one")
            stats = right.agg(**{n: "count(*)", nn: f'count("{y}")'}).with_columns(**{one: "1"})
            pipe = (
                rel.pipe.join(right, left_on=x, right_on=y, how="anti")
                .with_columns(**{one: "1"})
                .join(stats, left_on=one, right_on=one, how="inner")
                .filter(f'"{n}" = 0 OR ("{x}" IS NOT NULL AND "{nn}" = "{n}")')
                .drop(one, n, nn)
            )
        hidden = [c for c in pipe.columns if c.startswith("__k")]
        return Rel(pipe.drop(*hidden) if hidden else pipe, rel.cols, rel.size)

    def semi(self, rel: Rel, semi: SemiJoin, ctes: dict[str, exp.Expr]) -> Rel:
        """``rel``'s rows that ``semi.query`` matches on its keys, each once
        (:mod:`.sqlsemi`); keys of two types compare in the type DuckDB compares them in."""
        sub = self.rename(self.query(semi.query, ctes), semi.alias)
        lnames: list[str] = []
        rnames: list[str] = []
        for lk, rk in semi.keys:
            left_key, right_key, _ = self.comparable(rel, sub, lk, rk)
            # a column that is already a key is copied: a join takes each column once
            rel, ln = self.key_column(rel, left_key, copy=self._taken(rel, left_key, lnames))
            sub, rn = self.key_column(sub, right_key, copy=self._taken(sub, right_key, rnames))
            lnames.append(ln)
            rnames.append(rn)
        pipe = rel.pipe.join(sub.pipe, left_on=lnames, right_on=rnames, how="semi")
        hidden = [c for c in pipe.columns if c.startswith("__k")]
        return Rel(pipe.drop(*hidden) if hidden else pipe, rel.cols, rel.size)

    @staticmethod
    def comparable(
        left: Rel, right: Rel, lk: exp.Expr, rk: exp.Expr
    ) -> tuple[exp.Expr, exp.Expr, bool]:
        """Join keys ``lk`` and ``rk`` cast to the type DuckDB compares them in where theirs
        differ (decimals of two scales), and whether their types were already one."""
        lt, rt = _key_type(left, lk), _key_type(right, rk)
        common = _common_key_type(lt, rt)
        if common is not None:
            lk = exp.Cast(this=lk.copy(), to=exp.DataType.build(common, dialect="duckdb"))
            rk = exp.Cast(this=rk.copy(), to=exp.DataType.build(common, dialect="duckdb"))
        return lk, rk, lt == rt

    @staticmethod
    def _taken(rel: Rel, key: exp.Expr, names: list[str]) -> bool:
        return isinstance(key, exp.Column) and rel.column(key) in names

    def joins(
        self, node: exp.Select, ctes: dict[str, exp.Expr], where: list[exp.Expr]
    ) -> tuple[Rel, list[exp.Expr]]:
        """The FROM clause's joins, and the conjuncts of ``where`` left to filter them.

        A conjunct that reads only the inner-joined tables joins them with those of ON (as a
        source's own filter, or a join key): sqlglot moves a WHERE condition into the ON of the
        table it names, but not one on the FROM table, which then filtered every joined row
        (7.4 M rows instead of 56 k in one query). Not with a RIGHT or FULL join after them,
        whose NULL rows a WHERE must see, nor for a subquery's condition."""
        from_ = node.args.get("from_") or node.args.get("from")
        if from_ is None:
            raise SQLPlanError("a SELECT without FROM is not planned into stages")
        used: dict[str, set[str]] = {}
        for c in node.find_all(exp.Column):
            used.setdefault(c.table.lower(), set()).add(c.name.lower())
        inner: list[Rel] = [self.source(from_.this, ctes, used)]
        conds: list[exp.Expr] = []
        later: list[tuple[exp.Join, Rel | SemiJoin]] = []
        for j in node.args.get("joins") or []:
            side = (j.side or "").upper()
            kind = (j.kind or "").upper()
            if kind in ("SEMI", "ANTI", "ASOF") or j.args.get("method") or j.args.get("using"):
                raise SQLPlanError(f"cannot plan the join {_sql(j)!r} into stages yet")
            semi = semi_join_of(node, j, where, ctes)
            if semi is not None:  # a match test (IN, EXISTS): no distinct, no join back
                later.append((j, semi))
                where = [c for c in where if c is not semi.test]
                continue
            src = self.source(j.this, ctes, used)
            if side or later:
                later.append((j, src))
                continue
            inner.append(src)
            on = j.args.get("on")
            if on is not None:
                conds.extend(on.flatten() if isinstance(on, exp.And) else [on])
        early: list[exp.Expr] = []
        if not any((j.side or "").upper() in ("RIGHT", "FULL") for j, _ in later):
            joined = {a for r in inner for a in r.aliases()}
            early = [
                c
                for c in where
                if _names(c) and _names(c) <= joined and c.find(exp.Query, exp.Exists) is None
            ]
        rel = self.order_inner(inner, conds + early)
        for j, step in later:
            rel = (
                self.semi(rel, step, ctes)
                if isinstance(step, SemiJoin)
                else self.outer(rel, step, j)
            )
        return rel, [c for c in where if not any(c is e for e in early)]

    def order_inner(self, rels: list[Rel], conds: list[exp.Expr]) -> Rel:
        """Inner joins, the largest source first, then always one that an equality links to
        what is joined (a cross join only when none is). A condition on one source filters
        it before it joins."""
        conds = [f for c in conds for f in factor_or(c)]
        conds = [c for c in conds if not (isinstance(c, exp.Boolean) and c.this)]
        pending = []
        for r in sorted(rels, key=lambda r: -r.size):
            own = [c for c in conds if _names(c) and _names(c) <= r.aliases()]
            conds = [c for c in conds if not any(c is o for o in own)]
            pending.append(self.filter(r, own))
        cur = pending.pop(0)
        while pending:
            pick = None
            for i, cand in enumerate(pending):
                keys = self.equalities(cur, cand, conds)
                if keys:
                    pick = i, keys
                    break
            if pick is None:
                i, keys = 0, []
            else:
                i, keys = pick
            cand = pending.pop(i)
            used = [c for c, _, _ in keys]
            conds = [c for c in conds if not any(c is u for u in used)]
            cur = self.join(cur, cand, [(lk, rk) for _, lk, rk in keys], "inner")
            # conditions now wholly inside the joined set are filters
            ready = [c for c in conds if _names(c) <= cur.aliases()]
            cur = self.filter(cur, ready)
            conds = [c for c in conds if not any(c is r for r in ready)]
        return self.filter(cur, conds)

    def equalities(
        self, left: Rel, right: Rel, conds: list[exp.Expr]
    ) -> list[tuple[exp.Expr, exp.Expr, exp.Expr]]:
        """The conditions ``a = b`` with ``a`` over ``left`` and ``b`` over ``right``."""
        out: list[tuple[exp.Expr, exp.Expr, exp.Expr]] = []
        la, ra = left.aliases(), right.aliases()
        for c in conds:
            if not isinstance(c, exp.EQ):
                continue
            a, b = c.this, c.expression
            na, nb = _names(a), _names(b)
            if na and nb and na <= la and nb <= ra:
                out.append((c, a, b))
            elif na and nb and na <= ra and nb <= la:
                out.append((c, b, a))
        return out

    def key_column(
        self, rel: Rel, e: exp.Expr, copy: bool, gate: list[exp.Expr] | None = None
    ) -> tuple[Rel, str]:
        """A column holding ``e``: a copy when the join must keep the original's NULLs, and
        NULL where a ``gate`` condition is not TRUE (a NULL key matches nothing, so an outer
        join's one-sided ON condition keeps the row unmatched, as SQL does)."""
        if isinstance(e, exp.Column) and not copy and not gate:
            return rel, rel.column(e)
        value = e.copy()
        if gate:
            cond = exp.and_(*[g.copy() for g in gate]) if len(gate) > 1 else gate[0].copy()
            value = exp.Case(ifs=[exp.If(this=cond, true=value)])
        name = self.fresh("k")
        return Rel(
            rel.pipe.with_columns(**{name: to_expr(value, rel.column)}), rel.cols, rel.size
        ), name

    def join(
        self,
        left: Rel,
        right: Rel,
        keys: list[tuple[exp.Expr, exp.Expr]],
        how: str,
        gates: tuple[list[exp.Expr], list[exp.Expr]] = ([], []),
    ) -> Rel:
        if not keys:  # a cross join: a constant key on both sides
            one = self.fresh("one")
            lp_ = left.pipe.with_columns(**{one: "1"})
            rp = right.pipe.with_columns(**{one: "1"})
            pipe = lp_.join(rp, left_on=one, right_on=one, how=how).drop(one)
            return Rel(pipe, {**left.cols, **right.cols}, left.size + right.size)
        lnames, rnames = [], []
        shared = []
        for lk, rk in keys:
            lk, rk, same = self.comparable(left, right, lk, rk)
            # an outer join's key columns keep their NULLs: join on copies of them; the
            # right's key column is read through the left's only in an inner join where both
            # hold the same values in the same type (an INT key equal to a DOUBLE one is not
            # its value; a RIGHT join's unmatched rows have no left value to read)
            left, ln = self.key_column(left, lk, how in ("right", "full"), gates[0])
            right, rn = self.key_column(right, rk, how != "inner" or not same, gates[1])
            lnames.append(ln)
            rnames.append(rn)
            shared.append(same)
        pipe = left.pipe.join(right.pipe, left_on=lnames, right_on=rnames, how=how)
        cols = {**left.cols, **right.cols}
        # the join keeps one column per key pair (the left's): the right's name reads it
        by_name = {v: k for k, v in right.cols.items()}
        for (lk, _), ln, rn, same in zip(keys, lnames, rnames, shared, strict=True):
            if rn in by_name and same:
                cols[by_name[rn]] = left.column(lk) if isinstance(lk, exp.Column) else ln
        kept = set(cols.values())
        hidden = [c for c in pipe.columns if c.startswith("__k") and c not in kept]
        if hidden:
            pipe = pipe.drop(*hidden)
        return Rel(pipe, cols, left.size + right.size)

    def outer(self, rel: Rel, src: Rel, j: exp.Join) -> Rel:
        how = _JOIN_HOW.get((j.side or "").upper())
        if how is None:
            raise SQLPlanError(f"cannot plan the join {_sql(j)!r} into stages")
        on = j.args.get("on")
        conds = _conjuncts(on) if on is not None else []
        conds = [c for c in conds if not (isinstance(c, exp.Boolean) and c.this)]
        keys = self.equalities(rel, src, conds)
        rest = [c for c in conds if not any(c is k[0] for k in keys)]
        gates: tuple[list[exp.Expr], list[exp.Expr]] = ([], [])
        after: list[exp.Expr] = []
        for c in rest:
            names = _names(c)
            if how == "inner" and not (names <= src.aliases() or names <= rel.aliases()):
                after.append(c)  # both sides, no =: a filter of the joined rows
                continue
            # a condition on the side whose rows may go unmatched filters that side first;
            # one on a preserved side makes its failing rows unmatched (a gated key)
            if how in ("left", "inner") and names <= src.aliases():
                src = self.filter(src, [c])
            elif how in ("right", "inner") and names <= rel.aliases():
                rel = self.filter(rel, [c])
            elif names <= rel.aliases():
                gates[0].append(c)
            elif names <= src.aliases():
                gates[1].append(c)
            else:
                raise SQLPlanError(
                    f"cannot plan the outer join condition {_sql(c)!r} (it compares both "
                    "sides without =) into stages yet"
                )
        if not keys and how != "inner":
            raise SQLPlanError(f"an outer join needs an equality to plan into stages: {_sql(j)!r}")
        return self.filter(self.join(rel, src, [(a, b) for _, a, b in keys], how, gates), after)

    # -- projection, aggregation, order ----------------------------------------------------
    def project(self, node: exp.Select, rel: Rel) -> Rel:
        outputs = [(e.alias_or_name, e.unalias()) for e in node.expressions]
        if any(isinstance(e, exp.Star) for _, e in outputs):
            raise SQLPlanError("SELECT * is not planned into stages yet; name the columns")
        group = node.args.get("group")
        having = node.args.get("having")
        order = node.args.get("order")
        exprs = [e for _, e in outputs] + ([having.this] if having is not None else [])
        exprs += [o.this for o in order.expressions] if order is not None else []
        for e in exprs:
            nested = e.find(exp.Query)
            if nested is not None:
                raise SQLPlanError(
                    f"cannot plan the subquery {_sql(nested)!r} where it stands into stages "
                    "yet: sqlglot could not turn it into a join (a correlated subquery that "
                    "compares with the outer query other than by =, or one in the select list)"
                )
        aggs = [a for e in exprs for a in e.find_all(exp.AggFunc)]
        replace: dict[str, str] = {}
        pipe = rel.pipe
        if group is not None or aggs:
            keys: list[str] = []
            computed: dict[str, object] = {}
            for g in group.expressions if group is not None else []:
                if isinstance(g, exp.Column):
                    keys.append(rel.column(g))
                else:
                    name = f"__g{len(computed) + 1}"  # scoped: see the aggregates' names
                    computed[name] = to_expr(g, rel.column)
                    keys.append(name)
                replace[_sql(g)] = keys[-1]
            if computed:
                pipe = pipe.with_columns(**computed)  # type: ignore[arg-type]
            named: dict[str, object] = {}
            for a in aggs:
                text = _sql(a)
                if text in replace:
                    continue
                # named by place in this SELECT, not by a query-wide count: a CTE planned
                # at each use is then the same subtree each time, and a job runs it once
                # (``driver._shared_first``); the names end at this SELECT's projection
                name = f"__a{len(named) + 1}"
                named[name] = to_expr(a, rel.column)
                replace[text] = name
            keep = list(dict.fromkeys(keys))
            pipe = pipe.group_by(*keep).agg(**named) if named else pipe.group_by(*keep).agg()  # type: ignore[arg-type]

            def column(c: exp.Column) -> str:
                raise SQLPlanError(f"column {_sql(c)!r} must be grouped or inside an aggregate")

            if having is not None:
                pipe = pipe.filter(to_expr(having.this, column, replace))
        else:
            column = rel.column
        outs: dict[str, object] = {}
        out_names: list[str] = []
        for i, (name, e) in enumerate(outputs):
            hidden = f"__o{i}"
            outs[hidden] = to_expr(e, column, replace)
            out_names.append(name)
        if len(set(n.lower() for n in out_names)) != len(out_names):
            raise SQLPlanError(f"the select list names a column twice: {out_names}")
        sort_keys: list[str] = []
        if order is not None:
            by_name = {n.lower(): f"__o{i}" for i, n in enumerate(out_names)}
            by_expr = {_sql(e): f"__o{i}" for i, (_, e) in enumerate(outputs)}
            for j, o in enumerate(order.expressions):
                key = o.this
                if isinstance(key, exp.Column) and not key.table and key.name.lower() in by_name:
                    target = by_name[key.name.lower()]
                elif _sql(key) in by_expr:
                    target = by_expr[_sql(key)]
                else:
                    target = f"__s{j}"
                    outs[target] = to_expr(key, column, replace)
                desc = bool(o.args.get("desc"))
                nulls_first = bool(o.args.get("nulls_first"))
                sort_keys.append(
                    f'"{target}"{" DESC" if desc else ""}{" NULLS FIRST" if nulls_first else " NULLS LAST"}'
                )
        pipe = pipe.with_columns(**outs)  # type: ignore[arg-type]
        hidden_outs = [f"__o{i}" for i in range(len(outputs))]
        distinct = node.args.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            raise SQLPlanError("DISTINCT ON is not planned into stages yet; use GROUP BY")
        if distinct:
            if sort_keys and any(not k.startswith('"__o') for k in sort_keys):
                raise SQLPlanError("ORDER BY an expression not selected with DISTINCT")
            pipe = pipe.select(*hidden_outs).distinct()
        pipe = self.order_limit(node, pipe, sort_keys)
        pipe = pipe.select(*hidden_outs).rename(dict(zip(hidden_outs, out_names, strict=True)))
        return Rel(pipe, {("", n.lower()): n for n in out_names})

    def order_limit(self, node: exp.Expr, pipe: Pipeline, sort_keys: list[str]) -> Pipeline:
        limit = node.args.get("limit")
        offset = node.args.get("offset")
        if sort_keys:
            pipe = pipe.sort(*sort_keys)
        if limit is not None or offset is not None:
            n = _int_of(limit.expression if limit is not None else None, "LIMIT")
            off = _int_of(offset.expression if offset is not None else None, "OFFSET") or 0
            pipe = pipe.limit(n if n is not None else 2**62, off)
        return pipe

    def finish(self, node: exp.Expr, rel: Rel, _names: dict[str, str]) -> Rel:
        """ORDER BY / LIMIT on a set operation."""
        order = node.args.get("order")
        keys = []
        if order is not None:
            names = rel.pipe.columns
            for o in order.expressions:
                key = o.this
                if isinstance(key, exp.Column) and not key.table:
                    found = [n for n in names if n.lower() == key.name.lower()]
                    name = found[0] if found else key.name
                elif isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
                    if not 1 <= int(key.this) <= len(names):
                        raise SQLPlanError(
                            f"ORDER BY {key.this}: the UNION has {len(names)} columns"
                        )
                    name = names[int(key.this) - 1]
                else:
                    raise SQLPlanError("ORDER BY of a UNION names output columns only")
                desc = " DESC" if o.args.get("desc") else ""
                nulls = " NULLS FIRST" if o.args.get("nulls_first") else " NULLS LAST"
                keys.append(f'"{name}"{desc}{nulls}')
        return Rel(self.order_limit(node, rel.pipe, keys), rel.cols)


def _key_type(rel: Rel, e: exp.Expr) -> pa.DataType | None:
    """The Arrow type of a join key that is a plain column (None for an expression)."""
    if not isinstance(e, exp.Column):
        return None
    return rel.pipe.schema.field(rel.column(e)).type


_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}


def _common_key_type(a: pa.DataType | None, b: pa.DataType | None) -> str | None:
    """The type two join keys are cast to when one is a decimal and they differ (the join
    compares only equal types, integers with floats): DOUBLE beside a float, else the
    decimal that holds both, as DuckDB compares them; None when no cast is needed."""
    if a is None or b is None or a == b:
        return None
    if not (pa.types.is_decimal(a) or pa.types.is_decimal(b)):
        return None
    if pa.types.is_floating(a) or pa.types.is_floating(b):
        return "DOUBLE"
    ends = []
    for t in (a, b):
        if pa.types.is_decimal(t):
            ends.append((t.precision - t.scale, t.scale))
        elif pa.types.is_integer(t):
            ends.append((_INT_DIGITS[t.bit_width], 0))
        else:
            return None  # not a number: the join says what it cannot compare
    whole, scale = max(w for w, _ in ends), max(s for _, s in ends)
    if whole + scale > 38:
        return "DOUBLE"
    return f"DECIMAL({whole + scale}, {scale})"


def _int_of(node: exp.Expr | None, what: str) -> int | None:
    if node is None:
        return None
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            pass
    raise SQLPlanError(f"{what} takes a whole number, not {_sql(node)!r}")


def factor_or(node: exp.Expr) -> list[exp.Expr]:
    """``(a AND b) OR (a AND c)`` as ``[a, b OR c]``, plus, for each source that every branch
    filters, the OR of those filters alone (implied, so it can filter that source before a
    join; TPC-H q19's join key sits inside each branch of an OR)."""
    node = node.unnest()
    if not isinstance(node, exp.Or):
        return [node]
    branches = [_conjuncts(b) for b in node.flatten()]
    texts = [[_sql(c) for c in b] for b in branches]  # once each: SQL text costs a copy
    common = set.intersection(*[set(t) for t in texts])
    out = [c for c, t in zip(branches[0], texts[0], strict=True) if t in common]
    rest = [
        [c for c, t in zip(b, ts, strict=True) if t not in common]
        for b, ts in zip(branches, texts, strict=True)
    ]
    if any(not r for r in rest):  # one branch is only the common part: the OR holds
        return out
    out.append(exp.or_(*[exp.and_(*r) if len(r) > 1 else r[0] for r in rest]))
    single = [
        {a: [c for c in r if _names(c) == {a}] for a in {x for c in r for x in _names(c)}}
        for r in rest
    ]
    for alias in set.intersection(*[{a for a, cs in m.items() if cs} for m in single]):
        parts = [m[alias] for m in single]
        out.append(exp.or_(*[exp.and_(*p) if len(p) > 1 else p[0] for p in parts]))
    return out


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    """``a AND (b AND c)`` as ``[a, b, c]``."""
    node = node.unnest()
    if isinstance(node, exp.And):
        return [c for part in (node.this, node.expression) for c in _conjuncts(part)]
    return [node]


def _in_subquery(node: exp.Expr) -> tuple[exp.Expr, exp.Expr, bool] | None:
    """``(value, query, negated)`` of a ``value [NOT] IN (SELECT ...)`` conjunct."""
    negated = isinstance(node, exp.Not)
    inner = node.this.unnest() if negated else node
    if isinstance(inner, exp.In) and inner.args.get("query") is not None:
        return inner.this, inner.args["query"], negated
    return None


def _names(node: exp.Expr) -> set[str]:
    """The source aliases a condition reads."""
    return {c.table.lower() for c in node.find_all(exp.Column)}


def _size_of(p: Pipeline) -> int:
    """The files' bytes under a table: the join order starts from the largest."""
    return sum(source_bytes(src) for src in p.sources.values())


def _points_typed(text: str) -> str:
    """``text`` with each number written from its point (``.5``) cast to the type DuckDB
    gives it, DECIMAL(1,1): sqlglot reads it as ``0.5``, which DuckDB types DECIMAL(2,1), and
    a product's scale and width follow (found from outside: ``d * .5`` came out one digit
    wider than DuckDB's). Names are DuckDB's of the caller's own text either way."""
    if not _POINT_FIRST.search(text):
        return text
    try:
        tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(text)
    except SqlglotError:
        return text  # the parser says what is wrong
    out, last = [], 0
    for before, t in zip([None, *tokens], tokens, strict=False):
        raw = text[t.start : t.end + 1]
        if (
            t.token_type is TokenType.NUMBER
            and before is not None
            and before.token_type is TokenType.DOT
            and before.end + 1 == t.start
            and raw.isdigit()
            and len(raw) <= 38
        ):
            out += [text[last : before.start], f"CAST(0.{raw} AS DECIMAL({len(raw)}, {len(raw)}))"]
            last = t.end + 1
    return "".join(out) + text[last:] if out else text


_POINT_FIRST = re.compile(r"(?<![\w.])\.[0-9]")


def _parse(text: str) -> exp.Query:
    """The one query in ``text``, or a ``SQLPlanError`` saying what else it is."""
    if len(text) > _MAX_TEXT:
        raise SQLPlanError(f"the SQL text is {len(text):,} characters; at most {_MAX_TEXT:,}")
    try:
        statements = [s for s in sqlglot.parse(_points_typed(text), read="duckdb") if s]
    except SqlglotError as exc:
        raise SQLPlanError(f"SQL does not parse: {exc}") from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise SQLPlanError(
            f"the query nests too deep to parse; at most {_MAX_DEPTH} levels are planned"
        ) from None
    if len(statements) != 1:
        raise SQLPlanError(f"give one statement, not {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise SQLPlanError(f"only a query (SELECT) is planned, not {tree.key.upper()}")
    _only_named_tables(tree)
    _bounded_depth(tree)
    for cte in tree.find_all(exp.CTE):  # WITH x AS ((SELECT ...)): sqlglot's optimizer loses
        while isinstance(cte.this, exp.Subquery) and not cte.this.alias:  # x's name
            cte.set("this", cte.this.this)
    _scalar_subqueries_one_row(tree)
    for g in tree.find_all(exp.Group):
        if g.args.get("all"):
            raise SQLPlanError("GROUP BY ALL is not planned into stages yet; name the keys")
    for o in tree.find_all(exp.Ordered):
        if isinstance(o.this, exp.Var) and o.this.name.upper() == "ALL":
            raise SQLPlanError("ORDER BY ALL is not planned into stages yet; name the keys")
    for f in tree.find_all(exp.Filter):
        raise SQLPlanError(
            f"an aggregate's FILTER (WHERE ...) is not planned into stages yet: {_sql(f)!r}; "
            "use CASE WHEN inside the aggregate"
        )
    return tree


_NOT_SCALAR = (
    exp.From,
    exp.Join,
    exp.Lateral,
    exp.SetOperation,
    exp.CTE,
    exp.In,
    exp.Exists,
    exp.Any,
    exp.All,
)


def _scalar_subqueries_one_row(tree: exp.Expr) -> None:
    """A subquery used as a value must give at most one row: DuckDB refuses more at run time,
    while the join sqlglot decorrelates it into would give a row per match (or one per
    group). Planned only when the subquery is one aggregate row (no GROUP BY)."""
    for sub in tree.find_all(exp.Subquery):
        parent = sub.parent  # past the parentheses around it: ((SELECT ...)) is one subquery
        while isinstance(parent, exp.Subquery | exp.Paren):
            parent = parent.parent
        if parent is None or isinstance(parent, _NOT_SCALAR):
            continue
        inner = sub.unnest()
        while isinstance(inner, exp.Subquery):
            inner = inner.this
        one_row = (
            isinstance(inner, exp.Select)
            and inner.args.get("group") is None
            and inner.expressions
            and all(e.find(exp.AggFunc) is not None for e in inner.expressions)
        )
        if not one_row:
            raise SQLPlanError(
                f"the scalar subquery {_sql(sub)!r} may give more than one row (DuckDB then "
                "refuses the query); it is planned when it is one aggregate (min, max, sum, "
                "avg, count) without GROUP BY"
            )


_MAX_TEXT = 4 << 20
"""Characters of SQL text planned (a bound on what one request makes the planner hold)."""
_MAX_DEPTH = 500
"""Levels of nesting planned (a bound on the planner's work and stack)."""
_MAX_LIST = 20_000
"""Values of one IN list: the expression language takes one expression of at most 64 KiB of
text (about 10,000 numbers), and sqlglot's optimizer spends seconds per 10,000 more."""
_MAX_CHAIN = 200
"""Terms of one AND/OR chain: the expression language's own bound, checked before sqlglot's
optimizer, whose rewrites of a long chain take time that grows faster than the chain."""


def _bounded_depth(tree: exp.Expr) -> None:
    """A ``SQLPlanError`` when ``tree`` nests deeper than ``_MAX_DEPTH`` or chains more than
    ``_MAX_CHAIN`` ANDs/ORs (walked without recursion: a deep tree cannot exhaust the stack)."""
    stack = [(tree, 1, 0)]
    while stack:
        node, depth, chain = stack.pop()
        if depth > _MAX_DEPTH:
            raise SQLPlanError(f"the query nests more than {_MAX_DEPTH} levels deep")
        if isinstance(node, exp.In | exp.Tuple) and len(node.expressions) > _MAX_LIST:
            raise SQLPlanError(
                f"an IN list of {len(node.expressions):,} values is not planned; at most "
                f"{_MAX_LIST:,} (give a long list as a table and join it, or use IN (SELECT ...))"
            )
        if chain > _MAX_CHAIN:
            raise SQLPlanError(
                f"an AND/OR chain of more than {_MAX_CHAIN} terms is not planned (each term "
                "nests one level); use IN (...) for a long list of values"
            )
        for child in node.iter_expressions():
            linked = isinstance(child, exp.Connector) or isinstance(child.unnest(), exp.Connector)
            stack.append((child, depth + 1, chain + 1 if linked else 0))


def _only_named_tables(tree: exp.Expr) -> None:
    """Every source is a table by its plain name: a table function (``read_csv``, ``glob``,
    ``range``), a file path or a qualified ``db.table`` is refused before anything binds or
    runs it, so a query reads only the tables the caller gave (or the lake's datasets)."""
    for t in tree.find_all(exp.Table):
        if not isinstance(t.this, exp.Identifier):
            raise SQLPlanError(
                f"the table function {_sql(t.this)!r} is not allowed in SQL: name a table "
                "(a lake dataset or one of the pipelines given as tables)"
            )
        if t.args.get("db") is not None or t.args.get("catalog") is not None:
            raise SQLPlanError(f"the qualified name {_sql(t)!r} is not allowed: name a table")
        for part in ("sample", "pivots"):
            if t.args.get(part):  # planned as the whole table, the answer would be wrong
                raise SQLPlanError(
                    f"{part.upper().rstrip('S')} on a table ({_sql(t)!r}) is not planned into "
                    "stages"
                )
    for node in tree.find_all(exp.Values, exp.Unnest):
        raise SQLPlanError(f"{type(node).__name__.upper()} as a source is not planned into stages")


def table_names(text: str | exp.Query) -> list[str]:
    """The tables a query reads (lowercased, first use first), its CTEs' names left out;
    of its text, or of the tree :func:`parse_query` made of it."""
    return _table_names(_parse(text) if isinstance(text, str) else text)


def parse_query(text: str) -> exp.Query:
    """The one query in ``text`` as sqlglot's tree, checked as :func:`plan_sql` checks it
    (parsed once for :func:`table_names` and :func:`plan_sql`)."""
    return _parse(text)


def _table_names(tree: exp.Query) -> list[str]:
    ctes = {c.alias.lower() for c in tree.find_all(exp.CTE)}
    names = [t.name.lower() for t in tree.find_all(exp.Table) if t.name]
    return [n for n in dict.fromkeys(names) if n not in ctes]


def _in_only_as_a_condition(tree: exp.Query) -> None:
    """Refuse ``x IN (SELECT ...)`` (and ``x = ANY (...)``) where its NULL answer differs from
    FALSE: sqlglot's optimizer makes it a LEFT JOIN tested ``IS NOT NULL``, FALSE where SQL
    gives NULL (a NULL ``x``, or no match among keys with a NULL). That is right only as a
    condition that keeps rows (ANDs and ORs up to a WHERE, HAVING or ON) or a CASE's WHEN
    (NULL takes the next branch, as FALSE does), not in a select
    list, under NOT, IS NULL or a comparison (found from outside: ``SELECT k IN (...)`` gave
    FALSE for a NULL ``k``). NOT IN itself sqlglot leaves alone, and the planner keeps its
    rule (``_Planner.in_subquery``)."""
    found: list[exp.Expr] = [n for n in tree.find_all(exp.In) if n.args.get("query") is not None]
    found += [a.parent for a in tree.find_all(exp.Any) if a.parent is not None]
    for node in found:
        if isinstance(node.parent, exp.Not):
            continue
        child, up = node, node.parent
        while isinstance(up, exp.Paren | exp.And | exp.Or):
            child, up = up, up.parent
        kept = isinstance(up, exp.Where | exp.Having) or (
            isinstance(up, exp.Join) and up.args.get("on") is not None
        )
        if not kept and not (isinstance(up, exp.If) and up.this is child):  # CASE WHEN x IN
            raise SQLPlanError(
                f"{_sql(node)!r} is planned into stages only as a condition of WHERE, HAVING "
                "or ON (elsewhere its NULL answer matters): the lake answers this query"
            )


def _dates_folded(tree: exp.Query) -> exp.Query:
    """Constant ``DATE ± INTERVAL`` folded as DuckDB types it (``sqlexpr.fold_dates``) before
    sqlglot's optimizer runs: with python-dateutil installed (pandas brings it), its
    simplifier folds them itself, into a DATE where DuckDB has a TIMESTAMP, and folds the
    interval arithmetic this planner refuses. Any other INTERVAL is refused here, the same
    with or without dateutil."""
    folded = fold_dates(tree.copy())
    for node in folded.find_all(exp.Interval):
        raise SQLPlanError(
            "an INTERVAL is planned into stages only in a constant DATE ± INTERVAL n unit: "
            f"{_sql(node.parent or node)!r}"
        )
    assert isinstance(folded, exp.Query)
    return folded


def _rules_for(tree: exp.Expr) -> Sequence[OptimizerFn]:
    """sqlglot's optimizer rules for ``tree``: without ``merge_subqueries`` when the query
    has an outer join and a derived table or CTE computing a column. sqlglot 30 merges such a
    table on a LEFT join's null-supplying side into the query above, so ``coalesce(v, 0)`` is
    computed after the join and an unmatched row gets 0 where SQL gives NULL (found by an
    outside fuzzer against DuckDB)."""
    outer = any(j.side in ("LEFT", "RIGHT", "FULL") for j in tree.find_all(exp.Join))
    computed = any(
        not isinstance(p.unalias(), exp.Column | exp.Star)
        for q in tree.find_all(exp.Subquery, exp.CTE)
        if isinstance(q.this, exp.Select)
        for p in q.this.selects
    )
    if outer and computed:
        return tuple(r for r in OPTIMIZER_RULES if r is not merge_subqueries)
    return OPTIMIZER_RULES


def plan_sql(text: str, tables: Mapping[str, Pipeline], tree: exp.Query | None = None) -> Pipeline:
    """The pipeline of one SELECT over ``tables`` (name -> pipeline): see the module doc.
    ``tree``: the text as :func:`parse_query` parsed it already (it is not changed)."""
    tree = _parse(text) if tree is None else tree
    known = {k.lower(): v for k, v in tables.items()}
    if len(known) != len(tables):  # SQL's names are case-insensitive
        raise SQLPlanError(f"tables {sorted(tables)} name one table twice, in two cases")
    missing = [n for n in _table_names(tree) if n not in known]
    if missing:
        raise SQLPlanError(f"no table {missing[0]!r}; tables: {', '.join(sorted(known)) or 'none'}")
    for name, p in known.items():
        seen: dict[str, str] = {}
        for c in p.columns:
            if c.lower() in seen:
                raise SQLPlanError(
                    f"table {name!r} has columns {seen[c.lower()]!r} and {c!r}, which SQL "
                    "cannot tell apart (its names are case-insensitive): rename one"
                )
            seen[c.lower()] = c
    _in_only_as_a_condition(tree)
    optimized, names = _optimized(text, tree, known)
    try:
        pipe = _Planner(known).query(optimized, {}).pipe
    except SQLPlanError:
        raise
    except PipelineError as exc:  # a step the pipeline refuses (a join of key types it
        # cannot compare): said as SQL's error, one class for every query not planned
        raise SQLPlanError(f"cannot plan the query into stages: {exc}") from None
    if isinstance(names, SQLPlanError):  # the planner's word on the query comes first
        raise names
    if names != pipe.columns:
        pipe = pipe.rename(dict(zip(pipe.columns, names, strict=True)))
    return dataclasses.replace(pipe, native=native_of(text, tree, known, optimized))


_OPTIMIZED: OrderedDict[tuple[str, tuple[tuple[str, bytes], ...]], tuple[exp.Query, list[str]]] = (
    OrderedDict()
)
"""sqlglot's optimized tree and DuckDB's column names of queries planned lately, by text and
table schemas (most recent last): a query run again (a dashboard's, a job resubmitted) skips
binding and sqlglot's optimizer, about two thirds of planning (20-30 ms of a TPC-H query)."""
_OPTIMIZED_MAX = 128
_OPTIMIZED_LOCK = threading.Lock()


def _optimized(
    text: str, tree: exp.Query, tables: Mapping[str, Pipeline]
) -> tuple[exp.Query, list[str] | SQLPlanError]:
    """The query qualified, decorrelated and with its predicates pushed down by sqlglot, and
    the names DuckDB gives its columns (or why DuckDB refuses the query): from
    ``_OPTIMIZED`` when this text was planned over tables of the same schemas, else bound
    and optimized now. The tree is the caller's own copy (the planner builds on its nodes;
    the kept one is never handed out)."""
    # the schemas as IPC bytes: their text can collide (a column named "x: int64\ny")
    key = (text, tuple(sorted((n, p.schema.serialize().to_pybytes()) for n, p in tables.items())))
    with _OPTIMIZED_LOCK:
        hit = _OPTIMIZED.get(key)
        if hit is not None:
            _OPTIMIZED.move_to_end(key)
    if hit is not None:
        return hit[0].copy(), list(hit[1])
    con = _binder(tables)
    try:
        schema: dict[str, object] = {name: _duck_types(con, name) for name in tables}
        try:
            folded = _dates_folded(tree)  # a copy of its own: optimized in place
            optimized = array_any_to_extremes(
                optimize(
                    folded, schema=schema, dialect="duckdb", rules=_rules_for(folded), copy=False
                )
            )
        except SqlglotError as exc:
            raise SQLPlanError(f"cannot plan the query: {exc}") from None
        try:
            names = _duck_names(text, con)
        except SQLPlanError as exc:
            return cast(exp.Query, optimized), exc
    finally:
        con.close()
    assert isinstance(optimized, exp.Query)
    with _OPTIMIZED_LOCK:
        _OPTIMIZED[key] = (optimized.copy(), names)
        while len(_OPTIMIZED) > _OPTIMIZED_MAX:
            _OPTIMIZED.popitem(last=False)
    return optimized, list(names)


def _duck_names(text: str, con: duckdb.DuckDBPyConnection) -> list[str]:
    """The names DuckDB gives the query's columns (``(a + b)`` for an unnamed expression,
    ``CAST(k AS VARCHAR)`` as written), from the text itself bound (never run) on ``con``
    (``_binder``: no query text reads the server's files, nor costs its CPU). The text must be
    one SELECT to DuckDB's parser too, not only to sqlglot's."""
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise SQLPlanError(f"DuckDB refuses the query: {exc}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise SQLPlanError("DuckDB's parser does not read the text as one SELECT: give one query")
    try:
        return list(con.sql(statements[0].query).columns)
    except duckdb.Error as exc:
        raise SQLPlanError(f"DuckDB refuses the query: {exc}") from None
