"""``elkyn`` (and ``platform elkyn``): serve, backup, restore, export, import, token."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import lmdb
import typer

from platform_core import PlatformError
from platform_core.cli import expected_errors, fail, new_app, version_option
from platform_core.mallocarenas import bound_arenas_when_serving

if TYPE_CHECKING:  # settings (pydantic) and auth (PyJWT) load when a command runs, not for --help
    from platform_core import PlatformSettings

    from .settings import ElkynSettings

__all__ = ["cli", "main"]

cli = new_app(
    help="Elkyn: a real-time JSON tree database with Firebase's REST and streaming API.",
    no_args_is_help=True,
)
log = logging.getLogger("elkyn")


@cli.callback()
def _main(
    version: Annotated[bool, version_option(elkyn="platform-elkyn")] = False,
) -> None:
    """Elkyn command line."""


_fail = fail  # the serve command's error exit


def elkyn_settings(base: PlatformSettings | None = None, **overrides: Any) -> ElkynSettings:
    """:func:`elkyn.settings.elkyn_settings`, imported when a command runs (pydantic-settings
    is the larger part of a CLI's start-up, and ``--help`` needs none of it)."""
    from .settings import elkyn_settings as load

    return load(base, **overrides)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (printed).")] = 9000,
    path: Annotated[
        Path | None, typer.Option(help="LMDB directory (default: $PLATFORM_HOME/elkyn).")
    ] = None,
    memory: Annotated[bool, typer.Option(help="Keep the database in memory only.")] = False,
    dev: Annotated[
        bool, typer.Option(help="Dev mode: POST /auth/token, emulator conventions (loopback).")
    ] = False,
    replica_of: Annotated[
        str | None,
        typer.Option(
            help="Be a replica of the primary at this URL (reads here, writes forwarded)."
        ),
    ] = None,
    election_port: Annotated[
        int | None,
        typer.Option(help="Raft port of this server: elect the primary among the --peer servers."),
    ] = None,
    peer: Annotated[
        list[str] | None,
        typer.Option(help="A server of the election cluster: RAFT_HOST:PORT=ELKYN_URL (repeat)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the database at / over HTTP (REST, streaming, rules); HTTPS with
    PLATFORM_TLS_CERT and PLATFORM_TLS_KEY."""
    from platform_core import auth
    from platform_core.service import StartError, bind, configure_service_logging, serve
    from platform_core.tls import server_tls

    from .server import ElkynApp
    from .settings import check_dev
    from .store import Store

    try:
        overrides = _serve_overrides(memory, dev, path, replica_of, election_port, peer)
        settings = elkyn_settings(**overrides)
        check_dev(settings, host)
        sock = bind(host, port, port_setting=None, host_setting=None)  # a one-line StartError
        signer = auth.signer(settings)
        tls = server_tls(settings)  # HTTPS with PLATFORM_TLS_CERT/KEY, checked here
        store = Store(  # takes the directory's owner lock: one process per database
            None if settings.memory else settings.db_path(),
            memory=settings.memory,
            map_size=settings.map_size,
            log_size=settings.log_size,
            signer=signer,
            max_pending_events=settings.max_pending_events,
            max_pending_bytes=settings.max_pending_bytes,
        )
    except (PlatformError, StartError, lmdb.Error, OSError, ValueError) as exc:
        _fail(exc)
        return
    configure_service_logging(log_level)
    app = ElkynApp(settings, store, signer, own_lifespan=True)
    if settings.replica_of is not None:  # --replica-of or ELKYN_REPLICA_OF
        from .forward import follow

        follow(app, settings.replica_of, settings)
    from .replica import serve_log

    app.replication = serve_log
    if settings.election_port is not None:
        _elect(app, settings, host, sock.getsockname()[1], tls is not None)
    try:
        serve(
            app,
            sock,
            what="elkyn",
            host=host,
            log_level=log_level,
            home="memory" if settings.memory else settings.db_path(),
            access_log=False,
            tls=tls,
            timeout_graceful_shutdown=2,
        )
    except StartError as exc:  # the last line says why, not only the log
        _fail(exc)


def _serve_overrides(
    memory: bool,
    dev: bool,
    path: Path | None,
    replica_of: str | None,
    election_port: int | None,
    peer: list[str] | None,
) -> dict[str, Any]:
    """``serve``'s options as settings overrides (the environment fills the rest)."""
    overrides: dict[str, Any] = {"memory": memory, "dev": dev}
    if path is not None:
        overrides["path"] = path
    if replica_of is not None:
        if not replica_of.startswith(("http://", "https://")):
            raise ValueError(
                f"--replica-of takes the primary's URL (http://host:port), not {replica_of!r}"
            )
        overrides["replica_of"] = replica_of
    if election_port is not None:
        overrides["election_port"] = election_port
    if peer:
        overrides["election_peers"] = ",".join(peer)
    return overrides


def _elect(app: Any, settings: ElkynSettings, host: str, port: int, https: bool) -> None:
    """Join the election cluster (``elkyn.election``): wait, fenced, for a named primary."""
    from .election import Election, parse_peers
    from .fencing import Fence, default_sync_replicas

    if settings.replica_of is not None:
        _fail(
            ValueError(
                "--replica-of and --election-port exclude each other: the election "
                "names the primary"
            )
        )
    try:
        peers = parse_peers(settings.election_peers)
    except ValueError as exc:
        _fail(exc)
        return
    raft = f"{host}:{settings.election_port}"
    others = [p for p in peers if p.raft != raft]
    if not others:  # alone: the primary of itself, no Raft and no wait at start-up
        return
    sync = settings.sync_replicas
    if sync is None:
        sync = default_sync_replicas(len(others) + 1)
    app.fence = Fence(sync, settings.sync_timeout_seconds)
    own = [p.url for p in peers if p.raft == raft]  # the URL the others know this server by
    url = own[0] if own else f"{'https' if https else 'http'}://{host}:{port}"
    app.current_store().replica_of = "the primary the election names"  # no local writes yet
    app.election = Election(app, settings, url, raft, peers)
    app.election.start()


def _open(path: Path | None) -> Any:
    from .store import Store

    settings: ElkynSettings = elkyn_settings(None, **({"path": path} if path else {}))
    return Store(settings.db_path(), map_size=settings.map_size)


@cli.command()
def backup(
    target: Annotated[Path, typer.Argument(help="Empty directory to write the copy to.")],
    path: Annotated[Path | None, typer.Option(help="LMDB directory to copy.")] = None,
) -> None:
    """Consistent copy of the database (safe while a server is writing to it)."""
    from .ops import backup as do_backup

    with expected_errors(OSError, lmdb.Error):
        settings = elkyn_settings(None, **({"path": path} if path else {}))
        do_backup(settings.db_path(), target)
    typer.echo(f"backed up to {target}")


@cli.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A directory made by `elkyn backup`.")],
    path: Annotated[Path | None, typer.Option(help="LMDB directory to restore into.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing database.")] = False,
) -> None:
    """Put a backup in place (the server must be stopped)."""
    from .ops import restore as do_restore

    with expected_errors(OSError):
        settings = elkyn_settings(None, **({"path": path} if path else {}))
        do_restore(source, settings.db_path(), force=force)
    typer.echo(f"restored {source} into {settings.db_path()}")


@cli.command("export")
def export_json(
    out: Annotated[Path, typer.Argument(help="JSON file to write ('-' for stdout).")],
    at: Annotated[str, typer.Option("--at", help="Database path to export.")] = "/",
    path: Annotated[Path | None, typer.Option(help="LMDB directory.")] = None,
) -> None:
    """Write the value at a path as JSON."""
    with expected_errors():
        where = elkyn_settings(None, **({"path": path} if path else {})).db_path()
    if not (where / "data.mdb").is_file():
        fail(f"no Elkyn database at {where} (no data.mdb); check --path", 4)
    with expected_errors(OSError, lmdb.Error), _open(path) as db:
        value = db.get(at)
    text = json.dumps(value, ensure_ascii=False)
    if str(out) == "-":
        typer.echo(text)
    else:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)


@cli.command("import")
def import_json(
    src: Annotated[Path, typer.Argument(help="JSON file to read.")],
    at: Annotated[str, typer.Option("--at", help="Database path to replace.")] = "/",
    path: Annotated[Path | None, typer.Option(help="LMDB directory.")] = None,
) -> None:
    """Replace the value at a path with a JSON file's content (one transaction)."""
    with expected_errors(OSError, ValueError, lmdb.Error):
        value = json.loads(src.read_text())
        with _open(path) as db:
            db.set(at, value)
    typer.echo(f"imported {src} at {at}")


@cli.command()
def token(
    uid: Annotated[str, typer.Argument(help="The uid the rules see as auth.uid.")],
    admin: Annotated[bool, typer.Option(help="An admin token (bypasses rules).")] = False,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print a platform token for a user (needs the platform secret)."""
    from platform_core import auth

    with expected_errors():
        typer.echo(
            auth.signer(elkyn_settings(), create=False).issue(uid, admin=admin, ttl_seconds=ttl)
        )


def main() -> None:
    bound_arenas_when_serving(["serve"])
    cli()
