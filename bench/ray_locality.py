"""Issue 34's figures: a job on three `platform up --ray` with its tasks placed by their chunks,
against the same job with locality off (`ELYTRA_PEERS=false`: every task on the driver's node,
which reads the chunks it lacks from replicas) and on one platform, DuckDB beside them.

The data (seeded): ``--rows`` rows of ``id``, ``grp`` (1,000 groups), ``amount``, uploaded
through the first platform in chunks of ``--chunk-kib`` KiB, each kept on two platforms. The
job (a filter and a group-by, one task per chunk) is submitted on the third platform. Per
setting: the wall time from submit to the end of the record (median of ``--runs`` after a warm
run), the chunk bytes the platforms read from each other for it (the lake's ``read_bytes``,
``GET /api/lake/nodes/self``: measured, summed over the platforms), the share of tasks that
ran on a node holding their chunks (from the job's record and the chunk directories), and the
time `platform up --ray` took to answer ``/health`` against `platform up` without Ray. A second
job, a self-join through a hash exchange, shows where the exchange's rows went: partitioned by
the tasks on their own nodes and sent between nodes as Ray objects, or brought to the driver
(``ELYTRA_RAY_EXCHANGE=driver``, the way before issue 34 item 3), with its time.

The platforms listen on this machine's own address (Ray's worker nodes cannot join a
loopback head). ``--quick`` (CI's bench-quick): one platform with and one without ``--ray``,
a small table, one run: the script's plumbing and the answer, no figures worth keeping (three
Ray nodes on a loaded 2-core CI machine start too slowly; their test is held likewise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _platforms import machine_address

SECRET = "ray-locality-bench-" + "s" * 32
PASSWORD = "ray-locality-bench-password"
JOB = {
    "source": {"dataset": "spread"},
    "steps": [
        {"filter": "amount > 100"},
        {"group_by": ["grp"], "agg": ["count(*) AS n", "sum(amount) AS total"]},
    ],
}
ORACLE = "SELECT grp, count(*) AS n, sum(amount) AS total FROM t WHERE amount > 100 GROUP BY grp"
JOIN = {
    "source": {"dataset": "spread"},
    "steps": [
        {"filter": "amount > 100"},
        {
            "join": {
                "source": {"dataset": "spread"},
                "steps": [{"select": ["id", "amount AS a2"]}, {"filter": "a2 > 500"}],
            },
            "on": "id",
        },
        {"group_by": ["grp"], "agg": ["count(*) AS n", "sum(amount) AS total"]},
    ],
}
"""A self-join on ``id`` through a hash exchange (``ELYTRA_BROADCAST_BYTES=0`` in every
setting: neither side is broadcast), then the group-by."""
JOIN_ORACLE = (
    "SELECT t.grp, count(*) AS n, sum(t.amount) AS total FROM t JOIN t AS o ON t.id = o.id "
    "WHERE t.amount > 100 AND o.amount > 500 GROUP BY t.grp"
)


def _table(rows: int) -> pa.Table:
    rng = np.random.default_rng(34)
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "grp": rng.integers(0, 1000, rows).astype(np.int32),
            "amount": np.round(rng.uniform(0, 1000, rows), 2),
        }
    )


def _headers(sub: str, admin: bool = False) -> dict[str, str]:
    from platform_core.auth import TokenSigner

    return {"authorization": f"Bearer {TokenSigner(SECRET).issue(sub, admin=admin)}"}


@contextmanager
def _platforms(
    base: Path, n: int, host: str, env: dict[str, str], ray: bool = True
) -> Iterator[tuple[list[Any], list[float]]]:
    """``n`` platforms (the others joined to the first), each with ``--ray`` when ``ray``;
    yields them and the seconds each took to answer ``/health``."""
    from platform_core.testing import launch

    exe = str(Path(sys.executable).parent / "platform")
    procs: list[Any] = []
    seconds: list[float] = []
    common = {
        "PLATFORM_SECRET": SECRET,
        "PLATFORM_ADMIN_PASSWORD": PASSWORD,
        "LAKE_ADVERTISE_HOST": host,
        "HOME": str(base / "user-home"),
        "RAY_USAGE_STATS_ENABLED": "0",
        **env,
    }
    try:
        for i in range(n):
            home = base / f"p{i}"
            argv = [exe, "up", "--host", host, "--port", "0", "--home", str(home)]
            argv += ["--ray"] if ray else []
            if procs:
                argv += ["--join", procs[0].url.split("//", 1)[1]]
            home.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            procs.append(launch(argv, env=common, timeout=300, stderr=home / "server.log"))
            seconds.append(time.perf_counter() - started)
        yield procs, seconds
    finally:
        for p in reversed(procs):
            p.stop(timeout=90)


def _wait(check: Any, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def _read_bytes(urls: list[str]) -> int:
    admin = _headers("admin", admin=True)
    return sum(
        int(
            httpx.get(f"{u}/api/lake/nodes/self", headers=admin, timeout=30)
            .json()["stats"]
            .get("read_bytes", 0)
        )
        for u in urls
    )


def _held(home: Path) -> set[str]:
    node_id = (home / "lake" / "node-id").read_text().strip()
    return {p.stem for p in (home / "lake" / node_id / "chunks").glob("*.parquet")}


def _run_job(url: str, pipeline: dict[str, Any] = JOB) -> tuple[float, dict[str, Any], list[Any]]:
    user = _headers("alice")
    with httpx.Client(base_url=url, timeout=60) as http:
        started = time.perf_counter()
        r = http.post("/api/jobs", json={"pipeline": pipeline}, headers=user)
        r.raise_for_status()
        job_id = r.json()["id"]
        while True:
            job = http.get(f"/api/jobs/{job_id}", headers=user).json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if job["state"] != "succeeded":
            raise SystemExit(f"the job {job['state']}: {job.get('error')}")
        rows = http.get(f"/api/jobs/{job_id}/result", headers=user).json()["rows"]
    return seconds, job, rows


def _same(rows: list[Any], want: list[Any]) -> None:
    got = sorted(tuple(r) for r in rows)
    if len(got) != len(want) or any(
        g[:2] != w[:2] or abs(g[2] - w[2]) > 1e-6 * max(1.0, abs(w[2]))
        for g, w in zip(got, want, strict=True)
    ):
        raise SystemExit("the job's answer is not DuckDB's")


def _join_runs(url: str, runs: int, want: list[Any]) -> dict[str, Any]:
    """The self-join's median time and the bytes of its exchange partitioned by the driver
    (rows that came to it) and by the tasks (on their own node)."""
    _run_job(url, JOIN)  # warm
    times, exchanged = [], {}
    for _ in range(runs):
        seconds, job, rows = _run_job(url, JOIN)
        _same(rows, want)
        times.append(seconds)
        exchanged = job.get("stages", {}).get("exchanged", {})
    return {
        "seconds": statistics.median(times),
        "via_driver_mib": exchanged.get("via_driver_bytes", 0) / 2**20,
        "by_tasks_mib": exchanged.get("by_tasks_bytes", 0) / 2**20,
    }


def _setting(
    base: Path,
    n: int,
    host: str,
    env: dict[str, str],
    table: Path,
    runs: int,
    want: list[Any],
    join_want: list[Any],
) -> dict[str, Any]:
    """One setting: ``n`` platforms with ``env``; the job's median time, bytes, locality, and
    the self-join's (:func:`_join_runs`)."""
    with _platforms(base, n, host, env) as (procs, _):
        urls = [p.url for p in procs]
        admin = _headers("admin", admin=True)
        if n > 1:
            _wait(
                lambda: (
                    int(
                        httpx.get(f"{urls[0]}/api/jobs/pool", headers=admin)
                        .json()["ray"]
                        .get("node_count")
                        or 0
                    )
                    == n
                ),
                f"{n} Ray nodes",
            )
        from lake import Client

        with Client(urls[0], _headers("alice")["authorization"].split()[1]) as client:
            client.upload(table, "spread")
        _wait(
            lambda: (
                httpx.get(f"{urls[0]}/api/lake/nodes", headers=admin, timeout=30).json()[
                    "under_replicated"
                ]
                == 0
            ),
            "every chunk on its replicas",
        )
        _run_job(urls[-1])  # warm: Ray's workers, the pool
        times, moved = [], []
        job: dict[str, Any] = {}
        for _ in range(runs):
            before = _read_bytes(urls)
            seconds, job, rows = _run_job(urls[-1])
            moved.append(_read_bytes(urls) - before)
            times.append(seconds)
            _same(rows, want)
        held = {
            (h / "lake" / "node-id").read_text().strip(): _held(h)
            for h in [base / f"p{i}" for i in range(n)]
        }
        tasks = [t for t in job["timeline"]["tasks"].values() if t.get("chunks")]
        near = sum(set(t["chunks"]) <= held.get(t.get("node", ""), set()) for t in tasks)
        nodes = {t.get("node") for t in tasks}
        joined = _join_runs(urls[-1], runs, join_want)
    return {
        "join": joined,
        "seconds": statistics.median(times),
        "read_mib": statistics.median(moved) / 2**20,
        "tasks": len(tasks) or len(job["timeline"]["tasks"]),
        "near": near if tasks else None,
        "nodes": len(nodes) if tasks else 1,
    }


def _startup(base: Path, host: str) -> tuple[float, float]:
    """Seconds to ``/health`` of one `platform up --ray` and one `platform up` (fresh homes)."""
    with _platforms(base / "with", 1, host, {}, ray=True) as (_, with_ray):
        pass
    with _platforms(base / "without", 1, host, {}, ray=False) as (_, without):
        pass
    return with_ray[0], without[0]


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench/ray_locality.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one platform, a small table, one run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--chunk-kib", type=int, default=4096)
    ap.add_argument(
        "--fresh", action="store_true", help="accepted as every bench takes it: nothing is kept"
    )
    args = ap.parse_args()
    host = machine_address()
    if host is None:
        print("ray_locality: this machine has no address but loopback; skipped")
        return
    rows = 200_000 if args.quick else args.rows
    chunk = 256 if args.quick else args.chunk_kib
    env = {
        "LAKE_CHUNK_BYTES": str(chunk << 10),
        "ELYTRA_TASK_BYTES": "1",
        "ELYTRA_BROADCAST_BYTES": "0",  # the self-join through its hash exchange
    }
    with tempfile.TemporaryDirectory(prefix="ray-locality-") as tmp:
        base = Path(tmp)
        table = _table(rows)
        path = base / "t.parquet"
        pq.write_table(table, path)
        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute(f"CREATE VIEW t AS SELECT * FROM '{path}'")
        want = sorted(con.sql(ORACLE).fetchall())
        join_want = sorted(con.sql(JOIN_ORACLE).fetchall())
        duck, duck_join = [], []
        for _ in range(max(1, args.runs)):
            started = time.perf_counter()
            con.sql(ORACLE).fetchall()
            duck.append(time.perf_counter() - started)
            started = time.perf_counter()
            con.sql(JOIN_ORACLE).fetchall()
            duck_join.append(time.perf_counter() - started)
        with_ray, without = _startup(base / "startup", host)
        wants = (path, args.runs, want, join_want)
        out = {"1 platform": _setting(base / "one", 1, host, env, *wants)}
        if not args.quick:
            out["3 platforms, locality"] = _setting(base / "three", 3, host, env, *wants)
            off = {**env, "ELYTRA_PEERS": "false"}
            out["3 platforms, locality off"] = _setting(base / "off", 3, host, off, *wants)
            via = {**env, "ELYTRA_RAY_EXCHANGE": "driver"}
            out["3 platforms, exchange through the driver"] = _setting(
                base / "via", 3, host, via, *wants
            )
    print(
        f"\n{rows:,} rows, chunks of {chunk} KiB, {args.runs} runs (medians); the job on the "
        "last platform"
    )
    print(
        "| setting | job | / DuckDB | chunk MiB read between platforms | tasks | next to "
        "their chunks | nodes |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    d = statistics.median(duck)
    for name, r in out.items():
        near = "n/a" if r["near"] is None else f"{r['near']} of {r['tasks']}"
        print(
            f"| {name} | {r['seconds'] * 1000:.0f} ms | {r['seconds'] / d:.1f} | "
            f"{r['read_mib']:.1f} | {r['tasks']} | {near} | {r['nodes']} |"
        )
    print(f"| DuckDB (threads=2), the same Parquet file | {d * 1000:.0f} ms | 1.0 | | | | |")
    dj = statistics.median(duck_join)
    print("\nThe self-join through a hash exchange (the same settings)")
    print("| setting | job | / DuckDB | MiB partitioned by the driver | MiB by the tasks |")
    print("|---|---:|---:|---:|---:|")
    for name, r in out.items():
        j = r["join"]
        print(
            f"| {name} | {j['seconds'] * 1000:.0f} ms | {j['seconds'] / dj:.1f} | "
            f"{j['via_driver_mib']:.1f} | {j['by_tasks_mib']:.1f} |"
        )
    print(f"| DuckDB (threads=2) | {dj * 1000:.0f} ms | 1.0 | | |")
    print(
        f"\n`platform up` to /health: {with_ray:.1f} s with --ray, {without:.1f} s without "
        f"(Ray's start-up {with_ray - without:.1f} s)"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
