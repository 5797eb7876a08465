"""The backup drill on a running cluster: Elkyn copied while it is written to, a lake node's
datasets backed up through the node and restored onto a fresh platform, everything read back
identical (the running cluster is the oracle for the restored one, DuckDB for both)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from platform_cluster import FAST, Cluster, wait_for
from servers import command, launch

from elkyn.store import Store
from lake import Client


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "LAKE_", "ELKYN_"))
    }
    return {**env, **extra}


def _arrow(url: str, sql: str, headers: dict[str, str]) -> pa.Table:
    body = {"sql": sql, "format": "arrow"}
    r = httpx.post(f"{url}/api/lake/query", json=body, headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    return pa.ipc.open_stream(r.content).read_all()


def test_elkyn_copied_while_written_holds_only_acknowledged_writes(
    platform_cluster: Cluster, tmp_path: Path
) -> None:
    a = platform_cluster.urls[0]
    admin = platform_cluster.admin()
    acked: dict[str, int] = {}
    stop = threading.Event()

    def write() -> None:
        with httpx.Client(timeout=30) as http:
            i = 0
            while not stop.is_set():
                key = f"k{i % 50}"
                r = http.put(f"{a}/db/drill/{key}.json", json=i, headers=admin)
                if r.status_code == 200:
                    acked.setdefault(key, -1)
                    acked[key] = i
                i += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    wait_for(lambda: len(acked) >= 50, "the writer to touch every key")
    before = dict(acked)  # acknowledged before the copy starts: all must be in it, or newer
    target = tmp_path / "elkyn-copy"
    out = subprocess.run(
        [
            str(command("elkyn")),
            "backup",
            str(target),
            "--path",
            str(platform_cluster.homes[0] / "elkyn"),
        ],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=120,
    )
    time.sleep(0.3)
    stop.set()
    writer.join(30)
    assert out.returncode == 0, out.stderr
    store = Store(target)
    try:
        copied = store.get("/drill") or {}
    finally:
        store.close()
    assert set(copied) == {f"k{j}" for j in range(50)}
    for key, value in copied.items():
        assert value >= before[key], (key, value, before[key])  # nothing acknowledged is lost
        assert value <= acked[key], (key, value, acked[key])  # nothing never acknowledged
        assert value % 50 == int(key[1:]), (key, value)  # a value this key was given


def test_a_nodes_datasets_restored_onto_a_fresh_platform_read_back_identical(
    platform_cluster: Cluster, tmp_path: Path
) -> None:
    a = platform_cluster.urls[0]
    src = (
        duckdb.sql(
            "SELECT i AS id, i % 9 AS grp, 'name-' || (i % 101) AS who, i * 0.25 AS amount "
            "FROM range(120000) t(i)"
        )
        .arrow()
        .read_all()
    )
    pq.write_table(src, tmp_path / "drill.parquet")
    with Client(a, platform_cluster.signer.issue("alice")) as client:
        client.upload(tmp_path / "drill.parquet", "drill_sales")
    admin_token = platform_cluster.signer.issue("admin", admin=True)
    out = subprocess.run(
        [str(command("lake")), "backup", "drill1", "--node", a, "--token", admin_token, "--json"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    backup = platform_cluster.homes[0] / "backups" / "lake" / "drill1"
    assert (backup / "backup.json").is_file()
    fresh = tmp_path / "fresh"
    data_dir = fresh / "lake-data"
    out = subprocess.run(
        [str(command("lake")), "restore", str(backup), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    restored = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(fresh / "home")],
        fresh / "run",
        env={**FAST, "LAKE_DATA_DIR": str(data_dir)},
    )
    try:
        h = platform_cluster.user()
        names = [
            d["name"] for d in httpx.get(f"{restored.url}/api/lake/datasets", headers=h).json()
        ]
        assert "drill_sales" in names
        for name in names:
            sql = f"SELECT * FROM {name} ORDER BY ALL"
            assert _arrow(restored.url, sql, h).equals(_arrow(a, sql, h)), name
        sql = "SELECT grp, count(*), sum(amount), count(DISTINCT who) FROM {} GROUP BY grp ORDER BY grp"
        got = _arrow(restored.url, sql.format("drill_sales"), h)
        oracle = duckdb.sql(sql.format("src")).arrow().read_all()
        assert got.to_pylist() == oracle.rename_columns(got.column_names).to_pylist()
    finally:
        restored.stop()


def test_the_backup_route_takes_exact_types(platform_cluster: Cluster) -> None:
    a = platform_cluster.urls[0]
    for body in (
        {"target": "typed", "all_versions": "yes"},
        {"target": "typed", "all_versions": 1},
    ):
        r = httpx.post(f"{a}/api/lake/admin/backup", json=body, headers=platform_cluster.admin())
        assert r.status_code == 400, r.text  # the gateway's bad-input status
        assert "all_versions" in r.json()["error"], r.text
    assert not (platform_cluster.homes[0] / "backups" / "lake" / "typed").exists()
