"""Pipelines give DuckDB's answer over the same Parquet parts (fixed cases and generated ones)."""

from __future__ import annotations

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
from elytra import PipelineError

from .conftest import rows_of, same_rows


def _oracle(parts: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{parts}/*.parquet')")
    return rows_of(con.execute(sql).fetchall())


def _ours(p: elytra.Pipeline) -> list[tuple[Any, ...]]:
    table = p.collect()
    return rows_of([tuple(r.values()) for r in table.to_pylist()])


CASES = [
    (lambda p: p.filter("v > 500"), "SELECT * FROM t WHERE v > 500"),
    (
        lambda p: p.with_columns(w="v * 2 + k").select("k", "w"),
        "SELECT k, v * 2 + k AS w FROM t",
    ),
    (
        lambda p: p.group_by("k").agg(
            "count(*) AS n",
            "count(v) AS nv",
            "sum(v) AS sv",
            "avg(f) AS af",
            "min(s) AS mn",
            "max(f) AS mx",
            "avg(v) AS av",
        ),
        "SELECT k, count(*) n, count(v) nv, sum(v) sv, avg(f) af, min(s) mn, max(f) mx, "
        "avg(v) av FROM t GROUP BY k",
    ),
    (
        lambda p: p.agg("count(*) AS n", "sum(v) AS sv", "avg(f) AS af"),
        "SELECT count(*) n, sum(v) sv, avg(f) af FROM t",
    ),
    (
        lambda p: p.filter("k = 100").agg("count(*) AS n", "sum(v) AS sv"),
        "SELECT count(*) n, sum(v) sv FROM t WHERE k = 100",
    ),
    (
        lambda p: p.group_by("k").agg(
            "stddev(f) AS sd",
            "var_pop(v) AS vp",
            "corr(f, v) AS cr",
            "median(f) AS md",
            "quantile_disc(v, 0.3) AS qd",
            "quantile_cont(f, 0.9) AS qc",
            "count(DISTINCT s) AS ds",
            "sum(v) AS sv",
        ),
        "SELECT k, stddev(f) sd, var_pop(v) vp, corr(f, v) cr, median(f) md, "
        "quantile_disc(v, 0.3) qd, quantile_cont(f, 0.9) qc, count(DISTINCT s) ds, sum(v) sv "
        "FROM t GROUP BY k",
    ),
    (
        lambda p: p.agg("var_samp(f) AS vs", "median(v) AS md", "count(DISTINCT k) AS dk"),
        "SELECT var_samp(f) vs, median(v) md, count(DISTINCT k) dk FROM t",
    ),
    (
        lambda p: p.group_by("k", "s").agg("count(DISTINCT v) AS dv"),
        "SELECT k, s, count(DISTINCT v) dv FROM t GROUP BY k, s",
    ),
    (
        lambda p: p.group_by("k").top_k(2, "v DESC", "f", "s", "d").select("k", "v", "f"),
        "SELECT k, v, f FROM (SELECT *, row_number() OVER (PARTITION BY k ORDER BY v DESC "
        "NULLS LAST, f NULLS LAST, s, d) rn FROM t) WHERE rn <= 2",
    ),
    (
        lambda p: p.filter("v > 100").top_k(3, "f DESC", "d", "v", per=("s", "k")),
        "SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (PARTITION BY s, k ORDER BY "
        "f DESC NULLS LAST, d, v) rn FROM t WHERE v > 100) WHERE rn <= 3",
    ),
    (
        # expressions over aggregates and keys, as DuckDB takes them (issue 33 item 6); two
        # quantiles of one column get two names
        lambda p: p.group_by("k").agg(
            "max(v) - min(f) AS r",
            "sum(v) * 2 + k AS w",
            "CASE WHEN count(*) > 3 THEN avg(f) ELSE -1.0 END AS c",
            "count(*)",
            "quantile_cont(f, 0.9)",
            "quantile_cont(f, 0.5)",
        ),
        "SELECT k, max(v) - min(f) r, sum(v) * 2 + k w, "
        "CASE WHEN count(*) > 3 THEN avg(f) ELSE -1.0 END c, count(*), quantile_cont(f, 0.9), "
        "quantile_cont(f, 0.5) FROM t GROUP BY k",
    ),
    (
        lambda p: p.agg(
            "max(v) - min(v) AS spread", "sum(v) / count(v) AS mean", "pow(corr(v, f), 2) AS r2"
        ),
        "SELECT max(v) - min(v) spread, sum(v) / count(v) mean, pow(corr(v, f), 2) r2 FROM t",
    ),
    (lambda p: p.select("k", "s").distinct(), "SELECT DISTINCT k, s FROM t"),
    (
        lambda p: p.top_k(7, "v DESC", "f").select("v", "f"),
        "SELECT v, f FROM t ORDER BY v DESC NULLS LAST, f LIMIT 7",
    ),
    (
        lambda p: p.sort("f", "v").limit(5, 3).select("f", "v"),
        "SELECT f, v FROM t ORDER BY f NULLS LAST, v LIMIT 5 OFFSET 3",
    ),
    (
        lambda p: p.select("k", "v").union(p.filter("k = 1").select("k", "v")),
        "SELECT k, v FROM t UNION ALL SELECT k, v FROM t WHERE k = 1",
    ),
    (lambda p: p.rename(k="key").drop("d", "f"), "SELECT k AS key, v, s FROM t"),
]


@pytest.mark.parametrize(("build", "sql"), CASES)
def test_fixed_pipelines_equal_duckdb(
    any_session: elytra.Session, parts_dir: Path, build: Any, sql: str
) -> None:
    p = any_session.read_parquet(f"{parts_dir}/*.parquet")
    assert same_rows(_ours(build(p)), _oracle(parts_dir, sql))


@pytest.mark.parametrize("how", ["inner", "left", "right", "full", "semi", "anti"])
def test_each_join_type_equals_duckdb(
    any_session: elytra.Session, parts_dir: Path, how: str
) -> None:
    p = any_session.read_parquet(f"{parts_dir}/*.parquet")
    left = p.filter("v < 300").select("k", "v")
    right = p.filter("v > 900").group_by("k").agg("count(*) AS n").filter("k < 5")
    joined = left.join(right, on="k", how=how)
    if how in ("semi", "anti"):
        sql = (
            f"SELECT k, v FROM t WHERE v < 300 AND k {'NOT ' if how == 'anti' else ''}IN "
            "(SELECT k FROM t WHERE v > 900 AND k < 5)"
        )
    else:
        sql = (
            "SELECT COALESCE(l.k, r.k) AS k, l.v, r.n FROM (SELECT k, v FROM t WHERE v < 300) l "
            f"{how.upper()} JOIN (SELECT k, count(*) n FROM t WHERE v > 900 GROUP BY k "
            "HAVING k < 5) r ON l.k = r.k"
        )
    assert same_rows(_ours(joined), _oracle(parts_dir, sql))


@pytest.mark.parametrize("how", ["inner", "left", "right", "full", "semi", "anti"])
def test_joins_of_two_scans_go_through_the_exchange_and_equal_duckdb(
    any_session: elytra.Session, parts_dir: Path, how: str
) -> None:
    # both sides are chains over the parts: a hash exchange, one join task per partition;
    # the right side's key is a BIGINT (the left's an INTEGER) with NULLs, hashed alike.
    # The parts are small enough to broadcast: no side is broadcast here.
    driver = any_session.driver
    driver.settings = driver.settings.model_copy(update={"broadcast_bytes": 0})
    p = any_session.read_parquet(f"{parts_dir}/*.parquet")
    left = p.filter("v < 300").select("k", "v", "s")
    right = (
        p.filter("v > 950")
        .with_columns(kk="CASE WHEN f < 5 THEN NULL ELSE CAST(k AS BIGINT) END")
        .select("kk", "d", "f")
    )
    joined = left.join(right, left_on="k", right_on="kk", how=how)
    assert "hash-partitioned" in joined.explain()
    cols = (
        "l.k, l.v, l.s"
        if how in ("semi", "anti")
        else "COALESCE(l.k, r.kk) AS k, l.v, l.s, r.d, r.f"
    )
    sql = (
        f"SELECT {cols} FROM (SELECT k, v, s FROM t WHERE v < 300) l "
        f"{how.upper()} JOIN (SELECT CASE WHEN f < 5 THEN NULL ELSE CAST(k AS BIGINT) END AS kk, "
        "d, f FROM t WHERE v > 950) r ON l.k = r.kk"
    )
    assert same_rows(_ours(joined), _oracle(parts_dir, sql))


def _keyed_parts(directory: Path, name: str, rows: int, files: int, seed: int) -> str:
    """Parquet files whose key columns hold what equality must see through: NULLs, NaN, -0.0
    beside 0.0, INTEGER beside BIGINT, unicode and empty strings."""
    rng = np.random.default_rng(seed)
    specials = np.array([0.0, -0.0, np.nan, 1.5, 2.5])
    words = ["é", "ß", "a", "", "日本"]
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        pq.write_table(
            pa.table(
                {
                    "i": pa.array(
                        rng.integers(-3, 3, rows).astype(np.int32), mask=rng.random(rows) < 0.1
                    ),
                    "b": pa.array(rng.integers(-3, 3, rows), mask=rng.random(rows) < 0.1),
                    "f": pa.array(specials[rng.integers(0, 5, rows)], mask=rng.random(rows) < 0.1),
                    "s": pa.array([words[x] for x in rng.integers(0, 5, rows)], pa.string()),
                    "x": pa.array(rng.normal(size=rows).round(6)),
                }
            ),
            directory / f"{name}{i}.parquet",
        )
    return f"{directory}/{name}*.parquet"


@pytest.mark.parametrize("how", ["inner", "left", "right", "full", "semi", "anti"])
def test_exchange_joins_on_awkward_keys_equal_duckdb(
    any_session: elytra.Session, tmp_path: Path, how: str
) -> None:
    left_glob = _keyed_parts(tmp_path, "l", 300, 3, 1)
    right_glob = _keyed_parts(tmp_path, "r", 200, 2, 2)
    empty_glob = _keyed_parts(tmp_path, "e", 0, 1, 3)
    con = duckdb.connect()
    left = any_session.read_parquet(left_glob)
    pairs = [(("i",), ("b",)), (("f",), ("f",)), (("s",), ("s",)), (("i", "s"), ("b", "s"))]
    cases = [(lk, rk, right_glob) for lk, rk in pairs] + [(*pairs[0], empty_glob)]
    for lks, rks, glob in cases:
        right = any_session.read_parquet(glob).select(*rks, "x").rename(x="y")
        got = left.select(*lks, "x").join(right, left_on=lks, right_on=rks, how=how)
        on = " AND ".join(f"l.{a} = r.{b}" for a, b in zip(lks, rks, strict=True))
        if how in ("semi", "anti"):
            cols = ", ".join(f"l.{a}" for a in lks) + ", l.x"
        else:
            keys = (f"COALESCE(l.{a}, r.{b}) AS {a}" for a, b in zip(lks, rks, strict=True))
            cols = ", ".join(keys) + ", l.x, r.y"
        sql = (
            f"SELECT {cols} FROM (SELECT {', '.join(lks)}, x FROM '{left_glob}') l "
            f"{how.upper()} JOIN (SELECT {', '.join(rks)}, x AS y FROM '{glob}') r ON {on}"
        )
        assert _ours(got) == rows_of(con.sql(sql).fetchall()), (lks, rks, glob)


PREDICATES = [
    "v > 500",
    "k IN (1, 3)",
    "f < 20 OR v IS NULL",
    "s LIKE 'u1%'",
    "d >= DATE '2024-02-01'",
]
AGGS = [
    ("count(*)", "count(*)"),
    ("count(v)", "count(v)"),
    ("sum(v)", "sum(v)"),
    ("avg(f)", "avg(f)"),
    ("min(s)", "min(s)"),
    ("max(v)", "max(v)"),
    ("avg(v)", "avg(v)"),
    ("min(d)", "min(d)"),
    ("stddev_samp(f)", "stddev_samp(f)"),
    ("var_pop(v)", "var_pop(v)"),
    ("corr(v, f)", "corr(v, f)"),
    ("median(f)", "median(f)"),
    ("quantile_disc(v, 0.75)", "quantile_disc(v, 0.75)"),
    ("count(DISTINCT s)", "count(DISTINCT s)"),
    ("max(v) - min(v)", "max(v) - min(v)"),
    ("avg(f) * count(*) + 1", "avg(f) * count(*) + 1"),
]


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[Any, str]:
    """A random pipeline and the DuckDB SQL that answers the same question."""
    steps: list[Any] = []
    where = draw(st.lists(st.sampled_from(PREDICATES), max_size=2, unique=True))
    computed = draw(st.booleans())
    shape = draw(st.sampled_from(["rows", "agg", "topk", "distinct"]))
    for pred in where:
        steps.append(lambda p, pred=pred: p.filter(pred))
    if computed:
        steps.append(lambda p: p.with_columns(w="v * k - 3"))
    cols = "k, v, f, s, d" + (", v * k - 3 AS w" if computed else "")
    cond = " WHERE " + " AND ".join(f"({w})" for w in where) if where else ""
    if shape == "rows":
        sql = f"SELECT {cols} FROM t{cond}"
    elif shape == "agg":
        keys = draw(st.lists(st.sampled_from(["k", "s"]), max_size=2, unique=True))
        aggs = draw(st.lists(st.sampled_from(AGGS), min_size=1, max_size=4, unique=True))
        names = [f"a{i}" for i in range(len(aggs))]
        steps.append(
            lambda p: p.group_by(*keys).agg(
                *(f"{a} AS {n}" for (a, _), n in zip(aggs, names, strict=True))
            )
        )
        select = [*keys, *(f"{s} AS {n}" for (_, s), n in zip(aggs, names, strict=True))]
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        sql = f"SELECT {', '.join(select)} FROM t{cond}{group}"
    elif shape == "topk":
        n = draw(st.integers(0, 30))
        steps.append(lambda p: p.top_k(n, "v DESC", "f", "s", "d", "k").select("v", "f", "s"))
        sql = (
            f"SELECT v, f, s FROM t{cond} ORDER BY v DESC NULLS LAST, f NULLS LAST, s, d, k "
            f"LIMIT {n}"
        )
    else:
        steps.append(lambda p: p.select("k", "s").distinct())
        sql = f"SELECT DISTINCT k, s FROM t{cond}"

    def build(p: Any) -> Any:
        for step in steps:
            p = step(p)
        return p

    return build, sql


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=pipelines())
def test_generated_pipelines_equal_duckdb(
    any_session: elytra.Session, parts_dir: Path, case: tuple[Any, str]
) -> None:
    build, sql = case
    p = any_session.read_parquet(f"{parts_dir}/*.parquet")
    assert same_rows(_ours(build(p)), _oracle(parts_dir, sql)), sql


def test_mistakes_are_found_when_the_pipeline_is_built(
    session: elytra.Session, parts_dir: Path
) -> None:
    p = session.read_parquet(f"{parts_dir}/*.parquet")
    with pytest.raises(PipelineError, match="amount"):
        p.filter("amount > 5")
    with pytest.raises(PipelineError, match='did you mean "v"'):
        p.group_by("vv")
    with pytest.raises(PipelineError):
        p.filter("s + 1 > 2")  # text plus a number: a type error, before any task runs
    with pytest.raises(PipelineError, match="not an aggregate"):
        p.group_by("k").agg("v + 1")
    with pytest.raises(PipelineError, match="no dataset 'nope'"):
        session.dataset("nope")
    with pytest.raises(PipelineError, match="no parquet file"):
        session.read_parquet(f"{parts_dir}/missing-*.parquet")


@pytest.mark.parametrize("how", ["inner", "left", "right", "full", "semi", "anti"])
@pytest.mark.parametrize("small", ["right", "left"])
def test_joins_with_a_small_side_broadcast_it_and_equal_duckdb(
    any_session: elytra.Session, parts_dir: Path, tmp_path: Path, how: str, small: str
) -> None:
    """A side under ``broadcast_bytes`` is read whole by every task of the other side where
    the join type allows it (its unmatched rows must not repeat per task); else exchanged."""

    dim = pa.table({"kk": pa.array([0, 1, 2, 3, 9, None], pa.int64()), "name": list("abcdef")})
    pq.write_table(dim, tmp_path / "dim.parquet")
    # the dimension (about 1 KB) is small, the parts (about 80 KB) are not
    driver = any_session.driver
    driver.settings = driver.settings.model_copy(update={"broadcast_bytes": 10_000})
    p = any_session.read_parquet(f"{parts_dir}/*.parquet").filter("v < 500").select("k", "v")
    d = any_session.read_parquet(tmp_path / "dim.parquet")
    if small == "right":
        joined = p.join(d, left_on="k", right_on="kk", how=how)
        broadcast = how in ("inner", "left", "semi", "anti")
        sql_l, sql_r = (
            "(SELECT k, v FROM t WHERE v < 500)",
            f"read_parquet('{tmp_path}/dim.parquet')",
        )
        lk, rk = "l.k", "r.kk"
        cols = "l.k, l.v" if how in ("semi", "anti") else "COALESCE(l.k, r.kk) AS k, l.v, r.name"
    else:
        joined = d.join(p, left_on="kk", right_on="k", how=how)
        broadcast = how in ("inner", "right")
        sql_l, sql_r = (
            f"read_parquet('{tmp_path}/dim.parquet')",
            "(SELECT k, v FROM t WHERE v < 500)",
        )
        lk, rk = "l.kk", "r.k"
        cols = (
            "l.kk, l.name" if how in ("semi", "anti") else "COALESCE(l.kk, r.k) AS kk, l.name, r.v"
        )
    shown = joined.explain()
    assert ("broadcast join" in shown) == broadcast, shown
    assert ("hash-partitioned" in shown) != broadcast, shown
    sql = f"SELECT {cols} FROM {sql_l} l {how.upper()} JOIN {sql_r} r ON {lk} = {rk}"
    assert same_rows(_ours(joined), _oracle(parts_dir, sql))


def test_a_broadcast_self_join_reads_each_row_once_per_side(
    any_session: elytra.Session, parts_dir: Path
) -> None:
    """Found from outside: ``p.join(p)`` over several tasks of a small source read the big side
    whole in every task (its two sides are one node), giving each row once per task."""
    p = any_session.read_parquet(f"{parts_dir}/*.parquet").filter("v < 100").select("k", "v")
    assert "broadcast join" in p.join(p, on="v").explain()
    for how in ("inner", "semi"):
        sql = (
            "SELECT count(*) FROM (SELECT k, v FROM t WHERE v < 100) l "
            f"{how.upper()} JOIN (SELECT k, v FROM t WHERE v < 100) r ON l.v = r.v"
        )
        assert p.join(p, on="v", how=how).count() == _oracle(parts_dir, sql)[0][0]


def test_a_column_outside_an_aggregate_must_be_a_key(
    session: elytra.Session, parts_dir: Path
) -> None:
    p = session.read_parquet(f"{parts_dir}/*.parquet")
    with pytest.raises(PipelineError, match="'v' must be a group_by key or inside an aggregate"):
        p.group_by("k").agg("sum(f) + v AS x")
    with pytest.raises(PipelineError, match="not an aggregate and holds none"):
        p.group_by("k").agg("k + 1 AS x")
