"""``elkyn serve`` answers errors on its platform routes (``/health``, ``/metrics``,
``/auth/token``, ``/.replication/log``, unknown paths) with the kit's one status and JSON
shape, like the gateway and ``lake node``; its Firebase REST routes keep Firebase's statuses
and bodies (the one table ``FIREBASE_STATUS``). LMDB errors translate to core kinds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import lmdb
import pytest

from elkyn.errors import PayloadTooLargeError, PermissionDeniedError, PreconditionFailedError
from elkyn.server.foreign import translate_lmdb
from elkyn.server.http import FIREBASE_STATUS
from elkyn.testing import stop_server
from platform_core import (
    BadInputError,
    ConflictError,
    ForbiddenError,
    OverBudgetError,
    UnavailableError,
)
from platform_core.http import check_error_answer, translate

from .conftest import Server, serve


@pytest.fixture(scope="module")
def elkyn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = serve(tmp_path_factory.mktemp("elkyn"), "--dev", ELKYN_MAX_WRITE_BYTES="1000")
    yield srv
    stop_server(srv.process)


def expect(response: httpx.Response, status: int, kind: str) -> str:
    """The answer is ``status`` with ``type`` ``kind``, in the contract every server keeps."""
    assert response.status_code == status, response.text
    assert check_error_answer(status, response.json()) == kind, response.text
    return str(response.json()["error"])


def firebase(response: httpx.Response, status: int, *, hint: bool = False) -> str:
    """A Firebase REST error: ``status`` and a body of exactly ``{"error": message}`` (and,
    with ``hint``, how to authenticate beside it: a request without credentials refused)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == (["error", "hint"] if hint else ["error"]), body
    return str(body["error"])


def test_platform_routes_unknown_route_and_wrong_method(elkyn: Server) -> None:
    with elkyn.client() as c:
        assert "/nope" in expect(c.get("/nope"), 404, "not_found")
        r = c.delete("/health")
        assert "DELETE /health" in expect(r, 405, "method_not_allowed")
        assert r.headers["allow"] == "GET, HEAD"
        expect(c.get("/auth/token"), 405, "method_not_allowed")


def test_platform_routes_validation_and_body_limit(elkyn: Server) -> None:
    with elkyn.client() as c:
        assert "uid" in expect(c.post("/auth/token", json={"uid": 5}), 400, "bad_input")
        r = c.post("/auth/token", content=b"{" + b" " * 70_000 + b"}")
        expect(r, 413, "over_budget")


def test_platform_routes_401_and_403(elkyn: Server) -> None:
    with elkyn.client() as c:
        r = c.get("/.replication/log")
        assert "cluster token" in expect(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    with elkyn.client(elkyn.token("ann")) as c:
        expect(c.get("/.replication/log"), 401, "unauthorized")  # a user token is not enough
        r = c.post("/auth/token", json={"uid": "x"}, headers={"Origin": "https://evil.example"})
        assert "cross-site" in expect(r, 403, "forbidden")
    cluster = elkyn.signer.cluster_token()
    with elkyn.client(cluster) as c:
        expect(c.get("/.replication/log", params={"since": "x"}), 400, "bad_input")


def test_firebase_routes_keep_firebase_statuses_and_bodies(elkyn: Server) -> None:
    with elkyn.client() as anonymous:
        r = anonymous.get("/.settings/rules.json")
        assert firebase(r, 401, hint=True) == "Permission denied"
        assert "Authorization: Bearer <token>" in r.json()["hint"]
    with elkyn.client(elkyn.token("ann")) as c:
        assert firebase(c.get("/.settings/rules.json"), 401) == "Permission denied"
        r = c.put("/t.json", content=b"{not json")
        assert firebase(r, 400) == "Invalid data; couldn't parse JSON object, array, or value."
    with elkyn.admin() as admin:
        r = admin.put("/big.json", json="x" * 2000)
        assert "larger than the write size limit of 1000 bytes" in firebase(r, 400)
        assert admin.put("/v.json", json=1).status_code == 200
        r = admin.put("/v.json", json=2, headers={"if-match": "stale"})
        assert r.status_code == 412
        assert r.json() == 1  # Firebase: the current value, and its ETag
        assert r.headers["etag"]
        r = admin.request("PROPFIND", "/v.json")
        assert firebase(r, 405) == "Method PROPFIND is not supported."


def test_elkyn_errors_carry_core_kinds_and_firebase_statuses_live_in_one_table() -> None:
    assert issubclass(PermissionDeniedError, ForbiddenError)
    assert issubclass(PreconditionFailedError, ConflictError)
    assert issubclass(PayloadTooLargeError, OverBudgetError)
    assert (PermissionDeniedError.status, PayloadTooLargeError.status) == (403, 413)
    assert FIREBASE_STATUS[PermissionDeniedError] == 401
    assert FIREBASE_STATUS[PayloadTooLargeError] == 400
    assert FIREBASE_STATUS[PreconditionFailedError] == 412


def test_lmdb_errors_translate_to_core_kinds(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "db"), map_size=64 * 1024)

    def fill() -> None:
        with env.begin(write=True) as txn:
            for i in range(10_000):
                txn.put(b"k%d" % i, b"v" * 100)

    with pytest.raises(lmdb.MapFullError) as full:
        fill()
    over = translate(full.value)
    assert isinstance(over, OverBudgetError)
    assert "ELKYN_MAP_SIZE" in over.message
    with pytest.raises(lmdb.BadValsizeError) as too_long, env.begin(write=True) as txn:
        txn.put(b"k" * 1000, b"v")
    assert isinstance(translate(too_long.value), BadInputError)
    env.close()
    with pytest.raises(lmdb.Error) as closed:
        env.begin()
    assert isinstance(translate_lmdb(closed.value), UnavailableError)
