"""``platform members``: the platforms of the Elkyn election (``--join``), and removing one.

A platform leaves a cluster in two steps: stop it (if it was the primary's platform, the
others elect a new primary), then ``platform members remove HOST:PORT`` on any platform that
is still a member. Until then the stopped platform counts towards the election's majority,
so with three members a second failure would leave writes refused. Errors are one line and
an exit code by kind (``platform_core.cli``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from platform_core.cli import TOKEN_OPTION, expected_errors, new_app

from .admin_call import admin_call

__all__ = ["app"]

app = new_app(
    name="members",
    help="The platforms of the Elkyn election (`platform up --join`), and removing one.",
    invoke_without_command=True,
)

UrlOption = Annotated[
    str | None,
    typer.Option(help="The gateway (default: the one `platform up` runs, else :8080)."),
]


def _print(members: dict[str, str], leader: str | None) -> None:
    if not members:
        typer.echo("no election: this platform is alone, or its Elkyn has fixed --peer members")
        return
    for raft, url in sorted(members.items()):
        typer.echo(f"{raft}  {url}" + ("  (primary)" if url == leader else ""))


@app.callback()
def members(
    ctx: typer.Context, url: UrlOption = None, token: Annotated[str | None, TOKEN_OPTION] = None
) -> None:
    """List the election's members: Raft address, Elkyn URL, and which is the primary."""
    if ctx.invoked_subcommand is not None:
        return
    with expected_errors():
        report = admin_call("GET", url, token, "/api/platform/status")[1]
    elkyn = (report.get("self", {}).get("plugins") or {}).get("elkyn") or {}
    _print((elkyn.get("election") or {}).get("members") or {}, elkyn.get("leader"))


@app.command()
def remove(
    raft: Annotated[str, typer.Argument(help="The stopped member's Raft address, HOST:PORT.")],
    url: UrlOption = None,
    token: Annotated[str | None, TOKEN_OPTION] = None,
) -> None:
    """Remove a stopped platform from the election (admin token); the others then need a
    majority of the members left."""
    with expected_errors():
        answer = admin_call("DELETE", url, token, "/db/.replication/members", raft=raft)[1]
    typer.echo(f"removed {raft}; the members now:")
    _print(answer.get("members") or {}, None)
