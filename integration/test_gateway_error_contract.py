"""The gateway process answers every error kind with the kit's one status and JSON shape.

A real ``platform up`` (with the installed plugins: lake, Elkyn, elytra) on a free port.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from platform_core import NotFoundError
from platform_core.auth import TokenSigner
from platform_core.http import check_error_answer
from platform_gateway.testing import free_port, wait_healthy

SECRET = "gateway-error-contract-" + "x" * 32
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    env = {
        **os.environ,
        "PLATFORM_HOME": str(home),
        "PLATFORM_SECRET": SECRET,
        "PLATFORM_MAX_BODY_BYTES": str(MAX_BODY),
        "LAKE_FLIGHT_PORT": str(free_port()),
    }
    env.pop("PLATFORM_ADMIN_PASSWORD", None)
    log = Path(home) / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "platform_gateway", "up", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def expect(response: httpx.Response, status: int, kind: str) -> str:
    """The answer is ``status`` with ``type`` ``kind``, in the contract every server keeps."""
    assert response.status_code == status, response.text
    assert check_error_answer(status, response.json()) == kind, response.text
    return str(response.json()["error"])


def _auth(admin: bool = False) -> dict[str, str]:
    token = TokenSigner(SECRET).issue("admin" if admin else "ann", admin=admin)
    return {"Authorization": f"Bearer {token}"}


def test_unknown_route_and_wrong_method(gateway: str) -> None:
    assert "GET /api/nope" in expect(httpx.get(f"{gateway}/api/nope"), 404, "not_found")
    expect(httpx.delete(f"{gateway}/health"), 405, "method_not_allowed")
    expect(httpx.get(f"{gateway}/api/lake/nope", headers=_auth()), 404, "not_found")


def test_validation_error_is_400_bad_input(gateway: str) -> None:
    r = httpx.post(f"{gateway}/api/login", json={"password": 5})
    assert "body.password" in expect(r, 400, "bad_input")
    r = httpx.post(f"{gateway}/api/lake/query", json={"sql": 5}, headers=_auth())
    assert "body.sql" in expect(r, 400, "bad_input")


def test_body_over_the_limit_is_413_over_budget(gateway: str) -> None:
    big = b"{" + b" " * (MAX_BODY + 10) + b"}"
    r = httpx.post(f"{gateway}/api/login", content=big)
    assert "PLATFORM_MAX_BODY_BYTES" in expect(r, 413, "over_budget")
    r = httpx.put(f"{gateway}/db/big.json", content=big, headers=_auth(admin=True))
    expect(r, 413, "over_budget")  # the gateway's limit holds for mounted apps too


def test_no_token_is_401_and_a_user_on_an_admin_route_is_403(gateway: str) -> None:
    r = httpx.get(f"{gateway}/api/lake/datasets")
    assert "needs a token" in expect(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    expect(
        httpx.get(f"{gateway}/api/lake/datasets", headers={"Authorization": "Bearer x"}),
        401,
        "unauthorized",
    )
    assert "admin" in expect(
        httpx.post(f"{gateway}/api/lake/gc", headers=_auth()), 403, "forbidden"
    )
    assert httpx.post(f"{gateway}/api/lake/gc", headers=_auth(admin=True)).status_code == 200


def test_a_missing_dataset_and_bad_sql_are_their_kinds_not_500(gateway: str) -> None:
    r = httpx.get(f"{gateway}/api/lake/datasets/nope", headers=_auth())
    expect(r, 404, "not_found")
    for sql in ("SELECT no_such_column", "SELEC 1", "SELECT * FROM no_such_table"):
        r = httpx.post(f"{gateway}/api/lake/query", json={"sql": sql}, headers=_auth())
        expect(r, 400, "bad_input")


def test_elytras_remote_client_raises_the_class_of_each_answer(gateway: str) -> None:
    from elytra.errors import PipelineError
    from elytra.remote import RemoteDriver

    driver = RemoteDriver(gateway, TokenSigner(SECRET).issue("ann"))
    try:
        with pytest.raises(PipelineError) as bad:
            driver.call("POST", "/api/jobs", json={"pipeline": "x"})
        assert bad.value.http_status == 400  # type: ignore[attr-defined]
        with pytest.raises(NotFoundError):
            driver.call("GET", "/api/jobs/01J0000000000000000000000Z")
    finally:
        driver.close()
