"""A property-based fuzzer of Elkyn's REST surface against a real `elkyn serve`: no 5xx.

Paths (percent escapes, invalid UTF-8, unicode, reserved characters), query parameters
(Firebase's query and print options, tokens), bodies (JSON values, server values, lone
surrogates, not-JSON) and headers (method override, ETags) are generated for an admin, a user
and an anonymous caller. Bounded by FUZZ_SECONDS (30 s here; `nox -s fuzz` runs it longer).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elkyn.testing import stop_server

from .conftest import Server, serve

pytestmark = pytest.mark.fuzz

SECONDS = float(os.environ.get("FUZZ_SECONDS", "30"))
HOSTILE = [
    "",
    ".",
    "..",
    "$x",
    "#",
    "[",
    "]",
    "a b",
    "é",
    "\x00",
    "\x7f",
    "\ud800",
    "\U0001d518",
    "%",
    "%ff",
]

keys = st.one_of(
    st.sampled_from(["a", "b", "users", "counter", "-N1", "0", "1", "10"]),
    st.sampled_from(HOSTILE),
    st.text(min_size=1, max_size=12),
)
raw_segments = st.one_of(
    keys.map(lambda k: quote(k.encode("utf-8", "surrogatepass"), safe="")),
    st.sampled_from(["%ZZ", "%ff", "%C0%AF", "%ED%A0%80", "%", "a%2Fb", "%2e%2e"]),
)
paths = st.lists(raw_segments, max_size=4).map(lambda segs: "/" + "/".join(segs))
suffixes = st.sampled_from([".json", ".json", "/.watch", "", ".JSON"])

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.just({".sv": "timestamp"})
    | st.just({".sv": {"increment": 2}})
    | st.just({".sv": {"increment": "x"}})
    | st.just({".sv": "nope"}),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"{", b'"\\ud800"', b'{"\\udc00":1}', b"[" * 2000, b"1e999", b"NaN"]),
    st.binary(max_size=40),
)
param_names = st.sampled_from(
    [
        "orderBy", "startAt", "endAt", "equalTo", "limitToFirst", "limitToLast", "shallow",
        "print", "format", "timeout", "writeSizeLimit", "auth_variable_override", "ns",
        "callback", "download", "startAfter", "endBefore",
    ]
)  # fmt: skip
param_values = st.one_of(
    st.sampled_from(['"$key"', '"$value"', '"a"', "1", "-1", "1e999", "true", "silent",
                     "pretty", "export", "10s", "999min", "tiny", "unlimited", "{}", "null"]),
    st.text(max_size=10),
)  # fmt: skip
queries = st.dictionaries(param_names, param_values, max_size=4)
methods = st.sampled_from(["GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "HEAD"])
extra_headers = st.fixed_dictionaries(
    {},
    optional={
        "X-HTTP-Method-Override": st.sampled_from(["PUT", "PATCH", "DELETE", "get", "BREW", ""]),
        "If-Match": st.sampled_from(["*", '"x"', "", "null_etag"]),
        "X-Firebase-ETag": st.sampled_from(["true", "false"]),
        "Content-Type": st.sampled_from(["text/plain", "application/json"]),
    },
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = serve(tmp_path_factory.mktemp("fuzz"), "--dev", "--memory")
    rules = {"rules": {".read": "auth != null", "users": {"$u": {".write": "auth.uid == $u"}}}}
    with httpx.Client(base_url=srv.url) as c:
        assert c.put("/.settings/rules.json?auth=owner", json=rules).status_code == 200
        assert c.put("/.json?auth=owner", json={"a": {"b": 1, "c": "x"}}).status_code == 200
    yield srv
    stop_server(srv.process)


def test_no_request_gets_a_5xx(fuzz_server: Server) -> None:
    srv = fuzz_server
    tokens = ["owner", srv.token("u1"), None, "not-a-token"]
    deadline = time.monotonic() + SECONDS
    seen: list[str] = []
    client = httpx.Client(base_url=srv.url, timeout=30)

    @settings(
        max_examples=int(SECONDS * 60),  # about what fits; the deadline ends it first
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        method=methods,
        path=paths,
        suffix=suffixes,
        query=queries,
        body=bodies,
        headers=extra_headers,
        who=st.sampled_from(range(len(tokens))),
    )
    def one(
        method: str,
        path: str,
        suffix: str,
        query: dict[str, str],
        body: bytes,
        headers: dict[str, str],
        who: int,
    ) -> None:
        if time.monotonic() > deadline:
            return
        if suffix == "/.watch" or (query.get("print") == "silent" and method == "GET"):
            suffix = ".json"  # streams are fuzzed by the stream tests; a GET must answer here
        params = dict(query)
        if tokens[who] is not None:
            params["auth"] = tokens[who]
        qs = "&".join(
            f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
            for k, v in params.items()
        )
        url = f"{path}{suffix}" + (f"?{qs}" if qs else "")
        req = client.build_request(  # absolute: httpx refuses a relative "//a" path
            method,
            httpx.URL(srv.url + url),
            content=body if method != "GET" else None,
            headers=headers,
        )
        req.headers["Accept"] = "application/json"
        resp = client.send(req)
        seen.append(method)
        assert resp.status_code < 500, (method, url, body[:200], headers, resp.text[:300])

    try:
        one()
    finally:
        client.close()
    print(f"fuzzed {len(seen)} requests")
    assert len(seen) > 50, "the fuzzer sent too few requests to mean anything"
    with httpx.Client(base_url=srv.url) as c:
        assert c.get("/health").status_code == 200
        assert c.put("/after/fuzz.json?auth=owner", json={"ok": 1}).status_code == 200
        assert c.get("/after/fuzz/ok.json?auth=owner").json() == 1  # it still reads and writes


def test_fuzz_server_helper_is_real(tmp_path: Path) -> None:
    """The fixture above is a real process: a 5xx would come from the server, not a stub."""
    srv = serve(tmp_path / "h", "--dev", "--memory")
    try:
        assert srv.process.proc.poll() is None
        assert httpx.get(srv.url + "/health").json() == {"status": "ok"}
    finally:
        stop_server(srv.process)
