"""Elkyn's HTTP surface as an OpenAPI 3.1 document, written as data.

The server is plain ASGI (no framework to derive a schema from), so its Firebase-compatible
REST, streaming, rules and service routes are described here by hand. ``elkyn serve`` serves
it at ``/.openapi.json`` (``/openapi.json`` would shadow the database key ``openapi``) with
Swagger UI at ``/docs``; the gateway merges it into its own document under ``/db``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from platform_core.apidocs import asset, swagger_page

__all__ = ["DOCS_PATH", "OPENAPI_PATH", "docs_response", "openapi_document", "openapi_paths"]

OPENAPI_PATH = "/.openapi.json"
DOCS_PATH = "/docs"

_ERROR = {
    "type": "object",
    "description": "Firebase's error body; ``type`` names the platform's error kind.",
    "properties": {
        "error": {"type": "string", "description": "What was wrong and what to do."},
        "type": {"type": "string", "description": "The error kind, e.g. bad_input."},
        "details": {
            "type": "object",
            "description": "What locates the error, when known (a refused rules document: "
            "rule, offset, line, column).",
        },
    },
    "required": ["error"],
}
_ANY = {"description": "Any JSON value (null when nothing is stored there)."}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema if schema is not None else _ANY}},
    }


def _err(description: str) -> dict[str, Any]:
    return _json(description, {"$ref": "#/components/schemas/ElkynError"})


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _h(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


_AUTH = _q("auth", "A platform token (or send 'Authorization: Bearer <token>'); none: anonymous.")
_PRINT = _q(
    "print",
    "pretty: indented JSON; silent: answer 204 with no body.",
    {"type": "string", "enum": ["pretty", "silent"]},
)
_READ_PARAMS = [
    _AUTH,
    _PRINT,
    _q(
        "shallow",
        "true: children's values are replaced by true (one level only).",
        {"enum": ["true"]},
    ),
    _q("orderBy", 'A JSON string: "$key", "$value", "$priority" or a child path like "age".'),
    _q("startAt", "JSON value: the first value (of orderBy) to include."),
    _q("endAt", "JSON value: the last value to include."),
    _q("equalTo", "JSON value: only children whose value equals it."),
    _q("startAfter", "JSON value: children after it."),
    _q("endBefore", "JSON value: children before it."),
    _q("limitToFirst", "The first N children in the order.", {"type": "integer", "minimum": 0}),
    _q("limitToLast", "The last N children in the order.", {"type": "integer", "minimum": 0}),
    _q("format", "export: include priorities (.priority/.value).", {"enum": ["export"]}),
    _q("timeout", "Give up a read after this long: 300ms, 3s, 1min (at most 15min)."),
    _h("X-Firebase-ETag", "true: answer with the value's ETag header."),
    _h("If-None-Match", "An ETag: 304 with no body when the value still has it."),
    _h("Last-Event-ID", "On a stream: the id of the last event seen, to resume from it."),
]
_WRITE_PARAMS = [
    _AUTH,
    _PRINT,
    _q(
        "writeSizeLimit",
        "Refuse a larger write: tiny (1 MB), small (10 MB), medium, large, unlimited.",
        {"enum": ["tiny", "small", "medium", "large", "unlimited"]},
    ),
    _h("X-Firebase-ETag", "true: answer with the new value's ETag header."),
]
_IF_MATCH = _h("If-Match", "Write only if the current value's ETag is this one (else 412).")
_ERRORS = {
    "400": _err("Invalid data, path, key, query or parameter (Firebase answers 400)."),
    "401": _err("Permission denied by the rules, or a bad or expired token."),
    "403": _err("Refused: a read-only replica, or a cross-site write in --dev."),
}
_SSE = (
    "With `Accept: text/event-stream` (or at `/{path}/.watch`) the server streams the location "
    'as server-sent events: first `event: put` with `data: {"path": "/", "data": ...}` '
    "(the whole value), then `put` and `patch` events for each change, `keep-alive` every "
    "30 s, `cancel` when the rules stop allowing the read and `auth_revoked` when the token "
    "expires. Each event carries an `id:` to resume with `Last-Event-ID`."
)
_STREAM = {
    "description": "The value (JSON), or with Accept: text/event-stream a stream of events.",
    "content": {
        "application/json": {"schema": _ANY},
        "text/event-stream": {"schema": {"type": "string"}},
    },
}


def _op(op_id: str, summary: str, description: str, **extra: Any) -> dict[str, Any]:
    responses = extra.pop("responses", {})
    return {
        "operationId": op_id,
        "summary": summary,
        "description": description,
        "tags": ["elkyn"],
        "responses": {**responses, **_ERRORS},
        **extra,
    }


def _body(description: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": _ANY}},
        "description": description,
    }


def _data_item(suffix: str) -> dict[str, Any]:
    """GET/PUT/PATCH/POST/DELETE on one location (``suffix`` keeps operation ids unique)."""
    silent = {"204": {"description": "Done (print=silent): no body."}}
    return {
        "get": _op(
            f"elkyn_get{suffix}",
            "Read a location (or stream it)",
            "The value at the path. " + _SSE,
            parameters=_READ_PARAMS,
            responses={
                "200": _STREAM,
                "304": {"description": "If-None-Match matched: no body."},
                **silent,
            },
        ),
        "put": _op(
            f"elkyn_put{suffix}",
            "Write a location",
            "Replace the value at the path with the body (null deletes it).",
            parameters=[*_WRITE_PARAMS, _IF_MATCH],
            requestBody=_body("The new value."),
            responses={
                "200": _json("The value written."),
                "412": _json("If-Match did not match: the current value, its ETag in the header."),
                **silent,
            },
        ),
        "patch": _op(
            f"elkyn_patch{suffix}",
            "Update children",
            "Set the named children (keys may be paths like a/b) and leave the others.",
            parameters=_WRITE_PARAMS,
            requestBody=_body("A JSON object of children to set."),
            responses={"200": _json("The children written."), **silent},
        ),
        "post": _op(
            f"elkyn_post{suffix}",
            "Push a child",
            "Add the body under a new chronologically ordered key; answers the key. "
            "X-HTTP-Method-Override turns a POST into another method.",
            parameters=[*_WRITE_PARAMS, _h("X-HTTP-Method-Override", "PUT, PATCH or DELETE.")],
            requestBody=_body("The new child's value."),
            responses={
                "200": _json(
                    "The new key.",
                    {"type": "object", "properties": {"name": {"type": "string"}}},
                ),
                **silent,
            },
        ),
        "delete": _op(
            f"elkyn_delete{suffix}",
            "Delete a location",
            "Remove the value at the path.",
            parameters=[_AUTH, _PRINT, _IF_MATCH, _WRITE_PARAMS[-1]],
            responses={
                "200": _json("null."),
                "412": _json("If-Match did not match: the current value, its ETag in the header."),
                **silent,
            },
        ),
    }


_PATH_PARAM = {
    "name": "path",
    "in": "path",
    "required": True,
    "description": "The location: keys separated by '/', e.g. users/alice (no . $ # [ ]).",
    "schema": {"type": "string"},
}


def _with_path_param(item: dict[str, Any]) -> dict[str, Any]:
    return {"parameters": [_PATH_PARAM], **item}


def openapi_paths() -> dict[str, Any]:
    """The path items of every route Elkyn's app serves, relative to where it is mounted."""
    return {
        "/.json": _data_item("_root"),
        "/{path}.json": _with_path_param(_data_item("")),
        "/{path}/.watch": _watch_item(),
        "/.settings/rules.json": _rules_item(),
        "/auth/token": _token_item(),
        **_replication_items(),
        **_probe_items(),
    }


def _watch_item() -> dict[str, Any]:
    """``GET /{path}/.watch``: a location's changes as server-sent events."""
    return _with_path_param(
        {
            "get": _op(
                "elkyn_watch",
                "Stream a location",
                _SSE,
                parameters=[_AUTH, _h("Last-Event-ID", "Resume after this event id.")],
                responses={"200": _STREAM},
            )
        }
    )


def _rules_item() -> dict[str, Any]:
    """``/.settings/rules.json``: read and replace the security rules (admin tokens only)."""
    return {
        "get": _op(
            "elkyn_get_rules",
            "Read the security rules",
            "The rules document; admin tokens only. The `x-elkyn-reserved` header names the "
            "top-level keys whose rules the platform owns (comma-separated).",
            parameters=[_AUTH],
            responses={"200": _json('The rules document {"rules": {...}}.')},
        ),
        "put": _op(
            "elkyn_put_rules",
            "Replace the security rules",
            "Admin tokens only; // comments are allowed. A refused document answers 400 "
            '{"error", "details"}: details.line and details.column locate the problem in '
            "the text sent (JSON syntax and rule errors), details.rule names the rule.",
            parameters=[_AUTH],
            requestBody=_body('The rules document {"rules": {...}}.'),
            responses={
                "200": _json('{"status": "ok"}'),
                "400": _err("The document was refused; details say where."),
            },
        ),
    }


def _token_item() -> dict[str, Any]:
    """``POST /auth/token``: a token for any uid (``elkyn serve --dev`` only)."""
    return {
        "post": _op(
            "elkyn_mint_token",
            "Mint a token (--dev only)",
            "Only with `elkyn serve --dev`, from this machine: a token for any uid and claims. "
            "Elsewhere 404.",
            requestBody=_body('{"uid": "alice", "admin": false, "ttl_seconds": 3600, ...claims}'),
            responses={
                "200": _json("The token.", {"type": "object"}),
                "404": _err("Not served (no --dev, or not from this machine)."),
            },
        )
    }


def _replication_items() -> dict[str, Any]:
    """``/.replication/log``, ``/fence``, ``/members`` and ``/status``: node to node."""
    return {
        "/.replication/log": {
            "get": _op(
                "elkyn_replication_log",
                "Replication log (node to node)",
                "The operation log since ?since=SEQ (long-polls up to ?wait=S seconds), or "
                "?snapshot=true for the whole tree; needs a cluster token.",
                parameters=[
                    _q("since", "The last sequence number the replica holds."),
                    _q("wait", "Seconds to wait for new entries (at most 30)."),
                    _q("snapshot", "true: the whole tree, rules and sequence number."),
                    _q("term", "Election clusters: the term the replica follows."),
                    _q("replica", "Election clusters: the replica's URL (acks are per name)."),
                    _q("database", "Election clusters: the database the replica's data is."),
                ],
                responses={
                    "200": _json("Log entries or a snapshot."),
                    "404": _err("This server does not serve its log."),
                },
            )
        },
        "/.replication/fence": {
            "post": _op(
                "elkyn_replication_fence",
                "Fence at a term (election clusters, node to node)",
                "From now on apply nothing of a primary of an older term and acknowledge no "
                "write of one; answers the sequence number applied and the database ids; needs "
                "a cluster token.",
                requestBody=_body('{"term": 3}'),
                responses={
                    "200": _json('{"seq": n, "database": id, "own_database": id, "term": n}'),
                    "404": _err("This server is not in an election cluster."),
                    "503": _err("This server already serves a newer term."),
                },
            )
        },
        "/.replication/members": _members_item(),
        "/.replication/status": {
            "get": _op(
                "elkyn_replication_status",
                "Role and replication state",
                "primary or replica, the primary followed, sequence numbers, lag and whether "
                "the primary answers (in an election cluster also the term, the fence, the "
                "replicas' acknowledgements and the Raft state); needs a cluster token or an "
                "admin token.",
                responses={"200": _json("The role and replication state.")},
            )
        },
    }


def _members_item() -> dict[str, Any]:
    """``/.replication/members``: the election's members, joining and leaving."""
    return {
        "get": _op(
            "elkyn_replication_members",
            "Election members (platforms, node to node)",
            "The election's members of a `platform up --join` cluster: Raft address to "
            "Elkyn URL, and whether this server's record is synced with a Raft leader (a "
            "restarted one may still be replaying its journal); needs a cluster token.",
            responses={
                "200": _json('{"members": {"host:port": "http://host:port/db"}, "synced": true}'),
                "404": _err("This server's membership is fixed (--peer), or absent."),
            },
        ),
        "post": _op(
            "elkyn_replication_members_add",
            "Add an election member (platforms, node to node)",
            "Record the member's Elkyn URL and add its Raft address through a committed "
            "membership change; answers the members once done; needs a cluster token.",
            requestBody=_body('{"raft": "host:port", "url": "http://host:port/db"}'),
            responses={
                "200": _json('{"members": {...}}'),
                "404": _err("This server's membership is fixed (--peer), or absent."),
                "503": _err("The change did not commit (another member joining?): retry."),
            },
        ),
        "delete": _op(
            "elkyn_replication_members_remove",
            "Remove a stopped election member (platforms)",
            "Remove the member at Raft address `raft` from the election (a committed "
            "membership change, then its URL): it must be stopped and not the elected "
            "primary. `platform members remove` calls this; needs a cluster token or an "
            "admin token.",
            parameters=[
                {
                    "name": "raft",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The member's Raft address, host:port.",
                }
            ],
            responses={
                "200": _json('{"members": {...}}'),
                "404": _err("Not a member, or this server's membership is fixed (--peer)."),
                "409": _err("The member is this server, the primary, or still running."),
                "503": _err("The change did not commit (no majority?): retry."),
            },
        ),
    }


def _probe_items() -> dict[str, Any]:
    """``/health`` and ``/metrics``."""
    text = {"description": "Plain text", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "/health": {
            "get": {
                "operationId": "elkyn_health",
                "summary": "Liveness check",
                "tags": ["elkyn"],
                "responses": {"200": _json('{"status": "ok"}')},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "elkyn_metrics",
                "summary": "Prometheus metrics",
                "tags": ["elkyn"],
                "responses": {"200": text},
            }
        },
    }


def openapi_document(title: str = "elkyn", version: str = "0") -> dict[str, Any]:
    """The whole document ``elkyn serve`` serves at ``OPENAPI_PATH`` (a fresh copy)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Elkyn: a real-time JSON tree database speaking Firebase's REST "
            "protocol and server-sent events.",
        },
        "paths": copy.deepcopy(openapi_paths()),
        "components": {"schemas": {"ElkynError": copy.deepcopy(_ERROR)}},
    }


def docs_response(path: str, title: str = "elkyn") -> tuple[bytes, bytes] | None:
    """Body and content type for a GET of the document, the docs page or one of its assets.

    ``None`` for any other path (a database path, say). The page uses relative URLs, so it
    works at ``/docs`` of ``elkyn serve`` and at ``/db/docs`` of the gateway alike.
    """
    if path == OPENAPI_PATH:
        return json.dumps(openapi_document(title)).encode(), b"application/json"
    if path == DOCS_PATH:
        page = swagger_page(f"{title} - API docs", f".{OPENAPI_PATH}", "docs/assets")
        return page.encode(), b"text/html; charset=utf-8"
    if path.startswith(DOCS_PATH + "/assets/"):
        found = asset(path.rsplit("/", 1)[1])
        if found is not None:
            return found[0], found[1].encode()
    return None
