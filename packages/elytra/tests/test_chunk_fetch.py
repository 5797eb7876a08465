"""A job over chunks this node lacks: the driver fetches them from replicas, several at once,
and a cancel or the job's timeout ends a fetch a hung replica holds (found from outside: a
SIGSTOPped platform held a job ``queued`` 20 s past its 5 s timeout, and its cancel)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from elytra import ElytraSettings, JobCancelledError, JobTimeoutError
from elytra.backends import InlineBackend
from elytra.session import Session
from lake import LakeNode, lake_settings
from lake.testing import ingest

from .conftest import rows_of

SQL = "SELECT grp, count(*) AS n, sum(amount) AS total FROM '{csv}' GROUP BY grp"


@pytest.fixture
def lacking(tmp_path: Path) -> Iterator[tuple[LakeNode, Path, Path]]:
    """A lake node whose ``sales`` chunks were all moved to ``replica/`` (another member's
    copies, as far as the job can tell), and the rows' CSV."""
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, (i % 7)::INTEGER AS grp, round(i * 0.37 % 1000, 2) AS amount "
        f"FROM range(40000) t(i)) TO '{csv}' (HEADER)"
    )
    node = LakeNode(lake_settings(None, home=tmp_path / "home", chunk_bytes=64 * 1024))
    ingest(node, csv, "sales")
    replica = tmp_path / "replica"
    replica.mkdir()
    for chunk in node.catalog.chunks.root.glob("*.parquet"):
        shutil.move(chunk, replica / chunk.name)
    try:
        yield node, replica, csv
    finally:
        node.stop()


def _session(node: LakeNode, fetch: object, home: Path) -> Session:
    settings = ElytraSettings(home=home, progress=False)
    return Session(settings, InlineBackend(), catalog=node.catalog, fetch=fetch)  # type: ignore[arg-type]


def test_chunks_are_fetched_several_at_once_and_the_answer_is_duckdbs(
    lacking: tuple[LakeNode, Path, Path], tmp_path: Path
) -> None:
    node, replica, csv = lacking
    running, most, lock = [0], [0], threading.Lock()

    def fetch(sha: str, origin: str) -> bytes:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return (replica / f"{sha}.parquet").read_bytes()

    with _session(node, fetch, tmp_path / "h") as s:
        q = s.dataset("sales").group_by("grp").agg("count(*) AS n", "sum(amount) AS total")
        got = rows_of([tuple(r.values()) for r in q.collect().to_pylist()])
    assert got == rows_of(duckdb.sql(SQL.format(csv=csv)).fetchall())
    assert most[0] >= 2, most  # not one after another


@pytest.mark.parametrize("end", ["timeout", "cancel"])
def test_a_hung_replica_does_not_hold_a_job_past_its_timeout_or_cancel(
    lacking: tuple[LakeNode, Path, Path], tmp_path: Path, end: str
) -> None:
    node, replica, _ = lacking
    release = threading.Event()

    def hung(sha: str, origin: str) -> bytes:
        release.wait(60)  # a SIGSTOPped member: the call answers nothing
        return (replica / f"{sha}.parquet").read_bytes()

    try:
        with _session(node, hung, tmp_path / "h") as s:
            q = s.dataset("sales").group_by("grp").agg("count(*) AS n")
            started = time.monotonic()
            job = q.submit(timeout=1.0 if end == "timeout" else None)
            if end == "cancel":
                time.sleep(0.5)
                job.cancel()
            job.wait(30)
            seconds = time.monotonic() - started
            error = JobTimeoutError if end == "timeout" else JobCancelledError
            with pytest.raises(error):
                job.result(timeout=1)
    finally:
        release.set()
    assert seconds < 5, seconds


def test_a_chunk_the_lake_trims_after_planning_is_read_from_a_replica(tmp_path: Path) -> None:
    """This node's copies are pinned (hard links in the job's directory) when the job starts;
    one the lake trimmed after the pipeline was planned is fetched from a replica instead of
    failing the read (found when the peer route, which pinned them, was retired: a query
    right after an upload read a chunk the uploader had just trimmed)."""
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, (i % 7)::INTEGER AS grp, round(i * 0.37 % 1000, 2) AS amount "
        f"FROM range(40000) t(i)) TO '{csv}' (HEADER)"
    )
    node = LakeNode(lake_settings(None, home=tmp_path / "home", chunk_bytes=64 * 1024))
    try:
        ingest(node, csv, "sales")
        replica = tmp_path / "replica"
        shutil.copytree(node.catalog.chunks.root, replica)
        asked: list[str] = []

        def fetch(sha: str, origin: str) -> bytes:
            asked.append(sha)
            return (replica / f"{sha}.parquet").read_bytes()

        with _session(node, fetch, tmp_path / "h") as s:
            q = s.dataset("sales").group_by("grp").agg("count(*) AS n", "sum(amount) AS total")
            chunks = sorted(node.catalog.chunks.root.glob("*.parquet"))
            assert len(chunks) >= 3, chunks
            chunks[0].unlink()  # trimmed between planning and reading
            got = rows_of([tuple(r.values()) for r in q.collect().to_pylist()])
        assert got == rows_of(duckdb.sql(SQL.format(csv=csv)).fetchall())
        assert asked == [chunks[0].stem]  # only the trimmed one; the others were pinned here
        assert all(c.is_file() for c in chunks[1:])  # the lake's own copies stay as they were
    finally:
        node.stop()


def _chunks_in(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.parquet")) if cache.is_dir() else []


@pytest.mark.parametrize("bound", ["default", "two chunks", "off"])
def test_fetched_chunks_are_kept_for_the_next_job_within_their_bound(
    lacking: tuple[LakeNode, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bound: str,
) -> None:
    """Without Ray the pool of the platform that takes a query fetches the chunks it lacks;
    they are kept in the chunk cache (``elytra.chunkcache``), so the next job reads them
    here: TPC-H on three platforms fetched 119 MiB of lineitem again for every query. The
    cache keeps to ``chunk_cache_bytes`` (least recently used out first), and 0 turns it
    off; every answer is DuckDB's."""
    from elytra import planchunks

    monkeypatch.setattr(planchunks, "SMALL_SOURCE_BYTES", 0)  # only the job's own fetches
    node, replica, csv = lacking
    sizes = [p.stat().st_size for p in replica.glob("*.parquet")]
    limit = {"default": None, "two chunks": max(sizes) * 2, "off": 0}[bound]
    asked: list[str] = []

    def fetch(sha: str, origin: str) -> bytes:
        asked.append(sha)
        return (replica / f"{sha}.parquet").read_bytes()

    extra = {} if limit is None else {"chunk_cache_bytes": limit}
    settings = ElytraSettings(home=tmp_path / "h", progress=False, **extra)
    cache = settings.resolved_spill_dir() / "chunk-cache"
    want = rows_of(duckdb.sql(SQL.format(csv=csv)).fetchall())
    for _ in range(2):
        with Session(settings, InlineBackend(), catalog=node.catalog, fetch=fetch) as s:  # type: ignore[arg-type]
            q = s.dataset("sales").group_by("grp").agg("count(*) AS n", "sum(amount) AS total")
            assert rows_of([tuple(r.values()) for r in q.collect().to_pylist()]) == want
        if limit is not None:
            assert sum(p.stat().st_size for p in _chunks_in(cache)) <= limit
    n = len(sizes)
    assert len(sizes) >= 4, sizes
    if bound == "default":
        assert len(asked) == n  # the second job fetched nothing
        assert len(_chunks_in(cache)) == n
    elif bound == "two chunks":
        assert n < len(asked) < 2 * n, (n, len(asked))  # kept some, fetched the rest again
        assert 1 <= len(_chunks_in(cache)) < n
    else:
        assert len(asked) == 2 * n
        assert _chunks_in(cache) == []


def test_the_cache_drops_the_least_recently_used_first_never_one_kept(tmp_path: Path) -> None:
    from elytra.chunkcache import trim

    for i in range(4):
        (tmp_path / f"{i}.parquet").write_bytes(b"x" * 1000)
        os.utime(tmp_path / f"{i}.parquet", (1000 + i, 1000))  # used: the access time
    (tmp_path / ".5.parquet.123.tmp").write_bytes(b"x" * 5000)  # a fetch still writing
    trim(tmp_path, 2500, keep=[str(tmp_path / "0.parquet")])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".5.parquet.123.tmp",
        "0.parquet",
        "3.parquet",
    ]


def test_a_copy_swapped_after_its_check_is_not_what_the_job_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's hard link must be of the inode whose hash was checked: a copy replaced
    between the check and the link is not read (found from outside: a one-row file put there
    gave 128 rows a group for 5,715)."""
    import hashlib

    from elytra import chunkcache

    good = b"the chunk's bytes"
    sha = hashlib.sha256(good).hexdigest()
    cache, job = tmp_path / "cache", tmp_path / "job"
    job.mkdir()
    assert Path(chunkcache.cached(sha, lambda s: good, cache)).read_bytes() == good
    real = chunkcache.pin_chunk

    def swapped(path: str | None, target: Path) -> str | None:
        assert path is not None
        os.replace(_forged(tmp_path), path)  # after the check, before the link
        return real(path, target)

    monkeypatch.setattr(chunkcache, "pin_chunk", swapped)
    pinned = chunkcache.pin(sha, lambda s: good, cache, job)
    assert Path(pinned).read_bytes() == good


def _forged(where: Path) -> Path:
    forged = where / "forged"
    forged.write_bytes(b"other bytes of the same chunk name")
    return forged


@pytest.mark.parametrize("bound", [1 << 30, 1])
def test_a_directory_in_place_of_a_copy_is_gone_without(
    lacking: tuple[LakeNode, Path, Path], tmp_path: Path, bound: int
) -> None:
    """A directory where a copy would be (found from outside: every query failed with
    ``IsADirectoryError``, from the planner's check and from the trim): the job fetches the
    chunk for itself, and the answer is DuckDB's."""
    node, replica, csv = lacking
    settings = ElytraSettings(home=tmp_path / "h", progress=False, chunk_cache_bytes=bound)
    cache = settings.resolved_spill_dir() / "chunk-cache"
    for chunk in replica.glob("*.parquet"):
        (cache / chunk.name).mkdir(parents=True)

    def fetch(sha: str, origin: str) -> bytes:
        return (replica / f"{sha}.parquet").read_bytes()

    want = rows_of(duckdb.sql(SQL.format(csv=csv)).fetchall())
    for _ in range(2):
        with Session(settings, InlineBackend(), catalog=node.catalog, fetch=fetch) as s:  # type: ignore[arg-type]
            q = s.dataset("sales").group_by("grp").agg("count(*) AS n", "sum(amount) AS total")
            assert rows_of([tuple(r.values()) for r in q.collect().to_pylist()]) == want


def test_a_fetch_s_temp_file_left_by_a_killed_process_is_dropped(tmp_path: Path) -> None:
    """A fetch writes ``.<sha>.<pid>.<thread>.tmp`` and renames it; one a SIGKILL left
    behind would stay forever (the trim passes over temp files): its process gone, the trim
    removes it; one whose process is alive is still being written, and stays."""
    import subprocess
    import sys

    from elytra.chunkcache import trim

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f".{'a' * 64}.{int(gone.stdout)}.1.tmp"
    alive = tmp_path / f".{'b' * 64}.{os.getpid()}.1.tmp"
    for p in (dead, alive):
        p.write_bytes(b"half a chunk")
    trim(tmp_path, 1 << 30)
    assert not dead.exists()
    assert alive.exists()
