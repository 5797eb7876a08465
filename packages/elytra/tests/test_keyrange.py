"""A broadcast side cut to the key range of each task's chunks (``keyrange.py``).

A lake dataset of many chunks, clustered by its key (ingested in key order), joined with a
small table by SQL through each join type and with NULL, negative and out-of-range keys: the
answer is DuckDB's over the same files. Each task's plan holds the range filter where it is
sound and the key is a column of both sources, and an anti join's never does; keys in no
order get a filter too (their chunks' whole range) and the same answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

import elytra
from elytra.keyrange import source_column
from emsqrt import plan as lp
from lake import LakeNode, lake_settings
from lake.testing import ingest
from platform_core import Schema
from platform_core.expr import parse

from .conftest import rows_of, same_rows

FACT_ROWS = 80_000


def _write(tmp: Path, clustered: bool) -> dict[str, Path]:
    order = "i" if clustered else "hash(i)"
    facts, dims = tmp / "facts.csv", tmp / "dims.csv"
    duckdb.sql(
        f"""COPY (SELECT CASE WHEN i % 97 = 0 THEN NULL ELSE i // 4 - 500 END AS k,
                   (i % 13)::INTEGER AS grp, round(i * 0.37 % 1000, 2) AS amount
            FROM range({FACT_ROWS}) t(i) ORDER BY {order}) TO '{facts}' (HEADER)"""
    )
    # keys below, inside and above the facts' range, some twice, and NULLs
    duckdb.sql(
        f"""COPY (SELECT CASE WHEN j % 50 = 0 THEN NULL ELSE j * 7 - 2000 END AS dk,
                   'label ' || (j % 5) AS label
            FROM range(2500) t(j)) TO '{dims}' (HEADER)"""
    )
    return {"facts": facts, "dims": dims}


@pytest.fixture(scope="module", params=[True, False], ids=["clustered", "spread"])
def lake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("keyrange")
    files = _write(tmp, request.param)
    node = LakeNode(lake_settings(None, home=tmp / "home", chunk_bytes=32 * 1024))
    try:
        for name, path in files.items():
            ingest(node, path, name)
    finally:
        node.stop()
    return tmp / "home", files, request.param


QUERIES = {
    "inner": "SELECT f.grp, d.label, count(*) AS n, sum(f.amount) AS s FROM facts f "
    "JOIN dims d ON f.k = d.dk GROUP BY 1, 2",
    "left": "SELECT f.grp, count(d.label) AS n, count(*) AS m FROM facts f "
    "LEFT JOIN dims d ON f.k = d.dk GROUP BY 1",
    "semi": "SELECT grp, count(*) AS n FROM facts WHERE k IN (SELECT dk FROM dims "
    "WHERE label <> 'label 1') GROUP BY grp",
    "exists": "SELECT grp, count(*) AS n FROM facts f WHERE EXISTS (SELECT 1 FROM dims d "
    "WHERE d.dk = f.k) GROUP BY grp",
    "anti": "SELECT grp, count(*) AS n FROM facts f WHERE NOT EXISTS (SELECT 1 FROM dims d "
    "WHERE d.dk = f.k) GROUP BY grp",
    "not_in": "SELECT grp, count(*) AS n FROM facts WHERE k NOT IN (SELECT dk FROM dims "
    "WHERE dk IS NOT NULL) GROUP BY grp",
    "renamed": "SELECT g, count(*) AS n FROM (SELECT k AS key2, grp AS g FROM facts) f "
    "JOIN (SELECT dk AS key1 FROM dims) d ON f.key2 = d.key1 GROUP BY g",
    "computed": "SELECT f.grp, count(*) AS n FROM facts f JOIN dims d ON f.k + 1 = d.dk GROUP BY 1",
}


def _betweens(task_plan: str) -> int:
    return json.dumps(json.loads(task_plan)).count('"between"')


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_each_join_type_equals_duckdb_with_the_range_where_sound(lake: Any, name: str) -> None:
    home, files, _clustered = lake
    sql = QUERIES[name]
    with elytra.connect(
        home=home, backend="local", workers=2, task_bytes=32 * 1024, whole_query_bytes=0
    ) as s:
        tables = {"facts": s.dataset("facts"), "dims": s.dataset("dims")}
        p = s.sql(sql, tables)
        plan, _ = s.driver.plan(p, "t", Path(s.settings.resolved_spill_dir()))
        tasks = [t for st in plan.stages for t in st.tasks]
        got = rows_of([tuple(r.values()) for r in p.collect().to_pylist()])
    oracle = duckdb.connect()
    for table, path in files.items():
        oracle.execute(f"CREATE VIEW {table} AS SELECT * FROM read_csv('{path}')")
    want = rows_of(oracle.sql(sql).fetchall())
    assert same_rows(got, want), (name, got[:5], want[:5])
    assert len(tasks) >= 3
    cut = [_betweens(t.plan) for t in tasks]
    if name in ("anti", "not_in", "computed"):
        assert not any(cut), cut  # unsound (an anti join), or a key that is not a column
    elif name in ("inner", "left", "renamed"):
        assert all(cut), cut
    # semi and exists: their side is a distinct aggregate over dims, not followed (no range)


def test_a_key_is_followed_through_renames_and_copies_only() -> None:
    schema = Schema.from_arrow(
        __import__("pyarrow").schema([("k", "int64"), ("v", "int64"), ("s", "string")])
    )
    leaf = lp.Input("src", schema)
    renamed = lp.Project(lp.Filter(leaf, parse("v > 1")), (("key", "k"), ("v", "v")))
    assert source_column(renamed, "key", "src") == "k"
    assert source_column(renamed, "k", "src") is None  # not an output of the projection
    copied = lp.Map(leaf, (("c", parse("k")),))
    assert source_column(copied, "c", "src") == "k"
    assert source_column(copied, "v", "src") == "v"  # passed through
    computed = lp.Map(leaf, (("c", parse("k + 1")),))
    assert source_column(computed, "c", "src") is None
    # a copy of a column made earlier in the same step is not the input's column
    chained = lp.Map(leaf, (("k", parse("v + 1")), ("c", parse("k"))))
    assert source_column(chained, "c", "src") is None
    assert source_column(leaf, "k", "other") is None  # another source's leaf
    agg = lp.Aggregate(leaf, ("k",), ())
    assert source_column(agg, "k", "src") is None  # through anything else: not followed
