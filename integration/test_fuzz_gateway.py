"""Schemathesis against the gateway's OpenAPI, on the installed `platform up`: no 5xx.

Every operation in ``/openapi.json`` (the gateway's own and the lake's) is fuzzed twice: with
a plain user's token (`platform token`) and with an admin token (dev-mode `POST /api/login`).
Before each pass a dataset and an open upload are created, and ``_fuzz_hooks`` mixes their
names into the generated requests so the fuzzer gets past "not found". Elkyn's ``/db`` is in
the document but skipped here (its streams run until closed); its own fuzzer lives in
``packages/elkyn/tests``.

``FUZZ_SECONDS`` (default 60) is the budget of the whole run, shared by the two passes;
``nox -s fuzz`` runs it for longer. ``FUZZ_SEED`` replays a run (each pass prints its seed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from lake import Client
from platform_gateway.testing import free_port

StartPlatform = Callable[..., Any]

HERE = Path(__file__).parent
FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "60"))
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(FUZZ_SECONDS + 180)]


def _user_token(home: Path, sub: str) -> str:
    """A non-admin token, minted the way a user does: `platform token --home`."""
    command = Path(sys.executable).parent / "platform"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    out = subprocess.run(
        [str(command), "token", "--sub", sub, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return out.stdout.strip()


def _seed(url: str, admin: str, tag: str, tmp_path: Path) -> dict[str, list[str]]:
    """A committed dataset and an open upload; returns the live values for the hooks."""
    name = f"seed_{tag}"
    csv = tmp_path / f"{name}.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 7 AS grp, i * 0.25 AS amount, 'txt' || i AS s, "
        f"DATE '2024-01-01' + i::INT AS d FROM range(2000) t(i)) TO '{csv}' (HEADER)"
    )
    with Client(url, admin) as client:
        assert client.upload(csv, name)["state"] == "committed"
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post(
            "/api/lake/uploads",
            json={"name": f"open_{tag}", "size": 1000, "filename": "x.csv"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert r.status_code == 201, r.text
        upload_id = r.json()["id"]
    sql = [
        f"SELECT * FROM {name}",
        f"SELECT grp, count(*), sum(amount) FROM {name} GROUP BY grp",
        f"SELECT * FROM {name} WHERE s = 'txt1' ORDER BY id LIMIT 5",
        f"SELECT d, avg(amount) FROM {name} GROUP BY ALL ORDER BY ALL",
        f"DESCRIBE {name}",
        "SHOW TABLES",
        f"EXPLAIN SELECT * FROM {name}",
    ]
    return {"name": [name, f"open_{tag}"], "upload_id": [upload_id], "sql": sql}


def _schemathesis(
    url: str, token: str, known: dict[str, list[str]], seconds: int, report: Path
) -> subprocess.CompletedProcess[str]:
    """`st run` over the gateway's OpenAPI with ``token``, for ``seconds``."""
    env = dict(os.environ)
    env["SCHEMATHESIS_HOOKS"] = "_fuzz_hooks"
    env["FUZZ_KNOWN"] = json.dumps(known)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    args = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        # The gateway's throw-away test plugin (on the fixture's PYTHONPATH) fails on purpose;
        # Elkyn's /db has its own fuzzer.
        "--exclude-path-regex",
        "^/(api/testplug|db)/",
        "--max-time",
        str(seconds),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    if os.environ.get("FUZZ_SEED"):
        args += ["--seed", os.environ["FUZZ_SEED"]]
    return subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=seconds + 120, cwd=report.parent
    )


def _tracebacks(log: str) -> list[str]:
    """Each distinct exception in the gateway's log: its message and its innermost frame in
    our code (else the innermost frame)."""
    lines = log.splitlines()
    found = set()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            frames = [ln.strip() for ln in lines[i:j] if ln.strip().startswith("File ")]
            ours = [f for f in frames if "site-packages" not in f and "/lib/python" not in f]
            where = (ours or frames or ["?"])[-1]
            found.add(f"{lines[j] if j < len(lines) else '?'}\n    at {where}")
    return sorted(found)


def test_gateway_openapi_gives_no_5xx(start_platform: StartPlatform, tmp_path: Path) -> None:
    platform = start_platform(free_port(), env={"LAKE_FLIGHT_PORT": "0"})
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        admin = http.post("/api/login", json={"sub": "fuzz-admin"}).json()["token"]
        user = _user_token(platform.home, "fuzz-user")
        me = http.get("/api/lake/datasets", headers={"Authorization": f"Bearer {user}"})
        assert me.status_code == 200, me.text  # the user token is accepted
    per_pass = max(1, FUZZ_SECONDS // 2)
    problems = []
    for role, token in (("user", user), ("admin", admin)):
        known = _seed(platform.url, admin, role, tmp_path)
        report = tmp_path / f"st-{role}.json"
        run = _schemathesis(platform.url, token, known, per_pass, report)
        summary = json.loads(report.read_text()) if report.exists() else {}
        generated = (summary.get("test_cases") or {}).get("generated", 0)
        if run.returncode != 0 or not generated:
            problems.append(f"--- {role} token: st exited {run.returncode} ---\n{run.stdout}")
    if problems:
        log = platform.stderr.read_text()
        pytest.fail(
            "\n".join(problems)
            + "\n--- exceptions in the gateway's log ---\n"
            + "\n".join(_tracebacks(log))
        )
