"""The kit's HTTP boundary: every core kind round-trips error -> response -> client error,
foreign errors become core kinds, and the handlers, body limit and token roles answer in the
one shape."""

from __future__ import annotations

from typing import Annotated, Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

import platform_core
from platform_core import BadInputError, NotFoundError, OverBudgetError, PlatformError
from platform_core import errors as kinds
from platform_core.auth import Claims, TokenSigner
from platform_core.http import (
    BodyLimitMiddleware,
    CatchAllMiddleware,
    check_error_answer,
    check_owner,
    error_body,
    error_from_response,
    install_error_handlers,
    kind_of_status,
    register_translator,
    require_admin,
    require_token,
    status_of_kind,
    translate,
)
from platform_core.plugin import PluginError

CORE_KINDS: list[type[PlatformError]] = [
    PlatformError,
    BadInputError,
    kinds.UnauthorizedError,
    kinds.ForbiddenError,
    NotFoundError,
    kinds.ConflictError,
    OverBudgetError,
    kinds.CorruptDataError,
    kinds.UnavailableError,
    PluginError,
]

SECRET = "s" * 40


class Item(BaseModel):
    n: int


class LibraryError(Exception):
    """A foreign library's root error (as ``duckdb.Error`` is), known to no server yet."""


class LibraryBinderError(LibraryError):
    pass


def _app(max_bytes: int = 1000) -> FastAPI:
    app = FastAPI()
    app.state.signer = TokenSigner(SECRET)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
    app.add_middleware(CatchAllMiddleware)

    @app.get("/raise/{name}")
    def raise_kind(name: str) -> None:
        cls = {c.__name__: c for c in CORE_KINDS}[name]
        raise cls(f"the {name} happened, do X", where="here", n=3)

    @app.post("/items")
    def items(item: Item) -> dict[str, int]:
        return {"n": item.n}

    @app.get("/me")
    def me(claims: Annotated[Claims, Depends(require_token)]) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.get("/admin")
    def admin(claims: Annotated[Claims, Depends(require_admin)]) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.get("/owned/{owner}")
    def owned(owner: str, claims: Annotated[Claims, Depends(require_token)]) -> dict[str, str]:
        check_owner(claims, owner, f"the thing of {owner}")
        return {"ok": owner}

    @app.get("/arrow")
    def arrow() -> None:
        pc.cast(pa.array(["x"]), pa.int64())  # ArrowInvalid from Arrow itself

    @app.get("/library")
    def library() -> None:
        raise LibraryBinderError("column no_such_column not found")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    return app


@pytest.fixture(scope="module")
def client() -> Any:
    with TestClient(_app(), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("cls", CORE_KINDS, ids=lambda c: c.__name__)
def test_every_core_kind_round_trips_through_a_server(client: TestClient, cls: type) -> None:
    r = client.get(f"/raise/{cls.__name__}")
    assert r.status_code == cls.status
    body = r.json()
    assert body == {
        "error": f"the {cls.__name__} happened, do X",
        "type": cls.kind,
        "details": {"where": "here", "n": 3},
    }
    back = error_from_response(r.status_code, body, r.text)
    assert type(back) is cls
    assert (back.status, back.kind, back.message) == (cls.status, cls.kind, body["error"])
    assert back.details == {"where": "here", "n": 3}
    assert status_of_kind(cls.kind) == cls.status


def test_a_401_names_the_bearer_scheme(client: TestClient) -> None:
    assert client.get("/raise/UnauthorizedError").headers["www-authenticate"] == "Bearer"


def test_a_subclass_answers_as_its_core_kind_and_comes_back_as_core_class() -> None:
    exc = kinds.SettingsError("PLATFORM_X must be > 0, got -1")
    assert error_body(exc) == {"error": exc.message, "type": "bad_input"}
    assert type(error_from_response(400, error_body(exc))) is BadInputError


def test_a_client_can_prefer_its_own_class_for_a_kind() -> None:
    class Mine(BadInputError):
        pass

    back = error_from_response(400, {"error": "no", "type": "bad_input"}, kinds={"bad_input": Mine})
    assert type(back) is Mine


def test_an_answer_without_a_type_or_json_is_classed_by_its_status() -> None:
    assert type(error_from_response(404, {"error": "gone"})) is NotFoundError
    back = error_from_response(503, None, "<html>Bad gateway</html>")
    assert type(back) is kinds.UnavailableError
    assert back.message == "<html>Bad gateway</html>"
    assert type(error_from_response(418, None, "")) is PlatformError
    assert "418" in error_from_response(418, None, "").message


def test_unknown_route_wrong_method_and_validation_share_the_shape(client: TestClient) -> None:
    r = client.get("/nope")
    assert (r.status_code, r.json()) == (
        404,
        {"error": "not found: GET /nope", "type": "not_found"},
    )
    r = client.delete("/items")
    assert r.status_code == 405
    assert r.json()["type"] == kind_of_status(405) == "method_not_allowed"
    r = client.post("/items", json={"n": "many"})
    assert r.status_code == 400
    assert r.json()["type"] == "bad_input"
    assert r.json()["error"].startswith("body.n: ")


def test_bodies_over_the_limit_are_413_over_budget(client: TestClient) -> None:
    r = client.post("/items", content=b"x" * 2000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["type"] == "over_budget"
    assert "PLATFORM_MAX_BODY_BYTES" in r.json()["error"]

    def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 100

    r = client.post("/items", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["type"] == "over_budget"


def test_token_roles(client: TestClient) -> None:
    signer = TokenSigner(SECRET)
    user = {"Authorization": f"Bearer {signer.issue('ann')}"}
    admin = {"Authorization": f"Bearer {signer.issue('root', admin=True)}"}
    r = client.get("/me")
    assert (r.status_code, r.json()["type"]) == (401, "unauthorized")
    assert client.get("/me", headers=user).json() == {"sub": "ann"}
    assert client.get("/me", params={"auth": signer.issue("bob")}).json() == {"sub": "bob"}
    cluster = {"Authorization": f"Bearer {signer.cluster_token()}"}
    assert client.get("/me", headers=cluster).status_code == 401
    worker = {"Authorization": f"Bearer {signer.worker_token('tab')}"}
    assert client.get("/me", headers=worker).status_code == 401
    r = client.get("/admin", headers=user)
    assert (r.status_code, r.json()["type"]) == (403, "forbidden")
    assert client.get("/admin", headers=admin).status_code == 200
    assert client.get("/owned/ann", headers=user).status_code == 200
    r = client.get("/owned/bob", headers=user)
    assert (r.status_code, r.json()["type"]) == (403, "forbidden")
    assert "belongs to 'bob'" in r.json()["error"]
    assert client.get("/owned/bob", headers=admin).status_code == 200


def test_foreign_errors_become_core_kinds_not_bare_500s(client: TestClient) -> None:
    r = client.get("/arrow")
    assert (r.status_code, r.json()["type"]) == (400, "bad_input")
    assert "the data cannot be processed" in r.json()["error"]
    r = client.get("/boom")
    assert r.json() == {"error": "internal error (logged)", "type": "internal"}
    assert r.status_code == 500


def test_arrow_translations() -> None:
    for exc in (pa.ArrowInvalid("bad"), pa.ArrowTypeError("t"), pa.ArrowNotImplementedError("n")):
        assert type(translate(exc)) is BadInputError
    over = translate(pa.ArrowMemoryError("malloc of 1 TiB failed"))
    assert type(over) is OverBudgetError
    assert "malloc of 1 TiB failed" in over.message
    assert translate(ValueError("plain")) is None
    known = NotFoundError("x")
    assert translate(known) is known


def test_a_registered_translator_wins_for_its_type_and_subclasses(client: TestClient) -> None:
    # Before registration, the library's error is unknown: a 500 without its internals.
    r = client.get("/library")
    assert r.status_code == 500
    assert "no_such_column" not in r.text
    register_translator(LibraryError, lambda e: BadInputError(f"bad SQL: {e}"))
    r = client.get("/library")
    assert (r.status_code, r.json()["type"]) == (400, "bad_input")
    assert r.json()["error"] == "bad SQL: column no_such_column not found"


def test_core_does_not_load_starlette_for_clients() -> None:
    import subprocess
    import sys

    code = "import sys, platform_core, platform_core.http; print('starlette' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert platform_core.http.is_loopback("127.0.0.1")


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (404, ["x"], "JSON object"),
        (404, {"error": "x", "type": "not_found", "trace": "..."}, "unexpected keys"),
        (404, {"type": "not_found"}, "message"),
        (404, {"error": "x"}, "kind"),
        (422, {"error": "x", "type": "bad_input"}, "status 400 on every server"),
        (418, {"error": "x", "type": "http"}, "not a core kind"),
    ],
)
def test_the_answer_contract_is_checkable(status: int, body: Any, problem: str) -> None:
    with pytest.raises(BadInputError, match=problem):
        check_error_answer(status, body)
    assert check_error_answer(405, {"error": "x", "type": "method_not_allowed"})
