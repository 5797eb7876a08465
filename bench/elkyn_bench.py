"""Elkyn: durable writes and reads, embedded and over REST, and write -> SSE event latency.

Throughput workloads run on the shared harness (each engine in its own child, medians):

- ``durable_write_single``: one thread, each write acknowledged only after its commit.
  Peer: raw py-lmdb, one ``sync=True`` transaction per write, on the same disk.
- ``durable_write_grouped``: 16 threads writing at once (Elkyn shares commits between them).
  Peer: raw py-lmdb, 16 threads, one durable transaction per write.
- ``embedded_read``: point reads of a leaf. Peer: raw py-lmdb get + MessagePack decode.
- ``rest_write`` / ``rest_read``: a load generator in another process (lean asyncio HTTP/1.1,
  32 keep-alive connections) against ``elkyn serve`` (durable LMDB, a user token checked and
  rules evaluated on every request). Peer: a no-op endpoint on the same stack (uvicorn +
  httptools, plain ASGI): the HTTP ceiling of this machine.

Every engine's check value is the number of operations that succeeded, so none can skip work.
After the harness table, the SSE part runs ``elkyn serve`` with 1 and with 1,000 subscribers
(lean asyncio socket readers in other processes) while a writer does 20 writes/s, and reports
p50/p99 latency from the write being sent to the event being read, events lost and CPU used.
Last, ``/health`` latency while one client reads a big subtree (40 MB; 4 MB at --quick): the
loop must keep answering (reads run on a worker thread); the peer is the same ``/health`` idle.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import RESULTS, Benchmark

from platform_core.testing import free_port

bench = Benchmark("elkyn_bench", "Elkyn writes/reads (embedded, REST) and SSE event latency")
bench.quick_scale = 0.01

WORKLOADS = [
    "durable_write_single",
    "durable_write_grouped",
    "embedded_read",
    "rest_write",
    "rest_read",
]
SECRET = "elkyn-bench-secret-" + "x" * 32
THREADS = 16
CONNECTIONS = 32
VALUE = {"state": "running", "progress": 0.5, "note": "x" * 40}


@bench.data
def generate(scale: float, cache: Path) -> dict[str, Any]:
    """Operation counts for the scale; each run makes its own fresh LMDB under ``cache``."""
    return {
        "dir": str(cache),
        "single": max(100, int(3_000 * scale)),
        "grouped": max(400, int(20_000 * scale)),
        "reads": max(1_000, int(200_000 * scale)),
        "rest_writes": max(500, int(30_000 * scale)),
        "rest_reads": max(500, int(30_000 * scale)),
    }


def _fresh_dir(params: dict[str, Any], name: str) -> Path:
    path = Path(params["dir"]) / f"{name}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# ------------------------------------------------------------------ embedded engines
def _ours_embedded(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    from elkyn import Store

    db = Store(_fresh_dir(params, "ours"), map_size=256 << 20)
    if workload == "durable_write_single":
        n = params["single"]

        def single() -> int:
            for i in range(n):
                db.set(f"/jobs/{i % 1000}", {**VALUE, "i": i})
            return n

        return single
    if workload == "durable_write_grouped":
        per = params["grouped"] // THREADS

        def grouped() -> int:
            def work(t: int) -> None:
                for i in range(per):
                    db.set(f"/jobs/{t}/{i % 100}", {**VALUE, "i": i})

            threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            return per * THREADS

        return grouped
    db.update("/", {f"jobs/{i}": {**VALUE, "i": i} for i in range(1000)})
    n = params["reads"]

    def reads() -> int:
        ok = 0
        for i in range(n):
            ok += db.get(f"/jobs/{i % 1000}/i") == i % 1000
        return ok

    return reads


def _raw_lmdb(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import lmdb
    import msgpack

    env = lmdb.open(str(_fresh_dir(params, "lmdb")), map_size=256 << 20, sync=True, max_dbs=1)
    # a named database, as Elkyn uses: on this disk its commits are faster than the main one's
    named = env.open_db(b"bench")
    if workload == "durable_write_single":
        n = params["single"]

        def single() -> int:
            for i in range(n):
                with env.begin(write=True) as txn:
                    txn.put(
                        f"/jobs/{i % 1000}".encode(), msgpack.packb({**VALUE, "i": i}), db=named
                    )
            return n

        return single
    if workload == "durable_write_grouped":
        per = params["grouped"] // THREADS

        def grouped() -> int:
            def work(t: int) -> None:
                for i in range(per):
                    with env.begin(write=True) as txn:
                        key = f"/jobs/{t}/{i % 100}".encode()
                        txn.put(key, msgpack.packb({**VALUE, "i": i}), db=named)

            threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            return per * THREADS

        return grouped
    with env.begin(write=True) as txn:
        for i in range(1000):
            txn.put(f"/jobs/{i}".encode(), msgpack.packb({**VALUE, "i": i}), db=named)
    n = params["reads"]

    def reads() -> int:
        ok = 0
        for i in range(n):
            with env.begin() as txn:
                raw = txn.get(f"/jobs/{i % 1000}".encode(), db=named)
                ok += msgpack.unpackb(raw)["i"] == i % 1000
        return ok

    return reads


# ------------------------------------------------------------------ servers
def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "PLATFORM_HOME": str(home), "PLATFORM_SECRET": SECRET}


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited during startup")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def _die_with_parent() -> None:
    """In a server child: SIGTERM when the benchmark process that started it exits."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_elkyn(home: Path, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [sys.executable, "-m", "elkyn", "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        [*cmd, "--path", str(home / "db")],
        env={**_env(home), **env},
        stdout=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    _wait_port(port, proc)
    return proc, port


def start_noop() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "_noop", str(port)],
        preexec_fn=_die_with_parent,
    )
    _wait_port(port, proc)
    return proc, port


def _noop_main(port: int) -> None:
    """A no-op ASGI endpoint on uvicorn + httptools: reads the body, answers ``null``."""
    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4")],
            }
        )
        await send({"type": "http.response.body", "body": b"null"})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", http="httptools")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _setup_rest_data(port: int, token: str, admin: str) -> None:
    import urllib.request

    def call(method: str, path: str, body: Any, tok: str) -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {tok}"},
        )
        urllib.request.urlopen(req).read()

    rules = {"rules": {"jobs": {"$id": {".read": "auth != null", ".write": "auth != null"}}}}
    call("PUT", "/.settings/rules.json", rules, admin)
    call("PATCH", "/.json", {f"jobs/{i}": {**VALUE, "i": i} for i in range(1000)}, admin)


class _Loader:
    """The load generator: a child process that starts on 'go' and reports its results."""

    def __init__(self, port: int, method: str, n: int, token: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "_load", str(port), method, str(n), token],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"load generator failed: {ready!r}")

    def run(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        self.proc.wait()
        return result


def _load_main(port: int, method: str, n: int, token: str) -> None:
    """Send ``n`` requests over CONNECTIONS keep-alive connections; print ok count and time."""

    def request(i: int) -> bytes:
        path = f"/jobs/{i % 1000}.json"
        if method == "GET":
            return (
                f"GET {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        body = json.dumps({**VALUE, "i": i}).encode()
        return (
            f"PUT {path} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def main() -> dict[str, Any]:
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(CONNECTIONS)]
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        counter = iter(range(n))
        ok = 0

        async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal ok
            for i in counter:
                writer.write(request(i))
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                ok += head[9:12] == b"200"
            writer.close()

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(r, w) for r, w in conns))
        return {"ok": ok, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}

    print(json.dumps(asyncio.run(main())), flush=True)


def _rest(workload: str, params: dict[str, Any], server: str) -> Callable[[], Any]:
    from platform_core.auth import TokenSigner

    signer = TokenSigner(SECRET)
    token = signer.issue("bench-user")
    home = _fresh_dir(params, server)
    _proc, port = start_elkyn(home) if server == "elkyn" else start_noop()
    if server == "elkyn":
        _setup_rest_data(port, token, signer.issue("ops", admin=True))
    method, n = (
        ("PUT", params["rest_writes"])
        if workload == "rest_write"
        else ("GET", params["rest_reads"])
    )
    loader = _Loader(port, method, n, token)

    def run() -> int:
        result = loader.run()  # the server gets SIGTERM when this child exits (untimed)
        print(
            f"    {server} {method}: {result['ok'] / result['seconds']:.0f} req/s "
            f"(loader CPU {result['cpu']:.2f} s)",
            file=sys.stderr,
        )
        return int(result["ok"])

    return run


@bench.engine("ours")
def ours(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    if workload.startswith("rest_"):
        return _rest(workload, params, "elkyn")
    return _ours_embedded(workload, params)


@bench.engine("peer", peer=True)
def peer(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    if workload.startswith("rest_"):
        return _rest(workload, params, "noop")
    return _raw_lmdb(workload, params)


# ------------------------------------------------------------------ SSE latency
def _subscribe_main(port: int, conns: int, path: str) -> None:
    """Open ``conns`` SSE streams; on 'stop' print latencies, received ids and CPU used.

    Lean on purpose (an asyncio Protocol per connection, no JSON parse): these readers share
    the machine with the server, so their own cost should disturb the measurement little.
    """
    request = f"GET {path}.json HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n"

    class Reader(asyncio.Protocol):
        def __init__(self, opened: list[int], ready: asyncio.Event) -> None:
            self.buf = b""
            self.lat: list[float] = []
            self.seen: set[int] = set()
            self.opened = opened
            self.ready = ready
            self.started = False

        def connection_made(self, transport: Any) -> None:
            transport.write(request.encode())

        def data_received(self, data: bytes) -> None:
            now = time.time()
            self.buf += data
            if not self.started and self.buf[:9] == b"HTTP/1.1 " and self.buf[9:12] != b"200":
                print(f"error: a stream was refused: {self.buf[:300]!r}", flush=True)
                os._exit(1)
            *events, self.buf = self.buf.split(b"\n\n")
            for event in events:
                if not self.started:  # the response head and the snapshot
                    if b"event: put" in event:
                        self.started = True
                        self.opened[0] += 1
                        if self.opened[0] == conns:
                            self.ready.set()
                    continue
                at_i, at_t = event.find(b'"i":'), event.find(b'"t":')
                if at_i >= 0 and at_t >= 0:
                    end_i = event.find(b",", at_i)
                    end_t = event.find(b"}", at_t)
                    self.lat.append(now - float(event[at_t + 4 : end_t]))
                    self.seen.add(int(event[at_i + 4 : end_i]))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        opened, ready = [0], asyncio.Event()
        cpu0 = time.process_time()
        readers = []
        for _ in range(conns):
            _, reader = await loop.create_connection(
                lambda: Reader(opened, ready), "127.0.0.1", port
            )
            readers.append(reader)
        await ready.wait()
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        out = {
            "latencies": [x for r in readers for x in r.lat],
            "seen": [sorted(r.seen) for r in readers],
            "cpu": time.process_time() - cpu0,
        }
        print(json.dumps(out), flush=True)

    try:
        import uvloop  # the readers use the same loop the server does, when it is there

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sse_latency(
    subscribers: int,
    seconds: float,
    rate: float,
    home: Path,
    start: Callable[..., tuple[subprocess.Popen[bytes], int]] = start_elkyn,
    cpu: Callable[[int], float] = _cpu_seconds,
) -> dict[str, Any]:
    """``subscribers`` streams on /feed, ``rate`` writes/s for ``seconds``; latency and losses
    (``start(home, **env)`` starts the server; ``cpu(pid)`` is the server's CPU seconds)."""
    import http.client

    from platform_core.auth import TokenSigner

    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    # the readers are anonymous and all on 127.0.0.1: one "user" for the per-user stream limit
    proc, port = start(home, ELKYN_MAX_STREAMS_PER_USER=str(subscribers))
    admin = TokenSigner(SECRET).issue("ops", admin=True)
    headers = {"Authorization": f"Bearer {admin}"}

    conn = http.client.HTTPConnection("127.0.0.1", port)  # one keep-alive connection

    def put(path: str, body: Any) -> None:
        conn.request("PUT", path, json.dumps(body), headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"PUT {path} answered {resp.status}")

    put("/.settings/rules.json", {"rules": {"feed": {".read": True}}})
    procs = max(1, min(4, subscribers // 250))
    per = [subscribers // procs + (1 if k < subscribers % procs else 0) for k in range(procs)]
    subs = [
        subprocess.Popen(
            [sys.executable, __file__, "_subscribe", str(port), str(n), "/feed"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in per
    ]
    try:
        for s in subs:
            assert s.stdout is not None
            if s.stdout.readline().strip() != "ready":
                raise RuntimeError("a subscriber process failed to connect")
        server_cpu0 = cpu(proc.pid)
        sent = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            due = start + sent / rate
            time.sleep(max(0.0, due - time.monotonic()))
            put("/feed/last.json", {"i": sent, "t": time.time()})  # "i" first, then "t"
            sent += 1
        time.sleep(1.0)  # let the last events arrive
        server_cpu = cpu(proc.pid) - server_cpu0
        results = []
        for s in subs:
            assert s.stdin is not None
            assert s.stdout is not None
            s.stdin.write("stop\n")
            s.stdin.flush()
            results.append(json.loads(s.stdout.readline()))
            s.wait()
    finally:
        for s in subs:
            if s.poll() is None:
                s.kill()
        _stop(proc)
    latencies = sorted(x * 1000 for r in results for x in r["latencies"])
    lost = sum(sent - len(seen) for r in results for seen in r["seen"])

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))]
            if latencies
            else float("nan")
        )

    return {
        "subscribers": subscribers,
        "writes": sent,
        "events": len(latencies),
        "lost": lost,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "subscriber_cpu_s": sum(r["cpu"] for r in results),
        "server_cpu_s": server_cpu,
        "seconds": seconds,
    }


def throughput_table(scale: float, runs: int) -> str:
    """Operations per second from the harness's medians, with the REST targets checked."""
    rows = json.loads((RESULTS / "elkyn_bench.json").read_text())
    params = generate(scale, Path("/nonexistent"))
    counts = {
        "durable_write_single": params["single"],
        "durable_write_grouped": params["grouped"] // THREADS * THREADS,
        "embedded_read": params["reads"],
        "rest_write": params["rest_writes"],
        "rest_read": params["rest_reads"],
    }
    peers = {
        "durable_write_single": "raw py-lmdb, 1 durable txn per write",
        "durable_write_grouped": "raw py-lmdb, 16 threads, 1 durable txn per write",
        "embedded_read": "raw py-lmdb get + msgpack",
        "rest_write": "no-op ASGI on uvicorn+httptools",
        "rest_read": "no-op ASGI on uvicorn+httptools",
    }
    out = [
        f"### throughput (scale {scale:g}, median of {runs} runs)",
        "",
        "| workload | ours ops/s | peer | peer ops/s | ours / peer |",
        "|---|---:|---|---:|---:|",
    ]
    for w in WORKLOADS:
        med = {}
        for engine in ("ours", "peer"):
            times = [
                r["seconds"]
                for r in rows.values()
                if r["workload"] == w
                and r["engine"] == engine
                and r["scale"] == scale
                and not r.get("error")
            ]
            med[engine] = statistics.median(times) if times else None
        if med["ours"] and med["peer"]:
            a, b = counts[w] / med["ours"], counts[w] / med["peer"]
            out.append(f"| {w} | {a:,.0f} | {peers[w]} | {b:,.0f} | {a / b:.2f} |")
    return "\n".join(out)


def run_sse(quick: bool) -> str:
    home = RESULTS / "data" / "elkyn_bench" / "sse"
    seconds, rate = (2.0, 20.0) if quick else (30.0, 20.0)
    cases = (1, 20) if quick else (1, 1000)
    results = [sse_latency(n, seconds, rate, home / str(n)) for n in cases]
    (RESULTS / "elkyn_bench_sse.json").write_text(json.dumps(results, indent=1))
    out = [
        f"### write -> SSE event latency ({rate:g} writes/s for {seconds:g} s, `elkyn serve`)",
        "",
        "| subscribers | events | lost | p50 ms | p99 ms | max ms | subscriber CPU s "
        "| server CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        out.append(
            f"| {r['subscribers']} | {r['events']} | {r['lost']} | {r['p50_ms']:.1f} "
            f"| {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['subscriber_cpu_s']:.2f} "
            f"| {r['server_cpu_s']:.2f} |"
        )
    return "\n".join(out)


def _admin_token() -> str:
    from platform_core.auth import TokenSigner

    return TokenSigner(SECRET).issue("ops", admin=True)


def _health_ms(port: int) -> float:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    conn.request("GET", "/health")
    conn.getresponse().read()
    conn.close()
    return (time.perf_counter() - t0) * 1000


def run_big_read(quick: bool) -> str:
    """``/health`` while a big subtree GET is read and encoded, against ``/health`` idle."""
    import http.client

    home = RESULTS / "data" / "elkyn_bench" / "bigread"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ["ELKYN_MAP_SIZE"] = str(1 << 30)
    proc, port = start_elkyn(home)
    token = _admin_token()
    parts = 1 if quick else 8
    try:
        for part in range(parts):
            body = json.dumps({f"p{part}-{i}": {"v": "x" * 1000, "i": i} for i in range(5000)})
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("PATCH", f"/big.json?auth={token}", body=body)
            assert conn.getresponse().read() is not None
            conn.close()
        idle = [_health_ms(port) for _ in range(50)]
        during: list[float] = []
        done = threading.Event()
        took: list[float] = []

        def big_read() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            t0 = time.perf_counter()
            conn.request("GET", f"/big.json?auth={token}")
            resp = conn.getresponse()
            done.set()  # the head is out: read and encode are over
            took.append(time.perf_counter() - t0)
            resp.read()
            conn.close()

        reader = threading.Thread(target=big_read)
        reader.start()
        while not done.is_set():
            ms = _health_ms(port)
            if not done.is_set():
                during.append(ms)
        reader.join()
    finally:
        _stop(proc)
    p50 = statistics.median(during) if during else float("nan")
    return "\n".join(
        [
            f"### /health during a {parts * 5} MB subtree read (`elkyn serve`)",
            "",
            "| read to first byte s | /health answered during it | p50 ms | max ms "
            "| idle /health p50 ms | p50 ratio |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {took[0]:.2f} | {len(during)} | {p50:.1f} | {max(during, default=0):.1f} "
            f"| {statistics.median(idle):.1f} | {p50 / statistics.median(idle):.1f} |",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_noop":
        _noop_main(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_load":
        _load_main(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) > 1 and sys.argv[1] == "_subscribe":
        _subscribe_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        argv = sys.argv[1:]
        quick = "--quick" in argv
        runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 5
        scale = (
            bench.quick_scale
            if quick
            else (float(argv[argv.index("--scale") + 1]) if "--scale" in argv else 1.0)
        )
        skip_sse = "--no-sse" in argv
        argv = [a for a in argv if a != "--no-sse"]
        try:
            bench.main(WORKLOADS, argv)
        finally:
            print()
            print(throughput_table(scale, runs))
        if not skip_sse:
            print()
            print(run_sse(quick))
        print()
        print(run_big_read(quick))
