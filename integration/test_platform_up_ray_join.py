"""`platform up --join A --ray`: the second platform runs a Ray worker node of A's head, whose
address and token it learned from A (not typed), and each platform stops its own Ray node."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from jobs_helpers import bearer
from platform_cluster import SECRET, wait_for
from ray_platform import ray_processes, start_with_ray

from platform_core.auth import TokenSigner

pytestmark = pytest.mark.timeout(400)


def _ray_nodes(url: str, headers: dict[str, str]) -> int:
    pool = httpx.get(f"{url}/api/jobs/pool", headers=headers, timeout=30).json()
    return int(pool["ray"].get("node_count") or 0)


def test_a_joined_platform_runs_a_worker_node_of_the_first_ones_ray_head(tmp_path: Path) -> None:
    signer = TokenSigner(SECRET)
    admin = bearer(signer.issue("admin", admin=True))
    a, home_a, _ = start_with_ray(tmp_path / "a")
    b = None
    try:
        head = re.search(r"ray: ([\d.]+:\d+)", a.banner)
        assert head, a.banner
        b, home_b, _ = start_with_ray(tmp_path / "b", "--join", a.url.split("//", 1)[1])
        assert f"ray: {head.group(1)}," in b.banner, b.banner  # the head's, learned from A
        token_a = (home_a / "ray" / "auth_token").read_text()
        assert (home_b / "ray" / "auth_token").read_text() == token_a
        ray_b = httpx.get(f"{b.url}/api/platform/status", headers=admin, timeout=30).json()
        assert ray_b["self"]["ray"]["role"] == "worker", ray_b["self"]["ray"]
        assert ray_b["self"]["ray"]["address"] == head.group(1)
        wait_for(lambda: _ray_nodes(a.url, admin) == 2, "A's Ray to count B's node", 60)
        procs_b = ray_processes(home_b, exclude={b.pid})
        assert any("raylet" in c for c in procs_b.values()), procs_b
        assert not any("gcs_server" in c for c in procs_b.values()), procs_b
    finally:
        codes = [p.stop(timeout=60) for p in (b, a) if p is not None]
    assert codes == [0, 0]
    wait_for(lambda: not ray_processes(tmp_path), "no Ray process of either platform", 15)


def test_joining_a_platform_without_ray_says_so(tmp_path: Path) -> None:
    import subprocess

    from platform_cluster import FAST
    from servers import command, launch

    a = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(tmp_path / "a")],
        tmp_path / "run-a",
        env=FAST,
    )
    try:
        out = subprocess.run(
            [
                str(command("platform")),
                "up",
                "--port",
                "0",
                "--home",
                str(tmp_path / "b"),
                "--join",
                a.url.split("//", 1)[1],
                "--ray",
            ],
            capture_output=True,
            text=True,
            env={**__import__("os").environ, **FAST},
            timeout=180,
        )
    finally:
        a.stop(timeout=30)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "runs no Ray head: start it with `platform up --ray`" in out.stderr, out.stderr[-2000:]
