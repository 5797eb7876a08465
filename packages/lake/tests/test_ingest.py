"""Conversion of CSV, JSONL and Parquet into chunks: exact against DuckDB, bounded, clean on failure."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from lake import LakeNode
from lake.errors import ChecksumMismatchError, IngestError, TooLargeError, UploadStateError

from .conftest import CHUNK


def same_rows(node: LakeNode, name: str, original: str) -> None:
    """The dataset's rows equal DuckDB's reading of the original file (as a multiset)."""
    paths = [str(node.chunks.verify(c.sha256)) for c in node.catalog.get(name).chunks]
    ours = duckdb.sql(f"SELECT * FROM read_parquet({paths}) ORDER BY ALL").fetchall()
    theirs = duckdb.sql(f"SELECT * FROM {original} ORDER BY ALL").fetchall()
    assert ours == theirs


def test_csv_becomes_many_whole_row_chunks(
    node: LakeNode, sales_csv: Path, ingest_file: Callable[..., None]
) -> None:
    ingest_file(node, sales_csv, "sales")
    m = node.catalog.get("sales")
    assert len(m.chunks) >= 5
    assert all(c.bytes <= CHUNK * 1.1 for c in m.chunks), [c.bytes for c in m.chunks]
    assert (
        m.rows
        == 150_000
        == sum(pq.ParquetFile(node.chunks.path(c.sha256)).metadata.num_rows for c in m.chunks)
    )
    same_rows(node, "sales", f"read_csv('{sales_csv}')")
    # Column statistics bound every chunk's values.
    for c in m.chunks:
        lo, hi = c.stats["id"]
        got = duckdb.sql(f"SELECT min(id), max(id) FROM '{node.chunks.path(c.sha256)}'").fetchall()[
            0
        ]
        assert (lo, hi) == got
    assert [f.name for f in m.schema.fields] == ["id", "grp", "amount", "who", "day"]  # type: ignore[union-attr]
    assert not list(node.root.glob("chunks/.tmp-*"))
    assert not list(node.root.glob("uploads/*/data"))


def test_jsonl_and_parquet(
    node: LakeNode, tmp_path: Path, sales_csv: Path, ingest_file: Callable[..., None]
) -> None:
    jl = tmp_path / "sales.jsonl"
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{sales_csv}')) TO '{jl}' (FORMAT JSON)")
    pqf = tmp_path / "sales.parquet"
    duckdb.sql(
        f"COPY (SELECT * FROM read_csv('{sales_csv}')) TO '{pqf}' (FORMAT PARQUET, ROW_GROUP_SIZE 5000)"
    )
    ingest_file(node, jl, "sales_jl", overrides={"day": "date"})  # JSON has no date type
    ingest_file(node, pqf, "sales_pq")
    same_rows(
        node,
        "sales_jl",
        f"read_json('{jl}', columns={{id:'BIGINT',grp:'BIGINT',amount:'DOUBLE',who:'VARCHAR',day:'DATE'}})",
    )
    same_rows(node, "sales_pq", f"'{pqf}'")
    assert len(node.catalog.get("sales_pq").chunks) >= 5


def test_schema_overrides(
    node: LakeNode, sales_csv: Path, ingest_file: Callable[..., None]
) -> None:
    ingest_file(node, sales_csv, "typed", overrides={"grp": "utf8", "amount": "decimal(12, 3)"})
    schema = node.catalog.get("typed").schema
    assert schema is not None
    types = {f.name: str(f.type) for f in schema.fields}
    assert types["grp"] == "utf8"
    assert types["amount"] == "decimal(12, 3)"
    row = node.engine.run(
        "SELECT typeof(grp), typeof(amount) FROM typed LIMIT 1"
    ).table.to_pylist()[0]
    assert list(row.values()) == ["VARCHAR", "DECIMAL(12,3)"]


def test_malformed_csv_names_the_line_and_leaves_nothing(node: LakeNode, tmp_path: Path) -> None:
    good = "".join(f"{i},{i * 2},x{i}\n" for i in range(5000))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n" + good + "5000,oops,y\n" + good)
    fields = tmp_path / "fields.csv"
    fields.write_text("a,b,c\n" + good + "1,2,3,4\n")
    for path, line, what in [(bad, 5002, "'oops'"), (fields, 5002, "column")]:
        data = path.read_bytes()
        info = node.uploads.start(
            "bad", len(data), filename=path.name, overrides={"b": "i64"} if path == bad else None
        )
        node.uploads.put_part(info.id, 0, data, hashlib.sha256(data).hexdigest())
        node.uploads.complete(info.id)
        done = node.uploads.wait(info.id, 30)
        assert done.state == "failed"
        assert f"line {line}" in (done.error or ""), done.error
        assert what in (done.error or "")
    assert node.catalog.names() == []
    assert node.chunks.all() == []  # chunks written before the bad line were removed


def test_part_checksums_sizes_and_states(node: LakeNode, sales_csv: Path) -> None:
    data = sales_csv.read_bytes()
    info = node.uploads.start("s", len(data), filename="s.csv", part_size=1 << 20)
    part = data[: 1 << 20]
    with pytest.raises(ChecksumMismatchError, match="part 0"):
        node.uploads.put_part(info.id, 0, part, hashlib.sha256(b"other").hexdigest())
    assert node.uploads.received(info.id) == []
    with pytest.raises(IngestError, match="bytes"):
        node.uploads.put_part(info.id, 0, part[:-1], hashlib.sha256(part[:-1]).hexdigest())
    with pytest.raises(UploadStateError, match="missing parts 0"):
        node.uploads.complete(info.id)
    with pytest.raises(TooLargeError):
        node.uploads.start("s", 2 << 40, filename="s.csv")
    # Any order, and a part sent twice is fine.
    order = [*list(range(info.parts))[::-1], 0]
    for n in order:
        p = data[n * info.part_size : (n + 1) * info.part_size]
        node.uploads.put_part(info.id, n, p, hashlib.sha256(p).hexdigest())
    node.uploads.complete(info.id)
    assert node.uploads.wait(info.id, 30).state == "committed"
    with pytest.raises(UploadStateError):
        node.uploads.put_part(info.id, 0, part, hashlib.sha256(part).hexdigest())
    same_rows(node, "s", f"read_csv('{sales_csv}')")


def test_append_makes_a_new_version(
    node: LakeNode, sales_csv: Path, ingest_file: Callable[..., Any]
) -> None:
    ingest_file(node, sales_csv, "s")
    ingest_file(node, sales_csv, "s", append=True)
    m = node.catalog.get("s")
    assert m.version == 2
    assert m.rows == 300_000
    assert len({c.sha256 for c in m.chunks}) == len(m.chunks) // 2  # identical chunks deduplicated
    assert node.catalog.get("s", 1).rows == 150_000


@pytest.mark.parametrize("codec", ["snappy", "zstd", "lz4", "none"])
def test_chunks_take_the_configured_codec_and_decimals_as_integers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ingest_file: Callable[..., None],
    codec: str,
) -> None:
    """``LAKE_CHUNK_COMPRESSION`` is every chunk's codec; a decimal of up to 18 digits is an
    INT64 (38 digits stay a byte array); the rows and the manifest's bounds are DuckDB's."""
    from lake import lake_settings

    monkeypatch.setenv("PLATFORM_SECRET", "x" * 40)
    monkeypatch.setenv("LAKE_CHUNK_COMPRESSION", codec)
    node = LakeNode(lake_settings(None, home=tmp_path / "home", chunk_bytes=CHUNK))
    try:
        src = tmp_path / "prices.parquet"
        duckdb.sql(
            f"""COPY (SELECT i AS id, ((i * 7 % 100003 - 50000) / 100)::DECIMAL(15, 2) AS price,
                      CASE WHEN i % 9 = 0 THEN NULL ELSE (i / 3)::DECIMAL(38, 4) END AS wide
               FROM range(60000) t(i)) TO '{src}' (FORMAT PARQUET)"""
        )
        ingest_file(node, src, "prices")
        m = node.catalog.get("prices")
        assert len(m.chunks) >= 2
        for c in m.chunks:
            meta = pq.ParquetFile(node.chunks.path(c.sha256)).metadata
            columns = {meta.schema.column(j).name: meta.row_group(0).column(j) for j in range(3)}
            named = {"none": "UNCOMPRESSED"}.get(codec, codec.upper())
            assert {col.compression for col in columns.values()} == {named}
            # as the file says it (pyarrow's LZ4 is Parquet's LZ4_RAW, not the Hadoop framing)
            written = duckdb.sql(
                f"SELECT DISTINCT compression FROM parquet_metadata('{node.chunks.path(c.sha256)}')"
            ).fetchall()
            assert written == [({"lz4": "LZ4_RAW"}.get(codec, named),)]
            assert columns["price"].physical_type == "INT64"
            assert columns["wide"].physical_type == "FIXED_LEN_BYTE_ARRAY"
            lo, hi = c.stats["price"]
            got = duckdb.sql(
                f"SELECT min(price)::VARCHAR, max(price)::VARCHAR FROM '{node.chunks.path(c.sha256)}'"
            ).fetchall()[0]
            assert (lo, hi) == got
        same_rows(node, "prices", f"'{src}'")
    finally:
        node.stop()


def test_an_unknown_codec_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from lake import lake_settings

    monkeypatch.setenv("LAKE_CHUNK_COMPRESSION", "brotli9")
    with pytest.raises(Exception, match=r"(?i)chunk_compression"):
        lake_settings(None, home=tmp_path / "home")


def test_nan_far_dates_and_tiny_decimals_keep_every_row_and_only_true_bounds(
    node: LakeNode, tmp_path: Path, ingest_file: Callable[..., None]
) -> None:
    """Found from outside: a chunk's float statistics left NaN out and DuckDB skipped the row
    group for ``f > 3`` (NaN is above every number there); a date past year 9999 refused the
    upload; a decimal bound was written as '1E-18', which a DECIMAL cast refuses."""
    import pyarrow as pa

    n = 120_000
    odd = pa.table(
        {
            "f": pa.array([float("nan") if i % 1000 == 7 else (i % 50) / 10 for i in range(n)]),
            "d": pa.array([i if i % 9000 else 3_000_000 for i in range(n)], pa.date32()),
            "tiny": pa.array([Decimal(i % 3) / 10**18 for i in range(n)], pa.decimal128(18, 18)),
        }
    )
    src = tmp_path / "odd.parquet"
    pq.write_table(odd, src, row_group_size=5000)
    ingest_file(node, src, "odd")
    m = node.catalog.get("odd")
    paths = [str(node.chunks.path(c.sha256)) for c in m.chunks]
    assert sum(pq.ParquetFile(p).metadata.num_row_groups for p in paths) >= 4  # some NaN-free
    for sql in ("f > 3", "f > 100", "isnan(f)", "d > DATE '9999-12-31'", "tiny > 0"):
        got = duckdb.sql(f"SELECT count(*) FROM read_parquet({paths}) WHERE {sql}").fetchall()
        want = duckdb.sql(f"SELECT count(*) FROM odd WHERE {sql}").fetchall()
        assert got == want, sql
    for c in m.chunks:
        assert "f" not in c.stats
        assert "d" not in c.stats
        lo, hi = c.stats["tiny"]
        assert "E" not in lo + hi
        duckdb.sql(f"SELECT '{lo}'::DECIMAL(18, 18), '{hi}'::DECIMAL(18, 18)").fetchall()
    for a, b in ((f"read_parquet({paths})", "odd"), ("odd", f"read_parquet({paths})")):
        # the same rows as a multiset; EXCEPT ALL takes NaN for NaN, where Python's == does not
        left = duckdb.sql(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})")
        assert left.fetchall() == [(0,)]
