"""Elkyn's store as the platform's live-state sink: writes as the admin under a reserved
subtree that users may read (per its rules) and never write."""

from __future__ import annotations

import pytest

from elkyn import ANONYMOUS, Caller, PermissionDeniedError, Store
from elkyn.live import StoreSink
from platform_core import LiveSink

USER = Caller(admin=False, auth={"uid": "ann", "provider": "custom"})


def test_the_sink_publishes_replaces_and_deletes_under_its_reserved_key() -> None:
    with Store(memory=True) as store:
        sink = StoreSink(store)
        assert isinstance(sink, LiveSink)
        sink.reserve("nodes", {".read": "auth != null", ".write": False})
        sink.publish("/nodes/a", {"state": "alive", "chunks": 3})
        sink.publish_many({"/nodes/b": {"state": "suspect"}, "/nodes/a/chunks": 4})
        assert store.get("/nodes", caller=USER) == {
            "a": {"state": "alive", "chunks": 4},
            "b": {"state": "suspect"},
        }
        sink.publish_many({"/nodes/b": None})
        sink.publish("/nodes/a", {"state": "dead"})
        assert store.get("/nodes", caller=USER) == {"a": {"state": "dead"}}
        with pytest.raises(PermissionDeniedError):
            store.set("/nodes/a/state", "alive", caller=USER)
        with pytest.raises(PermissionDeniedError):
            store.get("/nodes", caller=ANONYMOUS)  # auth is null
        sink.publish_many({})  # nothing to write is no write
