"""Backup and restore of a node's data, and the on-disk format marker (real nodes, real files).

DuckDB over the original files is the oracle for what a node on a restored directory answers.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from lake import Client, LakeNode, lake_settings
from lake.errors import CorruptChunkError, FormatError
from lake.storage.backup import open_source, take_backup
from lake.storage.dataformat import FORMAT_VERSION, read_format
from lake.storage.restore import restore_backup
from lake.testing import NodeProcess, ingest, start_node, stop_node
from platform_core.auth import TokenSigner

from .conftest import CHUNK, SECRET, Launch, make_csv

ADMIN = TokenSigner(SECRET).issue("root", admin=True)
ENV = {"PLATFORM_SECRET": SECRET, "LAKE_CHUNK_BYTES": str(CHUNK), "LAKE_FLIGHT_PORT": "0"}
CHECKS = [
    "SELECT count(*) AS n, count(who) AS w, sum(id) AS s, min(day) AS d0, max(day) AS d1 FROM {t}",
    "SELECT grp, count(*) AS n, round(sum(amount), 3) AS a FROM {t} GROUP BY grp ORDER BY grp",
    "SELECT id, who, amount, day FROM {t} WHERE id % 997 = 3 ORDER BY id",
]


def lake(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m lake ARGS`` as a child process (the real CLI, its exit code and stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "lake", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PLATFORM_SECRET": SECRET, **(env or {})},
    )


def node_dir(proc: NodeProcess) -> Path:
    return proc.home / "lake" / proc.node_id


def oracle(sql: str, table: str, source: Path) -> list[tuple[Any, ...]]:
    return duckdb.sql(sql.format(t=f"read_csv('{source}')")).fetchall()


def answers(client: Client, sql: str, table: str) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in client.query_arrow(sql.format(t=table)).to_pylist()]


def in_process(home: Path, **kw: Any) -> LakeNode:
    return LakeNode(lake_settings(None, home=home, chunk_bytes=CHUNK, **kw))


@pytest.fixture
def stored(tmp_path: Path, sales_csv: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data directory of a stopped node holding ``sales`` (many chunks)."""
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    node = in_process(tmp_path / "home")
    ingest(node, sales_csv, "sales", owner="alice")
    root = node.root
    node.stop()
    return root


def test_backup_of_a_running_node_during_an_upload_restores_to_the_same_answers(
    tmp_path: Path, sales_csv: Path
) -> None:
    files = {
        "sales": sales_csv,
        "more": make_csv(tmp_path / "more.csv", rows=40_000, seed=3),
        "late": make_csv(tmp_path / "late.csv", rows=120_000, seed=5),
    }
    proc = start_node(tmp_path / "a", env=ENV)
    try:
        with Client(proc.url, ADMIN, timeout=60) as client:
            client.upload(files["sales"], "sales", part_size=1 << 20)
            client.upload(files["more"], "more", part_size=1 << 20)
            started = threading.Event()
            late_error: list[BaseException] = []

            def upload_late() -> None:
                try:
                    with Client(proc.url, ADMIN, timeout=60) as c2:
                        started.set()
                        c2.upload(files["late"], "late", part_size=1 << 18, parallel=1)
                except BaseException as exc:  # reported by the test thread
                    late_error.append(exc)

            t = threading.Thread(target=upload_late)
            t.start()
            started.wait(30)
            done = lake("backup", str(tmp_path / "bk"), "--data-dir", str(node_dir(proc)))
            t.join(120)
            assert not late_error, late_error
            # the node's own route, beside: a name under LAKE_BACKUP_DIR, never a path
            r = httpx.post(
                f"{proc.url}/api/lake/admin/backup",
                json={"target": "../escape"},
                headers={"authorization": f"Bearer {ADMIN}"},
                timeout=60,
            )
            assert r.status_code == 400, r.text
            assert "is not allowed" in r.text, r.text
            route = client.backup("nightly")
    finally:
        stop_node(proc)
    assert done.returncode == 0, done.stderr
    assert "backed up" in done.stdout
    info = json.loads((tmp_path / "bk" / "backup.json").read_text())
    assert {"sales", "more"} <= set(info["datasets"]) <= set(files)
    assert info["format"] == FORMAT_VERSION == read_format(tmp_path / "bk")
    assert route["target"] == str(tmp_path / "a" / "backups" / "lake" / "nightly")
    assert set(route["datasets"]) == set(files)  # taken after the upload committed
    for backup, datasets in ((tmp_path / "bk", info["datasets"]), (Path(route["target"]), files)):
        fresh = tmp_path / f"restored-{backup.name}"
        res = lake("restore", str(backup), "--data-dir", str(fresh))
        assert res.returncode == 0, res.stderr
        restored = start_node(
            tmp_path / f"home-{backup.name}", env={**ENV, "LAKE_DATA_DIR": str(fresh)}
        )
        try:
            with Client(restored.url, ADMIN, timeout=60) as client:
                assert sorted(d["name"] for d in client.datasets()) == sorted(datasets)
                for name in datasets:
                    for sql in CHECKS:
                        assert answers(client, sql, name) == oracle(sql, name, files[name]), sql
        finally:
            stop_node(restored)


def test_a_flipped_byte_in_a_backup_chunk_is_refused_and_nothing_is_written(
    tmp_path: Path, stored: Path
) -> None:
    report = take_backup(open_source(stored), tmp_path / "bk", node_id="n1")
    sha = sorted(json.loads((tmp_path / "bk" / "backup.json").read_text())["chunks"])[1]
    chunk = tmp_path / "bk" / "chunks" / f"{sha}.parquet"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chunk.write_bytes(bytes(raw))
    fresh = tmp_path / "fresh"
    res = lake("restore", str(tmp_path / "bk"), "--data-dir", str(fresh))
    assert res.returncode != 0
    assert f"chunk {sha}" in res.stderr, res.stderr
    assert "corrupt" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not fresh.exists()
    assert not [p for p in tmp_path.iterdir() if "lake-restore" in p.name]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorruptChunkError, match=sha):
        restore_backup(tmp_path / "bk", empty)
    assert list(empty.iterdir()) == []
    # a missing chunk is named too
    chunk.unlink()
    with pytest.raises(CorruptChunkError, match=f"chunk {sha} is missing"):
        restore_backup(tmp_path / "bk", empty)
    assert report.chunks > 2


def test_a_corrupt_local_chunk_fails_a_backup_without_replicas(
    tmp_path: Path, stored: Path
) -> None:
    sha = sorted(p.stem for p in (stored / "chunks").glob("*.parquet"))[0]
    path = stored / "chunks" / f"{sha}.parquet"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    res = lake("backup", str(tmp_path / "bk"), "--data-dir", str(stored))
    assert res.returncode != 0
    assert f"chunk {sha}" in res.stderr, res.stderr
    assert "corrupt" in res.stderr, res.stderr
    assert not (tmp_path / "bk").exists()
    assert not [p for p in tmp_path.iterdir() if "lake-backup" in p.name]


def test_a_backup_through_a_clustered_node_reads_a_corrupt_chunk_from_a_replica(
    launch: Launch, sales_csv: Path, tmp_path: Path
) -> None:
    a = launch("a", LAKE_REPLICATION_FACTOR="2")
    b = launch("b", "--join", a.addr, LAKE_REPLICATION_FACTOR="2")
    with Client(a.url, ADMIN, timeout=60) as ca:
        ca.upload(sales_csv, "sales", part_size=1 << 20)
        shas = {c["sha256"] for c in ca.dataset("sales")["chunk_list"]}
        deadline = time.monotonic() + 60
        while not all((node_dir(b) / "chunks" / f"{s}.parquet").is_file() for s in shas):
            assert time.monotonic() < deadline, "replication to b did not finish"
            time.sleep(0.2)
        sha = sorted(shas)[0]
        path = node_dir(a) / "chunks" / f"{sha}.parquet"
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 3] ^= 0xFF
        path.write_bytes(bytes(raw))
        report = ca.backup("withrepair")
    assert report["repaired"] == [sha]
    restore_backup(Path(report["target"]), tmp_path / "fresh")  # verifies every chunk first


def test_a_newer_format_is_refused_and_an_unmarked_directory_is_marked(
    tmp_path: Path, stored: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert read_format(stored) == FORMAT_VERSION  # a node marks what it opens
    (stored / "FORMAT").write_text('{"format": 99, "written_by": "9.0"}')
    res = lake(
        "node", "--port", "0", env={"LAKE_DATA_DIR": str(stored), "PLATFORM_HOME": str(tmp_path)}
    )
    assert res.returncode != 0
    line = res.stderr.strip()
    assert "format 99" in line, line
    assert f"up to {FORMAT_VERSION}" in line, line
    assert "upgrade platform-lake" in line, line
    assert len(line.splitlines()) == 1, line
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    with pytest.raises(FormatError, match="format 99"):
        in_process(tmp_path / "h", data_dir=stored)
    # a backup of a newer format is refused by restore too (before anything is written)
    take_backup_dir = tmp_path / "bk"
    (stored / "FORMAT").unlink()  # unmarked: a pre-marker directory, readable
    take_backup(open_source(stored), take_backup_dir, node_id="n")
    (take_backup_dir / "FORMAT").write_text('{"format": 7}')
    res = lake("restore", str(take_backup_dir), "--data-dir", str(tmp_path / "fresh"))
    assert res.returncode != 0, res.stderr
    assert "format 7" in res.stderr, res.stderr
    assert not (tmp_path / "fresh").exists()
    # an unmarked directory with data (made before markers) is marked in place and opens
    node = in_process(tmp_path / "h", data_dir=stored)
    try:
        assert node.catalog.names() == ["sales"]
    finally:
        node.stop()
    assert read_format(stored) == FORMAT_VERSION
    assert json.loads((stored / "FORMAT").read_text())["written_by"]


def test_backup_into_a_non_empty_directory_is_refused(tmp_path: Path, stored: Path) -> None:
    target = tmp_path / "bk"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    res = lake("backup", str(target), "--data-dir", str(stored))
    assert res.returncode == 2
    assert "not empty" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty directory is fine: the backup takes its place
    assert lake("backup", str(empty), "--data-dir", str(stored)).returncode == 0
    assert (empty / "backup.json").is_file()


def test_restore_into_a_running_nodes_directory_is_refused_and_merge_keeps_newer(
    tmp_path: Path, stored: Path, sales_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    take_backup(open_source(stored), tmp_path / "bk", node_id="n", all_versions=True)
    target = tmp_path / "target"
    proc = start_node(tmp_path / "h", env={**ENV, "LAKE_DATA_DIR": str(target)})
    try:
        for extra in ([], ["--merge"]):
            res = lake("restore", str(tmp_path / "bk"), "--data-dir", str(target), *extra)
            assert res.returncode != 0
            assert "in use by process" in res.stderr, res.stderr
        assert not (target / "chunks").exists() or not list((target / "chunks").glob("*.parquet"))
    finally:
        stop_node(proc)
    # not running and empty of data: restored
    assert lake("restore", str(tmp_path / "bk"), "--data-dir", str(target)).returncode == 0
    # holding data: refused without --merge
    res = lake("restore", str(tmp_path / "bk"), "--data-dir", str(target))
    assert res.returncode == 2, res.stderr
    assert "--merge" in res.stderr, res.stderr
    # a newer version here is kept by --merge, and the restore says so
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    node = in_process(tmp_path / "h", data_dir=target)
    ingest(node, sales_csv, "sales", admin=True, append=True)
    node.stop()
    res = lake("restore", str(tmp_path / "bk"), "--data-dir", str(target), "--merge")
    assert res.returncode == 0, res.stderr
    assert "sales: kept version 2" in res.stdout, res.stdout


def _open_fifo_writer(fifo: Path, proc: subprocess.Popen[str]) -> int:
    """Open the FIFO's write end once the backup process has opened it to read (it then
    blocks there); fails if the process ends first."""
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        if proc.poll() is not None:
            pytest.fail(
                f"backup ended before reading the chunk: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.01)


def test_kill_9_midway_leaves_no_target_and_the_next_run_cleans_up(
    tmp_path: Path, stored: Path
) -> None:
    manifest = json.loads(next((stored / "manifests" / "sales").glob("v*.json")).read_text())
    shas = [c["sha256"] for c in manifest["chunks"]]
    last = stored / "chunks" / f"{shas[-1]}.parquet"  # copied last: the backup blocks on it
    aside = tmp_path / "aside.parquet"
    shutil.move(last, aside)
    os.mkfifo(last)
    target = tmp_path / "bk"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lake", "backup", str(target), "--data-dir", str(stored)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PLATFORM_SECRET": SECRET},
    )
    fd = _open_fifo_writer(last, proc)
    try:
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".bk.lake-backup-")]
        assert len(temps) == 1
        copied = {p.stem for p in (temps[0] / "chunks").glob("*.parquet") if p.stat().st_size}
        assert copied == set(shas) - {shas[-1]}  # midway: all but the chunk it blocks on
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        os.close(fd)
    assert not target.exists()
    assert temps[0].exists()  # left behind by the killed run ...
    last.unlink()
    shutil.move(aside, last)
    done = lake("backup", str(target), "--data-dir", str(stored))
    assert done.returncode == 0, done.stderr
    assert not temps[0].exists()  # ... and removed by the next one
    restore_backup(target, tmp_path / "fresh")
    assert sorted(p.stem for p in (tmp_path / "fresh" / "chunks").glob("*.parquet")) == sorted(
        set(shas)
    )
    assert hashlib.sha256(last.read_bytes()).hexdigest() == shas[-1]


def test_restore_cli_on_a_missing_backup_says_what_is_wrong(tmp_path: Path) -> None:
    res = lake("restore", str(tmp_path / "nothing"), "--data-dir", str(tmp_path / "d"))
    assert res.returncode == 2
    assert "not a usable lake backup" in res.stderr, res.stderr
    assert not (tmp_path / "d").exists()
