"""Any read-only query DuckDB answers over one node's data is answered the same over three
real nodes (issue 11, item 5): a corpus vs DuckDB over the source files.

"The same": the same column names, the same Arrow types (so integer sums are HUGEINT as
DuckDB types them), the same rows (in order when the query orders them fully, else sorted),
floats within 1e-9 relative.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from lake import Client
from lake.testing import NodeProcess, start_node, stop_node
from platform_core.auth import TokenSigner

from .conftest import CHUNK, SECRET, make_csv
from .test_cluster import peer, states, wait_for

pytestmark = pytest.mark.slow

ORDERED = "ordered"  # the query orders its rows fully: compare in order

CORPUS: list[tuple[str, str | None]] = [
    # aggregates: partial-aggregate plans
    ("SELECT count(*) FROM sales", None),
    ("SELECT count(*), sum(id), min(amount), max(amount), avg(amount) FROM sales", None),
    ("SELECT count(who), count(DISTINCT who), min(day), max(who) FROM sales", None),
    ("SELECT grp, count(*) AS n, sum(amount) AS s FROM sales GROUP BY grp", None),
    ("SELECT grp AS g, count(*) AS n FROM sales GROUP BY g", None),
    ("SELECT grp AS g, sum(id) FROM sales GROUP BY g ORDER BY g", ORDERED),
    ("SELECT grp % 3 AS b, count(*) FROM sales GROUP BY b", None),
    ("SELECT grp % 3 AS b, avg(amount) AS a FROM sales GROUP BY grp % 3", None),
    ("SELECT grp, count(*) FROM sales GROUP BY ALL", None),
    ("SELECT grp, who IS NULL AS missing, count(*) FROM sales GROUP BY ALL ORDER BY ALL", ORDERED),
    ("SELECT grp, count(*) AS n FROM sales GROUP BY grp HAVING count(*) > 1000", None),
    ("SELECT grp, count(*) AS n FROM sales GROUP BY grp HAVING n > 1000", None),
    ("SELECT grp, sum(amount) FILTER (WHERE amount > 500) FROM sales GROUP BY grp", None),
    ("SELECT grp, count(DISTINCT who) AS d FROM sales GROUP BY grp", None),
    ("SELECT count(DISTINCT grp), count(DISTINCT who) FROM sales", None),
    ("SELECT grp, stddev_samp(amount), var_pop(amount) FROM sales GROUP BY grp", None),
    ("SELECT grp, median(amount), quantile_cont(amount, 0.9) FROM sales GROUP BY grp", None),
    ("SELECT grp, string_agg(DISTINCT CAST(grp AS VARCHAR), ',') FROM sales GROUP BY grp", None),
    ("SELECT month(day) AS m, count(*) FROM sales GROUP BY m ORDER BY m", ORDERED),
    ("SELECT year(day), sum(amount) > 0 FROM sales GROUP BY ALL", None),
    ("SELECT grp, bool_and(amount >= 0), bool_or(who IS NULL) FROM sales GROUP BY grp", None),
    ("SELECT sum(id) FILTER (WHERE grp = 1), count(*) FILTER (who IS NULL) FROM sales", None),
    ("SELECT grp, arg_max(id, amount) FROM sales GROUP BY grp", None),
    ("SELECT count(*) FROM sales WHERE amount BETWEEN 100 AND 200", None),
    ("SELECT grp, sum(amount) AS s FROM sales WHERE who LIKE 'user1%' GROUP BY grp", None),
    (
        "SELECT CASE WHEN amount > 500 THEN 'hi' ELSE 'lo' END AS band, count(*) FROM sales "
        "GROUP BY band",
        None,
    ),
    ("SELECT grp, count(*) FROM sales GROUP BY ROLLUP (grp)", None),
    ("SELECT grp, who IS NULL AS n, count(*) FROM sales GROUP BY CUBE (grp, n)", None),
    ("SELECT DISTINCT grp FROM sales", None),
    ("SELECT DISTINCT grp, who IS NULL FROM sales ORDER BY ALL", ORDERED),
    # rows and ordering
    ("SELECT id, amount FROM sales WHERE who = 'user7' ORDER BY id", ORDERED),
    (
        "SELECT id, amount * 2 AS double_amount FROM sales WHERE double_amount > 1990 ORDER BY id",
        ORDERED,
    ),
    ("SELECT id FROM sales ORDER BY amount DESC, id LIMIT 10", ORDERED),
    ("SELECT id FROM sales ORDER BY id LIMIT 5 OFFSET 100", ORDERED),
    ("SELECT * FROM sales WHERE id < 20 ORDER BY ALL", ORDERED),
    ("SELECT * EXCLUDE (who) FROM sales WHERE id % 1000 = 0 ORDER BY id", ORDERED),
    ("SELECT COLUMNS('am.*') FROM sales WHERE id < 5 ORDER BY 1", ORDERED),
    ("SELECT upper(who), length(who), who || '!' FROM sales WHERE id < 50 ORDER BY id", ORDERED),
    ("SELECT id, coalesce(who, 'nobody') FROM sales WHERE id % 997 = 0 ORDER BY id", ORDERED),
    ("SELECT DISTINCT ON (grp) grp, id FROM sales ORDER BY grp, id", ORDERED),
    ("SELECT AMOUNT, ID FROM sales WHERE ID < 10 ORDER BY ID", ORDERED),
    # windows and QUALIFY
    (
        "SELECT id, grp, rank() OVER (PARTITION BY grp ORDER BY amount DESC, id) AS r FROM sales "
        "QUALIFY r <= 2 ORDER BY grp, r",
        ORDERED,
    ),
    (
        "SELECT grp, id, sum(amount) OVER (PARTITION BY grp ORDER BY id ROWS BETWEEN 2 PRECEDING "
        "AND CURRENT ROW) AS s FROM sales WHERE id < 300 ORDER BY grp, id",
        ORDERED,
    ),
    ("SELECT id, lag(id) OVER (ORDER BY id) FROM sales WHERE id < 100 ORDER BY id", ORDERED),
    (
        "SELECT id, row_number() OVER (ORDER BY amount DESC, id) AS rn FROM sales QUALIFY rn <= 3 "
        "ORDER BY rn",
        ORDERED,
    ),
    ("SELECT grp, count(*) OVER () AS total FROM sales WHERE id < 10 ORDER BY id", ORDERED),
    # CTEs, subqueries, set operations
    (
        "WITH big AS (SELECT * FROM sales WHERE amount > 900) SELECT grp, count(*) FROM big "
        "GROUP BY grp",
        None,
    ),
    ("WITH a AS (SELECT grp, sum(amount) AS s FROM sales GROUP BY grp) SELECT max(s) FROM a", None),
    ("SELECT count(*) FROM (SELECT DISTINCT who FROM sales)", None),
    (
        "SELECT id FROM sales WHERE amount > (SELECT avg(amount) FROM sales) AND id < 200 "
        "ORDER BY id",
        ORDERED,
    ),
    (
        "SELECT grp FROM sales WHERE id IN (SELECT id FROM sales WHERE who = 'user3') ORDER BY grp",
        ORDERED,
    ),
    ("SELECT grp FROM sales WHERE id < 5 UNION SELECT grp FROM groups", None),
    ("SELECT grp FROM sales WHERE id < 5 UNION ALL SELECT grp FROM groups ORDER BY 1", ORDERED),
    ("SELECT grp FROM groups EXCEPT SELECT grp FROM sales WHERE amount > 990", None),
    ("SELECT grp FROM groups INTERSECT SELECT grp FROM sales WHERE id < 100", None),
    ("SELECT EXISTS (SELECT 1 FROM sales WHERE who = 'user999')", None),
    # joins of two datasets
    (
        "SELECT s.grp, g.label, count(*) AS n FROM sales s JOIN groups g ON s.grp = g.grp "
        "GROUP BY ALL",
        None,
    ),
    (
        "SELECT g.label, sum(s.amount) FROM groups g LEFT JOIN sales s ON s.grp = g.grp AND "
        "s.amount > 995 GROUP BY g.label",
        None,
    ),
    ("SELECT count(*) FROM sales JOIN groups USING (grp)", None),
    ("SELECT count(*) FROM sales NATURAL JOIN groups", None),
    (
        "SELECT label, count(*) FROM sales s, groups g WHERE s.grp = g.grp AND s.id < 1000 "
        "GROUP BY label",
        None,
    ),
    # pivot and friends
    ("PIVOT (SELECT grp, who IS NULL AS missing FROM sales) ON missing USING count(*)", None),
    (
        "SELECT * FROM (SELECT grp, amount > 500 AS hi FROM sales) PIVOT (count(*) FOR hi IN "
        "(true, false)) ORDER BY grp",
        ORDERED,
    ),
    ("UNPIVOT (SELECT grp, label FROM groups) ON label INTO NAME k VALUE v", None),
    ("SELECT grp, list(id ORDER BY id)[1:3] FROM sales GROUP BY grp", None),
    ("SELECT count(*) FROM sales WHERE who IS NULL", None),
    ("SELECT sum(amount)::DECIMAL(18, 3), sum(grp)::INTEGER FROM sales", None),
]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Client, duckdb.DuckDBPyConnection]]:
    """One 3-node cluster for the whole corpus, with data spread over every node."""
    root = tmp_path_factory.mktemp("corpus")
    with three_nodes(root, CHUNK, timeout=60) as (procs, clients):
        sales = make_csv(root / "sales.csv", rows=40_000)
        groups = root / "groups.csv"
        groups.write_text("grp,label\n" + "".join(f"{g},label{g % 5}\n" for g in range(13)))
        clients[0].upload(sales, "sales", part_size=1 << 20)
        clients[0].upload(groups, "groups")
        chunks = {c["sha256"] for c in clients[0].dataset("sales")["chunk_list"]}
        wait_for(lambda: len(clients[2].datasets()) == 2, what="gossip")
        wait_for(lambda: clients[2]._call("GET", "/nodes").json()["under_replicated"] == 0)
        # the chunks are on more than one node (the reads below really are distributed)
        wait_for(
            lambda: sum(bool(set(peer(p, "GET", "/chunks")) & chunks) for p in procs) >= 2,
            what="chunks on several nodes",
        )
        oracle = duckdb.connect()
        oracle.execute(f"CREATE TABLE sales AS SELECT * FROM read_csv('{sales}')")
        oracle.execute(f"CREATE TABLE groups AS SELECT * FROM read_csv('{groups}')")
        yield clients[2], oracle


@contextmanager
def three_nodes(
    root: Path, chunk_bytes: int, timeout: float, env: dict[str, str] | None = None
) -> Iterator[tuple[list[NodeProcess], list[Client]]]:
    """Three real lake nodes (b and c joined to a) with small chunks and ``env``, each with
    an admin client, once all three see each other; stopped on exit."""
    env = {
        **(env or {}),
        "PLATFORM_SECRET": SECRET,
        "LAKE_CHUNK_BYTES": str(chunk_bytes),
        "LAKE_FLIGHT_PORT": "0",
        "LAKE_GOSSIP_INTERVAL_SECONDS": "0.2",
        "LAKE_REPLICATE_INTERVAL_SECONDS": "0.5",
    }
    procs: list[NodeProcess] = []
    clients: list[Client] = []
    try:
        a = start_node(root / "a", env=env)
        procs.append(a)
        procs += [start_node(root / n, "--join", a.addr, env=env) for n in ("b", "c")]
        token = TokenSigner(SECRET).issue("tester", admin=True)
        clients = [Client(p.url, token, timeout=timeout) for p in procs]
        ids = {p.node_id for p in procs}
        for cl in clients:
            wait_for(lambda cl=cl: set(states(cl)) == ids, what="3 members")
        yield procs, clients
    finally:
        for cl in clients:
            cl.close()
        for p in procs:
            stop_node(p)


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in table.to_pylist()]


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, str(type(v)), repr(v) if isinstance(v, float) else v) for v in row)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize(("sql", "order"), CORPUS, ids=[f"q{i:02d}" for i in range(len(CORPUS))])
def test_the_cluster_answers_as_duckdb(
    cluster: tuple[Client, duckdb.DuckDBPyConnection], sql: str, order: str | None
) -> None:
    client, oracle = cluster
    want = oracle.execute(sql).to_arrow_table()
    got = client.query_arrow(sql)
    assert got.column_names == want.column_names, sql
    assert got.schema.types == want.schema.types, (sql, got.schema, want.schema)
    a, b = _rows(got), _rows(want)
    if order != ORDERED:
        a, b = sorted(a, key=_key), sorted(b, key=_key)
    assert len(a) == len(b), sql
    for x, y in zip(a, b, strict=True):
        assert all(_equal(u, v) for u, v in zip(x, y, strict=True)), (sql, x, y)


def test_the_corpus_is_large_and_uses_both_plans(
    cluster: tuple[Client, duckdb.DuckDBPyConnection],
) -> None:
    """The partial-aggregate plan moves a few rows per node; a gathered scan moves them all."""
    client, oracle = cluster
    assert len(CORPUS) >= 60

    def moved(sql: str) -> int:
        plan = client.query(f"EXPLAIN {sql}")
        cols = [c["name"] for c in plan["columns"]]
        rows = [dict(zip(cols, r, strict=True)) for r in plan["rows"]]
        assert {r["node"] for r in rows if r["kind"] == "read"}
        return sum(int(r["rows"]) for r in rows if r["kind"] == "moved")

    total = oracle.execute("SELECT count(*) FROM sales").fetchone()
    assert total is not None
    # GROUP BY grp, a select-list alias, count(*): partial aggregates (13 groups per part)
    assert moved("SELECT grp, count(*) AS n, sum(amount) FROM sales GROUP BY grp") <= 13 * 6
    # a window needs every row where it is computed: gathered
    assert moved("SELECT id, rank() OVER (ORDER BY id) FROM sales") == total[0]


def test_a_distributed_explain_names_the_sql_each_node_ran(
    cluster: tuple[Client, duckdb.DuckDBPyConnection],
) -> None:
    """EXPLAIN's JSON says what each node ran (the fragment) and what the coordinator did."""
    client, _ = cluster
    agg = client.query("EXPLAIN SELECT grp, count(*) AS n FROM sales GROUP BY grp")
    assert agg["kind"] == "explain (partial aggregate)"
    plan = agg["plan"]
    assert plan["kind"] == "partial aggregate"
    assert set(plan["fragments"]) == {"sales"}
    assert "GROUP BY" in plan["fragments"]["sales"].upper()
    assert plan["final"]
    assert plan["final"] != plan["fragments"]["sales"]
    sql = "SELECT s.id, g.label FROM sales s JOIN groups g ON s.grp = g.grp"
    scan = client.query(f"EXPLAIN {sql}")["plan"]
    assert scan["kind"] == "scan pushdown"
    assert set(scan["fragments"]) == {"sales", "groups"}
    assert scan["final"] == sql
    # A query (not EXPLAIN) and a single node's EXPLAIN carry no plan: the answer is unchanged.
    assert "plan" not in client.query("SELECT count(*) FROM sales")
