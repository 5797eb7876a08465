"""A peer runs only tasks that read the chunks they name and write their own job directory;
odd task JSON is a 400 (issue 16, attacked from outside: `POST /internal/elytra/tasks` fed
crafted tasks).

A peer must run only plans that read the lake chunks the task names and write nothing but
its own job directory; bad input must be a one-line 400, never a 500. Each test here was a
finding on the code it was written against (a sink wrote any path; odd JSON answered 500).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow.parquet as pq
from platform_cluster import Cluster

from lake import Client

TASKS = "/internal/elytra/tasks"


def _chunk_ref(cluster: Cluster, tmp: Path, name: str) -> str:
    """A real lake chunk of a fresh dataset, named as a driver names it."""
    t = duckdb.sql("SELECT i AS id, i % 7 AS g FROM range(20000) t(i)").arrow().read_all()
    path = tmp / f"{name}.parquet"
    pq.write_table(t, path)
    with Client(cluster.urls[0], cluster.signer.issue("alice")) as client:
        client.upload(path, name)
    r = httpx.get(f"{cluster.urls[0]}/api/lake/datasets/{name}", headers=cluster.user(), timeout=30)
    assert r.status_code == 200, r.text
    return "lake-chunk:" + r.json()["chunk_list"][0]["sha256"]


def _task(plan: Any, files: Any, **extra: Any) -> bytes:
    body = {
        "id": "t1",
        "stage": 0,
        "plan": plan if isinstance(plan, str) else json.dumps(plan),
        "mem_cap": 1 << 26,
        "spill_dir": "/tmp",
        "attempt": 1,
        "files": files,
        "bytes_in": 0,
        **extra,
    }
    return json.dumps(body).encode()


def _post(cluster: Cluster, url: str, body: bytes) -> httpx.Response:
    return httpx.post(url + TASKS, headers=cluster.cluster_headers(), content=body, timeout=120)


def test_a_peer_task_cannot_write_files_anywhere(platform_cluster: Cluster, tmp_path: Path) -> None:
    ref = _chunk_ref(platform_cluster, tmp_path, "b16_sink")
    scan = {"op": "scan", "path": ref, "format": "parquet"}
    outside = tmp_path / "written-by-a-peer.csv"
    nested = tmp_path / "written-by-a-peer-nested.csv"
    root_sink = {"op": "sink", "input": scan, "path": str(outside), "format": "csv"}
    in_union = {
        "op": "union",
        "inputs": [scan, {"op": "sink", "input": scan, "path": str(nested), "format": "csv"}],
    }
    peer = platform_cluster.urls[1]
    answers = [_post(platform_cluster, peer, _task(p, [ref])) for p in (root_sink, in_union)]
    assert not outside.exists(), f"the peer wrote {outside} ({answers[0].status_code})"
    assert not nested.exists(), f"the peer wrote {nested} ({answers[1].status_code})"
    for r in answers:
        assert r.status_code == 400, r.text
        assert "sink" in r.json()["error"], r.text


def test_odd_task_json_is_a_400_never_a_500(platform_cluster: Cluster, tmp_path: Path) -> None:
    ref = _chunk_ref(platform_cluster, tmp_path, "b16_odd")
    scan = {"op": "scan", "path": ref, "format": "parquet"}
    deep_filter = '{"op":"filter","predicate":{"kind":"literal","value":true},"input":'
    bodies = {
        "files holds a number": _task(scan, [1]),
        "files holds null": _task(scan, [None]),
        "plan is a number": _task(5, [ref]),
        "plan is an object": json.loads(_task(scan, [ref])) | {"plan": scan},
        "a body nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
        "a plan nested 3,000 deep": _task(
            deep_filter * 3000 + json.dumps(scan) + "}" * 3000, [ref]
        ),
    }
    seen = {}
    for what, body in bodies.items():
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        r = _post(platform_cluster, platform_cluster.urls[1], raw)
        seen[what] = (r.status_code, r.text[:120])
    bad = {k: v for k, v in seen.items() if v[0] != 400 or "error" not in v[1]}
    assert not bad, bad
    # the platform still serves peers afterwards
    ok = _post(platform_cluster, platform_cluster.urls[1], _task(scan, [ref]))
    assert ok.status_code == 200, ok.text
