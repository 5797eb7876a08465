"""``platform token revoke`` and ``platform token workers``: the admin's token commands, sent to
a running platform (``--url``; default: the one ``platform up`` runs on this home, else :8080)
with the token every CLI resolves (``--token``, ``PLATFORM_TOKEN``, ``platform login``, or
one minted on this machine for a loopback URL). The revocation reaches every platform of the
cluster within seconds (README, "Users and tokens").
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from platform_core.cli import default_url, expected_errors, fail, normalize_url, resolve_token
from platform_core.cli.credentials import saved_token
from platform_core.errors import UnavailableError

__all__ = ["register", "sign_out"]

UrlOption = Annotated[
    str | None, typer.Option(help="The gateway (default: the one `platform up` runs, else :8080).")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", help="An admin token (default: as every CLI resolves).")
]


def _call(method: str, url: str, path: str, token: str | None, body: Any = None) -> Any:
    import httpx

    from platform_core.http import CONNECT_RETRIES, http_client
    from platform_core.tls import connection_hint  # settings: when a command runs

    target = url + path
    try:
        with http_client(token=token, timeout=30, retries=CONNECT_RETRIES) as client:
            r = client.request(method, target, json=body)
    except httpx.HTTPError as exc:
        raise UnavailableError(
            f"cannot reach {target}: {connection_hint(exc, target) or exc}"
        ) from exc
    try:
        answer = r.json()
    except ValueError:
        answer = None
    if r.status_code >= 400:
        reason = answer.get("error") if isinstance(answer, dict) else r.text[:200]
        code = {401: 3, 403: 3, 404: 4, 409: 5}.get(r.status_code, 1)
        fail(f"{method} {target} refused (HTTP {r.status_code}): {reason}", code)
    return answer


def sign_out(url: str) -> None:
    """Revoke the token ``platform login`` kept for ``url`` at that gateway (best effort: an
    expired or already revoked token, or a gateway that is down, has nothing to revoke)."""
    token = saved_token(url)
    if not token:
        return
    import httpx

    from platform_core.http import http_client

    try:
        with http_client(token=token, timeout=10) as client:
            client.post(f"{url}/api/logout")
    except httpx.HTTPError:
        typer.echo(f"could not reach {url} to revoke the token; it is forgotten here", err=True)


def register(app: typer.Typer) -> None:
    """Add ``revoke`` and ``workers`` to the ``platform token`` group."""

    @app.command()
    def revoke(
        user: Annotated[
            str | None, typer.Option("--user", help="Revoke every token of this user.")
        ] = None,
        token_id: Annotated[
            str | None,
            typer.Option("--id", help="Revoke one token or sign-in session (its jti or sid)."),
        ] = None,
        workers: Annotated[
            bool, typer.Option("--workers", help="Revoke every worker token.")
        ] = False,
        url: UrlOption = None,
        token: TokenOption = None,
    ) -> None:
        """Revoke tokens on every platform of the cluster (admin): a user's, one, or all
        worker tokens."""
        if sum([user is not None, token_id is not None, workers]) != 1:
            fail("give exactly one of --user NAME, --id TOKEN_ID or --workers", 2)
        body: dict[str, Any] = (
            {"user": user}
            if user is not None
            else {"id": token_id}
            if token_id
            else {"workers": True}
        )
        with expected_errors():
            target = normalize_url(url) if url else default_url()
            answer = _call("POST", target, "/api/tokens/revoke", resolve_token(target, token), body)
        gen = answer.get("generation") if isinstance(answer, dict) else None
        suffix = f" (tokens now need generation {gen})" if gen is not None else ""
        typer.echo(f"revoked {answer.get('revoked')} at {target}{suffix}")

    @app.command("workers")
    def list_workers(
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
        url: UrlOption = None,
        token: TokenOption = None,
    ) -> None:
        """List the worker tokens minted and not expired (admin): id, subject, expiry, revoked."""
        with expected_errors():
            target = normalize_url(url) if url else default_url()
            rows = _call("GET", target, "/api/tokens/workers", resolve_token(target, token))
        if as_json:
            typer.echo(json.dumps(rows))
            return
        from rich.console import Console  # rich: when a table is printed
        from rich.table import Table

        table = Table("id", "sub", "expires", "revoked")
        for w in rows:
            table.add_row(w["id"], w["sub"], str(w["exp"]), "yes" if w["revoked"] else "no")
        Console().print(table)
