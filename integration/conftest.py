"""End-to-end fixtures: the installed `platform` command run as a user runs it, with the test plugin."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from platform_core import PlatformSettings, auth, load_settings
from platform_core.testing import ServerProcess
from platform_gateway.testing import EVENTS_DIR_ENV, wait_healthy, write_test_plugin

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helper modules (jobs_helpers)

from servers import command, launch

INT64_MAX = 2**63 - 1

# The platforms these tests start hold far less than the size below which a job runs as one
# task by default (ELYTRA_WHOLE_QUERY_BYTES, 64 MiB); the tests check stages, exchanges and
# their faults, so it is off here. test_sql_whole_by_default.py starts one with the default.
os.environ.setdefault("ELYTRA_WHOLE_QUERY_BYTES", "0")

BANNER = re.compile(r"platform is up at (http://\S+) \(docs: ([^,\s)]+)")
START_TIMEOUT = 90.0
"""A bound on waiting for a start, not a speed test: a loaded machine takes far longer than 20 s
to import and start the whole platform (seen: `platform --help` alone 27 s at load 11)."""
STOP_TIMEOUT = 10.0


@dataclass
class Platform:
    """A `platform up` child process, its output files, data directory and plugin events."""

    proc: subprocess.Popen[bytes]
    home: Path
    stdout: Path
    stderr: Path
    events_log: Path
    url: str = field(default="")

    def output(self) -> str:
        """Everything the process printed so far, to attach to a failure."""
        return f"--- stdout ---\n{self.stdout.read_text()}--- stderr ---\n{self.stderr.read_text()}"

    def banner(self) -> re.Match[str] | None:
        return BANNER.search(self.stdout.read_text())

    def events(self) -> list[str]:
        """The test plugins' lifespan events, in order ("enter testplug", "exit testplug", ...)."""
        return self.events_log.read_text().splitlines() if self.events_log.exists() else []

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and return the exit code; fail if it takes more than STOP_TIMEOUT."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"`platform up` did not stop within {STOP_TIMEOUT} s\n{self.output()}")

    def wait_for_event(self, event: str, timeout: float = START_TIMEOUT) -> None:
        """Wait until the test plugins have recorded ``event``; fail if the process ends first."""
        deadline = time.monotonic() + timeout
        while event not in self.events():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {event!r} event (got {self.events()})\n{self.output()}")
            time.sleep(0.05)


StartPlatform = Callable[..., Platform]


@dataclass(frozen=True)
class SharedPlatform:
    """A `platform up` shared by several tests: its process and data directory."""

    server: ServerProcess
    home: Path

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def jobs_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedPlatform]:
    """One `platform up` with one pool worker (``ELYTRA_WORKERS=1``) for the session's job-API
    tests that neither restart, kill nor reconfigure it; each uploads its own datasets.
    (Each of them started its own platform before: six starts for six tests.)"""
    base = tmp_path_factory.mktemp("jobs-platform")
    home = base / "home"
    server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        base / "run",
        env={"ELYTRA_WORKERS": "1"},
    )
    try:
        yield SharedPlatform(server, home)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def platform_command() -> Path:
    """The `platform` console script installed in this interpreter's venv."""
    command = Path(sys.executable).parent / "platform"
    if not command.is_file():
        pytest.fail(f"{command} is missing; install the workspace (`uv sync --all-packages`)")
    return command


@pytest.fixture(scope="session")
def test_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway's throw-away test plugins, registered through a *.dist-info on PYTHONPATH."""
    return write_test_plugin(tmp_path_factory.mktemp("plugins"))


@pytest.fixture
def start_platform(
    platform_command: Path, test_plugin_dir: Path, tmp_path: Path
) -> Iterator[StartPlatform]:
    """``start_platform(port, env={}, wait=True)``: run `platform up --port PORT --home <tmp>`.

    ``env`` adds environment variables (e.g. the test plugin's slow-lifespan switches); with
    ``wait``, it returns once the banner is printed and ``/health`` answers.
    """
    started: list[Platform] = []

    def start(port: int, env: dict[str, str] | None = None, wait: bool = True) -> Platform:
        extra_env = env or {}
        run_dir = tmp_path / f"run{len(started)}"
        events_dir = run_dir / "events"
        events_dir.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(test_plugin_dir), os.environ.get("PYTHONPATH")) if p
        )
        env[EVENTS_DIR_ENV] = str(events_dir)
        env.setdefault(
            "LAKE_FLIGHT_PORT", "0"
        )  # the embedded lake node's Flight port: any free one
        env.update(extra_env)
        home, stdout, stderr = run_dir / "home", run_dir / "stdout.log", run_dir / "stderr.log"
        # Output goes to files, not pipes, so a chatty server can never block on a full pipe.
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = subprocess.Popen(
                [str(platform_command), "up", "--port", str(port), "--home", str(home)],
                stdout=out,
                stderr=err,
                env=env,
                cwd=run_dir,
            )
        platform = Platform(proc, home, stdout, stderr, events_dir / "events.log")
        started.append(platform)
        if not wait:
            return platform
        try:
            match = _wait_for_banner(platform)
            platform.url = match.group(1)
            wait_healthy(platform.url, platform.proc, timeout=START_TIMEOUT)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}\n{platform.output()}")
        return platform

    yield start
    for platform in started:
        if platform.proc.poll() is None:
            platform.proc.kill()
            platform.proc.wait()


def _wait_for_banner(platform: Platform) -> re.Match[str]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = platform.banner()
        if match:
            return match
        if platform.proc.poll() is not None:
            raise RuntimeError(f"`platform up` exited with code {platform.proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"`platform up` printed no banner within {START_TIMEOUT} s")


@pytest.fixture(scope="session")
def platform_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Three `platform up` processes made one platform (`--join`), shared by the session's
    multi-node tests that neither stop nor reconfigure them; each uploads its own datasets."""
    from platform_cluster import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("platform-cluster"), 3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sums_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, Path]]:
    """One `platform up` (one pool worker, Elkyn writes bounded at 4 KiB) holding dataset `t`
    (uploaded by alice), whose integer sums pass int64; yields (server, alice's token, the
    dataset's Parquet file, beside which lies the platform's ``home``). Shared by
    test_integer_sums_equal_duckdb.py and the gateway `/db` test of test_elkyn_http_layer.py."""
    base = tmp_path_factory.mktemp("sums-platform")
    home = base / "home"
    server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        base / "run",
        env={"ELYTRA_WORKERS": "1", "ELKYN_MAX_WRITE_BYTES": "4096"},
    )
    try:
        import duckdb

        signer = auth.signer(load_settings(PlatformSettings, home=home), create=False)
        token = signer.issue("alice")
        csv = base / "t.parquet"
        duckdb.sql(
            f"COPY (SELECT CAST(i % 4 AS BIGINT) AS k, CASE WHEN i % 10 = 3 THEN NULL "
            f"WHEN i % 2 = 0 THEN {INT64_MAX} ELSE -{INT64_MAX // 3} END AS v, "
            f"CAST(NULL AS BIGINT) AS nv, i % 3 = 0 AS b FROM range(4000) t(i)) "
            f"TO '{csv}' (FORMAT parquet)"
        )
        from lake import Client

        with Client(server.url, token) as client:
            client.upload(csv, "t")
        yield server, token, csv
    finally:
        server.stop()


def rows_9g(table: Any, ordered: bool) -> list[tuple[Any, ...]]:
    """A SQL answer's rows with floats to 9 significant digits (partial sums add in another
    order than DuckDB's), sorted unless the query orders them: compared with DuckDB's."""
    rows = [
        tuple(float(f"{v:.9g}") if isinstance(v, float) else v for v in r.values())
        for r in table.to_pylist()
    ]
    return rows if ordered else sorted(rows, key=repr)
