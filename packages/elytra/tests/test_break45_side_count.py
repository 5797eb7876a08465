"""Break-testing the planner's count of a filtered join side (``elytra.sidesize``): it is
work at planning time, so it runs only when its answer can change the decision, and a
corrupt file at the count gives the scan's clear error, not a crash while planning."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import sidesize
from elytra.sidesize import READ_FACTOR, Broadcastable, side_bytes
from platform_core import PlatformError


def _wide(path: Path, rows: int = 20000) -> None:
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT i AS kk, md5(i::VARCHAR) || md5((i * 7)::VARCHAR) AS wide "
        f"FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 2000)"
    )
    con.close()


def test_a_side_reading_past_the_read_factor_is_refused_without_counting_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A side reading more than ``READ_FACTOR`` times the limit is exchanged whatever its
    filters keep: counting them first is a DuckDB statement over up to eight row groups
    (0.3 s on a 290 MB file) spent for nothing on every plan of such a join."""
    _wide(tmp_path / "dim.parquet")
    counted: list[object] = []
    real = sidesize.counted_fraction

    def spy(*args: object) -> float | None:
        counted.append(args)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sidesize, "counted_fraction", spy)
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        dim = s.read_parquet(tmp_path / "dim.parquet")
        src = next(iter(dim.sources.values()))
        chain = dim.filter("kk < 10").node  # keeps almost nothing
        read = side_bytes(chain, src)
        limit = read // (READ_FACTOR + 1)
        assert not Broadcastable(limit)(chain, src)
        assert counted == []
        # within the read factor the count is what decides: it runs, and the side is broadcast
        assert Broadcastable(read // 2)(chain, src)
        assert len(counted) == 1


def test_a_join_side_whose_file_is_corrupt_fails_with_a_clear_error(tmp_path: Path) -> None:
    """Its footer intact and its pages garbled: the planner's count cannot read it (and
    keeps the side's whole size), the job fails naming the file."""
    where = tmp_path / "d"
    where.mkdir()
    for i in range(3):
        _wide(where / f"d{i}.parquet", 6000)
    bad = where / "d0.parquet"
    meta = pq.read_metadata(bad)
    raw = bytearray(bad.read_bytes())
    for g in range(meta.num_row_groups):
        start = meta.row_group(g).column(1).data_page_offset
        raw[start + 20 : start + 300] = b"\xab" * 280
    bad.write_bytes(bytes(raw))
    _wide(tmp_path / "f.parquet", 100)
    sql = (
        "SELECT count(d.kk) AS n FROM f LEFT JOIN "
        "(SELECT kk, wide FROM d WHERE wide LIKE '%ab%') d ON f.kk = d.kk"
    )
    with elytra.connect(home=tmp_path / "home", backend="inline", broadcast_bytes=100_000) as s:
        tables = {
            "f": s.read_parquet(tmp_path / "f.parquet"),
            "d": s.read_parquet(str(where / "d*.parquet")),
        }
        s.sql(sql, tables).explain()  # plans
        with pytest.raises(PlatformError, match=r"d0\.parquet"):
            s.sql(sql, tables).collect()
