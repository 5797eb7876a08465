"""One rule deletes chunks, and a failed upload never takes another dataset's (issue 11, item 1).

Chunks are content-addressed: a new upload whose first rows equal a committed dataset writes
chunks with the same hashes. Its cleanup after a failure may remove only what no committed
manifest references and no other writer holds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from lake import LakeNode

from .conftest import ingest, make_csv


def _rows(node: LakeNode, name: str) -> list[tuple[object, ...]]:
    return node.engine.run(f"SELECT * FROM {name} ORDER BY id").table.to_pylist()  # type: ignore[no-any-return]


def test_a_failed_upload_keeps_the_chunks_another_dataset_shares(
    node: LakeNode, tmp_path: Path
) -> None:
    base = make_csv(tmp_path / "base.csv", rows=60_000).read_text()
    body = base.split("\n", 1)[1]
    src = tmp_path / "a.csv"
    src.write_text(base + body + body)
    ingest(node, src, "first", overrides={"amount": "f64"})
    shared = {c.sha256 for c in node.catalog.get("first").chunks}
    assert len(shared) >= 3  # several chunks, so the failing upload really shares some
    # the same rows, more rows (chunks are written before the failure), then a bad line
    bad = tmp_path / "b.csv"
    bad.write_text(src.read_text() + body + base.splitlines()[1].replace(",", ",oops,", 1) + "\n")
    data = bad.read_bytes()
    info = node.uploads.start("second", len(data), filename="b.csv", overrides={"amount": "f64"})
    for n in range(info.parts):
        part = data[n * info.part_size : (n + 1) * info.part_size]
        node.uploads.put_part(info.id, n, part, hashlib.sha256(part).hexdigest())
    node.uploads.complete(info.id)
    done = node.uploads.wait(info.id, 60)
    assert done.state == "failed", done
    assert shared <= set(node.chunks.all()), "the failed upload deleted committed chunks"
    # the first dataset still reads fully, exactly as DuckDB reads its source
    want = duckdb.sql(
        f"SELECT id, grp, amount::DOUBLE AS amount, who, day FROM read_csv('{src}') ORDER BY id"
    ).fetch_arrow_table()
    got = node.engine.run("SELECT id, grp, amount, who, day FROM first ORDER BY id").table
    assert got.num_rows == want.num_rows == 180_000
    assert got.to_pylist() == want.to_pylist()
    # gc, under the same rule, keeps them too; a delete then a gc past retention drops them
    node.catalog.gc(retention_seconds=3600)
    assert shared <= set(node.chunks.all())
    node.catalog.delete("first")
    out = node.catalog.gc(retention_seconds=0)
    assert out["chunks"] >= len(shared)
    assert not shared & set(node.chunks.all())


def test_release_spares_what_another_writer_holds_and_removes_the_rest(node: LakeNode) -> None:
    a, _ = node.chunks.put_bytes(b"chunk a")
    b, _ = node.chunks.put_bytes(b"chunk b")
    with node.catalog.pending({a}) as other, node.catalog.pending({a, b}) as mine:
        assert a in other
        # my upload failed: it drops its own hold on b, but a is still another writer's
        assert node.catalog.release({a, b}, holder=mine) == 1
        assert node.chunks.has(a)
        assert not node.chunks.has(b)
    assert node.catalog.release() == 1  # nobody holds a any more, no manifest names it
    assert node.chunks.all() == []
