"""``run(on_batch=...)``: a result streamed batch by batch, never collected."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from emsqrt import EngineConfig, run
from emsqrt import plan as lp
from platform_core import Schema
from platform_core.expr import parse as parse_expr


def test_on_batch_streams_a_result_larger_than_the_cap(tmp_path: Path) -> None:
    t = pa.table({"a": pa.array(range(200_000), pa.int64()), "k": [i % 7 for i in range(200_000)]})
    node = lp.Filter(lp.Input("x", Schema.from_arrow(t.schema)), parse_expr("k <> 3"))
    got: list[pa.RecordBatch] = []
    cap = 1 << 20  # the result is ~2.7 MB: it can only pass through in pieces
    r = run(
        node,
        EngineConfig(mem_cap_bytes=cap, spill_dir=str(tmp_path)),
        inputs={"x": t},
        on_batch=got.append,
    )
    assert r.table is None
    assert len(got) > 1
    assert max(b.nbytes for b in got) <= cap
    out = pa.Table.from_batches(got)
    want = duckdb.sql("SELECT a, k FROM t WHERE k <> 3").arrow().read_all()
    assert out.sort_by("a").equals(want.sort_by("a").cast(out.schema))
    assert r.manifest.rows_out == out.num_rows


def test_the_kernel_streams_a_join_that_explodes(tmp_path: Path) -> None:
    import resource

    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"i": pa.array(range(300), pa.int64()), "k": [1] * 300}), tmp_path / "a.parquet"
    )
    a = lp.Scan(str(tmp_path / "a.parquet"), "parquet")
    node = lp.Join(lp.Join(a, a, ("k",), ("k",)), a, ("k",), ("k",))  # 27 million rows
    rows = total = batches = 0

    def take(b: pa.RecordBatch) -> None:
        nonlocal rows, total, batches
        rows, batches = rows + b.num_rows, batches + 1
        total += sum(pc.sum(c).as_py() or 0 for c in b.columns)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cap = 64 << 20  # the result is 4 columns x 27e6 rows: 864 MB, 13 times the cap
    r = run(node, EngineConfig(mem_cap_bytes=cap, spill_dir=str(tmp_path / "s")), on_batch=take)
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    assert [o.op for o in r.manifest.operators] == ["kernel"]  # DuckDB made it, streaming
    assert r.table is None
    assert rows == r.manifest.rows_out == 300**3
    assert batches > 10
    assert grew < 4 * cap  # never held: 864 MB went through
    want = duckdb.sql(
        f"SELECT count(*), sum(a.i + a.k + b.i + c.i) FROM '{tmp_path}/a.parquet' a "
        f"JOIN '{tmp_path}/a.parquet' b USING (k) JOIN '{tmp_path}/a.parquet' c USING (k)"
    ).fetchall()[0]
    assert (rows, total) == want


def test_a_kernel_failure_after_rows_went_out_raises_emsqrts_own_error(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from platform_core import PlatformError

    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"i": pa.array(range(200_000), pa.int64())}), path, row_group_size=8192)
    # overflows from row 92234 on: DuckDB has streamed rows before it fails
    node = lp.Map(lp.Scan(str(path), "parquet"), (("j", parse_expr("i * 100000000000000")),))
    got: list[pa.RecordBatch] = []
    with pytest.raises(PlatformError, match="overflow") as failed:
        run(
            node, EngineConfig(mem_cap_bytes=64 << 20, spill_dir=str(tmp_path)), on_batch=got.append
        )
    assert 0 < sum(b.num_rows for b in got) <= 92_234  # some went out; never a row twice
    assert "i * 100000000000000" in failed.value.message  # the operators' words, not DuckDB's
