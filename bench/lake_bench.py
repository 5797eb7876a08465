"""Lake: upload, conversion, single-node SQL and a 3-node group-by, each beside its peer.

Workloads (``ours`` against ``peer``, same seeded CSV, same run):

- ``transfer``: sending every part of the CSV to a ``lake node`` process over HTTP, each part
  hashed by the client and verified by the node before it lands on disk — against a plain
  ``cp`` (``shutil.copyfile``) of the same file.
- ``convert``: from ``complete`` to committed, checksummed Parquet chunks — against DuckDB's
  ``COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT PARQUET)`` of the same file.
- ``upload_total``: upload start to committed (transfer + convert) — against ``cp`` followed
  by DuckDB's COPY.
- ``q_groupby``, ``q_topn``: SQL through one node's HTTP API (Arrow results) — against DuckDB
  directly over the very same Parquet chunk files.
- ``q3_groupby``: the group-by coordinated by one of three nodes (partial aggregates pulled
  over Flight) — against the same query on one lake node (``peer`` here is ours on one node). The bytes moved between nodes (from
  EXPLAIN) and the dataset size are printed and stored with the result.

The chunk stores for the query workloads are built once per scale at data-generation time.
Every node is a real ``lake node`` process on 127.0.0.1; a child stops the nodes it started.

With ``--quick`` (CI: so the script never rots) ``q_topn`` is left out: it runs the same code
as ``q_groupby`` (another query string), and each child starts a node, which costs seconds.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import Benchmark

bench = Benchmark("lake_bench", "lake upload, conversion and SQL against cp and DuckDB")
bench.quick_scale = 0.001  # ~32k rows, ~2 MB: one part, one chunk; every path still runs

QUICK = "--quick" in sys.argv

BYTES_AT_SCALE_1 = 2 * 10**9
ROW_BYTES = 62  # about what one generated CSV row takes
SECRET = "lake-bench-secret-" + "x" * 32
PART = 8 << 20
GROUPBY = "SELECT grp, count(*) AS n, sum(amount) AS s, avg(amount) AS a, min(day) AS lo, max(id) AS hi FROM sales GROUP BY grp ORDER BY grp"
TOPN = "SELECT id, amount, who FROM sales WHERE who LIKE 'user1%' AND amount > 900 ORDER BY amount DESC, id LIMIT 100"
QUERIES = {"q_groupby": GROUPBY, "q_topn": TOPN, "q3_groupby": GROUPBY}
ENV = {
    "PLATFORM_SECRET": SECRET,
    "LAKE_FLIGHT_PORT": "0",
    "LAKE_GOSSIP_INTERVAL_SECONDS": "0.3",
    "LAKE_REPLICATE_INTERVAL_SECONDS": "0.5",
    "LAKE_QUERY_TIMEOUT_SECONDS": "3600",
}


def _token() -> str:
    from platform_core.auth import TokenSigner

    return TokenSigner(SECRET).issue("bench", admin=True)


def _start(home: Path, *args: str, **env: str) -> Any:
    from lake.testing import start_node, stop_node

    proc = start_node(home, *args, env={**ENV, **env})
    atexit.register(stop_node, proc)
    return proc


def _start_joined(a: Any, *homes: Path) -> list[Any]:
    """Start nodes joining ``a``, side by side (each start is seconds of imports)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(homes)) as pool:
        return list(pool.map(lambda home: _start(home, "--join", a.addr), homes))


def _wait(check: Callable[[], Any], timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster did not settle")
        time.sleep(0.2)


@bench.data
def generate(scale: float, cache: Path) -> dict[str, Any]:
    """A seeded CSV of ~2 GB x scale, plus a one-node and a three-node chunk store of it."""
    import duckdb

    from lake import Client
    from lake.testing import stop_node

    rows = max(20_000, int(BYTES_AT_SCALE_1 * scale / ROW_BYTES))
    csv = cache / "sales.csv"
    if not csv.exists():
        tmp = cache / "sales.tmp.csv"
        duckdb.sql("SELECT setseed(0.42)")
        duckdb.sql(
            f"""COPY (SELECT i AS id, (hash(i) % 8)::INTEGER AS grp,
                      round(random() * 1000, 2) AS amount,
                      'user' || (hash(i * 7) % 100000) AS who,
                      DATE '2020-01-01' + (i % 2000)::INTEGER AS day,
                      md5(i::VARCHAR) AS note
               FROM range({rows}) t(i)) TO '{tmp}' (HEADER)"""
        )
        tmp.rename(csv)
    one = cache / "one"
    if not (one / "done").exists():
        shutil.rmtree(one, ignore_errors=True)
        node = _start(one / "a")
        with Client(node.url, _token(), timeout=3600) as c:
            c.upload(csv, "sales", part_size=PART)
        stop_node(node)
        (one / "done").write_text("ok")
    three = cache / "three"
    if not (three / "done").exists():
        shutil.rmtree(three, ignore_errors=True)
        a = _start(three / "a")
        b, c3 = _start_joined(a, three / "b", three / "c")
        with Client(a.url, _token(), timeout=3600) as c:
            _wait(lambda: len(c._call("GET", "/nodes/self").json()["members"]) == 3)
            c.upload(csv, "sales", part_size=PART)
            _wait(lambda: c._call("GET", "/nodes").json()["under_replicated"] == 0)
        for n in (c3, b, a):
            stop_node(n)
        (three / "done").write_text("ok")
    return {"csv": str(csv), "rows": rows, "bytes": csv.stat().st_size, "cache": str(cache)}


def _chunk_files(home: Path) -> list[str]:
    return sorted(str(p) for p in home.rglob("chunks/*.parquet"))


@bench.engine("ours")
def ours(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    from lake import Client

    cache, csv = Path(params["cache"]), Path(params["csv"])
    run = cache / f"run-{os.getpid()}"
    atexit.register(shutil.rmtree, run, True)
    if workload in ("transfer", "convert", "upload_total"):
        node = _start(run / "node")
        client = Client(node.url, _token(), timeout=3600)

        def send_all(info: dict[str, Any]) -> int:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(4) as pool:
                return sum(pool.map(lambda n: client.send_part(csv, info, n), range(info["parts"])))

        if workload == "transfer":
            info = client.start_upload(csv, "sales", part_size=PART)
            return lambda: send_all(info)
        if workload == "convert":
            info = client.start_upload(csv, "sales", part_size=PART)
            send_all(info)

            def convert() -> int:
                client._call("POST", f"/uploads/{info['id']}/complete")
                return int(client.wait_upload(info["id"])["rows"])

            return convert
        return lambda: int(client.upload(csv, "sales", part_size=PART, parallel=4)["rows"])
    if workload == "q3_groupby":
        homes = [cache / "three" / x for x in "abc"]
        a = _start(homes[0])
        _start_joined(a, *homes[1:])
        client = Client(a.url, _token(), timeout=3600)
        _wait(
            lambda: (
                [m["state"] for m in client._call("GET", "/nodes/self").json()["members"]]
                == ["alive"] * 3
            )
        )
        plan = client.query(f"EXPLAIN {GROUPBY}")
        cols = [c["name"] for c in plan["columns"]]
        rows = [dict(zip(cols, r, strict=True)) for r in plan["rows"]]
        moved = sum(r["bytes"] for r in rows if r["kind"] == "moved")
        size = client.dataset("sales")["bytes"]
        readers = sorted({r["node"] for r in rows if r["kind"] == "read"})
        note = {
            "bytes_moved": moved,
            "dataset_bytes": size,
            "fraction": moved / size,
            "readers": len(readers),
        }
        print(f"    3-node group-by: {json.dumps(note)}", file=sys.stderr)
        (cache / "q3_moved.json").write_text(json.dumps(note))
        return lambda: client.query_arrow(GROUPBY)
    node = _start(cache / "one" / "a")
    client = Client(node.url, _token(), timeout=3600)
    client.query_arrow(QUERIES[workload])  # warm: first-call costs are not the workload
    return lambda: client.query_arrow(QUERIES[workload])


@bench.engine("peer", peer=True)
def peer(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import duckdb

    cache, csv = Path(params["cache"]), Path(params["csv"])
    run = cache / f"run-{os.getpid()}"
    run.mkdir(parents=True, exist_ok=True)
    atexit.register(shutil.rmtree, run, True)
    con = duckdb.connect()
    copy = f"COPY (SELECT * FROM read_csv('{csv}')) TO '{run}/out.parquet' (FORMAT PARQUET)"
    if workload == "transfer":
        return lambda: shutil.copyfile(csv, run / "copy.csv") and os.path.getsize(run / "copy.csv")
    if workload == "convert":
        return lambda: con.execute(copy).fetchall()[0][0]
    if workload == "upload_total":

        def both() -> int:
            shutil.copyfile(csv, run / "copy.csv")
            return int(con.execute(copy.replace(str(csv), str(run / "copy.csv"))).fetchall()[0][0])

        return both
    if workload == "q3_groupby":  # the same query on one lake node
        from lake import Client

        node = _start(cache / "one" / "a")
        client = Client(node.url, _token(), timeout=3600)
        client.query_arrow(GROUPBY)
        return lambda: client.query_arrow(GROUPBY)
    files = _chunk_files(cache / "one")
    con.execute(f"CREATE VIEW sales AS SELECT * FROM read_parquet({files})")
    con.sql(QUERIES[workload]).to_arrow_table()
    return lambda: con.sql(QUERIES[workload]).to_arrow_table()


@bench.check
def check(workload: str, output: Any) -> Any:
    if isinstance(output, int | str):
        return None if workload == "transfer" else int(output)
    return output.num_rows


if __name__ == "__main__":
    workloads = ["transfer", "convert", "upload_total", "q_groupby", "q_topn", "q3_groupby"]
    bench.main([w for w in workloads if not (QUICK and w == "q_topn")])
