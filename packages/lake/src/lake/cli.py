"""``lake`` (and ``platform lake``): run a node, upload a file, run a query."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from platform_core import (
    PlatformError,
    auth,
    cap_memory,
)

from .settings import lake_settings

__all__ = ["cli", "main"]

cli = typer.Typer(
    help="Lake: chunked, checksummed datasets with read-only SQL.", no_args_is_help=True
)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"lake {__version__}")
        raise typer.Exit()


@cli.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Lake command line."""


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@cli.command()
def node(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="HTTP port (API and gossip); 0 picks a free one.")
    ] = 8700,
    flight_port: Annotated[
        int | None, typer.Option(help="Flight port; 0 picks a free one (default LAKE_FLIGHT_PORT).")
    ] = None,
    join: Annotated[
        str | None, typer.Option(help="HOST:PORT of any member's HTTP address to join through.")
    ] = None,
    home: Annotated[Path | None, typer.Option(help="Data directory (PLATFORM_HOME).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run a lake node serving the API under /api/lake."""
    from platform_core.ownership import lock_directory
    from platform_core.service import StartError, bind, configure_service_logging, serve

    from .node import open_catalog
    from .server import create_app

    try:
        overrides: dict[str, Any] = {"home": home} if home else {}
        if flight_port is not None:
            overrides["flight_port"] = flight_port
        settings = lake_settings(None, **overrides)
        sock = bind(host, port, port_setting=None, host_setting=None)  # a one-line StartError
        # One owner per node directory: fail here in one line, not in the app's lifespan.
        lock_directory(
            open_catalog(settings).root.parent,
            what="the lake node's data",
            setting="LAKE_DATA_DIR or --home",
        ).release()
        signer = auth.signer(settings)
    except (PlatformError, StartError, OSError) as exc:
        _fail(exc)
        return
    configure_service_logging(log_level)  # one JSON object per line, credentials redacted
    capped = cap_memory(settings.memory_headroom)
    if capped is not None:
        logging.getLogger("lake").info("address space capped at %d MiB", capped >> 20)
    bound = sock.getsockname()[1]
    app = create_app(settings, signer, http_addr=f"{settings.advertise_host}:{bound}", join=join)
    serve(
        app,
        sock,
        what="lake node",
        host=host,
        log_level=log_level,
        home=settings.home,
        line="",  # the app prints its banner (node id, URL, Flight address) once it has joined
        access_log=False,
        http="httptools",
        timeout_graceful_shutdown=2,
    )


def _token(token: str | None) -> str | None:
    found = auth.client_token(token)
    if found is None and os.environ.get("PLATFORM_SECRET"):
        found = auth.issue_token("lake-cli", admin=True)
    return found


@cli.command()
def upload(
    file: Annotated[
        Path, typer.Argument(help="CSV, JSONL or Parquet file.", exists=True, dir_okay=False)
    ],
    name: Annotated[str, typer.Option(help="Dataset name (also its SQL table name).")],
    node: Annotated[
        str, typer.Option(help="Base URL of a node or gateway.")
    ] = "http://127.0.0.1:8080",
    token: Annotated[str | None, typer.Option(help="Token (default: PLATFORM_TOKEN).")] = None,
    format: Annotated[
        str | None, typer.Option(help="csv, jsonl or parquet (default: suffix).")
    ] = None,
    type: Annotated[
        list[str] | None, typer.Option("--type", help="Column type override, COLUMN=TYPE.")
    ] = None,
    part_mb: Annotated[int, typer.Option(help="Part size in MiB.")] = 8,
    parallel: Annotated[int, typer.Option(help="Parts in flight.")] = 4,
    append: Annotated[bool, typer.Option(help="Append to the dataset's current version.")] = False,
    resume: Annotated[str | None, typer.Option(help="Upload id to resume.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final status as JSON.")
    ] = False,
) -> None:
    """Upload FILE as dataset NAME in parallel checksummed parts, with a progress bar."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from .client import Client

    overrides: dict[str, Any] = {}
    for item in type or []:
        column, sep, kind = item.partition("=")
        if not sep:
            _fail(ValueError(f"--type {item!r} must look like COLUMN=TYPE"))
        overrides[column] = kind
    try:
        with (
            Client(node, _token(token)) as client,
            Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                transient=True,
                disable=as_json or not sys.stderr.isatty(),
            ) as bar,
        ):
            task = bar.add_task(f"uploading {file.name}", total=file.stat().st_size)
            status = client.upload(
                file,
                name,
                format=format,
                overrides=overrides,
                part_size=part_mb << 20,
                parallel=parallel,
                append=append,
                upload_id=resume,
                progress=lambda done, total: bar.update(task, completed=done),
            )
    except PlatformError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(status))
    else:
        typer.echo(
            f"{name}: version {status['version']}, {status['rows']} rows in {status['chunks']} chunks"
        )


@cli.command()
def query(
    sql: Annotated[str, typer.Argument(help="One SELECT, SHOW TABLES, DESCRIBE or EXPLAIN.")],
    node: Annotated[
        str, typer.Option(help="Base URL of a node or gateway.")
    ] = "http://127.0.0.1:8080",
    token: Annotated[str | None, typer.Option(help="Token (default: PLATFORM_TOKEN).")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of JSON.")] = False,
) -> None:
    """Run a read-only query and print the result."""
    from .client import Client

    try:
        with Client(node, _token(token)) as client:
            if csv:
                typer.echo(client.query_csv(sql), nl=False)
            else:
                typer.echo(json.dumps(client.query(sql), default=str))
    except PlatformError as exc:
        _fail(exc)


def main() -> None:
    cli()
