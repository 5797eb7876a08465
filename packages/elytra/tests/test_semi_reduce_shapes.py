"""Semi-join reduction against DuckDB on shapes that could break it (from the outside break
test): NULL keys on both sides, int32 against int64 keys, the filtered side under RIGHT, FULL
and anti joins, OR, HAVING, two keys, the group-by on either side, aliases, subqueries. Each
answer equals DuckDB's; the reduction fires exactly where its rule says it may."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra

G = "(SELECT k, count(*) c FROM facts GROUP BY k) g"
SHAPES = {
    # name: (query, reduced)
    "q17": (
        "SELECT sum(f.v) s, count(*) n FROM facts f JOIN dims d ON f.k = d.k WHERE d.tag = 'x' "
        "AND f.v < (SELECT 0.5 * avg(f2.v) FROM facts f2 WHERE f2.k = d.k)",
        True,
    ),
    "correlated on another key": (
        "SELECT sum(f.v) s, count(*) n FROM facts f JOIN dims d ON f.k = d.k WHERE d.tag = 'x' "
        "AND f.v < (SELECT avg(f2.v) FROM facts f2 WHERE f2.k2 = f.k2)",
        False,
    ),
    "two keys": (
        "SELECT f.k, f.k2, f.v, g.c FROM facts f JOIN dims d ON f.k = d.k AND f.k2 = d.k2 "
        "JOIN (SELECT k2, count(*) c FROM facts GROUP BY k2) g ON g.k2 = f.k2 "
        "WHERE d.tag = 'x'",
        True,
    ),
    "group-by first": (
        f"SELECT g.k, g.c FROM {G} JOIN facts f ON g.k = f.k JOIN dims d ON d.k = f.k "
        "WHERE d.tag = 'x'",
        True,
    ),
    "right join": (
        f"SELECT f.k, g.c FROM (SELECT * FROM dims WHERE tag = 'x') d RIGHT JOIN facts f "
        f"ON f.k = d.k JOIN {G} ON g.k = f.k",
        False,
    ),
    "full join": (
        f"SELECT f.k, g.c FROM (SELECT * FROM dims WHERE tag = 'x') d FULL JOIN facts f "
        f"ON f.k = d.k JOIN {G} ON g.k = f.k",
        False,
    ),
    "not in": (
        f"SELECT f.k, g.c FROM facts f JOIN {G} ON g.k = f.k WHERE f.k NOT IN "
        "(SELECT k FROM dims WHERE tag = 'x' AND k IS NOT NULL)",
        False,
    ),
    "not exists": (
        f"SELECT f.k, g.c FROM facts f JOIN {G} ON g.k = f.k WHERE NOT EXISTS "
        "(SELECT 1 FROM dims d WHERE d.k = f.k AND d.tag = 'x')",
        False,
    ),
    "or": (
        f"SELECT f.k, g.c FROM facts f JOIN {G} ON g.k = f.k WHERE f.k IN "
        "(SELECT k FROM dims WHERE tag = 'x') OR f.v > 98",
        False,
    ),
    "having": (
        "SELECT f.k, f.v, g.c FROM facts f JOIN dims d ON d.k = f.k JOIN "
        "(SELECT k, count(*) c FROM facts GROUP BY k HAVING count(*) > 30) g ON g.k = f.k "
        "WHERE d.tag = 'x'",
        True,
    ),
    "group-by on two keys": (
        "SELECT f.k, g.k2, g.c FROM facts f JOIN dims d ON d.k = f.k JOIN "
        "(SELECT k, k2, count(*) c FROM facts GROUP BY k, k2) g ON g.k = f.k AND g.k2 = f.k2 "
        "WHERE d.tag = 'x'",
        True,
    ),
    "in": (
        f"SELECT f.k, g.c FROM facts f JOIN {G} ON g.k = f.k WHERE f.k IN "
        "(SELECT k FROM dims WHERE tag = 'x')",
        False,
    ),
    "left join of the group-by": (
        f"SELECT f.k, g.c FROM facts f JOIN dims d ON d.k = f.k LEFT JOIN {G} ON g.k = f.k "
        "WHERE d.tag = 'x'",
        True,
    ),
    "aliases": (
        f"SELECT d.k, g.c FROM dims d JOIN facts f ON d.k2 = f.k2 JOIN {G} ON g.k = d.k "
        "WHERE d.tag = 'x' AND f.k IN (SELECT k FROM dims WHERE tag = 'x')",
        True,
    ),
    "subquery": (
        f"SELECT * FROM (SELECT f.k, g.c FROM facts f JOIN dims d ON d.k = f.k JOIN {G} "
        "ON g.k = f.k WHERE d.tag = 'x') t WHERE c > 0",
        True,
    ),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """facts: 20,000 rows in 4 files, int64 keys 0-499 (5 % NULL); dims: int32 keys and a
    NULL-key row, every 25th key and the NULL row tagged 'x'."""
    where = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(7)
    n = 20000
    k = rng.integers(0, 500, n).astype(object)
    k[rng.random(n) < 0.05] = None
    facts = pa.table(
        {
            "k": pa.array(list(k), pa.int64()),
            "k2": pa.array(rng.integers(0, 5, n), pa.int64()),
            "v": pa.array(rng.integers(0, 100, n), pa.int64()),
        }
    )
    for i in range(4):
        pq.write_table(facts.slice(i * 5000, 5000), where / f"facts{i}.parquet")
    keys: list[int | None] = [*range(500), None]
    tags = ["x" if i is None or i % 25 == 3 else "y" for i in keys]
    dims = pa.table(
        {
            "k": pa.array(keys, pa.int32()),
            "k2": pa.array([(i or 0) % 5 for i in keys], pa.int64()),
            "tag": pa.array(tags),
        }
    )
    pq.write_table(dims, where / "dims.parquet")
    return where


def _rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    out = [
        tuple(None if x is None else float(x) if not isinstance(x, str) else x for x in r)
        for r in rows
    ]
    return sorted(out, key=repr)


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    if len(a) != len(b):
        return False
    for r, s in zip(a, b, strict=True):
        for x, y in zip(r, s, strict=True):
            if x is None or y is None:
                if x is not y:
                    return False
            elif isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


@pytest.fixture(scope="module")
def session(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with elytra.connect(home=tmp_path_factory.mktemp("home"), backend="local", workers=2) as s:
        yield s


@pytest.mark.parametrize("name", list(SHAPES))
def test_each_shape_equals_duckdb(data: Path, session: Any, name: str) -> None:
    sql, reduced = SHAPES[name]
    con = duckdb.connect()
    con.execute(f"CREATE VIEW facts AS SELECT * FROM read_parquet('{data}/facts*.parquet')")
    con.execute(f"CREATE VIEW dims AS SELECT * FROM read_parquet('{data}/dims.parquet')")
    want = _rows(con.execute(sql).fetchall())
    con.close()
    tables = {
        "facts": session.read_parquet(str(data / "facts*.parquet")),
        "dims": session.read_parquet(data / "dims.parquet"),
    }
    p = session.sql(sql, tables)
    assert ("partial aggregate, broadcast join" in p.explain()) is reduced
    got = _rows([tuple(r.values()) for r in p.collect().to_pylist()])
    assert _same(got, want), (len(got), len(want), got[:3], want[:3])
