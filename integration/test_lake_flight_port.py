"""First-hour item 1: two `lake node`s and a gateway on one machine, all with the default
Flight port (any free one), and a query across the two nodes that moves data over Flight.

The processes get a user's environment: no LAKE_*/PLATFORM_* settings but the secret the two
nodes share (and the HTTP ports they are given). Each node's Flight address is the one its
start line reports and the one its peer learned by gossip.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lake import Client
from lake.testing import NodeProcess, start_node, stop_node
from platform_core.auth import TokenSigner
from platform_gateway.testing import free_port, wait_healthy

pytestmark = pytest.mark.slow

SECRET = "f" * 40
SQL = (
    "SELECT grp, count(*) AS n, sum(id) AS s, min(amount) AS lo, max(amount) AS hi "
    "FROM sales WHERE amount > 10 GROUP BY grp ORDER BY grp"
)


def _until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except Exception:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _members(client: Client) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in client._call("GET", "/nodes/self").json()["members"]}


def test_two_nodes_and_a_gateway_on_one_machine_with_default_flight_ports(
    platform_command: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith(("LAKE_", "PLATFORM_"))]:
        monkeypatch.delenv(key)
    gw_port = free_port()
    gw_out, gw_err = tmp_path / "gw.out", tmp_path / "gw.err"
    with gw_out.open("wb") as out, gw_err.open("wb") as err:
        gateway = subprocess.Popen(
            [str(platform_command), "up", "--port", str(gw_port), "--home", str(tmp_path / "gw")],
            stdout=out,
            stderr=err,
        )
    nodes: list[NodeProcess] = []
    try:
        wait_healthy(f"http://127.0.0.1:{gw_port}", gateway, timeout=60)
        nodes.append(start_node(tmp_path / "a", env={"PLATFORM_SECRET": SECRET}))
        nodes.append(
            start_node(tmp_path / "b", "--join", nodes[0].addr, env={"PLATFORM_SECRET": SECRET})
        )
        a, b = nodes
        assert a.flight != b.flight
        assert not a.flight.endswith(":0")
        assert not b.flight.endswith(":0")
        token = TokenSigner(SECRET).issue("tester", admin=True)
        with Client(a.url, token, timeout=60) as ca, Client(b.url, token, timeout=60) as cb:
            # each node knows the other's real Flight address, by gossip
            _until(lambda: _members(ca).get(b.node_id, {}).get("flight") == b.flight, "a learns b")
            _until(lambda: _members(cb).get(a.node_id, {}).get("flight") == a.flight, "b learns a")

            csv = tmp_path / "sales.csv"
            duckdb.sql(
                "COPY (SELECT i AS id, i % 7 AS grp, (i * 37 % 1000) / 10.0 AS amount "
                f"FROM range(200000) t(i)) TO '{csv}' (HEADER)"
            )
            assert ca.upload(csv, "sales", part_size=1 << 20)["state"] == "committed"
            _until(
                lambda: ca._call("GET", "/nodes").json()["under_replicated"] == 0,
                "both copies of every chunk",
            )
            want = duckdb.sql(SQL.replace("FROM sales", f"FROM read_csv('{csv}')")).fetchall()

            remote = []
            for client, other in ((ca, b), (cb, a)):
                _until(lambda c=client: "sales" in [d["name"] for d in c.datasets()], "listing")
                result = client.query(SQL)
                got = [tuple(row) for row in result["rows"]]
                assert got == [tuple(row) for row in want]
                remote += [
                    r for r in result["reads"] if r["node"] == other.node_id and "chunk" not in r
                ]
            # each chunk is read by its first-ranked replica: from one of the two nodes the
            # fragment ran on the other one, and its partial result came back over Flight
            assert remote, "no fragment ran on the other node"
            assert all(r["bytes"] > 0 for r in remote)
        assert gateway.poll() is None, gw_err.read_text()
        assert "Traceback" not in gw_err.read_text()
    finally:
        for node in nodes:
            stop_node(node)
        gateway.terminate()
        try:
            gateway.wait(timeout=20)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait()
