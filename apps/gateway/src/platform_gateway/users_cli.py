"""``platform user``: add, remove, change and list the users who log in at ``POST /api/login``.

The users live in ``PLATFORM_HOME/users.json`` (``platform_core.UserStore``); the running
gateway of that home watches the file and publishes each change to its cluster within a
second, so a removed user's, a changed password's and an old role's tokens are refused on
every platform (README, "Users and tokens"). No restart is needed. Errors are one line and an exit
code by kind (``platform_core.cli``): 2 bad input, 4 no such user, 5 the user exists,
8 a damaged store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from platform_core.cli import expected_errors, new_app

if TYPE_CHECKING:
    from platform_core import UserStore

__all__ = ["app"]

app = new_app(
    name="user",
    help="Manage the users who log in at POST /api/login (kept under PLATFORM_HOME).",
    no_args_is_help=True,
)  # new_app: no locals in tracebacks (they hold passwords)

HomeOption = Annotated[
    Path | None, typer.Option(help="Data directory (default: PLATFORM_HOME or ./.platform).")
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin (for scripts)."
    ),
]


def _store(home: Path | None) -> UserStore:
    from platform_core import PlatformSettings, UserStore, load_settings  # pydantic: when run

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
    with expected_errors(OSError):
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
    """Change a user's password; tokens issued before are refused on every platform."""
    with expected_errors(OSError):
        store = _store(home)
        store.get(name)  # say "no such user" before asking for a password
        store.set_password(name, _password(name, password_stdin))
    typer.echo(f"changed the password of {name}")


@app.command()
def rm(
    name: Annotated[str, typer.Argument(help="The user to remove.")],
    home: HomeOption = None,
) -> None:
    """Remove a user: they can no longer log in, and their tokens are refused everywhere."""
    with expected_errors(OSError):
        _store(home).remove(name)
    typer.echo(f"removed {name}")


@app.command("set")
def set_role(
    name: Annotated[str, typer.Argument(help="The user to change.")],
    admin: Annotated[
        bool | None,
        typer.Option("--admin/--no-admin", help="Make the user an admin, or not."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Change a user's role in place; tokens with the old role are refused everywhere."""
    if admin is None:
        raise typer.BadParameter("give --admin or --no-admin")
    with expected_errors(OSError):
        changed = _store(home).set_admin(name, admin)
    role = "an admin" if admin else "not an admin"
    typer.echo(f"{name} is {role}" + ("" if changed else " (unchanged)"))


@app.command("ls")
def list_users(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    home: HomeOption = None,
) -> None:
    """List the users: name, admin, created."""
    with expected_errors(OSError):
        users = _store(home).users()
    if as_json:
        rows = [{"name": u.name, "admin": u.admin, "created": u.created.isoformat()} for u in users]
        typer.echo(json.dumps(rows))
        return
    from rich.console import Console  # rich: when a table is printed
    from rich.table import Table

    table = Table("name", "admin", "created")
    for u in users:
        table.add_row(u.name, "yes" if u.admin else "no", u.created.isoformat())
    Console().print(table)
