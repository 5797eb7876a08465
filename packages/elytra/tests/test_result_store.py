"""Stored job results: written as the merge streams, paged from disk, bounded, expiring, and
gone after a failure or a cancel (DuckDB is the oracle for the rows)."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import elytra
from elytra import ResultGoneError, ResultStore, ResultTooLargeError


def _store(root: Path, **kw: float) -> ResultStore:
    limits = {"max_bytes": 64 << 20, "quota_bytes": 256 << 20, "ttl_seconds": 3600.0} | kw
    return ResultStore(
        root,
        max_bytes=int(limits["max_bytes"]),
        quota_bytes=int(limits["quota_bytes"]),
        ttl_seconds=limits["ttl_seconds"],
    )


def _left(root: Path) -> list[str]:
    """Every file under ``root`` (results, temporary files, locks)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_result_is_stored_and_read_in_pages_like_duckdb(parts_dir: Path, tmp_path: Path) -> None:
    store = _store(tmp_path / "results")
    with elytra.connect(home=tmp_path / "home", backend="inline", driver_mem_cap="2MiB") as s:
        p = (
            s.read_parquet(str(parts_dir / "*.parquet"))
            .filter("v IS NOT NULL")
            .select("k", "v", "s")
            .sort("v", "k", "s")
        )
        job = s.driver.submit(p, owner="alice", store=store)
        assert job.wait(60) == "succeeded", job.error
    assert job.table is None  # written, not held
    stored = store.open(job.id)
    want = duckdb.sql(
        f"SELECT k, v, s FROM read_parquet('{parts_dir}/*.parquet') WHERE v IS NOT NULL "
        "ORDER BY v, k, s"
    ).fetchall()
    assert stored.num_rows == len(want) == job.record["result"]["rows"]
    assert len(stored.meta["batches"]) > 1  # the merge streamed it in several batches
    for offset, limit in [(0, 7), (5, 1000), (len(want) - 3, 10), (len(want), 5), (1234, None)]:
        got = pa.Table.from_batches(list(stored.batches(offset, limit)), schema=stored.schema())
        end = len(want) if limit is None else offset + limit
        assert [tuple(r.values()) for r in got.to_pylist()] == want[offset:end]
    assert job.record["result"]["where"] == "stored"
    assert _left(tmp_path / "results") == [f"{job.id}/meta.json", f"{job.id}/result.arrow"]


def test_a_result_past_its_limit_fails_naming_it_and_leaves_nothing(
    parts_dir: Path, tmp_path: Path
) -> None:
    store = _store(tmp_path / "results", max_bytes=20_000)
    with elytra.connect(home=tmp_path / "home", backend="inline", driver_mem_cap="2MiB") as s:
        p = s.read_parquet(str(parts_dir / "*.parquet"))
        job = s.driver.submit(p, owner="alice", store=store)
        assert job.wait(60) == "failed"
    assert isinstance(job.error, ResultTooLargeError)
    assert job.error.status == 413
    assert "ELYTRA_MAX_RESULT_BYTES" in job.error.message
    assert "write" in job.error.message  # how to write to a dataset instead
    assert _left(tmp_path / "results") == []
    with pytest.raises(ResultGoneError):
        store.open(job.id)


def test_the_quota_counts_a_users_stored_results(parts_dir: Path, tmp_path: Path) -> None:
    with elytra.connect(home=tmp_path / "home", backend="inline", driver_mem_cap="2MiB") as s:
        p = s.read_parquet(str(parts_dir / "*.parquet")).select("k", "v")
        one = s.driver.submit(p, owner="alice", store=_store(tmp_path / "r"))
        assert one.wait(60) == "succeeded"
        size = _store(tmp_path / "r").open(one.id).nbytes
        store = _store(tmp_path / "r", quota_bytes=size + size // 2)
        two = s.driver.submit(p, owner="alice", store=store)
        assert two.wait(60) == "failed"
        assert isinstance(two.error, ResultTooLargeError)
        assert "ELYTRA_RESULT_QUOTA_BYTES" in two.error.message
        other = s.driver.submit(p, owner="bob", store=store)  # bob's quota is his own
        assert other.wait(60) == "succeeded"
        assert store.used("alice") == store.used("bob") == size
        assert store.delete(one.id)
        three = s.driver.submit(p, owner="alice", store=store)  # room again
        assert three.wait(60) == "succeeded"
    assert sorted(_left(tmp_path / "r")) == sorted(
        f"{j.id}/{f}" for j in (other, three) for f in ("meta.json", "result.arrow")
    )


def test_a_result_expires(parts_dir: Path, tmp_path: Path) -> None:
    store = _store(tmp_path / "results", ttl_seconds=0.3)
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        job = s.driver.submit(s.read_parquet(str(parts_dir / "part0.parquet")), store=store)
        assert job.wait(60) == "succeeded"
    assert store.open(job.id).num_rows == 2000
    time.sleep(0.4)
    assert store.expire() == 1
    assert _left(tmp_path / "results") == []
    with pytest.raises(ResultGoneError, match="no longer stored"):
        store.open(job.id)


def test_a_cancelled_job_leaves_no_result(parts_dir: Path, tmp_path: Path) -> None:
    store = _store(tmp_path / "results")
    with elytra.connect(home=tmp_path / "home", backend="inline", driver_mem_cap="1MiB") as s:
        big = s.read_parquet(str(parts_dir / "*.parquet"))
        p = big.join(big.select("k"), on="k")  # 7 keys: 10000 * 10000 / 7 rows, stopped early
        job = s.driver.submit(p, owner="alice", store=store)
        deadline = time.monotonic() + 30
        while job.record.get("rows_out", 0) == 0 and not list(
            (tmp_path / "results" / ".writing").glob("*/result.arrow")
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        job.cancel()
        assert job.wait(60) == "cancelled"
    assert _left(tmp_path / "results") == []


def test_pages_encode_as_json_arrow_and_csv_from_the_stored_batches(tmp_path: Path) -> None:
    import io
    import json

    import pyarrow.csv as pcsv

    from elytra.resultpages import arrow_stream, csv_stream, json_page

    store = _store(tmp_path / "results")
    writer = store.writer("01JQ0000000000000000000000", "alice")
    t = pa.table({"i": pa.array(range(1000), pa.int64()), "s": [f"r{i}" for i in range(1000)]})
    for batch in t.to_batches(max_chunksize=64):  # 16 stored batches
        writer.write(batch)
    stored = writer.commit(t.schema)
    assert len(stored.meta["batches"]) == 16
    page = json.loads(json_page(stored, 990, 25))
    assert page["rows"] == [[i, f"r{i}"] for i in range(990, 1000)]
    assert (page["total_rows"], page["next_offset"]) == (1000, None)
    assert json.loads(json_page(stored, 60, 10))["next_offset"] == 70
    got = pa.ipc.open_stream(b"".join(arrow_stream(stored, 100, 300))).read_all()
    assert got.equals(t.slice(100, 300))
    empty = pa.ipc.open_stream(b"".join(arrow_stream(stored, 1000, None))).read_all()
    assert empty.num_rows == 0
    assert empty.schema == t.schema
    text = b"".join(csv_stream(stored, 998, None))
    assert pcsv.read_csv(io.BytesIO(text)).equals(t.slice(998))


def test_results_being_written_count_against_the_quota(tmp_path: Path) -> None:
    store = _store(tmp_path / "results", quota_bytes=12_000)
    batch = pa.record_batch({"i": pa.array(range(800), pa.int64())})  # 6.4 KB
    one = store.writer("01JQ0000000000000000000010", "alice")
    two = store.writer("01JQ0000000000000000000011", "alice")
    bobs = store.writer("01JQ0000000000000000000012", "bob")
    one.write(batch)
    bobs.write(batch)  # bob's quota is his own
    with pytest.raises(ResultTooLargeError, match="ELYTRA_RESULT_QUOTA_BYTES") as over:
        two.write(batch)  # alone it fits; with alice's other running job, it does not
    assert "being written by other jobs" in over.value.message
    two.abort()
    one.commit(batch.schema)
    bobs.commit(batch.schema)
    assert store.used("alice") == store.used("bob") > 6400
    assert _left(tmp_path / "results") == sorted(
        f"01JQ000000000000000000001{n}/{f}" for n in (0, 2) for f in ("meta.json", "result.arrow")
    )
