"""Randomised rules test: every entry point against a small rules model written here.

The model knows a handful of rule expressions and evaluates them itself (no code shared with
the evaluator); random rule trees, data, users and requests go to the embedded store and to a
real server, and no request may be allowed that the model denies, nor denied that it allows.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from elkyn import ANONYMOUS, Caller, PermissionDeniedError, PreconditionFailedError, Query, Store
from platform_core.auth import TokenSigner

KEYS = ["a", "b"]
USERS = ["a", "b", None]
READ_EXPRS = [
    "true",
    "false",
    "auth != null",
    "auth.uid === $VAR",
    "data.exists()",
    "root.child('flag').val() === true",
]
WRITE_EXPRS = [*READ_EXPRS, "newData.exists()", "!data.exists()"]
VALIDATE_EXPRS = ["newData.isNumber()", "newData.hasChildren()", "true"]


def random_rules(rng: random.Random, depth: int = 0, var: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for kind, exprs in ((".read", READ_EXPRS), (".write", WRITE_EXPRS)):
        if rng.random() < 0.45:
            choices = [e for e in exprs if "$VAR" not in e or var]
            node[kind] = rng.choice(choices).replace("$VAR", var or "")
    if depth > 0 and rng.random() < 0.2:
        node[".validate"] = rng.choice(VALIDATE_EXPRS)
    if depth < 3:
        for key in KEYS:
            if rng.random() < 0.4:
                node[key] = random_rules(rng, depth + 1, var)
        if rng.random() < 0.4:
            name = f"$w{depth}"
            node[name] = random_rules(rng, depth + 1, name)
    return node


def random_value(rng: random.Random, depth: int = 0) -> Any:
    if depth >= 2 or rng.random() < 0.5:
        return rng.choice([1, 2, "s", True, None])
    return {k: random_value(rng, depth + 1) for k in KEYS if rng.random() < 0.7} or None


def random_path(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.choice([*KEYS, "flag"]) for _ in range(rng.randint(0, 3)))


# ---- the model ----
def m_get(tree: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(k)
    return tree


def m_set(tree: Any, path: tuple[str, ...], value: Any) -> Any:
    if not path:
        return value
    if value is None and not isinstance(tree, dict):
        return tree
    node = dict(tree) if isinstance(tree, dict) else {}
    child = m_set(node.get(path[0]), path[1:], value)
    if child is None:
        node.pop(path[0], None)
    else:
        node[path[0]] = child
    return node or None


def m_clean(v: Any) -> Any:
    if isinstance(v, dict):
        out = {k: m_clean(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not None} or None
    return v


def m_eval(
    expr: str, uid: str | None, bound: dict[str, str], old: Any, new: Any, at: tuple[str, ...]
) -> bool:
    if expr in ("true", "false"):
        return expr == "true"
    if expr == "auth != null":
        return uid is not None
    if expr.startswith("auth.uid === "):
        return uid is not None and uid == bound[expr.split(" === ")[1]]
    if expr == "data.exists()":
        return m_get(old, at) is not None
    if expr == "!data.exists()":
        return m_get(old, at) is None
    if expr == "newData.exists()":
        return m_get(new, at) is not None
    if expr == "root.child('flag').val() === true":
        return m_get(old, ("flag",)) is True
    if expr == "newData.isNumber()":
        v = m_get(new, at)
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if expr == "newData.hasChildren()":
        return isinstance(m_get(new, at), dict)
    raise AssertionError(expr)


def m_levels(
    rules: dict[str, Any], path: tuple[str, ...]
) -> list[tuple[dict[str, Any], dict[str, str]]]:
    node, bound = rules, {}
    out = [(node, dict(bound))]
    for key in path:
        if key in node:
            node = node[key]
        else:
            wild = [k for k in node if k.startswith("$")]
            if not wild:
                break
            bound = {**bound, wild[0]: key}
            node = node[wild[0]]
        out.append((node, dict(bound)))
    return out


def m_can_read(rules: dict[str, Any], uid: str | None, data: Any, path: tuple[str, ...]) -> bool:
    for depth, (node, bound) in enumerate(m_levels(rules, path)):
        if ".read" in node and m_eval(node[".read"], uid, bound, data, None, path[:depth]):
            return True
    return False


def m_valid(
    node: dict[str, Any],
    bound: dict[str, str],
    uid: str | None,
    old: Any,
    new: Any,
    at: tuple[str, ...],
) -> bool:
    value = m_get(new, at)
    if value is None:
        return True
    if ".validate" in node and not m_eval(node[".validate"], uid, bound, old, new, at):
        return False
    if isinstance(value, dict):
        for key in value:
            if key in node:
                child, cb = node[key], bound
            else:
                wild = [k for k in node if k.startswith("$")]
                if not wild:
                    continue
                child, cb = node[wild[0]], {**bound, wild[0]: key}
            if not m_valid(child, cb, uid, old, new, (*at, key)):
                return False
    return True


def m_can_write(
    rules: dict[str, Any], uid: str | None, data: Any, writes: list[tuple[tuple[str, ...], Any]]
) -> bool:
    new = data
    for path, value in writes:
        new = m_set(new, path, m_clean(value))
    for path, _ in writes:
        levels = m_levels(rules, path)
        if not any(
            ".write" in node and m_eval(node[".write"], uid, bound, data, new, path[:d])
            for d, (node, bound) in enumerate(levels)
        ):
            return False
        for d, (node, bound) in enumerate(levels):
            if d < len(path):
                if (
                    ".validate" in node
                    and m_get(new, path[:d]) is not None
                    and not m_eval(node[".validate"], uid, bound, data, new, path[:d])
                ):
                    return False
            elif not m_valid(node, bound, uid, data, new, path):
                return False
    return True


def embedded_call(db: Store, op: str, path: str, caller: Caller, payload: Any) -> None:
    """One embedded API entry point, as ``caller``."""
    if op == "get":
        db.get(path, caller=caller)
    elif op == "shallow":
        db.get(path, caller=caller, shallow=True)
    elif op == "query":
        db.get(path, caller=caller, query=Query("$key", limit_to_first=1))
    elif op == "export":
        db.export(path, caller=caller)
    elif op == "watch":
        db.watch(path, lambda ev: None, caller=caller).close()
    elif op == "update":
        db.update(path, payload, caller=caller)
    elif op == "push":
        db.push(path, payload, caller=caller)
    elif op == "delete":
        db.delete(path, caller=caller)
    elif op in ("set_if_match", "delete_if_match"):
        value = payload if op == "set_if_match" else None
        with pytest.raises(PreconditionFailedError) as failed:
            db.set(path, value, caller=caller, if_match="not-the-etag")
        assert failed.value.value == db.get(path)  # only reached when the caller may read
    else:
        db.set(path, payload, caller=caller)


def p(path: tuple[str, ...]) -> str:
    return "/" + "/".join(path)


@pytest.mark.parametrize("seed", range(12))
def test_embedded_entry_points_match_the_model(seed: int) -> None:
    rng = random.Random(seed)
    signer = TokenSigner("k" * 40)
    with Store(memory=True, signer=signer) as db:
        checked = 0
        outcomes = {True: 0, False: 0}
        for _round in range(4):
            rules = {"rules": random_rules(rng)}
            db.set_rules(rules)
            data = m_clean(
                {"a": random_value(rng), "b": random_value(rng), "flag": rng.random() < 0.5}
            )
            db.set("/", data)
            for _ in range(30):
                uid = rng.choice(USERS)
                token = signer.issue(uid) if uid else None
                caller = db.caller(token) if token else ANONYMOUS
                path = random_path(rng)
                op = rng.choice(
                    [
                        "get",
                        "shallow",
                        "query",
                        "export",
                        "watch",
                        "set",
                        "update",
                        "push",
                        "delete",
                        "set_if_match",
                        "delete_if_match",
                    ]
                )
                current = db.get("/")
                payload: Any = None
                if op in ("get", "shallow", "query", "export", "watch"):
                    want = m_can_read(rules["rules"], uid, current, path)
                else:
                    if op == "update":
                        rels = rng.sample([("a",), ("b",), ("a", "b"), ("b", "a")], 2)
                        if rels[0] == rels[1][:1] or rels[1] == rels[0][:1]:
                            rels = rels[:1]
                        payload = {"/".join(r): random_value(rng) for r in rels}
                        writes = [(path + tuple(k.split("/")), v) for k, v in payload.items()]
                    elif op == "push":
                        payload = rng.choice([1, {"a": 1}])
                        # any new key: the rules see a new child under the path
                        writes = [((*path, "-zzzzzzzzzzzzzzzzzzz"), payload)]
                    else:
                        payload = random_value(rng) if op.startswith("set") else None
                        writes = [(path, payload)]
                    if not path and payload is not None and not isinstance(payload, dict):
                        continue  # the root only holds objects (refused as bad data)
                    want = m_can_write(rules["rules"], uid, current, writes)
                    if op.endswith("_if_match"):
                        # a wrong ETag answers 412 with the current value: only to a caller
                        # who may both write and read there; anyone else is denied
                        want = want and m_can_read(rules["rules"], uid, current, path)
                try:
                    embedded_call(db, op, p(path), caller, payload)
                    got = True
                except PermissionDeniedError:
                    got = False
                assert got == want, (seed, rules, uid, op, path, current)
                checked += 1
                outcomes[got] += 1
        assert checked > 100
        assert outcomes[True] > 5, outcomes  # both answers were exercised
        assert outcomes[False] > 5, outcomes


def _last_seq(url: str) -> int:
    text = httpx.get(url + "/metrics").text
    return int(next(ln for ln in text.splitlines() if ln.startswith("elkyn_last_seq ")).split()[1])


def _synced(primary: str, replica: str) -> None:
    deadline = time.monotonic() + 15
    while _last_seq(replica) != _last_seq(primary):
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.02)


#: Rounds of random rules (25 reads and writes each) over REST, streams and a replica:
#: `nox -s long` (PLATFORM_TESTS_LONG=1) runs 5, CI's default run 3, with the same checks.
MODEL_ROUNDS = 5 if os.environ.get("PLATFORM_TESTS_LONG") == "1" else 3


@pytest.mark.slow
@pytest.mark.long
def test_rest_streams_and_replica_reads_match_the_model(
    server: Any, launch: Any, tmp_path: Path
) -> None:
    replica = launch(tmp_path / "replica", "--replica-of", server.url)
    rng = random.Random(99)
    outcomes = {True: 0, False: 0}
    with server.admin() as admin:
        try:
            for _round in range(MODEL_ROUNDS):
                rules = {"rules": random_rules(rng)}
                assert admin.put("/.settings/rules.json", json=rules).status_code == 200
                data = m_clean(
                    {"a": random_value(rng), "b": random_value(rng), "flag": rng.random() < 0.5}
                )
                admin.put("/.json", json=data)
                for _ in range(25):
                    uid = rng.choice(USERS)
                    headers = {"Authorization": f"Bearer {server.token(uid)}"} if uid else {}
                    path = random_path(rng)
                    url = server.url + p(path) + ".json"
                    current = admin.get("/.json").json()
                    current = m_clean(_dictify(current))
                    op = rng.choice(
                        [
                            "GET",
                            "shallow",
                            "query",
                            "SSE",
                            "watch",
                            "export",
                            "PUT",
                            "PATCH",
                            "POST",
                            "DELETE",
                            "PUT-if-match",
                        ]
                    )
                    if op in ("GET", "shallow", "query", "SSE", "watch", "export"):
                        want = m_can_read(rules["rules"], uid, current, path)
                        if op in ("SSE", "watch"):
                            # the snapshot, then an admin write below the path: its event
                            # arrives if the model still allows the read, else a cancel
                            child = (*path, "a")
                            after = m_set(current, child, 7)
                            still = m_can_read(rules["rules"], uid, after, path)
                            got_data, next_event = _sse_then_write(
                                url if op == "SSE" else server.url + p(path) + "/.watch",
                                headers,
                                lambda child=child: admin.put(p(child) + ".json", json=7),
                            )
                            got = got_data is not _DENIED
                            if got:
                                assert m_clean(_dictify(got_data)) == m_clean(m_get(current, path))
                                expected = (
                                    ("put", {"path": "/a", "data": 7})
                                    if still
                                    else (
                                        "cancel",
                                        None,
                                    )
                                )
                                assert next_event == expected, (rules, uid, op, path, current)
                        else:
                            params = {"shallow": "true"} if op == "shallow" else {}
                            if op == "export":
                                params = {"format": "export"}
                            if op == "query":
                                params = {"orderBy": '"$key"', "limitToFirst": "5"}
                            r = httpx.get(url, params=params, headers=headers)
                            assert r.status_code in (200, 401), r.text
                            got = r.status_code == 200
                            _synced(server.url, replica.url)  # replica reads: same answers
                            r2 = httpx.get(
                                replica.url + p(path) + ".json", params=params, headers=headers
                            )
                            assert r2.status_code == r.status_code, (rules, uid, op, path)
                            if r.status_code == 200:
                                assert r2.content == r.content
                            else:  # the same refusal; the hint names --dev's ways on --dev only
                                one, two = r.json(), r2.json()
                                assert ("hint" in one) == ("hint" in two) == (not headers)
                                one.pop("hint", None)
                                two.pop("hint", None)
                                assert one == two == {"error": "Permission denied"}
                    else:
                        value = random_value(rng)
                        if op == "PATCH":
                            body = {"a": random_value(rng), "b/a": random_value(rng)}
                            writes = [(path + tuple(k.split("/")), v) for k, v in body.items()]
                        elif op == "POST":
                            body = 1
                            writes = [((*path, "-zzzzzzzzzzzzzzzzzzz"), 1)]
                        elif op == "DELETE":
                            body = None
                            writes = [(path, None)]
                        else:
                            body = value
                            writes = [(path, value)]
                        if (
                            not path
                            and op in ("PUT", "PUT-if-match")
                            and body is not None
                            and not isinstance(body, dict)
                        ):
                            continue
                        want = m_can_write(rules["rules"], uid, current, writes)
                        if op == "PUT-if-match":
                            want = want and m_can_read(rules["rules"], uid, current, path)
                            r = httpx.put(
                                url,
                                content=json.dumps(body),
                                headers={**headers, "if-match": "not-the-etag"},
                            )
                            assert r.status_code in (412, 401), r.text
                            got = r.status_code == 412
                            if got:  # the current value, shown only to who may read it
                                assert m_clean(_dictify(r.json())) == m_clean(m_get(current, path))
                            else:
                                body = r.json()
                                if not headers:  # anonymous: how to authenticate, beside it
                                    assert body.pop("hint", "").startswith("this request")
                                assert body == {"error": "Permission denied"}
                        else:
                            r = httpx.request(op, url, content=json.dumps(body), headers=headers)
                            assert r.status_code in (200, 401), r.text
                            got = r.status_code == 200
                    assert got == want, (rules, uid, op, path, current)
                    outcomes[got] += 1
            assert outcomes[True] > 10, outcomes
            assert outcomes[False] > 10, outcomes
        finally:
            admin.put("/.settings/rules.json", json={"rules": {".read": False, ".write": False}})
            admin.delete("/.json")


_DENIED = object()


def _sse_then_write(url: str, headers: dict[str, str], write: Callable[[], Any]) -> tuple[Any, Any]:
    """The snapshot's data and, after ``write()``, the next event (kind, data)."""
    with httpx.stream(
        "GET", url, headers={**headers, "Accept": "text/event-stream"}, timeout=10
    ) as r:
        if r.status_code == 401:
            return _DENIED, None
        assert r.status_code == 200
        snapshot: Any = _DENIED
        kind = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind != "keep-alive":
                data = json.loads(line[6:])
                if snapshot is _DENIED:
                    snapshot = data["data"]
                    write()
                else:
                    return snapshot, (kind, data)
    raise AssertionError("stream ended early")


def _dictify(v: Any) -> Any:
    if isinstance(v, list):
        return {str(i): _dictify(x) for i, x in enumerate(v) if x is not None}
    if isinstance(v, dict):
        return {k: _dictify(x) for k, x in v.items()}
    return v
