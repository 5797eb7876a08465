"""The fuzzers' 5xx, each now a clear 4xx (issue 11, item 15), on a real `elkyn serve`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.mark.parametrize("raw", ["/a%ff.json", "/%C0%AF.json", "/%ED%A0%80/x.json"])
def test_a_path_that_is_not_utf8_is_a_400(server: Any, raw: str) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.get(httpx.URL(raw + "?auth=owner"))
        assert r.status_code == 400, r.text
        assert "UTF-8" in r.json()["error"]


@pytest.mark.parametrize(
    "body", [b'"\\ud800"', b'{"a":"x\\udc00"}', b'{"\\udbff":1}', b'["\\ud800"]']
)
def test_a_lone_surrogate_in_a_value_is_a_400_and_nothing_is_written(
    server: Any, body: bytes
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.put("/sur/x.json?auth=owner", content=body)
        assert r.status_code == 400, r.text
        assert "surrogate" in r.json()["error"]
        assert c.get("/sur/x.json?auth=owner").json() is None
        # a proper pair is a character, and is stored
        assert c.put("/sur/ok.json?auth=owner", content=b'"\\ud83d\\ude00"').json() == "\U0001f600"


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "²", "٣", "1" * 30, ""])
def test_replication_log_refuses_a_bad_since_with_a_400(
    launch: Any, tmp_path: Any, since: str
) -> None:
    primary = launch(tmp_path / "p", "--memory")
    cluster = {"Authorization": f"Bearer {primary.signer.cluster_token('peer')}"}
    with httpx.Client(base_url=primary.url, timeout=10) as c:
        assert c.get("/.replication/log").status_code == 401  # no token
        r = c.get("/.replication/log", params={"since": since}, headers=cluster)
        assert r.status_code == 400, r.text
        assert "since" in r.json()["error"]
        assert c.get("/.replication/log?since=0&wait=0", headers=cluster).status_code == 200
