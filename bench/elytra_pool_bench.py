"""elytra's local pool: task round trip and result throughput over strand.

(a) **Round trip**: one task at a time (``pool.run([task])``) on a warm one-worker pool,
    wall time in the driver from ``run`` to the result. The "empty" task is an emsqrt scan of
    a 10-row Parquet file with a filter that keeps nothing (its result is only a schema); the
    "1-row" task keeps one row, so its result goes through the worker's strand ring. For
    context, the same task's in-process ``execute`` time (what any backend pays) is printed.
(b) **Throughput**: one task returning a 256 MiB table (``--quick``: 64 MiB) of int64 +
    float64 (a scan of a Parquet file of random values) through a ring of ``--ring-mib``.
    GB/s is the result's Arrow bytes over ``stats["transfer_seconds"]``: the driver's time
    from the worker's "stream" message (the ring is reset, the worker starts writing) to its
    "done" message, during which the worker writes blocks and the driver copies each one out
    of the ring and acknowledges it. The task's own execution (reading the Parquet file) is
    reported apart. Medians over ``--runs``.

Targets: round trip median <= 5 ms; throughput >= 1 GB/s. Not wired into nox.

    .venv/bin/python bench/elytra_pool_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from elytra import Task, execute
from elytra.backends.local import LocalPool
from emsqrt import plan as lp
from emsqrt.plan_json import plan_to_json
from platform_core import Schema
from platform_core.expr import parse


def _task(tid: str, path: Path, where: str | None, cap: int, spill: Path) -> Task:
    schema = Schema.from_arrow(pq.read_schema(path))
    plan: lp.Node = lp.Scan(str(path), "parquet", schema)
    if where is not None:
        plan = lp.Filter(plan, parse(where))
    return Task(tid, 0, plan_to_json(plan), cap, str(spill))


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(0.9 * (len(values) - 1))]
    return f"median {statistics.median(values) * 1e3:6.2f} ms  p90 {p90 * 1e3:6.2f} ms"


def round_trip(pool: LocalPool, root: Path, n: int) -> float:
    small = root / "small.parquet"
    pq.write_table(pa.table({"k": pa.array(range(10), pa.int64())}), small)
    spill = root / "spill"
    medians = {}
    for label, where in (("empty", "k < 0"), ("1-row", "k = 3")):
        task = _task(label, small, where, 16 << 20, spill)
        cancel = threading.Event()
        for _ in range(10):  # warm-up: the ring exists, imports are done
            list(pool.run([task], cancel))
        times = []
        for _ in range(n):
            started = time.perf_counter()
            (result,) = pool.run([task], cancel)
            times.append(time.perf_counter() - started)
        inproc = []
        for _ in range(min(n, 50)):
            started = time.perf_counter()
            execute(task)
            inproc.append(time.perf_counter() - started)
        medians[label] = statistics.median(times)
        print(
            f"  {label:5} task via {result.stats['transport']:6}: {_ms(times)}"
            f"   (execute in-process: {_ms(inproc)})"
        )
    return medians["empty"]


def throughput(root: Path, mib: int, ring_mib: int, runs: int) -> float:
    rows = (mib << 20) // 16
    rng = np.random.default_rng(7)
    path = root / "big.parquet"
    pq.write_table(
        pa.table({"k": rng.integers(0, 1 << 62, rows), "x": rng.random(rows)}),
        path,
        compression="none",
    )
    task = _task("big", path, None, 4 << 30, root / "spill")
    rates = []
    with LocalPool(workers=1, ring_bytes=ring_mib << 20) as pool:
        pool.wait_ready()
        list(pool.run([task], threading.Event()))  # warm-up: ring pages faulted in
        for _ in range(runs):
            started = time.perf_counter()
            (result,) = pool.run([task], threading.Event())
            wall = time.perf_counter() - started
            nbytes = result.table.nbytes
            transfer = result.stats["transfer_seconds"]
            rates.append(nbytes / transfer / 1e9)
            print(
                f"  {nbytes / 2**20:.0f} MiB via {result.stats['transport']}: transfer "
                f"{transfer:.3f} s = {rates[-1]:.2f} GB/s; task execute {result.seconds:.3f} s; "
                f"run wall {wall:.3f} s"
            )
            del result
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB, fewer round trips")
    parser.add_argument("--ring-mib", type=int, default=64, help="ring heap for (b)")
    parser.add_argument("--runs", type=int, default=0, help="throughput runs (default 5; 3)")
    parser.add_argument(
        "--fresh", action="store_true", help="accepted like the other scripts (nothing stored)"
    )
    args = parser.parse_args()
    n = 50 if args.quick else 300
    runs = args.runs or (3 if args.quick else 5)
    mib = 64 if args.quick else 256
    with tempfile.TemporaryDirectory(prefix="elytra-bench-") as tmp:
        root = Path(tmp)
        print(f"(a) round trip, one worker, {n} sequential single-task runs")
        with LocalPool(workers=1, ring_bytes=1 << 20) as pool:
            pool.wait_ready()
            rt = round_trip(pool, root, n)
        print(f"(b) result throughput over strand, {mib} MiB, ring {args.ring_mib} MiB")
        gbs = throughput(root, mib, args.ring_mib, runs)
    print()
    print(f"empty-task round trip median: {rt * 1e3:.2f} ms (target <= 5 ms)")
    print(f"result throughput over strand: {gbs:.2f} GB/s (target >= 1 GB/s)")


if __name__ == "__main__":
    main()
