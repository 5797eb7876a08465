"""``lake.cluster.remembered``: the peers a node last saw alive, kept for its restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from lake.cluster.gossip import Gossip
from lake.cluster.remembered import MAX_PEERS, RememberedPeers


def test_peers_are_kept_across_a_restart_and_an_isolated_node_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    RememberedPeers(path).save(["10.0.0.6:8080", "10.0.0.5:8080", "10.0.0.6:8080"])
    restarted = RememberedPeers(path)
    assert restarted.load() == ["10.0.0.5:8080", "10.0.0.6:8080"]
    restarted.save([])  # alone for now: the old addresses are how it finds its cluster again
    assert RememberedPeers(path).load() == ["10.0.0.5:8080", "10.0.0.6:8080"]
    assert [p.name for p in tmp_path.iterdir()] == ["peers.json"]  # no temp file left


def test_a_damaged_or_strange_file_is_ignored_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    for text in ("{not json", '{"a": 1}', "null"):
        path.write_text(text)
        assert RememberedPeers(path).load() == []
    path.write_text('["10.0.0.5:8080", 7, "", "' + "x" * 400 + '"]')
    assert RememberedPeers(path).load() == ["10.0.0.5:8080"]
    many = [f"10.0.{i // 250}.{i % 250}:8080" for i in range(MAX_PEERS * 2)]
    RememberedPeers(path).save(many)
    assert len(RememberedPeers(path).load()) == MAX_PEERS
    assert RememberedPeers(None).load() == []  # an in-memory node keeps nothing


class _Links:
    """Answers each seed's ``POST /ping`` with the JSON it is given (the lake's peer links)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def call(self, method: str, seed: str, path: str, **kwargs: Any) -> Any:
        self.asked.append(seed)
        body = self.answers[seed]
        return SimpleNamespace(status_code=200, json=lambda: body, text=str(body))


def test_a_remembered_address_answering_as_no_lake_node_does_not_stop_the_join(
    tmp_path: Path,
) -> None:
    """Break test (issue 29): the first remembered address, now another server's, answered a
    200 whose JSON is no lake node's; the KeyError ended the pass (and, at start, the gossip
    thread), so the live peer after it was never asked."""
    path = tmp_path / "peers.json"
    path.write_text('["10.0.0.5:8080", "10.0.0.6:8080"]')
    gossip = Gossip.__new__(Gossip)  # only what join_once uses
    gossip.join = None
    gossip.remembered = RememberedPeers(path)
    gossip.members = SimpleNamespace(me=SimpleNamespace(http="10.0.0.9:8080"))  # type: ignore[assignment]
    gossip.payload = lambda: {}  # type: ignore[method-assign]
    answers = {"10.0.0.5:8080": {"hello": "not a node"}, "10.0.0.6:8080": {"from": 1}}
    gossip.links = _Links(answers)  # type: ignore[assignment]
    absorbed: list[Any] = []
    gossip._absorb = lambda body: absorbed.append(body["from"])  # type: ignore[method-assign]
    gossip.join_problem = "no answer yet"
    gossip.join_once()
    assert absorbed == [1]  # the live peer after the stranger let it in
    gossip.links = _Links({"10.0.0.5:8080": ["no"], "10.0.0.6:8080": {"hello": 1}})  # type: ignore[assignment]
    gossip.join_once()
    assert "10.0.0.5:8080 answered, but not as a lake node" in gossip.join_problem


def test_a_join_error_names_a_few_seeds_not_all(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    RememberedPeers(path).save([f"10.0.0.{i}:8080" for i in range(1, 41)])
    gossip = Gossip.__new__(Gossip)
    gossip.join = None
    gossip.remembered = RememberedPeers(path)
    gossip.members = SimpleNamespace(me=SimpleNamespace(http="10.0.0.99:8080"))  # type: ignore[assignment]
    gossip.payload = lambda: {}  # type: ignore[method-assign]
    gossip.links = _Links({f"10.0.0.{i}:8080": [] for i in range(1, 41)})  # type: ignore[assignment]
    gossip.join_once()
    assert gossip.join_problem.count("answered, but not as a lake node") == 5
    assert gossip.join_problem.endswith("; and 35 more peers this node saw alive before")


def _restarted(tmp_path: Path, links: Any) -> Gossip:
    """A gossip restarted without ``--join`` that remembers one peer, ``links`` its answers
    (only what ``first_join`` and ``rejoined`` use)."""
    path = tmp_path / "peers.json"
    RememberedPeers(path).save(["10.0.0.5:8080"])
    gossip = Gossip.__new__(Gossip)
    gossip.join = None
    gossip.remembered = RememberedPeers(path)
    me = SimpleNamespace(id="me", http="10.0.0.9:8080")
    known = [me]
    gossip.members = SimpleNamespace(me=me, me_id="me", all=lambda: list(known))  # type: ignore[assignment]
    gossip.payload = lambda: {}  # type: ignore[method-assign]
    gossip.links = links
    gossip._absorb = lambda body: known.append(SimpleNamespace(id=body["from"]))  # type: ignore[method-assign]
    gossip.join_problem = "no answer yet"
    gossip.tried = threading.Event()
    return gossip


def test_a_restart_without_join_is_ready_once_its_first_pass_found_the_cluster(
    tmp_path: Path,
) -> None:
    """Issue 34 ("ready means ready"): a platform restarted on its home answered as ready
    while its lake knew no member, and a job found no holder of a chunk. ``rejoined`` (the
    plugin's start waits on it) returns only after the first pass over the remembered peers,
    which here answers after 0.3 s."""

    class Slow(_Links):
        def call(self, method: str, seed: str, path: str, **kwargs: Any) -> Any:
            time.sleep(0.3)
            return super().call(method, seed, path, **kwargs)

    gossip = _restarted(tmp_path, Slow({"10.0.0.5:8080": {"from": "peer"}}))
    threading.Thread(target=gossip.first_join).start()
    assert gossip.rejoined(10.0)
    assert [m.id for m in gossip.members.all()] == ["me", "peer"]


def test_a_restart_whose_peers_are_all_down_starts_after_one_pass_not_the_bound(
    tmp_path: Path,
) -> None:
    class Down(_Links):
        def call(self, method: str, seed: str, path: str, **kwargs: Any) -> Any:
            raise httpx.ConnectError("refused")

    gossip = _restarted(tmp_path, Down({}))
    threading.Thread(target=gossip.first_join).start()
    started = time.monotonic()
    assert not gossip.rejoined(10.0)
    assert time.monotonic() - started < 5.0
    assert "did not answer" in gossip.join_problem
    (tmp_path / "peers.json").write_text("[]")  # nothing remembered: nothing to wait for
    gossip.tried.clear()
    assert gossip.rejoined(10.0)
