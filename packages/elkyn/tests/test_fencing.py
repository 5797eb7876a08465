"""Terms, fencing and semi-synchronous acknowledgement (``elkyn.fencing``), in process; and a
server alone in its election cluster, which is a primary at once without Raft."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from elkyn.election import Peer, parse_peers
from elkyn.errors import PrimaryUnavailableError
from elkyn.fencing import Fence, StaleTermError
from platform_core.testing import free_port, launch


def test_only_the_unfenced_primary_of_the_term_takes_writes() -> None:
    fence = Fence(sync_replicas=1, sync_timeout=0.5)
    with pytest.raises(StaleTermError, match="not yet learnt from the election"):
        fence.check_write(None)  # nobody named yet
    fence.follow(3)
    with pytest.raises(StaleTermError):
        fence.check_write(None)  # a replica
    fence.promote(4)
    fence.check_write(None)
    fence.check_write("4")
    with pytest.raises(StaleTermError, match="forwarded for term '3'"):
        fence.check_write("3")  # a replica of the old term forwards: refused, it retries
    fence.fenced = 5  # a coordinator is electing term 5
    with pytest.raises(StaleTermError, match="fenced at term 5"):
        fence.check_write("4")


def test_an_ack_counts_only_from_a_replica_of_the_same_term() -> None:
    fence = Fence(sync_replicas=2, sync_timeout=0.5)
    fence.promote(2)
    fence.record_ack("a", "2", 10)
    fence.record_ack("b", "1", 10)  # a replica of an old term: not counted
    fence.record_ack("c", None, 10)  # not in an election: not counted
    assert fence.acked_by(10) == 1
    fence.record_ack("b", "2", 12)
    assert fence.acked_by(10) == 2
    assert fence.acked_by(11) == 1
    with pytest.raises(StaleTermError, match="deposed"):
        fence.record_ack("a", "3", 13)  # a replica of a newer term polls a deposed primary
    fence.promote(3)
    assert fence.acked_by(0) == 0  # a new term starts counting afresh


def test_a_write_is_acknowledged_only_once_enough_replicas_have_it() -> None:
    async def run() -> None:
        fence = Fence(sync_replicas=1, sync_timeout=2.0)
        fence.promote(1)
        waiting = asyncio.ensure_future(fence.acknowledged(5))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        fence.record_ack("r", "1", 4)  # not yet the write
        await asyncio.sleep(0.1)
        assert not waiting.done()
        fence.record_ack("r", "1", 5)
        await asyncio.wait_for(waiting, 1.0)

        slow = Fence(sync_replicas=1, sync_timeout=0.3)
        slow.promote(1)
        with pytest.raises(PrimaryUnavailableError, match="0 of the 1 replicas"):
            await slow.acknowledged(1)

        fenced = Fence(sync_replicas=1, sync_timeout=5.0)
        fenced.promote(1)
        waiting = asyncio.ensure_future(fenced.acknowledged(1))
        await asyncio.sleep(0.1)
        fenced.fenced = 2  # deposed while waiting: never acknowledged, even if an ack comes
        fenced.record_ack("r", "1", 1)
        with pytest.raises(PrimaryUnavailableError, match="deposed meanwhile"):
            await asyncio.wait_for(waiting, 2.0)

    asyncio.run(run())


def test_peers_are_parsed_or_refused_clearly() -> None:
    assert parse_peers("127.0.0.1:7001=http://127.0.0.1:9001/, h:2=https://h:3") == [
        Peer("127.0.0.1:7001", "http://127.0.0.1:9001"),
        Peer("h:2", "https://h:3"),
    ]
    with pytest.raises(ValueError, match="RAFT_HOST:RAFT_PORT=ELKYN_URL"):
        parse_peers("127.0.0.1:7001")
    with pytest.raises(ValueError, match="not 'h:x=http://h:1'"):
        parse_peers("h:x=http://h:1")


def test_a_server_alone_is_its_primary_at_once_without_raft(tmp_path: Path) -> None:
    port, raft = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "elkyn", "serve", "--port", str(port), "--memory"]
    argv += ["--election-port", str(raft), f"--peer=127.0.0.1:{raft}={url}"]
    env = {"PLATFORM_SECRET": "e" * 40, "PLATFORM_HOME": str(tmp_path)}
    server = launch(argv, env=env, url=url, timeout=30)
    try:
        from platform_core.auth import TokenSigner

        admin = {"Authorization": f"Bearer {TokenSigner('e' * 40).issue('root', admin=True)}"}
        r = httpx.put(f"{url}/a.json", json=1, headers=admin, timeout=10)  # no wait for a vote
        assert r.status_code == 200, r.text
        assert "x-elkyn-term" not in r.headers  # no election, no term
        status = httpx.get(f"{url}/.replication/status", headers=admin, timeout=10).json()
        assert status["role"] == "primary", status
        assert "election" not in status, status
    finally:
        server.stop(10)


def test_raft_traffic_needs_the_cluster_password() -> None:
    """Three Raft nodes of the election record, one with another password: the two that
    share it elect and commit; the third never learns the record."""
    import time

    from pysyncobj import SyncObjConf

    from elkyn.election import Primaryship

    addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    passwords = ["right", "right", "wrong"]
    nodes = [
        Primaryship(
            a,
            [b for b in addrs if b != a],
            SyncObjConf(password=p, useFork=False, connectionRetryTime=0.5),
        )
        for a, p in zip(addrs, passwords, strict=True)
    ]
    try:
        # a first election takes a second or two; CI's run at load (two lanes of servers on
        # two cores) once took more than 20 s: the bound is a liveness wait, not the check
        deadline = time.monotonic() + 60
        while not any(n._isLeader() for n in nodes[:2]):
            assert time.monotonic() < deadline, "the two nodes sharing the password never elected"
            time.sleep(0.1)
        leader = next(n for n in nodes[:2] if n._isLeader())
        assert leader.designate(1, "http://a", "db-a", sync=True, timeout=10) is True
        assert leader.designate(1, "http://b", "db-b", sync=True, timeout=10) is False  # CAS
        while nodes[0].term != 1 or nodes[1].term != 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert nodes[0].primary == nodes[1].primary == "http://a"
        time.sleep(1.0)
        assert nodes[2].term == 0  # the stranger took none of it
        assert nodes[2].primary is None
        assert not nodes[2]._isLeader()
    finally:
        for n in nodes:
            n.destroy()


def test_an_ack_in_another_databases_numbers_does_not_count() -> None:
    """A deposed primary polling the new one names a `since` of its own history: not an ack."""
    fence = Fence(sync_replicas=1, sync_timeout=0.5)
    fence.promote(2)
    fence.record_ack("old-primary", "2", 1000, counts=False)
    assert fence.acked_by(10) == 0
    fence.record_ack("old-primary", "2", 12, counts=True)  # after its resync
    assert fence.acked_by(10) == 1


def test_the_default_sync_replicas_make_every_majority_hold_every_acknowledged_write() -> None:
    """Brute force over every set of servers an acknowledged write may be on (the primary and
    its replicas) and every majority an election may hear from: they share a server, so the
    most caught-up of any majority has the write. One more server short of it does not."""
    from itertools import combinations

    from elkyn.fencing import default_sync_replicas

    assert [default_sync_replicas(n) for n in range(1, 8)] == [0, 1, 1, 1, 2, 2, 3]
    for n in range(2, 8):
        servers = range(n)
        majority = n // 2 + 1
        holders = default_sync_replicas(n) + 1
        for write in combinations(servers, holders):
            for heard in combinations(servers, majority):
                assert set(write) & set(heard), (n, write, heard)
        fewer = [
            (w, h)
            for w in combinations(servers, holders - 1)
            for h in combinations(servers, majority)
            if not set(w) & set(h)
        ]
        # the least that is safe (with two servers, 1 keeps a second copy: no election runs
        # without both anyway)
        assert n == 2 or fewer, n


@pytest.mark.parametrize("named", [True, False])
def test_a_write_before_the_first_election_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: bool
) -> None:
    """A server of an election cluster that has just started (term 0, no primary learnt)
    holds a REST write until the election names a primary (CI: a first write right after
    the join was a 503), and still answers 503 when none is named within the wait."""
    from elkyn import Store
    from elkyn.server import ElkynApp
    from elkyn.server import app as app_module
    from elkyn.settings import elkyn_settings
    from platform_core.auth import TokenSigner

    secret = "s" * 40
    monkeypatch.setattr(app_module, "FIRST_PRIMARY_WAIT", 1.5)
    settings = elkyn_settings(secret=secret, home=tmp_path, memory=True)
    admin = {"authorization": "Bearer " + TokenSigner(secret).issue("ops", admin=True)}

    async def run() -> httpx.Response:
        with Store(memory=True) as store:
            app = ElkynApp(settings, store, signer=TokenSigner(secret))
            app.fence = Fence(sync_replicas=0, sync_timeout=1.0)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://e") as http:
                writing = asyncio.ensure_future(http.put("/a.json", json=1, headers=admin))
                await asyncio.sleep(0.3)
                assert not writing.done()  # held, not refused
                if named:
                    app.fence.promote(1)  # the elector names this server
                answer = await asyncio.wait_for(writing, 5.0)
                assert store.get("/a") == (1 if named else None)
                return answer

    answer = asyncio.run(run())
    if named:
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 503, answer.text
        assert "not yet learnt from the election" in answer.json()["error"]


def test_the_first_election_holds_only_a_bounded_number_of_authenticated_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by an outside tester: anonymous writes were held too, a rules PUT without a
    token was refused only after the wait, and any number of writes (each with its body)
    could be held at once. Now an anonymous write and a non-admin rules PUT are answered at
    once, and past ``FIRST_PRIMARY_WAITERS`` held writes the next is refused at once."""
    import time

    from elkyn import Store
    from elkyn.server import ElkynApp
    from elkyn.server import app as app_module
    from elkyn.settings import elkyn_settings
    from platform_core.auth import TokenSigner

    secret = "s" * 40
    monkeypatch.setattr(app_module, "FIRST_PRIMARY_WAIT", 2.0)
    monkeypatch.setattr(app_module, "FIRST_PRIMARY_WAITERS", 2)
    settings = elkyn_settings(secret=secret, home=tmp_path, memory=True)
    signer = TokenSigner(secret)
    admin = {"authorization": "Bearer " + signer.issue("ops", admin=True)}
    user = {"authorization": "Bearer " + signer.issue("ann")}

    async def run() -> None:
        with Store(memory=True) as store:
            app = ElkynApp(settings, store, signer=signer)
            app.fence = Fence(sync_replicas=0, sync_timeout=1.0)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://e") as http:
                t0 = time.monotonic()
                anonymous = await http.put("/a.json", json=1)
                rules = await http.put("/.settings/rules.json", json={"rules": {}}, headers=user)
                assert time.monotonic() - t0 < 1.0  # neither waited for the election
                assert anonymous.status_code == 503, anonymous.text
                assert rules.status_code == 401, rules.text
                held = [asyncio.ensure_future(http.put("/b.json", json=2, headers=admin))]
                held.append(asyncio.ensure_future(http.put("/c.json", json=3, headers=admin)))
                await asyncio.sleep(0.3)
                t0 = time.monotonic()
                third = await http.put("/d.json", json=4, headers=admin)
                assert time.monotonic() - t0 < 1.0  # two held already: refused at once
                assert third.status_code == 503, third.text
                assert not any(h.done() for h in held)
                app.fence.promote(1)
                answers = await asyncio.gather(*held)
                assert [a.status_code for a in answers] == [200, 200]
                assert (store.get("/b"), store.get("/c"), store.get("/d")) == (2, 3, None)

    asyncio.run(run())
