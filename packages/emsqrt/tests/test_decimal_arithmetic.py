"""Decimal arithmetic and decimal sums (TPC-H's money columns) equal DuckDB on both paths.

``l_extendedprice * (1 - l_discount)`` and ``ps_supplycost * ps_availqty`` over
DECIMAL(15, 2) Parquet columns, computed in a ``Map`` and summed, or summed directly, in
full, partial and final mode: the kernel's result, the operators' (``kernel="off"``) and
DuckDB's own SQL over the same files must have the same Arrow schema and the same rows
(decimals exactly; avg, a DOUBLE, to 1e-12 relative). Partial states of several parts merge
exactly: their sums are decimal(38, s), added without rounding.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emsqrt import EngineConfig, SumOverflowError, run
from emsqrt import plan as lp
from platform_core import PlatformError, Schema
from platform_core.expr import parse

PARTS = 3
ROWS = 4000


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``PARTS`` Parquet files shaped like lineitem's money columns, with NULLs."""
    d = tmp_path_factory.mktemp("decimals")
    con = duckdb.connect()
    for p in range(PARTS):
        lo = p * ROWS
        con.execute(
            f"""COPY (SELECT (i % 7)::INTEGER AS k, 'f' || (i % 3) AS flag,
                CASE WHEN i % 13 = 0 THEN NULL
                     ELSE ((i * 7919 % 10000000) / 100.0)::DECIMAL(15, 2) END AS price,
                ((i % 11) / 100.0)::DECIMAL(15, 2) AS disc,
                ((i % 9) / 100.0)::DECIMAL(15, 2) AS tax,
                ((i * 31 % 99999) / 100.0)::DECIMAL(15, 2) AS cost,
                CASE WHEN i % 17 = 0 THEN NULL ELSE (i % 9999 + 1)::INTEGER END AS qty,
                (i % 50 + 1)::DECIMAL(15, 2) AS quantity
            FROM range({lo}, {lo + ROWS}) t(i)) TO '{d}/part{p}.parquet' (FORMAT parquet)"""
        )
    return d


def _files(data: Path) -> list[str]:
    return sorted(str(f) for f in data.glob("part*.parquet"))


def _scan(path: str) -> lp.Scan:
    return lp.Scan(path, "parquet")


MAPPED = (
    ("disc_price", "price * (1 - disc)"),
    ("charge", "price * (1 - disc) * (1 + tax)"),
    ("value", "cost * qty"),
)
AGGS = (
    ("sum_qty", "sum(quantity)"),
    ("sum_price", "sum(price)"),
    ("sum_disc_price", "sum(disc_price)"),
    ("sum_charge", "sum(charge)"),
    ("sum_value", "sum(value)"),
    ("sum_direct", "sum(cost * quantity)"),
    ("avg_price", "avg(price)"),
    ("avg_disc", "avg(disc)"),
    ("min_charge", "min(charge)"),
    ("max_disc_price", "max(disc_price)"),
    ("n", "count(*)"),
)
SQL_AGGS = {
    "sum_disc_price": "sum(price * (1 - disc))",
    "sum_charge": "sum(price * (1 - disc) * (1 + tax))",
    "sum_value": "sum(cost * qty)",
    "min_charge": "min(price * (1 - disc) * (1 + tax))",
    "max_disc_price": "max(price * (1 - disc))",
}


def _plan(source: lp.Node, keys: tuple[str, ...], mode: str = "full") -> lp.Aggregate:
    mapped = lp.Map(source, tuple((n, parse(e)) for n, e in MAPPED))
    aggs = tuple(lp.AggSpec(n, parse(e)) for n, e in AGGS)  # type: ignore[arg-type]
    return lp.Aggregate(mapped, keys, aggs, mode)  # type: ignore[arg-type]


def _duckdb(data: Path, keys: tuple[str, ...]) -> pa.Table:
    select = [*keys, *(f"{SQL_AGGS.get(n, e)} AS {n}" for n, e in AGGS)]
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    con = duckdb.connect()
    return con.sql(
        f"SELECT {', '.join(select)} FROM read_parquet({_files(data)!r}){group}"
    ).to_arrow_table()


def _same(got: pa.Table, want: pa.Table) -> None:
    """Same schema, same rows: decimals exactly, doubles to 1e-12 relative."""
    assert got.schema == want.schema, (got.schema, want.schema)
    keys = [c for c in ("k", "flag") if c in got.column_names]
    if keys:
        order = [(c, "ascending") for c in keys]
        got, want = got.sort_by(order), want.sort_by(order)
    assert got.num_rows == want.num_rows
    for name in got.column_names:
        for u, v in zip(got[name].to_pylist(), want[name].to_pylist(), strict=True):
            if isinstance(u, float) and isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-12), (name, u, v)
            else:
                assert u == v, (name, u, v)


def _run(plan: lp.Node, spill: Path, *, kernel: bool, **inputs: pa.Table) -> pa.Table:
    config = EngineConfig(spill_dir=str(spill), kernel="auto" if kernel else "off")
    result = run(plan, config, inputs=inputs or None)
    ops = [o.op for o in result.manifest.operators]
    assert (ops == ["kernel"]) if kernel else ("kernel" not in ops), ops
    assert result.table is not None
    return result.table


@pytest.mark.parametrize("keys", [(), ("k",), ("k", "flag")])
@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "operators"])
def test_full_aggregate_of_decimal_arithmetic_equals_duckdb(
    data: Path, spill_dir: Path, keys: tuple[str, ...], kernel: bool
) -> None:
    # one scan of every part: the kernel reads the files, the operators scan them in turn
    source: lp.Node = lp.Union(tuple(_scan(f) for f in _files(data)))
    got = _run(_plan(source, keys), spill_dir, kernel=kernel)
    want = _duckdb(data, keys)
    assert want.schema.field("sum_disc_price").type == pa.decimal128(38, 4)
    assert want.schema.field("sum_charge").type == pa.decimal128(38, 6)
    _same(got, want)


@pytest.mark.parametrize("keys", [(), ("k",)])
@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "operators"])
def test_partial_states_of_parts_merge_exactly(
    data: Path, spill_dir: Path, keys: tuple[str, ...], kernel: bool
) -> None:
    """Each part's partial aggregate (as a task computes it), then one final over all the
    states, on the same path: DuckDB's totals to the last digit."""
    states = pa.concat_tables(
        [_run(_plan(_scan(f), keys, "partial"), spill_dir, kernel=kernel) for f in _files(data)]
    )
    source_schema = Schema.from_arrow(pq.read_schema(_files(data)[0]))
    mapped_schema = _mapped_schema(source_schema)
    full = _plan(_scan(_files(data)[0]), keys)
    final = lp.Aggregate(
        lp.Input("s", Schema.from_arrow(states.schema)),
        keys,
        full.aggregates,
        "final",
        mapped_schema,
    )
    _same(_run(final, spill_dir, kernel=kernel, s=states), _duckdb(data, keys))


def _mapped_schema(source: Schema) -> Schema:
    """The schema the partial aggregates read: the parts' columns and the mapped ones."""
    from platform_core.expr import check
    from platform_core.schema import Field

    fields = list(source.fields)
    for name, text in MAPPED:
        fields.append(Field(name, check(parse(text), Schema(fields))))
    return Schema(fields)


def test_a_sum_past_38_digits_is_refused_on_both_paths(spill_dir: Path) -> None:
    """decimal(38, 2) values near the top: their sum passes 38 digits, which DuckDB refuses
    ("Overflow in SUM of DECIMAL"); so do the kernel and the operators."""
    big = Decimal("9" * 36 + ".99")
    table = pa.table({"x": pa.array([big, big], pa.decimal128(38, 2))})
    plan = lp.Aggregate(
        lp.Input("t", Schema.from_arrow(table.schema)),
        (),
        (lp.AggSpec("s", parse("sum(x)")),),  # type: ignore[arg-type]
    )
    con = duckdb.connect()
    con.register("t", table)
    with pytest.raises(duckdb.Error, match="Overflow"):
        con.sql("SELECT sum(x) FROM t").fetchall()
    for kernel in (True, False):
        config = EngineConfig(spill_dir=str(spill_dir), kernel="auto" if kernel else "off")
        with pytest.raises((SumOverflowError, PlatformError)):
            run(plan, config, inputs={"t": table})


def test_a_product_overflow_is_an_error_naming_the_expression(spill_dir: Path) -> None:
    """``a * b`` of two DECIMAL(15, 2) is DECIMAL(18, 4): DuckDB raises past 18 digits, and
    so do the operators (naming the expression)."""
    top = Decimal("9999999999999.99")
    table = pa.table({"a": pa.array([top], pa.decimal128(15, 2))})
    plan = lp.Map(lp.Input("t", Schema.from_arrow(table.schema)), (("x", parse("a * a")),))
    con = duckdb.connect()
    con.register("t", table)
    with pytest.raises(duckdb.Error, match=r"Overflow in multiplication of DECIMAL\(18\)"):
        con.sql("SELECT a * a FROM t").fetchall()
    config = EngineConfig(spill_dir=str(spill_dir), kernel="off")
    with pytest.raises(PlatformError, match=r"multiplication of DECIMAL\(18\).*a \* a"):
        run(plan, config, inputs={"t": table})
