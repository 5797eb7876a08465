"""One aggregate split across runs: mode ``partial`` per part, ``final`` over the states.

This is how elytra runs an aggregate on many chunks: each part's partial states (the README's
table) are concatenated and merged. The result must equal DuckDB's over the whole table, for
every aggregate, under caps that make both halves spill.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import KiB, assert_same_rows, duck, input_node, make_table, table_params

from emsqrt import Aggregate, AggSpec, CapTooSmallError, Input, PlanError, run_batches
from emsqrt.physical.aggregate import state_schema
from emsqrt.plan_json import plan_from_json, plan_to_json
from emsqrt.resolve import SchemaResolver
from platform_core import Schema
from platform_core.expr import parse, to_sql

# Every aggregate whose answer does not depend on which of equal rows comes first (arg_min
# and arg_max break ties by input order, which a split does not keep: tested apart below).
AGGS = [
    ("n", "count(*)"),
    ("nv", "count(v)"),
    ("sk", "sum(k)"),
    ("sv", "sum(v)"),
    ("ag", "avg(g)"),
    ("mn", "min(s)"),
    ("mx", "max(v)"),
    ("sd", "stddev_samp(v)"),
    ("vp", "var_pop(g)"),
    ("cr", "corr(v, g)"),
    ("md", "median(v)"),
    ("qd", "quantile_disc(g, 0.3)"),
    ("qc", "quantile_cont(v, 0.75)"),
    ("dk", "count(DISTINCT g)"),
]
DECOMPOSABLE = [a for a in AGGS if a[0] not in ("md", "qd", "qc", "dk")]
GROUPS = [("k",), ("g",), ("s", "g"), ()]


def _specs(aggs: list[tuple[str, str]]) -> tuple[AggSpec, ...]:
    return tuple(AggSpec(n, parse(e)) for n, e in aggs)


def _run(plan: Aggregate, name: str, table: pa.Table, cap: int, spill_dir: Path) -> pa.Table:
    """Run under ``cap``; a CapTooSmallError (one group's raw values past the cap) must name
    a cap under which the run succeeds."""
    message = ""
    try:
        return run_batches(plan, {name: table}, cap, spill_dir).table
    except CapTooSmallError as exc:
        message = str(exc)
    m = re.search(r"raise the cap to at least (\d+) bytes", message)
    assert m, message
    assert int(m.group(1)) > cap
    return run_batches(plan, {name: table}, int(m.group(1)), spill_dir).table


def _split_run(
    t: pa.Table,
    group_by: tuple[str, ...],
    aggs: list[tuple[str, str]],
    parts: int,
    cap: int,
    spill_dir: Path,
) -> pa.Table:
    """Partial aggregates over ``parts`` slices, then the final one over their states; both
    plans go through JSON, as they do to a worker."""
    specs = _specs(aggs)
    partial = Aggregate(input_node("t", t), group_by, specs, "partial")
    partial = plan_from_json(plan_to_json(partial))
    size = max(1, -(-t.num_rows // parts))
    states = []
    for start in range(0, max(t.num_rows, 1), size):
        piece = t.slice(start, size)
        states.append(_run(partial, "t", piece, cap, spill_dir))
    state = pa.concat_tables(states)
    assert state.schema == state_schema(partial, t.schema)
    final = Aggregate(
        Input("states", Schema.from_arrow(state.schema)),
        group_by,
        specs,
        "final",
        Schema.from_arrow(t.schema),
    )
    final = plan_from_json(plan_to_json(final))
    return _run(final, "states", state, cap, spill_dir)


def _sql(group_by: tuple[str, ...], aggs: list[tuple[str, str]]) -> str:
    sel = ", ".join([*group_by, *(f"{to_sql(parse(e))} AS {n}" for n, e in aggs)])
    return f"SELECT {sel} FROM t" + (f" GROUP BY {', '.join(group_by)}" if group_by else "")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    p=table_params(min_rows=0, max_rows=5000),
    group_by=st.sampled_from(GROUPS),
    parts=st.sampled_from([1, 2, 5]),
    cap=st.sampled_from([256 * KiB, 1 << 24]),
    holistic=st.booleans(),
)
def test_split_aggregate_matches_duckdb(
    spill_dir: Path,
    p: dict[str, Any],
    group_by: tuple[str, ...],
    parts: int,
    cap: int,
    holistic: bool,
) -> None:
    t = make_table(p)
    aggs = AGGS if holistic else DECOMPOSABLE
    got = _split_run(t, group_by, aggs, parts, cap, spill_dir)
    assert_same_rows(got, duck(_sql(group_by, aggs), t=t))


def test_split_extremes_without_ties_match_duckdb(spill_dir: Path) -> None:
    # unique values: arg_min/arg_max have one answer whatever the order of the parts
    t = make_table({"rows": 3000, "keys": 40, "nulls": 0.1, "skew": False, "seed": 7})
    t = t.append_column("u", pa.array(range(3000), pa.int64()))
    aggs = [("am", "arg_min(s, u)"), ("ax", "arg_max(g, u * 2)"), ("n", "count(*)")]
    got = _split_run(t, ("k",), aggs, 4, 256 * KiB, spill_dir)
    assert_same_rows(got, duck(_sql(("k",), aggs), t=t))


def test_final_aggregate_checks_its_states() -> None:
    t = make_table({"rows": 10, "keys": 3, "nulls": 0.0, "skew": False, "seed": 1})
    specs = _specs([("sd", "stddev(v)")])
    source = Schema.from_arrow(t.schema)
    with pytest.raises(PlanError, match="needs state_of"):
        SchemaResolver().schema(Aggregate(input_node("t", t), ("k",), specs, "final"))
    with pytest.raises(PlanError, match="lacks the partial states"):
        SchemaResolver().schema(Aggregate(input_node("t", t), ("k",), specs, "final", source))
    with pytest.raises(PlanError, match="mode must be one of"):
        SchemaResolver().schema(Aggregate(input_node("t", t), ("k",), specs, "half"))  # type: ignore[arg-type]


@pytest.mark.parametrize("distinct", [None, "count(DISTINCT s)", "count(DISTINCT g + 1)"])
@pytest.mark.parametrize("group_by", [(), ("k",)])
def test_aggregates_over_no_rows_match_duckdb(
    spill_dir: Path, distinct: str | None, group_by: tuple[str, ...]
) -> None:
    # A global aggregate over no rows is one row: counts 0, the others NULL (a COUNT beside a
    # COUNT(DISTINCT), summed from per-value counts, was NULL); grouped, it is no rows.
    t = make_table({"rows": 50, "keys": 5, "nulls": 0.2, "skew": False, "seed": 3}).slice(0, 0)
    aggs = [("n", "count(*)"), ("nv", "count(v)"), ("sv", "sum(v)"), ("av", "avg(v)")]
    if distinct:
        aggs.append(("d", distinct))
    want = duck(_sql(group_by, aggs), t=t)
    plan = Aggregate(input_node("t", t), group_by, _specs(aggs))
    assert_same_rows(run_batches(plan, {"t": t}, 1 << 20, spill_dir).table, want)
    assert_same_rows(_split_run(t, group_by, aggs, 2, 1 << 20, spill_dir), want)
