"""The ``platform`` command: ``platform up`` runs the gateway, plugins add ``platform <name>``.

Bad input never shows a traceback: it prints one red line and exits non-zero (2 for bad
settings, options or secret, 1 when the platform cannot start or was stopped by force).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from platform_core import (
    BadInputError,
    PlatformError,
    PlatformSettings,
    Plugin,
    auth,
    cap_memory,
    discover_plugins,
    load_settings,
)
from platform_core.service import StartError, configure_service_logging

from .app import create_app
from .serve import Outcome, bind, serve, url_of
from .versions import platform_versions

__all__ = ["build_cli", "main"]

log = logging.getLogger(__name__)

_stderr = Console(stderr=True, soft_wrap=True)
_BUILTIN_COMMANDS = frozenset({"up", "token"})


def _error(message: str) -> None:
    _stderr.print(f"[bold red]error:[/] [red]{escape(message)}[/]")


def _fail(message: str, code: int) -> NoReturn:
    _error(message)
    raise typer.Exit(code)


def _show_version(value: bool) -> None:
    if value:
        for name, number in platform_versions().items():
            typer.echo(f"{name} {number}")
        raise typer.Exit()


def _configure_logging(level: str) -> None:
    """Configure logging once, for the whole process (the service kit's JSON lines, with
    credentials redacted); handlers an embedding program or test runner installed are kept."""
    configure_service_logging(level)


def build_cli(plugins: list[Plugin] | None = None) -> typer.Typer:
    """The ``platform`` Typer app with each plugin's CLI as ``platform <name>``.

    ``plugins`` defaults to the installed ones; if they fail to load, the error is printed
    and the built-in commands still work (``up`` then refuses to start).
    """
    load_error: str | None = None
    if plugins is None:
        try:
            plugins = discover_plugins()
        except PlatformError as exc:
            load_error = str(exc)
            _error(f"{load_error} (its commands are missing; fix or uninstall that package)")
            plugins = []

    cli = typer.Typer(
        name="platform",
        help="The data platform: run it with [bold]platform up[/], then open /docs.",
        rich_markup_mode="rich",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,  # locals may hold secrets
    )

    @cli.callback()
    def root(
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                help="Print the versions of the installed platform packages and exit.",
                callback=_show_version,
                is_eager=True,
            ),
        ] = False,
    ) -> None:
        """The data platform: storage, SQL, pipelines and a live database behind one gateway."""

    @cli.command()
    def up(
        host: Annotated[
            str | None,
            typer.Option(help="Address to listen on (default: PLATFORM_HOST or 127.0.0.1)."),
        ] = None,
        port: Annotated[
            int | None,
            typer.Option(
                min=0, max=65535, help="Port to listen on; 0 picks a free one (default: 8080)."
            ),
        ] = None,
        home: Annotated[
            Path | None,
            typer.Option(help="Data directory (default: PLATFORM_HOME or ./.platform)."),
        ] = None,
        log_level: Annotated[
            str | None, typer.Option(help="debug, info, warning or error (default: info).")
        ] = None,
    ) -> None:
        """Start the gateway with every installed plugin; Ctrl-C stops it (twice: by force)."""
        if load_error is not None:
            _fail(f"cannot start: {load_error}", 1)
        overrides: dict[str, Any] = {
            "host": host,
            "port": port,
            "log_level": log_level.lower() if log_level is not None else None,
        }
        if home is not None:
            overrides["home"] = home.expanduser().resolve()
        try:
            given = {k: v for k, v in overrides.items() if v is not None}
            settings = load_settings(PlatformSettings, **given)
        except BadInputError as exc:
            _fail(str(exc), 2)
        if home is not None:
            # Plugins read their own settings from the environment; they must see this home.
            os.environ["PLATFORM_HOME"] = str(settings.home)
        try:
            Path(settings.home).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(f"cannot create the data directory {settings.home}: {exc}", 2)

        try:
            auth.load_secret(settings)  # made once if missing; create_app reads it again
        except PlatformError as exc:
            _fail(str(exc), 2)

        try:
            sock = bind(settings.host, settings.port)
        except StartError as exc:
            _fail(exc.message, 1)  # one line, before any log line
        _configure_logging(settings.log_level)
        try:
            app = create_app(settings, plugins)
        except BadInputError as exc:
            _fail(str(exc), 2)
        except PlatformError as exc:
            _fail(f"cannot start: {exc}", 1)
        capped = cap_memory(settings.memory_headroom)  # a query errors, the process lives
        if capped is not None:
            logging.getLogger("platform").info("address space capped at %d MiB", capped >> 20)
        url = url_of(settings.host, sock.getsockname()[1])
        outcome = serve(app, sock, url, settings.log_level, Path(settings.home))
        if outcome is Outcome.FAILED:
            _fail("the platform did not start (the log above says why)", 1)
        if outcome is Outcome.FORCED:
            _fail("stopped by force: plugins still stopping were interrupted", 1)

    @cli.command()
    def token(
        sub: Annotated[str, typer.Option(help="Subject (user id) of the token.")] = "admin",
        admin: Annotated[
            bool, typer.Option("--admin", help="Give the token admin rights.")
        ] = False,
        ttl: Annotated[
            int | None,
            typer.Option(min=1, help="Lifetime in seconds (default: PLATFORM_TOKEN_TTL_SECONDS)."),
        ] = None,
        home: Annotated[
            Path | None, typer.Option(help="Data directory whose secret signs the token.")
        ] = None,
    ) -> None:
        """Print a token signed with the platform secret (for scripts: `--token $(platform token)`).

        The secret must exist already (`PLATFORM_SECRET`, or made by `platform up` under the
        home): a token signed with a new secret would be accepted by nobody.
        """
        try:
            options: dict[str, Any] = {"home": home} if home is not None else {}
            settings = load_settings(PlatformSettings, **options)
            ttl_seconds = ttl if ttl is not None else settings.token_ttl_seconds
            token_signer = auth.signer(settings, create=False)
            value = token_signer.issue(sub, admin=admin, ttl_seconds=ttl_seconds)
        except PlatformError as exc:
            _fail(str(exc), 2)
        typer.echo(value)

    for plugin in plugins:
        if plugin.cli is None:
            continue
        if plugin.name in _BUILTIN_COMMANDS:
            _error(f"plugin {plugin.name!r} is named like a built-in command; its CLI is skipped")
        elif not isinstance(plugin.cli, typer.Typer):
            _error(f"plugin {plugin.name!r}: its cli is {type(plugin.cli).__name__}, not a Typer")
        else:
            if plugin.description:
                cli.add_typer(plugin.cli, name=plugin.name, help=plugin.description)
            else:  # keep the help the plugin's Typer app gives itself
                cli.add_typer(plugin.cli, name=plugin.name)
    return cli


def main() -> None:
    """Entry point of the ``platform`` console script."""
    build_cli()(prog_name="platform")
