"""Running a real server process in a test: start it, wait for ``/health``, stop it.

:func:`launch` starts ``argv`` with ``env``, reads its URL from the first stdout line that holds
one (the start banner of ``platform_core.service``) unless the URL is given, and polls
``<url>/health`` until it answers 200. If the process exits first, or the time runs out, the
error carries the process's stderr. :meth:`ServerProcess.stop` sends SIGTERM, then SIGKILL
after a grace period, and always reaps the process (no orphan). :func:`running_server` is the
same as a context manager. Standard library only, so any package's tests can use it.
"""

from __future__ import annotations

import ast
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ._linearizable import Op, linearizable
from .ports import bind_lasting

__all__ = [
    "SERVICE_KIT_MODULES",
    "Op",
    "ServerProcess",
    "ServerStartError",
    "TestCertificates",
    "assert_public_names_resolve",
    "find_cycle",
    "free_port",
    "heavy_modules_loaded",
    "import_cycles",
    "import_graph",
    "launch",
    "linearizable",
    "make_certificates",
    "running_server",
    "stop_process",
    "wait_healthy",
]

_URL = re.compile(r"https?://[^\s,()]+")


class ServerStartError(RuntimeError):
    """The server exited, or was not healthy in time; the message ends with its stderr."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago; prefer ``--port 0`` where a server can report it.

    Picked below the kernel's ephemeral range (:func:`platform_core.ports.bind_lasting`), not
    by binding port 0: a port-0 pick is an ephemeral port, which any process's next outgoing
    connection may take before the server binds it (a CI run lost a test to that).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        return bind_lasting(sock, host)


def stop_process(
    proc: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 10.0
) -> int:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the exit code (reaped)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def _healthy(url: str, cafile: str | None = None) -> str | None:
    """None if ``<url>/health`` answers 200, else why not (an https URL is verified against
    ``cafile``, else the system trust)."""
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2, context=context) as response:
            return None if response.status == 200 else f"status {response.status}"
    except urllib.error.HTTPError as exc:
        return f"status {exc.code}"
    except OSError as exc:  # refused, reset, timeout
        return str(exc)


def wait_healthy(
    url: str,
    proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None = None,
    timeout: float = 20.0,
    *,
    stderr: Path | None = None,
    cafile: str | None = None,
) -> None:
    """Poll ``<url>/health`` until it answers 200 (https: verified against ``cafile``).

    Raises :class:`ServerStartError` (with ``stderr``'s content, or the piped output) as soon as
    ``proc`` exits, and after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerStartError(
                f"the server exited with code {proc.returncode} before {url} was healthy"
                + _output(proc, stderr)
            )
        why = _healthy(url, cafile)
        if why is None:
            return
        last = why
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"{url}/health was not healthy after {timeout:g} s (last: {last})"
                + _output(proc, stderr)
            )
        time.sleep(0.05)


def _output(
    proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None, stderr: Path | None
) -> str:
    if stderr is not None:
        text = stderr.read_text(errors="replace") if stderr.exists() else ""
        return f"\nstderr:\n{text}"
    if proc is None or proc.poll() is None or (proc.stdout is None and proc.stderr is None):
        return ""
    out, err = proc.communicate(timeout=5)
    as_text = [
        x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (out, err)
    ]
    return f"\nstdout:\n{as_text[0]}\nstderr:\n{as_text[1]}"


@dataclass
class ServerProcess:
    """A server child process: its URL, the first stdout line that named it, its stderr file."""

    proc: subprocess.Popen[str]
    url: str
    banner: str
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)
    """Everything it printed on stdout so far (read by a thread, so the pipe never fills)."""
    owns_stderr: bool = False
    """The stderr file is a temporary one of ours, removed by :meth:`stop`."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        """What it wrote on stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` s; returns the exit code."""
        code = stop_process(self.proc, timeout)
        if self.owns_stderr:
            self.stderr_path.unlink(missing_ok=True)
        return code


def _read_stdout(proc: subprocess.Popen[str], lines: list[str], first: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if _URL.search(line):
            first.put(line)
    first.put("")  # end of output


def _environment(env: Mapping[str, str | None] | None) -> dict[str, str]:
    """Ours updated with ``env``, where a ``None`` value removes that variable."""
    merged: dict[str, str | None] = {**os.environ, **(env or {})}
    return {k: v for k, v in merged.items() if v is not None}


def launch(
    argv: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    url: str | None = None,
    timeout: float = 30.0,
    stderr: Path | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> ServerProcess:
    """Start ``argv`` (environment: ours updated with ``env``, ``None`` unsetting a variable)
    and wait until it is healthy.

    The URL is ``url`` if given, else the first ``http://`` or ``https://`` on a stdout line
    (its banner); an https URL is verified against the ``PLATFORM_TLS_CA`` of its environment.
    stderr goes to the file ``stderr`` (default: a temporary file), never to a pipe that could
    fill. On failure the process is stopped and :class:`ServerStartError` says why, with stderr.
    """
    owns_stderr = stderr is None
    if stderr is None:
        fd, name = tempfile.mkstemp(prefix="server-", suffix=".stderr")
        os.close(fd)
        stderr = Path(name)
    environment = _environment(env)
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=environment,
            cwd=cwd,
        )
    lines: list[str] = []
    first: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_stdout, args=(proc, lines, first), daemon=True).start()
    deadline = time.monotonic() + timeout
    banner = ""
    try:
        if url is None:
            try:
                banner = first.get(timeout=timeout)
            except queue.Empty:
                raise ServerStartError(
                    f"{argv[0]} printed no URL in {timeout:g} s" + _output(None, stderr)
                ) from None
            if not banner:
                proc.wait(timeout=5)
                raise ServerStartError(
                    f"the server exited with code {proc.returncode} before printing its URL"
                    + _output(None, stderr)
                )
            found = _URL.search(banner)
            assert found is not None
            url = found.group(0).rstrip("/.")
        wait_healthy(
            url,
            proc,
            max(deadline - time.monotonic(), 0.1),
            stderr=stderr,
            cafile=environment.get("PLATFORM_TLS_CA") or None,
        )
    except BaseException:
        stop_process(proc, timeout=5)
        if owns_stderr:
            stderr.unlink(missing_ok=True)
        raise
    return ServerProcess(proc, url, banner.strip(), stderr, lines, owns_stderr)


@contextmanager
def running_server(argv: Sequence[str], **options: Any) -> Iterator[ServerProcess]:
    """:func:`launch` (same options) as a context manager: stopped and reaped on exit."""
    server = launch(argv, **options)
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class TestCertificates:
    """A throw-away CA and a server certificate it signed, for 127.0.0.1 and localhost."""

    __test__ = False  # not a pytest test class

    ca: Path
    cert: Path
    key: Path

    def server_env(self) -> dict[str, str]:
        """``PLATFORM_TLS_*`` for a server (and its node-to-node clients) using them."""
        return {
            "PLATFORM_TLS_CERT": str(self.cert),
            "PLATFORM_TLS_KEY": str(self.key),
            "PLATFORM_TLS_CA": str(self.ca),
        }


def make_certificates(directory: Path, name: str = "test") -> TestCertificates:
    """A new CA and a server certificate (SAN 127.0.0.1, ::1, localhost) in ``directory``,
    made with the ``openssl`` command (valid one day)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / f"{name}-ca.pem", directory / f"{name}-ca.key"
    cert, key = directory / f"{name}-server.pem", directory / f"{name}-server.key"
    csr, ext = directory / f"{name}-server.csr", directory / f"{name}-server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    subject, out = f"/CN={name} test CA", ["-out", cert, "-days", "1", "-extfile", ext]
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "1", "-subj", subject],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", *out],
    ]
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True, timeout=60)
    return TestCertificates(ca, cert, key)


SERVICE_KIT_MODULES: tuple[str, ...] = (
    "platform_core.auth",
    "platform_core.users",
    "platform_core.tls",
    "platform_core.service",
    "platform_core.http",
    "platform_core.cli.credentials",
    "platform_core.apidocs",
    "jwt",
    "argon2",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
)
"""The service kit (``platform-core[service]``), which a package that serves no HTTP must not
load: pass it to :func:`heavy_modules_loaded`. Typer and rich are not in it: a package with a
command line of its own (emsqrt) declares them, and loads them only for its CLI."""


def heavy_modules_loaded(imports: Sequence[str], heavy: Sequence[str]) -> list[str]:
    """The modules of ``heavy`` (or inside one of them) that a fresh interpreter has loaded after
    importing ``imports``: a CLI that must start fast should leave this empty."""
    code = (
        f"import sys; import {', '.join(imports)}; h = {tuple(heavy)!r}; "
        "print(*sorted(m for m in sys.modules if any(m == x or m.startswith(x + '.') for x in h)),"
        " sep='\\n')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.split()


def assert_public_names_resolve(module: ModuleType) -> None:
    """Every name in ``module.__all__`` resolves (lazy re-exports included) and is listed by
    ``dir(module)``."""
    names = list(getattr(module, "__all__", ()))
    for name in names:
        assert getattr(module, name) is not None, f"{module.__name__}.{name}"
    assert set(names) <= set(dir(module))


def _module_name(directory: Path, package: str, path: Path) -> str:
    parts = [package, *path.relative_to(directory).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(directory: Path, package: str | None = None) -> dict[str, set[str]]:
    """The import graph of the package whose sources are ``directory`` (named ``package``, by
    default the directory's name): every module, subpackages' included, with the modules of the
    same package it imports.

    Read from the source (nothing is imported), and every ``import`` counts wherever it stands:
    at module level, inside a function, and under ``if TYPE_CHECKING:``. An import deferred into
    a function hides a circle from the interpreter without removing it (each module still needs
    the other), and a type-only import is a dependency on the other module's design, so both
    are edges. A name imported from a package (``from . import x``, ``from pkg.sub import x``)
    is an edge to its submodule ``x`` when there is one, else to the package's ``__init__``.
    Implicit imports of parent packages are not edges: importing ``pkg.a.b`` runs
    ``pkg/a/__init__.py`` first, but that package is already being imported when a module
    inside it imports a sibling.
    """
    name = package or directory.name
    files = {_module_name(directory, name, p): p for p in sorted(directory.rglob("*.py"))}

    def known(target: str) -> str | None:
        while target not in files and "." in target:
            target = target.rsplit(".", 1)[0]
        return target if target in files else None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {known(a.name) for a in node.names if a.name.split(".")[0] == name}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    up = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                if base.split(".")[0] != name:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in files else known(base))
        found.discard(None)
        found.discard(module)
        graph[module] = {m for m in found if m is not None}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (cycle := visit(m)) is not None:
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)) is not None:
            return cycle
    return None


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle of each circle of ``graph`` (each set of modules that reach one another), so a
    failing test names every circle at once, not the first one found."""
    cycles: list[list[str]] = []
    graph = {n: set(deps) for n, deps in graph.items()}
    while (cycle := find_cycle(graph)) is not None:
        cycles.append(cycle)
        members = _reaching(graph, cycle[0])
        graph = {n: deps - members for n, deps in graph.items() if n not in members}
    return cycles


def _reaching(graph: dict[str, set[str]], start: str) -> set[str]:
    """The nodes that ``start`` reaches and that reach ``start`` back (its circle)."""

    def reach(edges: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for m in edges.get(todo.pop(), ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    back: dict[str, set[str]] = {}
    for n, deps in graph.items():
        for m in deps:
            back.setdefault(m, set()).add(n)
    return reach(graph) & reach(back)
