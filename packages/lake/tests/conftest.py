"""Fixtures: generated data files, and `lake node` as a real child process on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from lake import Client, LakeNode, lake_settings
from lake.testing import NodeProcess, ingest, start_node, stop_node
from platform_core.auth import TokenSigner

SECRET = "s" * 40
CHUNK = 256 * 1024  # small chunks, so every test dataset spans many of them


def make_csv(path: Path, rows: int = 150_000, seed: int = 7) -> Path:
    """A seeded CSV with ints, floats, text, dates and NULLs, written by DuckDB."""
    duckdb.sql(f"SELECT setseed({seed / 100})")
    duckdb.sql(
        f"""COPY (SELECT i AS id, i % 13 AS grp, round(random() * 1000, 3) AS amount,
                  CASE WHEN i % 11 = 0 THEN NULL ELSE 'user' || (i % 977) END AS who,
                  DATE '2024-01-01' + (i % 366)::INTEGER AS day
           FROM range({rows}) t(i)) TO '{path}' (HEADER)"""
    )
    return path


@pytest.fixture(scope="session")
def sales_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_csv(tmp_path_factory.mktemp("data") / "sales.csv")


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LakeNode]:
    """An in-process node with 256 KiB chunks."""
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    n = LakeNode(lake_settings(None, home=tmp_path / "home", chunk_bytes=CHUNK))
    yield n
    n.stop()


Launch = Callable[..., NodeProcess]


@contextmanager
def launcher(base: Path) -> Iterator[Launch]:
    """``launch(name, *args, **env)`` starting `lake node` processes under ``base``; all are
    stopped when the context ends."""
    started: list[NodeProcess] = []

    def start(name: str = "a", *args: str, **env: str) -> NodeProcess:
        full = {
            "PLATFORM_SECRET": SECRET,
            "LAKE_CHUNK_BYTES": str(CHUNK),
            "LAKE_FLIGHT_PORT": "0",
            "LAKE_GOSSIP_INTERVAL_SECONDS": "0.2",
            "LAKE_PING_TIMEOUT_SECONDS": "0.4",
            "LAKE_SUSPECT_TIMEOUT_SECONDS": "3",
            "LAKE_REPLICATE_INTERVAL_SECONDS": "0.5",
            **env,
        }
        proc = start_node(base / name, *args, env=full)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            stop_node(proc)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start `lake node` processes (``launch(name, **env)``); all stopped at the end."""
    with launcher(tmp_path) as start:
        yield start


@pytest.fixture
def token() -> str:
    return TokenSigner(SECRET).issue("tester", admin=True)


@pytest.fixture
def client_for(token: str) -> Iterator[Callable[[NodeProcess], Client]]:
    clients: list[Client] = []

    def make(proc: NodeProcess) -> Client:
        c = Client(proc.url, token, timeout=30)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def ingest_file() -> Callable[..., None]:
    return ingest


@pytest.fixture
def csv_maker() -> Callable[..., Path]:
    return make_csv
