"""`elkyn serve --dev` cannot be driven by another site's page (issue 11, item 11).

A loopback peer is not enough: the Host header must name a loopback host (DNS rebinding sends
the attacker's name), and a browser's Origin / Sec-Fetch-Site must be this machine.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

REBOUND = {"Host": "attacker.example:9000"}
CROSS_SITE = {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"}


@pytest.mark.parametrize("headers", [REBOUND, CROSS_SITE, {"Origin": "null"}])
def test_owner_credential_and_minting_need_a_local_request(
    server: Any, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.put("/dev/x.json?auth=owner", json=1).status_code == 200  # local: admin
        r = c.get("/dev/x.json?auth=owner", headers=headers)
        assert r.status_code == 401, r.text  # 'owner' is no credential from elsewhere
        r = c.post("/auth/token", json={"uid": "u", "admin": True}, headers=headers)
        assert r.status_code in (403, 404), r.text
        assert "token" not in r.json()


def test_a_cross_site_text_plain_post_does_not_write(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post(
            "/dev/victim.json?auth=owner",
            content=b'"pwned"',
            headers={"Content-Type": "text/plain", **CROSS_SITE},
        )
        assert r.status_code == 403, r.text
        assert "cross-site" in r.json()["error"]
        assert c.get("/dev/victim.json?auth=owner").json() is None


def test_local_pages_and_plain_clients_keep_dev_features(server: Any) -> None:
    local_page = {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.put("/dev/y.json?auth=owner", json=2, headers=local_page).status_code == 200
        r = c.post("/auth/token", json={"uid": "u"}, headers={"Host": "[::1]:1"})
        assert r.status_code == 200
        assert r.json()["uid"] == "u"
