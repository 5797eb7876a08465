"""Node-to-node HTTP routes (``/internal/lake``): ping, indirect ping, manifests, fault hook.

Mounted as its own app, both by ``lake node`` and by the gateway, because these routes take
a cluster token (``platform_core.auth.verify_cluster``) and nothing else, while the user
routes under ``/api/lake`` take user tokens only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from platform_core import BadInputError, PlatformError, UnauthorizedError, UnavailableError
from platform_core.auth import TokenSigner, bearer_token
from platform_core.http import platform_error_response

from ..cluster.membership import ALIVE, DEAD, SUSPECT, Member
from ..errors import InvalidNameError, TooLargeError
from ..names import check_dataset_name

if TYPE_CHECKING:
    from ..node import LakeNode

__all__ = ["check_gossip", "check_member", "make_peer_app"]

MAX_BODY = 16 << 20

_STATES = (ALIVE, SUSPECT, DEAD)
_NODE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ADDR = re.compile(r"[A-Za-z0-9.:\[\]_-]{1,300}")
_FLIGHT = re.compile(r"(grpc\+tls://)?[A-Za-z0-9.:\[\]_-]{1,300}")
"""A Flight address: ``host:port``, or ``grpc+tls://host:port`` for a TLS cluster."""


def _bad(why: str) -> BadInputError:
    return BadInputError(f"malformed gossip: {why}")


def check_member(d: object, where: str = "member") -> Member:
    """A member as another node describes it, checked field by field (no coercion)."""
    if not isinstance(d, Mapping):
        raise _bad(f"{where} must be an object, got {type(d).__name__}")
    for key in ("id", "http", "flight", "incarnation"):
        if key not in d:
            raise _bad(f"{where} has no {key!r}")
    if not isinstance(d["id"], str) or not _NODE_ID.fullmatch(d["id"]):
        raise _bad(f"{where}.id {d['id']!r} is not a node id")
    for key, form in (("http", _ADDR), ("flight", _FLIGHT)):
        if not isinstance(d[key], str) or not form.fullmatch(d[key]):
            raise _bad(f"{where}.{key} {d[key]!r} is not a host:port")
    inc = d["incarnation"]
    if not isinstance(inc, int) or isinstance(inc, bool) or inc < 0:
        raise _bad(f"{where}.incarnation {inc!r} is not a whole number >= 0")
    state = d.get("state", "alive")
    if state not in _STATES:
        raise _bad(f"{where}.state {state!r} is not one of {list(_STATES)}")
    return Member.from_dict(d)


def check_gossip(body: object) -> dict[str, Any]:
    """A ping's body: ``from`` (a member), ``members`` (a list of them), ``heads`` (name->version)."""
    if not isinstance(body, dict):
        raise _bad(f"the body must be a JSON object, got {type(body).__name__}")
    if "from" not in body:
        raise _bad("the body has no 'from' (the sending member)")
    check_member(body["from"], "from")
    members = body.get("members", [])
    if not isinstance(members, list):
        raise _bad("'members' must be a list")
    for i, m in enumerate(members):
        check_member(m, f"members[{i}]")
    heads = body.get("heads") or {}
    if not isinstance(heads, dict):
        raise _bad("'heads' must be an object of dataset name to version")
    for name, version in heads.items():
        try:
            check_dataset_name(name)
        except InvalidNameError as exc:
            raise _bad(f"heads: {exc.message}") from None
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise _bad(f"heads[{name!r}] = {version!r} is not a version number")
    return body


async def _json_body(request: Request) -> Any:
    """The JSON body, read up to ``MAX_BODY`` bytes (413 past it, 400 if it is not JSON)."""
    raw = bytearray()
    async for piece in request.stream():
        raw += piece
        if len(raw) > MAX_BODY:
            raise TooLargeError(f"node-to-node body over {MAX_BODY} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:  # also UnicodeDecodeError
        raise _bad(f"the body is not JSON ({exc})") from None


def _cluster_guard(holder: Callable[[], LakeNode], signer: TokenSigner) -> Callable[[Request], Any]:
    """What each peer route calls first: the request's cluster token checked, then the node's
    cluster (401 without a valid cluster token, 503 on a node that is not clustered)."""

    def cluster(request: Request) -> Any:
        token = bearer_token(request.headers.get("authorization"))
        if not token:
            raise UnauthorizedError("node-to-node routes need a cluster token")
        signer.verify_cluster(token)
        node = holder()
        if node.cluster is None:
            raise UnavailableError("this node is not part of a cluster")
        return node.cluster

    return cluster


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PlatformError)
    return platform_error_response(exc)


def make_peer_app(holder: Callable[[], LakeNode], signer: TokenSigner) -> Starlette:
    """The node-to-node routes as their own app: each takes a cluster token and nothing else."""
    cluster = _cluster_guard(holder, signer)

    async def ping(request: Request) -> JSONResponse:
        c = cluster(request)
        data = check_gossip(await _json_body(request))
        try:
            return JSONResponse(await run_in_threadpool(c.receive, data))
        except ConnectionRefusedError:
            return platform_error_response(UnavailableError("link dropped"))

    async def ping_req(request: Request) -> JSONResponse:
        c = cluster(request)
        data = await _json_body(request)
        if not isinstance(data, dict) or "target" not in data:
            raise _bad("ping-req needs an object with a 'target' member")
        target = check_member(data["target"], "target")
        ok = await run_in_threadpool(c.ping_req, target)
        return JSONResponse({"ok": ok})

    async def manifests(request: Request) -> JSONResponse:
        c = cluster(request)
        out = []
        for name in request.query_params.getlist("name"):
            m = c.catalog.head(check_dataset_name(name))
            if m is not None:
                out.append(m.to_dict())
        return JSONResponse(out)

    async def fault(request: Request) -> JSONResponse:
        c = cluster(request)
        data = await _json_body(request)
        drop = data.get("drop", []) if isinstance(data, dict) else None
        if not isinstance(drop, list) or not all(isinstance(x, str) for x in drop):
            raise BadInputError("the fault hook needs {'drop': [node ids]}")
        c.drop_links(set(drop))
        return JSONResponse({"dropped": sorted(c.dropped)})

    async def chunks(request: Request) -> JSONResponse:
        c = cluster(request)
        return JSONResponse(c.chunks.all())

    async def scrub(request: Request) -> JSONResponse:
        c = cluster(request)
        return JSONResponse(await run_in_threadpool(c.scrub_once))

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["POST"]),
            Route("/ping-req", ping_req, methods=["POST"]),
            Route("/manifests", manifests),
            Route("/fault", fault, methods=["POST"]),
            Route("/chunks", chunks),
            Route("/scrub", scrub, methods=["POST"]),
        ],
        exception_handlers={PlatformError: _on_error},
    )
