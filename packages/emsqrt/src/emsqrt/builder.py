"""The one implementation of the pipeline vocabulary: a step applied to a logical plan.

Every front end builds plans through :class:`PlanBuilder`: emsqrt's ``Pipeline`` (and so its
YAML language, ``emsqrt.dsl``), elytra's fluent ``Pipeline`` and elytra's JSON spec (which
replays its steps through elytra's ``Pipeline``). So a step means the same thing, is checked
the same way and names its outputs by the same rule (``plan.agg_name``) whichever way it was
written. Front ends add only what is theirs: emsqrt's runs a plan under a cap in this process;
elytra's adds sources, Python functions, sessions and actions.

A builder is immutable: each step returns a new one, with the plan checked at once (an unknown
column names the closest one, a type error says which expression), so a mistake is reported
at the step that made it. ``step`` is the JSON form of the step that made this builder (what
elytra's ``to_spec`` records; see ``elytra.spec``), or None when it holds other pipelines or
cannot be written as JSON.

After an aggregate, a reference to an input column that exactly one output consumed resolves
to that output (``amount`` -> ``sum_amount``); a column consumed by several outputs is
ambiguous and the error lists them. A name that is a column always means the column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from platform_core import PlatformError, Schema
from platform_core.expr import Aggregate as AggExpr
from platform_core.expr import Column, Expr, parse, to_sql, walk

from . import plan as lp
from .errors import PlanError
from .optimizer._exprs import columns_of, map_children, rename_columns
from .resolve import SchemaResolver

__all__ = [
    "HIDDEN_PREFIX",
    "PlanBuilder",
    "SortKeyLike",
    "expr_name",
    "parse_expr",
    "sort_key",
    "split_aggregates",
    "split_alias",
]

HIDDEN_PREFIX = "__elytra_agg_"
"""The names under which ``agg("max(v1) - min(v2) AS r")`` computes the aggregates an output
expression holds; the projection after it drops them. (The spelling is older than this module
and is kept so plans, and the stage keys derived from them, are unchanged.)"""

SortKeyLike = str | lp.SortKey | Mapping[str, Any]
"""A sort key: ``"a"``, ``"a DESC"``, ``"a DESC NULLS FIRST"``, a ``SortKey``, or
``{"column": "a", "descending": true, "nulls_first": false}`` (emsqrt's YAML)."""

_ALIAS = re.compile(r"^(.*\S)\s+AS\s+(\"[^\"]+\"|\w+)\s*$", re.IGNORECASE | re.DOTALL)
_SORT_WORDS = {"ASC", "DESC", "NULLS", "FIRST", "LAST"}


def split_alias(text: str) -> tuple[str, str | None]:
    """``"sum(x) AS total"`` -> ``("sum(x)", "total")``; no ``AS`` -> ``(text, None)``."""
    m = _ALIAS.match(text)
    if not m:
        return text, None
    return m.group(1), m.group(2).strip('"')


def parse_expr(value: str | Expr, where: str) -> Expr:
    """An expression from its text (or as given); PlanError naming ``where`` otherwise."""
    if isinstance(value, Expr):
        return value
    if not isinstance(value, str):
        raise PlanError(f"{where}: expected an expression string or builder, got {value!r}")
    try:
        return parse(value)
    except PlatformError as exc:
        raise PlanError(f"{where}: {exc.message}") from None


def expr_name(e: Expr) -> str:
    """The output name of an ``agg`` output given no ``AS``: ``plan.agg_name`` for one
    aggregate call, else the expression's SQL text as a word."""
    if isinstance(e, AggExpr):
        return lp.agg_name(e)
    return re.sub(r"\W+", "_", to_sql(e)).strip("_") or "expr"


def sort_key(key: SortKeyLike, descending: bool = False) -> lp.SortKey:
    """One sort key from its text, a mapping or a ``SortKey``; ``descending`` is the default
    direction of a key that does not say ``ASC`` or ``DESC``."""
    if isinstance(key, lp.SortKey):
        return key
    if isinstance(key, Mapping):
        if "column" not in key:
            raise PlanError(f"sort: a sort key mapping needs a 'column', got {dict(key)!r}")
        return lp.SortKey(
            str(key["column"]),
            bool(key.get("descending", descending)),
            bool(key.get("nulls_first", False)),
        )
    if not isinstance(key, str):
        raise PlanError(f"sort: a sort key is a column name such as 'amount DESC', got {key!r}")
    words = key.split()
    if not words:
        raise PlanError("sort: an empty sort key; give a column name such as 'amount DESC'")
    upper = [w.upper() for w in words[1:]]
    if any(w not in _SORT_WORDS for w in upper):
        raise PlanError(
            f"sort: cannot read {key!r}; write 'column', 'column DESC' or 'column DESC NULLS FIRST'"
        )
    desc = "DESC" in upper or (descending and "ASC" not in upper)
    return lp.SortKey(words[0].strip('"'), desc, "FIRST" in upper)


def key_texts(keys: Iterable[lp.SortKey]) -> list[str]:
    """Sort keys as text, the JSON form's spelling."""
    return [
        f"{k.column}{' DESC' if k.descending else ''}{' NULLS FIRST' if k.nulls_first else ''}"
        for k in keys
    ]


def split_aggregates(
    expr: Expr, keys: tuple[str, ...], taken: dict[AggExpr, str], where: str
) -> Expr:
    """``expr`` with each aggregate call replaced by a column of a hidden name, added to
    ``taken`` (the same call twice gets one name). A column outside an aggregate must be a
    group key, as in SQL; PlanError otherwise.

    This is how ``agg("max(v1) - min(v2) AS r")`` is planned: the aggregates, then a ``Map``
    of the expressions over them, then a ``Project`` dropping the hidden names, so every
    backend, the exchange and the kernel see nothing new."""

    def visit(node: Expr) -> Expr:
        if isinstance(node, AggExpr):
            name = taken.setdefault(node, f"{HIDDEN_PREFIX}{len(taken)}")
            return Column(name)
        if isinstance(node, Column) and node.name not in keys:
            raise PlanError(
                f"{where}: column {node.name!r} must be a group_by key or inside an aggregate "
                f"(e.g. max({node.name}))"
            )
        return map_children(node, visit)

    return visit(expr)


def _count(n: object) -> bool:
    """Whether ``n`` is a row count: an int (not a bool) in [0, 2**63)."""
    return isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 63


def _no_column(where: str, name: str, names: Sequence[str]) -> PlanError:
    from platform_core._suggest import did_you_mean

    return PlanError(f"{where}: no column {name!r}{did_you_mean(name, names)}")


def format_of(path: str) -> str:
    """A file's format from its extension: parquet, jsonl (``.jsonl``, ``.ndjson``, ``.json``)
    or csv (anything else)."""
    lower = path.lower()
    for ext, fmt in (
        (".parquet", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
    ):
        if lower.endswith(ext):
            return fmt
    return "csv"


def _field(f: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(f, dict) or "name" not in f or "type" not in f:
        raise PlanError(f"a schema field needs a name and a type, got {f!r}")
    from platform_core import parse_type

    return {
        "name": f["name"],
        "type": str(parse_type(f["type"])),
        "nullable": bool(f.get("nullable", True)),
    }


_RECENT = SchemaResolver()
_RECENT_MAX = 4096


def _resolved(node: lp.Node) -> pa.Schema:
    """``node``'s schema from a resolver shared by every builder, which keeps the schemas of
    recent nodes (by identity, the node held): each step checks its new node, and a fresh
    resolver per step typed the whole plan below it again (a 40-step SQL query's plan:
    thousands of node visits, a tenth of a small TPC-H query's time)."""
    global _RECENT
    if len(_RECENT._cache) > _RECENT_MAX:
        _RECENT = SchemaResolver()
    return _RECENT.schema(node)


@dataclass(frozen=True)
class PlanBuilder:
    """An immutable logical plan under construction; each step returns a new builder."""

    node: lp.Node
    aliases: Mapping[str, str] = field(default_factory=dict)
    """After an aggregate: an input column -> the one output that consumed it (or, after
    ``"\\0"``, the several that did: ambiguous)."""
    step: Mapping[str, Any] | None = field(default=None, compare=False)
    """The JSON form of the step that made this builder (see the module docstring)."""

    # --- sources ------------------------------------------------------------------------------

    @classmethod
    def scan(
        cls,
        path: str | Path,
        format: str | None = None,
        schema: Schema | list[dict[str, Any]] | None = None,
        delimiter: str = ",",
    ) -> PlanBuilder:
        """Read a CSV, JSONL or Parquet file (format from the extension unless given)."""
        p = str(path).removeprefix("file://")
        fmt = format or format_of(p)
        if isinstance(schema, list):
            try:
                schema = Schema.from_dict({"fields": [_field(f) for f in schema]})
            except PlatformError as exc:
                raise PlanError(f"scan {p}: bad schema: {exc.message}") from exc
        b = cls(lp.Scan(p, fmt, schema, delimiter=delimiter))  # type: ignore[arg-type]
        _ = b.schema  # a missing file or a schema that cannot be inferred fails here
        return b

    @classmethod
    def input(cls, name: str, schema: pa.Schema | Schema) -> PlanBuilder:
        """Batches given at run time under ``name`` (``run(..., inputs={name: ...})``)."""
        s = schema if isinstance(schema, Schema) else Schema.from_arrow(schema)
        return cls(lp.Input(name, s))

    # --- checks -------------------------------------------------------------------------------

    @property
    def schema(self) -> pa.Schema:
        """The output schema (checked: unknown columns and type errors raise PlanError here)."""
        return _resolved(self.node)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def col(self, name: str) -> str:
        """A column name, an aggregated input column resolved to its single output."""
        if name not in self.aliases or name in self.schema.names:
            return name
        target = self.aliases[name]
        if target.startswith("\0"):
            raise PlanError(
                f'column "{name}" is ambiguous after the aggregate: it was consumed by '
                f"{target[1:]}; name the aggregate output instead"
            )
        return target

    def resolve(self, expr: Expr) -> Expr:
        """``expr`` with aggregated input columns resolved (see ``col``)."""
        if not self.aliases:
            return expr
        names = self.schema.names
        mapping = {c: self.col(c) for c in columns_of(expr) if c not in names}
        return rename_columns(expr, mapping) if mapping else expr

    def then(
        self,
        node: lp.Node,
        step: Mapping[str, Any] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> PlanBuilder:
        """A builder for ``node`` (checked now: an error points at the step that caused it).
        For steps outside the vocabulary (elytra's Python functions); aliases are kept
        unless given."""
        new = PlanBuilder(node, self.aliases if aliases is None else aliases, step)
        _ = new.schema
        return new

    # --- the vocabulary -----------------------------------------------------------------------

    def filter(self, predicate: str | Expr) -> PlanBuilder:
        """Keep the rows where ``predicate`` is true: ``filter("amount > 1000")``."""
        e = self.resolve(parse_expr(predicate, "filter"))
        return self.then(lp.Filter(self.node, e), {"filter": to_sql(e)})

    def select(self, *columns: str | tuple[str, str]) -> PlanBuilder:
        """Keep these columns in this order: ``"a"``, ``"a AS b"`` or ``("b", "a")``
        (output, input)."""
        if not columns:
            raise PlanError("select: name at least one column (a table has one or more)")
        pairs, texts = [], []
        for c in columns:
            if isinstance(c, tuple):
                pairs.append((c[0], self.col(c[1])))
                texts.append(c[1] if c[0] == c[1] else f'"{c[1]}" AS "{c[0]}"')
                continue
            if not isinstance(c, str):
                raise PlanError(f"select: a column is a name such as 'a' or 'a AS b', got {c!r}")
            src, alias = split_alias(c)
            src = src.strip().strip('"')
            pairs.append((alias or src, self.col(src)))
            texts.append(c)
        return self.then(lp.Project(self.node, tuple(pairs)), {"select": texts})

    def with_columns(self, exprs: Mapping[str, str | Expr]) -> PlanBuilder:
        """Add or replace computed columns, evaluated left to right:
        ``with_columns({"total": "price * qty"})``."""
        cols = tuple(
            (n, self.resolve(parse_expr(e, f"with_columns {n!r}"))) for n, e in exprs.items()
        )
        if not cols:
            raise PlanError("with_columns: give at least one column, e.g. total='price * qty'")
        step = {"with_columns": {n: to_sql(e) for n, e in cols}}
        return self.then(lp.Map(self.node, cols), step)

    def drop(self, *columns: str) -> PlanBuilder:
        """All columns but these."""
        names = self.columns
        for c in columns:
            if c not in names:
                raise _no_column("drop", c, names)
        kept = tuple((c, c) for c in names if c not in columns)
        return self.then(lp.Project(self.node, kept), {"drop": list(columns)})

    def rename(self, mapping: Mapping[str, str]) -> PlanBuilder:
        """Rename columns: ``rename({"old": "new"})``; the others keep their names."""
        names = self.columns
        for old in mapping:
            if old not in names:
                raise _no_column("rename", old, names)
        renamed = tuple((mapping.get(c, c), c) for c in names)
        return self.then(lp.Project(self.node, renamed), {"rename": dict(mapping)})

    def aggregate(
        self,
        keys: Sequence[str],
        outputs: Sequence[str | Expr | tuple[str | None, str | Expr]],
    ) -> PlanBuilder:
        """Group by ``keys`` (none: the whole input is one group) and compute ``outputs``:
        ``"sum(amount)"``, ``"sum(amount) AS total"``, ``("total", "sum(amount)")`` or an
        expression over aggregates and keys, as in SQL (``"max(v1) - min(v2) AS r"``).
        An output given no name is named by ``expr_name`` (``sum_amount``)."""
        names = self.columns
        group = tuple(self.col(k) for k in keys)
        for k in group:
            if k not in names:
                raise _no_column("group_by", k, names)
        if not outputs and not group:
            raise PlanError("agg: give at least one aggregate, e.g. 'count(*) AS n'")
        named: list[tuple[str, Expr]] = []
        for item in outputs:
            name, value = item if isinstance(item, tuple) else (None, item)
            text: str | Expr = value
            if name is None and isinstance(value, str):
                text, name = split_alias(value)
            e = self.resolve(parse_expr(text, "agg"))
            if not any(isinstance(n, AggExpr) for n in walk(e)):
                raise PlanError(
                    f"agg: {value!r} is not an aggregate and holds none "
                    "(count, sum, avg, min, max, ...)"
                )
            named.append((name or expr_name(e), e))
        texts = [f'{to_sql(e)} AS "{n}"' for n, e in named]
        step: dict[str, Any] = {"group_by": list(group), "agg": texts} if group else {"agg": texts}
        aliases = self._consumed(named, group)
        if all(isinstance(e, AggExpr) for _, e in named):
            specs = tuple(lp.AggSpec(n, e) for n, e in named)  # type: ignore[arg-type]
            return self.then(lp.Aggregate(self.node, group, specs), step, aliases)
        # expressions over aggregates: the aggregates under hidden names, then the expressions
        taken: dict[AggExpr, str] = {}
        computed: list[tuple[str, Expr]] = []
        for n, e in named:
            if isinstance(e, AggExpr):
                taken.setdefault(e, f"{HIDDEN_PREFIX}{len(taken)}")
            computed.append((n, split_aggregates(e, group, taken, f"agg {n!r}")))
        specs = tuple(lp.AggSpec(hidden, a) for a, hidden in taken.items())
        node: lp.Node = lp.Aggregate(self.node, group, specs)
        staged = tuple((f"{HIDDEN_PREFIX}out_{i}", e) for i, (_, e) in enumerate(computed))
        node = lp.Map(node, staged)
        kept = tuple((k, k) for k in group) + tuple(
            (n, staged[i][0]) for i, (n, _) in enumerate(computed)
        )
        out_names = [n for n, _ in kept]
        if len(set(out_names)) != len(out_names):
            raise PlanError(f"agg: duplicate output names in {out_names}")
        return self.then(lp.Project(node, kept), step, aliases)

    @staticmethod
    def _consumed(named: list[tuple[str, Expr]], keys: tuple[str, ...]) -> dict[str, str]:
        """Input column -> the output that consumed it (``"\\0"`` + all of them if several)."""
        consumed: dict[str, list[str]] = {}
        for name, e in named:
            for a in walk(e):
                if not isinstance(a, AggExpr):
                    continue
                for arg in a.args:
                    for c in columns_of(arg):
                        if name not in consumed.get(c, []):
                            consumed.setdefault(c, []).append(name)
        return {
            c: outs[0] if len(outs) == 1 else "\0" + ", ".join(outs)
            for c, outs in consumed.items()
            if c not in keys
        }

    def sort(self, *keys: SortKeyLike, descending: bool = False) -> PlanBuilder:
        """Sort by keys: ``sort("a", "b DESC")``; NULLs last unless ``NULLS FIRST``."""
        if not keys:
            raise PlanError("sort: give at least one column")
        sort_keys = tuple(self._key(k, descending) for k in keys)
        return self.then(lp.Sort(self.node, sort_keys), {"sort": key_texts(sort_keys)})

    def _key(self, key: SortKeyLike, descending: bool) -> lp.SortKey:
        k = sort_key(key, descending)
        column = self.col(k.column)
        return k if column == k.column else lp.SortKey(column, k.descending, k.nulls_first)

    def limit(self, n: int, offset: int = 0) -> PlanBuilder:
        """The first ``n`` rows after skipping ``offset``."""
        if not (_count(n) and _count(offset)):
            raise PlanError(
                f"limit: n and offset are integers >= 0 (below 2**63), got {n!r}, {offset!r}"
            )
        return self.then(lp.Limit(self.node, n, offset), {"limit": n, "offset": offset})

    def top_k(
        self,
        n: int,
        *keys: SortKeyLike,
        descending: bool = False,
        per: str | Iterable[str] = (),
    ) -> PlanBuilder:
        """The first ``n`` rows in ``keys`` order; with ``per``, the first ``n`` of each group."""
        if not _count(n):
            raise PlanError(f"top_k: n is an integer >= 0 (below 2**63), got {n!r}")
        if not keys:
            raise PlanError("top_k: give at least one column to order by")
        groups = tuple(self.col(g) for g in ((per,) if isinstance(per, str) else tuple(per)))
        sort_keys = tuple(self._key(k, descending) for k in keys)
        step: dict[str, Any] = {"top_k": n, "by": key_texts(sort_keys)}
        if groups:
            step["per"] = list(groups)
        return self.then(lp.TopK(self.node, sort_keys, n, groups), step)

    def join(
        self,
        other: PlanBuilder,
        on: str | Iterable[str] | None = None,
        *,
        left_on: str | Iterable[str] | None = None,
        right_on: str | Iterable[str] | None = None,
        how: str = "inner",
    ) -> PlanBuilder:
        """Equi-join (``inner``, ``left``, ``right``, ``full``, ``semi``, ``anti``) on key
        columns. ``step`` holds the keys and ``how``; the caller adds the other side's JSON
        under ``"join"``."""

        def keys(v: str | Iterable[str] | None) -> tuple[str, ...]:
            return (v,) if isinstance(v, str) else tuple(v or ())

        lk = tuple(self.col(c) for c in keys(left_on or on))
        rk = tuple(other.col(c) for c in keys(right_on or on))
        if not lk or len(lk) != len(rk):
            raise PlanError("join: give on=, or left_on= and right_on= of the same length")
        if how not in lp.JOIN_TYPES:
            raise PlanError(f"join: how is one of {', '.join(lp.JOIN_TYPES)}, not {how!r}")
        step = {"left_on": list(lk), "right_on": list(rk), "how": how}
        return self.then(lp.Join(self.node, other.node, lk, rk, how), step, {})  # type: ignore[arg-type]

    def union(self, *others: PlanBuilder) -> PlanBuilder:
        """UNION ALL: rows of this and the others (same column names, in order). ``step`` is
        None: the caller writes the others' JSON."""
        return self.then(lp.Union((self.node, *(o.node for o in others))), None, {})

    def distinct(self) -> PlanBuilder:
        """Each distinct row once."""
        node = lp.Aggregate(self.node, tuple(self.columns), ())
        return self.then(node, {"distinct": True}, {})

    def sink(self, path: str | Path, format: str | None = None) -> PlanBuilder:
        """Write the rows to a CSV, JSONL or Parquet file (format from the extension)."""
        p = str(path).removeprefix("file://")
        fmt = (format or format_of(p)).lower()
        if fmt not in lp.FORMATS:
            raise PlanError(f"sink: format is one of {', '.join(lp.FORMATS)}, not {fmt!r}")
        return self.then(lp.Sink(self.node, p, fmt), None, {})  # type: ignore[arg-type]
