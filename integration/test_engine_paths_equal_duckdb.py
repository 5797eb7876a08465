"""Every engine path issue 33 merged equals DuckDB, under caps and cancels. Break-test of what
issue 33 merged (row-group splits, kernel top-n, range sorts, worker-side
exchanges, integer sums as HUGEINT, ``MemCap``), from outside: real worker processes (one
local pool for the module), generated files of several row-group layouts, DuckDB the oracle.

Holes found (each test below failed on the code it was found in):
- a range sort of wide rows under a small cap failed at caps above one that worked (8 MiB
  passed, 12 MiB failed naming 19 MB, which failed again naming 40 MB): emsqrt's external
  sort had no room left to write a run while the scan's batch was in flight;
- a memory cap of 1e23 bytes was accepted (``platform up`` started; every task's DuckDB then
  refused its memory_limit and fell back to emsqrt's operators);
- error messages printed a cap as ``MemCap(7.1 MiB)-byte share``.

Held up (kept here as regressions): top-n per group as a bounded aggregate over int, string,
float (NaN, +-inf, -0.0, NULL) and date keys, n = 0 and n past the groups' sizes; sums past
int64; every join type partitioned on the workers with int32 x int64, float and string keys;
files holding columns named ``file_row_number``/``file_index`` in any case, split by row groups
and range-sorted; a file replaced between two runs of one pipeline; cancel mid range sort.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra

pytestmark = pytest.mark.timeout(600)
BIN = Path(sys.executable).parent

# every new path forced: row-group splits, worker-side exchanges, range sorts
FORCED = {
    "split_bytes": 0,
    "exchange_min_bytes": 1,
    "broadcast_bytes": 0,
    "range_sort_bytes": 0,
}


@pytest.fixture(scope="module")
def pool() -> Iterator[elytra.LocalPool]:
    p = elytra.LocalPool(2, ring_bytes=4 << 20)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four files of unlike row-group layouts (1,000-row groups, one group, 333-row groups,
    one row): int keys with NULLs, floats with NaN, +-inf, -0.0 and NULL, strings that look
    like a collation matters, dates, and int64 values near its limits (sums pass int64)."""
    d = tmp_path_factory.mktemp("b33data")
    rng = np.random.default_rng(3)
    for p, (rows, group) in enumerate([(12000, 1000), (8000, 8000), (10000, 333), (1, 1)]):
        f = rng.integers(-3, 4, rows).astype(float) / 2
        f[rng.random(rows) < 0.1] = -0.0
        f[rng.random(rows) < 0.05] = np.nan
        f[rng.random(rows) < 0.02] = np.inf
        f[rng.random(rows) < 0.02] = -np.inf
        big = rng.integers(2**62, 2**63 - 1, rows, dtype=np.int64)
        big[rng.random(rows) < 0.3] *= -1
        words = np.array(["a", "B", "é", "A", "", "b", "ä", "Z", "e\u0301"])
        table = pa.table(
            {
                "k": pa.array(
                    rng.integers(0, 50, rows).astype(np.int32), mask=rng.random(rows) < 0.03
                ),
                "f": pa.array(f, mask=rng.random(rows) < 0.05),
                "s": pa.array(
                    words[rng.integers(0, 9, rows)].tolist(), mask=rng.random(rows) < 0.05
                ),
                "d": pa.array(
                    (np.datetime64("2024-01-01") + rng.integers(0, 60, rows)).astype(
                        "datetime64[D]"
                    )
                ),
                "v": pa.array(rng.integers(-1000, 1000, rows), mask=rng.random(rows) < 0.05),
                "big": pa.array(big),
                "u": pa.array(np.arange(rows) + p * 100000),
            }
        )
        pq.write_table(table, d / f"p{p}.parquet", row_group_size=group)
    n = 3000
    right = pa.table(
        {
            "k2": pa.array(rng.integers(-5, 60, n).astype(np.int64), mask=rng.random(n) < 0.05),
            "f2": pa.array(
                rng.integers(-3, 4, n).astype(np.float32) / 2, mask=rng.random(n) < 0.05
            ),
            "s2": pa.array(np.array(["a", "B", "é", "A", "", "b"])[rng.integers(0, 6, n)].tolist()),
            "w": pa.array(np.arange(n)),
        }
    )
    pq.write_table(right, d / "right.parquet", row_group_size=700)
    return d


def _norm(v: Any) -> Any:
    if isinstance(v, Decimal):
        v = int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else float(f"{v:.9g}") + 0.0
    return v


def _rows(t: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(_norm(x) for x in r) for r in zip(*(c.to_pylist() for c in t.columns), strict=True)),
        key=repr,
    )


def _exact(t: pa.Table) -> list[tuple[Any, ...]]:
    """Rows in order, a float by its bits (-0.0 is not 0.0), every NaN one value."""
    cols = []
    for c in t.columns:
        if pa.types.is_floating(c.type):
            x = c.to_numpy(zero_copy_only=False).astype(np.float64)
            bits = np.where(np.isnan(x), -1, x.view(np.int64))
            cols.append(
                [None if v is None else int(b) for v, b in zip(c.to_pylist(), bits, strict=True)]
            )
        else:
            cols.append(c.to_pylist())
    return list(zip(*cols, strict=True))


Build = Callable[[Any, Any], Any]


def _right(s: Any, d: Path) -> Any:
    return s.read_parquet(str(d / "right.parquet"))


QUESTIONS: dict[str, tuple[Build, str]] = {
    "topn_float_desc": (
        lambda p, s: p.select("k", "f").top_k(3, "f DESC", per="k"),
        "SELECT k, f FROM T QUALIFY row_number() OVER (PARTITION BY k ORDER BY f DESC) <= 3",
    ),
    "topn_float_nulls_first": (
        lambda p, s: p.select("k", "f").top_k(4, "f ASC NULLS FIRST", per="k"),
        "SELECT k, f FROM T QUALIFY row_number() OVER (PARTITION BY k ORDER BY f NULLS FIRST) <= 4",
    ),
    "topn_string": (
        lambda p, s: p.select("k", "s").top_k(2, "s DESC", per="k"),
        "SELECT k, s FROM T QUALIFY row_number() OVER (PARTITION BY k ORDER BY s DESC) <= 2",
    ),
    "topn_int64_per_string": (
        lambda p, s: p.select("s", "big").top_k(5, "big", per="s"),
        "SELECT s, big FROM T QUALIFY row_number() OVER (PARTITION BY s ORDER BY big) <= 5",
    ),
    "topn_past_group_sizes": (
        lambda p, s: p.select("d", "v").top_k(1000, "v DESC", per="d"),
        "SELECT d, v FROM T QUALIFY row_number() OVER (PARTITION BY d ORDER BY v DESC) <= 1000",
    ),
    "topn_date_key": (
        lambda p, s: p.select("k", "d").top_k(2, "d DESC", per="k"),
        "SELECT k, d FROM T QUALIFY row_number() OVER (PARTITION BY k ORDER BY d DESC) <= 2",
    ),
    "topn_zero": (
        lambda p, s: p.select("k", "v").top_k(0, "v DESC", per="k"),
        "SELECT k, v FROM T WHERE false",
    ),
    "sums_past_int64": (
        lambda p, s: p.group_by("k").agg("sum(big) AS sb", "sum(v) AS sv", "count(*) AS n"),
        "SELECT k, sum(big) AS sb, sum(v) AS sv, count(*) AS n FROM T GROUP BY k",
    ),
    "float_group_keys": (
        lambda p, s: p.group_by("f").agg("count(*) AS n", "sum(v) AS sv", "median(v) AS m"),
        "SELECT f, count(*) AS n, sum(v) AS sv, median(v) AS m FROM T GROUP BY f",
    ),
    "string_date_groups": (
        lambda p, s: p.group_by("s", "d").agg("count(*) AS n", "sum(big) AS sb"),
        "SELECT s, d, count(*) AS n, sum(big) AS sb FROM T GROUP BY s, d",
    ),
    # One left row in 32: the few key values of each side make the join near a cross product
    # (all 30,000 x 3,000 rows gave 10.6 M rows: a minute of comparing them in Python); the
    # 939 rows kept, from all four files, still hold 62 -0.0, 49 NaN, 17 +inf, 18 -inf, 41 NULL.
    "float_join_keys": (
        lambda p, s: (
            p.filter("u % 32 = 0")
            .select("f", "u")
            .join(_right(s, p.d).select("f2", "w"), left_on="f", right_on="f2", how="inner")
            .select("u", "w")
        ),
        "SELECT u, w FROM (SELECT * FROM T WHERE u % 32 = 0) T JOIN R ON T.f = R.f2",
    ),
    "string_full_join": (
        lambda p, s: (
            p.filter("u % 7 = 0")
            .select("s", "u")
            .join(
                _right(s, p.d).filter("w % 5 = 0").select("s2", "w"),
                left_on="s",
                right_on="s2",
                how="full",
            )
            .select("u", "w")
        ),
        "SELECT u, w FROM (SELECT * FROM T WHERE u % 7 = 0) T "
        "FULL JOIN (SELECT * FROM R WHERE w % 5 = 0) R ON T.s = R.s2",
    ),
}
for _how in ("inner", "left", "right", "full", "semi", "anti"):
    _cols = {
        "semi": "T.k, T.u",
        "anti": "T.k, T.u",
        "right": "coalesce(T.k, R.k2), T.u, R.w",
        "full": "coalesce(T.k, R.k2), T.u, R.w",
    }.get(_how, "T.k, T.u, R.w")
    _sel = ("k", "u") if _how in ("semi", "anti") else ("k", "u", "w")
    QUESTIONS[f"join_{_how}_int32_x_int64"] = (
        lambda p, s, how=_how, sel=_sel: (
            p.select("k", "u")
            .join(_right(s, p.d).select("k2", "w"), left_on="k", right_on="k2", how=how)
            .select(*sel)
        ),
        f"SELECT {_cols} FROM T {'FULL' if _how == 'full' else _how.upper()} JOIN R ON T.k = R.k2",
    )


class _Src:
    """A pipeline over the data files that knows their folder (for the join's right side)."""

    def __init__(self, pipeline: Any, d: Path) -> None:
        self.pipeline, self.d = pipeline, d

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_every_new_path_forced_equals_duckdb(
    pool: elytra.LocalPool, data: Path, tmp_path: Path, question: str
) -> None:
    build, sql = QUESTIONS[question]
    con = duckdb.connect()
    con.execute(f"CREATE VIEW T AS SELECT * FROM read_parquet('{data}/p*.parquet')")
    con.execute(f"CREATE VIEW R AS SELECT * FROM '{data}/right.parquet'")
    with elytra.connect(
        home=tmp_path / "home", backend=pool, workers=2, progress=False, **FORCED
    ) as s:
        got = build(_Src(s.read_parquet(f"{data}/p*.parquet"), data), s).collect()
        assert s.driver.last is not None
        assert s.driver.last.tasks_total >= 2
    assert _rows(got) == _rows(con.sql(sql).to_arrow_table())
    if question == "sums_past_int64":
        assert got.schema.field("sb").type == pa.decimal128(38, 0)
        assert max(abs(int(x)) for x in got.column("sb").to_pylist() if x is not None) > 2**63
    assert not list((tmp_path / "home").rglob("*.parquet"))  # exchanges and ranges removed


@pytest.mark.parametrize(
    "name", ["file_row_number", "FILE_ROW_NUMBER", "file_index", "File_Index", "filename"]
)
def test_file_columns_named_like_duckdbs_virtual_ones(
    pool: elytra.LocalPool, tmp_path: Path, name: str
) -> None:
    """A real column by the name of DuckDB's row-position columns, in files split by row
    groups and range-sorted: read as the file's own values, ties still in input order."""
    rng = np.random.default_rng(1)
    for p, (rows, group) in enumerate([(30000, 3000), (10000, 10000)]):
        t = pa.table(
            {
                "k": pa.array(rng.integers(0, 5, rows)),
                name: pa.array(rng.integers(0, 3, rows)),
                "u": pa.array(np.arange(rows) + p * 100000),
            }
        )
        pq.write_table(t, tmp_path / f"x{p}.parquet", row_group_size=group)
    src = f"read_parquet('{tmp_path}/x*.parquet')"
    con = duckdb.connect()
    with elytra.connect(
        home=tmp_path / "home", backend=pool, workers=2, progress=False, **FORCED
    ) as s:
        p = s.read_parquet(f"{tmp_path}/x*.parquet")
        got = p.sort("k", f'"{name}" DESC').collect()
        want = con.sql(f'SELECT * FROM {src} ORDER BY k, "{name}" DESC, u').to_arrow_table()
        assert _exact(got) == _exact(want)
        got = p.group_by(name).agg("count(*) AS n", "sum(u) AS s").collect()
        want = con.sql(f'SELECT "{name}", count(*), sum(u) FROM {src} GROUP BY 1').to_arrow_table()
        assert _rows(got) == _rows(want)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three files of 1,500 rows of 20-24 KB (94 MB in Arrow), row groups of 500."""
    d = tmp_path_factory.mktemp("wide")
    for p in range(3):
        duckdb.sql(
            f"""COPY (SELECT (i * 7919 % 1000)::INT AS k,
                       repeat(chr(65 + (i % 26)::INT), 20000 + (i % 5) * 1000) AS s, i AS u
                FROM range({p * 1500}, {(p + 1) * 1500}) t(i))
                TO '{d}/w{p}.parquet' (FORMAT parquet, ROW_GROUP_SIZE 500)"""
        )
    return d


@pytest.mark.parametrize("cap", ["8MiB", "12MiB"])
def test_a_range_sort_of_wide_rows_under_a_small_cap(
    pool: elytra.LocalPool, wide: Path, tmp_path: Path, cap: str
) -> None:
    """Failed at 12 MiB ("sort: cannot hold a sorted run while writing it ... raise the cap
    to at least 18735527 bytes", and that cap failed again) where 8 MiB passed."""
    home = tmp_path / "home"
    with elytra.connect(
        home=home,
        backend=pool,
        workers=2,
        progress=False,
        worker_mem_cap=cap,
        driver_mem_cap=cap,
        **FORCED,
    ) as s:
        got = s.read_parquet(f"{wide}/*.parquet").select("k", "u", "s").sort("k DESC").collect()
        assert s.driver.last is not None
        assert s.driver.last.range_sort is not None
    want = duckdb.sql(
        f"SELECT k, u, s FROM read_parquet('{wide}/*.parquet') ORDER BY k DESC, u"
    ).to_arrow_table()
    assert got.column("u").to_pylist() == want.column("u").to_pylist()
    assert got.column("s").equals(want.column("s"))
    assert not [p for p in (home / "spill").rglob("*") if p.is_file()]


def test_a_cancel_mid_range_sort_leaves_no_files(
    pool: elytra.LocalPool, wide: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with elytra.connect(
        home=home, backend=pool, workers=2, progress=False, worker_mem_cap="12MiB", **FORCED
    ) as s:
        job = s.read_parquet(f"{wide}/*.parquet").sort("k DESC").submit()
        # cancel as the first task is done (the sampling round), while the range partitions
        # are written: a fixed sleep raced the whole job once the scheduler got faster
        deadline = time.monotonic() + 30
        while job.record.get("tasks", {}).get("done", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        job.cancel()
        assert job.wait() == "cancelled"
        # the pool goes on: the same sort after the cancel is whole
        assert s.read_parquet(f"{wide}/*.parquet").sort("k DESC").count() == 4500
    assert not [p for p in (home / "spill").rglob("*") if p.is_file()]


def test_a_file_replaced_between_runs_of_one_pipeline(
    pool: elytra.LocalPool, tmp_path: Path
) -> None:
    """The row-group split is made at each run from the file as it is then: more rows, one
    row group, an extra column, no rows."""
    path = tmp_path / "f.parquet"

    def write(rows: int, group: int, extra: bool = False) -> None:
        more = ", 1 AS x" if extra else ""
        t = duckdb.sql(
            f"SELECT i AS id, i::BIGINT AS v{more} FROM range({rows}) t(i)"
        ).to_arrow_table()
        pq.write_table(t, tmp_path / "tmp.parquet", row_group_size=group)
        os.replace(tmp_path / "tmp.parquet", path)

    with elytra.connect(
        home=tmp_path / "home", backend=pool, workers=2, progress=False, split_bytes=0
    ) as s:
        write(40000, 5000)
        p = s.read_parquet(str(path)).agg("count(*) AS n", "sum(v) AS s")
        assert p.collect().to_pylist() == [{"n": 40000, "s": Decimal(799980000)}]
        for rows, group, extra in [
            (80000, 5000, False),
            (40000, 40000, False),
            (10000, 1000, True),
            (0, 5000, False),
        ]:
            write(rows, group, extra)
            want = rows * (rows - 1) // 2 if rows else None
            assert p.collect().to_pylist() == [
                {"n": rows, "s": None if want is None else Decimal(want)}
            ]


def test_a_memory_cap_past_the_largest_stops_platform_up_naming_it(tmp_path: Path) -> None:
    """``ELYTRA_WORKER_MEM_CAP=99999999999999999999999`` started the platform; every task's
    DuckDB then refused its memory_limit ("Memory value out of range") and ran the operators."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "ELYTRA_"))}
    done = subprocess.run(
        [str(BIN / "platform"), "up", "--port", "0", "--home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        env=env | {"LAKE_FLIGHT_PORT": "0", "ELYTRA_WORKER_MEM_CAP": "99999999999999999999999"},
        timeout=150,
        check=False,
        cwd=tmp_path,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-2000:]
    assert "ELYTRA_WORKER_MEM_CAP" in out, out[-2000:]
    assert "the largest is 2**62 - 1 bytes" in out, out[-2000:]
    assert "Traceback" not in out, out[-3000:]
