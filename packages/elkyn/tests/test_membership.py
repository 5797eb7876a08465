"""Joining an election cluster (``elkyn.membership``): what a joining platform refuses clearly.

A real HTTP server on 127.0.0.1 plays the platform joined: it names members whose election
port nobody listens on (a firewall between machines looks the same), or answers nothing.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from elkyn import membership
from elkyn.membership import ElectionJoinError, election_port, fetch_members
from platform_core.auth import TokenSigner

SIGNER = TokenSigner("membership-test-secret-" + "m" * 24)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def joined() -> Iterator[tuple[str, dict[str, str]]]:
    """A server answering ``GET /db/.replication/members`` with the members it is given."""
    members: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"members": members}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/db", members
    finally:
        server.shutdown()
        server.server_close()


def test_a_cluster_whose_election_port_is_unreachable_is_a_clear_error(
    joined: tuple[str, dict[str, str]],
) -> None:
    url, members = joined
    raft = f"127.0.0.1:{_closed_port()}"
    members[raft] = "http://127.0.0.1:1/db"
    with pytest.raises(ElectionJoinError) as err:
        fetch_members(url, SIGNER)
    assert f"cannot join the election of the cluster at {url}" in str(err.value)
    assert raft in str(err.value)
    assert "ELKYN_ELECTION_PORT" in str(err.value)


def test_members_whose_port_answers_are_returned(joined: tuple[str, dict[str, str]]) -> None:
    url, members = joined
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        raft = f"127.0.0.1:{listener.getsockname()[1]}"
        members[raft] = "http://127.0.0.1:2/db"
        assert fetch_members(url, SIGNER) == {raft: "http://127.0.0.1:2/db"}


def test_a_platform_that_answers_nothing_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(membership, "JOIN_SECONDS", 0.5)
    url = f"http://127.0.0.1:{_closed_port()}/db"
    with pytest.raises(ElectionJoinError, match=r"could not join the cluster through .* within"):
        fetch_members(url, SIGNER)


def test_a_platform_of_another_secret_is_named_at_once() -> None:
    """A 401 is not retried for JOIN_SECONDS: waiting will not change it."""

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/db"
        started = time.monotonic()
        with pytest.raises(ElectionJoinError, match="same secret") as err:
            fetch_members(url, SIGNER)
        assert time.monotonic() - started < 5
        assert "could not join the cluster through" in str(err.value)
    finally:
        server.shutdown()
        server.server_close()


def test_the_election_port_is_kept_across_restarts_and_a_taken_one_refused(
    tmp_path: Path,
) -> None:
    first = election_port(tmp_path, "127.0.0.1", None)
    assert election_port(tmp_path, "127.0.0.1", None) == first  # a member's address stays
    # picked below the ephemeral range: no client's connection takes it before a restart
    assert first < int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(ElectionJoinError, match=f"election port {port} on 127.0.0.1 is in use"):
            election_port(None, "127.0.0.1", port)


def test_a_restarted_member_whose_join_platform_names_nobody_rejoins_through_its_members(
    joined: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole cluster restarted one platform after the other: the first, alone, names no
    member until a majority votes. A member that remembers its cluster rejoins through it
    (and its Raft journal) instead of failing "names no election member yet"."""
    from elkyn import platform_election

    url, _ = joined  # answers {"members": {}}
    monkeypatch.setattr(platform_election, "RESTART_PATIENCE", 0.5)
    remembered = {"127.0.0.1:1": "http://127.0.0.1:9/db", "127.0.0.1:2": "http://127.0.0.1:8/db"}
    got = platform_election._members_to_join(url, SIGNER, None, remembered, "127.0.0.1:2")
    assert got == (remembered, True)
    with pytest.raises(membership.NoMemberYetError, match="names no election member yet"):
        fetch_members(url, SIGNER, None, patience=0.5)  # a new platform has nothing to fall back on
