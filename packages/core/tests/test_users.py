"""The user store: a real file, real argon2 hashes (cheap parameters), real processes racing."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from platform_core import (
    BadInputError,
    ConflictError,
    CorruptDataError,
    NotFoundError,
    PlatformSettings,
    SettingsError,
    UnauthorizedError,
    UserStore,
)
from platform_core.users import LOGIN_FAILED


def cheap() -> PasswordHasher:
    """Fast parameters for tests; real stores use argon2-cffi's defaults."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "home", hasher=cheap())


def test_add_authenticate_list_and_remove(store: UserStore) -> None:
    alice = store.add("alice", "alice-password")
    store.add("root", "root-password", admin=True)
    assert (alice.name, alice.admin) == ("alice", False)
    assert alice.created.tzinfo is not None
    assert store.authenticate("alice", "alice-password") == alice
    assert store.authenticate("root", "root-password").admin is True
    assert [(u.name, u.admin) for u in store.users()] == [("alice", False), ("root", True)]
    store.remove("alice")
    assert [u.name for u in store.users()] == ["root"]
    with pytest.raises(NotFoundError, match="no user 'alice'"):
        store.get("alice")


def test_wrong_password_and_unknown_user_fail_alike(store: UserStore) -> None:
    store.add("alice", "alice-password")
    with pytest.raises(UnauthorizedError) as wrong:
        store.authenticate("alice", "bob-password")
    with pytest.raises(UnauthorizedError) as unknown:
        store.authenticate("bob", "alice-password")
    with pytest.raises(UnauthorizedError) as invalid:
        store.authenticate("Not A Name", "alice-password")
    assert str(wrong.value) == str(unknown.value) == str(invalid.value) == LOGIN_FAILED


def test_set_password_replaces_the_old_one(store: UserStore) -> None:
    store.add("alice", "alice-password")
    store.set_password("alice", "another-password")
    with pytest.raises(UnauthorizedError):
        store.authenticate("alice", "alice-password")
    assert store.authenticate("alice", "another-password").name == "alice"
    with pytest.raises(NotFoundError):
        store.set_password("bob", "another-password")


@pytest.mark.parametrize(
    ("name", "password", "admin", "error", "message"),
    [
        ("Alice", "long-enough", False, BadInputError, "bad user name 'Alice'"),
        ("", "long-enough", False, BadInputError, "bad user name"),
        ("a" * 33, "long-enough", False, BadInputError, "1 to 32 characters"),
        ("../etc", "long-enough", False, BadInputError, "bad user name"),
        ("alice", "", False, BadInputError, "too short"),
        ("alice", "short", False, BadInputError, "at least 8"),
        ("alice", "x" * 1025, False, BadInputError, "too long"),
        ("admin", "long-enough", False, BadInputError, "must be an admin"),
    ],
)
def test_bad_names_and_passwords_are_refused(
    store: UserStore, name: str, password: str, admin: bool, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        store.add(name, password, admin=admin)
    assert store.users() == []


def test_an_admin_named_admin_is_allowed(store: UserStore) -> None:
    assert store.add("admin", "long-enough", admin=True).admin is True


def test_a_taken_name_is_a_conflict(store: UserStore) -> None:
    store.add("alice", "alice-password")
    with pytest.raises(ConflictError, match="platform user passwd alice"):
        store.add("alice", "other-password", admin=True)
    assert store.get("alice").admin is False


def test_the_file_is_private_and_holds_no_password(store: UserStore) -> None:
    store.add("alice", "alice-password")
    store.set_password("alice", "second-password")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    text = store.path.read_text()
    assert "password" not in text.replace('"hash"', "")
    assert json.loads(text)["users"]["alice"]["hash"].startswith("$argon2id$")
    assert [p.name for p in store.home.iterdir() if p.name.startswith(".")] == []


def test_a_hash_with_old_parameters_is_upgraded_at_login(tmp_path: Path) -> None:
    UserStore(tmp_path, hasher=cheap()).add("alice", "alice-password")
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    store = UserStore(tmp_path, hasher=stronger)
    before = json.loads(store.path.read_text())["users"]["alice"]["hash"]
    assert stronger.check_needs_rehash(before)
    store.authenticate("alice", "alice-password")
    after = json.loads(store.path.read_text())["users"]["alice"]["hash"]
    assert after != before
    assert not stronger.check_needs_rehash(after)
    assert UserStore(tmp_path, hasher=cheap()).authenticate("alice", "alice-password")


@pytest.mark.parametrize(
    "content",
    [
        "{",
        "[]",
        '{"version": 1, "users": {"alice": {"admin": true}}}',
        '{"version": 1, "users": {"Bad Name": {"hash": "x", "created": "2026-01-01T00:00:00Z"}}}',
    ],
)
def test_a_damaged_file_is_a_clear_error(store: UserStore, content: str) -> None:
    store.add("alice", "alice-password")
    store.path.write_text(content)
    for action in (store.users, lambda: store.authenticate("alice", "alice-password")):
        with pytest.raises(CorruptDataError, match=r"is damaged .*move it aside"):
            action()
    with pytest.raises(CorruptDataError):
        store.add("bob", "bob-password")
    assert store.path.read_text() == content  # a write never replaces what it cannot read


def test_a_home_that_is_a_file_is_a_settings_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    store = UserStore(tmp_path / "file", hasher=cheap())
    with pytest.raises(SettingsError, match="PLATFORM_HOME"):
        store.users()
    with pytest.raises(SettingsError, match="writable directory"):
        store.add("alice", "alice-password")


def test_of_uses_the_platform_home(tmp_path: Path) -> None:
    assert UserStore.of(PlatformSettings(home=tmp_path)).path == tmp_path / "users.json"


ADD_MANY = """
import sys
from argon2 import PasswordHasher
from platform_core import UserStore
store = UserStore(sys.argv[1], hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
for i in range(int(sys.argv[3])):
    store.add(f"{sys.argv[2]}{i}", "long-enough")
"""


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Processes adding users at once: each read-modify-write holds the lock."""
    procs = [
        subprocess.Popen([sys.executable, "-c", ADD_MANY, str(tmp_path), prefix, "15"])
        for prefix in "abcd"
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    names = {u.name for u in UserStore(tmp_path).users()}
    assert names == {f"{p}{i}" for p in "abcd" for i in range(15)}


def test_the_dummy_hash_is_made_once_per_process(tmp_path: Path) -> None:
    """The gateway makes a store per login: an unknown name must not cost a fresh hash."""
    first = UserStore(tmp_path / "a", hasher=cheap())._dummy_hash
    assert UserStore(tmp_path / "b", hasher=cheap())._dummy_hash is first
    assert first.startswith("$argon2id$")
