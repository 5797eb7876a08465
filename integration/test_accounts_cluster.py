"""Accounts that end, on three real platforms made one (issue 26; issue 31 part 2).

Users are added to the first platform's home with the installed `platform user`, as an
operator does; their tokens come from `POST /api/login`. After each kind of revocation
(removal, new password, demotion, sign-out, `POST /api/tokens/revoke`) the old token must be
refused on every platform, at the gateway's routes and at Elkyn's `/db`; the time until the
last platform refuses is measured from the moment the command returned. The throttle is
driven from many loopback addresses (127.0.0.x) at once, across two platforms. User names
are unique to this module: the cluster is shared with other tests.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from figures import record
from platform_cluster import Cluster, user_cli, wait_for
from servers import command

pytestmark = pytest.mark.timeout(900)

DOCUMENTED_DELAY = 3.0
"""The README's worst case on an idle machine: the cache's refresh (1 s), the user store's
watch (0.5 s) and replication; the bound below allows a loaded machine more."""
FAIL_AFTER = 30.0
NAME_LIMIT = 10  # platform_gateway.throttle.NAME_LIMIT, restated: the test's own oracle
PAIR_LIMIT = 5
WINDOW_SECONDS = 60  # the cluster's PLATFORM_LOGIN_WINDOW_SECONDS (the default)


def add_user(cluster: Cluster, name: str, password: str, *flags: str) -> None:
    user_cli(cluster.homes[0], "add", name, "--password-stdin", *flags, stdin=password + "\n")


def login(url: str, name: str, password: str, source: str | None = None) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    with httpx.Client(transport=transport, timeout=60) as http:
        return http.post(f"{url}/api/login", json={"username": name, "password": password})


def token_of(url: str, name: str, password: str) -> str:
    r = login(url, name, password)
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def status(url: str, token: str, path: str = "/api/jobs") -> int:
    r = httpx.get(f"{url}{path}", headers={"authorization": f"Bearer {token}"}, timeout=30)
    return r.status_code


def accepted_everywhere(cluster: Cluster, token: str, path: str = "/api/jobs") -> None:
    for url in cluster.urls:
        assert status(url, token, path) == 200, (url, path)


def refused_everywhere(cluster: Cluster, token: str, since: float, what: str) -> float:
    """Seconds from ``since`` until every platform refuses ``token`` at the gateway and at
    Elkyn; fails after FAIL_AFTER."""
    pending = {(url, path) for url in cluster.urls for path in ("/api/jobs", "/db/datasets.json")}
    deadline = since + FAIL_AFTER
    while pending:
        for url, path in sorted(pending):
            if status(url, token, path) == 401:
                pending.discard((url, path))
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"{what}: still accepted after {FAIL_AFTER} s at {pending}")
        if pending:
            time.sleep(0.05)
    return time.monotonic() - since


def test_every_kind_of_revocation_reaches_every_platform(platform_cluster: Cluster) -> None:
    c = platform_cluster
    add_user(c, "rv-ann", "ann-password")
    add_user(c, "rv-ben", "ben-password")
    add_user(c, "rv-cat", "cat-password", "--admin")
    add_user(c, "rv-dan", "dan-password")
    add_user(c, "rv-eve", "eve-password")
    delays: dict[str, float] = {}

    # A removed user.
    ann = token_of(c.urls[0], "rv-ann", "ann-password")
    accepted_everywhere(c, ann)
    accepted_everywhere(c, ann, "/db/datasets.json")
    user_cli(c.homes[0], "rm", "rv-ann")
    delays["user rm"] = refused_everywhere(c, ann, time.monotonic(), "removed user")
    assert login(c.urls[0], "rv-ann", "ann-password").status_code == 401

    # A new password: the old token is refused, a new login works everywhere.
    ben = token_of(c.urls[0], "rv-ben", "ben-password")
    accepted_everywhere(c, ben)
    user_cli(c.homes[0], "passwd", "rv-ben", "--password-stdin", stdin="ben-new-password\n")
    delays["user passwd"] = refused_everywhere(c, ben, time.monotonic(), "old password's token")
    accepted_everywhere(c, token_of(c.urls[0], "rv-ben", "ben-new-password"))

    # A demoted admin: the admin token is refused; a new login is a plain user's.
    cat = token_of(c.urls[0], "rv-cat", "cat-password")
    for url in c.urls:
        assert status(url, cat, "/api/platform/status") == 200
    user_cli(c.homes[0], "set", "rv-cat", "--no-admin")
    delays["user set --no-admin"] = refused_everywhere(c, cat, time.monotonic(), "demoted admin")
    cat2 = token_of(c.urls[0], "rv-cat", "cat-password")
    for url in c.urls:
        assert status(url, cat2, "/api/platform/status") == 403
        assert status(url, cat2) == 200

    # Sign-out on one platform ends the session (its refreshed token too) on all three.
    dan = token_of(c.urls[0], "rv-dan", "dan-password")
    r = httpx.post(
        f"{c.urls[1]}/api/login/refresh", headers={"authorization": f"Bearer {dan}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    dan2 = r.json()["token"]
    assert dan2 != dan
    accepted_everywhere(c, dan2)
    out = httpx.post(
        f"{c.urls[2]}/api/logout", headers={"authorization": f"Bearer {dan2}"}, timeout=30
    )
    assert out.status_code == 200, out.text
    since = time.monotonic()
    delays["sign-out"] = refused_everywhere(c, dan2, since, "signed-out token")
    refused_everywhere(c, dan, since, "the session's first token")
    assert (
        httpx.post(
            f"{c.urls[0]}/api/login/refresh",
            headers={"authorization": f"Bearer {dan}"},
            timeout=30,
        ).status_code
        == 401
    )

    # An admin revokes every token of a user through another platform.
    eve = token_of(c.urls[0], "rv-eve", "eve-password")
    accepted_everywhere(c, eve)
    r = httpx.post(
        f"{c.urls[1]}/api/tokens/revoke", json={"user": "rv-eve"}, headers=c.admin(), timeout=30
    )
    assert r.status_code == 200, r.text
    delays["token revoke --user"] = refused_everywhere(c, eve, time.monotonic(), "revoked user")
    accepted_everywhere(c, token_of(c.urls[0], "rv-eve", "eve-password"))

    # A plain user may not revoke anyone's tokens, nor list users.
    r = httpx.post(
        f"{c.urls[0]}/api/tokens/revoke", json={"user": "rv-ben"}, headers=c.user(), timeout=30
    )
    assert r.status_code == 403

    worst = max(delays.values())
    print("revocation delays (s):", {k: round(v, 2) for k, v in delays.items()})
    record(
        "accounts",
        "revocation-delay",
        "revocation → refused on all 3 platforms (gateway and /db), worst of " + ", ".join(delays),
        round(worst, 2),
        unit="s",
        target=f"<= {DOCUMENTED_DELAY:g} s",
        met=worst <= DOCUMENTED_DELAY,
    )


def _early_in_a_window(window: float = WINDOW_SECONDS, within: float = 15.0) -> None:
    """Sleep until the throttle's current window is at most ``within`` seconds old.

    A burst that straddles a boundary is the sliding-window counter's approximation (the
    previous window's count weighs by the share of it still recent, so as it ages out a few
    more attempts are admitted; the unit tests pin that case). This test is about one burst
    counted across platforms, so it starts where the whole burst falls in one window: in
    CI a burst on a loaded machine lasted long enough to cross a boundary and got 11 checks.
    """
    into = time.time() % window
    if into > within:
        time.sleep(window - into + 0.5)


def _burst(urls: list[str], name: str, sources: list[str]) -> list[int]:
    """One wrong login per source address, all at once, spread over ``urls``."""

    def one(i: int) -> int:
        return login(urls[i % len(urls)], name, "wrong-password!", sources[i]).status_code

    with ThreadPoolExecutor(len(sources)) as pool:
        return list(pool.map(one, range(len(sources))))


def test_a_burst_across_two_platforms_gets_at_most_the_limits_checks(
    platform_cluster: Cluster,
) -> None:
    c = platform_cluster
    add_user(c, "th-amy", "amy-password")
    # Amy signs in from her usual address first: it stays open to her during the attack.
    assert login(c.urls[0], "th-amy", "amy-password", "127.0.1.200").status_code == 200

    health: list[float] = []

    def timed_health() -> None:
        for _ in range(10):
            t = time.monotonic()
            assert httpx.get(f"{c.urls[1]}/health", timeout=30).status_code == 200
            health.append(time.monotonic() - t)

    _early_in_a_window()
    with ThreadPoolExecutor(1) as side:
        probe = side.submit(timed_health)
        codes = _burst(c.urls[1:], "th-amy", [f"127.0.1.{i}" for i in range(1, 31)])
        probe.result()
    checked, throttled = codes.count(401), codes.count(429)
    print(f"burst of 30: {checked} checked (401), {throttled} throttled (429); /health", health)
    assert checked + throttled == 30, codes
    assert 1 <= checked <= NAME_LIMIT, codes
    retry = login(c.urls[2], "th-amy", "wrong-password!", "127.0.1.99")
    assert retry.status_code == 429
    assert int(retry.headers["retry-after"]) >= 1
    # Her own address still signs her in (at the platform whose store holds her), with the
    # right password: never a lockout.
    assert login(c.urls[0], "th-amy", "amy-password", "127.0.1.200").status_code == 200
    record(
        "accounts",
        "burst-checks",
        "30 concurrent wrong logins for one name from 30 addresses over 2 platforms: checked",
        checked,
        unit="checks",
        target=f"<= {NAME_LIMIT}",
        met=checked <= NAME_LIMIT,
    )
    record(
        "accounts",
        "health-during-burst",
        "GET /health during the burst (slowest of 10)",
        round(max(health), 3),
        unit="s",
        target="(reported)",
    )


def test_two_hundred_guesses_from_one_address_leave_the_user_her_login(
    platform_cluster: Cluster,
) -> None:
    c = platform_cluster
    add_user(c, "th-bea", "bea-password")
    codes: list[int] = []
    for _ in range(200):
        codes.append(login(c.urls[1], "th-bea", "wrong-password!", "127.0.2.1").status_code)
    assert codes.count(401) == PAIR_LIMIT, codes[:10]
    assert codes.count(429) == 200 - PAIR_LIMIT
    # The counts are the cluster's: the same address is refused on the other platforms too.
    for url in (c.urls[0], c.urls[2]):
        assert login(url, "th-bea", "bea-password", "127.0.2.1").status_code == 429
    # Another address, which never failed, signs her in at once (at the platform whose store
    # holds her).
    assert login(c.urls[0], "th-bea", "bea-password", "127.0.2.2").status_code == 200


def test_admin_actions_are_audited_and_the_trail_cannot_be_written(
    platform_cluster: Cluster,
) -> None:
    c = platform_cluster
    admin = c.admin()
    r = httpx.post(
        f"{c.urls[0]}/api/users",
        json={"name": "au-fay", "password": "fay-password", "admin": False},
        headers=admin,
        timeout=60,
    )
    assert r.status_code == 201, r.text
    assert (
        httpx.patch(
            f"{c.urls[0]}/api/users/au-fay", json={"admin": True}, headers=admin, timeout=30
        ).status_code
        == 200
    )
    assert (
        httpx.post(
            f"{c.urls[1]}/api/tokens/revoke", json={"user": "au-fay"}, headers=admin, timeout=30
        ).status_code
        == 200
    )
    rules = httpx.get(f"{c.urls[0]}/db/.settings/rules.json", headers=admin, timeout=30)
    assert rules.status_code == 200
    put = httpx.put(
        f"{c.urls[0]}/db/.settings/rules.json", json=rules.json(), headers=admin, timeout=30
    )
    assert put.status_code == 200, put.text
    assert (
        httpx.delete(f"{c.urls[0]}/api/users/au-fay", headers=admin, timeout=30).status_code == 204
    )

    def trail() -> list[dict[str, Any]]:
        r = httpx.get(f"{c.urls[2]}/api/audit?limit=200", headers=admin, timeout=30)
        r.raise_for_status()
        got: list[dict[str, Any]] = r.json()
        return got

    wanted = {
        ("user.add", "au-fay"),
        ("user.role", "au-fay"),
        ("token.revoke", "user:au-fay"),
        ("rules.set", "/db/.settings/rules.json"),
        ("user.rm", "au-fay"),
    }
    records = wait_for(
        lambda: (t := trail()) and wanted <= {(x["what"], x["target"]) for x in t} and t,
        "the audit records on the third platform",
    )
    mine = next(x for x in records if x["what"] == "user.add" and x["target"] == "au-fay")
    assert mine["who"] == "admin"
    assert mine["from"] == "127.0.0.1"
    assert mine["at"] > 0

    # Nobody writes or deletes the trail (or the token state) over REST, an admin included.
    for url in c.urls:
        for who in (admin, c.user()):
            for method, path in (
                ("PUT", "/db/audit.json"),
                ("DELETE", "/db/audit.json"),
                ("PATCH", "/db/audit.json"),
                ("POST", "/db/audit.json"),
                ("DELETE", f"/db/audit/{mine['id']}.json"),
                ("PUT", "/db/tokens/users/mallory.json"),
                ("DELETE", "/db/throttle.json"),
            ):
                body = None if method == "DELETE" else {"forged": 1}
                r = httpx.request(method, f"{url}{path}", json=body, headers=who, timeout=30)
                assert r.status_code in (401, 403), (url, method, path, r.status_code, r.text)
        # Admins read it; users do not.
        assert httpx.get(f"{url}/db/audit.json", headers=admin, timeout=30).status_code == 200
        assert httpx.get(f"{url}/db/audit.json", headers=c.user(), timeout=30).status_code in (
            401,
            403,
        )
        assert httpx.get(f"{url}/api/audit", headers=c.user(), timeout=30).status_code == 403
    assert trail()[0]["id"] >= mine["id"]  # nothing was removed


def test_throttle_counts_survive_a_restart(tmp_path: Path) -> None:
    """Counted in the platform's database, not its memory: a restart forgets nothing."""
    from servers import launch

    home = tmp_path / "home"
    env = {"PLATFORM_ADMIN_PASSWORD": "the-admin-password", "PLATFORM_LOGIN_WINDOW_SECONDS": "3600"}
    args = [str(command("platform")), "up", "--port", "0", "--home", str(home)]

    def admin_login(url: str, password: str) -> int:
        transport = httpx.HTTPTransport(local_address="127.0.3.1")
        with httpx.Client(transport=transport, timeout=60) as http:
            return http.post(f"{url}/api/login", json={"password": password}).status_code

    first = launch(args, tmp_path / "run1", env)
    try:
        codes = [admin_login(first.url, "wrong") for _ in range(PAIR_LIMIT + 1)]
    finally:
        first.stop()
    assert codes == [401] * PAIR_LIMIT + [429]
    second = launch(args, tmp_path / "run2", env)
    try:
        # Still refused after the restart, the right password included (from that address).
        assert admin_login(second.url, "the-admin-password") == 429
        r = httpx.post(
            f"{second.url}/api/login", json={"password": "the-admin-password"}, timeout=60
        )
        assert r.status_code == 200  # from 127.0.0.1, which never failed
    finally:
        second.stop()
