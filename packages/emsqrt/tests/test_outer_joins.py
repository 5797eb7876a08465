"""The outer-join rule (``emsqrt.optimizer.outer_joins``): a left join becomes inner exactly when
a filter above drops every row it extends with nulls; answers equal DuckDB's either way."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from oracle import assert_same_rows, duck, make_table

from emsqrt import EngineConfig, Pipeline, run
from emsqrt import plan as lp
from emsqrt.optimizer import outer_joins
from emsqrt.resolve import SchemaResolver

A = make_table({"rows": 2000, "keys": 400, "nulls": 0.1, "skew": False, "seed": 5})
B = make_table({"rows": 300, "keys": 400, "nulls": 0.1, "skew": False, "seed": 6}, "r")
# whether the filter drops every null-extended row (rg, rs: columns only b has)
FILTERS = [
    ("rg > 0", True),
    ("NOT rg IS NULL", True),
    ("rg IS NOT NULL", True),
    ("rg + g > 1", True),
    ("NOT (rg > 0)", True),
    ("rg > 0 OR rg < -1", True),
    ("rg BETWEEN 0 AND 2", True),
    ("rg NOT BETWEEN 0 AND 2", True),
    ("rg IN (1, 2)", True),
    ("rs LIKE 'w1%'", True),
    ("k > 3 AND rg = 1", True),
    ("CAST(rg AS DOUBLE) < 1.5", True),
    ("rg IS NULL", False),
    ("NOT (rg IS NOT NULL)", False),
    ("rg > 0 OR g > 0", False),
    ("coalesce(rg, 0) = 0", False),
    ("k > 3", False),
    ("g BETWEEN rg AND 5", True),
    ("g NOT BETWEEN rg AND 5", False),  # NULL bound: NOT (NULL AND false) keeps the row
]


def _joins(node: lp.Node) -> list[str]:
    found = [node.how] if isinstance(node, lp.Join) else []
    for kid in lp.children(node):
        found += _joins(kid)
    return found


def _left_join() -> Pipeline:
    a, b = Pipeline.from_arrow("a", A.schema), Pipeline.from_arrow("b", B.schema)
    return a.join(b, left_on=["k"], right_on=["rk"], how="left")


def _run(p: Pipeline, spill: Path) -> pa.Table:
    cfg = EngineConfig(mem_cap_bytes=1 << 20, spill_dir=str(spill))
    out = run(p.node, cfg, inputs={"a": A, "b": B}).table
    assert out is not None
    return out


@pytest.mark.parametrize(("pred", "inner"), FILTERS)
def test_a_filter_that_drops_null_extended_rows_makes_the_join_inner(
    spill_dir: Path, pred: str, inner: bool
) -> None:
    p = _left_join().filter(pred)
    assert _joins(outer_joins.apply(p.node, SchemaResolver())) == ["inner" if inner else "left"]
    got = _run(p, spill_dir)
    want = duck(f"SELECT a.*, rg, rs, rv FROM a LEFT JOIN b ON a.k = b.rk WHERE {pred}", a=A, b=B)
    assert_same_rows(got, want)


def test_renames_carry_it_down_and_computed_columns_that_keep_nulls_too(spill_dir: Path) -> None:
    base = _left_join()
    renamed = base.select("k", ("x", "rg")).filter("x > 0")
    computed = base.map(x="rg * 2").filter("x > 0")
    masked = base.map(x="coalesce(rg, 1)").filter("x > 0")
    for p, inner in ((renamed, True), (computed, True), (masked, False)):
        assert _joins(outer_joins.apply(p.node, SchemaResolver())) == ["inner" if inner else "left"]
    want = duck("SELECT a.k, rg AS x FROM a LEFT JOIN b ON a.k = b.rk WHERE rg > 0", a=A, b=B)
    assert_same_rows(_run(renamed, spill_dir), want)
    want = duck(
        "SELECT a.*, rg, rs, rv, coalesce(rg, 1) AS x FROM a LEFT JOIN b ON a.k = b.rk "
        "WHERE coalesce(rg, 1) > 0",
        a=A,
        b=B,
    )
    assert_same_rows(_run(masked, spill_dir), want)


def test_a_limit_or_an_aggregate_between_keeps_the_left_join(spill_dir: Path) -> None:
    base = _left_join()
    limited = base.limit(50).filter("rg > 0")
    counted = base.aggregate(["k"], ["max(rg) AS m"]).filter("m > 0")
    for p in (limited, counted):
        assert _joins(outer_joins.apply(p.node, SchemaResolver())) == ["left"]
    want = duck(
        "SELECT * FROM (SELECT a.k, max(rg) AS m FROM a LEFT JOIN b ON a.k = b.rk GROUP BY a.k) "
        "WHERE m > 0",
        a=A,
        b=B,
    )
    assert_same_rows(_run(counted, spill_dir), want)


def test_an_inner_join_on_the_null_extended_column_makes_the_join_below_inner(
    spill_dir: Path,
) -> None:
    """``a LEFT JOIN b`` then an inner join on one of b's columns: its NULLs never match."""
    c = Pipeline.from_arrow("c", B.schema).select(("ck", "rk"), ("cs", "rs"))
    p = _left_join().join(c, left_on=["rg"], right_on=["ck"], how="inner")
    assert _joins(outer_joins.apply(p.node, SchemaResolver())) == ["inner", "inner"]
    cfg = EngineConfig(mem_cap_bytes=1 << 20, spill_dir=str(spill_dir))
    got = run(p.node, cfg, inputs={"a": A, "b": B, "c": B}).table
    assert got is not None
    want = duck(
        "SELECT a.*, b.rg, b.rs, b.rv, c.rs AS cs FROM a LEFT JOIN b ON a.k = b.rk "
        "JOIN c ON b.rg = c.rk",
        a=A,
        b=B,
        c=B,
    )
    assert_same_rows(got, want)


def test_a_filter_on_the_left_side_of_a_full_join_converts_nothing() -> None:
    a, b = Pipeline.from_arrow("a", A.schema), Pipeline.from_arrow("b", B.schema)
    inner = b.join(a, left_on=["rk"], right_on=["k"], how="left")
    p = a.join(inner, left_on=["k"], right_on=["rk"], how="full").filter("g > 0")
    assert _joins(outer_joins.apply(p.node, SchemaResolver())) == ["full", "left"]
