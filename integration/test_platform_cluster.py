"""Three platforms on 127.0.0.1 made one with `platform up --join` (issue 16's whole story).

Upload on A, SQL on B, an Elytra job submitted on C (without Ray a job runs on the pool of the
platform that takes it, the chunks it lacks read from their replicas: Ray is the one way a job
spans machines, ``test_platform_up_ray_locality``), its rows written back as a dataset and read
on B; every answer compared with DuckDB on the same rows. Then the node-to-node routes, a peer
SIGKILLed during a job, and joins that must fail.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from jobs_helpers import wait_job
from platform_cluster import FAST, ORACLE, SECRET, Cluster, join, pipeline, wait_for
from servers import command

from elytra.task import Task
from lake import Client
from platform_core.auth import TokenSigner
from platform_gateway.testing import free_port

JOB_TIMEOUT = 120.0


def _table(rows: int, seed: int) -> pa.Table:
    return (
        duckdb.sql(
            f"SELECT i AS id, (i * 7919 + {seed}) % 13 AS grp, "
            f"round(((i * 104729 + {seed}) % 100000) / 100.0, 2) AS amount FROM range({rows}) t(i)"
        )
        .arrow()
        .read_all()
    )


def _upload(cluster: Cluster, url: str, table: pa.Table, name: str, tmp: Path) -> dict[str, Any]:
    path = tmp / f"{name}.parquet"
    pq.write_table(table, path)
    token = cluster.signer.issue("alice")
    with Client(url, token) as client:
        return client.upload(path, name)


def _wait_dataset(cluster: Cluster, name: str, *urls: str) -> None:
    """Until every platform at ``urls`` has heard of dataset ``name`` (gossip)."""
    for url in urls:
        wait_for(
            lambda url=url: any(
                d["name"] == name
                for d in httpx.get(
                    f"{url}/api/lake/datasets", headers=cluster.user(), timeout=10
                ).json()
            ),
            f"{name} on {url}",
        )


def _lake_stats(url: str, cluster: Cluster) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/lake/nodes/self", headers=cluster.admin(), timeout=10)
    r.raise_for_status()
    return dict(r.json()["stats"])


def _run_job(url: str, cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    h = cluster.user()
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/api/jobs", json=body, headers=h)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        return wait_job(http, job_id, h, JOB_TIMEOUT)


def _rows(url: str, cluster: Cluster, job_id: str) -> list[tuple[Any, ...]]:
    r = httpx.get(f"{url}/api/jobs/{job_id}/result", headers=cluster.user(), timeout=30)
    assert r.status_code == 200, r.text
    return sorted(tuple(row) for row in r.json()["rows"])


def _sql(url: str, cluster: Cluster, sql: str) -> list[tuple[Any, ...]] | None:
    """The sorted rows; None while the node has not heard of a dataset yet (gossip)."""
    r = httpx.post(f"{url}/api/lake/query", json={"sql": sql}, headers=cluster.user(), timeout=60)
    if r.status_code == 400 and "no dataset named" in r.text:
        return None
    assert r.status_code == 200, r.text
    return sorted(tuple(row) for row in r.json()["rows"])


def _watch_states(url: str, path: str, headers: dict[str, str]) -> Any:
    """Follow ``path``'s SSE stream in a thread; returns ``states(wait_until)``: the job
    states the stream showed, in order, once ``wait_until`` was among them."""
    seen: list[str] = []
    record: dict[str, Any] = {}
    done = threading.Event()

    def follow() -> None:
        stream_headers = {**headers, "accept": "text/event-stream"}
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=JOB_TIMEOUT)) as http,
            http.stream("GET", url + path, headers=stream_headers) as r,
        ):
            event = ""
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("put", "patch"):
                    data = json.loads(line[5:])
                    if data.get("path") == "/" and event == "put":
                        record.clear()
                        record.update(data.get("data") or {})
                    elif data.get("path") == "/":
                        record.update(data.get("data") or {})
                    elif data.get("path") == "/state":
                        record["state"] = data.get("data")
                    state = record.get("state")
                    if state and (not seen or seen[-1] != state):
                        seen.append(state)
                    if state in ("succeeded", "failed", "cancelled"):
                        done.set()
                        return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()

    def states(wait_until: str) -> list[str]:
        assert done.wait(JOB_TIMEOUT), f"the stream from {url} showed only {seen}"
        assert wait_until in seen, seen
        return seen

    return states


def test_the_whole_story_runs_on_three_platforms(platform_cluster: Cluster, tmp_path: Path) -> None:
    a, b, c = platform_cluster.urls
    t = _table(200_000, seed=1)
    status = _upload(platform_cluster, a, t, "story", tmp_path)
    assert status["chunks"] >= 12, status
    want = sorted(duckdb.sql(ORACLE).fetchall())
    # SQL on B: the distributed query over chunks spread on the three
    got = wait_for(
        lambda: (
            (rows := _sql(b, platform_cluster, ORACLE.replace("FROM t", "FROM story"))) == want
            and rows
        ),
        "B to answer as DuckDB",
    )
    assert got == want
    _wait_dataset(platform_cluster, "story", c)
    read_before = _lake_stats(c, platform_cluster)
    h = platform_cluster.user()
    r = httpx.post(
        f"{c}/api/jobs",
        json={"pipeline": pipeline("story"), "write": "story_by_grp"},
        headers=h,
        timeout=30,
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    # its progress, written by C, streams from A's database (the primary C forwards to)
    states = _watch_states(a, f"/db/jobs/{job_id}.json", h)
    with httpx.Client(base_url=c, timeout=30) as http:
        job = wait_job(http, job_id, h, JOB_TIMEOUT)
    assert job["state"] == "succeeded", job
    assert states(wait_until="succeeded")[-1] == "succeeded"
    assert _rows(c, platform_cluster, job["id"]) == want
    # the job ran on C's own pool; the chunks C lacks it read from A's and B's replicas
    assert job["backend"] == "local", job
    assert all("node" not in t for t in job["timeline"]["tasks"].values()), job["timeline"]
    read_after = _lake_stats(c, platform_cluster)
    assert read_after["read_chunks"] > read_before["read_chunks"], (read_before, read_after)
    # the result, written back as a dataset on C, reads the same on B
    back = wait_for(
        lambda: _sql(b, platform_cluster, "SELECT grp, n, top, first FROM story_by_grp"),
        "story_by_grp on B",
    )
    assert back == want


def test_status_lists_every_platform(platform_cluster: Cluster) -> None:
    a, b, c = platform_cluster.urls
    r = httpx.get(f"{b}/api/platform/status", headers=platform_cluster.admin(), timeout=30)
    assert r.status_code == 200, r.text
    report = r.json()
    # platforms other tests joined and killed are listed too, with why they do not answer
    shared = [p for p in report["peers"] if p["url"] in (a, c)]
    assert {p["url"] for p in shared} == {a, c}
    for peer in report["peers"]:
        assert (peer["error"] is None) == (peer["plugins"] is not None), peer
    for peer in shared:
        assert peer["state"] == "alive", peer
        assert peer["error"] is None, peer
        assert peer["plugins"]["lake"]["node"] == peer["id"]
        assert peer["plugins"]["elytra"]["workers"] == 1
    # A's database is the primary; B and C follow it
    roles = {p["url"]: p["plugins"]["elkyn"]["role"] for p in shared}
    assert roles == {a: "primary", c: "replica"}
    assert report["self"]["plugins"]["elkyn"]["role"] == "replica"
    assert report["self"]["plugins"]["elkyn"]["primary"] == f"{a}/db"
    # the CLI prints the same, as a user runs it
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    token = platform_cluster.signer.issue("admin", admin=True)
    out = subprocess.run(
        [str(command("platform")), "status", "--url", b, "--token", token, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert {a, c} <= {p["url"] for p in json.loads(out.stdout)["peers"]}
    table = subprocess.run(
        [str(command("platform")), "status", "--url", b, "--token", token],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert a in table.stdout
    assert c in table.stdout
    assert "alive" in table.stdout
    assert "primary" in table.stdout


def test_roles_on_the_cluster_routes(platform_cluster: Cluster) -> None:
    a = platform_cluster.urls[0]
    user, admin = platform_cluster.user(), platform_cluster.admin()
    clustered = platform_cluster.cluster_headers()
    other = {"authorization": f"Bearer {TokenSigner('x' * 40).cluster_token('evil')}"}
    task = Task("t1", 0, '{"op":"scan","path":"/etc/passwd","format":"csv"}', 1 << 20, "/tmp")
    with httpx.Client(base_url=a, timeout=30) as http:
        # the admin route: no token 401, a user 403, an admin 200, a cluster token 401
        assert http.get("/api/platform/status").status_code == 401
        assert http.get("/api/platform/status", headers=user).status_code == 403
        assert http.get("/api/platform/status", headers=clustered).status_code == 401
        assert http.get("/api/platform/status", headers=admin).status_code == 200
        # the node-to-node routes: cluster tokens of this secret only
        for headers in ({}, user, admin, other):
            r = http.get("/internal/platform/status", headers=headers)
            assert r.status_code == 401, (headers, r.text)
        assert http.get("/internal/platform/status", headers=clustered).status_code == 200
        # the peer task route is retired (jobs span machines on Ray): nobody can send a task
        for headers in ({}, user, admin, clustered):
            r = http.post("/internal/elytra/tasks", headers=headers, content=task.to_json())
            assert r.status_code in (401, 404), (headers, r.text)
        r = http.post("/internal/elytra/tasks", headers=clustered, content=task.to_json())
        assert r.status_code == 404, r.text


def test_a_peer_killed_during_a_job_loses_nothing(
    platform_cluster: Cluster, tmp_path: Path
) -> None:
    a = platform_cluster.urls[0]
    d = join(tmp_path, "d", a)
    try:
        wait_for(
            lambda: (
                len(
                    httpx.get(
                        f"{a}/api/lake/nodes", headers=platform_cluster.admin(), timeout=10
                    ).json()["members"]
                )
                >= 4
            ),
            "D to join",
        )
        t = _table(400_000, seed=2)
        _upload(platform_cluster, d.url, t, "chaos_src", tmp_path)
        want = sorted(duckdb.sql(ORACLE).fetchall())
        _wait_dataset(platform_cluster, "chaos_src", a)
        body = {"pipeline": pipeline("chaos_src")}
        h = platform_cluster.user()
        with httpx.Client(base_url=a, timeout=30) as http:
            # wait until every chunk has its replicas: D's death must not take the only copy
            wait_for(
                lambda: (
                    http.get("/api/lake/nodes", headers=platform_cluster.admin()).json()[
                        "under_replicated"
                    ]
                    == 0
                ),
                "replication to settle",
            )
            r = http.post("/api/jobs", json=body, headers=h)
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            wait_for(
                lambda: http.get(f"/api/jobs/{job_id}", headers=h).json()["state"] != "queued",
                "the job to start",
            )
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            job = wait_job(http, job_id, h, JOB_TIMEOUT)
        assert job["state"] == "succeeded", job
        assert _rows(a, platform_cluster, job_id) == want
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def _join_fails(
    tmp_path: Path, through: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    home = tmp_path / "home"
    return subprocess.run(
        [str(command("platform")), "up", "--port", "0", "--home", str(home), "--join", through],
        capture_output=True,
        text=True,
        env={**clean, **FAST, "LAKE_JOIN_TIMEOUT_SECONDS": "4", **env},
        timeout=120,
    )


def test_a_platform_with_another_secret_cannot_join(
    platform_cluster: Cluster, tmp_path: Path
) -> None:
    through = platform_cluster.urls[0].split("//", 1)[1]
    out = _join_fails(tmp_path, through, {"PLATFORM_SECRET": "another-secret-" + "z" * 30})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "could not join" in out.stderr, out.stderr
    assert "secret" in out.stderr, out.stderr
    members = httpx.get(
        f"{platform_cluster.urls[0]}/api/lake/nodes", headers=platform_cluster.admin(), timeout=10
    ).json()["members"]
    assert len(members) == 3 or all(m["state"] != "alive" for m in members[3:])


def test_joining_nobody_fails_in_one_line(tmp_path: Path) -> None:
    out = _join_fails(tmp_path, f"127.0.0.1:{free_port()}", {"PLATFORM_SECRET": SECRET})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "could not join the cluster through" in out.stderr, out.stderr
    bad = _join_fails(tmp_path, "http://example.org/x", {"PLATFORM_SECRET": SECRET})
    assert bad.returncode == 2, bad.stderr
    assert "HOST:PORT" in bad.stderr, bad.stderr


def test_two_platforms_join_over_tls(tmp_path: Path) -> None:
    """The same story over HTTPS: the join, the replica's forwarded writes, a job over chunks
    read from the peer and the status all verify each other's certificates with PLATFORM_TLS_CA."""
    from platform_cluster import start_cluster

    from platform_core.testing import make_certificates

    certs = make_certificates(tmp_path / "certs")
    pair = start_cluster(tmp_path / "tls", 2, env=certs.server_env())
    first, second = pair.urls
    try:
        assert first.startswith("https://")
        assert second.startswith("https://")
        trust = ssl.create_default_context(cafile=str(certs.ca))
        with httpx.Client(timeout=30, verify=trust) as http:
            r = http.put(f"{second}/db/tls/a.json", json={"n": 1}, headers=pair.admin())
            assert r.status_code == 200, r.text
            assert http.get(f"{first}/db/tls/a.json", headers=pair.admin()).json() == {"n": 1}
            path = tmp_path / "tls.parquet"
            pq.write_table(_table(60_000, seed=4), path)
            with Client(first, pair.signer.issue("alice"), verify=trust) as client:
                client.upload(path, "over_tls")
            wait_for(
                lambda: any(
                    d["name"] == "over_tls"
                    for d in http.get(f"{second}/api/lake/datasets", headers=pair.user()).json()
                ),
                "the dataset on the second platform",
            )
            body = {"pipeline": pipeline("over_tls")}
            r = http.post(f"{second}/api/jobs", json=body, headers=pair.user())
            assert r.status_code == 202, r.text
            http.base_url = httpx.URL(second)
            job = wait_job(http, r.json()["id"], pair.user(), JOB_TIMEOUT)
            assert job["state"] == "succeeded", job
            t = _table(60_000, seed=4)  # noqa: F841 - the oracle's table
            rows = http.get(f"/api/jobs/{job['id']}/result", headers=pair.user()).json()["rows"]
            assert sorted(tuple(x) for x in rows) == sorted(duckdb.sql(ORACLE).fetchall())
            status = http.get("/api/platform/status", headers=pair.admin()).json()
            (peer,) = status["peers"]
            assert peer["url"] == first
            assert peer["error"] is None, peer
            assert peer["plugins"]["elkyn"]["role"] == "primary"
            assert status["self"]["plugins"]["elkyn"]["connected"] is True
    finally:
        pair.stop()
