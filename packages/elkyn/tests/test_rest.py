"""REST conformance, written from Firebase's REST reference, against a real `elkyn serve`."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

DINOS = {
    "lambeosaurus": {"height": 2.1, "length": 12.5, "weight": 5000},
    "stegosaurus": {"height": 4, "length": 9, "weight": 2500},
    "triceratops": {"height": 3, "length": 9, "weight": 6000},
    "linhenykus": {"height": 0.6, "length": 1, "weight": 3},
}


@pytest.fixture
def admin(server: Any) -> Iterator[httpx.Client]:
    with server.admin() as client:
        yield client
        client.put("/.settings/rules.json", json={"rules": {".read": False, ".write": False}})
        client.delete("/.json")


def test_put_get_post_patch_delete(admin: httpx.Client) -> None:
    r = admin.put("/users/jack/name.json", json={"first": "Jack", "last": "Sparrow"})
    assert r.status_code == 200
    assert r.json() == {"first": "Jack", "last": "Sparrow"}
    assert admin.get("/users/jack/name.json").json() == {"first": "Jack", "last": "Sparrow"}
    r = admin.post("/message_list.json", json={"user_id": "jack", "text": "Ahoy!"})
    assert r.status_code == 200
    name = r.json()["name"]
    assert len(name) == 20
    assert admin.get(f"/message_list/{name}.json").json() == {"user_id": "jack", "text": "Ahoy!"}
    r = admin.patch("/users/jack/name/.json", json={"last": "Jones"})
    assert r.json() == {"last": "Jones"}
    assert admin.get("/users/jack/name.json").json() == {"first": "Jack", "last": "Jones"}
    r = admin.patch("/users.json", json={"jack/name/first": "J", "jill/name/first": "Jill"})
    assert r.status_code == 200
    assert admin.get("/users.json").json() == {
        "jack": {"name": {"first": "J", "last": "Jones"}},
        "jill": {"name": {"first": "Jill"}},
    }
    r = admin.delete("/users/jack/name/last.json")
    assert r.status_code == 200
    assert r.json() is None
    assert admin.get("/users/jack/name/last.json").json() is None


def test_print_silent_and_pretty(admin: httpx.Client) -> None:
    for method in ("put", "patch"):
        r = admin.request(method.upper(), "/a.json?print=silent", json={"b": 1})
        assert r.status_code == 204
        assert r.content == b""
    assert admin.post("/l.json?print=silent", json=1).status_code == 204
    assert admin.get("/a.json?print=silent").status_code == 204
    assert admin.delete("/l.json?print=silent").status_code == 204
    r = admin.get("/a.json?print=pretty")
    assert r.text == json.dumps({"b": 1}, indent=2)


def test_shallow(admin: httpx.Client) -> None:
    admin.put("/s.json", json={"a": {"deep": 1}, "b": 2})
    assert admin.get("/s.json?shallow=true").json() == {"a": True, "b": True}
    assert admin.get("/s/b.json?shallow=true").json() == 2
    r = admin.get('/s.json?shallow=true&orderBy="$key"')
    assert r.status_code == 400
    assert "shallow" in r.json()["error"]


def test_queries_follow_firebase_rules(admin: httpx.Client) -> None:
    admin.put("/dinosaurs.json", json=DINOS)
    r = admin.get('/dinosaurs.json?orderBy="height"&startAt=3')
    assert r.status_code == 400
    assert r.json()["error"] == (
        'Index not defined, add ".indexOn": "height", for path "/dinosaurs", to the rules'
    )
    rules = {"rules": {"dinosaurs": {".indexOn": ["height", "length"]}}}
    assert admin.put("/.settings/rules.json", json=rules).status_code == 200
    r = admin.get('/dinosaurs.json?orderBy="height"&startAt=3')
    assert set(r.json()) == {"stegosaurus", "triceratops"}
    r = admin.get('/dinosaurs.json?orderBy="length"&equalTo=9')
    assert set(r.json()) == {"stegosaurus", "triceratops"}
    r = admin.get('/dinosaurs.json?orderBy="height"&limitToFirst=2')
    assert list(r.json()) == ["linhenykus", "lambeosaurus"]
    r = admin.get('/dinosaurs.json?orderBy="$key"&startAt="l"&endAt="m"')
    assert set(r.json()) == {"lambeosaurus", "linhenykus"}
    r = admin.get('/dinosaurs.json?orderBy="$key"&limitToLast=1')
    assert r.json() == {"triceratops": DINOS["triceratops"]}
    r = admin.get('/dinosaurs.json?orderBy="$value"')
    assert r.status_code == 400  # $value needs ".indexOn": ".value"
    assert admin.get("/dinosaurs.json?limitToFirst=1").status_code == 400  # no orderBy
    assert admin.get("/dinosaurs.json?orderBy=height").status_code == 400  # not JSON
    r = admin.get('/dinosaurs.json?orderBy="$key"&limitToFirst=1&limitToLast=1')
    assert r.status_code == 400


def test_etags_conditional_writes(admin: httpx.Client) -> None:
    admin.put("/e.json", json={"n": 1})
    r = admin.get("/e.json", headers={"X-Firebase-ETag": "true"})
    etag = r.headers["etag"]
    assert r.json() == {"n": 1}
    r = admin.put("/e.json", json={"n": 2}, headers={"if-match": etag})
    assert r.status_code == 200
    new_etag = r.headers["etag"]
    assert new_etag != etag
    r = admin.put("/e.json", json={"n": 3}, headers={"if-match": etag})
    assert r.status_code == 412
    assert r.json() == {"n": 2}
    assert r.headers["etag"] == new_etag
    assert admin.get("/e.json").json() == {"n": 2}
    r = admin.get("/e.json", headers={"if-none-match": new_etag, "X-Firebase-ETag": "true"})
    assert r.status_code == 304
    r = admin.delete("/e.json", headers={"if-match": etag})
    assert r.status_code == 412
    assert admin.delete("/e.json", headers={"if-match": new_etag}).status_code == 200
    assert admin.get("/e.json").json() is None


def test_server_values(admin: httpx.Client) -> None:
    before = int(time.time() * 1000)
    r = admin.put("/sv.json", json={"t": {".sv": "timestamp"}, "n": {".sv": {"increment": 2}}})
    got = r.json()
    assert before - 5 <= got["t"] <= int(time.time() * 1000) + 5
    assert got["n"] == 2
    admin.patch("/sv.json", json={"n": {".sv": {"increment": 1.5}}})
    assert admin.get("/sv/n.json").json() == 3.5
    r = admin.put("/sv2.json", json={"x": {".sv": "nope"}})
    assert r.status_code == 400
    assert "server value" in r.json()["error"]
    assert admin.get("/sv2.json").json() is None


def test_method_override(admin: httpx.Client) -> None:
    r = admin.post("/m.json", json={"a": 1}, headers={"X-HTTP-Method-Override": "PUT"})
    assert r.json() == {"a": 1}
    admin.post("/m.json", json={"b": 2}, headers={"X-HTTP-Method-Override": "PATCH"})
    assert admin.get("/m.json").json() == {"a": 1, "b": 2}
    admin.post("/m.json", headers={"X-HTTP-Method-Override": "DELETE"})
    assert admin.get("/m.json").json() is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/bad.json", {"a.b": 1}),
        ("/bad.json", {"a": {"$x": 1}}),
        ("/bad.json", {"a": {"x\u0001": 1}}),
        ("/bad.json", {"k" * 769: 1}),
        ("/bad/a[1].json", 1),
        ("/bad/" + "/".join(["d"] * 33) + ".json", 1),
    ],
)
def test_bad_keys_and_paths_are_400_and_write_nothing(
    admin: httpx.Client, path: str, body: object
) -> None:
    r = admin.put(path, json=body)
    assert r.status_code == 400
    assert "error" in r.json()
    assert admin.get("/bad.json").json() is None


def test_malformed_and_oversized_bodies(admin: httpx.Client) -> None:
    r = admin.put("/x.json", content=b"{not json")
    assert r.status_code == 400
    assert r.json() == {"error": "Invalid data; couldn't parse JSON object, array, or value."}
    r = admin.put("/x.json?writeSizeLimit=tiny", content=json.dumps("x" * (2 << 20)))
    assert r.status_code == 400
    assert "write size limit" in r.json()["error"]
    assert admin.put("/x.json?writeSizeLimit=huge", json=1).status_code == 400
    assert admin.get("/x.json?timeout=5years").status_code == 400
    assert admin.get("/x.json?timeout=3s").status_code == 200
    assert admin.get("/x.json").json() is None


def test_format_export_and_not_found(admin: httpx.Client) -> None:
    admin.put("/ex.json", json={"a": [1, 2]})
    assert admin.get("/ex.json?format=export").json() == {"a": [1, 2]}
    r = admin.get("/ex")
    assert r.status_code == 404
    assert "error" in r.json()


def test_default_rules_deny_and_tokens_are_checked(server: Any, admin: httpx.Client) -> None:
    admin.put("/secret.json", json=1)
    with server.client() as anon:
        r = anon.get("/secret.json")
        assert r.status_code == 401
        body = r.json()  # no credentials at all: how to authenticate goes beside the error
        hint = body.pop("hint")
        assert body == {"error": "Permission denied"}
        assert "Authorization: Bearer <token>" in hint, hint
        assert "?auth=owner" in hint, hint  # a --dev server: its ways too
        assert "POST /auth/token" in hint, hint
        assert r.headers["www-authenticate"] == "Bearer"
        assert anon.put("/secret.json", json=2).status_code == 401
    with server.client("forged.token.value") as forged:
        assert forged.get("/secret.json").status_code == 401
    expired = jwt.encode({"sub": "ann", "exp": int(time.time()) - 120}, "s" * 40, "HS256")
    with server.client(expired) as c:
        r = c.get("/secret.json")
        assert r.status_code == 401
        assert "expired" in r.json()["error"]
    bad_sig = server.token("ann")[:-4] + "AAAA"
    with server.client(bad_sig) as c:
        assert c.get("/secret.json").status_code == 401
    assert admin.get("/secret.json").json() == 1


def test_rules_endpoint_is_admin_only(server: Any, admin: httpx.Client) -> None:
    with server.client() as anon:
        assert anon.get("/.settings/rules.json").status_code == 401
        assert anon.put("/.settings/rules.json", json={"rules": {}}).status_code == 401
    with server.client(server.token("ann")) as user:
        assert user.get("/.settings/rules.json").status_code == 401
    bad = {"rules": {"a": {".read": "auth.uid == "}}}
    r = admin.put("/.settings/rules.json", json=bad)
    assert r.status_code == 400
    assert "rules/a/.read" in r.json()["error"]
    assert "position 13" in r.json()["error"]
    text = '{"rules": {\n  // comments are allowed\n  ".read": true\n}}'
    assert admin.put("/.settings/rules.json", content=text).status_code == 200
    assert admin.get("/.settings/rules.json").json() == {"rules": {".read": True}}


def test_user_rules_over_rest(server: Any, admin: httpx.Client) -> None:
    rules = {
        "rules": {
            "users": {
                "$uid": {
                    ".read": "$uid === auth.uid",
                    ".write": "$uid === auth.uid",
                    "age": {".validate": "newData.isNumber() && newData.val() >= 0"},
                }
            }
        }
    }
    admin.put("/.settings/rules.json", json=rules)
    with server.client(server.token("ann")) as ann:
        assert ann.put("/users/ann.json", json={"name": "Ann", "age": 3}).status_code == 200
        assert ann.get("/users/ann.json").json() == {"name": "Ann", "age": 3}
        assert ann.get("/users/bob.json").status_code == 401
        assert ann.put("/users/bob.json", json={"name": "x"}).status_code == 401
        assert ann.put("/users/ann/age.json", json=-1).status_code == 401  # validate fails
        assert ann.get("/users.json").status_code == 401  # rules are not filters
        assert ann.post("/users/ann/notes.json", json="hi").status_code == 200
        r = ann.patch("/users.json", json={"ann/name": "A", "bob/name": "B"})
        assert r.status_code == 401  # one path denied: nothing written
    assert admin.get("/users/ann/name.json").json() == "Ann"
    with server.client(f"{server.token('ann')}") as c:
        r = c.get("/users/ann.json", params={"auth_variable_override": '{"uid": "bob"}'})
        assert r.status_code == 401  # the override replaced auth (dev mode)


def test_dev_token_minting(server: Any, admin: httpx.Client) -> None:
    admin.put("/.settings/rules.json", json={"rules": {"p": {"$u": {".read": "auth.uid === $u"}}}})
    admin.put("/p/zoe.json", json=1)
    r = httpx.post(server.url + "/auth/token", json={"uid": "zoe"})
    assert r.status_code == 200
    token = r.json()["token"]
    assert httpx.get(server.url + f"/p/zoe.json?auth={token}").json() == 1
    assert httpx.get(server.url + f"/p/zoe.json?auth={token}&ns=demo").json() == 1


def test_query_based_rules_over_rest(server: Any, admin: httpx.Client) -> None:
    rules = {
        "rules": {
            "baskets": {
                ".read": "query.orderByChild === 'owner' && query.equalTo === auth.uid",
                ".indexOn": "owner",
            }
        }
    }
    admin.put("/.settings/rules.json", json=rules)
    admin.put("/baskets.json", json={"b1": {"owner": "ann"}, "b2": {"owner": "bob"}})
    with server.client(server.token("ann")) as ann:
        r = ann.get('/baskets.json?orderBy="owner"&equalTo="ann"')
        assert r.status_code == 200
        assert r.json() == {"b1": {"owner": "ann"}}
        assert ann.get("/baskets.json").status_code == 401
        assert ann.get('/baskets.json?orderBy="owner"&equalTo="bob"').status_code == 401


def _raw(server: Any, request: bytes, pause: float = 0.3) -> bytes:
    """Send ``request`` on a raw socket, half-close it, and read whatever comes back."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(request)
        time.sleep(pause)
        s.shutdown(socket.SHUT_WR)  # the client gives up mid-body
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def test_truncated_body_writes_nothing(server: Any, admin: httpx.Client) -> None:
    assert admin.put("/balance.json", json=5).status_code == 200
    for method in (b"PUT", b"PATCH", b"POST"):
        body = b'{"a": 1000000}' if method == b"PATCH" else b"1000000"
        head = (
            method + b" /balance.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer owner\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        _raw(server, head + body[:4])
        time.sleep(0.2)
        assert admin.get("/balance.json").json() == 5, method  # nothing half-written


def test_deeply_nested_query_parameter_is_400(admin: httpx.Client) -> None:
    admin.put("/pub.json", json={"a": 1})
    for param in ("startAt", "endAt", "equalTo", "orderBy"):
        r = admin.get(
            "/pub.json",
            params={"orderBy": '"$key"', param: "[" * 20000}
            if param != "orderBy"
            else {"orderBy": "[" * 20000},
        )
        assert r.status_code == 400, (param, r.text)
        assert "must be a valid JSON value" in r.json()["error"]
    r = admin.get("/pub.json", params={"auth_variable_override": "{" * 20000})
    assert r.status_code == 400, r.text
