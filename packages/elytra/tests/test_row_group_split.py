"""A source of fewer parts than workers (one lake chunk, one file) is cut by Parquet row
groups, so that every worker has a task; every question still gives DuckDB's answer."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra.browser.api import read_chunk
from elytra.browser.tasks import browser_task
from elytra.chunkrefs import chunk_ref, resolve_chunks
from elytra.sources import Part, balance_parts, split_row_groups
from lake import LakeNode, lake_settings
from lake.testing import ingest

from .conftest import rows_of

SECRET = "s" * 40
ROWS = 40_000


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Parquet file of 8 row groups (amounts in quarters: float sums exact in any order)."""
    path = tmp_path_factory.mktemp("split") / "one.parquet"
    table = duckdb.sql(
        f"""SELECT i AS id, (i % 13)::INTEGER AS k, (i * 37 % 4000) / 4 AS amount,
                   CASE WHEN i % 11 = 0 THEN NULL ELSE 'u' || (i % 97) END AS who
            FROM range({ROWS}) t(i)"""
    ).to_arrow_table()
    pq.write_table(table, path, row_group_size=5000)
    assert pq.read_metadata(path).num_row_groups == 8
    return path


QUESTIONS = {
    "group_by": (
        lambda p: p.group_by("k").agg("count(*) AS n", "sum(amount) AS s", "avg(id) AS a"),
        "SELECT k, count(*) AS n, sum(amount) AS s, avg(id) AS a FROM T GROUP BY k",
    ),
    "filter_count": (
        lambda p: p.filter("amount > 500").agg("count(*) AS n"),
        "SELECT count(*) AS n FROM T WHERE amount > 500",
    ),
    "rows": (
        lambda p: p.filter("who = 'u3'").select("id", "who"),
        "SELECT id, who FROM T WHERE who = 'u3'",
    ),
    "sort_limit": (
        lambda p: p.with_columns(x="amount * 2").sort("x DESC", "id").limit(25).select("id", "x"),
        "SELECT id, amount * 2 AS x FROM T ORDER BY x DESC, id LIMIT 25",
    ),
    "distinct": (
        lambda p: p.select("who").distinct(),
        "SELECT DISTINCT who FROM T",
    ),
    "median": (
        lambda p: p.group_by("k").agg("median(amount) AS m"),
        "SELECT k, median(amount) AS m FROM T GROUP BY k",
    ),
}


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_one_file_is_cut_by_row_groups_and_equals_duckdb(
    grouped: Path, tmp_path: Path, pool: elytra.LocalPool, question: str
) -> None:
    build, sql = QUESTIONS[question]
    with elytra.connect(
        home=tmp_path / "home", backend=pool, workers=2, split_bytes=0, progress=False
    ) as s:
        got = build(s.read_parquet(grouped)).collect()
        assert s.driver.last is not None
        assert s.driver.last.tasks_total >= 2  # one file, two workers: two tasks at least
    want = duckdb.sql(sql.replace("FROM T", f"FROM '{grouped}'")).fetchall()
    if question == "sort_limit":  # ordered: compared row for row
        assert [tuple(r.values()) for r in got.to_pylist()] == [tuple(w) for w in want]
    else:
        assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)


def test_below_split_bytes_a_file_stays_one_task(
    grouped: Path, tmp_path: Path, pool: elytra.LocalPool
) -> None:
    size = grouped.stat().st_size
    with elytra.connect(
        home=tmp_path / "home", backend=pool, workers=2, split_bytes=size + 1, progress=False
    ) as s:
        assert s.read_parquet(grouped).count() == ROWS
        assert s.driver.last is not None
        assert s.driver.last.tasks_total == 1
    with elytra.connect(
        home=tmp_path / "home", backend=pool, workers=2, split_bytes=size, progress=False
    ) as s:
        assert s.read_parquet(grouped).count() == ROWS
        assert s.driver.last is not None
        assert s.driver.last.tasks_total == 2


def test_the_cut_covers_every_row_group_once_in_order(tmp_path: Path) -> None:
    paths = []
    for n, groups in enumerate((1, 6, 3)):
        path = tmp_path / f"f{n}.parquet"
        table = pa.table({"v": pa.array(range(groups * 100))})
        pq.write_table(table, path, row_group_size=100)
        paths.append(str(path))
    parts = [Part((p,), Path(p).stat().st_size) for p in paths]
    for tasks in (4, 5, 7, 10, 50):
        cut = split_row_groups(parts, tasks, 0)
        assert len(cut) == min(tasks, 10)
        seen = [
            (f, i)
            for part in cut
            for f, rg in zip(part.files, part.ranges(), strict=True)
            for i in range(*(rg or (0, pq.read_metadata(f).num_row_groups)))
        ]
        assert seen == [(p, i) for p, g in zip(paths, (1, 6, 3), strict=True) for i in range(g)]
        # sizes balanced: no part more than twice another's (every row group is alike)
        sizes = [p.bytes for p in cut]
        assert max(sizes) <= 2.05 * min(sizes), sizes
    assert split_row_groups(parts, 3, 0) == parts  # already one part per worker
    assert split_row_groups(parts, 2, 0) == parts
    assert split_row_groups(parts[:1], 4, 0) == parts[:1]  # one row group: nothing to cut
    big = sum(p.bytes for p in parts) + 1
    assert split_row_groups(parts, 8, big) == parts  # too small to pay for the tasks


def _uneven(tmp_path: Path) -> list[Part]:
    """Four files of 6, 6, 6 and 2 row groups of 100 rows alike: grouped two by two they
    would give one worker 12 groups and the other 8."""
    parts = []
    for n, groups in enumerate((6, 6, 6, 2)):
        path = tmp_path / f"u{n}.parquet"
        pq.write_table(pa.table({"v": pa.array(range(groups * 100))}), path, row_group_size=100)
        parts.append(Part((str(path),), path.stat().st_size))
    return parts


def _groups_in(part: Part) -> int:
    return sum(
        len(range(*(rg or (0, pq.read_metadata(f).num_row_groups))))
        for f, rg in zip(part.files, part.ranges(), strict=True)
    )


def test_uneven_parts_are_balanced_over_the_workers(tmp_path: Path) -> None:
    files = _uneven(tmp_path)
    pairs = [Part(a.files + b.files, a.bytes + b.bytes) for a, b in (files[:2], files[2:])]
    total = sum(p.bytes for p in files)
    # at most half the whole a task: one task per worker, of half the bytes each
    for given in (pairs, files):
        cut = balance_parts(given, 2, total // 2 + 1)
        assert len(cut) == 2
        seen = [
            (f, i)
            for part in cut
            for f, rg in zip(part.files, part.ranges(), strict=True)
            for i in range(*(rg or (0, pq.read_metadata(f).num_row_groups)))
        ]
        groups = (6, 6, 6, 2)
        assert seen == [
            (p.files[0], i) for p, g in zip(files, groups, strict=True) for i in range(g)
        ]
        per_part = [_groups_in(p) for p in cut]
        assert per_part == [10, 10]
        # a file a part reads whole is named without a range (DuckDB reads those in one scan)
        assert cut[0].ranges()[0] is None
    # at most a quarter: two tasks per worker, of five row groups each
    quarter = balance_parts(files, 2, total // 4 + 1)
    assert [_groups_in(p) for p in quarter] == [5, 5, 5, 5]
    even = balance_parts(pairs, 2, total // 2 + 1)
    assert balance_parts(even, 2, total // 2 + 1) == even  # already even: kept
    assert balance_parts(files, 1, 1) == files  # one worker: nothing to balance
    many = [p for p in quarter for _ in range(2)]
    assert balance_parts(many, 2, 1) == many  # four parts and more per worker: the scheduler's


def test_parts_are_balanced_only_where_a_task_cap_holds_twice_task_bytes(tmp_path: Path) -> None:
    """Fewer, larger tasks cost less, but a task's memory grows with what it reads, and
    under a small cap DuckDB ran out over parts cut into ranges (G1's q3 at 64 MiB): there
    the parts stay as grouped, whole chunks."""
    mib = 1 << 20
    for cap, most in ((256, 128), (128, 128), (64, None), (16, None)):
        with elytra.connect(
            home=tmp_path / "home",
            backend="local",
            workers=2,
            task_bytes=64 * mib,
            worker_mem_cap=cap * mib,
            progress=False,
        ) as s:
            assert s.driver._most_task_bytes() == (most and most * mib), cap


def test_balanced_parts_equal_duckdb_on_the_pool(tmp_path: Path, pool: elytra.LocalPool) -> None:
    parts = _uneven(tmp_path)
    with elytra.connect(home=tmp_path / "home", backend=pool, workers=2, progress=False) as s:
        src = s.read_parquet(str(tmp_path / "u*.parquet"))
        got = src.filter("v % 3 = 1").agg("count(*) AS n", "sum(v) AS s").collect()
        assert s.driver.last is not None
        assert s.driver.last.tasks_total == 2  # four files, each worker one task of ten groups
    files = [p.files[0] for p in parts]
    want = duckdb.sql(
        f"SELECT count(*) AS n, sum(v) AS s FROM read_parquet({files}) WHERE v % 3 = 1"
    ).fetchall()
    assert [tuple(r.values()) for r in got.to_pylist()] == want


@pytest.fixture
def one_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lake home holding ``sales``: one chunk of several row groups (integer amounts: sums
    are exact in any order)."""
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    home = tmp_path / "home"
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"""COPY (SELECT i AS id, (i % 13)::INTEGER AS grp, (i * 37 % 100000) AS amount
            FROM range(600000) t(i)) TO '{csv}' (HEADER)"""
    )
    node = LakeNode(lake_settings(None, home=home, chunk_bytes=16 << 20))
    try:
        ingest(node, csv, "sales")
    finally:
        node.stop()
    return home


def test_a_one_chunk_dataset_runs_on_both_workers(
    one_chunk: Path, pool: elytra.LocalPool, tmp_path: Path
) -> None:
    pool.wait_ready()
    with elytra.connect(
        home=one_chunk, backend=pool, workers=2, split_bytes=0, progress=False
    ) as s:
        sales = s.dataset("sales")
        (source,) = sales.sources.values()
        (chunk,) = source.chunks  # type: ignore[attr-defined]
        assert pq.read_metadata(chunk[1]).num_row_groups >= 2
        job = sales.group_by("grp").agg("sum(amount) AS s", "count(*) AS n").submit()
        got = job.result()
        tasks = job.record["timeline"]["tasks"]
        stage0 = [t for t in tasks.values() if t["stage"] == 0]
        assert len(stage0) >= 2
        assert len({t["worker"] for t in stage0}) == 2  # both workers had one
        want = duckdb.sql(
            f"SELECT grp, sum(amount) AS s, count(*) AS n FROM '{chunk[1]}' GROUP BY grp"
        ).fetchall()
        assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)


def test_a_split_task_names_its_chunk_by_hash_and_keeps_its_range(
    one_chunk: Path, tmp_path: Path
) -> None:
    """A task placed on another node names the chunk by hash; its plan carries the row groups,
    which the node's path rewrite keeps (planned only: no pool starts)."""
    from elytra.driver import _chunks_by_name

    with elytra.connect(
        home=one_chunk, backend="local", workers=2, split_bytes=0, progress=False
    ) as s:
        p = s.dataset("sales").filter("amount > 10")
        _, tasks = s.driver.plan(p, "j", tmp_path, _chunks_by_name(p.sources))
        (source,) = p.sources.values()
        ((sha, path, _),) = source.chunks  # type: ignore[attr-defined]
    assert len(tasks) == 2
    ranges = []
    for task in tasks:
        assert task.files == (chunk_ref(sha),)
        local = resolve_chunks(task, lambda _: path, None, tmp_path)
        scan = json.loads(local.plan)
        while scan["op"] != "scan":
            scan = scan["input"]
        assert Path(scan["path"]).samefile(path)  # a link to the lake's copy, in the job's dir
        ranges.append(tuple(scan["row_groups"]))
    groups = pq.read_metadata(path).num_row_groups
    assert sorted(ranges)[0][0] == 0
    assert sorted(ranges)[-1][1] == groups
    assert sorted(ranges)[0][1] == sorted(ranges)[1][0]


def test_a_split_browser_task_reads_only_its_row_groups(grouped: Path, tmp_path: Path) -> None:
    with elytra.connect(
        home=tmp_path / "home", backend="local", workers=3, split_bytes=0, progress=False
    ) as s:
        p = s.read_parquet(grouped).filter("k < 5").group_by("k").agg("count(*) AS n")
        plan, tasks = s.driver.plan(p, "j", tmp_path)
    assert len(tasks) == 3
    total = 0
    for task in tasks:
        bt = browser_task(plan.stages[0], task)
        assert bt is not None
        assert bt.scan.row_groups is not None
        first, stop = bt.scan.row_groups
        rows = pa.ipc.open_stream(read_chunk(bt.scan)).read_all()
        want = pq.ParquetFile(grouped).read_row_groups(list(range(first, stop)))
        assert rows.num_rows == want.num_rows
        assert rows.column("k").to_pylist() == want.column("k").to_pylist()
        assert bt.row_bounds() == (0, want.num_rows)
        total += rows.num_rows
    assert total == ROWS
