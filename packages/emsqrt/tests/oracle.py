"""Test helpers: seeded tables drawn by hypothesis, DuckDB as the oracle, table comparison."""

from __future__ import annotations

import os
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import strategies as st

from emsqrt import Input
from platform_core import Schema

KiB = 1024

#: Tests marked ``long`` run bounded in CI (fewer hypothesis examples, smaller tables, the
#: same assertions) and at full size under PLATFORM_TESTS_LONG=1 (``nox -s long``).
LONG = os.environ.get("PLATFORM_TESTS_LONG") == "1"


def sized(default: int, long: int) -> int:
    """``long`` under PLATFORM_TESTS_LONG=1, else ``default``: an example count or a size."""
    return long if LONG else default


@st.composite
def table_params(draw: Any, min_rows: int = 2000, max_rows: int = 10_000) -> dict[str, Any]:
    """Shape of a generated table: rows, key cardinality, NULL share, skew, seed."""
    return {
        "rows": draw(st.integers(min_rows, max_rows)),
        "keys": draw(st.sampled_from([1, 7, 100, 2000, 50_000])),
        "nulls": draw(st.sampled_from([0.0, 0.05, 0.3])),
        "skew": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**31)),
    }


def make_table(p: dict[str, Any], prefix: str = "") -> pa.Table:
    """Columns k (i64 key, maybe skewed), g (i32), s (utf8), v (f64 with NaN), each with NULLs."""
    rng = np.random.default_rng(p["seed"])
    n = p["rows"]
    if p["skew"]:
        k = np.where(rng.random(n) < 0.5, 0, rng.integers(0, p["keys"], n))
    else:
        k = rng.integers(0, p["keys"], n)

    def nulls() -> np.ndarray:
        return rng.random(n) < p["nulls"]

    v = rng.normal(size=n).round(3)
    v[rng.random(n) < 0.01] = np.nan
    s = pc.cast(pa.array(rng.integers(0, max(2, p["keys"] // 3), n)), pa.string())
    s = pc.binary_join_element_wise("w", s, "")
    return pa.table(
        {
            f"{prefix}k": pa.array(k, mask=nulls()),
            f"{prefix}g": pa.array(rng.integers(-5, 5, n).astype(np.int32), mask=nulls()),
            f"{prefix}s": pc.if_else(pa.array(nulls()), pa.scalar(None, pa.string()), s),
            f"{prefix}v": pa.array(v, mask=nulls()),
        }
    )


def input_node(name: str, table: pa.Table) -> Input:
    return Input(name, Schema.from_arrow(table.schema))


def duck(sql: str, **tables: pa.Table) -> pa.Table:
    con = duckdb.connect(config={"threads": 1})
    for name, t in tables.items():
        con.register(name, t)
    return con.sql(sql).to_arrow_table()


def _canon(t: pa.Table) -> pa.Table:
    cols = {}
    for name in t.column_names:
        c = t.column(name)
        if pa.types.is_decimal(c.type):
            c = c.cast(pa.int64())
        cols[name] = c
    return pa.table(cols)


def assert_same_rows(got: pa.Table, want: pa.Table, *, ordered: bool = False) -> None:
    """Same rows (as a multiset unless ``ordered``); floats to 1e-9 relative, NaN equal NaN."""
    got, want = _canon(got), _canon(want.select(got.column_names))
    assert got.num_rows == want.num_rows, (got.num_rows, want.num_rows)
    if not ordered:
        exact = [c for c in got.column_names if not pa.types.is_floating(got.column(c).type)]
        keys = [(c, "ascending") for c in exact + [c for c in got.column_names if c not in exact]]
        got, want = got.sort_by(keys), want.sort_by(keys)
    for name in got.column_names:
        a, b = got.column(name), want.column(name)
        if pa.types.is_floating(a.type) or pa.types.is_floating(b.type):
            x = a.cast(pa.float64()).to_numpy(zero_copy_only=False)
            y = b.cast(pa.float64()).to_numpy(zero_copy_only=False)
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)
            assert (pc.is_null(a).to_pylist()) == (pc.is_null(b).to_pylist()), name
        else:
            assert a.cast(b.type).to_pylist() == b.to_pylist(), name


# 0.0, -0.0 and NaNs of different bit patterns (sign, payload): SQL equality puts each group
# of them under one key; hashing their bits would not.
_SPECIAL = np.array([0.0, -0.0, np.nan, -np.nan, np.frombuffer(b"\x01\0\0\0\0\0\xf8\x7f")[0]])


def with_float_key(t: pa.Table, name: str, key: str, seed: int) -> pa.Table:
    """``t`` plus a float64 key column ``name`` derived from integer key ``key`` (same domain
    on both sides of a join): ``key / 2``, one key in twenty replaced by a special value."""
    rng = np.random.default_rng(seed)
    k = t.column(key)
    base = pc.divide(pc.cast(k, pa.float64()), 2.0).to_numpy(zero_copy_only=False)
    special = _SPECIAL[rng.integers(0, len(_SPECIAL), len(base))]
    kk = pc.fill_null(k, 0).to_numpy(zero_copy_only=False)
    f = np.where(kk % 20 == 0, special, base)
    return t.append_column(name, pa.array(f, mask=pc.is_null(k).to_numpy(zero_copy_only=False)))
