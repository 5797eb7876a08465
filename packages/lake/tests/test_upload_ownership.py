"""Who may add a version to a dataset is checked when an upload completes, not only when it
starts: tried from outside against a real node (issue 11 item 14)."""

from __future__ import annotations

from pathlib import Path

from lake.testing import start_node, stop_node

from .conftest import SECRET
from .node_http import ALICE, BOB, call, finish_upload, start_upload


def test_an_upload_started_before_the_dataset_existed_cannot_replace_it(tmp_path: Path) -> None:
    """Bob starts an upload of a name nobody uses yet; Alice then creates that dataset; Bob
    completes: the owner check ran only when Bob started, so his data replaced (or, with
    ``append``, extended) Alice's dataset although only she or an admin may add a version."""
    proc = start_node(tmp_path / "n", env={"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0"})
    try:
        url = proc.url
        mine = b"id,v\n1,alice\n2,alice\n"
        bobs = b"id,v\n9,bob\n"
        pending_replace = start_upload(url, BOB, "sales", bobs)
        pending_append = start_upload(url, BOB, "sales", bobs, append=True)
        alice_up = start_upload(url, ALICE, "sales", mine)
        assert finish_upload(url, ALICE, alice_up, mine)["state"] == "committed"
        finish_upload(url, BOB, pending_replace, bobs)
        finish_upload(url, BOB, pending_append, bobs)
        r = call(url, ALICE, "POST", "/query", json={"sql": "SELECT id, v FROM sales ORDER BY id"})
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[1, "alice"], [2, "alice"]]
        head = call(url, ALICE, "GET", "/datasets/sales").json()
        assert head["owner"] == "alice"
    finally:
        stop_node(proc)
