"""Reserved subtrees: the platform owns the rules of /jobs; a user's rules cannot loosen them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from elkyn import PermissionDeniedError, Store
from platform_core.auth import TokenSigner

JOBS = {
    ".read": False,
    ".write": False,
    "$id": {".read": "auth != null && data.child('owner').val() === auth.uid"},
}


@pytest.fixture
def db() -> Iterator[Store]:
    store = Store(memory=True, signer=TokenSigner("k" * 40))
    store.set("/jobs/j1", {"owner": "alice", "state": "running"})
    store.set("/jobs/j2", {"owner": "bob", "state": "queued"})
    store.set("/notes/n1", "hello")
    store.reserve("jobs", JOBS)
    yield store
    store.close()


def test_owners_read_their_jobs_and_nobody_writes_them(db: Store) -> None:
    alice, bob = db.issue_token("alice"), db.issue_token("bob")
    assert db.get("/jobs/j1/state", token=alice) == "running"
    with pytest.raises(PermissionDeniedError):
        db.get("/jobs/j1", token=bob)
    with pytest.raises(PermissionDeniedError):
        db.get("/jobs", token=alice)  # the list is not anyone's
    with pytest.raises(PermissionDeniedError):
        db.set("/jobs/j1/state", "succeeded", token=alice)  # only the platform writes
    db.set("/jobs/j1/state", "succeeded")  # the admin (the driver) does


def test_a_users_rules_cannot_loosen_a_reserved_subtree(db: Store) -> None:
    alice, bob = db.issue_token("alice"), db.issue_token("bob")
    db.set_rules(
        {"rules": {".read": True, ".write": True, "jobs": {".read": True, ".write": True}}}
    )
    served = db.get_rules()["rules"]
    assert served["jobs"] == JOBS  # the platform's rules are what is served
    assert db.get("/notes/n1", token=bob) == "hello"  # the rest follows the user's rules
    db.set("/notes/n2", "x", token=bob)
    with pytest.raises(PermissionDeniedError):
        db.get("/jobs/j1", token=bob)  # the root grant does not reach into /jobs
    with pytest.raises(PermissionDeniedError):
        db.set("/jobs/j1/owner", "bob", token=bob)
    with pytest.raises(PermissionDeniedError):
        db.get("/", token=bob)  # reading / would read every job
    with pytest.raises(PermissionDeniedError):
        db.set("/", {"notes": {}}, token=bob)  # replacing / would drop every job
    db.update("/", {"notes/n3": "y"}, token=bob)  # a multi-path update elsewhere is fine
    assert db.get("/jobs/j1/owner", token=alice) == "alice"
