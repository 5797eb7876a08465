"""The user store: names, argon2 password hashes and the ``admin`` flag, in one file.

The store is ``PLATFORM_HOME/users.json`` (mode 0600). Readers just read it; writers hold an
exclusive ``flock`` on ``users.lock`` beside it, re-read, and replace the file by a fsynced
temp file and an atomic rename, so two ``platform user add`` at once lose nothing and a
reader never sees half a file. One small JSON file rather than SQLite: a platform has a
handful of users, and an operator can read (and back up) the file with ``cat``.

Passwords are hashed with argon2id (``argon2-cffi``'s ``PasswordHasher``); a hash made with
older parameters is replaced on the next successful login. :meth:`UserStore.authenticate`
answers a wrong name and a wrong password with the same error after the same work (an
unknown name is checked against a dummy hash), so a caller cannot tell which was wrong.

Each user has a token generation (``gen``): a new password or a role change raises it, and a
removal leaves a tombstone with the next one (``removed``), so the gateway that watches the
file can tell the cluster which tokens to refuse, even when the change was made while it was
down. A user added again starts above the tombstone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import (
    BadInputError,
    ConflictError,
    CorruptDataError,
    NotFoundError,
    SettingsError,
    UnauthorizedError,
)
from .settings import PlatformSettings, load_settings

__all__ = [
    "LOGIN_FAILED",
    "MIN_PASSWORD_CHARS",
    "Generation",
    "User",
    "UserStore",
    "check_password",
    "check_user_name",
]

STORE_FILE: Final = "users.json"
LOCK_FILE: Final = "users.lock"
MIN_PASSWORD_CHARS: Final = 8
MAX_PASSWORD_CHARS: Final = 1024
LOGIN_FAILED: Final = "wrong user name or password"
"""The one answer to a failed login, whichever part was wrong (no user enumeration)."""

_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_ADMIN_SUBJECT: Final = "admin"
"""The subject of admin-password and dev-mode tokens (``POST /api/login`` without a user)."""


def check_user_name(name: str) -> str:
    """``name`` if it is a valid user name, else ``BadInputError`` saying what is allowed."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadInputError(
            f"bad user name {name!r}: use 1 to 32 characters, lower-case letters, digits, "
            "'_', '.' or '-', starting with a letter (e.g. 'alice')"
        )
    return name


def check_password(password: str) -> str:
    """``password`` if it is long enough (and not absurdly long), else ``BadInputError``."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise BadInputError(
            f"the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise BadInputError(
            f"the password is too long: use at most {MAX_PASSWORD_CHARS} characters"
        )
    return password


@dataclass(frozen=True)
class User:
    """A user as the store keeps it, without the password hash."""

    name: str
    admin: bool
    created: datetime
    gen: int = 0
    """The user's token generation when read: a token issued for this read (a login) carries
    the generation its password was checked at, not a later one."""


@dataclass(frozen=True)
class Generation:
    """What a user's tokens must match: the generation, the role, and whether they exist."""

    gen: int
    admin: bool
    removed: bool


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hash: str
    admin: bool = False
    created: datetime
    gen: int = 0


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    users: dict[str, _Record] = {}
    removed: dict[str, int] = {}
    """Tombstones: a removed user's name and the generation its tokens must reach (never)."""


class UserStore:
    """The users of one ``PLATFORM_HOME`` (see the module docstring for the file and locking).

    ``hasher`` is the argon2 hasher new hashes are made with; hashes made with other
    parameters are still accepted, and upgraded on the next successful login.
    """

    def __init__(self, home: Path | str, *, hasher: PasswordHasher | None = None) -> None:
        self.home = Path(home)
        self.path = self.home / STORE_FILE
        self._hasher = hasher or PasswordHasher()

    @classmethod
    def of(cls, settings: PlatformSettings | None = None) -> UserStore:
        """The store under ``settings.home`` (default: the environment's ``PLATFORM_HOME``)."""
        return cls((settings or load_settings()).home)

    def store_id(self) -> str:
        """This store's id, made once and kept in ``<home>/users.id``: the cluster keeps each
        store's last published generations apart, so two homes holding one name do not mix
        their counters."""
        path = self.home / f"{STORE_FILE.rsplit('.', 1)[0]}.id"
        with contextlib.suppress(FileNotFoundError):
            return path.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.home / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
        tmp.write_text(secrets.token_hex(8))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # the first writer's id wins, atomically
        tmp.unlink()
        return path.read_text().strip()

    # -- reading ---------------------------------------------------------------------------

    def users(self) -> list[User]:
        """Every user, by name."""
        users = self._read().users
        return [_user(name, users[name]) for name in sorted(users)]

    def get(self, name: str) -> User:
        """The user called ``name``; ``NotFoundError`` if there is none."""
        record = self._read().users.get(name)
        if record is None:
            raise self._missing(name)
        return _user(name, record)

    def authenticate(self, name: str, password: str) -> User:
        """The user if ``password`` is theirs; else ``UnauthorizedError(LOGIN_FAILED)``.

        An unknown (or invalid) name costs one argon2 verification too, so the time taken does
        not tell whether the user exists.
        """
        record = self._read().users.get(name) if isinstance(name, str) else None
        if record is None:
            with contextlib.suppress(VerificationError, InvalidHashError):
                self._hasher.verify(self._dummy_hash, password)
            raise UnauthorizedError(LOGIN_FAILED)
        try:
            self._hasher.verify(record.hash, password)
        except (VerificationError, InvalidHashError):
            raise UnauthorizedError(LOGIN_FAILED) from None
        if self._hasher.check_needs_rehash(record.hash):
            self._rehash(name, record.hash, password)
        return _user(name, record)

    def generations(self) -> dict[str, Generation]:
        """Every user's and tombstone's token generation (see the module docstring)."""
        data = self._read()
        out = {n: Generation(gen, False, True) for n, gen in data.removed.items()}
        out.update({n: Generation(r.gen, r.admin, False) for n, r in data.users.items()})
        return out

    # -- writing ---------------------------------------------------------------------------

    def add(self, name: str, password: str, *, admin: bool = False) -> User:
        """Add a user; ``ConflictError`` if the name is taken, ``BadInputError`` if bad."""
        check_user_name(name)
        check_password(password)
        if name == _ADMIN_SUBJECT and not admin:
            raise BadInputError(
                f"the name {name!r} is the subject of admin-password and dev-mode tokens, so "
                "a user of that name must be an admin: add it with --admin, or pick another name"
            )
        record = _Record(hash=self._hasher.hash(password), admin=admin, created=_now())
        with self._writing() as data:
            if name in data.users:
                raise ConflictError(
                    f"user {name!r} exists already; change its password with "
                    f"`platform user passwd {name}`, or remove it first"
                )
            # Above a tombstone: the old account's tokens stay refused.
            record = record.model_copy(update={"gen": data.removed.pop(name, 0)})
            data.users[name] = record
        return _user(name, record)

    def set_password(self, name: str, password: str) -> None:
        """Give ``name`` a new password; ``NotFoundError`` if there is no such user."""
        check_password(password)
        new_hash = self._hasher.hash(password)
        with self._writing() as data:
            record = data.users.get(name)
            if record is None:
                raise self._missing(name)
            data.users[name] = record.model_copy(update={"hash": new_hash, "gen": record.gen + 1})

    def set_admin(self, name: str, admin: bool) -> bool:
        """Make ``name`` an admin or not; whether that changed anything (a change raises the
        user's generation, so tokens with the old role are refused)."""
        with self._writing() as data:
            record = data.users.get(name)
            if record is None:
                raise self._missing(name)
            if record.admin == admin:
                return False
            if name == _ADMIN_SUBJECT and not admin:
                raise BadInputError(
                    f"the user {name!r} must stay an admin: its name is the subject of "
                    "admin-password tokens"
                )
            data.users[name] = record.model_copy(update={"admin": admin, "gen": record.gen + 1})
        return True

    def remove(self, name: str) -> None:
        """Remove ``name``, leaving a tombstone; ``NotFoundError`` if there is no such user."""
        with self._writing() as data:
            record = data.users.pop(name, None)
            if record is None:
                raise self._missing(name)
            data.removed[name] = record.gen + 1

    # -- internals -------------------------------------------------------------------------

    @property
    def _dummy_hash(self) -> str:
        p = self._hasher
        return _dummy_hash(
            p.time_cost, p.memory_cost, p.parallelism, p.hash_len, p.salt_len, p.type
        )

    def _missing(self, name: str) -> NotFoundError:
        return NotFoundError(f"no user {name!r} in {self.path}; `platform user ls` lists the users")

    def _rehash(self, name: str, old_hash: str, password: str) -> None:
        """Store a hash with the current parameters, unless the password changed meanwhile."""
        new_hash = self._hasher.hash(password)
        with self._writing() as data:
            record = data.users.get(name)
            if record is not None and record.hash == old_hash:
                data.users[name] = record.model_copy(update={"hash": new_hash})

    def _read(self) -> _File:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _File()
        except OSError as exc:
            raise SettingsError(
                f"cannot read the user store {self.path}: {exc.strerror}; check that "
                "PLATFORM_HOME is a directory of yours (the store is readable by its owner only)"
            ) from exc
        try:
            data = _File.model_validate(json.loads(text))
            for name in data.users:
                check_user_name(name)
        except (ValueError, ValidationError, BadInputError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CorruptDataError(
                f"the user store {self.path} is damaged ({reason}); restore it from a backup, "
                "or move it aside to start again with no users"
            ) from exc
        return data

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_File]:
        """Yield the current contents under the lock; write them back if no error was raised."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SettingsError(
                f"cannot write the user store under {self.home}: {exc.strerror}; check that "
                "PLATFORM_HOME is a writable directory"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            yield data
            self._replace(data)
        finally:
            os.close(fd)  # closing releases the lock

    def _replace(self, data: _File) -> None:
        body = json.dumps(data.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        tmp = self.home / f".{STORE_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.home)


def _user(name: str, record: _Record) -> User:
    return User(name=name, admin=record.admin, created=record.created, gen=record.gen)


@cache
def _dummy_hash(
    time_cost: int, memory_cost: int, parallelism: int, hash_len: int, salt_len: int, kind: Type
) -> str:
    """A hash of a random password, made once per process and parameters (a store is made
    per login, and a fresh dummy hash per unknown name would make those answers slower)."""
    hasher = PasswordHasher(time_cost, memory_cost, parallelism, hash_len, salt_len, type=kind)
    return hasher.hash(secrets.token_hex(16))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (the directory entry), where the platform allows it."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
