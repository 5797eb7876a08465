"""``platform members``: the platforms of the Elkyn election (``--join``), and removing one.

A platform leaves a cluster in two steps: stop it (if it was the primary's platform, the
others elect a new primary), then ``platform members remove HOST:PORT`` on any platform that
is still a member. Until then the stopped platform counts towards the election's majority,
so with three members a second failure would leave writes refused. Errors are one line and
an exit code by kind (``platform_core.cli``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from platform_core import UnavailableError
from platform_core.cli import TOKEN_OPTION, default_url, expected_errors, new_app, normalize_url

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


def _call(method: str, url: str | None, token: str | None, path: str, **params: str) -> Any:
    """``method`` ``path`` on the gateway (admin token); the JSON answer or a clear error."""
    from platform_core.cli import resolve_token

    target = normalize_url(url) if url else default_url()
    given = resolve_token(target, token)
    import httpx  # here: `platform --help` does not load it

    from platform_core.http import CONNECT_RETRIES, error_from_response, http_client

    try:
        with http_client(token=given, timeout=30, retries=CONNECT_RETRIES) as client:
            r = client.request(method, f"{target}{path}", params=params)
    except httpx.HTTPError as exc:
        raise UnavailableError(f"no platform answers at {target}: {exc}") from None
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = None
        raise error_from_response(r.status_code, body, r.text)
    return r.json()


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
        report = _call("GET", url, token, "/api/platform/status")
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
        answer = _call("DELETE", url, token, "/db/.replication/members", raft=raft)
    typer.echo(f"removed {raft}; the members now:")
    _print(answer.get("members") or {}, None)
