"""Elkyn mounted by the gateway at /db: REST, rules, streaming and the LMDB under the home."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from platform_gateway.testing import free_port

StartPlatform = Callable[..., Any]


def test_gateway_mounts_elkyn_at_db(start_platform: StartPlatform) -> None:
    platform = start_platform(free_port())
    with httpx.Client(base_url=platform.url, timeout=10) as http:
        token = http.post("/api/login", json={"sub": "ops"}).json()["token"]  # dev: an admin
        admin = {"Authorization": f"Bearer {token}"}

        r = http.put("/db/jobs/1.json", json={"state": "running", "progress": 0.5}, headers=admin)
        assert r.status_code == 200
        assert r.json() == {"state": "running", "progress": 0.5}
        assert http.get("/db/jobs/1/state.json", headers=admin).json() == "running"
        r = http.post("/db/jobs.json", json={"state": "queued"}, headers=admin)
        assert len(r.json()["name"]) == 20

        # no token: auth == null for the rules (default deny), in Firebase's error shape
        anon = http.get("/db/jobs/1.json")
        assert anon.status_code == 401
        body = anon.json()  # Firebase's error, and how to authenticate beside it
        assert body.pop("hint").startswith("this request carries no credentials"), body
        assert body == {"error": "Permission denied"}
        assert anon.headers["www-authenticate"] == "Bearer"
        bad = http.put("/db/jobs/1.json", content=b"{nope", headers=admin)
        assert bad.status_code == 400
        assert bad.json() == {"error": "Invalid data; couldn't parse JSON object, array, or value."}

        rules = {"rules": {"jobs": {"$id": {".read": "auth != null"}}}}
        assert http.put("/db/.settings/rules.json", json=rules, headers=admin).status_code == 200
        user = http.post("/api/login", json={"sub": "ann"}).json()["token"]
        assert http.get("/db/jobs/1.json", params={"auth": user}).status_code == 200

        # streaming through the gateway: snapshot first, then the change
        with http.stream(
            "GET", "/db/jobs/1.json", headers={**admin, "Accept": "text/event-stream"}
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            events: list[tuple[str, Any]] = []
            kind = ""
            for line in lines:
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind in ("put", "patch"):
                    events.append((kind, json.loads(line[6:])))
                    if len(events) == 1:
                        http.patch("/db/jobs/1.json", json={"progress": 1.0}, headers=admin)
                    if len(events) == 2:
                        break
        assert events == [
            ("put", {"path": "/", "data": {"state": "running", "progress": 0.5}}),
            ("patch", {"path": "/", "data": {"progress": 1.0}}),
        ]
    assert platform.stop(signal.SIGTERM) == 0
    assert (platform.home / "elkyn" / "data.mdb").is_file()


def test_platform_cli_has_elkyn(platform_command: Path) -> None:
    out = subprocess.run(
        [str(platform_command), "elkyn", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "serve" in out.stdout
    out = subprocess.run(
        [str(Path(sys.executable).parent / "elkyn"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    assert out.stdout.startswith("elkyn ")
