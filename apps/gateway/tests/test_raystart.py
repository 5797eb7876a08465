"""The pieces of `platform up --ray` that start no process: ports, the `ray start` command,
its environment, the temp dir and the token file."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from platform_gateway.raystart import (
    MAX_TEMP_DIR_BYTES,
    NODE_MARK,
    RaySpec,
    choose_ports,
    driver_env,
    is_loopback,
    make_token,
    start_command,
    start_env,
    temp_dir_for,
)


def _all(ports: object) -> list[int]:
    named = [v for k, v in vars(ports).items() if k != "workers" and v is not None]
    return named + list(ports.workers)  # type: ignore[attr-defined]


def test_ports_are_distinct_and_free_on_the_host() -> None:
    ports = choose_ports("127.0.0.1", head=True)
    every = _all(ports)
    assert len(every) == len(set(every)) == 7 + 32
    for port in every[:8]:  # each binds on the platform's host right after
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_worker_node_has_no_gcs_port() -> None:
    assert choose_ports("127.0.0.1", head=False, workers=4).gcs is None


def test_head_command_names_every_port_the_host_and_the_dirs(tmp_path: Path) -> None:
    spec = RaySpec("127.0.0.1", tmp_path, choose_ports("127.0.0.1", head=True, workers=3))
    argv = start_command(spec, tmp_path / "ray")
    assert argv[0].endswith("/ray")
    assert argv[1:4] == ["start", "--block", "--head"]
    opts = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    assert opts["--port"] == str(spec.ports.gcs)
    assert opts["--node-ip-address"] == "127.0.0.1"
    assert opts["--include-dashboard"] == "false"
    assert opts["--temp-dir"] == str(tmp_path / "ray")
    assert opts["--object-spilling-directory"] == str(tmp_path / "ray" / "spill")
    assert opts["--worker-port-list"] == ",".join(map(str, spec.ports.workers))
    for name in ("node-manager", "object-manager", "runtime-env-agent", "metrics-export"):
        assert opts[f"--{name}-port"].isdigit()


def test_worker_command_joins_the_head_and_wildcard_hosts_leave_the_ip_to_ray(
    tmp_path: Path,
) -> None:
    spec = RaySpec("0.0.0.0", tmp_path, choose_ports("0.0.0.0", head=False, workers=2), "h:1")
    argv = start_command(spec, tmp_path)
    assert "--address=h:1" in argv
    assert "--head" not in argv
    assert not [a for a in argv if a.startswith(("--port=", "--node-ip-address"))]


def test_env_points_ray_at_the_home_and_never_at_a_token_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_max_direct_call_object_size", raising=False)
    spec = RaySpec("127.0.0.1", tmp_path, choose_ports("127.0.0.1", head=True, workers=1))
    env = start_env(spec, tmp_path / "t", {"RAY_AUTH_TOKEN": "user's", "KEEP": "1"})
    assert "RAY_AUTH_TOKEN" not in env
    assert env["KEEP"] == "1"
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN_PATH"] == str(tmp_path / "ray" / "auth_token")
    assert env["RAY_TMPDIR"] == str(tmp_path / "t")
    assert env[NODE_MARK] == str(tmp_path / "t")
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"  # loopback stays loopback
    assert env["RAY_worker_niceness"] == "0"  # tasks as nice as the platform, not 15
    mine = start_env(spec, tmp_path / "t", {"RAY_worker_niceness": "10"})
    assert mine["RAY_worker_niceness"] == "10"  # the user's own value stands
    # a task's returns (an exchange's partitions) go to the object store, not into the
    # driver's heap (SF 10: 568 MiB of the coordinator's own memory for q04 under 100 KiB)
    assert env["RAY_max_direct_call_object_size"] == "1024"
    theirs = start_env(spec, tmp_path / "t", {"RAY_max_direct_call_object_size": "4096"})
    assert theirs["RAY_max_direct_call_object_size"] == "4096"
    driver = driver_env(spec, tmp_path / "t", "127.0.0.1:9")
    assert driver["ELYTRA_RAY_ADDRESS"] == "127.0.0.1:9"
    assert driver["ELYTRA_RAY_NODE_DIR"] == str(tmp_path / "t")  # its own node, not the head's
    assert driver["RAY_ENABLE_AUTO_CONNECT"] == "0"
    assert driver["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] == "1"
    assert int(driver["RAY_gcs_rpc_server_reconnect_timeout_s"]) > 10**8
    assert NODE_MARK not in driver  # the gateway's own children are not Ray's
    assert driver["RAY_max_direct_call_object_size"] == "1024"  # as its node's workers
    # a value the user set reaches both sides: ``ray start`` and the gateway's driver
    monkeypatch.setenv("RAY_max_direct_call_object_size", "4096")
    assert driver_env(spec, tmp_path / "t", "h:1")["RAY_max_direct_call_object_size"] == "4096"


def test_a_worker_node_on_loopback_keeps_rays_cluster_setting(tmp_path: Path) -> None:
    ports = choose_ports("127.0.0.1", head=False, workers=1)
    spec = RaySpec("127.0.0.1", tmp_path, ports, "127.0.0.1:1")
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in start_env(spec, tmp_path, {})
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in driver_env(spec, tmp_path, "127.0.0.1:1")


def test_a_routable_host_keeps_ray_on_its_cluster_setting(tmp_path: Path) -> None:
    spec = RaySpec("10.0.0.5", tmp_path, choose_ports("127.0.0.1", head=True, workers=1))
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in start_env(spec, tmp_path, {})
    assert "--node-ip-address=10.0.0.5" in start_command(spec, tmp_path)


@pytest.mark.parametrize(
    ("host", "loop"), [("127.0.0.1", True), ("localhost", True), ("::1", True), ("10.1.2.3", False)]
)
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_a_long_home_gets_a_short_link_to_its_ray_dir(tmp_path: Path) -> None:
    home = tmp_path / ("x" * 60)
    link = temp_dir_for(home)
    assert len(str(link)) <= MAX_TEMP_DIR_BYTES
    assert link.is_symlink()
    assert link.resolve() == (home / "ray").resolve()
    assert temp_dir_for(home) == link  # the same link again
    link.unlink()


def test_the_token_is_made_once_private_and_replaced_by_a_learned_one(tmp_path: Path) -> None:
    path = make_token(tmp_path)
    first = path.read_text()
    assert len(first) == 64
    assert path.stat().st_mode & 0o777 == 0o600
    assert make_token(tmp_path).read_text() == first
    assert make_token(tmp_path, "the-head's").read_text() == "the-head's"


def test_the_node_names_its_lake_node_and_its_chunk_directory(tmp_path: Path) -> None:
    """What ``platform up --ray`` marks its Ray node with (``elytra.ray_node_marks``): the
    lake node of the home (the id the lake keeps there), as a resource the driver maps by,
    and the chunk and work directories every Ray worker of the node inherits."""
    import json

    from elytra import ray_node_marks
    from elytra.backends.raynodes import CHUNKS_VAR, NODE_VAR, RESOURCE, WORK_VAR
    from lake import lake_settings, node_identity
    from platform_core import PlatformSettings

    resources, marks = ray_node_marks(PlatformSettings(home=tmp_path))
    node_id, chunks = node_identity(lake_settings(None, home=tmp_path))
    assert resources == {RESOURCE + node_id: 1.0}
    assert marks == {
        NODE_VAR: node_id,
        CHUNKS_VAR: str(chunks),
        WORK_VAR: str(tmp_path / "elytra" / "ray-tasks"),
    }
    assert (tmp_path / "lake" / "node-id").read_text() == node_id  # the lake's own, kept
    ports = choose_ports("127.0.0.1", head=True, workers=1)
    spec = RaySpec("127.0.0.1", tmp_path, ports, resources=resources, env=marks)
    argv = start_command(spec, tmp_path)
    opts = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    assert json.loads(opts["--resources"]) == resources
    env = start_env(spec, tmp_path, {})
    assert {k: env[k] for k in marks} == marks
    bare = RaySpec("127.0.0.1", tmp_path, ports)
    assert not [a for a in start_command(bare, tmp_path) if a.startswith("--resources")]


def test_the_object_store_size_is_the_platforms_setting_or_rays_own(tmp_path: Path) -> None:
    """``PLATFORM_RAY_OBJECT_STORE_BYTES`` becomes ``--object-store-memory``; unset, Ray
    chooses (30 % of the RAM); below Ray's least (75 MiB) the setting is refused."""
    import pydantic

    from platform_core import PlatformSettings

    ports = choose_ports("127.0.0.1", head=True, workers=1)
    size = PlatformSettings(home=tmp_path, ray_object_store_bytes="512MiB").ray_object_store_bytes
    assert size == 512 << 20
    argv = start_command(RaySpec("127.0.0.1", tmp_path, ports, object_store_bytes=size), tmp_path)
    assert f"--object-store-memory={512 << 20}" in argv
    bare = start_command(RaySpec("127.0.0.1", tmp_path, ports), tmp_path)
    assert not [a for a in bare if a.startswith("--object-store-memory")]
    assert PlatformSettings(home=tmp_path).ray_object_store_bytes is None
    with pytest.raises(pydantic.ValidationError, match="ray_object_store_bytes"):
        PlatformSettings(home=tmp_path, ray_object_store_bytes="10MB")
