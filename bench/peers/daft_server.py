"""A Daft engine server for the benchmarks; runs in Daft's own virtual environment.

Started once per bench run by ``bench/_peers.py`` (``python daft_server.py SOCKET``), it imports
Daft, listens on a Unix socket and prints ``ready``. A client sends one JSON request a line::

    {"module": "/path/bench/elytra_bench.py", "function": "daft_query",
     "tables": {"g1": ["/path/chunk-0.parquet", ...]}, "args": {"workload": "q1"}}

The server reads each table with ``daft.read_parquet(files)`` once (setup, untimed, as the other
engines' ``read_parquet`` views and ``scan_parquet`` frames), then times
``function(daft, tables, **args).to_arrow()`` — the query and its result as one Arrow table in
this process, like the in-process peers' timings — writes that table to a temporary Arrow IPC
file (untimed) and answers ``{"seconds", "peak_rss_bytes", "setup_rss_bytes", "path"}`` or
``{"error"}``. The client reads the file and deletes it. The benchmark script is imported here
from its path, so a question's Daft code sits in the script beside the other engines'; the
script's top level must import nothing but the standard library and ``_harness``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

import daft
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _procstat import reset_peak_rss, status_kib  # bench/, the folder above this one


class Server:
    def __init__(self) -> None:
        self.modules: dict[str, Any] = {}
        self.frames: dict[tuple[str, ...], Any] = {}
        self.scratch = tempfile.mkdtemp(prefix="daft-results-")

    def module(self, path: str) -> Any:
        if path not in self.modules:
            sys.path.insert(0, os.path.dirname(path))
            spec = importlib.util.spec_from_file_location(f"_bench_{len(self.modules)}", path)
            if spec is None or spec.loader is None:
                raise RuntimeError(f"cannot load {path}")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            self.modules[path] = mod
        return self.modules[path]

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        fn = getattr(self.module(req["module"]), req["function"])
        before = status_kib("VmRSS") * 1024
        tables = {}
        for name, files in req["tables"].items():
            key = tuple(files)
            if key not in self.frames:  # setup: once per table for the server's life
                self.frames[key] = daft.read_parquet(list(files))
            tables[name] = self.frames[key]
        baseline = status_kib("VmRSS") * 1024
        exact = reset_peak_rss()
        start = time.perf_counter()
        result = fn(daft, tables, **req.get("args", {})).to_arrow()
        seconds = time.perf_counter() - start
        peak = status_kib("VmHWM") * 1024
        fd, path = tempfile.mkstemp(suffix=".arrow", dir=self.scratch)
        with os.fdopen(fd, "wb") as f, pa.ipc.new_file(f, result.schema) as w:
            w.write_table(result)
        return {
            "seconds": seconds,
            "peak_rss_bytes": max(0, peak - baseline) if exact else None,
            "setup_rss_bytes": max(0, baseline - before),
            "path": path,
        }

    def serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                try:
                    reply = self.answer(json.loads(line))
                except Exception as exc:  # the engine refused the question: say why
                    reply = {
                        "error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(),
                    }
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.flush()


def _exit_with_parent() -> None:
    """The parent holds our stdin: its end (the bench done, or killed) ends the server."""
    sys.stdin.buffer.read()
    os._exit(0)


def main() -> None:
    path = sys.argv[1]
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    server = Server()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)
        sock.listen(4)
        print(f"ready daft {daft.__version__} pyarrow {pa.__version__}", flush=True)
        while True:  # one client at a time: the harness's runs are sequential
            conn, _ = sock.accept()
            server.serve(conn)


if __name__ == "__main__":
    main()
