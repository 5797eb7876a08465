"""`platform up --ray`: the platform runs its own Ray head (token auth on, files under
<home>/ray), Elytra's jobs run on it and equal DuckDB's answer, nothing lands in the user's
$HOME or /tmp/ray, and stopping the platform leaves no Ray process of it behind."""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from jobs_helpers import bearer, wait_job
from platform_cluster import SECRET, wait_for
from ray_platform import ray_processes, start_with_ray

from lake import Client
from platform_core.auth import TokenSigner

pytestmark = pytest.mark.timeout(300)

TMP_RAY = Path("/tmp/ray")


def _sessions_in_tmp_ray() -> set[str]:
    return {p.name for p in TMP_RAY.iterdir()} if TMP_RAY.is_dir() else set()


def test_a_platform_with_its_own_ray_runs_jobs_there_and_stops_it_whole(tmp_path: Path) -> None:
    before = _sessions_in_tmp_ray()
    # a 3 GB object store under a 4 GiB cap: Ray maps the store whole into the gateway
    env = {
        "PLATFORM_MEMORY_HEADROOM": str(4 << 30),
        "PLATFORM_RAY_OBJECT_STORE_BYTES": "3000000000",
    }
    platform, home, fake_home = start_with_ray(tmp_path, env=env)
    signer = TokenSigner(SECRET)
    user = bearer(signer.issue("alice"))
    try:
        address = re.search(r"ray: (127\.0\.0\.1:\d+)", platform.banner)
        assert address, platform.banner
        ours = ray_processes(home, exclude={platform.pid})
        assert any("gcs_server" in c for c in ours.values()), ours
        assert any("raylet" in c for c in ours.values()), ours
        src = (
            duckdb.sql(
                "SELECT i AS id, i % 7 AS grp, (i * 37) % 1000 AS amount FROM range(40000) t(i)"
            )
            .arrow()
            .read_all()
        )
        pq.write_table(src, tmp_path / "r.parquet")
        with Client(platform.url, signer.issue("alice")) as client:
            client.upload(tmp_path / "r.parquet", "on_own_ray")
        with httpx.Client(base_url=platform.url, timeout=60) as http:
            admin = bearer(signer.issue("admin", admin=True))
            ray = http.get("/api/platform/status", headers=admin).json()["self"]["ray"]
            assert (ray["role"], ray["state"]) == ("head", "running"), ray
            assert ray["address"] == address.group(1), ray
            pool = http.get("/api/jobs/pool", headers=user).json()
            assert (pool["backend"], pool["ray"]["node_count"]) == ("ray", 1), pool
            body = {
                "pipeline": {
                    "source": {"dataset": "on_own_ray"},
                    "steps": [{"group_by": ["grp"], "agg": ["sum(amount) AS s", "count(*) AS n"]}],
                }
            }
            r = http.post("/api/jobs", json=body, headers=user)
            assert r.status_code == 202, r.text
            job = wait_job(http, r.json()["id"], user, 180)
            assert job["state"] == "succeeded", job
            got = http.get(f"/api/jobs/{job['id']}/result", headers=user).json()["rows"]
        want = duckdb.sql("SELECT grp, sum(amount), count(*) FROM src GROUP BY grp").fetchall()
        assert sorted(map(tuple, got)) == sorted(want)
        # the store Ray maps into the gateway is not taken from the gateway's own headroom
        # (counted against it, a gateway at TPC-H SF 10 aborted in a Ray thread)
        assert _headroom(platform.pid) > 3 << 30, _headroom(platform.pid)
        # the job's workers run as nice as the platform (Ray's own default is 15)
        procs = ray_processes(home)
        workers = [p for p, c in procs.items() if c.startswith("ray::") and "Agent" not in c]
        assert workers, procs
        assert {_niceness(p) for p in workers} == {0}, {p: _niceness(p) for p in workers}
        # and return what they make through the object store, not inline into the gateway's
        # heap (an exchange's partitions at SF 10 were 568 MiB of it, raystart.INLINE_BYTES)
        inline = {p: _environ(p).get("RAY_max_direct_call_object_size") for p in workers}
        assert set(inline.values()) == {"1024"}, inline
        # Ray's own record: its head started Python workers, and its logs are under <home>
        logs = home / "ray" / "session_latest" / "logs"
        assert list(logs.glob("python-core-worker-*.log")), sorted(p.name for p in logs.iterdir())
        token = home / "ray" / "auth_token"
        assert token.stat().st_mode & 0o077 == 0, oct(token.stat().st_mode)
    finally:
        code = platform.stop(timeout=60)
    assert code == 0, platform.stderr()[-3000:]
    wait_for(lambda: not ray_processes(home), "every Ray process of the platform to end", 15)
    time.sleep(1)
    assert not ray_processes(home), ray_processes(home)
    assert not (fake_home / ".ray").exists(), sorted(p.name for p in fake_home.rglob("*"))
    # /tmp/ray is shared with other Ray users of this machine: none of its new entries is ours
    ray_start = (home / "ray" / "ray-start.log").read_text()
    mine = re.findall(r"session_[\d_-]+", ray_start)
    assert mine, ray_start[-2000:]
    assert not (_sessions_in_tmp_ray() - before) & set(mine)
    assert (home / "ray" / mine[0]).is_dir()


def _environ(pid: int) -> dict[str, str]:
    """A process's environment as it was started (``/proc/<pid>/environ``)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
    return {k: v for k, v in pairs}


def _niceness(pid: int) -> int:
    """A process's nice value, field 19 of ``/proc/<pid>/stat`` (after the command's parens)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def test_ray_with_ray_address_is_a_usage_error(tmp_path: Path) -> None:
    import subprocess

    from servers import command

    out = subprocess.run(
        [
            str(command("platform")),
            "up",
            "--ray",
            "--ray-address",
            "127.0.0.1:1",
            "--home",
            str(tmp_path / "home"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "give one of them" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "home").exists()


def _headroom(pid: int) -> int:
    """What a process may still map: its soft ``RLIMIT_AS`` less its virtual size."""
    limits = Path(f"/proc/{pid}/limits").read_text()
    soft = re.search(r"^Max address space\s+(\d+)", limits, re.MULTILINE)
    size = re.search(r"^VmSize:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert soft, limits
    assert size
    return int(soft.group(1)) - int(size.group(1)) * 1024
