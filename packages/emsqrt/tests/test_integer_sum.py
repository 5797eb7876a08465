"""Integer and boolean SUM as DuckDB computes it: a 128-bit HUGEINT, exported to Arrow as
decimal128(38, 0), never an overflow error and never a wrapped value.

Generated columns of every integer width (signed and unsigned) and booleans, with values at
and near their limits as well as small ones, NULLs, groups whose values are all NULL and
aggregates over no rows, are summed by emsqrt's operators (under caps that make them merge
partial states and spill), by the DuckDB kernel, and as partial states of several parts
merged by a final aggregate; each answer must have DuckDB's own type and value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import KiB, input_node, sized

from emsqrt import EngineConfig, run, run_batches
from emsqrt import plan as lp
from platform_core import Schema
from platform_core.expr import parse

# uint64 is not a platform type (values past 2**63 - 1 are refused at the schema, with the
# advice to cast): every other integer width is.
TYPES = {
    "i8": pa.int8(),
    "i16": pa.int16(),
    "i32": pa.int32(),
    "i64": pa.int64(),
    "u8": pa.uint8(),
    "u16": pa.uint16(),
    "u32": pa.uint32(),
    "bool": pa.bool_(),
}


def _limits(t: pa.DataType) -> tuple[int, int]:
    if pa.types.is_boolean(t):
        return 0, 1
    info = np.iinfo(t.to_pandas_dtype())
    return int(info.min), int(info.max)


@st.composite
def columns(draw: Any) -> tuple[str, pa.Table]:
    """A table ``k`` (group key, some groups all NULL in ``x``), ``x`` of a drawn type."""
    name = draw(st.sampled_from(sorted(TYPES)))
    t = TYPES[name]
    lo, hi = _limits(t)
    near = st.one_of(
        st.integers(max(lo, hi - 3), hi),
        st.integers(lo, min(hi, lo + 3)),
        st.integers(-3, 3).filter(lambda v: lo <= v <= hi),
    )
    rows = draw(st.integers(0, 300))
    values = draw(st.lists(st.one_of(st.none(), near, near), min_size=rows, max_size=rows))
    keys = draw(st.lists(st.integers(0, 6), min_size=rows, max_size=rows))
    # group 9: every value NULL (sums to NULL, counts 0)
    nulls = draw(st.integers(0, 3))
    values += [None] * nulls
    keys += [9] * nulls
    x = pa.array([None if v is None else bool(v) if t == pa.bool_() else v for v in values], t)
    return name, pa.table({"k": pa.array(keys, pa.int64()), "x": x})


def _aggs(t: pa.DataType) -> list[tuple[str, str]]:
    aggs = [("s", "sum(x)"), ("n", "count(x)"), ("s2", "sum(CASE WHEN k % 2 = 0 THEN x END)")]
    if not pa.types.is_boolean(t):  # DuckDB has no avg(BOOLEAN)
        aggs.append(("a", "avg(x)"))
    return aggs


def _plan(t: pa.Table, keys: tuple[str, ...], aggs: list[tuple[str, str]]) -> lp.Aggregate:
    return lp.Aggregate(input_node("t", t), keys, tuple(lp.AggSpec(n, parse(e)) for n, e in aggs))


def _duck(t: pa.Table, keys: tuple[str, ...], aggs: list[tuple[str, str]]) -> pa.Table:
    con = duckdb.connect(config={"threads": 1})
    con.register("t", t)
    sel = ", ".join([*keys, *(f"{e} AS {n}" for n, e in aggs)])
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    return con.sql(f"SELECT {sel} FROM t{group}").to_arrow_table()


def assert_duckdb(got: pa.Table, want: pa.Table) -> None:
    """Same schema (types included) and rows; avg to 1e-15 relative (DuckDB divides the
    128-bit sum in long double, we in double: at most an ulp or two apart)."""
    assert got.schema == want.schema, (got.schema, want.schema)
    keys = [(c, "ascending") for c in got.column_names if c in ("k",)]
    if keys:
        got, want = got.sort_by(keys), want.sort_by(keys)
    assert got.num_rows == want.num_rows
    for name in got.column_names:
        a, b = got.column(name).to_pylist(), want.column(name).to_pylist()
        if pa.types.is_floating(got.schema.field(name).type):
            for u, v in zip(a, b, strict=True):
                assert (u is None) == (v is None), (name, u, v)
                if u is not None:
                    assert math.isclose(u, v, rel_tol=1e-15), (name, u, v)
        else:
            assert a == b, name


@pytest.mark.timeout(600)
@settings(
    max_examples=sized(25, long=150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=columns(),
    keys=st.sampled_from([("k",), ()]),
    cap=st.sampled_from([64 * KiB, 1 << 22]),
    empty=st.booleans(),
)
def test_operators_sum_integers_as_duckdb(
    spill_dir: Path, data: tuple[str, pa.Table], keys: tuple[str, ...], cap: int, empty: bool
) -> None:
    _, t = data
    if empty:  # an aggregate over no rows: one NULL row without keys, none with keys
        t = t.slice(0, 0)
    aggs = _aggs(t.schema.field("x").type)
    got = run_batches(_plan(t, keys, aggs), {"t": t}, cap, spill_dir, max_partitions=4)
    want = _duck(t, keys, aggs)
    assert want.schema.field("s").type == pa.decimal128(38, 0)
    assert_duckdb(got.table, want)


def _run(plan: lp.Node, spill: Path, kernel: str, **inputs: pa.Table) -> pa.Table:
    r = run(plan, EngineConfig(spill_dir=str(spill), kernel=kernel), inputs=inputs)
    ops = [o.op for o in r.manifest.operators]
    assert (ops == ["kernel"]) == (kernel == "auto"), ops
    assert r.table is not None
    return r.table


@pytest.mark.timeout(600)
@settings(
    max_examples=sized(20, long=100),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=columns(), keys=st.sampled_from([("k",), ()]), parts=st.integers(1, 4))
def test_kernel_and_merged_partial_states_sum_integers_as_duckdb(
    spill_dir: Path, data: tuple[str, pa.Table], keys: tuple[str, ...], parts: int
) -> None:
    _, t = data
    aggs = _aggs(t.schema.field("x").type)
    want = _duck(t, keys, aggs)
    full = _plan(t, keys, aggs)
    assert_duckdb(_run(full, spill_dir, "auto", t=t), want)
    # Several parts' partial states (from the kernel and the operators alike), merged by a
    # final aggregate in each: the states are 128-bit, so no part's sum overflows.
    bounds = np.linspace(0, t.num_rows, parts + 1).astype(int)
    states = []
    for p in range(parts):
        piece = t.slice(int(bounds[p]), int(bounds[p + 1] - bounds[p]))
        partial = lp.Aggregate(full.input, keys, full.aggregates, "partial")
        states.append(_run(partial, spill_dir, "auto" if p % 2 else "off", t=piece))
    for s in states[1:]:
        assert s.schema == states[0].schema
    merged = pa.concat_tables(states)
    final = lp.Aggregate(
        lp.Input("s", Schema.from_arrow(merged.schema)),
        keys,
        full.aggregates,
        "final",
        Schema.from_arrow(t.schema),
    )
    for kernel in ("auto", "off"):
        assert_duckdb(_run(final, spill_dir, kernel, s=merged), want)


def test_int64_extremes_in_one_group_sum_past_int64_everywhere(spill_dir: Path) -> None:
    # 3000 rows of int64's largest value: 1.6e22, far past int64, exact in DuckDB's HUGEINT.
    n = 3000
    t = pa.table(
        {
            "k": pa.array(np.arange(n) % 2, pa.int64()),
            "x": pa.array(np.full(n, np.iinfo(np.int64).max), pa.int64()),
        }
    )
    aggs = _aggs(pa.int64())
    want = _duck(t, ("k",), aggs)
    assert want.column("s").to_pylist() == [(2**63 - 1) * (n // 2)] * 2
    for kernel in ("auto", "off"):
        assert_duckdb(_run(_plan(t, ("k",), aggs), spill_dir, kernel, t=t), want)
    got = run_batches(_plan(t, ("k",), aggs), {"t": t}, 64 * KiB, spill_dir, max_partitions=4)
    assert_duckdb(got.table, want)
