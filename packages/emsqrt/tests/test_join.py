"""Joins against DuckDB: in memory and grace hash join with recursive repartitioning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import (
    KiB,
    assert_same_rows,
    duck,
    input_node,
    make_table,
    sized,
    table_params,
    with_float_key,
)

from emsqrt import Join, run_batches

HOWS = ["inner", "left", "right", "full", "semi", "anti"]


def _sql(how: str, lk: str, rk: str, left: pa.Table, right: pa.Table) -> str:
    if how in ("semi", "anti"):
        return f"SELECT l.* FROM l {how.upper()} JOIN r ON l.{lk} = r.{rk}"
    cols = [f"coalesce(l.{lk}, r.{rk}) AS {lk}"]
    cols += [f"l.{c}" for c in left.column_names if c != lk]
    cols += [f"r.{c}" for c in right.column_names if c != rk]
    return f"SELECT {', '.join(cols)} FROM l {how.upper()} JOIN r ON l.{lk} = r.{rk}"


@pytest.mark.long
@settings(
    max_examples=sized(6, long=15),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    lp_=table_params(max_rows=6000),
    rp=table_params(max_rows=4000),
    how=st.sampled_from(HOWS),
    key=st.sampled_from(["k", "f"]),
    cap=st.sampled_from([128 * KiB, 256 * KiB]),
    parts=st.sampled_from([2, 4, 16]),
)
def test_join_matches_duckdb(
    spill_dir: Path,
    lp_: dict[str, Any],
    rp: dict[str, Any],
    how: str,
    key: str,
    cap: int,
    parts: int,
) -> None:
    # Same key domain, so keys match. The build side is not skewed: a single key with more
    # build rows than the cap is refused with CapTooSmallError (tested below).
    lp_ = lp_ | {"keys": max(lp_["keys"], 100)}
    rp = rp | {"keys": lp_["keys"], "skew": False}
    # f: a float key holding 0.0, -0.0 and NaNs of several bit patterns, equal as in SQL.
    left = with_float_key(make_table(lp_), "f", "k", lp_["seed"])
    right = with_float_key(make_table(rp, prefix="r"), "rf", "rk", rp["seed"])
    lk, rk = key, f"r{key}"
    plan = Join(input_node("l", left), input_node("r", right), (lk,), (rk,), how)  # type: ignore[arg-type]
    r = run_batches(plan, {"l": left, "r": right}, cap, spill_dir, max_partitions=parts)
    assert_same_rows(r.table, duck(_sql(how, lk, rk, left, right), l=left, r=right))
    m = r.manifest
    assert m.memory["reserved_peak_bytes"] <= cap
    op = m.operator("join")
    build = right.select([rk]) if how in ("semi", "anti") else right
    if build.nbytes * 3 > cap:
        assert op.spilled_bytes > 0
        assert op.repartition_depth >= 1


@pytest.mark.long
def test_grace_join_repartitions_skewed_partitions(spill_dir: Path) -> None:
    # 3000 rows a side reach depth 4 (semi, anti: 2) at this cap; 6000 rows: 5 (3)
    n = sized(3000, long=6000)
    lt = make_table({"rows": n, "keys": n // 2, "nulls": 0.05, "skew": False, "seed": 7})
    rt = make_table({"rows": n, "keys": n // 2, "nulls": 0.05, "skew": False, "seed": 8}, "r")
    for how in HOWS:
        plan = Join(input_node("l", lt), input_node("r", rt), ("k", "g"), ("rk", "rg"), how)  # type: ignore[arg-type]
        r = run_batches(plan, {"l": lt, "r": rt}, 64 * KiB, spill_dir, max_partitions=2)
        op = r.manifest.operator("join")
        assert op.spilled_bytes > 0, how
        assert op.repartition_depth >= 2, how
        assert r.manifest.memory["reserved_peak_bytes"] <= 64 * KiB
        if how in ("semi", "anti"):
            sql = f"SELECT l.* FROM l {how.upper()} JOIN r ON l.k = r.rk AND l.g = r.rg"
        else:
            sql = (
                "SELECT coalesce(l.k, r.rk) AS k, l.s, l.v, coalesce(l.g, r.rg) AS g, r.rs, r.rv "
                f"FROM l {how.upper()} JOIN r ON l.k = r.rk AND l.g = r.rg"
            )
        assert_same_rows(r.table, duck(sql, l=lt, r=rt))


def test_small_build_side_joins_in_memory(spill_dir: Path) -> None:
    lt = make_table({"rows": 5000, "keys": 50, "nulls": 0.1, "skew": False, "seed": 9})
    rt = make_table({"rows": 40, "keys": 50, "nulls": 0.1, "skew": False, "seed": 10}, "r")
    plan = Join(input_node("l", lt), input_node("r", rt), ("k",), ("rk",), "full")
    r = run_batches(plan, {"l": lt, "r": rt}, 256 * KiB, spill_dir)
    assert r.manifest.operator("join").spilled_bytes == 0
    assert_same_rows(r.table, duck(_sql("full", "k", "rk", lt, rt), l=lt, r=rt))


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize(
    ("key_type", "cap"),
    [
        (pa.int64(), 64 * KiB),
        (pa.int32(), 64 * KiB),
        (pa.int32(), 128 * KiB),
        (pa.int8(), 96 * KiB),
    ],
)
def test_one_key_larger_than_the_cap_joins_block_by_block(
    spill_dir: Path, how: str, key_type: pa.DataType, cap: int
) -> None:
    """Hashing cannot split a single key: its build rows are joined in blocks that fit.

    Narrow keys matter: a build block gains an 8-byte row id per row, three times an int32
    key's own width, and the block must still fit its share of the cap."""
    n = 6000
    rk = pa.array([7] * n + list(range(100, 120)) + [None] * 50, key_type)
    rt = pa.table({"rk": rk, "w": pa.array(range(len(rk)), pa.int64())})
    lk = pa.array([7] * 40 + list(range(110, 127)) + [None] * 20, key_type)
    lt = pa.table({"k": lk, "v": pa.array(range(len(lk)), pa.int64())})
    plan = Join(input_node("l", lt), input_node("r", rt), ("k",), ("rk",), how)  # type: ignore[arg-type]
    r = run_batches(plan, {"l": lt, "r": rt}, cap, spill_dir, max_partitions=2)
    op = r.manifest.operator("join")
    assert op.skew_blocks >= 1
    assert r.manifest.memory["reserved_peak_bytes"] <= cap
    assert_same_rows(r.table, duck(_sql(how, "k", "rk", lt, rt), l=lt, r=rt))


TYPES = {
    "int8": (pa.int8(), 100),
    "int16": (pa.int16(), 30_000),
    "int32": (pa.int32(), 2**31 - 1),
    "int64": (pa.int64(), 2**40),
    "uint8": (pa.uint8(), 250),
    "uint32": (pa.uint32(), 2**32 - 1),
    "float32": (pa.float32(), 1e30),
    "float64": (pa.float64(), 1e300),
}


@pytest.mark.parametrize(
    ("lt", "rt"),
    [
        ("int8", "int64"),
        ("int16", "int32"),
        ("int32", "int64"),
        ("uint8", "int64"),
        ("uint32", "int64"),
        ("int64", "float64"),
        ("int32", "float32"),
        ("int64", "int8"),
    ],
)
def test_keys_of_different_widths_join_as_duckdb(spill_dir: Path, lt: str, rt: str) -> None:
    # Each side's keys fill its own type (the right's largest values do not fit the left's):
    # a right or full join's key column holds both sides' keys, in their common type.
    ltype, lmax = TYPES[lt]
    rtype, rmax = TYPES[rt]
    small = [1, 2, 3, None, 5]
    left = pa.table({"k": pa.array([*small, lmax], ltype), "a": list(range(6))})
    right = pa.table({"rk": pa.array([2, 3, None, rmax, 7, 1], rtype), "b": list(range(6))})
    for how in HOWS:
        plan = Join(input_node("l", left), input_node("r", right), ("k",), ("rk",), how)  # type: ignore[arg-type]
        r = run_batches(plan, {"l": left, "r": right}, 1 << 20, spill_dir)
        want = duck(_sql(how, "k", "rk", left, right), l=left, r=right)
        exact = pa.float64() if "float" in lt + rt else pa.int64()  # holds every key of both
        got, want = (t.set_column(0, "k", t.column("k").cast(exact)) for t in (r.table, want))
        assert_same_rows(got, want)
