"""Shared fixtures: seeded Parquet parts and a DuckDB oracle over the same files."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

import elytra

# These tests check how a job is split into stages, over data far below the size at which a
# job runs as one task by default (ELYTRA_WHOLE_QUERY_BYTES, 64 MiB): they run with it off,
# and a test of a job as one task sets ``whole_query_bytes`` itself.
os.environ.setdefault("ELYTRA_WHOLE_QUERY_BYTES", "0")


def write_parts(directory: Path, parts: int = 5, rows: int = 2000, seed: int = 1) -> Path:
    """``parts`` Parquet files of a seeded table: ints and floats with NULLs, text, dates."""
    directory.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed / 100})")
    for p in range(parts):
        lo = p * rows
        con.execute(
            f"""COPY (SELECT (i % 7)::INTEGER AS k,
                       CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 37 % 1000)::BIGINT END AS v,
                       CASE WHEN i % 13 = 0 THEN NULL ELSE round(random() * 100, 2) END AS f,
                       'u' || (i % 17) AS s,
                       DATE '2024-01-01' + (i % 90)::INTEGER AS d
                FROM range({lo}, {lo + rows}) t(i)) TO '{directory}/part{p}.parquet' (FORMAT parquet)"""
        )
    return directory


def views_oracle(files: dict[str, Path]) -> duckdb.DuckDBPyConnection:
    """DuckDB with a view per table over the Parquet files of its directory: the oracle the
    SQL tests compare Elytra with, on the very files Elytra reads."""
    con = duckdb.connect()
    for t, d in files.items():
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{d}/*.parquet')")
    return con


def read_tables(session: elytra.Session, files: dict[str, Path]) -> dict[str, elytra.Pipeline]:
    """A pipeline per table over its directory's Parquet files, named for ``session.sql``."""
    return {t: session.read_parquet(str(d / "*.parquet")) for t, d in files.items()}


def norm(value: Any) -> Any:
    """Comparable form of a value: Decimal and int alike, floats rounded to 9 significant digits
    (partial sums of floats are added in a different order than DuckDB adds them)."""
    if isinstance(value, Decimal):
        value = float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return float(f"{value:.9g}") + 0.0  # -0.0 as 0.0: SQL equal (a join key is canonical)
    return value


def rows_of(table_rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(norm(v) for v in r) for r in table_rows), key=repr)


def same_rows(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    """Rows of :func:`rows_of` equal, floats to a relative 1e-8 (one unit of their ninth
    significant digit is 1e-9 to 1e-8 of them): two sums of one column added in other orders
    can round either side of a ninth digit (1877.24063 against DuckDB's 1877.24062, once in
    a Ray run)."""
    if len(got) != len(want):
        return False
    return all(
        len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
        for a, b in zip(got, want, strict=True)
    )


def _same_value(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-8)
    return bool(x == y)


@pytest.fixture(scope="session")
def parts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parts(tmp_path_factory.mktemp("parts"))


@pytest.fixture
def session(tmp_path: Path) -> Iterator[elytra.Session]:
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        yield s


@pytest.fixture(scope="module")
def pool() -> Iterator[elytra.LocalPool]:
    """One local pool of two workers per test module (closed after it: test_local_pool
    checks that no ring of this process is left)."""
    p = elytra.LocalPool(2, ring_bytes=4 << 20, inline_bytes=0)
    yield p
    p.close()


@pytest.fixture(scope="module")
def one_worker_pool() -> Iterator[elytra.LocalPool]:
    """A pool of one worker with a long lease, per test module: tasks queue behind each other."""
    p = elytra.LocalPool(workers=1, ring_bytes=1 << 20, lease_seconds=60.0, inline_bytes=0)
    try:
        p.wait_ready()
        yield p
    finally:
        p.close()


@pytest.fixture(scope="session")
def ray_backend() -> Iterator[elytra.RayBackend]:
    """One Ray instance on this machine (``ray.init``) for the whole test session."""
    backend = elytra.RayBackend(num_cpus=2)
    yield backend
    backend.close()


@pytest.fixture(params=["inline", "local", "ray"])
def any_session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[elytra.Session]:
    """The same pipelines on each backend (they must give identical answers). Inline merges
    group-bys in the driver; local and Ray always through the aggregate exchange (partial
    states partitioned by key, final aggregates on the workers), so both paths meet DuckDB."""
    backend: Any = "inline"
    extra: dict[str, Any] = {}
    if request.param != "inline":
        backend = request.getfixturevalue("pool" if request.param == "local" else "ray_backend")
        extra["exchange_min_bytes"] = 0
    with elytra.connect(home=tmp_path / "home", backend=backend, **extra) as s:
        yield s
