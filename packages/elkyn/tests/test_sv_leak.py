"""A server-value write answers only what the caller may read (issue 11, item 13)."""

from __future__ import annotations

from typing import Any

import httpx

RULES = {
    "rules": {
        "counter": {".read": False, ".write": "auth != null"},
        "open": {".read": "auth != null", ".write": "auth != null"},
    }
}


def test_increment_of_a_write_only_counter_does_not_answer_its_total(
    launch: Any, tmp_path: Any
) -> None:
    srv = launch(tmp_path / "h", "--memory")
    admin = {"Authorization": f"Bearer {srv.signer.issue('ops', admin=True)}"}
    user = {"Authorization": f"Bearer {srv.token('u1')}"}
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        assert c.put("/.settings/rules.json", json=RULES, headers=admin).status_code == 200
        assert c.put("/counter/n.json", json=41_000, headers=admin).status_code == 200
        inc = {".sv": {"increment": 1}}
        r = c.put("/counter/n.json", json=inc, headers=user)
        assert r.status_code == 200, r.text
        assert r.json() == inc  # not 41001: the caller may not read the counter
        r = c.patch("/counter.json", json={"n": inc, "m": 5}, headers=user)
        assert r.status_code == 200
        assert r.json()["n"] == inc
        r = c.put("/counter.json", json={"n": inc}, headers=user)  # nested server value
        assert r.json() == {"n": inc}
        assert c.get("/counter/n.json", headers=admin).json() == 41_003  # three increments
        # where the caller may read, the resolved value is the answer (Firebase semantics)
        assert c.put("/open/n.json", json=7, headers=user).json() == 7
        assert c.put("/open/n.json", json=inc, headers=user).json() == 8
        assert c.patch("/open.json", json={"n": inc}, headers=user).json() == {"n": 9}
        ts = c.put("/open/t.json", json={".sv": "timestamp"}, headers=user).json()
        assert isinstance(ts, int)
        assert ts > 1_600_000_000_000
