"""Stages over exchanges: the chain above a large x large join runs in the partition's task.

Two or three big x big joins stacked (each a hash exchange: nothing is broadcast), with a
group-by, a top-k or DISTINCT above, through ``session.sql`` and through pipelines, compared
with DuckDB over the same files on the inline backend and on a local pool with small caps;
and the driver receives only the reduced rows (the partial states or each task's top rows),
never the joined rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import elytra

from .conftest import read_tables, rows_of, views_oracle

# forced distributed paths: every part its own task, no broadcast, every group-by exchanged
_FORCED = {
    "task_bytes": 1,
    "split_bytes": 1,
    "broadcast_bytes": 0,
    "exchange_min_bytes": 1,
    "exchange_partitions": 3,
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four tables whose keys link them in a chain (f -> d1 -> d2 -> d3), NULL-heavy and
    skewed (key 1 holds about a third of f's rows), each in two files of small row groups;
    the three joins give about 40,000 rows."""
    root = tmp_path_factory.mktemp("stacked")
    con = duckdb.connect()
    con.execute("SELECT setseed(0.17)")
    specs = {
        "f": (
            20000,
            "CASE WHEN random() < 0.1 THEN NULL WHEN random() < 0.3 THEN 1 "
            "ELSE (random() * 900)::INTEGER END AS a, (random() * 50)::INTEGER AS b, "
            "round(random() * 100, 2)::DECIMAL(10, 2) AS v, 'p' || (random() * 7)::INTEGER AS s",
        ),
        "d1": (
            1000,
            "range::INTEGER AS a, CASE WHEN random() < 0.1 THEN NULL "
            "ELSE (random() * 300)::BIGINT END AS c, round(random() * 10, 1) AS w",
        ),
        "d2": (
            400,
            "(range % 350)::BIGINT AS c, (random() * 12)::INTEGER AS g, "
            "CASE WHEN random() < 0.2 THEN NULL ELSE 'q' || (random() * 4)::INTEGER END AS t",
        ),
        "d3": (28, "(range % 14)::INTEGER AS g, (random() * 5)::INTEGER AS h"),
    }
    out = {}
    for name, (rows, cols) in specs.items():
        d = root / name
        d.mkdir()
        for i in range(2):
            con.execute(
                f"COPY (SELECT {cols} FROM range({rows})) TO '{d}/p{i}.parquet' "
                "(FORMAT parquet, ROW_GROUP_SIZE 1024)"
            )
        out[name] = d
    return out


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[elytra.Session]:
    with elytra.connect(
        home=tmp_path_factory.mktemp("home"), backend="inline", progress=False, **_FORCED
    ) as s:
        yield s


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[elytra.Session]:
    """Two workers under small caps (the joins above spill their partitions' rows)."""
    with elytra.connect(
        home=tmp_path_factory.mktemp("home"),
        backend="local",
        workers=2,
        worker_mem_cap="32MiB",
        progress=False,
        **_FORCED,
    ) as s:
        yield s


def _query(rng: random.Random) -> tuple[str, bool]:
    """A seeded query of two or three stacked joins with a reduction above; whether its
    ORDER BY fixes the row order."""
    joins = [
        "FROM f JOIN d1 ON f.a = d1.a",
        f"{rng.choice(['JOIN', 'LEFT JOIN'])} d2 ON d1.c = d2.c",
    ]
    if rng.random() < 0.6:
        joins.append(f"{rng.choice(['JOIN', 'LEFT JOIN'])} d3 ON d2.g = d3.g")
    body = (
        " ".join(joins) + " " + rng.choice(["", "WHERE f.v > 20", "WHERE d1.w < 8 OR f.s = 'p3'"])
    )
    shape = rng.choice(["group", "group_key", "topk", "distinct", "global"])
    if shape == "group":
        key = rng.choice(["d2.t", "f.s", "d2.g, f.s"])
        return (
            f"SELECT {key}, count(*) AS n, sum(f.v) AS sv, min(d1.w) AS mw, "
            f"max(d2.g) AS mg, avg(f.b) AS ab {body} GROUP BY {key}",
            False,
        )
    if shape == "group_key":  # grouped by the last join's key
        return f"SELECT d1.c, count(*) AS n, sum(f.v) AS sv {body} GROUP BY d1.c", False
    if shape == "topk":
        return (
            f"SELECT f.a, d1.c, f.v, d1.w, f.b {body} "
            f"ORDER BY f.v DESC, f.a, d1.c, d1.w, f.b LIMIT {rng.choice([5, 40])}",
            True,
        )
    if shape == "distinct":
        return f"SELECT DISTINCT f.s, d2.t {body} ORDER BY f.s, d2.t NULLS LAST", True
    return f"SELECT count(*) AS n, sum(f.v) AS sv, count(d2.t) AS nt {body}", False


def _same(got: object, sql: str, con: duckdb.DuckDBPyConnection, ordered: bool) -> None:
    want = con.execute(sql)
    names = [d[0] for d in want.description]
    assert got.column_names == names, sql  # type: ignore[attr-defined]
    expected = want.fetchall()
    rows = [tuple(r.values()) for r in got.to_pylist()]  # type: ignore[attr-defined]
    if ordered:
        assert [tuple(map(_n, r)) for r in rows] == [tuple(map(_n, r)) for r in expected], sql
    else:
        assert rows_of(rows) == rows_of(expected), sql


def _n(v: object) -> object:
    return rows_of([(v,)])[0][0]


@pytest.mark.parametrize("seed", range(10))
def test_stacked_joins_with_a_reduction_equal_duckdb(
    seed: int, tables: dict[str, Path], inline: elytra.Session, local: elytra.Session
) -> None:
    sql, ordered = _query(random.Random(seed))
    session = local if seed % 2 else inline
    p = session.sql(sql, read_tables(session, tables))
    shown = p.explain()
    assert "over the partitions of exchange1" in shown, shown  # a stage over a stacked join
    _same(p.collect(), sql, views_oracle(tables), ordered)


def test_stacked_pipelines_with_a_top_k_equal_duckdb(
    tables: dict[str, Path], local: elytra.Session
) -> None:
    t = read_tables(local, tables)
    joined = (
        t["f"]
        .filter("v > 10")
        .join(t["d1"], on="a")
        .join(t["d2"], on="c")
        .join(t["d3"], on="g")
        .with_columns(vw="v * w")
    )
    got = joined.sort("vw", "a", "c", "g", "h", "b", descending=True).limit(7).collect()
    sql = (
        "SELECT * FROM (SELECT *, v * w AS vw FROM f JOIN d1 USING (a) JOIN d2 USING (c) "
        "JOIN d3 USING (g) WHERE v > 10) "
        "ORDER BY vw DESC, a DESC, c DESC, g DESC, h DESC, b DESC LIMIT 7"
    )
    _same(
        got.select(["a", "b", "v", "s", "c", "w", "g", "t", "h", "vw"]),
        "SELECT a, b, v, s, c, w, g, t, h, vw FROM (" + sql + ")",
        views_oracle(tables),
        True,
    )


def test_the_driver_receives_only_the_reduced_rows(
    tables: dict[str, Path], local: elytra.Session
) -> None:
    """Three stacked exchanges under a group-by of 5 groups: the joined rows (tens of
    thousands) stay on the workers; only each task's partial states reach the driver (on
    main, before stages over exchanges, every joined row came to the driver's merge)."""
    sql = (
        "SELECT d3.h, count(*) AS n, sum(f.v) AS sv FROM f JOIN d1 ON f.a = d1.a "
        "JOIN d2 ON d1.c = d2.c JOIN d3 ON d2.g = d3.g GROUP BY d3.h"
    )
    con = views_oracle(tables)
    joined = con.execute(
        "SELECT count(*) FROM f JOIN d1 ON f.a = d1.a JOIN d2 ON d1.c = d2.c JOIN d3 ON d2.g = d3.g"
    ).fetchone()
    assert joined is not None
    assert joined[0] > 20_000
    p = local.sql(sql, read_tables(local, tables))
    shown = p.explain()
    assert "stage 6 (partial aggregate) over the partitions of exchange2" in shown, shown
    _same(p.collect(), sql, con, False)
    stats = local.driver.last
    assert stats is not None
    # at most every group from each of the last stage's 3 partition tasks
    assert 0 < stats.driver_rows_in <= 5 * 3, stats


def test_a_global_aggregate_over_an_empty_join_is_one_row(
    tables: dict[str, Path], inline: elytra.Session
) -> None:
    """No partition has rows on both sides: one task still runs the partial aggregate, so
    the merge sees an empty state, not no input."""
    sql = (
        "SELECT count(*) AS n, sum(f.v) AS sv FROM f JOIN d1 ON f.a = d1.a "
        "JOIN d2 ON d1.c = d2.c WHERE f.v < 0"
    )
    _same(inline.sql(sql, read_tables(inline, tables)).collect(), sql, views_oracle(tables), False)


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_a_group_by_on_the_join_keys_runs_whole_in_the_partition_tasks(
    backend: str, tables: dict[str, Path], inline: elytra.Session, local: elytra.Session
) -> None:
    """Grouped by the last exchange's key (NULLs and COUNT DISTINCT included): every group
    is in one partition, so its task runs the whole aggregate and the driver only
    concatenates the groups (no states, no second exchange)."""
    session = local if backend == "local" else inline
    sql = (
        "SELECT d1.c, count(*) AS n, sum(f.v) AS sv, count(DISTINCT d2.g) AS dg "
        "FROM f JOIN d1 ON f.a = d1.a LEFT JOIN d2 ON d1.c = d2.c GROUP BY d1.c"
    )
    con = views_oracle(tables)
    p = session.sql(sql, read_tables(session, tables))
    shown = p.explain()
    assert "stage 4 (whole aggregate per partition, by the join keys)" in shown, shown
    _same(p.collect(), sql, con, False)
    groups = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
    stats = session.driver.last
    assert stats is not None
    assert groups is not None
    assert stats.driver_rows_in == groups[0]


def test_exchange_partitions_grow_with_the_sources(
    tables: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``exchange_partitions``, an exchange gets a partition per
    ``EXCHANGE_PART_BYTES`` of the stages it joins (at least twice the workers), so that a
    partition's task holds a bounded share of the rows; the answer stays DuckDB's."""
    from elytra import driver as drv

    f = sum(p.stat().st_size for p in tables["f"].glob("*.parquet"))
    d1 = sum(p.stat().st_size for p in tables["d1"].glob("*.parquet"))
    monkeypatch.setattr(drv, "EXCHANGE_PART_BYTES", (f + d1) // 7 + 1)  # 7 parts
    forced = {k: v for k, v in _FORCED.items() if k != "exchange_partitions"}
    sql = "SELECT d1.c, count(*) AS n, sum(f.v) AS sv FROM f JOIN d1 ON f.a = d1.a GROUP BY d1.c"
    with elytra.connect(
        home=tmp_path / "home", backend="local", workers=2, progress=False, **forced
    ) as s:
        text = s.sql(sql, read_tables(s, tables)).explain()
        got = s.sql(sql, read_tables(s, tables)).collect()
    assert "rows hash-partitioned into 7 parts" in text, text  # not 2 * 2 workers
    _same(got, sql, views_oracle(tables), False)
