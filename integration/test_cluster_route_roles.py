"""Every route of every platform of a cluster, asked with each kind of token.

The routes come from each platform's own ``/openapi.json`` (so a new route is checked the day
it ships) plus the undocumented node-to-node ones. For each: no token, a token signed with
another secret (user and cluster), a worker token, a user's, an admin's and a cluster token.
The rules: only ``PUBLIC`` answers without a token; a token of another secret is refused
everywhere else; a worker token only on the worker routes; user routes refuse cluster tokens
(but Elkyn's ``/db``, where a cluster token is the forwarding replica acting as admin); node-to-node
routes refuse user and admin tokens; ``ADMIN`` routes answer a plain user 403.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from platform_cluster import Cluster

from platform_core.auth import TokenSigner

PUBLIC = {
    ("GET", "/health"),
    ("GET", "/api/version"),
    ("GET", "/api/login"),  # which login the gateway offers (password or dev mode)
    ("POST", "/api/login"),
    ("GET", "/db/metrics"),  # counters for a Prometheus scrape, no data
    ("GET", "/db/health"),
    ("POST", "/db/auth/token"),  # answers 403 outside --dev: a refusal, not a token
}
ADMIN = {
    ("GET", "/api/platform/status"),
    ("POST", "/api/workers/tokens"),
    ("PUT", "/db/.settings/rules.json"),
    ("GET", "/db/.settings/rules.json"),
    ("GET", "/db/.replication/status"),  # and cluster tokens
    ("GET", "/api/lake/nodes/self"),
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("DELETE", "/api/users/{name}"),
    ("PUT", "/api/users/{name}/password"),
    ("PATCH", "/api/users/{name}"),
    ("POST", "/api/tokens/revoke"),
    ("GET", "/api/tokens/workers"),
    ("GET", "/api/audit"),
}
SELF_REVOKING = {("POST", "/api/logout")}
"""Routes that revoke the token that calls them: asked with a token of their own."""
NODE_TO_NODE = [
    ("GET", "/internal/platform/status"),
    ("POST", "/internal/lake/ping"),
    ("POST", "/internal/lake/ping-req"),
    ("GET", "/internal/lake/manifests"),
    ("POST", "/internal/lake/fault"),
    ("GET", "/internal/lake/chunks"),
    ("POST", "/internal/lake/scrub"),
    ("GET", "/internal/platform/ray"),  # 404 here: these platforms run no Ray head
    ("GET", "/db/.replication/log"),
    ("POST", "/db/.replication/fence"),  # 404 behind a gateway (no election there yet)
]
WORKER = {("GET", "/api/workers/chunks/{task_id}"), ("GET", "/api/workers/conformance")}
PARAMS = {
    "name": "role-probe-none",
    "job_id": "role-probe-none",
    "task_id": "role-probe-none",
    "upload_id": "role-probe-none",
    "query_id": "role-probe-none",
    "path": "role-probe/x",
    "part": "0",
    "version": "1",
}
DESTRUCTIVE_ROOT = re.compile(r"^/db/\.json$")


def _routes(url: str) -> list[tuple[str, str]]:
    doc = httpx.get(f"{url}/openapi.json", timeout=30).json()
    out = []
    for path, ops in doc["paths"].items():
        for method in ops:
            if method in ("get", "put", "post", "patch", "delete"):
                out.append((method.upper(), path))
    return out


def _ask(http: httpx.Client, method: str, path: str, headers: dict[str, str]) -> int:
    concrete = re.sub(r"\{(\w+)\}", lambda m: PARAMS.get(m.group(1), "role-probe"), path)
    body: Any = None
    if method not in ("GET", "DELETE"):  # an empty update writes nothing: rules would not run
        body = {"probe": 1} if path.startswith("/db/") else {}
    with http.stream(method, concrete, json=body, headers=headers) as r:
        return r.status_code  # not the body: a stream the token opened would never end


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize("index", [0, 1, 2])
def test_every_route_of_every_platform_checks_its_tokens(
    platform_cluster: Cluster, index: int
) -> None:
    url = platform_cluster.urls[index]
    signer, stranger = platform_cluster.signer, TokenSigner("another-secret-" + "q" * 30)
    tokens = {
        "none": {},
        "foreign user": _bearer(stranger.issue("admin", admin=True)),
        "foreign cluster": _bearer(stranger.cluster_token("evil")),
        "worker": _bearer(signer.worker_token("w1")),
        "user": _bearer(signer.issue("mallory")),
        "admin": _bearer(signer.issue("admin", admin=True)),
        "cluster": _bearer(signer.cluster_token("peer")),
    }
    routes = _routes(url)
    assert len(routes) > 40, routes
    wrong: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for method, path in routes + NODE_TO_NODE:
            node_route = (method, path) in NODE_TO_NODE
            for kind, headers in tokens.items():
                if (
                    kind in ("user", "admin", "cluster")
                    and DESTRUCTIVE_ROOT.match(path)
                    and method != "GET"
                ):
                    continue  # a real write to the whole database of the shared cluster
                if kind == "admin" and not node_route:
                    continue  # admins may do anything a user route offers
                if (method, path) in SELF_REVOKING and kind in ("user", "admin"):
                    headers = _bearer(signer.issue("admin" if kind == "admin" else "mallory"))
                status = _ask(http, method, path, headers)
                refused = status in (401, 403)
                if (method, path) in PUBLIC:
                    continue
                if kind in ("none", "foreign user", "foreign cluster"):
                    ok = status == 401
                elif kind == "worker":
                    ok = refused or (method, path) in WORKER
                elif kind == "cluster":
                    ok = not refused if (node_route or path.startswith("/db/")) else status == 401
                elif (kind in ("user", "admin") and node_route) or (
                    kind == "user" and (method, path) in WORKER
                ):
                    ok = status == 401
                elif kind == "user" and (method, path) in ADMIN:
                    ok = refused  # Elkyn says 401 (Firebase's "permission denied"), others 403
                elif path.startswith("/db/"):
                    ok = True  # Elkyn's rules decide (401 is Firebase's "permission denied")
                else:  # a user on a user route: anything but a refusal of the token
                    ok = status != 401
                if not ok:
                    wrong.append(f"{method} {path} with {kind} token: {status}")
    assert not wrong, "\n".join(wrong)
