"""``platform user``: add, remove and list the users who log in at ``POST /api/login``.

The users live in ``PLATFORM_HOME/users.json`` (``platform_core.UserStore``); a running
gateway sees a change at the next login, no restart needed. Errors are one line and an exit
code: 2 bad input, 4 no such user, 5 the user exists, 1 anything else (a damaged store,
an unwritable home).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from platform_core import (
    BadInputError,
    ConflictError,
    NotFoundError,
    PlatformError,
    PlatformSettings,
    UserStore,
    load_settings,
)

__all__ = ["app"]

app = typer.Typer(
    name="user",
    help="Manage the users who log in at POST /api/login (kept under PLATFORM_HOME).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # locals hold passwords
)

_EXIT_CODES: dict[type[PlatformError], int] = {BadInputError: 2, NotFoundError: 4, ConflictError: 5}

HomeOption = Annotated[
    Path | None, typer.Option(help="Data directory (default: PLATFORM_HOME or ./.platform).")
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin (for scripts)."
    ),
]


@contextmanager
def _expected_errors() -> Iterator[None]:
    """A ``PlatformError`` becomes one line on stderr and an exit code by kind."""
    try:
        yield
    except PlatformError as exc:
        code = next((c for kind, c in _EXIT_CODES.items() if isinstance(exc, kind)), 1)
        print(f"error: {' '.join(exc.message.split())}", file=sys.stderr, flush=True)
        raise typer.Exit(code) from None
    except OSError as exc:  # the home is not a directory, not writable, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr, flush=True)
        raise typer.Exit(1) from None


def _store(home: Path | None) -> UserStore:
    overrides: dict[str, Any] = {"home": home.expanduser()} if home is not None else {}
    return UserStore.of(load_settings(PlatformSettings, **overrides))


def _password(name: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    return value


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="User name: lower-case letters, digits, _ . -")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    password_stdin: PasswordStdin = False,
    home: HomeOption = None,
) -> None:
    """Add a user; the password is asked for twice (hidden) unless --password-stdin."""
    with _expected_errors():
        store = _store(home)
        user = store.add(name, _password(name, password_stdin), admin=admin)
    role = "an admin" if user.admin else "a user"
    typer.echo(f"added {user.name} ({role}) to {store.path}")


@app.command()
def passwd(
    name: Annotated[str, typer.Argument(help="The user whose password to change.")],
    password_stdin: PasswordStdin = False,
    home: HomeOption = None,
) -> None:
    """Change a user's password; tokens issued before stay valid until they expire."""
    with _expected_errors():
        store = _store(home)
        store.get(name)  # say "no such user" before asking for a password
        store.set_password(name, _password(name, password_stdin))
    typer.echo(f"changed the password of {name}")


@app.command()
def rm(
    name: Annotated[str, typer.Argument(help="The user to remove.")],
    home: HomeOption = None,
) -> None:
    """Remove a user: they can no longer log in (tokens issued before run out at expiry)."""
    with _expected_errors():
        _store(home).remove(name)
    typer.echo(f"removed {name}")


@app.command("ls")
def list_users(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    home: HomeOption = None,
) -> None:
    """List the users: name, admin, created."""
    with _expected_errors():
        users = _store(home).users()
    if as_json:
        rows = [{"name": u.name, "admin": u.admin, "created": u.created.isoformat()} for u in users]
        typer.echo(json.dumps(rows))
        return
    table = Table("name", "admin", "created")
    for u in users:
        table.add_row(u.name, "yes" if u.admin else "no", u.created.isoformat())
    Console().print(table)
