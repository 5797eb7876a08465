"""The shared benchmark harness: every engine in its own child, medians, memory, resumable JSON.

A benchmark script declares its data generator, its engines and its workloads::

    bench = Benchmark("core_hash", "hash_columns against DuckDB's hash()")

    @bench.data
    def generate(scale: float, cache: Path) -> dict: ...      # seeded, written once per scale

    @bench.engine("ours")
    def ours(workload: str, params: dict) -> Callable[[], Any]:
        table = load(params)                    # setup: not timed
        return lambda: work(table)              # timed

    @bench.engine("duckdb", peer=True)
    def duck(workload: str, params: dict) -> Callable[[], Any]: ...

    @bench.check
    def check(workload: str, output: Any) -> Any: ...   # untimed: output -> small JSON value

    if __name__ == "__main__":
        bench.main(["hash_i64", "hash_utf8"])

Each (workload, engine, run) runs in a fresh spawned child, so memory figures are its own:
the RSS that setup added (an engine's way of loading data is part of its footprint), then, for
the timed call alone, the wall time, the peak RSS above the post-setup baseline, and the Arrow
default pool's peak. Engines' check values must agree, so no engine can skip work.

An engine that runs in a server of its own (a peer in another virtual environment, started once
per bench run by its ``service``: ``bench/_peers.py``) returns :class:`Measured` from the timed
call: the seconds (and peak RSS) that the server measured around its own work, its result
materialised there; moving the result back to the child is not timed. The server's figures are
reported in place of the child's.
Results go to ``bench/results/<name>.json`` after every run; a later run resumes from there.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _procstat import reset_peak_rss, status_kib

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA_CACHE = ROOT / "results" / "data"

EngineFactory = Callable[[str, dict[str, Any]], Callable[[], Any]]
Service = Callable[[dict[str, Any]], AbstractContextManager[dict[str, Any]]]
"""Started in the parent once per bench run, before an engine's first run; yields params that
are added to the children's (e.g. a server's socket path); stopped when the run ends."""


@dataclass
class Measured:
    """A timed call's output with the time its engine measured itself (in a server process):
    the harness reports ``seconds`` instead of its own clock around the call, and the server's
    peak RSS above its baseline (None: unknown) instead of the child's."""

    output: Any
    seconds: float
    peak_rss_bytes: int | None = None
    setup_rss_bytes: int | None = None
    arrow_peak_bytes: int | None = None


@dataclass
class Engine:
    name: str
    factory: EngineFactory
    peer: bool
    workloads: tuple[str, ...] | None = None  # None: every workload
    service: Service | None = None  # a server the engine talks to, started by the parent

    def runs(self, workload: str) -> bool:
        return self.workloads is None or workload in self.workloads


@dataclass
class Benchmark:
    """One benchmark script: a data generator, engines (ours first, then peers) and workloads."""

    name: str
    description: str
    engines: dict[str, Engine] = field(default_factory=dict)
    generator: Callable[[float, Path], dict[str, Any]] | None = None
    checker: Callable[[str, Any], Any] | None = None
    quick_scale: float = 0.01

    def data(
        self, fn: Callable[[float, Path], dict[str, Any]]
    ) -> Callable[[float, Path], dict[str, Any]]:
        self.generator = fn
        return fn

    def check(self, fn: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
        """Turn a timed call's output into a small JSON value, outside the timing."""
        self.checker = fn
        return fn

    def engine(
        self,
        name: str,
        *,
        peer: bool = False,
        workloads: list[str] | None = None,
        service: Service | None = None,
    ) -> Callable[[EngineFactory], EngineFactory]:
        """Register an engine; ``workloads`` limits it to some workloads (GNU sort sorts);
        ``service`` is started in the parent before its first run (see :data:`Service`)."""

        def register(fn: EngineFactory) -> EngineFactory:
            self.engines[name] = Engine(
                name, fn, peer, None if workloads is None else tuple(workloads), service
            )
            return fn

        return register

    # ---------------------------------------------------------------- driver (parent process)
    def main(self, workloads: list[str], argv: list[str] | None = None) -> None:
        ap = argparse.ArgumentParser(prog=f"bench/{self.name}.py", description=self.description)
        ap.add_argument("--quick", action="store_true", help=f"tiny scale ({self.quick_scale})")
        ap.add_argument("--scale", type=float, default=1.0, help="data size factor (default 1)")
        ap.add_argument("--runs", type=int, default=5, help="runs per engine and workload")
        ap.add_argument(
            "--fresh", action="store_true", help="discard stored results of this scale first"
        )
        ap.add_argument("--timeout", type=float, default=1800, help="seconds per run (1800)")
        ap.add_argument("--workload", action="append", help="run only these workloads")
        ap.add_argument("--engine", action="append", help="run only these engines")
        args = ap.parse_args(argv)
        scale = self.quick_scale if args.quick else args.scale
        chosen = [w for w in workloads if not args.workload or w in args.workload]
        engines = [e for e in self.engines.values() if not args.engine or e.name in args.engine]
        if self.generator is None or not engines or not chosen:
            sys.exit("nothing to run: a benchmark needs @data, an @engine and a workload")

        store = ResultStore(RESULTS / f"{self.name}.json")
        if args.fresh:
            store.discard_scale(scale)
        cache = DATA_CACHE / self.name / f"scale-{scale:g}"
        cache.mkdir(parents=True, exist_ok=True)
        params = self.generator(scale, cache)
        script = Path(sys.modules["__main__"].__file__ or "").resolve()
        ctx = mp.get_context("spawn")
        with ExitStack() as services:
            self._run_all(ctx, script, store, chosen, engines, params, scale, args, services)
        table, failures = self.report(store, chosen, engines, scale, args.runs)
        print(table)
        if failures:
            print("\nFAILURES:\n" + "\n".join(failures))
            sys.exit(1)

    def _run_all(
        self,
        ctx: Any,
        script: Path,
        store: ResultStore,
        chosen: list[str],
        engines: list[Engine],
        params: dict[str, Any],
        scale: float,
        args: argparse.Namespace,
        services: ExitStack,
    ) -> None:
        started: dict[str, dict[str, Any]] = {}
        for workload in chosen:
            for engine in engines:
                if not engine.runs(workload):
                    continue
                for run in range(args.runs):
                    key = f"{workload}|{engine.name}|{scale:g}|{run}"
                    if store.has(key):
                        continue
                    extra: dict[str, Any] = {}
                    if engine.service is not None:
                        if engine.name not in started:
                            try:
                                started[engine.name] = services.enter_context(
                                    engine.service(params)
                                )
                            except Exception as exc:  # no server: this engine's runs fail
                                started[engine.name] = {"service_error": f"{exc}"}
                        extra = started[engine.name]
                    if "service_error" in extra:
                        result = {"error": f"service not started: {extra['service_error']}"}
                    else:
                        result = _run_in_child(
                            ctx, script, engine.name, workload, {**params, **extra}, args.timeout
                        )
                    store.put(
                        key,
                        {
                            "workload": workload,
                            "engine": engine.name,
                            "scale": scale,
                            "run": run,
                            **result,
                        },
                    )
                    print(
                        f"  {workload:<24} {engine.name:<10} run {run + 1}/{args.runs}: "
                        f"{_fmt_seconds(result.get('seconds'))}",
                        file=sys.stderr,
                    )

    def report(
        self,
        store: ResultStore,
        workloads: list[str],
        engines: list[Engine],
        scale: float,
        runs: int,
    ) -> tuple[str, list[str]]:
        """A markdown table (medians, ratio to ours, memory) and the failures (errors, checks)."""
        ours = next((e for e in engines if not e.peer), None)
        lines = [
            f"### {self.name} (scale {scale:g}, median of {runs} runs)",
            "",
            "| workload | engine | median | vs ours | peak RSS MiB | Arrow peak MiB | setup RSS MiB "
            "| check |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        failures = []
        for w in workloads:
            applicable = [e for e in engines if e.runs(w)]
            summary = {e.name: store.summary(w, e.name, scale, runs) for e in applicable}
            base = summary[ours.name]["median"] if ours else None
            checks = {s["check"] for s in summary.values() if s["check"] is not None}
            for e in applicable:
                s = summary[e.name]
                if s["error"]:
                    failures.append(f"{w}/{e.name}: {s['error']}")
                ratio = f"{s['median'] / base:.2f}x" if base and s["median"] and e.peer else "-"
                lines.append(
                    f"| {w} | {e.name}{'' if e.peer else ' (ours)'} | {_fmt_seconds(s['median'])} "
                    f"| {ratio} | {_fmt_mib(s['rss'])} "
                    f"| {'' if s['arrow_exact'] else '<='}{_fmt_mib(s['arrow'])} "
                    f"| {_fmt_mib(s['setup'])} | {s['check']} |"
                )
            if len(checks) > 1:
                failures.append(
                    f"{w}: engines disagree on the check value: {sorted(map(str, checks))}"
                )
        lines.append("")
        lines.append(
            "'vs ours' is the peer's median time over ours: above 1 means we are faster. Peaks "
            "are above the child's RSS after setup (data loading), which 'setup RSS' shows; "
            "'<=' marks an Arrow peak bounded by the setup's (Arrow keeps only a lifetime peak)."
        )
        served = [e.name for e in engines if e.service is not None]
        if served:
            lines.append(
                f"{', '.join(served)}: runs in a server of its own, started once per bench run; "
                "its time and peak RSS are the server's own, measured around the query and its "
                "materialisation as an Arrow table there (the result's trip back is not timed)."
            )
        return "\n".join(lines), failures


class ResultStore:
    """Results of single runs, kept in one JSON file rewritten atomically after each run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.exists():
            self.rows = json.loads(path.read_text())

    def discard_scale(self, scale: float) -> None:
        """Forget the runs of one scale (``--fresh``), keeping other scales' results."""
        self.rows = {k: r for k, r in self.rows.items() if r.get("scale") != scale}

    def has(self, key: str) -> bool:
        return key in self.rows and not self.rows[key].get("error")

    def put(self, key: str, row: dict[str, Any]) -> None:
        self.rows[key] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.rows, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def summary(self, workload: str, engine: str, scale: float, runs: int) -> dict[str, Any]:
        rows = [self.rows.get(f"{workload}|{engine}|{scale:g}|{r}") for r in range(runs)]
        ok = [r for r in rows if r and not r.get("error")]
        errors = [r["error"] for r in rows if r and r.get("error")]
        checks = {json.dumps(r.get("check")) for r in ok}
        return {
            "median": statistics.median(r["seconds"] for r in ok) if ok else None,
            "rss": statistics.median(r["peak_rss_bytes"] for r in ok) if ok else None,
            "arrow": statistics.median(r["arrow_peak_bytes"] for r in ok) if ok else None,
            "setup": statistics.median(r.get("setup_rss_bytes", 0) for r in ok) if ok else None,
            "arrow_exact": all(r.get("arrow_peak_exact", True) for r in ok),
            "check": json.loads(checks.pop())
            if len(checks) == 1
            else (None if not checks else "varies"),
            "error": errors[0] if errors else None,
        }


def _run_in_child(
    ctx: Any, script: Path, engine: str, workload: str, params: dict[str, Any], timeout: float
) -> dict[str, Any]:
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(str(script), engine, workload, params, child))
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            result = parent.recv()
        else:
            proc.kill()
            result = {"error": f"no result within {timeout:g} s; the child was killed"}
    except EOFError:
        result = {"error": "child died without a result"}
    proc.join()
    if proc.exitcode not in (0, None) and "error" not in result:
        result["error"] = f"child exited with {proc.exitcode}"
    return result


def _child_main(script: str, engine: str, workload: str, params: dict[str, Any], conn: Any) -> None:
    """In the child: load the script, set up the engine, time one call, measure memory."""
    try:
        import gc
        import importlib.util

        import pyarrow as pa

        spec = importlib.util.spec_from_file_location("_bench_script", script)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load benchmark script {script}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        bench = next(v for v in vars(module).values() if isinstance(v, Benchmark))
        pool = pa.default_memory_pool()
        before_setup = status_kib("VmRSS") * 1024
        call = bench.engines[engine].factory(workload, params)
        gc.collect()
        pool.release_unused()
        # The baseline is taken after setup, so the peaks below belong to the timed call.
        baseline = status_kib("VmRSS") * 1024
        exact_peak = reset_peak_rss()
        arrow_base, arrow_max_before = pool.bytes_allocated(), pool.max_memory()
        start = time.perf_counter()
        output = call()
        seconds = time.perf_counter() - start
        peak = status_kib("VmHWM") * 1024
        arrow_max = pool.max_memory()
        own: Measured | None = None
        if isinstance(output, Measured):  # the engine's server timed its own work
            own, output = output, output.output
            seconds = own.seconds
        check = bench.checker(workload, output) if bench.checker else output
        result = {
            "seconds": seconds,
            "setup_rss_bytes": max(0, baseline - before_setup),
            "peak_rss_bytes": max(0, peak - baseline),
            "peak_rss_exact": exact_peak,
            # max_memory() is a lifetime peak: when setup peaked higher than the timed call,
            # the call's own peak is unknown but at most the setup's; report that bound.
            "arrow_peak_bytes": max(0, arrow_max - arrow_base),
            "arrow_peak_exact": arrow_max > arrow_max_before,
            "check": check,
        }
        if own is not None:  # the server's figures, not this child's (which only read the result)
            result["peak_rss_bytes"] = own.peak_rss_bytes or 0
            result["peak_rss_exact"] = own.peak_rss_bytes is not None
            result["setup_rss_bytes"] = own.setup_rss_bytes or 0
            result["arrow_peak_bytes"] = own.arrow_peak_bytes or 0
            result["arrow_peak_exact"] = own.arrow_peak_bytes is not None
            result["measured_by"] = "server"
        conn.send(result)
    except BaseException as exc:  # report any failure to the parent, then exit non-zero
        conn.send({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        raise SystemExit(1) from exc
    finally:
        conn.close()


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "n/a"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_mib(b: float | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:.1f}"
