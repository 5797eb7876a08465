"""Every lake route with every role: admin, the owner, another user, no token (a real node).

The table below is the rule (see ``lake.api.roles``); a route in the OpenAPI that is not in it
fails the first test, so a new route cannot ship without its role being decided and tested.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from lake import LakeNode, lake_settings
from lake.api.routes import NodeHolder
from lake.api.server import create_app
from lake.storage.manifest import Manifest
from lake.testing import NodeProcess, start_node, stop_node
from platform_core.auth import TokenSigner

from .conftest import SECRET

ANY, OWNER, ADMIN = "any user", "owner or admin", "admin"
ROLES = ("admin", "owner", "other", "none")
PREFIX = "/api/lake"

TABLE: dict[tuple[str, str], str] = {
    ("GET", "/datasets"): ANY,
    ("GET", "/datasets/{name}"): ANY,
    ("GET", "/datasets/{name}/versions"): ANY,
    ("GET", "/datasets/{name}/schema"): ANY,
    ("GET", "/datasets/{name}/preview"): ANY,
    ("DELETE", "/datasets/{name}"): OWNER,
    ("GET", "/uploads"): ANY,  # each user sees their own uploads, an admin all (below)
    ("POST", "/uploads"): ANY,  # a new dataset; a version of an existing one: OWNER (below)
    ("PUT", "/uploads/{upload_id}/parts/{n}"): OWNER,
    ("GET", "/uploads/{upload_id}"): OWNER,
    ("POST", "/uploads/{upload_id}/complete"): OWNER,
    ("DELETE", "/uploads/{upload_id}"): OWNER,
    ("POST", "/query"): ANY,
    ("DELETE", "/query/{query_id}"): OWNER,
    ("GET", "/nodes"): ANY,
    ("GET", "/nodes/self"): ADMIN,
    ("POST", "/gc"): ADMIN,
    ("POST", "/admin/backup"): ADMIN,
}

CSV = b"id,v\n1,a\n2,b\n3,c\n"
SHARED = b"id,v\n" + b"".join(b"%d,x%d\n" % (i, i) for i in range(1200))
LONG = (
    "SELECT count(*) FROM shared a, shared b, shared c, shared d "
    "WHERE hash(a.id + b.id * 2 + c.id * 3 + d.id * 5) = 0"
)
"""Runs for minutes unless cancelled."""
_names = itertools.count()


def token(role: str) -> str | None:
    signer = TokenSigner(SECRET)
    return {
        "admin": signer.issue("root", admin=True),
        "owner": signer.issue("alice"),
        "other": signer.issue("bob"),
        "none": None,
    }[role]


class Node:
    """A real node and requests to it as any role."""

    def __init__(self, proc: NodeProcess) -> None:
        self.proc = proc

    def call(self, role: str, method: str, path: str, **kw: Any) -> httpx.Response:
        tok = token(role)
        headers = {**kw.pop("headers", {}), **({"authorization": f"Bearer {tok}"} if tok else {})}
        return httpx.request(
            method, self.proc.url + PREFIX + path, headers=headers, timeout=30, **kw
        )

    def start_upload(
        self, role: str = "owner", name: str | None = None, data: bytes = CSV
    ) -> dict[str, Any]:
        name = name or f"u{next(_names)}"
        r = self.call(
            role, "POST", "/uploads", json={"name": name, "size": len(data), "filename": "x.csv"}
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def put_part(self, role: str, upload_id: str, data: bytes = CSV) -> httpx.Response:
        sha = hashlib.sha256(data).hexdigest()
        return self.call(
            role,
            "PUT",
            f"/uploads/{upload_id}/parts/0",
            content=data,
            headers={"x-content-sha256": sha},
        )

    def dataset(self, role: str = "owner", name: str | None = None, data: bytes = CSV) -> str:
        """A committed dataset uploaded by ``role``."""
        info = self.start_upload(role, name, data)
        assert self.put_part(role, info["id"], data).status_code == 200
        assert self.call(role, "POST", f"/uploads/{info['id']}/complete").status_code == 202
        deadline = time.monotonic() + 30
        while (state := self.call(role, "GET", f"/uploads/{info['id']}").json())[
            "state"
        ] != "committed":
            assert state["state"] in ("open", "converting"), state
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return str(info["name"])

    def admitted(self) -> int:
        stats = self.call("admin", "GET", "/nodes/self").json()["stats"]
        return int(stats["queries_running"] + stats["queries_waiting"])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    proc = start_node(
        tmp_path_factory.mktemp("roles"),
        env={"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0", "LAKE_QUERY_THREADS": "1"},
    )
    n = Node(proc)
    n.dataset("owner", "shared", SHARED)
    yield n
    stop_node(proc)


Request = tuple[str, str, dict[str, Any]]


def _running_query(node: Node) -> Iterator[str]:
    """Alice's long query, running while the caller acts on it; cancelled afterwards."""
    qid = f"q{next(_names)}"
    t = threading.Thread(
        target=node.call,
        args=("owner", "POST", "/query"),
        kwargs={"json": {"sql": LONG, "query_id": qid, "timeout": 60}},
    )
    t.start()
    deadline = time.monotonic() + 30
    while node.admitted() == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield qid
    node.call("admin", "DELETE", f"/query/{qid}")
    t.join(30)


def build(node: Node, method: str, path: str) -> Iterator[Request]:
    """The request for one route, on objects owned by alice; runs its cleanup after."""
    if path == "/datasets/{name}" and method == "DELETE":
        yield method, f"/datasets/{node.dataset()}", {}
    elif "{name}" in path:
        yield method, path.replace("{name}", "shared"), {}
    elif path == "/uploads" and method == "POST":
        name = f"new{next(_names)}"
        yield method, path, {"json": {"name": name, "size": len(CSV), "filename": "x.csv"}}
    elif path == "/uploads/{upload_id}/parts/{n}":
        info = node.start_upload()
        sha = hashlib.sha256(CSV).hexdigest()
        kw = {"content": CSV, "headers": {"x-content-sha256": sha}}
        yield method, f"/uploads/{info['id']}/parts/0", kw
    elif path == "/uploads/{upload_id}/complete":
        info = node.start_upload()
        assert node.put_part("owner", info["id"]).status_code == 200
        yield method, f"/uploads/{info['id']}/complete", {}
    elif "{upload_id}" in path:
        yield method, path.replace("{upload_id}", node.start_upload()["id"]), {}
    elif path == "/query":
        yield method, path, {"json": {"sql": "SELECT count(*) AS n FROM shared"}}
    elif path == "/admin/backup":
        yield method, path, {"json": {"target": f"b{next(_names)}"}}
    elif path == "/query/{query_id}":
        for qid in _running_query(node):
            yield method, f"/query/{qid}", {}
    else:
        assert "{" not in path, f"no request builder for {path}"
        yield method, path, {}


def test_every_lake_route_has_a_role_in_the_table(node: Node) -> None:
    spec = httpx.get(node.proc.url + "/openapi.json", timeout=10).json()
    routes = {
        (method.upper(), path.removeprefix(PREFIX))
        for path, ops in spec["paths"].items()
        if path.startswith(PREFIX + "/")
        for method in ops
    }
    assert routes == set(TABLE), (
        f"routes without a role in TABLE: {sorted(routes - set(TABLE))}; "
        f"TABLE rows without a route: {sorted(set(TABLE) - routes)}"
    )


def allowed(rule: str, role: str) -> bool:
    return {ANY: role != "none", OWNER: role in ("admin", "owner"), ADMIN: role == "admin"}[rule]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path"), sorted(TABLE))
def test_each_route_with_each_role(node: Node, method: str, path: str, role: str) -> None:
    rule = TABLE[(method, path)]
    for m, url, kw in build(node, method, path):
        r = node.call(role, m, url, **kw)
        if role == "none":
            assert r.status_code == 401, r.text
            assert r.json()["type"] == "unauthorized"
        elif allowed(rule, role):
            assert r.status_code < 300, (role, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert r.json()["type"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), sorted(TABLE))
def test_a_cluster_token_is_no_user_token(node: Node, method: str, path: str) -> None:
    url = node.proc.url + PREFIX + path.replace("{name}", "shared")
    for key in ("{upload_id}", "{query_id}"):
        url = url.replace(key, "01J00000000000000000000000")
    cluster = TokenSigner(SECRET).cluster_token("peer")
    r = httpx.request(
        method, url.replace("{n}", "0"), headers={"authorization": f"Bearer {cluster}"}
    )
    assert r.status_code == 401, r.text


def test_the_upload_list_shows_a_user_their_own_uploads_and_an_admin_all(node: Node) -> None:
    mine = node.start_upload()["id"]  # alice's
    seen = {
        role: {u["id"] for u in node.call(role, "GET", "/uploads").json()}
        for role in ("owner", "other", "admin")
    }
    assert mine in seen["owner"]
    assert mine in seen["admin"]
    assert mine not in seen["other"]
    listed = next(u for u in node.call("owner", "GET", "/uploads").json() if u["id"] == mine)
    assert listed["owner"] == "alice"
    assert listed["state"] == "open"
    assert listed["received_bytes"] == 0


def test_the_uploader_owns_the_dataset_and_keeps_it_across_versions(node: Node) -> None:
    name = node.dataset("owner")
    assert node.call("other", "GET", f"/datasets/{name}").json()["owner"] == "alice"
    # Another user may not add a version (nor replace it); the owner and an admin may.
    refused = node.call(
        "other", "POST", "/uploads", json={"name": name, "size": 10, "filename": "x.csv"}
    )
    assert refused.status_code == 403
    assert "'alice'" in refused.json()["error"]
    node.dataset("admin", name)
    detail = node.call("owner", "GET", f"/datasets/{name}").json()
    assert (detail["version"], detail["owner"]) == (2, "alice")
    assert node.call("other", "DELETE", f"/datasets/{name}").status_code == 403
    assert node.call("owner", "DELETE", f"/datasets/{name}").status_code == 200
    # Once deleted, the name is free: bob may make a dataset of his own under it.
    node.dataset("other", name)
    assert node.call("owner", "GET", f"/datasets/{name}").json()["owner"] == "bob"


OLD_MANIFEST = {
    "name": "legacy",
    "version": 1,
    "schema": None,
    "chunks": [],
    "created": 1.0,
    "deleted": False,
    "origin": "n1",
}


def test_an_old_manifest_without_owner_reads_and_only_an_admin_deletes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = Manifest.from_dict(OLD_MANIFEST)
    assert m.owner is None
    assert m.to_dict() == OLD_MANIFEST  # its canonical bytes (and so merges) are unchanged
    assert Manifest.from_json(Manifest(**{**m.__dict__, "owner": "alice"}).to_json()).owner == (
        "alice"
    )
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    settings = lake_settings(None, home=tmp_path)
    lake = LakeNode(settings)
    lake.catalog.commit("legacy", None, ())  # as before owners: no owner recorded
    app = create_app(settings, TokenSigner(SECRET), NodeHolder(lake))
    try:
        with TestClient(app) as client:

            def call(role: str, method: str, path: str) -> httpx.Response:
                tok = token(role)
                headers = {"authorization": f"Bearer {tok}"} if tok else {}
                return client.request(method, PREFIX + path, headers=headers)

            assert call("other", "GET", "/datasets/legacy").json()["owner"] is None
            for role in ("owner", "other"):
                r = call(role, "DELETE", "/datasets/legacy")
                assert r.status_code == 403
                assert "no recorded owner" in r.json()["error"]
            assert call("admin", "DELETE", "/datasets/legacy").status_code == 200
    finally:
        lake.stop()
