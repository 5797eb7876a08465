"""Peer engines that cannot live in the workspace's environment, each in a virtual env of its own.

Daft 0.7.26 (the newest) requires ``pyarrow<26``; the workspace requires ``pyarrow>=26``. So
Daft runs in ``bench/.peers/daft/`` (git-ignored), a virtual environment of the workspace's
Python made by the bench itself from ``bench/peers/daft.txt`` (``uv pip compile
--generate-hashes`` of ``bench/peers/daft.in``; installed with ``--require-hashes``), and made
anew whenever that file's hash changes. Nobody installs it by hand.

The engine runs as one long-lived server per bench run (``bench/peers/daft_server.py``): Python's
and Daft's start-up are not in the timings, as they are not for the in-process peers. Each
question goes to it as a JSON line over a Unix socket; it answers with the seconds it measured
around the query and ``.to_arrow()``, and the result as an Arrow IPC file, read back here
(untimed) so that the bench compares it with DuckDB's like every other engine's answer.

Refresh the pins: ``.tools/uv/bin/uv pip compile --generate-hashes --python-version 3.11
--python-platform x86_64-manylinux_2_28 bench/peers/daft.in -o bench/peers/daft.txt``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _harness import Measured

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / ".peers"
REQUIREMENTS = BENCH / "peers" / "daft.txt"
SERVER = BENCH / "peers" / "daft_server.py"


def _uv() -> str:
    local = BENCH.parent / ".tools" / "uv" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if not found:
        raise RuntimeError("no uv: run `make setup` (it installs .tools/uv)")
    return found


def daft_python() -> Path:
    """The Daft environment's interpreter, the environment made first when it is missing or was
    made from another ``daft.txt`` (its hash is kept in the environment)."""
    env = PEERS / "daft"
    python = env / "bin" / "python"
    stamp = env / ".requirements-sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    PEERS.mkdir(exist_ok=True)
    with open(PEERS / "daft.lock", "w") as lock:  # two bench runs at once build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == digest and python.exists():
            return python
        shutil.rmtree(env, ignore_errors=True)
        started = time.perf_counter()
        uv_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        uv_env.pop("VIRTUAL_ENV", None)
        base = getattr(sys, "_base_executable", sys.executable)  # the workspace's Python 3.11
        subprocess.run([_uv(), "venv", "-q", "--python", base, str(env)], check=True, env=uv_env)
        install = ["pip", "install", "-q", "--python", str(python), "--require-hashes"]
        pins = ["--no-deps", "-r", str(REQUIREMENTS)]
        subprocess.run([_uv(), *install, *pins], check=True, env=uv_env)
        stamp.write_text(digest)
        print(
            f"  made the Daft environment {env} in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    return python


@contextmanager
def daft_server(params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Start the Daft server (its environment first, if needed); yield ``{"daft_socket": path}``
    for the clients; stop it at the end. A harness ``service``."""
    python = daft_python()
    scratch = Path(tempfile.mkdtemp(prefix="daft-peer-"))
    path = scratch / "daft.sock"
    proc = subprocess.Popen(
        [str(python), str(SERVER), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("ready"):
            raise RuntimeError(f"the Daft server did not start (exit {proc.poll()}): {line!r}")
        print(f"  Daft server: {line[len('ready ') :]}", file=sys.stderr)
        yield {"daft_socket": str(path)}
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the server exits when its stdin ends
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)


class DaftError(RuntimeError):
    """Daft refused the question (its error, from the server)."""


class DaftClient:
    """One connection to the Daft server: ``ask`` a question, get :class:`Measured` back."""

    def __init__(self, socket_path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(socket_path)
        self.stream = self.sock.makefile("rwb")

    def ask(
        self, module: str, function: str, tables: dict[str, list[str]], **args: Any
    ) -> Measured:
        """``function(daft, tables, **args)`` from the script at ``module`` run in the server."""
        import pyarrow as pa

        request = {"module": module, "function": function, "tables": tables, "args": args}
        self.stream.write(json.dumps(request).encode() + b"\n")
        self.stream.flush()
        line = self.stream.readline()
        if not line:
            raise DaftError("the Daft server closed the connection")
        reply = json.loads(line)
        if "error" in reply:
            raise DaftError(reply["error"])
        try:
            with pa.OSFile(reply["path"]) as f:  # a copy: the file goes now
                table = pa.ipc.open_file(f).read_all()
        finally:
            os.unlink(reply["path"])
        return Measured(
            table, reply["seconds"], reply["peak_rss_bytes"], reply.get("setup_rss_bytes")
        )

    def close(self) -> None:
        self.stream.close()
        self.sock.close()
