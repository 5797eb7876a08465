"""``POST /api/login`` with users of the store, in process (the real-route checks are in
``integration/test_users.py``)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from platform_core import PlatformSettings, UserStore
from platform_core.auth import TokenSigner


def test_a_user_logs_in_in_dev_mode_too_and_gets_their_role(
    client: TestClient, settings: PlatformSettings
) -> None:
    UserStore.of(settings).add("alice", "alice-password")
    answer = client.post("/api/login", json={"username": "alice", "password": "alice-password"})
    assert answer.status_code == 200, answer.text
    signer: TokenSigner = client.app.state.signer  # type: ignore[attr-defined]
    claims = signer.verify(answer.json()["token"])
    assert (claims.sub, claims.admin) == ("alice", False)
    headers = {"Authorization": f"Bearer {answer.json()['token']}"}
    assert client.get("/api/testplug/secret", headers=headers).json() == {
        "sub": "alice",
        "admin": False,
    }
    # Dev mode's `{}` is still an admin token.
    dev = signer.verify(client.post("/api/login", json={}).json()["token"])
    assert (dev.sub, dev.admin) == ("admin", True)


def test_a_user_cannot_choose_the_tokens_subject(client: TestClient) -> None:
    answer = client.post(
        "/api/login", json={"username": "alice", "password": "alice-password", "sub": "root"}
    )
    assert answer.status_code in (400, 422)
    assert answer.json()["type"] == "bad_input"
    assert "'sub' is for admin-password logins" in answer.json()["error"]


def test_the_openapi_document_describes_user_login(client: TestClient) -> None:
    login = client.get("/openapi.json").json()["paths"]["/api/login"]["post"]
    assert {"401", "429"} <= set(login["responses"])
