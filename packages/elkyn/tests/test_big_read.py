"""A big subtree read does not block the event loop: /health answers meanwhile (item 10)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx


def test_health_answers_while_a_big_subtree_is_read(launch: Any, tmp_path: Any) -> None:
    srv = launch(tmp_path / "h", ELKYN_MAP_SIZE=str(1 << 30))
    auth = {"Authorization": f"Bearer {srv.signer.issue('ops', admin=True)}"}
    with httpx.Client(base_url=srv.url, headers=auth, timeout=120) as c:
        for part in range(8):  # ~40 MB in 40,000 leaves
            batch = {f"p{part}-{i}": {"v": "x" * 1000, "i": i} for i in range(5000)}
            assert c.patch("/big.json", json=batch).status_code == 200
        done = threading.Event()
        result: dict[str, Any] = {}

        def big_read() -> None:
            with httpx.Client(base_url=srv.url, headers=auth, timeout=120) as bc:
                with bc.stream("GET", "/big.json") as r:
                    done.set()  # the head is here: the server has read and encoded the subtree
                    body = r.read()
                result["status"], result["n"] = r.status_code, len(json.loads(body))

        reader = threading.Thread(target=big_read)
        reader.start()
        answered_during = 0
        with httpx.Client(base_url=srv.url, timeout=120) as hc:
            while not done.is_set():
                assert hc.get("/health").status_code == 200
                if not done.is_set():
                    answered_during += 1
                time.sleep(0.01)
        reader.join()
        assert result == {"status": 200, "n": 40_000}
        # the loop kept answering while the subtree was read and encoded, before the answer's
        # head went out (before: the loop was blocked for all of that time)
        print("health answered", answered_during, "times before the read answered")
        assert answered_during >= 5, answered_during


def test_reads_around_the_inline_bound_return_the_whole_subtree(launch: Any, tmp_path: Any) -> None:
    """Reads of at most INLINE_READ_RECORDS records run on the loop; one more record makes
    the bounded read give up and read again on a thread. Both answers must be whole."""
    from elkyn.server.app import INLINE_READ_RECORDS

    srv = launch(tmp_path / "b")
    auth = {"Authorization": f"Bearer {srv.signer.issue('ops', admin=True)}"}
    n = INLINE_READ_RECORDS
    nested = {f"k{i}": {"a": i, "b": {"c": f"v{i}"}} for i in range(n // 3 + 1)}  # 4 per child
    with httpx.Client(base_url=srv.url, headers=auth, timeout=60) as c:
        assert c.put("/at.json", json={f"k{i}": i for i in range(n)}).status_code == 200
        assert c.put("/over.json", json={f"k{i}": i for i in range(n + 1)}).status_code == 200
        assert c.put("/nested.json", json=nested).status_code == 200
        answers = {p: c.get(f"/{p}.json").json() for p in ("at", "over", "nested")}
        assert c.get("/over.json", params={"print": "silent"}).status_code == 204
    assert answers["at"] == {f"k{i}": i for i in range(n)}
    assert answers["over"] == {f"k{i}": i for i in range(n + 1)}
    assert answers["nested"] == nested
