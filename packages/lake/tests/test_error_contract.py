"""``lake node`` answers every error kind with the kit's one status and JSON shape, and
``lake.Client`` turns each answer back into its class; DuckDB's errors are core kinds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from lake import Client
from lake.api.duckdb_errors import translate_duckdb
from lake.errors import QueryMemoryError, QueryTimeoutError, SQLError
from lake.testing import NodeProcess, start_node, stop_node
from platform_core import (
    BadInputError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
)
from platform_core.auth import TokenSigner
from platform_core.http import check_error_answer, translate

from .conftest import SECRET

LIMIT = 1024 + (1 << 16)  # max(PLATFORM_MAX_BODY_BYTES, LAKE_MAX_PART_BYTES + 64 KiB)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    env = {
        "PLATFORM_SECRET": SECRET,
        "LAKE_FLIGHT_PORT": "0",
        "PLATFORM_MAX_BODY_BYTES": "4096",
        "LAKE_MAX_PART_BYTES": "1024",
    }
    proc = start_node(tmp_path_factory.mktemp("node"), env=env)
    yield proc
    stop_node(proc)


def _auth(admin: bool = False) -> dict[str, str]:
    token = TokenSigner(SECRET).issue("root" if admin else "ann", admin=admin)
    return {"Authorization": f"Bearer {token}"}


def expect(response: httpx.Response, status: int, kind: str) -> str:
    """The answer is ``status`` with ``type`` ``kind``, in the contract every server keeps."""
    assert response.status_code == status, response.text
    assert check_error_answer(status, response.json()) == kind, response.text
    return str(response.json()["error"])


def test_unknown_route_wrong_method_validation(node: NodeProcess) -> None:
    api = f"{node.url}/api/lake"
    assert "GET /nope" in expect(httpx.get(f"{node.url}/nope"), 404, "not_found")
    expect(httpx.delete(f"{node.url}/health"), 405, "method_not_allowed")
    expect(httpx.put(f"{api}/query", headers=_auth()), 405, "method_not_allowed")
    r = httpx.post(f"{api}/query", json={"sql": 5}, headers=_auth())
    assert "body.sql" in expect(r, 400, "bad_input")
    r = httpx.post(f"{api}/query", json={"sql": "SELECT 1", "timeout": -1}, headers=_auth())
    assert "timeout" in expect(r, 400, "bad_input")


def test_body_over_the_limit_is_413(node: NodeProcess) -> None:
    r = httpx.post(f"{node.url}/api/lake/query", content=b" " * (LIMIT + 1), headers=_auth())
    assert "LAKE_MAX_PART_BYTES" in expect(r, 413, "over_budget")


def test_401_without_token_and_403_for_a_user_on_an_admin_route(node: NodeProcess) -> None:
    r = httpx.get(f"{node.url}/api/lake/datasets")
    expect(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    expect(httpx.post(f"{node.url}/api/lake/gc", headers=_auth()), 403, "forbidden")
    expect(httpx.get(f"{node.url}/api/lake/nodes/self", headers=_auth()), 403, "forbidden")
    assert httpx.get(f"{node.url}/api/lake/nodes/self", headers=_auth(True)).status_code == 200
    cluster = {"Authorization": f"Bearer {TokenSigner(SECRET).cluster_token()}"}
    expect(httpx.get(f"{node.url}/api/lake/datasets", headers=cluster), 401, "unauthorized")
    expect(httpx.post(f"{node.url}/internal/lake/scrub", headers=_auth()), 401, "unauthorized")


def test_duckdb_errors_on_lake_sql_are_bad_input_not_500(node: NodeProcess, tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("id,v\n1,a\n2,b\n")
    with Client(node.url, TokenSigner(SECRET).issue("ann")) as client:
        client.upload(csv, "t", part_size=1024)
        for sql in ("SELECT nope FROM t", "SELECT sum(v) FROM t", "SELEC 1"):
            r = httpx.post(f"{node.url}/api/lake/query", json={"sql": sql}, headers=_auth())
            expect(r, 400, "bad_input")
        with pytest.raises(BadInputError, match="nope"):
            client.query("SELECT nope FROM t")


def test_the_client_raises_the_class_of_each_answer(node: NodeProcess) -> None:
    with Client(node.url) as anonymous, pytest.raises(UnauthorizedError, match="needs a token"):
        anonymous.datasets()
    with Client(node.url, TokenSigner(SECRET).issue("ann")) as client:
        with pytest.raises(NotFoundError) as missing:
            client.dataset("nope")
        assert missing.value.http_status == 404  # type: ignore[attr-defined]
        with pytest.raises(ForbiddenError):
            client._call("POST", "/gc")


def test_duckdb_translations() -> None:
    con = duckdb.connect()
    for sql in ("SELECT nope", "SELEC 1", "SELECT * FROM missing_table"):
        with pytest.raises(duckdb.Error) as raised:
            con.execute(sql)
        assert isinstance(translate(raised.value), SQLError), sql
    with pytest.raises(duckdb.IOException) as io:
        con.execute("SELECT * FROM read_csv('/nonexistent/x.csv')")
    assert isinstance(translate_duckdb(io.value), UnavailableError)
    assert isinstance(translate(duckdb.InterruptException("INTERRUPT")), QueryTimeoutError)
    oom = translate(duckdb.OutOfMemoryException("could not allocate 1 GiB"))
    assert isinstance(oom, QueryMemoryError)
    assert "LAKE_QUERY_MEMORY" in oom.message
    assert translate(duckdb.InternalException("bug")) is None
