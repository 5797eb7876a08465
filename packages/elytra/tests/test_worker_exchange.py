"""Exchanges the tasks write themselves: group-bys over many groups and large x large joins of
every type, partitioned on the workers by one DuckDB hash expression, give DuckDB's answer;
the driver never writes a large join's rows; killed workers and cancels leave no partition
files behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import elytra
from elytra import partitions, stages
from elytra.exchange import ExchangeWriter
from elytra.stages import group_exchange
from emsqrt import plan as lp
from emsqrt import planning as emsqrt_planning
from platform_core import Schema

from .conftest import rows_of

ROWS = 3000
FILES = 3


def _write_side(directory: Path, name: str, seed: int, rows: int = ROWS, files: int = FILES) -> str:
    """``files`` Parquet files of a side: keys with many distinct values, NULLs, -0.0 beside
    0.0, NaN, INTEGER beside BIGINT, strings; values to sum."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    specials = np.array([0.0, -0.0, np.nan, 1.5, -2.25])
    for i in range(files):
        n = rows
        ints = rng.integers(0, rows // 2, n)
        floats = np.where(rng.random(n) < 0.3, specials[rng.integers(0, 5, n)], ints / 4)
        pq.write_table(
            pa.table(
                {
                    "i": pa.array(ints.astype(np.int32), mask=rng.random(n) < 0.05),
                    "b": pa.array(ints + rng.integers(0, 2, n), mask=rng.random(n) < 0.05),
                    "f": pa.array(floats, mask=rng.random(n) < 0.05),
                    "s": pa.array([f"w{x % 97}é" for x in ints], pa.string()),
                    "v": pa.array(rng.integers(-50, 50, n)),
                    "u": pa.array(np.arange(i * n, (i + 1) * n)),  # one group per row
                }
            ),
            directory / f"{name}{i}.parquet",
        )
    return f"{directory}/{name}*.parquet"


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    base = tmp_path_factory.mktemp("xchg")
    return _write_side(base, "l", 1), _write_side(base, "r", 2, rows=2000, files=2)


@pytest.fixture(params=["inline", "local", "ray"])
def xsession(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[elytra.Session]:
    """A session whose every join is exchanged and every group-by over more than one part
    partitions its states from the start (thresholds at their smallest)."""
    backend: Any = "inline"
    if request.param != "inline":
        backend = request.getfixturevalue("pool" if request.param == "local" else "ray_backend")
    with elytra.connect(
        home=tmp_path / "home",
        backend=backend,
        broadcast_bytes=0,
        exchange_min_bytes=1,
        exchange_partitions=3,
        progress=False,
    ) as s:
        yield s


def _ours(p: elytra.Pipeline) -> list[tuple[Any, ...]]:
    return rows_of([tuple(r.values()) for r in p.collect().to_pylist()])


def _no_partition_files(s: elytra.Session) -> None:
    spill = s.driver.settings.resolved_spill_dir()
    assert not list(Path(spill).rglob("*.parquet")), "a job left files behind"


KEY_PAIRS = [(("i",), ("b",)), (("f",), ("f",)), (("s",), ("s",)), (("i", "s"), ("b", "s"))]
HOWS = ["inner", "left", "right", "full", "semi", "anti"]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    how=st.sampled_from(HOWS),
    keys=st.sampled_from(KEY_PAIRS),
    left_filter=st.sampled_from(["", "v > 0", "i IS NULL OR v < 10"]),
    then_agg=st.booleans(),
)
def test_generated_large_joins_equal_duckdb(
    xsession: elytra.Session,
    sides: tuple[str, str],
    how: str,
    keys: tuple[tuple[str, ...], tuple[str, ...]],
    left_filter: str,
    then_agg: bool,
) -> None:
    lglob, rglob = sides
    lks, rks = keys
    left = xsession.read_parquet(lglob)
    if left_filter:
        left = left.filter(left_filter)
    left = left.select(*lks, "v")
    right = xsession.read_parquet(rglob).select(*rks, "v").rename(v="w")
    joined = left.join(right, left_on=lks, right_on=rks, how=how)
    assert "hash-partitioned" in joined.explain()
    where = f" WHERE {left_filter}" if left_filter else ""
    on = " AND ".join(f"l.{a} = r.{b}" for a, b in zip(lks, rks, strict=True))
    if how in ("semi", "anti"):
        cols = ", ".join(f"l.{a}" for a in lks) + ", l.v"
    else:
        coalesced = (f"COALESCE(l.{a}, r.{b}) AS {a}" for a, b in zip(lks, rks, strict=True))
        cols = ", ".join(coalesced) + ", l.v, r.w"
    sql = (
        f"SELECT {cols} FROM (SELECT {', '.join(lks)}, v FROM '{lglob}'{where}) l "
        f"{how.upper()} JOIN (SELECT {', '.join(rks)}, v AS w FROM '{rglob}') r ON {on}"
    )
    if then_agg:
        k = lks[0]
        out = "v" if how in ("semi", "anti") else "w"
        joined = joined.group_by(k).agg("count(*) AS n", f"sum({out}) AS t")
        sql = f"SELECT {k}, count(*), sum({out}) FROM ({sql}) GROUP BY {k}"
    assert _ours(joined) == rows_of(duckdb.sql(sql).fetchall()), sql
    _no_partition_files(xsession)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.lists(st.sampled_from(["i", "b", "f", "s", "u"]), min_size=1, max_size=3, unique=True),
    aggs=st.lists(
        st.sampled_from(["count(*)", "sum(v)", "avg(f)", "min(s)", "max(f)", "median(v)"]),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    where=st.sampled_from(["", "v > -20", "f IS NOT NULL"]),
)
def test_generated_group_bys_over_many_groups_equal_duckdb(
    xsession: elytra.Session, sides: tuple[str, str], keys: list[str], aggs: list[str], where: str
) -> None:
    lglob, _ = sides
    p = xsession.read_parquet(lglob)
    if where:
        p = p.filter(where)
    names = [f"a{i}" for i in range(len(aggs))]
    got = p.group_by(*keys).agg(*(f"{a} AS {n}" for a, n in zip(aggs, names, strict=True)))
    cond = f" WHERE {where}" if where else ""
    select = ", ".join([*keys, *(f"{a} AS {n}" for a, n in zip(aggs, names, strict=True))])
    sql = f"SELECT {select} FROM '{lglob}'{cond} GROUP BY {', '.join(keys)}"
    assert _ours(got) == rows_of(duckdb.sql(sql).fetchall()), sql
    _no_partition_files(xsession)


def test_the_driver_never_writes_a_large_joins_rows(
    sides: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sides' tasks partition their own rows; the driver would call add() with rows it held
    def refuse(*_: Any) -> None:
        raise AssertionError("the driver partitioned rows a task should have")

    monkeypatch.setattr(ExchangeWriter, "add", refuse)
    lglob, rglob = sides
    with elytra.connect(
        home=tmp_path / "home", backend="inline", broadcast_bytes=0, progress=False
    ) as s:
        left = s.read_parquet(lglob).select("i", "v")
        right = s.read_parquet(rglob).select("b", "v").rename(v="w")
        got = _ours(left.join(right, left_on="i", right_on="b", how="full"))
    want = duckdb.sql(
        f"SELECT COALESCE(l.i, r.b), l.v, r.w FROM '{lglob}' l FULL JOIN "
        f"(SELECT b, v AS w FROM '{rglob}') r ON l.i = r.b"
    ).fetchall()
    assert got == rows_of(want)


def test_every_writer_places_a_key_in_the_same_partition(
    sides: tuple[str, str], tmp_path: Path
) -> None:
    # the kernel's streamed writer, DuckDB's COPY writer and the held-rows writer (pyarrow
    # over DuckDB's ids) put each row in one partition, the same one for equal keys; an
    # INTEGER key and a BIGINT key of equal value meet when hashed as the join's key type
    lglob, _ = sides
    files = sorted(str(p) for p in Path(lglob).parent.glob("l*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    schema = Schema.from_arrow(table.schema)
    scan = lp.Union(tuple(lp.Scan(f, "parquet", schema) for f in files))
    key_sql = partitions.hash_partition_sql(
        ("i", "f", "s"), [pa.int64(), pa.float64(), pa.string()], 5
    )
    placed: dict[str, dict[tuple[Any, ...], int]] = {}
    for writer in ("arrow", "copy", "held"):
        where = tmp_path / writer
        if writer == "held":
            written = partitions.split_table(table, key_sql, 5, where)
        else:
            got = partitions.write_partitions(
                scan, key_sql, 5, where, 256 << 20, tmp_path / "spill", writer=writer
            )
            assert got is not None
            written = got
        assert sum(written.rows) == table.num_rows
        seen: dict[tuple[Any, ...], int] = {}
        for part, names in enumerate(written.files):
            for name in names:
                for row in pq.read_table(name, columns=["i", "f", "s"]).to_pylist():
                    f = row["f"]
                    f = "nan" if f is not None and f != f else (None if f is None else f + 0.0)
                    key = (row["i"], f, row["s"])
                    assert seen.setdefault(key, part) == part, (writer, key)
        placed[writer] = seen
    assert placed["arrow"] == placed["copy"] == placed["held"]
    # the same value as INTEGER and as BIGINT, hashed as BIGINT, lands alike
    ints = pa.table({"k": pa.array([1, -7, None, 2**30], pa.int32())})
    bigs = pa.table({"k": pa.array([1, -7, None, 2**30], pa.int64())})
    as_big = partitions.hash_partition_sql(("k",), [pa.int64()], 7)
    assert (partitions.partition_ids(ints, as_big) == partitions.partition_ids(bigs, as_big)).all()


def test_how_a_group_by_is_exchanged_is_counted_from_a_sample(tmp_path: Path) -> None:
    # unique keys: partition the rows, no partial aggregate; 20,000 groups in each part of
    # 100,000 rows: partition the partial states; 100 groups: through the driver
    for i in range(3):
        duckdb.sql(
            f"COPY (SELECT r AS u, r % 20000 AS m, r % 100 AS h, r::DOUBLE AS x "
            f"FROM range({i * 100_000}, {(i + 1) * 100_000}) t(r)) "
            f"TO '{tmp_path}/p{i}.parquet' (FORMAT parquet)"
        )
    with elytra.connect(home=tmp_path / "home", backend="inline", progress=False) as s:
        p = s.read_parquet(f"{tmp_path}/p*.parquet")
        for key, want in (("u", "rows"), ("m", "states"), ("h", None)):
            pipeline = p.group_by(key).agg("sum(x) AS sx")
            plan, _ = s.driver.plan(pipeline, "j", tmp_path / "spill")
            stage = plan.stages[0]
            parts = stage.source.parts(1 << 30)
            assert len(parts) == 3
            assert group_exchange(stage, parts, 100_000, 256 << 20) == want, key
            # below the threshold even with one group per row: not sampled, not eager
            assert group_exchange(stage, parts, 1 << 40, 256 << 20) is None
            got = pipeline.collect().sort_by("sx").column("sx").to_pylist()
            sql = f"SELECT sum(x) AS sx FROM '{tmp_path}/p*.parquet' GROUP BY {key} ORDER BY sx"
            assert got == [v for (v,) in duckdb.sql(sql).fetchall()]


def test_a_worker_killed_mid_exchange_loses_nothing_and_leaves_no_files(
    sides: tuple[str, str], tmp_path: Path
) -> None:
    lglob, rglob = sides
    pool = elytra.LocalPool(2, ring_bytes=4 << 20)
    try:
        with elytra.connect(
            home=tmp_path / "home",
            backend=pool,
            broadcast_bytes=0,
            exchange_min_bytes=1,
            progress=False,
        ) as s:
            left = s.read_parquet(lglob).select("i", "s", "v")
            right = s.read_parquet(rglob).select("b", "s", "v").rename(v="w")
            joined = left.join(right, left_on=("i", "s"), right_on=("b", "s"), how="left")
            p = joined.group_by("i", "s").agg("count(*) AS n", "sum(w) AS t")
            job = p.submit()
            killed = 0
            deadline = time.monotonic() + 30
            while killed < 2 and time.monotonic() < deadline and not job.done():
                running = pool.running_tasks()
                if running:
                    os.kill(next(iter(running.values())), signal.SIGKILL)
                    killed += 1
                    time.sleep(0.2)
                time.sleep(0.005)
            assert killed, "no task was seen running"
            assert job.wait(120) == "succeeded", job.status().get("error")
            got = rows_of([tuple(r.values()) for r in job.result().to_pylist()])
            _no_partition_files(s)
    finally:
        pool.close()
    want = duckdb.sql(
        f"SELECT l.i, l.s, count(*), sum(r.w) FROM '{lglob}' l LEFT JOIN "
        f"(SELECT b, s, v AS w FROM '{rglob}') r ON l.i = r.b AND l.s = r.s GROUP BY l.i, l.s"
    ).fetchall()
    assert got == rows_of(want)


def test_a_cancel_mid_exchange_removes_the_jobs_partitions(
    sides: tuple[str, str], tmp_path: Path, one_worker_pool: elytra.LocalPool
) -> None:
    lglob, rglob = sides
    with elytra.connect(
        home=tmp_path / "home",
        backend=one_worker_pool,
        broadcast_bytes=0,
        exchange_min_bytes=1,
        progress=False,
    ) as s:
        left = s.read_parquet(lglob).select("i", "v")
        right = s.read_parquet(rglob).select("b", "v").rename(v="w")
        job = left.join(right, left_on="i", right_on="b", how="inner").submit()
        spill = Path(s.driver.settings.resolved_spill_dir())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not job.done():
            if list(spill.rglob("*-tasks/*/*.parquet")):  # a side's task wrote partitions
                break
            time.sleep(0.002)
        job.cancel()
        state = job.wait(60)
        assert state in ("cancelled", "succeeded")  # a fast job may finish first
        _no_partition_files(s)


def test_a_group_count_sample_is_kept_until_its_files_change(tmp_path: Path) -> None:
    # the planner keeps a sample's counts by its plan and its files' sizes and mtimes: the
    # same query plans again without a statement, a rewritten file is sampled afresh
    def write(unique: bool, rows: int) -> None:
        key = "r" if unique else "r % 100"
        for i in range(2):
            duckdb.sql(
                f"COPY (SELECT {key} AS k, r::DOUBLE AS x FROM range({i * rows}, "
                f"{(i + 1) * rows}) t(r)) TO '{tmp_path}/p{i}.parquet' (FORMAT parquet)"
            )

    write(True, 100_000)
    with elytra.connect(home=tmp_path / "home", backend="inline", progress=False) as s:
        pipeline = s.read_parquet(f"{tmp_path}/p*.parquet").group_by("k").agg("sum(x) AS sx")
        plan, _ = s.driver.plan(pipeline, "j", tmp_path / "spill")
        stage, parts = plan.stages[0], plan.stages[0].source.parts(1 << 30)
        assert group_exchange(stage, parts, 100_000, 256 << 20) == "rows"
        ran = []
        real = emsqrt_planning.run_statement

        def counted(*args: Any, **kwargs: Any) -> Any:
            ran.append(1)
            return real(*args, **kwargs)

        emsqrt_planning.run_statement = counted  # type: ignore[assignment]
        try:
            assert group_exchange(stage, parts, 100_000, 256 << 20) == "rows"
            assert not ran  # kept
            write(False, 100_001)  # other keys, another size
            assert group_exchange(stage, parts, 100_000, 256 << 20) is None
            assert ran == [1]
        finally:
            emsqrt_planning.run_statement = real  # type: ignore[assignment]
        got = pipeline.collect().sort_by("k").column("sx").to_pylist()
        sql = f"SELECT sum(x) AS sx FROM '{tmp_path}/p*.parquet' GROUP BY k ORDER BY k"
        assert got == [v for (v,) in duckdb.sql(sql).fetchall()]


def test_a_partial_aggregate_that_would_spill_partitions_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20,000 groups in each part of 100,000 rows pass their states through the exchange;
    when those groups' hash table would pass the kernel's share of the cap (here: a hash
    table made 1,000 times a state's width), the parts partition their rows instead (at 1e8
    rows, q3's 9.5e5 groups per part spilled in every task and took twice as long), and the
    answer stays DuckDB's."""
    for i in range(3):
        duckdb.sql(
            f"COPY (SELECT r % 20000 AS m, r::DOUBLE AS x "
            f"FROM range({i * 100_000}, {(i + 1) * 100_000}) t(r)) "
            f"TO '{tmp_path}/p{i}.parquet' (FORMAT parquet)"
        )
    with elytra.connect(home=tmp_path / "home", backend="inline", progress=False) as s:
        pipeline = s.read_parquet(f"{tmp_path}/p*.parquet").group_by("m").agg("sum(x) AS sx")
        plan, _ = s.driver.plan(pipeline, "j", tmp_path / "spill")
        stage = plan.stages[0]
        parts = stage.source.parts(1 << 30)
        assert group_exchange(stage, parts, 100_000, 256 << 20) == "states"
        monkeypatch.setattr(stages, "HASH_TABLE_FACTOR", 1000)
        assert group_exchange(stage, parts, 100_000, 256 << 20) == "rows"
        got = pipeline.collect().sort_by("m").column("sx").to_pylist()
    sql = f"SELECT sum(x) AS sx FROM '{tmp_path}/p*.parquet' GROUP BY m ORDER BY m"
    assert got == [v for (v,) in duckdb.sql(sql).fetchall()]


def test_a_group_count_sample_reads_the_first_rows_of_a_part_not_its_first_rows_out(
    tmp_path: Path,
) -> None:
    """A chain that keeps one row in 50 (each its own group) is sampled over the first
    65,536 rows of its part, not until 65,536 rows come out (that read the whole part: a
    semi join with a side run first made planning TPC-H q20 cost as much as a task); the
    kept rows are scaled to the part, and groups as many as the rows the aggregate gets
    partition those rows ("rows"), as without the filter."""
    rows = 400_000
    for i in range(2):
        duckdb.sql(
            f"COPY (SELECT r AS k, r::DOUBLE AS x FROM range({i * rows}, {(i + 1) * rows}) "
            f"t(r)) TO '{tmp_path}/p{i}.parquet' (FORMAT parquet, ROW_GROUP_SIZE 50000)"
        )
    with elytra.connect(home=tmp_path / "home", backend="inline", progress=False) as s:
        pipeline = (
            s.read_parquet(f"{tmp_path}/p*.parquet")
            .filter("k % 50 = 0")
            .group_by("k")
            .agg("sum(x) AS sx")
        )
        plan, _ = s.driver.plan(pipeline, "j", tmp_path / "spill")
        stage, parts = plan.stages[0], plan.stages[0].source.parts(1 << 30)
        texts: list[str] = []
        real = stages._sample_counts

        def seen(text: str, *args: Any) -> Any:
            texts.append(text)
            return real(text, *args)

        stages._sample_counts = seen  # type: ignore[assignment]
        try:
            assert group_exchange(stage, parts, 10_000, 256 << 20) == "rows"
            # 8,000 groups a part (not 400,000): their states stay below 1 MB, in the driver
            assert group_exchange(stage, parts, 1_000_000, 256 << 20) is None
        finally:
            stages._sample_counts = real  # type: ignore[assignment]
        assert '"op":"limit"' in texts[0], texts[0]  # the scan's first rows only
        assert '"n":65536' in texts[0], texts[0]
        got = pipeline.collect().sort_by("k").column("sx").to_pylist()
    sql = f"SELECT sum(x) FROM '{tmp_path}/p*.parquet' WHERE k % 50 = 0 GROUP BY k ORDER BY k"
    assert got == [v for (v,) in duckdb.sql(sql).fetchall()]
