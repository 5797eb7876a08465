"""Top-n per group against DuckDB's ``row_number() OVER (PARTITION BY ...) <= n``.

The order keys always end in a unique column, so the rows kept are the same in both; small
caps make the sort spill and the groups run across many batches (ranks carried over).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from oracle import KiB, assert_same_rows, duck, input_node, make_table, table_params, with_float_key

from emsqrt import PlanError, SortKey, TopK, run_batches
from emsqrt.plan_json import plan_from_json, plan_to_json
from emsqrt.resolve import SchemaResolver

PER = [("k",), ("s", "g"), ("fk",), ("g",)]
ORDERS = [
    (SortKey("v", descending=True), SortKey("u")),
    (SortKey("s", nulls_first=True), SortKey("u", descending=True)),
    (SortKey("u"),),
    # a per column among the keys, after another: each group must still be one run of the
    # sorted rows (it was left out of the grouping sort, and a group kept n rows per run)
    (SortKey("v"), SortKey("k", descending=True), SortKey("g"), SortKey("u")),
]


def _table(p: dict[str, Any]) -> pa.Table:
    t = make_table(p)
    t = t.append_column("u", pa.array(range(t.num_rows), pa.int64()))
    return with_float_key(t, "fk", "k", p["seed"])  # NaN, -0.0 and 0.0 among the keys


def _sql(per: tuple[str, ...], keys: tuple[SortKey, ...], n: int) -> str:
    order = ", ".join(
        f"{k.column} {'DESC' if k.descending else 'ASC'} NULLS {'FIRST' if k.nulls_first else 'LAST'}"
        for k in keys
    )
    return (
        "SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER "
        f"(PARTITION BY {', '.join(per)} ORDER BY {order}) AS rn FROM t) WHERE rn <= {n}"
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    p=table_params(min_rows=0, max_rows=6000),
    per=st.sampled_from(PER),
    keys=st.sampled_from(ORDERS),
    n=st.sampled_from([0, 1, 2, 5, 1000]),
    cap=st.sampled_from([128 * KiB, 1 << 24]),
)
# The in-memory sort sized its output batches by the 8-byte sort indices, not by the rows:
# 11.6 KB batches against the 2 KiB batch size left no head-room for them (CapTooSmallError).
@example(
    p={"rows": 1689, "keys": 50000, "nulls": 0.05, "skew": False, "seed": 0},
    per=("k",),
    keys=(SortKey("v", descending=True), SortKey("u")),
    n=2,
    cap=131072,
)
def test_top_n_per_group_matches_duckdb(
    spill_dir: Path,
    p: dict[str, Any],
    per: tuple[str, ...],
    keys: tuple[SortKey, ...],
    n: int,
    cap: int,
) -> None:
    t = _table(p)
    plan = plan_from_json(plan_to_json(TopK(input_node("t", t), keys, n, per)))
    r = run_batches(plan, {"t": t}, cap, spill_dir)
    assert_same_rows(r.table, duck(_sql(per, keys, n), t=t))
    assert r.manifest.memory["reserved_peak_bytes"] <= cap


def test_top_n_per_group_checks_its_columns() -> None:
    t = _table({"rows": 10, "keys": 3, "nulls": 0.0, "skew": False, "seed": 3})
    with pytest.raises(PlanError, match="kk"):
        SchemaResolver().schema(TopK(input_node("t", t), (SortKey("u"),), 2, ("kk",)))
    with pytest.raises(PlanError, match="n must be >= 0"):
        SchemaResolver().schema(TopK(input_node("t", t), (SortKey("u"),), -1, ("k",)))
