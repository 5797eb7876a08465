"""A CSV scan reads the file as DuckDB's ``read_csv`` with default options reads it: the
platform's one CSV reader (``platform_core.csv``), with blocks small enough that quoted
newlines cross them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from oracle import KiB, assert_same_rows, duck

from emsqrt import Pipeline

WORDS = ["NA", "null", "nan", "#N/A", "NULL", "None", '""', "", "N/A"]


def tricky_csv(path: Path, rows: int) -> Path:
    lines = ["id,code,word,note,x,flag,day"]
    for i in range(rows):
        word = WORDS[i % len(WORDS)]
        note = f'"first line {i}\nsecond, ""quoted"" é"' if i % 3 else f"plain {i}"
        x = "nan" if i % 17 == 0 else f"{i / 7:.4f}"
        flag = ["true", "F", "yes", ""][i % 4]
        lines.append(f"{i},{i % 1000:03d},{word},{note},{x},{flag},2024-01-{i % 28 + 1:02d}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_scan_equals_duckdb_read_csv(spill_dir: Path, tmp_path: Path) -> None:
    src = tricky_csv(tmp_path / "tricky.csv", 3000)
    assert src.stat().st_size > 8 * 16 * KiB  # the 64 KiB cap reads in blocks far smaller
    got = Pipeline.scan(src).collect(64 * KiB, spill_dir=spill_dir)
    want = duck(f"SELECT * FROM read_csv('{src}')")
    assert got.column_names == want.column_names
    assert got.schema.types == [
        pa.int64(),
        pa.string(),
        pa.string(),
        pa.string(),
        pa.float64(),
        pa.bool_(),
        pa.date32(),
    ]
    assert got.schema.types == want.schema.types
    assert_same_rows(got, want, ordered=True)
    agg = (
        Pipeline.scan(src)
        .filter("word IS NULL")
        .aggregate(["flag"], ["COUNT(*) AS n"])
        .collect(64 * KiB, spill_dir=spill_dir)
    )
    want_agg = duck(
        f"SELECT flag, count(*) AS n FROM read_csv('{src}') WHERE word IS NULL GROUP BY flag"
    )
    assert_same_rows(agg, want_agg)


def test_rows_longer_than_the_read_block_are_read_whole(tmp_path: Path) -> None:
    """A small cap reads CSV in 64 KiB blocks; a 300 KB field in the middle of the file
    restarts the read with larger blocks and no row is lost or repeated (DuckDB as oracle)."""
    import duckdb

    path = tmp_path / "long.csv"
    rows = [f"{i},{'x' * (300_000 if i == 5000 else 10)}" for i in range(10_000)]
    path.write_text("id,text\n" + "\n".join(rows) + "\n")
    out = (
        Pipeline.scan(path)
        .run(1 << 20, spill_dir=tmp_path / "spill")  # 1 MiB cap: 64 KiB read blocks
        .table
    )
    assert out is not None
    want = duckdb.sql(f"SELECT id, text FROM read_csv('{path}') ORDER BY id").fetch_arrow_table()
    got = out.sort_by("id")
    assert got.num_rows == want.num_rows == 10_000
    assert got.column("id").to_pylist() == want.column("id").to_pylist()
    assert got.column("text").to_pylist() == want.column("text").to_pylist()
