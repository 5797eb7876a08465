"""TPC-H's 22 queries on one and three lake nodes beside DuckDB over the same Parquet files.

Data: ``lake.sql.tpch.generate`` (``tpchgen-cli``, seeded) at ``--scale`` (default 1; ``--quick``:
0.01), kept under ``bench/results/data/tpch_bench/scale-S``. Each table is uploaded once into a
one-node store and a three-node store (real ``lake node`` processes on 127.0.0.1, replication
as configured by default); later runs restart the nodes on those stores.

Per query, in the same run and interleaved run by run (so the machine's load falls on all
alike): DuckDB in-process over the generated Parquet files (``threads`` as a node's
``LAKE_QUERY_THREADS``), the query through one node's HTTP API (Arrow result), and through one
of three nodes (the coordinator). Printed: medians of ``--runs`` runs, the ratios to DuckDB,
and the bytes that reached the coordinator on three nodes (from EXPLAIN: ``net`` came over
the network from the other nodes, ``held`` is everything the coordinator gathered), then the
geometric means. Every engine's answer is compared with DuckDB's first (a wrong answer fails
the run).

``--elytra`` adds ``elytra sql``: the query through ``session.sql`` on a local pool of two
workers over the same Parquet files (Elytra's distributed engine, issue 35 item 1), timed
interleaved with the others.

``--engine 3platforms`` (only when chosen) adds ``3 platforms``: what a user of the platform
gets from three ``platform up`` processes on 127.0.0.1 joined with ``--join`` (issue 35: the
SQL route on Elytra's stages, ``ELYTRA_SQL_ROUTE=cluster`` with live peers). They share one
secret and run ``ELYTRA_WORKERS=1`` each (``PLATFORM_WORKERS``: three pool workers on two
cores; the default, one per core, would be six); the tables are uploaded once through the
first gateway into a store kept under ``platforms/`` beside the lake nodes' (later runs
restart the three on the same homes and ports, ``bench/_platforms.py``), replication settled,
and the query goes to the first gateway with an Arrow answer, timed interleaved with the
others. Shown per query: the engine that answered (``x-query-engine``: ``elytra``, or ``lake``
when Elytra declined) and, from one more run as ``EXPLAIN ANALYZE`` (``elytra.sqlexplain``),
the bytes of the tasks' output gathered into the driver's merge and sent to hash exchanges,
and the chunk bytes the coordinator read from the two others (without Ray a query runs on the
pool of the platform that takes it: the bytes between nodes). A query that fails there is
shown as failed with its error; the others go on.

``--engine 3platforms-ray`` adds ``3 platforms on Ray``: the same three, each started with
``--ray`` on this machine's own address (the second and third Ray nodes join the first's
head), their store under ``platforms-ray/``. The query's tasks run on the Ray node of a
platform that holds their chunks, and a hash exchange's partitions go from task to task as Ray
objects; the table adds the exchange bytes that moved between tasks (issue 34 item 3).

Peers on one machine, where they run the query (issue 35): ``polars sql`` — Polars'
``SQLContext`` over ``scan_parquet`` of the same files, in-process; ``daft sql`` — ``daft.sql``
over ``daft.read_parquet`` of them (of a copy: Daft 0.7.26 cannot read the ``string_view``
columns that ``tpchgen-cli`` writes; ``_daft_files`` keeps rows, row groups, codec and
encoding) with the intervals written as the TPC-H specification writes them (``INTERVAL '3'
MONTH``: Daft takes no unquoted ``INTERVAL 3 MONTH``), on Daft's native runner in its own virtual environment (Daft
0.7.26 needs ``pyarrow<26``; ``bench/_peers.py`` makes it from the hash-pinned
``bench/peers/daft.txt`` and starts one Daft server per run, whose own clock around the query
and ``.to_arrow()`` is Daft's time; the result comes back as an Arrow IPC file, untimed). A
query a peer refuses shows as ``refused`` and one it answers differently from DuckDB as
``wrong`` (both with the reason under the table); neither fails the run, which only our
engines' wrong answers do. Peers' numbers are compared with DuckDB's to a relative 1e-9 after
decimals are taken as floats. ``--engine`` picks engines (``duckdb`` always runs: it is the
oracle); without ``1node``/``3nodes`` no lake node starts.

``--baseline-src DIR`` adds ``3 nodes (before)``: a copy of the three-node store served by the
lake package at ``DIR`` (e.g. ``/tmp/main/packages/lake/src`` of a checkout without the change,
put first on the nodes' ``PYTHONPATH``), a second cluster running beside the first and timed
interleaved with the other engines.

    python bench/tpch_bench.py [--scale 1] [--runs 3] [--query 4 --query 21] [--fresh]
        [--engine duckdb --engine polars --engine daft] [--engine 3platforms]
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from _harness import DATA_CACHE, RESULTS, Measured

SECRET = "tpch-bench-secret-" + "x" * 32
ENV = {
    "PLATFORM_SECRET": SECRET,
    "LAKE_FLIGHT_PORT": "0",
    "LAKE_QUERY_TIMEOUT_SECONDS": "3600",
}
"""The platforms' settings beyond their defaults. Gossip and replication run at their default
intervals, as a user's platforms do: at 0.3 s and 0.5 s (this bench's until 2026-11-28) the
two idle peers and the coordinator took a quarter to a third of a core from the query's
DuckDB threads on this two-core machine."""
QUICK_CHUNK = str(128 << 10)
"""At --quick scale, small chunks so that every table spans the three nodes."""
THREADS = 2
"""DuckDB's threads: a node's default LAKE_QUERY_THREADS."""
ENGINES = {
    "duckdb": "duckdb",
    "1node": "1 node",
    "3nodes": "3 nodes",
    "polars": "polars sql",
    "daft": "daft sql",
    "elytra": "elytra sql",
    "3platforms": "3 platforms",
    "3platforms-ray": "3 platforms on Ray",
}
"""``--engine`` choices and the names in the results; ``elytra``, ``3platforms`` and
``3platforms-ray`` only when chosen."""
OPT_IN = ("elytra", "3platforms", "3platforms-ray")
PLATFORMS = ("3 platforms", "3 platforms on Ray")
"""The engines that are three ``platform up`` joined: a failed query there is a finding."""
PLATFORM_WORKERS = "1"
"""``ELYTRA_WORKERS`` of each of the three platforms: three pool workers (and three gateways,
each a driver or a peer) on this 2-core machine. The default (one per core) would make six
worker processes contend for two cores with DuckDB's two threads timed beside them."""
PEERS = ("polars sql", "daft sql")
"""Other engines: a refusal or a wrong answer is shown in the table, not a failed run."""


def _token() -> str:
    from platform_core.auth import TokenSigner

    # a day: an SF 10 run on a loaded machine outlasted the default hour, and its last
    # queries failed as "token expired"
    return TokenSigner(SECRET).issue("bench", admin=True, ttl_seconds=24 * 3600)


def _wait(check: Callable[[], Any], what: str, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cluster did not settle: {what}")
        time.sleep(0.2)


@contextmanager
def _nodes(homes: list[Path], env: dict[str, str]) -> Iterator[Any]:
    """Start a node on each home (the others joining the first); a client of the first."""
    from concurrent.futures import ThreadPoolExecutor

    from lake import Client
    from lake.testing import start_node, stop_node

    first = start_node(homes[0], env=env, timeout=120)
    procs = [first]
    atexit.register(stop_node, first)
    try:
        if homes[1:]:
            with ThreadPoolExecutor(len(homes) - 1) as pool:
                others = list(
                    pool.map(
                        lambda h: start_node(h, "--join", first.addr, env=env, timeout=120),
                        homes[1:],
                    )
                )
            for p in others:
                atexit.register(stop_node, p)
            procs += others
        client = Client(first.url, _token(), timeout=3600)
        _wait(
            lambda: (
                [m["state"] for m in client._call("GET", "/nodes/self").json()["members"]]
                == ["alive"] * len(homes)
            ),
            "members alive",
        )
        yield client
        client.close()
    finally:
        for p in reversed(procs):
            stop_node(p)


def _store(base: Path, n: int, files: dict[str, Path], env: dict[str, str]) -> list[Path]:
    """``n`` node homes under ``base`` holding every table (uploaded once, then reused)."""
    homes = [base / c for c in "abc"[:n]]
    if (base / "done").exists():
        return homes
    shutil.rmtree(base, ignore_errors=True)
    with _nodes(homes, env) as client:
        for name, path in files.items():
            client.upload(path, name, part_size=8 << 20)
        _wait(lambda: client._call("GET", "/nodes").json()["under_replicated"] == 0, "replicas")
    (base / "done").write_text("ok")
    return homes


class _Gateway:
    """A platform's gateway as the bench's client: Arrow answers, and which engine gave each
    (the ``x-query-engine`` header; the lake's planner answers what Elytra declines)."""

    def __init__(self, url: str) -> None:
        from lake import Client

        self.client = Client(url, _token(), timeout=3600)
        self.engines: dict[str, set[str]] = {}
        self.node_id = self.client._call("GET", "/nodes/self").json()["node_id"]
        self.watch: Any = None
        """With ``--rss``: the platforms' process trees (``_rsswatch.RssWatch``)."""

    def query_arrow(self, sql: str) -> Any:
        import pyarrow as pa

        body = {"sql": sql, "format": "arrow", "timeout": 3600}
        r = self.client._call("POST", "/query", json=body)
        self.engines.setdefault(sql, set()).add(r.headers.get("x-query-engine", "?"))
        return pa.ipc.open_stream(r.content).read_all()

    def read_bytes(self) -> int:
        """Chunk bytes this node has read from its members for readers (the lake's count)."""
        stats = self.client._call("GET", "/nodes/self").json()["stats"]
        return int(stats.get("read_bytes", 0))

    def close(self) -> None:
        self.client.close()


def _analyzed(gw: _Gateway, sql: str) -> dict[str, Any]:
    """Bytes a query moved on three platforms, from ``EXPLAIN ANALYZE`` (one more run).

    On Elytra (``plan.analyze``, ``elytra.sqlexplain``): ``to_driver``, the tasks' output
    gathered into the driver's merge on the coordinator; ``to_exchange``, their output sent to
    hash exchanges (between stages); ``from_peers``, the chunk bytes the coordinator read from
    the other two platforms for it (the lake's ``read_bytes``, ``GET /nodes/self``: without
    Ray a query runs on the pool of the platform that takes it, which fetches the chunks it
    lacks from replicas); ``tasks`` and ``peer_tasks`` (those that ran on another platform's
    node: only on Ray). On the lake's planner: its EXPLAIN's
    ``moved`` rows (``net``: from the other nodes, ``held``: all the coordinator gathered)."""
    read_before = gw.read_bytes()
    answer = gw.client.query(f"EXPLAIN ANALYZE {sql}", timeout=3600)
    fetched = gw.read_bytes() - read_before
    plan = answer.get("plan") or {}
    cols = [c["name"] for c in answer["columns"]]
    rows = [dict(zip(cols, r, strict=True)) for r in answer["rows"]]
    if plan.get("engine") != "elytra" or "analyze" not in plan:
        moves = [r for r in rows if r.get("kind") == "moved"]
        return {
            "engine": plan.get("engine", "lake"),
            "why": str(plan.get("why") or ""),
            "net": sum(int(r["bytes"]) for r in moves),
            "held": sum(int(r.get("gathered") or r["bytes"]) for r in moves),
        }
    a = plan["analyze"]
    peers = [r for r in rows if r["node"] != gw.node_id]
    return {
        "engine": "elytra",
        "backend": plan.get("backend"),
        "to_driver": int(a["bytes_to_driver"]),
        "to_exchange": int(a["bytes_between_stages"]),
        "exchanged_via_driver": int(a.get("exchanged_via_driver_bytes") or 0),
        "exchanged_by_tasks": int(a.get("exchanged_by_tasks_bytes") or 0),
        "from_peers": fetched,
        "tasks": len(rows),
        "peer_tasks": len(peers),
        "seconds": a.get("seconds"),
    }


@contextmanager
def _three_platforms(
    base: Path, files: dict[str, Path], env: dict[str, str], ray: bool = False, rss: bool = False
) -> Iterator[Any]:
    """Three ``platform up`` joined into one (``bench/_platforms.py``) on a store kept under
    ``base`` (the tables uploaded once through the first gateway, replication settled); the
    first's gateway as a :class:`_Gateway`. With ``ray``, each runs ``--ray`` on this
    machine's own address (one Ray cluster, a node per platform). With ``rss``, the gateway
    carries an ``RssWatch`` of the three process trees."""
    from _platforms import machine_address, platforms

    host = "127.0.0.1"
    if ray:
        found = machine_address()
        if found is None:
            raise SystemExit("3platforms-ray: this machine has no address but loopback")
        host = found
        env = {**env, "LAKE_ADVERTISE_HOST": host, "HOME": str(base / "user-home")}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        # off loopback a gateway wants an admin password; the bench signs its own tokens
        env["PLATFORM_ADMIN_PASSWORD"] = secrets.token_urlsafe(24)
    fresh = not (base / "done").exists()
    if fresh:
        shutil.rmtree(base, ignore_errors=True)
    with platforms(base, 3, env, host=host, ray=ray) as procs:
        gw = _Gateway(procs[0].url)
        if rss:
            from _rsswatch import RssWatch

            gw.watch = RssWatch({name: p.pid for name, p in zip("abc", procs, strict=True)})
        try:
            members = gw.client._call("GET", "/nodes/self").json()["members"]
            _wait(
                lambda: (
                    [m["state"] for m in gw.client._call("GET", "/nodes/self").json()["members"]]
                    == ["alive"] * 3
                ),
                f"three platforms alive (members: {members})",
                timeout=300,
            )
            if fresh:
                for name, path in files.items():
                    gw.client.upload(path, name, part_size=8 << 20)
            _wait(
                lambda: gw.client._call("GET", "/nodes").json()["under_replicated"] == 0,
                "replicas",
            )
            (base / "done").write_text("ok")
            yield gw
        finally:
            gw.close()


def _timed(
    call: Callable[[], Any], engine: str, took: dict[str, float]
) -> tuple[Any, dict[str, float]]:
    """``call()`` and ``took`` with the seconds it took under ``engine`` (an engine in a server
    of its own reports its own time)."""
    start = time.perf_counter()
    out = call()
    took[engine] = out.seconds if isinstance(out, Measured) else time.perf_counter() - start
    return out, took


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def _as_float(v: Any) -> Any:
    from decimal import Decimal

    return float(v) if isinstance(v, Decimal) else v


def _same(got: Any, want: Any, ordered: bool, loose: bool = False) -> str | None:
    """None when ``got`` holds DuckDB's answer, else what differs; ``loose`` (peers): decimals
    compared as floats (another engine may type a sum or an average otherwise)."""
    a = [tuple(r.values()) for r in got.to_pylist()]
    b = [tuple(r.values()) for r in want.to_pylist()]
    if loose:
        a = [tuple(map(_as_float, r)) for r in a]
        b = [tuple(map(_as_float, r)) for r in b]
    if not ordered:
        a, b = sorted(a, key=repr), sorted(b, key=repr)
    if len(a) != len(b):
        return f"{len(a)} rows, DuckDB {len(b)}"
    for x, y in zip(a, b, strict=True):
        if len(x) != len(y):
            return f"{len(x)} columns, DuckDB {len(y)}"
        if not all(_equal(u, v) for u, v in zip(x, y, strict=True)):
            return f"row {x} where DuckDB has {y}"
    return None


def _moved(client: Any, sql: str) -> dict[str, int]:
    """Bytes into the coordinator from EXPLAIN: over the network, and all it held."""
    answer = client.query(f"EXPLAIN {sql}")
    cols = [c["name"] for c in answer["columns"]]
    rows = [dict(zip(cols, r, strict=True)) for r in answer["rows"]]
    moves = [r for r in rows if r["kind"] == "moved"]
    net = sum(int(r["bytes"]) for r in moves)
    held = sum(int(r.get("gathered") or r["bytes"]) for r in moves)
    return {"net": net, "held": held, "rows": sum(int(r["rows"]) for r in moves)}


class _ElytraSQL:
    """``query_arrow`` through ``session.sql`` over the generated files (the lake clients' call)."""

    def __init__(self, session: Any, files: dict[str, Path]) -> None:
        self.session = session
        self.files = files

    def query_arrow(self, sql: str) -> Any:
        tables = {t: self.session.read_parquet(str(p)) for t, p in self.files.items()}
        return self.session.sql(sql, tables).collect()


class _PolarsSQL:
    """Polars' ``SQLContext`` over ``scan_parquet`` of the generated files, in-process."""

    def __init__(self, files: dict[str, Path]) -> None:
        import polars as pl

        self.ctx = pl.SQLContext(frames={t: pl.scan_parquet(p) for t, p in files.items()})

    def query_arrow(self, sql: str) -> Any:
        return self.ctx.execute(sql).collect().to_arrow()


def daft_sql(daft: Any, tables: dict[str, Any], sql: str) -> Any:
    """``daft.sql`` over ``tables`` (``daft.read_parquet`` frames); runs in the Daft server
    (``bench/peers/daft_server.py``), which adds ``.to_arrow()`` and times both."""
    return daft.sql(sql, register_globals=False, **tables)


class _DaftSQL:
    """``query_arrow`` through the Daft server: :class:`Measured`, Daft's own seconds."""

    def __init__(self, socket_path: str, files: dict[str, Path]) -> None:
        from _peers import DaftClient

        self.client = DaftClient(socket_path)
        self.tables = {t: [str(p)] for t, p in files.items()}

    def query_arrow(self, sql: str) -> Measured:
        return self.client.ask(__file__, "daft_sql", self.tables, sql=spec_intervals(sql))


def spec_intervals(sql: str) -> str:
    """``INTERVAL 90 DAY`` (DuckDB's form, in ``lake.tpch``) as ``INTERVAL '90' DAY``, the TPC-H
    specification's own form: Daft's SQL takes only a quoted interval value. The one rewrite
    any engine gets here."""
    import re

    return re.sub(r"INTERVAL\s+(\d+)\s+(DAY|MONTH|YEAR)\b", r"INTERVAL '\1' \2", sql, flags=re.I)


def _daft_files(files: dict[str, Path], out: Path) -> dict[str, Path]:
    """Daft's copy of the generated files (written once per scale): Daft 0.7.26 cannot read a
    Parquet file whose Arrow schema says ``string_view`` ("Unsupported Arrow DataType:
    Utf8View"), which is how ``tpchgen-cli`` types its strings. The copy has the same rows, row
    groups, codec (Snappy) and dictionary encoding, with those columns typed ``string``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def plain(t: pa.DataType) -> pa.DataType:
        return pa.string() if pa.types.is_string_view(t) else t

    copies = {}
    for name, src in files.items():
        dst = copies[name] = out / src.name
        if dst.exists():
            continue
        out.mkdir(parents=True, exist_ok=True)
        reader = pq.ParquetFile(src)
        schema = pa.schema([f.with_type(plain(f.type)) for f in reader.schema_arrow])
        tmp = dst.with_suffix(".partial")
        with pq.ParquetWriter(tmp, schema, compression="snappy") as w:
            for i in range(reader.num_row_groups):
                group = reader.read_row_group(i).cast(schema)
                w.write_table(group, row_group_size=max(1, group.num_rows))
        tmp.rename(dst)
    return copies


@contextmanager
def _daft(files: dict[str, Path]) -> Iterator[_DaftSQL]:
    from _peers import daft_server

    with daft_server() as params:
        client = _DaftSQL(params["daft_socket"], files)
        try:
            yield client
        finally:
            client.client.close()


@contextmanager
def _elytra(files: dict[str, Path], home: Path) -> Iterator[_ElytraSQL]:
    import elytra

    with elytra.connect(home=home, backend="local", workers=THREADS, progress=False) as s:
        yield _ElytraSQL(s, files)


def _times(ratio: float | None) -> str:
    """A ratio as the tables show it; "n/a" for an engine that did not run (not 0.00x)."""
    return "n/a" if not ratio else f"{ratio:.2f}x"


def _geomean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def main(argv: list[str] | None = None) -> None:
    import duckdb

    from lake.sql.tpch import QUERIES, generate

    ap = argparse.ArgumentParser(prog="bench/tpch_bench.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="scale 0.01, one run, small chunks")
    ap.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per engine and query")
    ap.add_argument("--fresh", action="store_true", help="discard stored results of this scale")
    ap.add_argument("--query", type=int, action="append", help="run only these queries")
    ap.add_argument("--baseline-src", type=Path, help="a lake src dir to measure as 'before'")
    ap.add_argument("--elytra", action="store_true", help="also session.sql on a local pool")
    ap.add_argument(
        "--rss",
        action="store_true",
        help="record the platforms' peak RSS above each query's start (from /proc)",
    )
    ap.add_argument(
        "--engine",
        action="append",
        choices=sorted(ENGINES),
        help="run only these engines (default: all but the opt-in elytra, 3platforms and "
        "3platforms-ray; duckdb always runs)",
    )
    args = ap.parse_args(argv)
    chosen = {ENGINES[e] for e in args.engine or [e for e in ENGINES if e not in OPT_IN]}
    chosen.add("duckdb")
    if args.elytra:
        chosen.add("elytra sql")
    scale = 0.01 if args.quick else args.scale
    runs = 1 if args.quick else args.runs
    numbers = sorted(args.query or QUERIES)
    cache = DATA_CACHE / "tpch_bench" / f"scale-{scale:g}"
    env = {**ENV, **({"LAKE_CHUNK_BYTES": QUICK_CHUNK} if args.quick else {})}
    files = generate(scale, cache / "parquet")
    results_path = RESULTS / "tpch_bench.json"
    stored = json.loads(results_path.read_text()) if results_path.exists() else {}
    key = f"scale-{scale:g}"
    if args.fresh or key not in stored:
        stored[key] = {}
    results: dict[str, dict[str, Any]] = stored[key]

    def save() -> None:
        results_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = results_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
        os.replace(tmp, results_path)

    one = _store(cache / "one", 1, files, env) if "1 node" in chosen else []
    three = _store(cache / "three", 3, files, env) if "3 nodes" in chosen else []
    duck = duckdb.connect(config={"threads": THREADS})
    for name, path in files.items():
        duck.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    failures: list[str] = []

    def measure(engines: dict[str, Any]) -> None:
        """Every query on these engines (name -> client, None: DuckDB), interleaved."""
        for n in numbers:
            sql = QUERIES[n]
            row = results.setdefault(f"q{n:02d}", {})
            todo = [e for e in engines if e not in row]
            if not todo:
                continue
            ordered = "ORDER BY" in sql.upper().split(")")[-1]
            want, first = _timed(lambda q=sql: duck.sql(q).to_arrow_table(), "duckdb", {})
            call: dict[str, Callable[[], Any]] = {}
            verdict: dict[str, dict[str, str]] = {}
            for e in todo:
                client = engines[e]
                if client is None:
                    call[e] = lambda q=sql: duck.sql(q).to_arrow_table()
                    continue
                call[e] = lambda c=client, q=sql: c.query_arrow(q)
                if e in PEERS:  # a peer's refusal or wrong answer is shown, not fatal
                    try:
                        got = _timed(call[e], e, first)[0]
                    except Exception as exc:
                        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
                        row[e] = {"refused": reason}
                        del call[e]
                        continue
                    got = got.output if isinstance(got, Measured) else got
                    wrong = _same(got, want, ordered, loose=True)
                    if wrong is not None:
                        verdict[e] = {"wrong": wrong[:300]}
                    continue
                if e in PLATFORMS:  # a query that fails is a finding: noted, the rest go on
                    if client.watch is not None:
                        client.watch.start()
                    try:
                        got = _timed(call[e], e, first)[0]
                    except Exception as exc:
                        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
                        row[e] = {"failed": reason}
                        failures.append(f"q{n:02d} on {e}: failed: {reason}")
                        del call[e]
                        continue
                    wrong = _same(got, want, ordered)
                else:
                    wrong = _same(_timed(call[e], e, first)[0], want, ordered)  # warm, and check
                if wrong is not None:
                    failures.append(f"q{n:02d} on {e}: {wrong}")
                    if e in PLATFORMS:
                        verdict[e] = {"wrong": wrong[:300]}
            todo = [e for e in todo if e in call]
            # --quick: the checked call is the one timed run (there the script has only to run)
            timed = [e for e in todo if not (args.quick and e in first)]
            times: dict[str, list[float]] = {e: [] if e in timed else [first[e]] for e in todo}
            for _ in range(runs):
                for e in timed:
                    start = time.perf_counter()
                    out = call[e]()
                    took = time.perf_counter() - start
                    # an engine in a server of its own reports its own time
                    times[e].append(out.seconds if isinstance(out, Measured) else took)
            for e in todo:
                row[e] = {
                    "median": statistics.median(times[e]),
                    "times": times[e],
                    **verdict.get(e, {}),
                }
                if e.startswith("3 nodes"):
                    row[e]["moved"] = _moved(engines[e], sql)
                if e in PLATFORMS:
                    row[e]["engine"] = sorted(engines[e].engines.get(sql, ()))
                    if engines[e].watch is not None:  # the peaks of the checked and timed runs
                        row[e]["rss"] = engines[e].watch.peaks()
                    try:
                        row[e]["analyzed"] = _analyzed(engines[e], sql)
                    except Exception as exc:  # a finding for the table, not a lost run
                        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
                        row[e]["analyzed"] = {"failed": reason}
            print(f"  q{n:02d}: " + ", ".join(_cell(row, e) for e in row), file=sys.stderr)
            save()

    with ExitStack() as stack:
        engines: dict[str, Any] = {"duckdb": None}
        if "1 node" in chosen:
            engines["1 node"] = stack.enter_context(_nodes(one, env))
        if "3 nodes" in chosen:
            engines["3 nodes"] = stack.enter_context(_nodes(three, env))
        if "polars sql" in chosen:
            engines["polars sql"] = _PolarsSQL(files)
        if "daft sql" in chosen:
            try:
                copies = _daft_files(files, cache / "parquet-daft")
                engines["daft sql"] = stack.enter_context(_daft(copies))
            except Exception as exc:  # no Daft environment (no PyPI?): say so, run the rest
                print(f"  daft sql: not started: {exc}", file=sys.stderr)
        if args.baseline_src is not None and "3 nodes" in chosen:
            # a copy of the three-node store, so both clusters run side by side, interleaved
            copy = cache / "three-before"
            if not (copy / "done").exists():
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(three[0].parent, copy)
            before_env = {**env, "PYTHONPATH": str(args.baseline_src.resolve())}
            homes = [copy / h.name for h in three]
            engines["3 nodes (before)"] = stack.enter_context(_nodes(homes, before_env))
        if "elytra sql" in chosen:
            engines["elytra sql"] = stack.enter_context(_elytra(files, cache / "elytra-home"))
        platform_env = {**env, "ELYTRA_WORKERS": PLATFORM_WORKERS}
        if args.quick:
            platform_env["ELYTRA_TASK_BYTES"] = QUICK_CHUNK
        if "3 platforms" in chosen:
            engines["3 platforms"] = stack.enter_context(
                _three_platforms(cache / "platforms", files, platform_env, rss=args.rss)
            )
        if "3 platforms on Ray" in chosen:
            engines["3 platforms on Ray"] = stack.enter_context(
                _three_platforms(
                    cache / "platforms-ray", files, platform_env, ray=True, rss=args.rss
                )
            )
        measure(engines)
    if engines.keys() & {"1 node", "3 nodes", "elytra sql"}:  # the lake nodes' table
        print(report(results, numbers, scale, runs, args.baseline_src is not None, args.elytra))
    for name in PLATFORMS:
        if name in engines:
            print()
            print(platforms_report(results, numbers, scale, runs, name))
    peers = [e for e in PEERS if e in engines]
    if peers:
        print()
        print(peer_report(results, numbers, scale, runs, peers))
    if failures:
        print("\nWRONG ANSWERS:\n" + "\n".join(failures))
        sys.exit(1)


def report(
    results: dict[str, dict[str, Any]],
    numbers: list[int],
    scale: float,
    runs: int,
    before: bool,
    with_elytra: bool = False,
) -> str:
    """The markdown table: medians, ratios to DuckDB, MiB into the coordinator, geomeans."""
    mib = 1 << 20

    def ms(x: float | None) -> str:
        return "n/a" if x is None else f"{x * 1000:.0f}"

    head = "| query | DuckDB ms | 1 node ms | 3 nodes ms | 1 node / DuckDB | 3 nodes / DuckDB "
    head += "| into coordinator MiB (net / held) |"
    sep = "|---|---:|---:|---:|---:|---:|---:|"
    if before:
        head += " 3 nodes before / DuckDB | before: net MiB |"
        sep += "---:|---:|"
    if with_elytra:
        head += " elytra sql ms | elytra sql / DuckDB |"
        sep += "---:|---:|"
    re_: list[float] = []
    lines = [f"### TPC-H at SF {scale:g}, median of {runs} runs", "", head, sep]
    r1: list[float] = []
    r3: list[float] = []
    rb: list[float] = []
    for n in numbers:
        row = results.get(f"q{n:02d}", {})

        def med(e: str, row: dict[str, Any] = row) -> float | None:
            return row[e]["median"] if e in row else None

        d, o, t = med("duckdb"), med("1 node"), med("3 nodes")
        a = o / d if o and d else None
        b = t / d if t and d else None
        r1 += [a] if a else []
        r3 += [b] if b else []
        moved = row.get("3 nodes", {}).get("moved", {})
        line = (
            f"| q{n:02d} | {ms(d)} | {ms(o)} | {ms(t)} | {a or 0:.2f}x | {b or 0:.2f}x "
            f"| {moved.get('net', 0) / mib:.1f} / {moved.get('held', 0) / mib:.1f} |"
        )
        if before:
            tb = med("3 nodes (before)")
            c = tb / d if tb and d else None
            rb += [c] if c else []
            bm = row.get("3 nodes (before)", {}).get("moved", {})
            line += f" {c or 0:.2f}x | {bm.get('net', 0) / mib:.1f} |"
        if with_elytra:
            te = med("elytra sql")
            r = te / d if te and d else None
            re_ += [r] if r else []
            line += f" {ms(te)} | {r or 0:.2f}x |"
        lines.append(line)
    g1, g3, gb = _geomean(r1), _geomean(r3), _geomean(rb)
    foot = f"| geometric mean | | | | {g1 or 0:.2f}x | {g3 or 0:.2f}x | |"
    if before:
        foot += f" {gb or 0:.2f}x | |"
    if with_elytra:
        foot += f" | {_geomean(re_) or 0:.2f}x |"
    lines.append(foot)
    lines.append("")
    lines.append(
        "Ratios are our median over DuckDB's (above 1: DuckDB is faster). 'net' came to the "
        "coordinator over the network from the other nodes; 'held' is all it gathered (its own "
        "fragments' results too)."
    )
    return "\n".join(lines)


def platforms_report(
    results: dict[str, dict[str, Any]],
    numbers: list[int],
    scale: float,
    runs: int,
    name: str = "3 platforms",
) -> str:
    """Three platforms (engine ``name``: Elytra's route, with Ray or without) beside DuckDB
    and three bare lake nodes: medians, ratios, the engine that answered, and the bytes
    EXPLAIN ANALYZE reports."""
    mib = 1 << 20
    lines = [
        f"### TPC-H at SF {scale:g} on {name}, median of {runs} runs",
        "",
        f"| query | DuckDB ms | 3 nodes (lake planner) ms | {name} ms | 3 nodes / DuckDB "
        f"| {name} / DuckDB | engine | MiB into the coordinator | chunk MiB from peers "
        "| exchange MiB between tasks | tasks (on peers) |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    r3: list[float] = []
    rp: list[float] = []
    notes: list[str] = []
    for n in numbers:
        row = results.get(f"q{n:02d}", {})
        d = row.get("duckdb", {}).get("median")
        t = row.get("3 nodes", {}).get("median")
        p = row.get(name, {})
        a = t / d if t and d else None
        b = p["median"] / d if "median" in p and d else None
        r3 += [a] if a else []
        rp += [b] if b and "wrong" not in p else []
        z = p.get("analyzed", {})
        if "failed" in p:
            cell, engine = "failed", ""
            notes.append(f"- q{n:02d} failed on {name}: {p['failed']}")
        else:
            cell = "n/a" if "median" not in p else f"{p['median'] * 1000:.0f}"
            cell += " WRONG" if "wrong" in p else ""
            engine = "/".join(p.get("engine", []))
            if "wrong" in p:
                notes.append(f"- q{n:02d} answered wrong on {name}: {p['wrong']}")
        if "failed" in z:
            notes.append(f"- q{n:02d}: EXPLAIN ANALYZE failed: {z['failed']}")
        if z.get("engine") == "elytra":
            on_ray = z.get("backend") == "ray"
            between = z.get("exchanged_by_tasks", 0) if on_ray else 0
            into = z["to_driver"] + (
                z.get("exchanged_via_driver", 0) if on_ray else z["to_exchange"]
            )
            moved = (
                f"{into / mib:.1f} | {z['from_peers'] / mib:.1f} | {between / mib:.1f} "
                f"| {z['tasks']} ({z['peer_tasks']})"
            )
        elif "net" in z:  # the lake's planner answered EXPLAIN ANALYZE
            notes.append(f"- q{n:02d} on the lake's planner: {z.get('why') or 'no reason given'}")
            moved = f"{z['held'] / mib:.1f} (lake: held) | {z['net'] / mib:.1f} (lake: net) | | "
        else:
            moved = " | | | "
        lines.append(
            f"| q{n:02d} | {'n/a' if d is None else f'{d * 1000:.0f}'} "
            f"| {'n/a' if t is None else f'{t * 1000:.0f}'} | {cell} "
            f"| {_times(a)} | {_times(b)} | {engine} | {moved} |"
        )
    lines.append(
        f"| geometric mean | | | | {_times(_geomean(r3))} "
        f"| {_times(_geomean(rp))} ({len(rp)}/{len(numbers)}) | | | | | |"
    )
    lines += [
        "",
        "engine: the x-query-engine header of the timed answers. From EXPLAIN ANALYZE (one more "
        "run): 'into the coordinator' is the tasks' output gathered into the driver's merge "
        "(plan.analyze's bytes_to_driver) plus the rows of hash exchanges that passed through "
        "the driver: without Ray every exchange's (bytes_between_stages: all tasks run on the "
        "coordinator's pool), on Ray only those the driver partitioned "
        "(exchanged_via_driver_bytes); 'exchange MiB between tasks' is, on Ray, the rows the "
        "tasks partitioned on their own nodes and handed to the next stage's tasks as Ray "
        "objects (exchanged_by_tasks_bytes). 'chunk MiB from peers' is what the coordinator's "
        "lake read from the two other platforms for the query (the lake's read_bytes: without "
        "Ray a query runs on the pool of the platform that takes it, the chunks it lacks "
        "fetched from replicas; the bytes between nodes).",
    ]
    if notes:
        lines += ["", *notes]
    lines += rss_report(results, numbers, name)
    return "\n".join(lines)


def rss_report(results: dict[str, dict[str, Any]], numbers: list[int], name: str) -> list[str]:
    """With ``--rss``: per query and platform, the peaks above the query's start (MiB,
    ``_rsswatch``): the platform's own process (the coordinator's merge runs in the first),
    the largest own memory of a process under it (a pool or Ray worker), and the shared
    memory its processes map (the Ray node's object store)."""
    rows = [(n, results.get(f"q{n:02d}", {}).get(name, {}).get("rss")) for n in numbers]
    if not any(r for _, r in rows):
        return []
    lines = [
        "",
        f"Memory above each query's start on {name}, MiB: per platform, its own process "
        "(its heap and mapped files; in brackets the kernel's peak RSS, VmHWM) / the largest "
        "own memory of a task worker under it (pool or Ray) / of any process under it (Ray's "
        "raylet holds the node's object store) / the shared memory they map (the object "
        "store's pages). Processes born during the query count whole.",
        "",
        "| query | a (coordinator) | b | c | largest process under a platform |",
        "|---|---:|---:|---:|---|",
    ]
    for n, r in rows:
        if not r:
            continue
        cells = " | ".join(
            f"{r[k]['self_mib']:.0f} ({r[k].get('self_hwm_mib', r[k]['self_mib']):.0f}) / "
            f"{r[k].get('worker_mib', r[k]['child_mib']):.0f} / {r[k]['child_mib']:.0f} / "
            f"{r[k].get('shared_mib', 0):.0f}"
            for k in "abc"
        )
        worst = max(r.values(), key=lambda v: v["child_mib"])
        lines.append(f"| q{n:02d} | {cells} | {str(worst['child'])[:40]} |")
    return lines


def _cell(row: dict[str, Any], e: str) -> str:
    r = row[e]
    if "refused" in r:
        return f"{e} refused"
    if "failed" in r:
        return f"{e} FAILED"
    text = f"{e} {r['median'] * 1000:.0f} ms{' WRONG' if 'wrong' in r else ''}"
    if r.get("engine") and r["engine"] != ["elytra"]:
        text += f" (answered by {'+'.join(r['engine'])})"  # the lake's planner took it
    mem = r.get("rss", {}).get("a")
    if mem:  # a stopped run still shows the coordinator's memory, heap and files apart
        text += (
            f" [coordinator {mem['self_mib']:.0f} MiB: heap {mem.get('self_anon_mib', 0):.0f},"
            f" files {mem.get('self_file_mib', 0):.0f}]"
        )
    return text


def peer_report(
    results: dict[str, dict[str, Any]],
    numbers: list[int],
    scale: float,
    runs: int,
    peers: list[str],
) -> str:
    """DuckDB and the peers on one machine: medians, ratios to DuckDB, refusals, wrong answers."""
    head = "| query | DuckDB ms |" + "".join(f" {p} ms | {p} / DuckDB |" for p in peers)
    lines = [
        f"### TPC-H at SF {scale:g} on one machine: peers, median of {runs} runs",
        "",
        head,
        "|---|---:|" + "---:|---:|" * len(peers),
    ]
    ratios: dict[str, list[float]] = {p: [] for p in peers}
    notes: list[str] = []
    for n in numbers:
        row = results.get(f"q{n:02d}", {})
        d = row.get("duckdb", {}).get("median")
        line = f"| q{n:02d} | {'n/a' if d is None else f'{d * 1000:.0f}'} |"
        for p in peers:
            r = row.get(p)
            if r is None:
                line += " n/a | |"
            elif "refused" in r:
                line += " refused | |"
                notes.append(f"- q{n:02d}, {p} refused: {r['refused']}")
            elif "wrong" in r:
                line += f" wrong ({r['median'] * 1000:.0f}) | |"
                notes.append(f"- q{n:02d}, {p} answered wrong: {r['wrong']}")
            else:
                ratio = r["median"] / d if d else None
                ratios[p] += [ratio] if ratio else []
                line += f" {r['median'] * 1000:.0f} | {ratio or 0:.2f}x |"
        lines.append(line)
    lines.append(
        "| geometric mean (queries answered) | |"
        + "".join(
            f" {len(ratios[p])}/{len(numbers)} | {_geomean(ratios[p]) or 0:.2f}x |" for p in peers
        )
    )
    lines.append("")
    lines.append(
        "Ratios are the peer's median over DuckDB's (above 1: DuckDB is faster); the geometric "
        "mean is over the queries the peer answered right. daft sql's time is its server's own "
        "clock around the query and `.to_arrow()`."
    )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
