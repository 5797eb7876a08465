"""CSV ingest reads a file as DuckDB's ``read_csv`` with default options reads it.

Null-like words stay values, quoted empty fields are NULL, leading zeros keep a code as text,
and quoted newlines survive read-block boundaries (the node reads in 64 KiB blocks here).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from lake import LakeNode, lake_settings

from .conftest import CHUNK, SECRET, ingest

WORDS = ["NA", "null", "nan", "#N/A", "NULL", "None", '""', "", "N/A"]


@pytest.fixture
def small_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LakeNode]:
    """A node whose ingest budget makes 64 KiB CSV read blocks."""
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    n = LakeNode(
        lake_settings(None, home=tmp_path / "home", chunk_bytes=CHUNK, ingest_memory_bytes=1 << 20)
    )
    yield n
    n.stop()


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


def test_ingested_csv_equals_duckdb_read_csv(small_node: LakeNode, tmp_path: Path) -> None:
    src = tricky_csv(tmp_path / "tricky.csv", 6000)
    assert src.stat().st_size > 4 * 64 * 1024  # many read blocks, quoted newlines across them
    ingest(small_node, src, "tricky")
    paths = [
        str(small_node.chunks.verify(c.sha256)) for c in small_node.catalog.get("tricky").chunks
    ]
    ours = duckdb.sql(f"SELECT * FROM read_parquet({paths})")
    theirs = duckdb.sql(f"SELECT * FROM read_csv('{src}')")
    assert ours.columns == theirs.columns
    assert [str(t) for t in ours.types] == [str(t) for t in theirs.types]
    order = " ORDER BY id"
    got = duckdb.sql(f"SELECT * FROM read_parquet({paths}){order}").fetchall()
    want = duckdb.sql(f"SELECT * FROM read_csv('{src}'){order}").fetchall()
    assert len(got) == 6000
    assert repr(got) == repr(want)  # repr: NaN equals NaN
    words = {r[0] for r in duckdb.sql(f"SELECT word FROM read_parquet({paths})").fetchall()}
    assert {"NA", "null", "nan", "#N/A", "NULL", "None", "N/A", None} == words
