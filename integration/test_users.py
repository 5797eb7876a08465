"""Users of the store log in at a real `platform up` and get exactly their role (issue 13).

Users are added with the installed `platform user` command, as an operator would; the gateway
runs with ``PLATFORM_ADMIN_PASSWORD`` set, so dev mode is off.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from platform_core.auth import Claims, TokenSigner
from platform_gateway.testing import free_port, wait_healthy

ADMIN_PASSWORD = "the-admin-password"
START_SECONDS = 120.0
PLATFORM = Path(sys.executable).parent / "platform"
# Each `platform` command imports every plugin, and each test starts a platform: on a busy
# shared machine that takes minutes, beyond the suite's default per-test timeout.
pytestmark = pytest.mark.timeout(600)

USER_ROUTES = [("GET", "/api/lake/datasets"), ("GET", "/api/lake/nodes"), ("GET", "/api/jobs")]
ADMIN_ROUTES = [("GET", "/api/lake/nodes/self"), ("POST", "/api/lake/gc")]


def user_cli(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the installed `platform user ARGS --home HOME`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    return subprocess.run(
        [str(PLATFORM), "user", *args, "--home", str(home)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def add_user(home: Path, name: str, password: str, *flags: str) -> None:
    done = user_cli(home, "add", name, "--password-stdin", *flags, stdin=password + "\n")
    assert done.returncode == 0, done.stderr


def login(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/api/login", json=body, timeout=30)


def token_of(url: str, name: str, password: str) -> str:
    response = login(url, {"username": name, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def claims(home: Path, token: str) -> Claims:
    """The token's claims, verified with the platform's own secret."""
    return TokenSigner((home / "secret").read_bytes().strip()).verify(token)


def call(url: str, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, f"{url}{path}", headers=headers, timeout=30, **kwargs)


@pytest.fixture
def platform(start_platform):  # type: ignore[no-untyped-def]
    """A platform with an admin password (no dev mode)."""
    port = free_port()
    started = start_platform(port, env={"PLATFORM_ADMIN_PASSWORD": ADMIN_PASSWORD}, wait=False)
    started.url = f"http://127.0.0.1:{port}"
    try:  # a longer wait than the shared fixture's: a busy machine imports slowly
        wait_healthy(started.url, started.proc, timeout=START_SECONDS)
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"{exc}\n{started.output()}")
    return started


def test_store_users_get_exactly_their_role_on_real_routes(platform) -> None:  # type: ignore[no-untyped-def]
    url, home = platform.url, platform.home
    add_user(home, "alice", "alice-password")
    add_user(home, "bob", "bob-password")
    add_user(home, "root", "root-password", "--admin")

    alice = token_of(url, "alice", "alice-password")
    bob = token_of(url, "bob", "bob-password")
    root = token_of(url, "root", "root-password")
    assert (claims(home, alice).sub, claims(home, alice).admin) == ("alice", False)
    assert (claims(home, root).sub, claims(home, root).admin) == ("root", True)

    for method, path in USER_ROUTES:
        assert call(url, alice, method, path).status_code == 200, path
        assert call(url, root, method, path).status_code == 200, path
    for method, path in ADMIN_ROUTES:
        refused = call(url, alice, method, path)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["type"] == "forbidden"
        assert "'alice' is not an admin" in refused.json()["error"]
        assert call(url, root, method, path).status_code == 200, path

    # Owner: alice's upload is hers (and the admin's), not bob's.
    started = call(
        url, alice, "POST", "/api/lake/uploads", json={"name": "sales", "size": 10, "format": "csv"}
    )
    assert started.status_code == 201, started.text
    upload = f"/api/lake/uploads/{started.json()['id']}"
    assert call(url, bob, "GET", upload).status_code == 403
    assert call(url, alice, "GET", upload).status_code == 200
    assert call(url, root, "GET", upload).status_code == 200
    assert call(url, bob, "DELETE", upload).status_code == 403
    assert call(url, alice, "DELETE", upload).status_code == 200

    # The admin password still gives an admin token; dev mode is off, so `{}` does not.
    admin = login(url, {"password": ADMIN_PASSWORD})
    assert admin.status_code == 200, admin.text
    assert claims(home, admin.json()["token"]).admin is True
    assert login(url, {}).status_code == 401


def test_wrong_passwords_unknown_users_passwd_and_rm(platform) -> None:  # type: ignore[no-untyped-def]
    url, home = platform.url, platform.home
    add_user(home, "carol", "carol-password")

    wrong = login(url, {"username": "carol", "password": "not-her-password"})
    unknown = login(url, {"username": "nobody", "password": "carol-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error": "wrong user name or password",
            "type": "unauthorized",
        }
    )
    assert login(url, {"username": "carol", "password": ""}).status_code == 401

    # passwd takes effect at the next login, without a restart.
    changed = user_cli(home, "passwd", "carol", "--password-stdin", stdin="carol-new-password\n")
    assert changed.returncode == 0, changed.stderr
    assert login(url, {"username": "carol", "password": "carol-password"}).status_code == 401
    token_of(url, "carol", "carol-new-password")

    # rm: the user can no longer log in, with the same answer as any wrong login.
    removed = user_cli(home, "rm", "carol")
    assert removed.returncode == 0, removed.stderr
    gone = login(url, {"username": "carol", "password": "carol-new-password"})
    assert gone.status_code == 401
    assert gone.json() == wrong.json()
    assert user_cli(home, "rm", "carol").returncode == 4


def test_failed_logins_are_throttled_per_user(platform) -> None:  # type: ignore[no-untyped-def]
    url, home = platform.url, platform.home
    add_user(home, "dave", "dave-password")
    add_user(home, "erin", "erin-password")
    for _ in range(5):
        assert login(url, {"username": "dave", "password": "guess"}).status_code == 401
    # Now even the right password is refused, before it is checked, until the window passes.
    throttled = login(url, {"username": "dave", "password": "dave-password"})
    assert throttled.status_code == 429, throttled.text
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.json()["type"] == "too_many_requests"
    assert "too many failed logins" in throttled.json()["error"]
    # Another user on the same client is not locked out by dave's failures.
    token_of(url, "erin", "erin-password")


def test_a_damaged_store_is_one_clear_line_and_a_clean_500(platform) -> None:  # type: ignore[no-untyped-def]
    url, home = platform.url, platform.home
    add_user(home, "frank", "frank-password")
    (home / "users.json").write_text('{"version": 1, "users": {"frank": ')
    listed = user_cli(home, "ls")
    assert listed.returncode == 8  # corrupt_data
    assert "Traceback" not in listed.stderr
    (line,) = listed.stderr.strip().splitlines()
    assert line.startswith(f"error: the user store {home / 'users.json'} is damaged")
    assert "move it aside" in line
    refused = login(url, {"username": "frank", "password": "frank-password"})
    assert refused.status_code == 500
    assert refused.json()["type"] == "corrupt_data"
    assert "is damaged" in refused.json()["error"]


def test_the_store_is_private_and_ls_lists_users(tmp_path: Path) -> None:
    add_user(tmp_path, "gina", "gina-password", "--admin")
    add_user(tmp_path, "hal", "hal-password")
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600
    assert "hal-password" not in (tmp_path / "users.json").read_text()
    listed = user_cli(tmp_path, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["admin"]) for r in rows] == [("gina", True), ("hal", False)]
    assert all(r["created"].endswith("+00:00") for r in rows)
    table = user_cli(tmp_path, "ls")
    assert "gina" in table.stdout
    assert "hal" in table.stdout


def test_bad_input_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    add_user(tmp_path, "ivy", "ivy-password")
    cases = [
        (("add", "ivy", "--password-stdin"), "ivy-password\n", 5, "exists already"),
        (("add", "Ivy", "--password-stdin"), "ivy-password\n", 2, "bad user name 'Ivy'"),
        (("add", "jay", "--password-stdin"), "short\n", 2, "too short"),
        (("passwd", "nobody", "--password-stdin"), "long-enough\n", 4, "no user 'nobody'"),
    ]
    for args, stdin, code, message in cases:
        done = user_cli(tmp_path, *args, stdin=stdin)
        assert done.returncode == code, (args, done.stderr)
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: "), line
        assert message in line, line


def test_two_concurrent_adds_lose_nothing(tmp_path: Path) -> None:
    """Each `user add` hashes (slow), then rewrites the file under the lock: both are kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    names = ["kim", "lee"]
    procs = [
        subprocess.Popen(
            [str(PLATFORM), "user", "add", name, "--password-stdin", "--home", str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in names
    ]
    for proc, name in zip(procs, names, strict=True):
        _, err = proc.communicate(f"{name}-password\n", timeout=180)
        assert proc.returncode == 0, err
    rows = json.loads(user_cli(tmp_path, "ls", "--json").stdout)
    assert sorted(r["name"] for r in rows) == names
