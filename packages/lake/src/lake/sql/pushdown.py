"""Per-table pushdown for the gather plan: each dataset's own filter and columns.

A query the coordinator finishes itself (joins, subqueries, windows ...) runs its original SQL
over one Arrow table per dataset, gathered from the nodes. Each such table need only hold the
rows and columns the query can use, and :func:`plan_reads` finds them on sqlglot's qualified
copy of the query (every column names its table):

- **Columns**: the columns each reference of the dataset reads, in any scope (correlated
  columns included), unioned over the references. ``EXISTS (SELECT * ...)`` reads only the
  columns it correlates on and filters by; any other ``*``, ``COLUMNS(...)``, PIVOT or NATURAL
  join keeps every column (pruning could change the answer).
- **Filter**: per reference, the conjuncts of its scope's WHERE (and of inner joins' ON, and a
  LEFT JOIN's ON for its right side) that name only that reference's columns, are
  deterministic and hold no subquery, aggregate or window; never from a WHERE into the
  null-supplying side of an outer join, never across scopes. A dataset read by several
  references gets the OR of their filters, or none if one of them has none.

The coordinator re-applies every condition (it runs the original SQL), so a pushed filter only
has to keep every row that can contribute: a row a reference's conjunct rejects cannot pass its
scope. Where the analysis is unsure (qualification failed, an unusual FROM clause, a column it
cannot place) it pushes nothing for the tables concerned and says why in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

__all__ = ["TableRead", "needs_every_column", "plan_reads", "without_exists_stars"]

VOLATILE = frozenset(
    {
        "random",
        "rand",
        "uuid",
        "gen_random_uuid",
        "uuidv4",
        "uuidv7",
        "setseed",
        "nextval",
        "currval",
        "now",
        "today",
        "get_current_time",
        "get_current_timestamp",
        "transaction_timestamp",
    }
)
"""Functions whose value differs between the node's run and the coordinator's: not pushed."""


@dataclass(frozen=True)
class TableRead:
    """What the nodes send of one dataset: these columns of the rows that pass ``filter``."""

    dataset: str
    columns: tuple[str, ...]
    """The dataset's columns the query reads, in schema order (never empty)."""
    filter: str | None = None
    """DuckDB SQL over the dataset's unqualified columns, or None: every row."""
    refs: int = 0
    """How many times the query reads the dataset (FROM/JOIN references, in every scope)."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Why a filter or a pruning was not applied, where the analysis was unsure."""

    def fragment(self) -> str:
        """The SQL each node runs over its chunks of the dataset."""
        cols = ", ".join(_quote(c) for c in self.columns)
        text = f"SELECT {cols} FROM {_quote(self.dataset)}"
        return text if self.filter is None else f"{text} WHERE {self.filter}"

    def explain(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "filter": self.filter,
            "refs": self.refs,
            "notes": list(self.notes),
        }


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def without_exists_stars(tree: exp.Expression) -> exp.Expression:
    """A copy of ``tree`` where ``EXISTS (SELECT * ...)`` selects ``1``: an EXISTS ignores its
    select list, and a bare ``*`` (no EXCLUDE/REPLACE) cannot make it an aggregate."""
    copy = tree.copy()
    for node in list(copy.find_all(exp.Exists)):
        query = node.this
        if isinstance(query, exp.Subquery):
            query = query.this
        if not isinstance(query, exp.Select) or len(query.expressions) != 1:
            continue
        star = query.expressions[0]
        if isinstance(star, exp.Star) and not any(star.args.values()):
            query.set("expressions", [exp.Literal.number(1)])
    return copy


def needs_every_column(tree: exp.Expression) -> bool:
    """Whether pruning columns could change the answer: ``*``, ``COLUMNS(...)``, PIVOT (its
    implicit group keys are all other columns), NATURAL joins (all common names)."""
    if tree.find(exp.Pivot, exp.Columns):  # Pivot covers UNPIVOT too
        return True
    if any(not isinstance(s.parent, exp.Count) for s in tree.find_all(exp.Star)):
        return True  # a * that selects columns (count(*) reads none)
    if any(j.args.get("method") for j in tree.find_all(exp.Join)):  # NATURAL, ASOF ...
        return True
    return any(
        isinstance(f, exp.Anonymous) and str(f.this).upper() == "COLUMNS"
        for f in tree.find_all(exp.Anonymous)
    )


@dataclass
class _Ref:
    """One FROM/JOIN reference of a dataset in one scope."""

    dataset: str
    columns: set[str] = field(default_factory=set)
    conjuncts: list[str] = field(default_factory=list)
    unsure: str | None = None


def plan_reads(tree: exp.Expression, schemas: dict[str, list[str]]) -> dict[str, TableRead]:
    """Each dataset's :class:`TableRead` for a gathered query.

    ``schemas`` maps every dataset the query reads to its column names (schema order). Nothing
    here may modify ``tree`` (statements are shared): the analysis works on copies.
    """
    lowered = {name.lower(): name for name in schemas}
    base = without_exists_stars(tree)
    every = needs_every_column(base)
    try:
        qualified, scopes = _qualified_scopes(base, schemas)
    except Exception as exc:  # sqlglot could not place the columns: push nothing
        why = f"the query could not be analysed ({type(exc).__name__}: {str(exc)[:200]})"
        return {name: _fallback(tree, name, cols, every, why) for name, cols in schemas.items()}
    if any(
        isinstance(w, exp.With) and w.args.get("recursive") for w in qualified.find_all(exp.With)
    ):
        return {
            name: _fallback(tree, name, cols, every, "a recursive CTE: nothing pushed")
            for name, cols in schemas.items()
        }
    actual = {n: {c.lower(): c for c in cols} for n, cols in schemas.items()}
    refs: dict[int, _Ref] = {}
    """id(exp.Table source) -> its reference."""
    for scope in scopes:
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and source.name.lower() in lowered:
                refs.setdefault(id(source), _Ref(lowered[source.name.lower()]))
    unplaced = _place_columns(qualified, scopes, refs, actual)
    for scope in scopes:
        _push_filters(scope, refs, actual)
    stray = _stray_datasets(qualified, scopes, refs, lowered)
    out: dict[str, TableRead] = {}
    for name, cols in schemas.items():
        mine = [r for r in refs.values() if r.dataset == name]
        if not mine or name in stray:
            why = "a reference the analysis could not place: nothing pushed"
            out[name] = _fallback(tree, name, cols, every, why)
        else:
            out[name] = _merged_read(name, cols, mine, every, unplaced)
    return out


def _qualified_scopes(
    base: exp.Expression, schemas: dict[str, list[str]]
) -> tuple[exp.Expression, list[Scope]]:
    """sqlglot's qualified copy of the query (every column names its table) and its scopes;
    raises where the columns cannot be placed for sure (names that differ only in case)."""
    collide = len({n.lower() for n in schemas}) != len(schemas) or any(
        len({c.lower() for c in cols}) != len(cols) for cols in schemas.values()
    )
    if collide:
        raise ValueError("names that differ only in case")
    mapping: dict[str, object] = {
        n.lower(): {c.lower(): "UNKNOWN" for c in cols} for n, cols in schemas.items()
    }
    qualified = qualify(
        base,
        schema=mapping,
        dialect="duckdb",
        expand_alias_refs=False,
        validate_qualify_columns=False,
        quote_identifiers=False,
        identify=False,
    )
    return qualified, list(traverse_scope(qualified))


def _place_columns(
    qualified: exp.Expression,
    scopes: list[Scope],
    refs: dict[int, _Ref],
    actual: dict[str, dict[str, str]],
) -> set[str]:
    """Add each column to the reference it reads; the (lower-case) names of the columns that
    could not be placed, which every dataset having such a column must then read."""
    unplaced: set[str] = set()
    seen: set[int] = set()
    for scope in scopes:
        for node in scope.walk():
            if not isinstance(node, exp.Column) or id(node) in seen:
                continue
            seen.add(id(node))
            found = _resolve(scope, node)
            if isinstance(found, exp.Table) and id(found) in refs:
                ref = refs[id(found)]
                name = actual[ref.dataset].get(node.name.lower())
                if name is None:
                    unplaced.add(node.name.lower())
                else:
                    ref.columns.add(name)
            elif found is None:  # keep every name it might mean (``s.a``: struct ``s``?)
                unplaced.update(p.name.lower() for p in node.parts)
    for node in qualified.find_all(exp.Column):
        if id(node) not in seen:
            unplaced.update(p.name.lower() for p in node.parts)
    return unplaced


def _stray_datasets(
    qualified: exp.Expression, scopes: list[Scope], refs: dict[int, _Ref], lowered: dict[str, str]
) -> set[str]:
    """The datasets with a table in the tree that is no source of its scope (so it was not
    analysed): nothing is pushed for them."""
    placed = {
        id(t)
        for scope in scopes
        for t in scope.tables
        if id(t) in refs or isinstance(scope.sources.get(t.alias_or_name), Scope)
    }
    return {
        lowered[t.name.lower()]
        for t in qualified.find_all(exp.Table)
        if t.name.lower() in lowered and id(t) not in placed
    }


def _merged_read(
    name: str, cols: list[str], mine: list[_Ref], every: bool, unplaced: set[str]
) -> TableRead:
    """One dataset's read over all its references: the union of their columns, and the OR of
    their filters (none if one reference reads it unfiltered)."""
    notes = [r.unsure for r in mine if r.unsure]
    if every:
        wanted = set(cols)
    else:
        wanted = set().union(*(r.columns for r in mine))
        wanted |= {c for c in cols if c.lower() in unplaced}
    columns = tuple(c for c in cols if c in wanted) or tuple(cols[:1])
    filters = [" AND ".join(f"({c})" for c in r.conjuncts) for r in mine]
    filt: str | None
    if all(filters):
        unique = list(dict.fromkeys(filters))
        filt = unique[0] if len(unique) == 1 else " OR ".join(f"({f})" for f in unique)
    else:
        filt = None
        if any(filters):
            notes.append("read unfiltered by another reference: no filter pushed")
    return TableRead(name, columns, filt, len(mine), tuple(dict.fromkeys(notes)))


def _resolve(scope: Scope, column: exp.Column) -> exp.Table | Scope | None:
    """The source ``column`` reads: its table in this scope or, correlated, an outer one."""
    table = column.table
    if not table:
        return None
    current: Scope | None = scope
    while current is not None:
        if table in current.sources:
            found: exp.Table | Scope = current.sources[table]
            return found
        current = current.parent
    return None


def _fallback(tree: exp.Expression, name: str, cols: list[str], every: bool, why: str) -> TableRead:
    """No analysis: every column the query names (a superset, or all), no filter."""
    if every:
        columns = tuple(cols)
    else:
        used = {i.name.lower() for i in tree.find_all(exp.Identifier)}
        columns = tuple(c for c in cols if c.lower() in used) or tuple(cols[:1])
    return TableRead(name, columns, None, 0, (why,))


def _unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _conjuncts(condition: exp.Expr | None) -> list[exp.Expr]:
    """The top-level AND terms of a WHERE or ON condition (parentheses looked through)."""
    if condition is None:
        return []
    if isinstance(condition, exp.Where):
        condition = condition.this
    condition = _unparen(condition)
    if not isinstance(condition, exp.And):
        return [condition]
    return [t for part in condition.flatten() for t in _conjuncts(part)]


def _disjuncts(condition: exp.Expr) -> list[exp.Expr]:
    condition = _unparen(condition)
    if not isinstance(condition, exp.Or):
        return [condition]
    return [t for part in condition.flatten() for t in _disjuncts(part)]


def _pushable(
    scope: Scope, conjunct: exp.Expr, names: dict[str, dict[str, str]]
) -> list[tuple[str, str]]:
    """(alias, SQL over its columns) for each reference ``conjunct`` implies a filter on.

    A conjunct that reads one reference gives itself. An OR whose every branch holds terms that
    read only reference ``t`` gives ``t`` the OR of those terms: any row that passes the OR
    passes one branch, hence that branch's terms on ``t`` (TPC-H q07 and q19 are of this form).
    """
    alias = _single_source(scope, conjunct)
    if alias is not None:
        text = _render(conjunct, names[alias]) if alias in names else None
        return [] if text is None else [(alias, text)]
    branches = _disjuncts(conjunct)
    if len(branches) < 2:
        return []
    per_branch: list[dict[str, list[str]]] = []
    for branch in branches:
        terms: dict[str, list[str]] = {}
        for term in _conjuncts(branch):
            for a, text in _pushable(scope, term, names):
                terms.setdefault(a, []).append(text)
        per_branch.append(terms)
    out = []
    for a in set.intersection(*(set(t) for t in per_branch)):
        parts = [" AND ".join(f"({x})" for x in t[a]) for t in per_branch]
        out.append((a, " OR ".join(f"({x})" for x in dict.fromkeys(parts))))
    return sorted(out)


def _push_filters(scope: Scope, refs: dict[int, _Ref], actual: dict[str, dict[str, str]]) -> None:
    """Give each dataset reference of a SELECT scope the conjuncts that may be pushed to it."""
    select = scope.expression
    if not isinstance(select, exp.Select):
        return
    mine = {
        alias: source
        for alias, source in scope.sources.items()
        if isinstance(source, exp.Table) and id(source) in refs
    }
    if not mine:
        return
    order = _from_order(select)
    if order is None:
        for source in mine.values():
            refs[id(source)].unsure = (
                "an unusual FROM clause (lateral, semi/anti, nested or "
                "positional join): no filter pushed"
            )
        return
    aliases = [a for a, _ in order]
    nullable: set[str] = set()
    # (conjunct, aliases it may go to)
    candidates: list[tuple[exp.Expr, set[str]]] = []
    for k, (alias, join) in enumerate(order):
        if join is None:
            continue
        side = (join.side or "").upper()
        on = join.args.get("on")
        if side == "LEFT":
            candidates += [(c, {alias}) for c in _conjuncts(on)]
            nullable.add(alias)
        elif side in ("RIGHT", "FULL"):
            nullable.update(aliases[:k])
            if side == "FULL":
                nullable.add(alias)
        else:  # inner or cross: its ON filters the rows joined so far, like a WHERE
            allowed = {a for a in aliases[: k + 1] if a not in nullable}
            candidates += [(c, allowed) for c in _conjuncts(on)]
    where = select.args.get("where")
    allowed = {a for a in aliases if a not in nullable}
    candidates += [(c, allowed) for c in _conjuncts(where)]
    names = {alias: actual[refs[id(source)].dataset] for alias, source in mine.items()}
    for conjunct, targets in candidates:
        for alias, text in _pushable(scope, conjunct, names):
            if alias in targets:
                refs[id(mine[alias])].conjuncts.append(text)


def _from_order(select: exp.Select) -> list[tuple[str, exp.Join | None]] | None:
    """The FROM clause as (alias, join) in order, or None where it is not a plain chain of
    tables and derived tables joined by inner, cross, left, right or full joins."""
    source = select.args.get("from_")
    if source is None:
        return []
    if select.args.get("laterals") or source.args.get("expressions"):
        return None
    items: list[tuple[exp.Expression, exp.Join | None]] = [(source.this, None)]
    for join in select.args.get("joins") or []:
        kind = (join.kind or "").upper()
        if join.args.get("method") or kind not in ("", "INNER", "CROSS", "OUTER"):
            return None
        items.append((join.this, join))
    out: list[tuple[str, exp.Join | None]] = []
    for node, join in items:
        if isinstance(node, exp.Table):
            if any(node.args.get(k) for k in ("joins", "laterals", "pivots", "sample")):
                return None
            if not isinstance(node.this, exp.Identifier):
                return None
        elif not isinstance(node, exp.Subquery) or node.args.get("pivots"):
            return None
        alias = node.alias_or_name
        if not alias:
            return None
        out.append((alias, join))
    return out


def _single_source(scope: Scope, conjunct: exp.Expr) -> str | None:
    """The one alias of this scope that ``conjunct`` reads, if it reads exactly one and may be
    evaluated on its rows alone (deterministic; no subquery, aggregate or window)."""
    if conjunct.find(exp.Subquery, exp.Exists, exp.AggFunc, exp.Window, exp.Select, exp.Star):
        return None
    for func in conjunct.find_all(exp.Func):
        name = (
            str(func.this).lower() if isinstance(func, exp.Anonymous) else func.sql_name().lower()
        )
        if name in VOLATILE or type(func).__name__.startswith(("Current", "Rand", "Uuid")):
            return None
    tables = set()
    for column in conjunct.find_all(exp.Column):
        if not column.table or column.table not in scope.sources:
            return None  # unplaced, or correlated to an outer scope
        tables.add(column.table)
    return tables.pop() if len(tables) == 1 else None


def _render(conjunct: exp.Expr, names: dict[str, str]) -> str | None:
    """``conjunct`` as DuckDB SQL over the dataset's own (unqualified, quoted) column names."""
    missing: list[str] = []

    def own(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Column):
            return node
        name = names.get(node.name.lower())
        if name is None:
            missing.append(node.name)  # not a column of the dataset (a select-list alias ...)
            return node
        return exp.column(exp.to_identifier(name, quoted=True))

    copy = conjunct.transform(own)
    if missing:
        return None
    text = copy.sql(dialect="duckdb")
    try:  # what we send must parse back as one expression
        sqlglot.parse_one(text, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    return text
