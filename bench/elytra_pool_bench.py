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

(c) **Fixed costs of a one-chunk job** (issue 33): a warm two-worker pool running
    ``s.dataset("small").filter("v3 > 50").agg("count(*) AS n")`` and a 100-group ``group_by``
    (each ``submit()``-ted and its ``result()`` awaited) over one
    20,000-row lake chunk (below ``split_bytes``: one task), jobs recorded in an Elkyn store
    as the platform does; end to end in the caller, split into plan (``Driver.plan``: cut and
    task plans), the task round (dispatch, the task in the worker, its rows back), the merge
    (the driver's final statement), the job-record writes, and the rest (job directory,
    thread, pipeline building). CPU per job in the driver and the workers is printed too:
    on a loaded machine the wall time is mostly waiting for a core, the CPU time is not.

Targets: round trip median <= 5 ms; throughput >= 1 GB/s; a one-chunk job <= 20 ms end to
end. Not wired into nox.

    .venv/bin/python bench/elytra_pool_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (``/proc/<pid>/stat``); 0 for one gone
    (a worker the pool started again)."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ready_pids(backend: object, wait: float = 30.0) -> list[int]:
    """The pool's worker pids once every worker is up: a worker the pool is starting again
    reports pid 0 (CI failed reading /proc/0/stat)."""
    deadline = time.monotonic() + wait
    while True:
        pids = backend.worker_pids()  # type: ignore[attr-defined]
        if all(pids) or time.monotonic() > deadline:
            return [p for p in pids if p]
        time.sleep(0.05)


def fixed_costs(root: Path, n: int) -> float:
    """(c): the median end-to-end time of a one-chunk count on a warm pool, and its split."""
    import os

    import duckdb

    import elytra
    import elytra.driver as driver_module
    from elkyn import Store
    from elytra.jobs import Job, StoreRecorder
    from lake import LakeNode, lake_settings

    os.environ.setdefault("PLATFORM_SECRET", "elytra-pool-bench-" + "x" * 32)
    home = root / "home"
    src = root / "small.parquet"
    duckdb.sql(
        "COPY (SELECT (i % 100)::INTEGER AS id1, (i % 7)::INTEGER AS v1, random() * 100 AS v3 "
        f"FROM range(20000) t(i)) TO '{src}' (FORMAT parquet)"
    )
    node = LakeNode(lake_settings(None, home=home))
    try:
        node.ingest(src, "small")
    finally:
        node.stop()
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times.setdefault(name, []).append(time.perf_counter() - started)

        return wrapper

    # the job record: what the job's threads wait for (a progress write is made behind them)
    saved = driver_module.Driver.plan, driver_module.Driver._round, Job._flush
    driver_module.Driver.plan = timed("plan", saved[0])  # type: ignore[method-assign]
    driver_module.Driver._round = timed("round", saved[1])  # type: ignore[method-assign]
    Job._flush = timed("record", saved[2])  # type: ignore[method-assign]
    store = Store(root / "jobs")
    s = elytra.connect(
        home=home, backend="local", workers=2, progress=False, recorder=StoreRecorder(store)
    )
    end_to_end = 0.0
    try:
        # submitted, as the platform runs a job (collect() records nothing)
        questions = {
            "filter + count": lambda: (
                s.dataset("small").filter("v3 > 50").agg("count(*) AS n").submit().result()
            ),
            "group_by (100 groups)": lambda: (
                s.dataset("small").group_by("id1").agg("sum(v1) AS v").submit().result()
            ),
        }
        for label, job in questions.items():
            for _ in range(10):  # warm: workers up, rings made, imports done
                job()
            times.clear()
            walls, merges = [], []
            per_job: dict[str, list[float]] = {"plan": [], "round": [], "record": []}
            pids = _ready_pids(s.driver.backend)
            workers_cpu, driver_cpu = sum(map(_cpu_seconds, pids)), time.process_time()
            for _ in range(n):
                started = time.perf_counter()
                job()
                walls.append(time.perf_counter() - started)
                assert s.driver.last is not None
                merges.append(s.driver.last.merge_seconds)
                for k, v in per_job.items():  # submit() plans once more, to check: summed
                    v.append(sum(times.pop(k, [])))
            driver_cpu = (time.process_time() - driver_cpu) / n
            workers_cpu = (sum(map(_cpu_seconds, pids)) - workers_cpu) / n
            med = {
                "end to end": statistics.median(walls),
                "plan": statistics.median(per_job["plan"]),
                "task round": statistics.median(per_job["round"]),
                "merge": statistics.median(merges),
                "job record": statistics.median(per_job["record"]),
            }
            rest = med["end to end"] - sum(v for k, v in med.items() if k != "end to end")
            print(
                f"  {label:22}: "
                + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in med.items())
                + f", rest {rest * 1e3:.2f} ms; CPU per job: driver {driver_cpu * 1e3:.1f} ms, "
                f"workers {workers_cpu * 1e3:.1f} ms"
            )
            if label.startswith("filter"):
                end_to_end = med["end to end"]
    finally:
        s.close()
        store.close()
        driver_module.Driver.plan, driver_module.Driver._round, Job._flush = saved  # type: ignore[method-assign]
    return end_to_end


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
        jobs = 30 if args.quick else 200
        print(f"(c) fixed costs of a one-chunk job on a warm pool, medians of {jobs} jobs")
        fixed = fixed_costs(root, jobs)
    print()
    print(f"empty-task round trip median: {rt * 1e3:.2f} ms (target <= 5 ms)")
    print(f"result throughput over strand: {gbs:.2f} GB/s (target >= 1 GB/s)")
    print(f"one-chunk job end to end median: {fixed * 1e3:.2f} ms (target <= 20 ms)")


if __name__ == "__main__":
    main()
