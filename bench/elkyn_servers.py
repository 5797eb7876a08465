"""Which HTTP server ``elkyn serve`` runs on: the same Elkyn app on each candidate, one run.

Issue 27 replaced Elkyn's hand-written HTTP/1.1 protocol (``server/protocol.py``, on uvicorn's
internals) with a maintained server. This script measures the candidates side by side, in the
same run and on the same machine, with ``elkyn_bench.py``'s load generator and SSE readers:

- ``protocol.py``: ``elkyn serve`` of a baseline checkout (``--baseline-src``: the
  ``packages/elkyn/src`` of the commit before the change; run with this tree's packages
  otherwise), i.e. uvicorn's server with ``ElkynHTTP`` and the broadcaster's socket writes;
- ``uvicorn-httptools`` / ``uvicorn-h11``: stock uvicorn (``http="httptools"``/``"h11"``) on
  the service kit, as the gateway is served, with this tree's Elkyn (caught-up streams written
  by the broadcaster through the response's ASGI ``send``);
- ``granian``: granian's own CLI (``--interface asgi --loop uvloop``, one worker, default
  runtime), the app built by a factory in its worker process; the same tree's Elkyn.
- with ``--queued``, the same uvicorn+httptools server with the broadcaster's direct ``send``
  switched off (every change goes through the stream's queue and task): what the ASGI-level
  path is worth.

Workloads: REST durable writes and point reads (32 keep-alive connections, a user token and
rules on every request; the ops/s of ``--runs`` runs, a fresh server each, the variants
interleaved run by run so that the machine's load falls on all of them alike), then write ->
SSE delivery with ``--subscribers`` readers at 20 writes/s: server CPU (the whole process
tree: granian's worker is a child) per 1,000 events delivered, p50/p99 latency, losses.

    python bench/elkyn_servers.py --baseline-src /tmp/base/packages/elkyn/src [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import elkyn_bench as eb
from _harness import RESULTS

from platform_core.testing import free_port

HERE = Path(__file__).resolve().parent


def _tree_cpu(pid: int) -> float:
    """User + system seconds of ``pid`` and all its descendants (Linux ``/proc``)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += eb._cpu_seconds(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return total


def _serve_main(kind: str, port: int, home: str) -> None:
    """A candidate server in this process: this tree's ``ElkynApp`` on stock uvicorn."""
    from elkyn.server import ElkynApp
    from elkyn.settings import elkyn_settings
    from elkyn.store import Store
    from platform_core import auth
    from platform_core.service import bind, configure_service_logging, serve

    settings = elkyn_settings(path=Path(home) / "db")
    signer = auth.signer(settings)
    store = Store(
        settings.db_path(),
        map_size=settings.map_size,
        log_size=settings.log_size,
        signer=signer,
        max_pending_events=settings.max_pending_events,
        max_pending_bytes=settings.max_pending_bytes,
    )
    configure_service_logging("warning")
    app = ElkynApp(settings, store, signer, own_lifespan=True)
    if kind.endswith("-queued"):
        from elkyn.server import sse

        sse.EventQueue = type("NoDirectPath", (), {})  # type: ignore[attr-defined,assignment]
        kind = kind.removesuffix("-queued")
    sock = bind("127.0.0.1", port, port_setting=None, host_setting=None)
    serve(
        app,
        sock,
        what="elkyn",
        host="127.0.0.1",
        log_level="warning",
        access_log=False,
        http=kind,
        timeout_graceful_shutdown=2,
    )


def granian_app() -> Any:
    """The factory granian's worker calls: this tree's ``ElkynApp`` on ``$ELKYN_PATH``."""
    from elkyn.server import ElkynApp
    from elkyn.settings import elkyn_settings
    from elkyn.store import Store
    from platform_core import auth

    settings = elkyn_settings()
    signer = auth.signer(settings)
    store = Store(
        settings.db_path(),
        map_size=settings.map_size,
        log_size=settings.log_size,
        signer=signer,
        max_pending_events=settings.max_pending_events,
        max_pending_bytes=settings.max_pending_bytes,
    )
    return ElkynApp(settings, store, signer, own_lifespan=True)


def start(variant: str, home: Path, baseline: str | None, **env: str) -> tuple[Any, int]:
    """Start ``variant`` on a free port with its database under ``home``."""
    port = free_port()
    environ = {**eb._env(home), **env}
    if variant == "protocol.py":
        if baseline is None:
            raise SystemExit("protocol.py needs --baseline-src (the old packages/elkyn/src)")
        environ["PYTHONPATH"] = baseline
        cmd = [sys.executable, "-m", "elkyn", "serve", "--port", str(port)]
        cmd += ["--log-level", "warning", "--path", str(home / "db")]
    elif variant == "granian":
        environ["PYTHONPATH"] = str(HERE)
        environ["ELKYN_PATH"] = str(home / "db")
        cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory"]
        cmd += ["--loop", "uvloop", "--workers", "1", "--log-level", "warning"]
        cmd += ["--port", str(port), "elkyn_servers:granian_app"]
    else:
        cmd = [sys.executable, __file__, "_serve", variant.removeprefix("uvicorn-"), str(port)]
        cmd.append(str(home))
    proc = subprocess.Popen(
        cmd, env=environ, stdout=subprocess.DEVNULL, preexec_fn=eb._die_with_parent
    )
    eb._wait_port(port, proc, timeout=30)
    return proc, port


def rest(variant: str, method: str, n: int, home: Path, baseline: str | None) -> float:
    """Requests per second of ``n`` REST requests against a fresh server."""
    from platform_core.auth import TokenSigner

    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    signer = TokenSigner(eb.SECRET)
    token = signer.issue("bench-user")
    proc, port = start(variant, home, baseline)
    try:
        eb._setup_rest_data(port, token, signer.issue("ops", admin=True))
        result = eb._Loader(port, method, n, token).run()
    finally:
        eb._stop(proc)
    if result["ok"] != n:
        raise RuntimeError(f"{variant} {method}: {result['ok']} of {n} requests answered 200")
    return float(result["ok"] / result["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-src", help="packages/elkyn/src of the protocol.py commit")
    parser.add_argument(
        "--variants",
        default="protocol.py,uvicorn-httptools,uvicorn-h11,granian",
        help="comma-separated: protocol.py, uvicorn-httptools, uvicorn-h11, granian, "
        "uvicorn-httptools-queued",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--no-sse", action="store_true")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds, so the script never rots (nox -s bench-quick): the two uvicorn "
        "variants installed with the platform, 300 requests, 20 subscribers for 2 s",
    )
    parser.add_argument("--fresh", action="store_true", help="accepted; nothing is cached")
    args = parser.parse_args()
    if args.quick:
        args.variants, args.runs = "uvicorn-httptools,uvicorn-h11", 1
        args.requests, args.subscribers, args.seconds = 300, 20, 2.0
    variants = args.variants.split(",")
    home = RESULTS / "data" / "elkyn_servers"
    load = [os.getloadavg()[0]]
    rates: dict[tuple[str, str], list[float]] = {}
    for run in range(args.runs):
        for method in ("PUT", "GET"):
            for v in variants:
                r = rest(v, method, args.requests, home / "rest", args.baseline_src)
                rates.setdefault((v, method), []).append(r)
                print(f"run {run + 1} {v} {method}: {r:,.0f}/s", file=sys.stderr, flush=True)
    load.append(os.getloadavg()[0])
    sse: dict[str, dict[str, Any]] = {}
    if not args.no_sse:
        for v in variants:

            def starter(h: Path, _v: str = v, **env: str) -> tuple[Any, int]:
                return start(_v, h, args.baseline_src, **env)

            sse[v] = eb.sse_latency(
                args.subscribers, args.seconds, 20.0, home / "sse", start=starter, cpu=_tree_cpu
            )
            print(f"sse {v}: {sse[v]}", file=sys.stderr, flush=True)
        load.append(os.getloadavg()[0])
    out = {
        "load": load,
        "rest": {f"{v} {m}": xs for (v, m), xs in rates.items()},
        "sse": sse,
    }
    (RESULTS / "elkyn_servers.json").write_text(json.dumps(out, indent=1))
    print(table(out, variants, args))


def table(out: dict[str, Any], variants: list[str], args: Any) -> str:
    first = variants[0]
    med = {k: statistics.median(xs) for k, xs in out["rest"].items()}
    lines = [
        f"### servers (medians of {args.runs} runs of {args.requests:,} requests; load average "
        + " / ".join(f"{x:.2f}" for x in out["load"])
        + ")",
        "",
        f"| server | writes/s | vs {first} | reads/s | vs {first} | SSE server CPU ms per "
        "1,000 events | p50 ms | p99 ms | lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        w, r = med[f"{v} PUT"], med[f"{v} GET"]
        s = out["sse"].get(v)
        sse_cells = (
            f"{1000 * s['server_cpu_s'] / max(1, s['events']) * 1000:.1f} | {s['p50_ms']:.1f} "
            f"| {s['p99_ms']:.1f} | {s['lost']}"
            if s
            else "- | - | - | -"
        )
        lines.append(
            f"| {v} | {w:,.0f} | {w / med[f'{first} PUT']:.2f} | {r:,.0f} "
            f"| {r / med[f'{first} GET']:.2f} | {sse_cells} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        _serve_main(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
