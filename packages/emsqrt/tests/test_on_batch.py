"""``run(on_batch=...)``: a result streamed batch by batch, never collected."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

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
