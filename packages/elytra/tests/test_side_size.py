"""A broadcast decision weighs the Parquet columns a side reads, not its whole files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import elytra
from elytra.sidesize import side_bytes


def _dim(path: Path) -> None:
    """A 20,000-row dimension: a small key column and a wide, incompressible text column."""
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT i AS kk, md5(i::VARCHAR) || md5((i * 7)::VARCHAR) AS wide "
        f"FROM range(20000) t(i)) TO '{path}' (FORMAT parquet)"
    )


def test_a_side_reading_only_its_small_columns_is_broadcast(tmp_path: Path) -> None:
    _dim(tmp_path / "dim.parquet")
    facts = pa.table({"k": pa.array(range(0, 200000, 3), pa.int64())})
    for i in range(4):
        pq.write_table(facts.slice(i * 10000, 10000), tmp_path / f"f{i}.parquet")
    file_bytes = (tmp_path / "dim.parquet").stat().st_size
    with elytra.connect(
        home=tmp_path / "home", backend="inline", broadcast_bytes=file_bytes // 4
    ) as s:
        fact = s.read_parquet(str(tmp_path / "f*.parquet"))
        dim = s.read_parquet(tmp_path / "dim.parquet")
        keys_only = fact.join(dim.select("kk"), left_on="k", right_on="kk", how="semi")
        # a left join broadcasts only its right side: the dimension, whole, is too big
        with_text = fact.join(dim, left_on="k", right_on="kk", how="left")
        keys_plan, text_plan = keys_only.explain(), with_text.explain()
        assert "broadcast join" in keys_plan, keys_plan
        assert "hash-partitioned" in text_plan, text_plan
        got = keys_only.count()
    con = duckdb.connect()  # its own: the module's default connection is shared by every test
    want = con.execute(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/f*.parquet') "
        f"WHERE k IN (SELECT kk FROM read_parquet('{tmp_path}/dim.parquet'))"
    ).fetchall()
    con.close()
    assert got == want[0][0]


def test_side_bytes_counts_the_columns_read_and_whole_files_otherwise(tmp_path: Path) -> None:
    _dim(tmp_path / "dim.parquet")
    size = (tmp_path / "dim.parquet").stat().st_size
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        dim = s.read_parquet(tmp_path / "dim.parquet")
        src = next(iter(dim.sources.values()))
        whole = side_bytes(dim.node, src)
        key = side_bytes(dim.select("kk").node, src)
        filtered = side_bytes(dim.filter("wide LIKE 'a%'").select("kk").node, src)
    assert whole == size  # no projection: every column
    assert key < size // 5  # the key column alone
    assert key < filtered < size + 1  # a filter on the wide column reads it too
