"""Chains run first to reduce a group-by (``elytra.reducers``): a decorrelated ``EXISTS``
(TPC-H q21's shape) whose outer side keeps few rows through its joins runs that side first,
and the group-by of the subquery keeps only the groups of its keys; answers equal DuckDB's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra.driver import _footers, _rewritten
from elytra.reducers import _joined_fraction, reduces_a_group_by
from elytra.semireduce import well_reduced
from elytra.sidesize import Broadcastable
from elytra.stages import chain_source
from emsqrt import plan as lp

EXISTS = """
SELECT s.name, count(*) AS n FROM lines l1
JOIN supp s ON l1.suppkey = s.suppkey
JOIN ords o ON o.orderkey = l1.orderkey
WHERE o.status = 'F' AND l1.late AND {nation}
  AND EXISTS (SELECT * FROM lines l2 WHERE l2.orderkey = l1.orderkey AND l2.suppkey <> l1.suppkey)
GROUP BY s.name
"""
SELECTIVE = EXISTS.format(nation="s.nation = 3")  # a 25th of the suppliers
WIDE = EXISTS.format(nation="s.nation < 20")  # most of them

SMALL = 256 << 10
"""The broadcast limit: the suppliers and the failed orders are broadcast, lines is not."""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800,000 lines over 8 files (16 an order on average), 1,000 suppliers of 25 nations,
    50,000 orders of which about half failed."""
    where = tmp_path_factory.mktemp("reducers")
    rng = np.random.default_rng(48)
    n, orders = 800_000, 50_000
    lines = pa.table(
        {
            "orderkey": pa.array(np.sort(rng.integers(0, orders, n)), pa.int64()),
            "suppkey": pa.array(rng.integers(0, 1000, n), pa.int64()),
            "late": pa.array(rng.random(n) < 0.5),
        }
    )
    (where / "lines").mkdir()
    for i in range(8):
        pq.write_table(lines.slice(i * n // 8, n // 8), where / "lines" / f"l{i}.parquet")
    supp = pa.table(
        {
            "suppkey": pa.array(range(1000), pa.int64()),
            "name": [f"s{i:04d}" for i in range(1000)],
            "nation": pa.array(rng.integers(0, 25, 1000), pa.int64()),
        }
    )
    pq.write_table(supp, where / "supp.parquet")
    ords = pa.table(
        {
            "orderkey": pa.array(range(orders), pa.int64()),
            "status": rng.choice(["F", "O"], orders).tolist(),
        }
    )
    (where / "ords").mkdir()  # two files: a platform may hold one and not the other
    pq.write_table(ords.slice(0, orders // 2), where / "ords" / "o0.parquet")
    pq.write_table(ords.slice(orders // 2), where / "ords" / "o1.parquet")
    return where


def _tables(s: elytra.Session, data: Path) -> dict[str, elytra.Pipeline]:
    return {
        "lines": s.read_parquet(str(data / "lines" / "*.parquet")),
        "supp": s.read_parquet(str(data / "supp.parquet")),
        "ords": s.read_parquet(str(data / "ords" / "*.parquet")),
    }


def _duckdb(data: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW lines AS SELECT * FROM read_parquet('{data}/lines/*.parquet')")
    con.execute(f"CREATE VIEW supp AS SELECT * FROM read_parquet('{data}/supp.parquet')")
    con.execute(f"CREATE VIEW ords AS SELECT * FROM read_parquet('{data}/ords/*.parquet')")
    return sorted(con.execute(sql).fetchall())


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_a_chain_that_keeps_little_runs_first_and_reduces_the_exists_group_by(
    data: Path, tmp_path: Path, backend: str
) -> None:
    with elytra.connect(
        home=tmp_path / "home", backend=backend, workers=2, broadcast_bytes=SMALL
    ) as s:
        p = s.sql(SELECTIVE, _tables(s, data))
        sides = s.driver.sides_first(p)
        assert len(sides) == 1
        assert isinstance(sides[0], lp.Join)  # the outer chain, its joins and all
        table = p.collect()
        ran = s.driver.last
    assert "first0 tasks" in ran.stage_seconds, ran.stage_seconds
    assert sorted(tuple(r.values()) for r in table.to_pylist()) == _duckdb(data, SELECTIVE)
    # the subquery's group-by kept the groups of the outer side's orders only (its partial
    # states reach the driver, with the outer side's 8 k rows): 18.6 k rows in all, where
    # reduced by the failed orders alone (the side not run first) 31.6 k
    assert ran.driver_rows_in < 25_000, ran.driver_rows_in


def test_a_chain_that_keeps_much_is_not_run_first(data: Path, tmp_path: Path) -> None:
    with elytra.connect(home=tmp_path / "home", backend="inline", broadcast_bytes=SMALL) as s:
        p = s.sql(WIDE, _tables(s, data))
        assert s.driver.sides_first(p) == []
        table = p.collect()
    assert sorted(tuple(r.values()) for r in table.to_pylist()) == _duckdb(data, WIDE)


def test_a_group_by_reduced_well_already_does_not_wait_for_a_side(
    data: Path, tmp_path: Path
) -> None:
    """TPC-H q17's shape: the group-by is semi-joined with a filtered chain that keeps a
    few of its keys already; running the outer side first would only add a round."""
    sql = """
    SELECT sum(l1.suppkey) AS s FROM lines l1 JOIN ords o ON o.orderkey = l1.orderkey
    WHERE o.orderkey < 500 AND l1.late
      AND l1.suppkey < (SELECT avg(l2.suppkey) FROM lines l2 WHERE l2.orderkey = l1.orderkey)
    """
    with elytra.connect(home=tmp_path / "home", backend="inline", broadcast_bytes=SMALL) as s:
        p = s.sql(sql, _tables(s, data))
        assert s.driver.sides_first(p) == []
        table = p.collect()
    assert [tuple(r.values()) for r in table.to_pylist()] == _duckdb(data, sql)


def _elsewhere(small: Broadcastable) -> Broadcastable:
    """``small`` on a platform that holds one file of the orders (a peer, the other)."""
    return replace(small, locate=lambda f: "/nowhere/o1.parquet" if f.endswith("o1.parquet") else f)


def test_a_reducer_whose_kept_rows_cannot_be_counted_here_is_not_taken_as_reducing_well(
    data: Path, tmp_path: Path
) -> None:
    """The subquery's group-by is semi-joined with the failed orders (half of them: not
    reduced well, so the outer side may run first to reduce it more). Where no file of the
    orders is on this platform (the coordinator of three Ray platforms may hold none), the
    half cannot be counted, and the group-by is not taken as reduced well: a side run first
    goes with its tasks and no longer pins them to the coordinator."""
    with elytra.connect(home=tmp_path / "home", backend="inline", broadcast_bytes=SMALL) as s:
        p = s.sql(SELECTIVE, _tables(s, data))
        sources, small = dict(p.sources), s.driver._weigh(_footers(p))
        node = _rewritten(p.node, sources, small)
        aggs = [n for n in _nodes(node) if isinstance(n, lp.Aggregate) and n.group_by]
        reduced = [a for a in aggs if isinstance(a.input, lp.Join) and a.input.how == "semi"]
        assert reduced, "the group-by was not semi-joined with the failed orders"
        assert not well_reduced(reduced[0], sources, small)
        nowhere = replace(small, locate=lambda f: "/nowhere/o.parquet" if "/ords/" in f else f)
        assert not well_reduced(reduced[0], sources, nowhere)


@pytest.mark.parametrize(("sql", "runs_first"), [(SELECTIVE, True), (WIDE, False)])
def test_a_chain_whose_broadcast_side_is_elsewhere_is_weighed_by_its_sides_filters(
    data: Path, tmp_path: Path, sql: str, runs_first: bool
) -> None:
    """The outer chain's joined rows cannot be counted where a broadcast side (the failed
    orders) has no file here: they are estimated from its own filters and each side's
    (``reducers._estimated_fraction``), which err high. The selective chain (a 25th of the
    suppliers) still runs first, the wide one (four fifths) still does not, and the answer
    is DuckDB's."""
    with elytra.connect(home=tmp_path / "home", backend="inline", broadcast_bytes=SMALL) as s:
        p = s.sql(sql, _tables(s, data))
        sources = dict(p.sources)
        small = s.driver._weigh(_footers(p))
        joins = [n for n in _nodes(_rewritten(p.node, sources, small)) if isinstance(n, lp.Join)]
        here = [c for j in joins if (c := reduces_a_group_by(j, sources, small)) is not None]
        far = [
            c for j in joins if (c := reduces_a_group_by(j, sources, _elsewhere(small))) is not None
        ]
        assert bool(far) == bool(here) == runs_first
        for chain in far:
            src = chain_source(chain, sources, small)
            assert src is not None
            counted = _joined_fraction(chain, src, sources, small)
            estimated = _joined_fraction(chain, src, sources, _elsewhere(small))
            assert counted is not None
            assert estimated is not None
            assert counted <= estimated <= 4 * counted, (counted, estimated)
        weigh = s.driver._weigh
        s.driver._weigh = lambda footers: _elsewhere(weigh(footers))  # type: ignore[method-assign]
        table = p.collect()
        ran = s.driver.last
    assert ("first0 tasks" in ran.stage_seconds) == runs_first, ran.stage_seconds
    assert sorted(tuple(r.values()) for r in table.to_pylist()) == _duckdb(data, sql)


def _nodes(node: lp.Node) -> list[lp.Node]:
    return [node, *(n for k in lp.children(node) for n in _nodes(k))]
