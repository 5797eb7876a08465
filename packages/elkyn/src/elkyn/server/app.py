"""Elkyn's HTTP server: a lean ASGI app speaking Firebase's REST and streaming protocol.

Routes (relative to where it is served: ``/`` for ``elkyn serve``, ``/db`` in the gateway):
``/<path>.json`` (GET PUT POST PATCH DELETE, streaming with ``Accept: text/event-stream``),
``/<path>/.watch`` (the source's streaming alias), ``/.settings/rules.json`` (admin only),
``/auth/token`` (``--dev`` only), ``/.replication/log`` (cluster token),
``/.replication/status`` (cluster or admin token), ``/health``,
``/metrics``, and its API docs (``/.openapi.json``, ``/docs``). It is plain ASGI so a write
costs no framework routing or validation on top.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from platform_core import (
    ForbiddenError,
    NotFoundError,
    PlatformError,
    UnauthorizedError,
    auth,
    is_local_request,
    origin_is_local,
)
from platform_core.auth import Claims, TokenSigner, bearer_token
from platform_core.http import error_body, kind_of_status, translate

from ..errors import (
    BodyTimeoutError,
    ElkynError,
    InvalidDataError,
    PermissionDeniedError,
    PreconditionFailedError,
    StoreClosedError,
)
from ..paths import Path, parse_path
from ..query import Query
from ..rules.locate import locate_rule
from ..settings import ElkynSettings
from ..storage import ReadTooLarge
from ..store import ADMIN, ANONYMOUS, Caller, Store, caller_of_claims, etag_of
from . import foreign as _foreign  # noqa: F401  (registers LMDB's translations)
from .http import (
    Receive,
    Request,
    Send,
    dumps,
    firebase_status,
    json_body,
    respond,
    respond_json,
)
from .metrics import Metrics
from .openapi import docs_response, openapi_document, openapi_paths
from .sse import Streams, stream

if TYPE_CHECKING:
    from ..fencing import Fence
    from ..forward import Forwarder
    from ..replica import Follower

__all__ = ["ElkynApp"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]

_QUERY_PARAMS = ("startAt", "endAt", "equalTo", "startAfter", "endBefore")
_LIMITS = ("limitToFirst", "limitToLast")
# A read of at most this many records runs on the event loop (tens of microseconds); past it,
# the read starts again on a worker thread so that a big subtree never stalls the loop.
INLINE_READ_RECORDS = 256

_WRITE_SIZE = {
    "tiny": 1 << 20,
    "small": 10 << 20,
    "medium": 64 << 20,
    "large": 256 << 20,
    "unlimited": None,
}
_TOKEN_CACHE = 10_000
FIRST_PRIMARY_WAIT = 5.0
"""Seconds a write to a server that has not yet learnt its election's primary waits for it
(the first election takes a few heartbeats; a write still unplaced after this is a 503).
Anonymous writes do not wait (their rules are the primary's to check)."""
FIRST_PRIMARY_WAITERS = 64
"""Writes held at once for the first election; more are refused at once (503): each holds
its body, up to ``max_write_bytes``."""
_TIMEOUT = re.compile(r"^(\d{1,7})(ms|s|min)$")
_MAX_TIMEOUT_MS = 15 * 60 * 1000


def _parse_json_param(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        shown = text if len(text) <= 100 else text[:100] + "..."
        raise InvalidDataError(
            f"{name} must be a valid JSON value (strings in double quotes), not {shown!r}"
        ) from None


def parse_query(params: dict[str, str]) -> Query | None:
    """The Firebase query in the URL parameters, or ``None`` (checked as Firebase does)."""
    present = [p for p in (*_QUERY_PARAMS, *_LIMITS) if p in params]
    if "orderBy" not in params:
        if present:
            raise InvalidDataError(
                "orderBy must be defined when other query parameters are defined"
            )
        return None
    order_by = _parse_json_param("orderBy", params["orderBy"])
    if not isinstance(order_by, str):
        raise InvalidDataError("orderBy must be a valid JSON encoded path")
    kw: dict[str, Any] = {}
    for name, attr in zip(
        _QUERY_PARAMS, ("start_at", "end_at", "equal_to", "start_after", "end_before"), strict=True
    ):
        if name in params:
            value = _parse_json_param(name, params[name])
            if isinstance(value, (dict, list)):
                raise InvalidDataError(f"{name}: constraint index field must be a JSON primitive")
            kw[attr] = value
            kw["has_" + attr] = True
    for name, attr in zip(_LIMITS, ("limit_to_first", "limit_to_last"), strict=True):
        if name in params:
            value = _parse_json_param(name, params[name])
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidDataError(f"{name} must be a non-negative integer")
            kw[attr] = value
    return Query(order_by, **kw)


def _timeout_seconds(text: str | None) -> float | None:
    if text is None:
        return None
    m = _TIMEOUT.match(text)
    if m is None:
        raise InvalidDataError(f"timeout must look like 300ms, 3s or 1min, not {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    ms = n if unit == "ms" else n * 1000 if unit == "s" else n * 60_000
    if ms > _MAX_TIMEOUT_MS:
        raise InvalidDataError("timeout can be at most 15min")
    return ms / 1000


class ElkynApp:
    """The ASGI app. ``store`` may be set later (the gateway's lifespan opens it)."""

    def __init__(
        self,
        settings: ElkynSettings,
        store: Store | None = None,
        signer: TokenSigner | None = None,
        *,
        own_lifespan: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.signer = signer
        self.own_lifespan = own_lifespan
        self.metrics = Metrics()
        self.replication: Any = None  # set by elkyn.replica when serving the log
        self.follower: Follower | None = None  # set by elkyn.forward.follow on a replica
        self.forwarder: Forwarder | None = None  # a replica's writes go to the primary
        self._learning = 0  # writes held for the first election (``_learn_the_primary``)
        self.fence: Fence | None = None  # in an election cluster: term, fence, sync acks
        self.election: Any = None  # elkyn.election.Election, for the status
        self.streams = Streams(self)
        self._tokens: dict[str, tuple[Caller, Claims | None]] = {}
        self._resume_secret: bytes | None = None

    def resume_secret(self) -> bytes:
        """The platform secret, which keys the SSE resume ids (see ``resume.ResumeIds``)."""
        if self._resume_secret is None:
            self._resume_secret = auth.load_secret(self.settings)
        return self._resume_secret

    # ---- ASGI entry ----
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        firebase = _firebase_route(scope.get("path", ""))
        try:
            req = Request.from_scope(scope, receive)
        except PlatformError as exc:  # a path that is not UTF-8, say: nothing was read yet
            await _respond_error(send, exc, firebase)
            return
        started = [False]

        async def tracked(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self._handle(req, tracked)
        except Exception as exc:
            known = translate(exc)
            if known is not None and known.status == 503:  # expected: no primary for now
                log.warning("%s %s answered 503: %s", req.method, req.path, known.message)
            elif known is None or known.status >= 500:
                log.error("internal error on %s %s", req.method, req.path, exc_info=exc)
            if started[0]:
                return
            if known is None:
                body = (
                    {"error": "Internal server error."}
                    if firebase
                    else {"error": "internal error (logged)", "type": "internal"}
                )
                await respond_json(tracked, 500, body)
                return
            hint = self._auth_hint(req) if firebase_status(known) == 401 else None
            await _respond_error(tracked, known, firebase, hint)

    def _auth_hint(self, req: Request) -> str | None:
        """How to authenticate, for a request refused that carried no credentials at all (a
        plain ``curl``): Firebase's body stays ``{"error": "Permission denied"}``, this goes
        beside it as ``hint``. ``None`` when credentials were sent (they were judged)."""
        sent = req.params.get("auth") or req.params.get("access_token")
        if sent is not None or req.headers.get("authorization"):
            return None
        how = (
            "send a token: 'Authorization: Bearer <token>' or '?auth=<token>' "
            "('elkyn token <uid>' or 'platform token' prints one)"
        )
        if self._dev(req):
            how += (
                "; in --dev, from this machine: '?auth=owner' acts as the admin, and "
                'POST /auth/token with {"uid": "<user id>"} returns a user\'s token'
            )
        return f"this request carries no credentials and the rules refuse it: {how}"

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.own_lifespan and self.election is not None:
                    await asyncio.to_thread(self.election.close)
                if self.own_lifespan:
                    await self.stop_replica()
                if self.own_lifespan and self.store is not None:
                    await asyncio.to_thread(self.store.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def stop_replica(self) -> None:
        """Stop following and forwarding (a primary: nothing to do)."""
        if self.forwarder is not None:
            await self.forwarder.aclose()
        if self.follower is not None:
            await asyncio.to_thread(self.follower.close)

    def current_store(self) -> Store:
        """The open store (what SSE and replication use), or 500 before it is open."""
        if self.store is None:
            raise StoreClosedError("the database is not open yet; retry in a moment")
        return self.store

    # ---- auth ----
    def _dev(self, req: Request) -> bool:
        """Dev-only features (minting, ``owner``, overrides) need --dev and a local request.

        ``check_dev`` refuses to bind --dev beyond loopback, but a proxy or another mount can
        still forward remote clients, and a page from another site can reach a loopback port
        (DNS rebinding, cross-site forms): the peer address, the ``Host`` header and the
        browser's ``Origin``/``Sec-Fetch-Site`` must all say this machine (the gateway's rule).
        """
        return self.settings.dev and _local(req)

    def _refuse_cross_site_write(self, req: Request, method: str) -> None:
        """In --dev, a write from another site's page is refused (it could act as ``owner``)."""
        if self.settings.dev and method != "GET" and not _local_origin(req):
            raise ForbiddenError(
                f"cross-site {method} refused: this --dev server takes writes only from pages "
                f"on this machine (Origin {req.headers.get('origin')!r})"
            )

    def _caller(self, req: Request) -> Caller:
        token = req.params.get("auth") or req.params.get("access_token")
        if token is None:
            token = bearer_token(req.headers.get("authorization"))
        dev = self._dev(req)
        if token is None:
            caller = ANONYMOUS
        elif dev and token == "owner":  # the Firebase emulator's admin credential
            caller = ADMIN
        else:
            caller = self._verified(token)
        override = req.params.get("auth_variable_override")
        if override is not None:
            if not dev:
                raise InvalidDataError(
                    "auth_variable_override is honoured only with --dev, from a loopback client "
                    "that names a loopback Host"
                )
            auth = _parse_json_param("auth_variable_override", override)
            if auth is not None and not isinstance(auth, dict):
                raise InvalidDataError("auth_variable_override must be a JSON object or null")
            caller = Caller(admin=False, auth=auth)
        return caller

    def _verified(self, token: str) -> Caller:
        """The caller of a token; a verified token is remembered until it expires.

        Verifying an HS256 JWT costs more than the rest of a small request; clients send the
        same token for an hour, so each distinct token is verified once. A remembered token
        is used only before its ``exp`` (after that it is verified again, which refuses it).
        """
        hit = self._tokens.get(token)
        if hit is not None and hit[0].exp is not None and time.time() < hit[0].exp:
            if hit[1] is not None:
                auth.check_not_revoked(hit[1])  # revoked since: refused like a bad token
            return hit[0]
        if self.signer is None:
            raise UnauthorizedError("this server has no token secret; it cannot check tokens")
        claims: Claims | None
        try:
            claims = self.signer.verify(token)
        except PlatformError as exc:
            caller, claims = self._cluster_caller(token, exc), None
        else:
            caller = caller_of_claims(claims.sub, claims.admin, claims.exp, dict(claims.extra))
            caller = dataclasses.replace(caller, claims=claims)  # streams re-check revocation
        if len(self._tokens) >= _TOKEN_CACHE:
            self._tokens.pop(next(iter(self._tokens)))  # drop the oldest
        self._tokens[token] = (caller, claims)
        return caller

    def _cluster_caller(self, token: str, refused: PlatformError) -> Caller:
        """A cluster token is the admin: other nodes' plugins write through a replica's
        forwarding writer with one (anyone holding the platform secret can mint admin tokens
        anyway). Any other token keeps the user verification's refusal."""
        assert self.signer is not None
        try:
            claims = self.signer.verify_cluster(token)
        except PlatformError:
            raise refused from None
        return Caller(admin=True, auth=None, exp=claims.exp)

    def openapi_fragment(self) -> dict[str, Any]:
        """This app's routes for a host's OpenAPI document (the gateway's, under ``/db``)."""
        return {"paths": openapi_paths(), "components": openapi_document()["components"]}

    # ---- routing ----
    async def _handle(self, req: Request, send: Send) -> None:
        path = req.path
        docs = docs_response(path) if req.method == "GET" else None
        if docs is not None:  # /.openapi.json, /docs and its assets
            await respond(send, 200, docs[0], docs[1])
            return
        if path in _PLATFORM_METHODS and req.method not in _PLATFORM_METHODS[path]:
            await _method_not_allowed(send, req, _PLATFORM_METHODS[path])
            return
        if path == "/health":
            await respond_json(send, 200, {"status": "ok"})
            return
        if path == "/metrics":
            body = self.metrics.render(self.current_store()).encode()
            await respond(send, 200, body, b"text/plain; version=0.0.4; charset=utf-8")
            return
        if path == "/auth/token":
            self._refuse_cross_site_write(req, req.method)
            await self._mint(req, send)
            return
        if path == "/.settings/rules.json":
            self._refuse_cross_site_write(req, req.method)
            await self._rules(req, send)
            return
        if path == "/.replication/log":
            if self.replication is None:
                raise NotFoundError("replication is not served here")
            await self.replication(self, req, send)
            return
        if path == "/.replication/fence":
            from ..replica import serve_fence

            await serve_fence(self, req, send)
            return
        if path == "/.replication/members":
            from ..membership import serve_members

            await serve_members(self, req, send)
            return
        if path == "/.replication/status":
            from ..status import serve_status

            await serve_status(self, req, send)
            return
        method = req.method
        override = req.headers.get("x-http-method-override")
        if method == "POST" and override:
            method = override.upper()
            if method not in ("GET", "PUT", "PATCH", "DELETE", "POST"):
                raise InvalidDataError(f"X-HTTP-Method-Override {override!r} is not a method")
        self._refuse_cross_site_write(req, method)
        watch = path.endswith("/.watch")
        if watch:
            db_path = path[: -len("/.watch")] or "/"
        elif path.endswith(".json"):
            db_path = path[: -len(".json")] or "/"
        else:
            raise NotFoundError(f"Not found: {path} (database paths end in .json)")
        keys = parse_path(db_path)
        caller = self._caller(req)
        if "ns" in req.params and not self.settings.dev:
            raise InvalidDataError("the ns parameter is accepted only with --dev (emulator)")
        self.metrics.requests[method] = self.metrics.requests.get(method, 0) + 1
        if method == "GET" and (watch or "text/event-stream" in req.headers.get("accept", "")):
            if "orderBy" in req.params or "shallow" in req.params:
                raise InvalidDataError(
                    "streaming a query or a shallow read is not supported; stream the location "
                    "and filter on the client"
                )
            await stream(self, req, send, keys, caller)
            return
        silent = req.params.get("print") == "silent"
        pretty = req.params.get("print") == "pretty"
        if method == "GET":
            await self._get(req, send, keys, caller, silent, pretty)
        elif method in ("PUT", "POST", "PATCH", "DELETE"):
            await self._write(req, send, method, keys, caller, silent, pretty)
        else:
            await respond_json(send, 405, {"error": f"Method {method} is not supported."})

    async def _get(
        self, req: Request, send: Send, db_path: Path, caller: Caller, silent: bool, pretty: bool
    ) -> None:
        store = self.current_store()
        shallow = req.params.get("shallow") == "true"
        query = parse_query(req.params)
        if shallow and query is not None:
            raise InvalidDataError("Mixing 'shallow' and querying parameters is not supported")
        want_etag = req.headers.get("x-firebase-etag", "").lower() == "true"
        none_match = req.headers.get("if-none-match")
        timeout = _timeout_seconds(req.params.get("timeout"))

        def read() -> tuple[Any, str | None]:
            if want_etag or none_match is not None:
                if shallow or query is not None:
                    raise InvalidDataError("ETags cannot be combined with shallow or queries")
                value, etag = store.get_with_etag(db_path, caller=caller)
                return value, etag
            if req.params.get("format") == "export":
                return store.export(db_path, caller=caller), None
            return store.get(
                db_path, caller=caller, shallow=shallow, query=query, require_index=True
            ), None

        def read_encoded() -> tuple[bytes, str | None]:
            value, etag = read()
            return (b"" if silent else dumps(value, pretty)), etag

        plain = not (want_etag or none_match is not None or shallow or query is not None)
        if plain and req.params.get("format") != "export":
            # Most reads are a few records: read them here, bounded, since a hand-off to a
            # thread costs more than the read; a bigger subtree goes to a thread below.
            try:
                value = store.get(db_path, caller=caller, max_records=INLINE_READ_RECORDS)
            except ReadTooLarge:
                pass
            else:
                if silent:
                    await respond(send, 204, b"")
                else:
                    await respond(send, 200, dumps(value, pretty))
                return
        # Read and encode on a worker thread: a large subtree takes seconds, and the loop
        # must go on serving /health, streams and small reads meanwhile.
        try:
            body, etag = await asyncio.wait_for(asyncio.to_thread(read_encoded), timeout)
        except TimeoutError:
            raise InvalidDataError(
                f"the read took longer than the timeout ({req.params['timeout']})"
            ) from None
        headers = [(b"etag", etag.encode())] if etag is not None and want_etag else []
        if none_match is not None and etag == none_match:
            await respond(send, 304, b"", headers=[(b"etag", none_match.encode())])
            return
        if silent:
            await respond(send, 204, b"", headers=headers)
            return
        await respond(send, 200, body, headers=headers)

    async def _write(
        self,
        req: Request,
        send: Send,
        method: str,
        db_path: Path,
        caller: Caller,
        silent: bool,
        pretty: bool,
    ) -> None:
        limit = self.settings.max_write_bytes
        size_name = req.params.get("writeSizeLimit")
        if size_name is not None:
            if size_name not in _WRITE_SIZE:
                raise InvalidDataError(
                    f"writeSizeLimit must be one of {', '.join(_WRITE_SIZE)}, not {size_name!r}"
                )
            limit = min(limit, _WRITE_SIZE[size_name] or limit)
        if_match = req.headers.get("if-match")
        want_etag = req.headers.get("x-firebase-etag", "").lower() == "true"
        body = (
            await req.body(limit, self.settings.body_timeout_seconds) if method != "DELETE" else b""
        )
        if caller.admin or caller.auth is not None:  # not anonymous: a write worth holding
            await self._learn_the_primary()
        if self.forwarder is not None:  # a replica: the primary checks the token and rules
            await self.forwarder.forward(req, send, method, body)
            return
        if self.fence is not None:  # an election cluster: only the term's unfenced primary
            self.fence.check_write(req.headers.get("x-elkyn-term"))
        store = self.current_store()
        headers: list[tuple[bytes, bytes]] = []
        if method == "PUT":
            value = json_body(body)
            result = await store.aset(db_path, value, caller=caller, if_match=if_match)
            if want_etag or if_match is not None:
                headers.append((b"etag", etag_of(result).encode()))
        elif method == "POST":
            value = json_body(body)
            result = {"name": await store.apush(db_path, value, caller=caller)}
        elif method == "PATCH":
            value = json_body(body)
            if not isinstance(value, dict):
                raise InvalidDataError(
                    "Invalid data; a PATCH body must be a JSON object of children to update"
                )
            result = await store.aupdate(db_path, value, caller=caller)
        else:
            await store.adelete(db_path, caller=caller, if_match=if_match)
            result = None
            if want_etag or if_match is not None:
                headers.append((b"etag", etag_of(None).encode()))
        committed = _commit_headers(store)
        if self.fence is not None:  # semi-synchronous: answer once enough replicas have it
            await self.fence.acknowledged(int(committed[0][1]))
            committed.append((b"x-elkyn-term", str(self.fence.term).encode()))
        headers.extend(committed)
        if silent:
            await respond(send, 204, b"", headers=headers)
            return
        await respond_json(send, 200, result, pretty=pretty, headers=headers)

    # ---- rules and tokens ----
    async def _learn_the_primary(self) -> None:
        """In an election cluster, a server that has not yet learnt the primary (it has just
        started or joined) waits for the election, at most ``FIRST_PRIMARY_WAIT`` seconds,
        so a first write right after ``platform up --join`` is taken rather than refused."""
        fence = self.fence
        if fence is None or fence.term != 0 or fence.primary:
            return
        if self._learning >= FIRST_PRIMARY_WAITERS:
            return  # enough held already (each holds its body): refused at once
        self._learning += 1
        try:
            deadline = time.monotonic() + FIRST_PRIMARY_WAIT
            while self.forwarder is None and not fence.serving() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            self._learning -= 1

    async def _rules(self, req: Request, send: Send) -> None:
        if req.method == "PUT":
            # only the admin sets rules (the primary would refuse anyone else as well): said
            # at once, before a wait for the election or a forward
            if not self._caller(req).admin:
                raise PermissionDeniedError()
            await self._learn_the_primary()
        if req.method == "PUT" and self.forwarder is not None:
            # a replica takes its rules from the primary, which decides who may set them
            await self.forwarder.forward(
                req, send, "PUT", await req.body(1 << 20, self.settings.body_timeout_seconds)
            )
            return
        caller = self._caller(req)
        if not caller.admin:
            raise PermissionDeniedError()
        store = self.current_store()
        if req.method == "GET":
            # which top-level keys the platform owns (their rules replace the document's), so
            # an editor can say so; the body stays Firebase's {"rules": ...}
            reserved = [(b"x-elkyn-reserved", ",".join(store.reserved).encode())]
            await respond_json(send, 200, store.get_rules(), pretty=True, headers=reserved)
        elif req.method == "PUT":
            if self.fence is not None:
                self.fence.check_write(req.headers.get("x-elkyn-term"))
            text = _rules_text(await req.body(1 << 20, self.settings.body_timeout_seconds))
            document = _rules_json(text)
            try:
                await asyncio.to_thread(store.set_rules, document)
            except InvalidDataError as exc:
                _add_position(exc, text)
                raise
            committed = _commit_headers(store)
            if self.fence is not None:  # rules are log entries too: acknowledged alike
                await self.fence.acknowledged(int(committed[0][1]))
            await respond_json(send, 200, {"status": "ok"}, headers=committed)
        else:
            await respond_json(send, 405, {"error": "rules support GET and PUT"})

    async def _mint(self, req: Request, send: Send) -> None:
        if not self._dev(req):
            raise NotFoundError(
                "Not found: /auth/token exists only with --dev, for requests from "
                "this machine (loopback client and Host header, no other site's Origin)"
            )
        if req.method != "POST":
            await _method_not_allowed(send, req, ("POST",))
            return
        if self.signer is None:
            raise ElkynError("no token secret")
        raw = await req.body(64 * 1024, self.settings.body_timeout_seconds)
        body = json_body(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise InvalidDataError('POST /auth/token takes {"uid": "...", ...claims}')
        uid = body.pop("uid", None)
        if not isinstance(uid, str) or not uid:
            raise InvalidDataError('POST /auth/token needs {"uid": "<user id>"}')
        admin = body.pop("admin", False) is True
        ttl = body.pop("ttl_seconds", 3600)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise InvalidDataError("ttl_seconds must be a positive integer")
        token = self.signer.issue(uid, admin=admin, ttl_seconds=ttl, extra=body)
        await respond_json(send, 200, {"token": token, "uid": uid, "expires_in": ttl})


def _commit_headers(store: Store) -> list[tuple[bytes, bytes]]:
    """``X-Elkyn-Seq`` (a sequence number at or after the write's commit) and the database
    it counts in: a replica that forwarded the write waits until it has applied that much."""
    return [
        (b"x-elkyn-seq", str(store.last_seq()).encode()),
        (b"x-elkyn-database", store.database_id.encode()),
    ]


_PLATFORM_METHODS = {"/health": ("GET", "HEAD"), "/metrics": ("GET",)}


def _firebase_route(path: str) -> bool:
    """Firebase's REST routes (``*.json``, ``*/.watch``): Firebase's statuses and bodies.

    Every other route (``/health``, ``/metrics``, ``/auth/token``, ``/.replication/log``, an
    unknown path) is a platform route: the kit's statuses and ``{"error", "type"}`` bodies.
    """
    return path.endswith(".json") or path.endswith("/.watch")


async def _respond_error(
    send: Send, exc: PlatformError, firebase: bool, hint: str | None = None
) -> None:
    """``exc`` as a Firebase route answers it, or as every platform server does; ``hint``
    (how to authenticate) goes beside Firebase's ``error``, with ``WWW-Authenticate``."""
    # a body that stalled: the rest of it may still come, so the connection ends here
    close = [(b"connection", b"close")] if isinstance(exc, BodyTimeoutError) else []
    if not firebase:
        headers = [(b"www-authenticate", b"Bearer")] if isinstance(exc, UnauthorizedError) else []
        await respond_json(send, exc.status, error_body(exc), headers=headers + close)
    elif isinstance(exc, PreconditionFailedError):  # Firebase: the current value and its ETag
        etag = [(b"etag", exc.etag.encode())]
        await respond_json(send, firebase_status(exc), exc.value, headers=etag)
    else:  # Firebase's {"error"}, plus what locates the error (a rule's line) when known
        body: dict[str, Any] = {"error": exc.message}
        if exc.details:
            body["details"] = exc.details
        if hint is None:
            await respond_json(send, firebase_status(exc), body, headers=close)
            return
        body["hint"] = hint
        headers = [(b"www-authenticate", b"Bearer")]
        await respond_json(send, firebase_status(exc), body, headers=headers + close)


async def _method_not_allowed(send: Send, req: Request, allowed: tuple[str, ...]) -> None:
    """405 in the kit's shape and words, with ``Allow``."""
    allow = ", ".join(allowed)
    body = {
        "error": f"method not allowed: {req.method} {req.path} (allowed: {allow})",
        "type": kind_of_status(405),
    }
    await respond_json(send, 405, body, headers=[(b"allow", allow.encode())])


def _local(req: Request) -> bool:
    h = req.headers
    return is_local_request(req.client, h.get("host"), h.get("origin"), h.get("sec-fetch-site"))


def _local_origin(req: Request) -> bool:
    return origin_is_local(req.headers.get("origin"), req.headers.get("sec-fetch-site"))


def _rules_text(raw: bytes) -> str:
    """A rules document without its ``//`` comments (Firebase's console allows them).

    A comment runs to the end of its line and the newline stays, so every line and every
    column before a comment keep their place: positions found in this text are the user's.
    """
    text = raw.decode("utf-8", errors="replace")
    return re.sub(r'("(?:[^"\\]|\\.)*")|//[^\n]*', lambda m: m.group(1) or "", text)


def _rules_json(text: str) -> Any:
    """The parsed rules document; a JSON syntax error says its line and column (``details``)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidDataError(
            f"rules: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except (ValueError, RecursionError):
        pass  # json_body answers these in Firebase's words
    return json_body(text.encode())


def _add_position(exc: InvalidDataError, text: str) -> None:
    """Add the line and column of the rule ``exc`` names (``details.rule``) in ``text``."""
    rule = exc.details.get("rule")
    if not isinstance(rule, str):
        return
    offset = exc.details.get("offset")
    found = locate_rule(text, rule, offset if isinstance(offset, int) else None)
    if found is not None:
        exc.details["line"], exc.details["column"] = found
