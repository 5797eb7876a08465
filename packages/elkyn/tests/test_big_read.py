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
