"""Lake nodes over TLS (HTTPS peer links, grpc+tls Flight) and a rolling secret rotation.

Real ``lake node`` processes on 127.0.0.1 with certificates made by ``openssl`` at test time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest

from lake import Client
from lake.cluster.placement import replicas
from lake.testing import NodeProcess
from platform_core import UnauthorizedError, UnavailableError, load_settings
from platform_core.auth import TokenSigner
from platform_core.testing import TestCertificates, free_port, make_certificates
from platform_core.tls import client_context

from .conftest import Launch
from .test_cluster import wait_for

OLD, NEW = "o" * 40, "n" * 40


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def tls_client(proc: NodeProcess, token: str, certs: TestCertificates) -> Client:
    return Client(
        proc.url, token, timeout=60, verify=client_context(load_settings(tls_ca=certs.ca))
    )


def alive(client: Client) -> set[str]:
    members = client._call("GET", "/nodes/self").json()["members"]
    return {m["id"] for m in members if m["state"] == "alive"}


def test_two_tls_nodes_gossip_replicate_and_query_through_flight(
    launch: Launch, certs: TestCertificates, sales_csv: Path
) -> None:
    # 32 KiB chunks: ~50 of them, so both nodes own some (with 6, all landed on one node in
    # about 1 run of 32, and B had no part to run)
    env = {**certs.server_env(), "LAKE_REPLICATION_FACTOR": "1", "LAKE_CHUNK_BYTES": "32768"}
    a = launch("a", **env)
    b = launch("b", "--join", a.addr, **env)
    for proc in (a, b):
        assert proc.url.startswith("https://127.0.0.1:")
        assert "(flight grpc+tls://127.0.0.1:" in proc.banner
    token = TokenSigner("s" * 40).issue("tester", admin=True)
    with tls_client(a, token, certs) as ca, tls_client(b, token, certs) as cb:
        both = {a.node_id, b.node_id}
        for cl in (ca, cb):
            wait_for(lambda cl=cl: alive(cl) == both, what="two alive members over HTTPS")
        # Each node gossips its Flight address with the TLS scheme.
        flights = {m["flight"] for m in ca._call("GET", "/nodes/self").json()["members"]}
        assert all(f.startswith("grpc+tls://127.0.0.1:") for f in flights), flights
        ca.upload(sales_csv, "sales", part_size=1 << 20)
        total = ca.dataset("sales")
        # One replica per chunk on its rendezvous node: B's chunks were copied over Flight.
        wait_for(
            lambda: cb._call("GET", "/nodes").json()["under_replicated"] == 0, what="replication"
        )

        shas = [ch["sha256"] for ch in total["chunk_list"]]
        owner = {sha: replicas(sha, both, 1)[0] for sha in shas}  # rendezvous placement
        assert set(owner.values()) == both, "both nodes own chunks"

        def placed() -> bool:  # B fetched its share over Flight, A trimmed what it gave away
            held = {m["id"]: m["chunks"] for m in ca._call("GET", "/nodes").json()["members"]}
            return held == {n: list(owner.values()).count(n) for n in both}

        wait_for(placed, what="every chunk on its rendezvous node")
        sql = "SELECT grp, count(*), sum(id) FROM sales GROUP BY grp ORDER BY grp"
        want = duckdb.sql(sql.replace("sales", f"read_csv('{sales_csv}')")).fetchall()
        got = ca.query(sql)["rows"]
        assert [tuple(r) for r in got] == want
        plan = ca.query(f"EXPLAIN {sql}")
        cols = [c["name"] for c in plan["columns"]]
        rows = [dict(zip(cols, r, strict=True)) for r in plan["rows"]]
        reads = {r["chunk"]: r["node"] for r in rows if r["kind"] == "read"}
        assert reads == owner  # every chunk read once, on the node that holds it: B ran its part
    for proc in (a, b):
        assert "cluster secret mismatch" not in proc.output()


def test_client_without_the_ca_is_refused_with_a_certificate_error(
    launch: Launch, certs: TestCertificates
) -> None:
    a = launch("a", **certs.server_env())
    token = TokenSigner("s" * 40).issue("tester")
    system_trust = client_context(load_settings())
    with (
        Client(a.url, token, verify=system_trust) as untrusting,
        pytest.raises(UnavailableError) as caught,
    ):
        untrusting.datasets()
    assert "certificate" in caught.value.message
    assert "PLATFORM_TLS_CA" in caught.value.message
    with (
        Client(a.url.replace("https://", "http://"), token) as plain,
        pytest.raises(UnavailableError, match="use https://"),
    ):
        plain.datasets()


class Traffic:
    """Queries and uploads through every node that is up, until stopped; any failure kept."""

    def __init__(self, csv: Path, certs: TestCertificates) -> None:
        self.csv = csv
        self.certs = certs
        self.nodes: dict[str, NodeProcess] = {}
        self.down: set[str] = set()
        self.tokens = [TokenSigner(OLD).issue("tester", admin=True)]
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.unavailable: list[str] = []  # answered "retry" once, then succeeded or failed
        self.done = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            for name in sorted(self.nodes):
                with self.lock:  # a node is marked down only between two requests
                    if name in self.down:
                        continue
                    token = self.tokens[i % len(self.tokens)]
                    for attempt in (1, 2):
                        try:
                            self._request(name, token, i)
                            self.done += 1
                            break
                        except UnavailableError as exc:
                            # "retry once the cluster has re-replicated it": a node just back
                            # may answer that once; a refused token never does (it is 401)
                            if attempt == 1:
                                self.unavailable.append(f"{name}: {exc!r}")
                                time.sleep(0.5)
                                continue
                            self.failures.append(f"{name} (phase {len(self.tokens)}): {exc!r}")
                        except Exception as exc:
                            self.failures.append(f"{name} (phase {len(self.tokens)}): {exc!r}")
                            break

    def _request(self, name: str, token: str, i: int) -> None:
        with tls_client(self.nodes[name], token, self.certs) as client:
            if i % 5 == 0:
                client.upload(self.csv, f"loop{i}_{name}")
            assert client.query("SELECT count(*) FROM sales")["rows"][0][0] > 0

    def restart(self, name: str, launch: Launch, port: int, join: str, **env: str) -> None:
        """Stop node ``name`` between two requests, start it again with ``env``, wait until
        both nodes see each other alive, then send traffic to it again."""
        with self.lock:
            self.down.add(name)
        self.nodes[name].stop()
        proc = launch(name, "--port", str(port), "--join", join, **env)
        token = TokenSigner(env["PLATFORM_SECRET"]).issue("tester", admin=True)
        ids = {p.node_id for p in self.nodes.values()}
        for other in self.nodes.values():
            target = proc if other.node_id == proc.node_id else other
            with tls_client(target, token, self.certs) as client:
                wait_for(lambda c=client: alive(c) == ids, what=f"{name} back in the cluster")
        with self.lock:
            self.nodes[name] = proc
            self.down.discard(name)


@pytest.mark.slow
def test_rolling_secret_rotation_refuses_no_request(
    launch: Launch, certs: TestCertificates, tmp_path: Path
) -> None:
    small = tmp_path / "small.csv"
    small.write_text("id,grp\n" + "".join(f"{i},{i % 3}\n" for i in range(200)))
    ports = {"a": free_port(), "b": free_port()}
    tls = certs.server_env()
    a = launch("a", "--port", str(ports["a"]), PLATFORM_SECRET=OLD, **tls)
    b = launch("b", "--port", str(ports["b"]), "--join", a.addr, PLATFORM_SECRET=OLD, **tls)
    traffic = Traffic(small, certs)
    traffic.nodes = {"a": a, "b": b}
    with tls_client(a, traffic.tokens[0], certs) as ca:
        wait_for(lambda: alive(ca) == {a.node_id, b.node_id}, what="two alive members")
        ca.upload(small, "sales")
    with tls_client(b, traffic.tokens[0], certs) as cb:
        wait_for(lambda: cb.datasets(), what="the dataset gossiped to B")
    traffic.thread.start()
    steps = [
        {"PLATFORM_SECRET": OLD, "PLATFORM_PREVIOUS_SECRETS": NEW},  # A: new accepted
        {"PLATFORM_SECRET": NEW, "PLATFORM_PREVIOUS_SECRETS": OLD},  # B: new signs
        {"PLATFORM_SECRET": NEW},  # C: old removed
    ]
    try:
        for number, secrets in enumerate(steps):
            for name, other in (("a", "b"), ("b", "a")):
                join = traffic.nodes[other].addr
                traffic.restart(name, launch, ports[name], join, **secrets, **tls)
                traffic_before = traffic.done
                wait_for(lambda n=traffic_before: traffic.done >= n + 4, what="traffic flowing")
            with traffic.lock:
                if number == 0:  # every node accepts NEW: tokens of both secrets work
                    traffic.tokens.append(TokenSigner(NEW).issue("tester", admin=True))
                if number == 1:  # every node signs with NEW: the old tokens may go
                    traffic.tokens = traffic.tokens[1:]
    finally:
        traffic.stop.set()
        traffic.thread.join(120)
    assert traffic.failures == []
    assert traffic.done > 20
    for proc in traffic.nodes.values():
        assert "cluster secret mismatch" not in proc.output()
        # A token signed only by the removed secret is refused like any bad token.
        for signer in (TokenSigner(OLD), TokenSigner("f" * 40)):
            with (
                tls_client(proc, signer.issue("tester"), certs) as client,
                pytest.raises(UnauthorizedError, match="Signature verification failed"),
            ):
                client.datasets()
