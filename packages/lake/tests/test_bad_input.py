"""Inputs the fuzzers turned into 5xx answer a clear 4xx: peer routes, gossip bodies, ids, names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from lake.errors import InvalidNameError
from lake.names import check_dataset_name, check_query_id, check_sha256, check_upload_id
from lake.testing import NodeProcess, start_node, stop_node
from platform_core.auth import TokenSigner

from .conftest import SECRET


@pytest.fixture(scope="module")
def node_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node for the whole module: these tests only send bad input, which changes nothing."""
    proc = start_node(
        tmp_path_factory.mktemp("bad-input"),
        env={"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0"},
    )
    yield proc
    stop_node(proc)


@pytest.fixture
def peer(node_proc: NodeProcess) -> Iterator[httpx.Client]:
    token = TokenSigner(SECRET).cluster_token("peer")
    with httpx.Client(
        base_url=node_proc.url + "/internal/lake",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    ) as c:
        yield c


@pytest.fixture
def user(node_proc: NodeProcess, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=node_proc.url + "/api/lake",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    ) as c:
        yield c


PEER_ROUTES = [
    ("POST", "/ping"),
    ("POST", "/ping-req"),
    ("GET", "/manifests"),
    ("POST", "/fault"),
    ("GET", "/chunks"),
    ("POST", "/scrub"),
]


@pytest.mark.parametrize(("method", "path"), PEER_ROUTES)
def test_peer_routes_without_or_with_a_wrong_token_are_401(
    node_proc: NodeProcess, token: str, method: str, path: str
) -> None:
    url = node_proc.url + "/internal/lake" + path
    for headers in (
        {},
        {"authorization": "Bearer not-a-token"},
        {"authorization": "Basic abc"},
        {"authorization": f"Bearer {token}"},  # a user token, even an admin's
    ):
        r = httpx.request(method, url, headers=headers, content=b"{}", timeout=10)
        assert r.status_code == 401, (headers, r.status_code, r.text)
        assert r.json()["type"] == "unauthorized"


MEMBER = {"id": "x", "http": "127.0.0.1:1", "flight": "127.0.0.1:2", "incarnation": 1}

BAD_GOSSIP: list[tuple[str, bytes | Any]] = [
    ("not json", b"{nope"),
    ("not utf-8", b"\xff\xfe"),
    ("a list", []),
    ("a number", 3),
    ("no sender", {"members": []}),
    ("sender not an object", {"from": "x"}),
    ("sender without id", {"from": {k: v for k, v in MEMBER.items() if k != "id"}}),
    ("incarnation text", {"from": {**MEMBER, "incarnation": "soon"}}),
    ("incarnation float", {"from": {**MEMBER, "incarnation": 1.5}}),
    ("incarnation bool", {"from": {**MEMBER, "incarnation": True}}),
    ("unknown state", {"from": {**MEMBER, "state": "zombie"}}),
    ("id not text", {"from": {**MEMBER, "id": 7}}),
    ("id with newline", {"from": {**MEMBER, "id": "x\n"}}),
    ("members not a list", {"from": MEMBER, "members": {"a": 1}}),
    ("member not an object", {"from": MEMBER, "members": [1]}),
    ("heads not an object", {"from": MEMBER, "heads": [1, 2]}),
    ("head version text", {"from": MEMBER, "heads": {"sales": "x"}}),
    ("head version negative", {"from": MEMBER, "heads": {"sales": -1}}),
    ("head name bad", {"from": MEMBER, "heads": {"../x": 1}}),
    ("head name newline", {"from": MEMBER, "heads": {"sales\n": 1}}),
]


@pytest.mark.parametrize(("why", "body"), BAD_GOSSIP, ids=[b[0] for b in BAD_GOSSIP])
def test_malformed_gossip_is_400(peer: httpx.Client, why: str, body: Any) -> None:
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    r = peer.post("/ping", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400, (why, r.status_code, r.text)
    assert r.json()["type"] == "bad_input"
    assert "gossip" in r.json()["error"]


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"target": 1}', b'{"nothing": 1}', b'{"target": {"id": "x"}}'],
)
def test_malformed_ping_req_is_400(peer: httpx.Client, body: bytes) -> None:
    r = peer.post("/ping-req", content=body)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("body", [b"[]", b'{"drop": 3}', b'{"drop": [1, {}]}', b"{"])
def test_malformed_fault_is_400(peer: httpx.Client, body: bytes) -> None:
    r = peer.post("/fault", content=body)
    assert r.status_code == 400, r.text


def test_a_gossip_body_over_the_limit_is_413(peer: httpx.Client) -> None:
    r = peer.post("/ping", content=b"[" + b"1," * (9 << 20) + b"1]")
    assert r.status_code == 413, r.text
    assert r.json()["type"] == "over_budget"


def test_good_gossip_still_answers(peer: httpx.Client) -> None:
    r = peer.post("/ping", json={"from": MEMBER, "members": [], "heads": {}})
    assert r.status_code == 200, r.text
    assert "from" in r.json()


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\x00b", "a b", "x" * 200, ""])
def test_query_ids_with_control_characters_are_refused(user: httpx.Client, bad: str) -> None:
    r = user.post("/query", json={"sql": "SHOW TABLES", "query_id": bad})
    assert r.status_code in (400, 422), r.text
    assert "query id" in r.json()["error"] or "query_id" in r.json()["error"]
    if bad:
        r = user.delete("/query/" + quote(bad, safe=""))
        assert r.status_code in (400, 404, 422), r.text
        if r.status_code != 404:
            assert "query id" in r.json()["error"]


def test_good_query_ids_work(user: httpx.Client) -> None:
    r = user.post("/query", json={"sql": "SHOW TABLES", "query_id": "my-query_1.2"})
    assert r.status_code == 200, r.text
    assert r.headers["x-query-id"] == "my-query_1.2"
    r = user.delete("/query/my-query_1.2")
    assert r.status_code == 200
    assert r.json() == {"query_id": "my-query_1.2", "cancelled": False}


@pytest.mark.parametrize("name", ["sales\n", "sales\r", "sales\x00", "\nsales"])
def test_dataset_names_with_a_trailing_newline_are_400(user: httpx.Client, name: str) -> None:
    r = user.get("/datasets/" + quote(name, safe=""))
    assert r.status_code == 400, r.text
    assert "dataset name" in r.json()["error"]
    start = user.post("/uploads", json={"name": name, "size": 10, "filename": "x.csv"})
    assert start.status_code == 400, start.text


def test_names_are_checked_with_a_full_match() -> None:
    for bad in ("sales\n", "a\n"):
        with pytest.raises(InvalidNameError):
            check_dataset_name(bad)
    with pytest.raises(InvalidNameError):
        check_sha256("0" * 64 + "\n")
    with pytest.raises(InvalidNameError):
        check_upload_id("0" * 26 + "\n")
    for bad in ("q\n", "q\r", "q\x00", "", "q" * 129, 5):
        with pytest.raises(InvalidNameError):
            check_query_id(bad)
    assert check_dataset_name("sales_2") == "sales_2"
    assert check_query_id("01J-x_y.z:1") == "01J-x_y.z:1"
