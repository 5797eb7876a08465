"""Sorts and top-n (per group) in the DuckDB kernel: the operators' rows exactly, and DuckDB's.

Ties keep their input order in emsqrt (its sorts are stable), and a browser worker's top-k is
checked against a re-run, so the kernel must keep the very rows the operators keep, not just
rows with the same keys. The kernel reads each row's input position with it (Parquet's
``file_row_number``, a column added to Arrow inputs) or, where none exists (a union of unlike
inputs), numbers the rows. Generated data holds what tie-breaking can show: many ties,
NULLs, NaN, -0.0 beside 0.0 (tied in the order, and one group, yet a different value), several
keys in either direction and either NULL placement, n above the groups' sizes. Rows compare
exactly: floats by their bits (the sign of zero included; NaN as one value), sorts in order.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from emsqrt import EngineConfig, run
from emsqrt import plan as lp
from emsqrt.kernel import compile_plan
from platform_core import Schema
from platform_core.expr import parse

# columns a sort or top-n may key on; ``u`` is each row's position in the whole input
KEYS = ["k", "f", "s", "i", "z"]
PER = [(), ("k",), ("f",), ("s", "i"), ("z",), ("k", "f")]


def _data(rows: int, groups: int, seed: int) -> pa.Table:
    """Ties everywhere: few distinct values per column; f holds 0.0 and -0.0 (one value),
    NaN, NULL; z is a float key that is mostly zeros of either sign."""
    rng = np.random.default_rng(seed)

    def mask(share: float) -> np.ndarray:
        return rng.random(rows) < share

    f = rng.integers(-2, 3, rows).astype(float) / 2
    f[rng.random(rows) < 0.15] = -0.0
    f[rng.random(rows) < 0.08] = np.nan
    z = np.where(rng.random(rows) < 0.5, 0.0, -0.0)
    z[rng.random(rows) < 0.1] = 1.5
    strings = pa.array([f"w{x}" for x in rng.integers(0, max(groups // 2, 2), rows)])
    return pa.table(
        {
            "k": pa.array(rng.integers(0, groups, rows), mask=mask(0.05)),
            "f": pa.array(f, mask=mask(0.05)),
            "s": pc.if_else(pa.array(mask(0.1)), pa.scalar(None, pa.string()), strings),
            "i": pa.array(rng.integers(-3, 3, rows).astype(np.int32), mask=mask(0.1)),
            "z": pa.array(z, mask=mask(0.05)),
            "u": pa.array(np.arange(rows)),
        }
    )


def _exact(t: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as tuples that tell every value apart: a float by its bits (-0.0 is not 0.0),
    every NaN as one value."""
    cols = []
    for name in t.column_names:
        c = t.column(name)
        if pa.types.is_floating(c.type):
            x = c.to_numpy(zero_copy_only=False).astype(np.float64)
            bits = np.where(np.isnan(x), -1, x.view(np.int64))
            cols.append(
                [None if v is None else b for v, b in zip(c.to_pylist(), bits, strict=True)]
            )
        else:
            cols.append(c.to_pylist())
    return list(zip(*cols, strict=True))


def _same(got: pa.Table, want: pa.Table, ordered: bool) -> None:
    assert got.column_names == want.column_names
    a, b = _exact(got), _exact(want.cast(got.schema))
    if not ordered:
        key = repr
        a, b = sorted(a, key=key), sorted(b, key=key)
    assert a == b


def _order_sql(keys: tuple[lp.SortKey, ...]) -> str:
    return ", ".join(
        f'"{k.column}" {"DESC" if k.descending else "ASC"} '
        f"NULLS {'FIRST' if k.nulls_first else 'LAST'}"
        for k in keys
    )


def _oracle(op: str, t: pa.Table, keys: tuple[lp.SortKey, ...], n: int, per: tuple) -> pa.Table:
    """DuckDB over the whole input, ties broken by the row's position (column ``u``)."""
    con = duckdb.connect(config={"threads": 1})
    con.register("t", t)
    order = f"{_order_sql(keys)}, u"
    if op == "sort":
        return con.sql(f"SELECT * FROM t ORDER BY {order}").to_arrow_table()
    if not per:
        return con.sql(f"SELECT * FROM t ORDER BY {order} LIMIT {n}").to_arrow_table()
    groups = ", ".join(
        f'("{c}" + 0.0)' if pa.types.is_floating(t.schema.field(c).type) else f'"{c}"' for c in per
    )
    return con.sql(
        f"SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY {groups} ORDER BY {order}) <= {n}"
    ).to_arrow_table()


def _source(kind: str, t: pa.Table, d: Path) -> tuple[lp.Node, dict[str, list[pa.RecordBatch]]]:
    """``t`` as the input of the operator under test, read in the order of its rows."""
    if kind == "input":
        return lp.Input("t", Schema.from_arrow(t.schema)), {"t": t.to_batches(max_chunksize=97)}
    parts = [t] if kind == "parquet" else [t.slice(0, t.num_rows // 3), t.slice(t.num_rows // 3)]
    if kind == "mixed":  # a union of a scan and Arrow batches: no position to read
        pq.write_table(parts[0], d / "p0.parquet", row_group_size=64)
        scan = lp.Scan(str(d / "p0.parquet"), "parquet")
        rest = lp.Input("r", Schema.from_arrow(t.schema))
        return lp.Union((scan, rest)), {"r": parts[1].to_batches(max_chunksize=97)}
    scans = []
    for i, part in enumerate(parts):
        pq.write_table(part, d / f"p{i}.parquet", row_group_size=64)  # threads split it
        scans.append(lp.Scan(str(d / f"p{i}.parquet"), "parquet"))
    return (scans[0] if len(scans) == 1 else lp.Union(tuple(scans))), {}


def _chain(src: lp.Node, chain: str) -> lp.Node:
    """A filter and computed columns between the source and the operator (no float
    arithmetic: the operators and DuckDB would round alike, but exactness is the point)."""
    if chain == "none":
        return src
    kept = lp.Filter(src, parse("i IS NULL OR i <> 2"))
    return lp.Map(kept, (("i", parse("coalesce(i, 7)")), ("w", parse("k * 2"))))


def _expected_input(t: pa.Table, chain: str) -> pa.Table:
    if chain == "none":
        return t
    keep = pc.or_(pc.is_null(t["i"]), pc.not_equal(t["i"], 2))
    t = t.filter(pc.fill_null(keep, True))
    t = t.set_column(t.schema.get_field_index("i"), "i", pc.fill_null(t["i"], 7))
    return t.append_column("w", pc.multiply(t["k"], 2))


@st.composite
def sort_keys(draw: Any) -> tuple[lp.SortKey, ...]:
    cols = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
    return tuple(lp.SortKey(c, draw(st.booleans()), draw(st.booleans())) for c in cols)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.integers(0, 1500),
    groups=st.sampled_from([1, 3, 40, 5000]),
    seed=st.integers(0, 2**31),
    op=st.sampled_from(["topk", "topk", "sort"]),
    keys=sort_keys(),
    per=st.sampled_from(PER),
    n=st.sampled_from([0, 1, 2, 3, 50, 10_000]),
    source=st.sampled_from(["parquet", "files", "input", "mixed"]),
    chain=st.sampled_from(["none", "filter-map"]),
    only_keys=st.booleans(),
    threads=st.sampled_from([1, 2]),
)
@example(  # ties on a float key whose output shows which row won: -0.0 or 0.0
    rows=200,
    groups=3,
    seed=5,
    op="topk",
    keys=(lp.SortKey("z", True),),
    per=("k",),
    n=2,
    source="files",
    chain="none",
    only_keys=True,
    threads=2,
)
@example(  # the same, zeros first: which zero rows are kept shows in their signs
    rows=1500,
    groups=3,
    seed=7,
    op="topk",
    keys=(lp.SortKey("z"),),
    per=("k",),
    n=40,
    source="files",
    chain="none",
    only_keys=True,
    threads=2,
)
@example(  # every column a non-float key: ties are invisible, no position is read
    rows=900,
    groups=40,
    seed=9,
    op="topk",
    keys=(lp.SortKey("i", True),),
    per=("s",),
    n=2,
    source="parquet",
    chain="none",
    only_keys=True,
    threads=2,
)
def test_kernel_keeps_the_operators_rows_and_order(
    rows: int,
    groups: int,
    seed: int,
    op: str,
    keys: tuple[lp.SortKey, ...],
    per: tuple[str, ...],
    n: int,
    source: str,
    chain: str,
    only_keys: bool,
    threads: int,
) -> None:
    t = _data(rows, groups, seed)
    per = per if op == "topk" else ()
    note(
        f"{rows=} {groups=} {seed=} {op=} {keys=} {per=} {n=} {source=} {chain=} {only_keys=} {threads=}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src, inputs = _source(source, t, d)
        node = _chain(src, chain)
        if only_keys:  # the output shows only the keys: ties differ at most in a float's sign
            shown = list(dict.fromkeys([*per, *(k.column for k in keys)]))
            node = lp.Project(node, tuple((c, c) for c in shown))
        plan: lp.Node = lp.Sort(node, keys) if op == "sort" else lp.TopK(node, keys, n, per)
        spill = d / "spill"
        kernel = run(
            plan, EngineConfig(spill_dir=str(spill), kernel_threads=threads), inputs=inputs
        )
        assert [o.op for o in kernel.manifest.operators] == ["kernel"]
        ops = run(plan, EngineConfig(spill_dir=str(spill), kernel="off"), inputs=inputs)
        assert "kernel" not in [o.op for o in ops.manifest.operators]
        assert kernel.table is not None
        assert ops.table is not None
        _same(kernel.table, ops.table, ordered=op == "sort")

        whole = _expected_input(t, chain)
        want = _oracle(op, whole, keys, n, per).select(kernel.table.column_names)
        _same(kernel.table, want, ordered=op == "sort")


def _sql(plan: lp.Node, **inputs: pa.Table) -> str:
    return compile_plan(plan, {k: v.to_batches() for k, v in inputs.items()}).sql


def test_positions_are_read_not_numbered_where_the_rows_carry_them(tmp_path: Path) -> None:
    """A chain over Parquet files reads ``file_row_number``; Arrow inputs get a position
    column; a union of unlike inputs is numbered; shown-only non-float keys need nothing."""
    t = _data(100, 5, 1)
    pq.write_table(t, tmp_path / "a.parquet")
    pq.write_table(t, tmp_path / "b.parquet")
    a, b = (lp.Scan(str(tmp_path / f"{x}.parquet"), "parquet") for x in "ab")
    key = (lp.SortKey("f", True),)
    chain = lp.Map(lp.Filter(lp.Union((a, b)), parse("k > 1")), (("w", parse("k + 1")),))
    sql = _sql(lp.TopK(chain, key, 2, ("k",)))
    assert "file_row_number" in sql
    assert "file_index" in sql
    assert "OVER ()" not in sql
    inp = lp.Input("t", Schema.from_arrow(t.schema))
    sql = _sql(lp.Sort(lp.Project(inp, (("f", "f"), ("u", "u"))), key), t=t)
    assert "OVER ()" not in sql
    mixed = lp.Union((a, inp))
    assert "row_number() OVER ()" in _sql(lp.TopK(mixed, key, 2), t=t)
    shown = lp.Project(a, (("k", "k"), ("i", "i")))
    sql = _sql(lp.TopK(shown, (lp.SortKey("i"),), 2, ("k",)))
    assert "__emsqrt_ord" not in sql
    assert 'min("i", 2)' in sql
    # the largest two z by k: each group's two largest values (a bounded aggregate, no sort
    # of the rows), positions read for the zero rows only
    shown = lp.Project(a, (("k", "k"), ("z", "z")))
    sql = _sql(lp.TopK(shown, (lp.SortKey("z", True),), 2, ("k",)))
    assert 'max("z", 2)' in sql
    assert 'WHERE "z" = 0' in sql
    assert "QUALIFY" not in sql


def test_a_file_column_named_like_duckdbs_position_is_not_taken_for_it(
    tmp_path: Path, spill_dir: Path
) -> None:
    """A Parquet column named ``file_row_number`` or ``file_index`` would shadow DuckDB's
    (or clash with it): such files are numbered instead, and the answer stays exact."""
    rows = 300
    t = pa.table(
        {
            "file_index": pa.array(np.arange(rows)[::-1].copy()),
            "g": pa.array(np.arange(rows) % 3),
            "v": pa.array(np.zeros(rows)),
        }
    )
    pq.write_table(t, tmp_path / "a.parquet", row_group_size=32)
    pq.write_table(t, tmp_path / "b.parquet", row_group_size=32)
    scans = tuple(lp.Scan(str(tmp_path / f"{x}.parquet"), "parquet") for x in "ab")
    plan = lp.TopK(lp.Union(scans), (lp.SortKey("v"),), 2, ("g",))
    assert "row_number() OVER ()" in _sql(plan)
    got = run(plan, EngineConfig(spill_dir=str(spill_dir), kernel_threads=2))
    assert [o.op for o in got.manifest.operators] == ["kernel"]
    assert got.table is not None
    assert sorted(got.table.column("file_index").to_pylist()) == [294, 295, 296, 297, 298, 299]


@pytest.mark.parametrize("threads", [1, 2])
def test_ties_across_row_groups_and_files_keep_the_input_order(
    tmp_path: Path, spill_dir: Path, threads: int
) -> None:
    """Every row tied: the first n rows of the input (in file order) are kept, whatever
    DuckDB's threads read first."""
    rows = 5000
    t = pa.table(
        {
            "g": pa.array(np.arange(rows) % 2),
            "v": pa.array(np.zeros(rows)),
            "u": pa.array(np.arange(rows)),
        }
    )
    pq.write_table(t.slice(0, 2500), tmp_path / "a.parquet", row_group_size=100)
    pq.write_table(t.slice(2500), tmp_path / "b.parquet", row_group_size=100)
    scans = tuple(lp.Scan(str(tmp_path / f"{x}.parquet"), "parquet") for x in "ab")
    cfg = EngineConfig(spill_dir=str(spill_dir), kernel_threads=threads)
    top = run(lp.TopK(lp.Union(scans), (lp.SortKey("v"),), 3, ("g",)), cfg).table
    assert top is not None
    assert sorted(top.column("u").to_pylist()) == [0, 1, 2, 3, 4, 5]
    first = run(lp.TopK(lp.Union(scans), (lp.SortKey("v", True),), 4), cfg).table
    assert first is not None
    assert first.column("u").to_pylist() == [0, 1, 2, 3]
    ordered = run(lp.Sort(lp.Union(scans), (lp.SortKey("g"),)), cfg).table
    assert ordered is not None
    u = np.asarray(ordered.column("u"))
    assert (u[:2500] == np.arange(0, rows, 2)).all()
    assert (u[2500:] == np.arange(1, rows, 2)).all()
