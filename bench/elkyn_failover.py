"""Elkyn's elected primary (issue 29): what semi-synchronous acknowledgement costs, and failover time.

Three ``elkyn serve --election-port`` servers on 127.0.0.1 (durable LMDB each), measured with
``ELKYN_SYNC_REPLICAS=0`` and ``=1``, beside the peers: one ``elkyn serve`` alone (no election,
no replica), and a primary with two fixed ``--replica-of`` replicas (the cluster before issue
29: asynchronous, no failover); the same build and disk, all servers on this machine. Workloads, in the same run:

- latency: one client, sequential ``PUT``s to the primary (p50, p99 ms);
- throughput: 8 clients on keep-alive connections, ``PUT``s to the primary for a while;
- failover (``SYNC_REPLICAS=1``): SIGKILL of the primary, then the seconds until a client
  retrying on the two others every 50 ms has a write acknowledged again.

``python bench/elkyn_failover.py [--quick] [--runs N]``; results in
``bench/results/elkyn_failover.json``. Timings on a shared machine: quote the load (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from platform_core.auth import TokenSigner
from platform_core.testing import ServerProcess, free_port, launch

SECRET = "b" * 40
RESULTS = Path(__file__).resolve().parent / "results" / "elkyn_failover.json"
ADMIN = {"Authorization": f"Bearer {TokenSigner(SECRET).issue('bench', admin=True)}"}
CLUSTER = {"Authorization": f"Bearer {TokenSigner(SECRET).cluster_token('bench')}"}


def start(
    home: Path, n: int, sync: int | None, fixed: bool = False
) -> list[tuple[str, ServerProcess | None, list[str]]]:
    """``n`` servers (1: alone, no election; ``fixed``: the first a primary, the others its
    ``--replica-of``, as before issue 29); returns (url, process, argv) per server."""
    ports = [(free_port(), free_port()) for _ in range(n)]
    peers = [f"--peer=127.0.0.1:{r}=http://127.0.0.1:{p}" for p, r in ports]
    servers = []
    for i, (port, raft) in enumerate(ports):
        (home / f"s{i}").mkdir(parents=True)
        argv = [sys.executable, "-m", "elkyn", "serve", "--port", str(port)]
        if fixed and i > 0:
            argv += ["--replica-of", f"http://127.0.0.1:{ports[0][0]}"]
        elif n > 1 and not fixed:
            argv += ["--election-port", str(raft), *peers]
        env = {"PLATFORM_SECRET": SECRET, "PLATFORM_HOME": str(home / f"s{i}")}
        if sync is not None:
            env["ELKYN_SYNC_REPLICAS"] = str(sync)
        url = f"http://127.0.0.1:{port}"
        servers.append((url, launch(argv, env=env, url=url, timeout=60), argv))
    return servers


def primary_of(servers: list[Any], timeout: float = 60) -> int:
    if len(servers) == 1 or "--election-port" not in servers[0][2]:
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, (url, proc, _) in enumerate(servers):
            if proc is None:
                continue
            try:
                s = httpx.get(f"{url}/.replication/status", headers=CLUSTER, timeout=2).json()
            except (httpx.HTTPError, ValueError):
                continue
            if s.get("serving"):
                return i
        time.sleep(0.1)
    raise RuntimeError("no primary elected")


def latency(url: str, count: int) -> dict[str, float]:
    times = []
    with httpx.Client(headers=ADMIN, timeout=30) as http:
        for i in range(count):
            t = time.perf_counter()
            r = http.put(f"{url}/lat/k{i}.json", json={"i": i, "pad": "x" * 100})
            times.append(time.perf_counter() - t)
            r.raise_for_status()
    times.sort()
    return {
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
    }


def throughput(url: str, seconds: float, clients: int = 8) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def run(c: int) -> None:
        with httpx.Client(headers=ADMIN, timeout=30) as http:
            n = 0
            while time.monotonic() < stop:
                n += 1
                http.put(f"{url}/tp/c{c}/k{n}.json", json=n).raise_for_status()
                done[c] += 1

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds


def failover(servers: list[Any]) -> float:
    """SIGKILL the primary; seconds until a write on a survivor is acknowledged."""
    p = primary_of(servers)
    servers[p][1].proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    servers[p][1].proc.wait()
    survivors = [url for i, (url, _, _) in enumerate(servers) if i != p]
    with httpx.Client(headers=ADMIN, timeout=3) as http:
        n = 0
        while True:
            n += 1
            try:
                r = http.put(f"{survivors[n % 2]}/fo/k{n}.json", json=n)
                if r.status_code == 200:
                    return time.monotonic() - killed
            except httpx.HTTPError:
                pass
            time.sleep(0.05)


def stop(servers: list[Any]) -> None:
    for _, proc, _ in servers:
        if proc is not None and proc.proc.poll() is None:
            proc.stop(10)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    count, seconds = (50, 2.0) if args.quick else (500, 10.0)
    results: dict[str, Any] = {"load_before": os.getloadavg()[0], "configs": {}}
    configs = (
        ("alone", 1, None, False),
        ("replica_of", 3, None, True),
        ("sync0", 3, 0, False),
        ("sync1", 3, 1, False),
    )
    for name, n, sync, fixed in configs:
        rows = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                servers = start(Path(tmp), n, sync, fixed)
                try:
                    url = servers[primary_of(servers)][0]
                    row = latency(url, count)
                    row["writes_per_s"] = throughput(url, seconds)
                    rows.append(row)
                finally:
                    stop(servers)
        results["configs"][name] = {
            k: statistics.median(r[k] for r in rows) for k in ("p50_ms", "p99_ms", "writes_per_s")
        }
    times = []
    for _ in range(1 if args.quick else args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            servers = start(Path(tmp), 3, 1)
            try:
                latency(servers[primary_of(servers)][0], 20)
                times.append(failover(servers))
            finally:
                stop(servers)
    results["failover_s"] = times
    results["load_after"] = os.getloadavg()[0]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    # bench-quick passes --fresh to every script (discard stored results); this one keeps none
    parser.add_argument("--fresh", action="store_true", help="accepted: no stored results")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    results = measure(args)
    base = results["configs"]["alone"]
    print(f"load average {results['load_before']:.2f} before, {results['load_after']:.2f} after")
    print("| config | p50 ms | p99 ms | writes/s (8 clients) | vs alone |")
    print("|---|---:|---:|---:|---:|")
    for name, row in results["configs"].items():
        ratio = row["writes_per_s"] / base["writes_per_s"]
        print(
            f"| {name} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
            f"{row['writes_per_s']:,.0f} | {ratio:.2f} |"
        )
    fo = results["failover_s"]
    print(f"failover (SIGKILL of the primary to the next acknowledged write): {fo}")
    print(f"median {statistics.median(fo):.2f} s")
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
