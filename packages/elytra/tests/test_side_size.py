"""A broadcast decision weighs the Parquet columns a side reads, not its whole files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import elytra
from elytra.sidesize import side_bytes, side_size


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


def test_a_side_whose_filter_keeps_little_is_weighed_by_what_it_keeps(tmp_path: Path) -> None:
    _dim(tmp_path / "dim.parquet")
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        dim = s.read_parquet(tmp_path / "dim.parquet")
        src = next(iter(dim.sources.values()))
        read = side_bytes(dim.node, src)
        tenth = side_size(dim.filter("kk < 2000").node, src)
        none = side_size(dim.filter("kk < 0").node, src)
        unfiltered = side_size(dim.node, src)
    assert tenth.read == read
    assert unfiltered.held == read
    assert abs(tenth.held - read // 10) <= 1  # 2,000 of 20,000 rows, counted by DuckDB
    assert none.held == 0


def test_a_filtered_side_too_big_whole_is_broadcast_when_it_keeps_little(tmp_path: Path) -> None:
    """The broadcast limit between a tenth and the whole: the dimension filtered to a tenth
    is broadcast, unfiltered it is exchanged; both give DuckDB's answer."""
    _dim(tmp_path / "dim.parquet")
    facts = pa.table({"k": pa.array(range(0, 60000, 3), pa.int64())})
    for i in range(4):
        pq.write_table(facts.slice(i * 5000, 5000), tmp_path / f"f{i}.parquet")
    file_bytes = (tmp_path / "dim.parquet").stat().st_size
    with elytra.connect(
        home=tmp_path / "home", backend="inline", broadcast_bytes=file_bytes // 3
    ) as s:
        fact = s.read_parquet(str(tmp_path / "f*.parquet"))
        dim = s.read_parquet(tmp_path / "dim.parquet")
        # a left join broadcasts only its right side, the dimension
        kept = fact.join(dim.filter("kk < 2000"), left_on="k", right_on="kk", how="left")
        whole = fact.join(dim, left_on="k", right_on="kk", how="left")
        assert "broadcast join" in kept.explain(), kept.explain()
        assert "hash-partitioned" in whole.explain(), whole.explain()
        got = sorted(kept.select("k", "wide").collect().to_pylist(), key=lambda r: r["k"])
    con = duckdb.connect()
    want = con.execute(
        f"SELECT k, wide FROM read_parquet('{tmp_path}/f*.parquet') LEFT JOIN "
        f"(SELECT * FROM read_parquet('{tmp_path}/dim.parquet') WHERE kk < 2000) ON k = kk "
        "ORDER BY k"
    ).fetchall()
    con.close()
    assert [(r["k"], r["wide"]) for r in got] == want


def test_chunks_named_by_hash_are_weighed_where_they_are_kept(tmp_path: Path) -> None:
    """On a cluster a task names chunks by hash: one kept here is weighed by its footer, one
    only a peer keeps by its size times the share the columns take of the chunks here."""
    from elytra.chunkrefs import chunk_ref
    from elytra.sources import LakeSource

    _dim(tmp_path / "dim.parquet")
    here, there = "a" * 64, "b" * 64
    size = (tmp_path / "dim.parquet").stat().st_size
    schema = pq.read_schema(tmp_path / "dim.parquet")
    src = LakeSource(
        "dim",
        schema,
        chunks=((here, chunk_ref(here), size), (there, chunk_ref(there), 3 * size)),
    )
    kept = {chunk_ref(here): str(tmp_path / "dim.parquet")}
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        dim = s.read_parquet(tmp_path / "dim.parquet")
        chain = replace_leaf(dim.select("kk").node, src)
    key_here = side_bytes(chain, src, lambda f: kept.get(f, f))
    # nothing found here: the key's share of a row by type widths (8 of 8 + 16 bytes)
    blind = side_bytes(chain, src)
    assert blind == 4 * size // 3
    assert key_here < size // 5 * 4  # the key column's share of all four sizes' worth
    # the chunk here by its footer, the one there (three times its size) by the same share
    alone = LakeSource("dim", schema, chunks=((here, chunk_ref(here), size),))
    one = side_bytes(chain, alone, lambda f: kept.get(f, f))
    assert abs(key_here - 4 * one) <= key_here // 100  # the footer's bytes are not the file's


def replace_leaf(node, src):  # type: ignore[no-untyped-def]
    """``node`` with its one Input leaf renamed to ``src``'s name."""
    from emsqrt import plan as lp

    if isinstance(node, lp.Input):
        return lp.Input(src.name, node.schema)
    return lp.replace_children(node, tuple(replace_leaf(k, src) for k in lp.children(node)))


def test_the_kept_fraction_is_counted_over_row_groups_spread_over_the_file(
    tmp_path: Path,
) -> None:
    """Rows sorted by the filtered column: a count over the file's first row groups would
    find every row kept; eight spread over 100 find about the tenth that is."""
    table = pa.table({"kk": pa.array(range(20000), pa.int64())})
    pq.write_table(table, tmp_path / "sorted.parquet", row_group_size=200)
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        dim = s.read_parquet(tmp_path / "sorted.parquet")
        src = next(iter(dim.sources.values()))
        size = side_size(dim.filter("kk < 2000").node, src)
    assert size.held <= size.read // 5
    assert size.held > 0


def test_a_count_is_kept_for_the_file_not_its_path(tmp_path: Path) -> None:
    """Each job hard-links the chunks it reads into a directory of its own: the count over
    the same file under another name is not run again, and a changed file is counted anew.
    The sample read from a file is kept too (a side joined with a file each job makes, a
    side run first, is counted again each job: TPC-H q20 read 40 ms of partsupp a query)."""
    from elytra import sidesize

    pq.write_table(pa.table({"kk": pa.array(range(20000), pa.int64())}), tmp_path / "a.parquet")
    job = tmp_path / "job"
    job.mkdir()
    (job / "a.parquet").hardlink_to(tmp_path / "a.parquet")
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        dim = s.read_parquet(tmp_path / "a.parquet")
        src = next(iter(dim.sources.values()))
        chain = dim.filter("kk < 2000").node
        first = sidesize.counted_fraction(chain, src, str(tmp_path / "a.parquet"), {"kk"})
        kept = len(sidesize._KEPT)
        again = sidesize.counted_fraction(chain, src, str(job / "a.parquet"), {"kk"})
        assert again == first
        assert len(sidesize._KEPT) == kept  # the same file: no new count
        pq.write_table(pa.table({"kk": pa.array(range(10), pa.int64())}), tmp_path / "b.parquet")
        other = sidesize.counted_fraction(chain, src, str(tmp_path / "b.parquet"), {"kk"})
        assert other == 1.0
        assert len(sidesize._KEPT) == kept + 1
        sample = sidesize.sample_rows(str(tmp_path / "a.parquet"), src, {"kk"})
        assert sample is not None
        assert sidesize.sample_rows(str(job / "a.parquet"), src, {"kk"}) is sample
        (job / "a.parquet").unlink()
        pq.write_table(pa.table({"kk": pa.array(range(7), pa.int64())}), job / "a.parquet")
        fresh = sidesize.sample_rows(str(job / "a.parquet"), src, {"kk"})
        assert fresh is not None
        assert fresh.num_rows == 7


def test_a_column_named_with_a_dot_counts_its_own_bytes(tmp_path: Path) -> None:
    """Found from outside: a leaf's dotted path named "big.col" as a column "big", so a query
    reading it counted 0 bytes (one task over a file of any size); nested columns count
    their leaves."""
    from elytra.sidesize import plan_read_bytes

    n = 20_000
    table = pa.table(
        {
            "big.col": pa.array([f"{i:08d}" * 16 for i in range(n)]),
            "id": pa.array(range(n)),
            "v": pa.array([[i % 7, i % 5] for i in range(n)], pa.list_(pa.int32())),
        }
    )
    path = tmp_path / "dot.parquet"
    pq.write_table(table, path)
    meta = pq.read_metadata(path)
    want = sum(
        meta.row_group(g).column(0).total_compressed_size for g in range(meta.num_row_groups)
    )
    with elytra.connect(home=tmp_path / "h", backend="inline", progress=False) as s:
        src = s.read_parquet(str(path))
        q = s.sql('SELECT count(DISTINCT "big.col") AS n FROM t', {"t": src})
        got = plan_read_bytes(q.node, q.sources)
    assert got == want
