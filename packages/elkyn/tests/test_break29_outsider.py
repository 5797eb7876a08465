"""An outsider against an election cluster (issue 29, break test). On the Raft port: garbage,
forged pickles and frames that announce a huge length must be dropped without unpickling
anything, without the server buffering what the stranger sends, and without stopping the
cluster's writes. Over HTTP: a client's forged ``X-Elkyn-Term`` header decides nothing."""

from __future__ import annotations

import os
import pickle
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from election_cluster import ElectionCluster, start_cluster, wait_for

pytestmark = pytest.mark.slow


class Marker:
    """Unpickling this creates a file: proof that a stranger's pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ElectionCluster]:
    c = start_cluster(tmp_path_factory.mktemp("raft"))  # one cluster for both (seconds each)
    try:
        wait_for(lambda: c.primary(), "a primary")
        yield c
    finally:
        c.stop()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` s (what it sends first is read
    and dropped: pysyncobj greets a new connection with its encrypted random key)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # a reset is a close too
            return True
    return False


def send_frame(port: int, frame: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(frame)
    return sock


def test_garbage_and_forged_pickles_are_dropped_unread(
    cluster: ElectionCluster, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    forged = zlib.compress(pickle.dumps(Marker(str(marker))))
    frames = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # another protocol: "GET " is a 542 MB length
        struct.pack("i", -5) + os.urandom(64),  # a negative length
        struct.pack("i", 200) + os.urandom(200),  # a frame of the right size, no valid MAC
        struct.pack("i", len(forged)) + forged,  # a plain pickle: must not be loaded
    ]
    for m in cluster.members:
        for frame in frames:
            sock = send_frame(m.raft, frame)
            try:
                assert closed_by_server(sock, 10), f"port {m.raft} kept a garbage connection"
            finally:
                sock.close()
    time.sleep(0.5)
    assert not marker.exists(), "a pickle sent by a stranger was loaded before any MAC check"
    for i, m in enumerate(cluster.members):  # the cluster still writes, through every server
        r = httpx.put(f"{m.url}/after/s{i}.json", json=i, headers=cluster.admin(), timeout=15)
        assert r.status_code == 200, r.text


def test_a_frame_announcing_a_huge_length_is_dropped_before_it_is_buffered(
    cluster: ElectionCluster,
) -> None:
    """A stranger announcing a 2 GiB frame is cut off once it sent more than any Raft message
    of ours can be, not buffered (with a quadratic copy per read) until it stops."""
    primary = cluster.primary()
    assert primary is not None
    sock = socket.create_connection(("127.0.0.1", cluster.members[primary].raft), timeout=5)
    try:
        sock.sendall(struct.pack("i", 2**31 - 1))
        chunk = b"\0" * (1 << 16)
        cut = False
        for _ in range(128):  # 8 MiB at most
            try:
                sock.sendall(chunk)
            except OSError:
                cut = True
                break
        assert cut or closed_by_server(sock, 5), "the server kept buffering a 2 GiB frame"
    finally:
        sock.close()
    r = httpx.put(f"{cluster.members[primary].url}/after.json", json=1, headers=cluster.admin())
    assert r.status_code == 200, r.text


def test_a_clients_forged_term_header_decides_nothing(cluster: ElectionCluster) -> None:
    """A primary refuses a write naming another term (503, nothing written); a replica sends
    its own term with what it forwards, whatever the client's header said."""
    primary = wait_for(lambda: cluster.primary(), "a primary")
    term = cluster.status(primary)["term"]  # type: ignore[index]
    url = cluster.members[primary].url
    for i, forged in enumerate(["0", str(term + 1), "-1", "abc", "9" * 40, f"{term}0", f"+{term}"]):
        headers = {**cluster.admin(), "X-Elkyn-Term": forged}
        r = httpx.put(f"{url}/forged/p{i}.json", json=i, headers=headers, timeout=15)
        assert r.status_code == 503, (forged, r.status_code, r.text)
        assert "term" in r.json()["error"]
    headers = {**cluster.admin(), "X-Elkyn-Term": str(term)}
    r = httpx.put(f"{url}/forged/same.json", json=1, headers=headers, timeout=15)
    assert r.status_code == 200, r.text  # the term it serves: an ordinary write
    replica = next(i for i in range(len(cluster.members)) if i != primary)
    headers = {**cluster.admin(), "X-Elkyn-Term": "0"}
    r = httpx.put(
        f"{cluster.members[replica].url}/forged/r.json", json=2, headers=headers, timeout=15
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-elkyn-term"] == str(term)
    assert cluster.export(primary)["forged"] == {"same": 1, "r": 2}
