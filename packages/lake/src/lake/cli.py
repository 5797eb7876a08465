"""``lake`` (and ``platform lake``): run a node; upload, list, describe, query and remove datasets.

Client commands talk to ``--node`` (default: the gateway ``platform up`` runs on
``PLATFORM_HOME``, else ``http://127.0.0.1:8080``) with the token ``platform_core.cli``
resolves (``--token``, ``PLATFORM_TOKEN``, ``platform login``, or minted on this machine).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from platform_core import BadInputError, PlatformError
from platform_core.cli import (
    AS_CSV,
    AS_JSON,
    TOKEN_OPTION,
    OutputFormat,
    default_url,
    expected_errors,
    fail,
    new_app,
    output_format,
    print_rows,
    print_table,
    resolve_token,
    version_option,
)
from platform_core.mallocarenas import bound_arenas_when_serving

if TYPE_CHECKING:  # settings (pydantic), pyarrow and rich load when a command runs, not for --help
    import pyarrow as pa
    from rich.progress import Progress

    from platform_core import PlatformSettings

    from .api.client import Client
    from .settings import LakeSettings

__all__ = ["cli", "main"]

cli = new_app(help="Lake: chunked, checksummed datasets with read-only SQL.", no_args_is_help=True)


@cli.callback()
def _main(
    version: Annotated[bool, version_option(lake="platform-lake")] = False,
) -> None:
    """Lake command line."""


_fail = fail  # the node command's error exit


def lake_settings(base: PlatformSettings | None = None, **overrides: Any) -> LakeSettings:
    """:func:`lake.settings.lake_settings`, imported when a command runs (pydantic-settings
    is the larger part of a CLI's start-up, and ``--help`` needs none of it)."""
    from .settings import lake_settings as load

    return load(base, **overrides)


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
    from platform_core import auth, cap_memory
    from platform_core.ownership import lock_directory
    from platform_core.service import StartError, bind, configure_service_logging, serve
    from platform_core.tls import server_tls

    from .api.server import create_app
    from .cluster.flight import check_flight_port  # here: pyarrow.flight is slow to import
    from .node import open_catalog
    from .storage.dataformat import check_format

    try:
        overrides: dict[str, Any] = {"home": home} if home else {}
        if flight_port is not None:
            overrides["flight_port"] = flight_port
        settings = lake_settings(None, **overrides)
        sock = bind(host, port, port_setting=None, host_setting=None)  # a one-line StartError
        # One owner per node directory, and a format this lake knows: fail here in one line,
        # not in the app's lifespan.
        node_dir = open_catalog(settings).root.parent
        lock_directory(
            node_dir, what="the lake node's data", setting="LAKE_DATA_DIR or --home"
        ).release()
        check_format(node_dir, "the lake node's data")
        signer = auth.signer(settings)
        tls = server_tls(settings)  # HTTPS and grpc+tls with PLATFORM_TLS_CERT/KEY
        check_flight_port(settings.advertise_host, settings.flight_port)
    except (PlatformError, StartError, OSError) as exc:
        _fail(exc)
        return
    configure_service_logging(log_level)  # one JSON object per line, credentials redacted
    capped = cap_memory(settings.memory_headroom)
    if capped is not None:
        logging.getLogger("lake").info("address space capped at %d MiB", capped >> 20)
    bound = sock.getsockname()[1]
    app = create_app(settings, signer, http_addr=f"{settings.advertise_host}:{bound}", join=join)
    failed: list[str] = []

    def watch_join(server: Any) -> None:
        if join:
            watch = (app.state.holder, server, settings.join_timeout_seconds, failed)
            threading.Thread(target=_await_join, args=watch, daemon=True).start()

    try:
        serve(
            app,
            sock,
            before_run=watch_join,
            what="lake node",
            host=host,
            log_level=log_level,
            home=settings.home,
            line="",  # the app prints its banner (node id, URL, Flight address) once it has joined
            access_log=False,
            tls=tls,
            http="httptools",
            timeout_graceful_shutdown=2,
        )
    except StartError as exc:  # the last line says why, not only the log
        _fail(exc)
    if failed:
        _fail(RuntimeError(failed[0]))


def _await_join(holder: Any, server: Any, timeout: float, failed: list[str]) -> None:
    """Stop the node (exit non-zero, one line) if no peer accepts it within ``timeout``."""
    while holder.node is None or holder.node.cluster is None:
        if server.should_exit:
            return
        time.sleep(0.05)
    try:
        holder.node.cluster.wait_joined(timeout)
    except PlatformError as exc:
        failed.append(exc.message)
        server.should_exit = True


NODE = typer.Option(
    "--node",
    "--url",
    help="Base URL of a node or gateway (default: the one `platform up` runs, else :8080).",
)
TOKEN = TOKEN_OPTION
JSON, CSV = AS_JSON, AS_CSV
T = TypeVar("T")


def _client(node: str | None, token: str | None) -> Client:
    """A client of ``node`` carrying the token :func:`platform_core.cli.resolve_token` finds."""
    from platform_core.tls import client_context

    from .api.client import Client

    url = node or default_url()
    return Client(url, resolve_token(url, token), verify=client_context(lake_settings(None)))


def _fetch(
    node: str | None, token: str | None, as_json: bool, as_csv: bool, call: Callable[[Client], T]
) -> tuple[OutputFormat, T]:
    """The output format asked for and ``call``'s answer from the node (errors exit)."""
    with expected_errors():
        fmt = output_format(as_json, as_csv)
        with _client(node, token) as client:
            return fmt, call(client)
    raise AssertionError("unreachable")  # pragma: no cover  (expected_errors exits)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _age(since: float) -> str:
    seconds = max(0, int(time.time() - since))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _interrupted(file: Path, name: str, url: str, upload_id: str, done: int, total: int) -> None:
    """Say which upload a Ctrl-C left behind and the exact command that finishes it."""
    command = shlex.join(["lake", "upload", str(file), "--name", name, "--node", url])
    typer.echo(
        f"interrupted: upload {upload_id} of {file.name} is kept on the node "
        f"({_size(done)} of {_size(total)} sent)",
        err=True,
    )
    typer.echo(f"resume with: {command} --resume {upload_id}", err=True)


def _check_resume(status: dict[str, Any], file: Path, name: str, size: int) -> None:
    """Refuse to resume an upload of another dataset or another file (its parts would mix)."""
    upload_id = status.get("id")
    if status.get("name") != name:
        fail(
            BadInputError(
                f"upload {upload_id} is for dataset {status.get('name')!r}, not {name!r}: resume "
                f"it with --name {status.get('name')}, or start a new upload without --resume"
            )
        )
    if int(status.get("size", -1)) != size:
        fail(
            BadInputError(
                f"upload {upload_id} is of a {status.get('size')}-byte file "
                f"({status.get('filename')}), but {file} has {size} bytes: resume it with the "
                "same file, or start a new upload without --resume"
            )
        )


def _type_overrides(items: list[str]) -> dict[str, Any]:
    """``--type COLUMN=TYPE`` options as the upload's column type overrides (a usage error
    exits 2)."""
    overrides: dict[str, Any] = {}
    for item in items:
        column, sep, kind = item.partition("=")
        if not sep:
            fail(f"--type {item!r} must look like COLUMN=TYPE", 2)
        overrides[column] = kind
    return overrides


def _check_parts(part_mb: float, parallel: int) -> None:
    """Refuse a part size that is not a positive number, or fewer than one part in flight."""
    if not math.isfinite(part_mb) or part_mb <= 0 or parallel < 1:
        fail(
            BadInputError(
                f"--part-mb must be a positive number (got {part_mb}) and --parallel at least 1 "
                f"(got {parallel})"
            )
        )


def _transfer_bar(hidden: bool) -> Progress:
    """The upload's progress on stderr (bytes, speed, time), hidden for ``--json`` or when
    stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    return Progress(
        SpinnerColumn(),
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=hidden or not sys.stderr.isatty(),
    )


@cli.command()
def upload(
    file: Annotated[
        Path, typer.Argument(help="CSV, JSONL or Parquet file.", exists=True, dir_okay=False)
    ],
    name: Annotated[str, typer.Option(help="Dataset name (also its SQL table name).")],
    node: Annotated[str | None, NODE] = None,
    token: Annotated[str | None, TOKEN] = None,
    format: Annotated[
        str | None, typer.Option(help="csv, jsonl or parquet (default: suffix).")
    ] = None,
    type: Annotated[
        list[str] | None, typer.Option("--type", help="Column type override, COLUMN=TYPE.")
    ] = None,
    part_mb: Annotated[float, typer.Option(help="Part size in MiB (2^20 bytes).")] = 8,
    parallel: Annotated[int, typer.Option(help="Parts in flight.")] = 4,
    append: Annotated[bool, typer.Option(help="Append to the dataset's current version.")] = False,
    resume: Annotated[
        str | None, typer.Option(help="Upload id to resume (Ctrl-C prints it).")
    ] = None,
    as_json: Annotated[bool, JSON] = False,
) -> None:
    """Upload FILE as dataset NAME in parallel checksummed parts, with a progress bar.

    Ctrl-C keeps what was sent and prints the command that resumes the upload; the progress
    shows the transfer, then the node's conversion into chunks.
    """
    overrides = _type_overrides(type or [])
    _check_parts(part_mb, parallel)
    url = node or default_url()
    upload_id = resume
    done, total = 0, file.stat().st_size

    def moved(sent: int, size: int) -> None:
        nonlocal done
        done = sent
        bar.update(task, completed=sent)

    try:
        with (
            expected_errors(OSError),
            _client(url, token) as client,
            _transfer_bar(hidden=as_json) as bar,
        ):
            if upload_id is None:
                info = client.start_upload(
                    file,
                    name,
                    format=format,
                    overrides=overrides,
                    part_size=int(part_mb * (1 << 20)),
                    append=append,
                )
                upload_id = str(info["id"])
            else:
                _check_resume(client.upload_status(upload_id), file, name, total)
            task = bar.add_task(f"uploading {file.name}", total=total)
            client.upload(
                file, name, parallel=parallel, upload_id=upload_id, wait=False, progress=moved
            )
            bar.update(task, description=f"converting {file.name}", completed=total)
            status = client.wait_upload(upload_id)
    except KeyboardInterrupt:
        if upload_id is None:
            typer.echo("interrupted before the upload started; nothing was kept", err=True)
        else:
            _interrupted(file, name, url, upload_id, done, total)
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(status))
    else:
        typer.echo(
            f"{name}: version {status['version']}, {status['rows']} rows in {status['chunks']} chunks"
        )


@cli.command()
def uploads(
    node: Annotated[str | None, NODE] = None,
    token: Annotated[str | None, TOKEN] = None,
    all_states: Annotated[
        bool, typer.Option("--all", help="Also committed, failed and aborted uploads.")
    ] = False,
    as_json: Annotated[bool, JSON] = False,
    as_csv: Annotated[bool, CSV] = False,
) -> None:
    """List your unfinished uploads (an admin sees everyone's): id, dataset, bytes, age."""
    fmt, found = _fetch(node, token, as_json, as_csv, lambda client: client.uploads())
    rows = [
        [
            u["id"],
            u["name"],
            u["state"],
            u.get("received_bytes", 0),
            u["size"],
            _age(u.get("created") or time.time()),
        ]
        for u in found
        if all_states or u["state"] in ("open", "converting")
    ]
    print_rows(["id", "dataset", "state", "bytes_done", "bytes_total", "age"], rows, fmt)


@cli.command("ls")
def list_datasets(
    node: Annotated[str | None, NODE] = None,
    token: Annotated[str | None, TOKEN] = None,
    as_json: Annotated[bool, JSON] = False,
    as_csv: Annotated[bool, CSV] = False,
) -> None:
    """List the datasets: name, version, rows, size, owner, age."""
    fmt, found = _fetch(node, token, as_json, as_csv, lambda client: client.datasets())
    cols = ["name", "version", "rows", "bytes", "owner", "age"]
    rows = [
        [d["name"], d["version"], d["rows"], d["bytes"], d.get("owner"), _age(d["created"])]
        for d in found
    ]
    print_rows(cols, rows, fmt)


@cli.command()
def schema(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    node: Annotated[str | None, NODE] = None,
    token: Annotated[str | None, TOKEN] = None,
    as_json: Annotated[bool, JSON] = False,
    as_csv: Annotated[bool, CSV] = False,
) -> None:
    """Show a dataset's columns and their types."""
    fmt, found = _fetch(node, token, as_json, as_csv, lambda client: client.dataset(name))
    rows = [[c["name"], c["type"], c["nullable"]] for c in found["columns"]]
    print_rows(["column", "type", "nullable"], rows, fmt)


@cli.command("rm")
def remove(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    node: Annotated[str | None, NODE] = None,
    token: Annotated[str | None, TOKEN] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a dataset (its owner or an admin); asks first unless --yes."""
    with expected_errors(), _client(node, token) as client:
        found = client.dataset(name)
        if not yes and not typer.confirm(
            f"remove dataset {found['name']} ({found['rows']} rows, version {found['version']})?"
        ):
            fail(f"dataset {name} was not removed", 1)
        client.delete(found["name"])
    typer.echo(f"removed {found['name']}")


_DESCRIBE = re.compile(r"^\s*describe\b", re.I)
_EXPLAIN = re.compile(r"^\s*explain\b", re.I)


def _print_engine(plan: dict[str, Any]) -> None:
    """Which engine ran the statement and why; Elytra's stages, one line each."""
    if "engine" in plan:
        why = f" ({plan['why']})" if plan.get("why") else ""
        typer.echo(f"engine: {plan['engine']}{why}")
    for s in plan.get("stages") or []:
        joins = ", ".join(f"{j['strategy']} join of {j['small_side']}" for j in s["joins"])
        ran = s.get("analyze")
        did = (
            f"; ran {ran['tasks']} task(s): {ran['rows_out']} rows, {_size(ran['bytes_in'])} "
            f"read, {_size(ran['bytes_to_exchange'])} to exchanges, "
            f"{_size(ran['bytes_to_driver'])} to the driver"
            if ran
            else ""
        )
        typer.echo(
            f"  stage {s['index']} ({s['kind']}) reads {s['reads']}: {s['task_count']} task(s)"
            + (f", {joins}" if joins else "")
            + f" -> {s['output']}{did}"
        )
    for e in plan.get("exchanges") or []:
        typer.echo(
            f"  {e['strategy']} {e['name']}: {e['how']} join of stages {e['left_stage']} and "
            f"{e['right_stage']}, {e['partitions']} partitions"
        )


def _print_plan(plan: dict[str, Any]) -> None:
    """An EXPLAIN's plan in a few lines: the engine; Elytra's stages, or the lake's
    distributed fragments, notes and bytes moved."""
    _print_engine(plan)
    if "kind" not in plan:
        return
    typer.echo(f"plan: {plan.get('kind')}")
    pushdown = plan.get("pushdown") or {}
    moved = plan.get("moved") or {}
    per = moved.get("datasets") or {}
    for name, fragment in sorted((plan.get("fragments") or {}).items()):
        got = per.get(name, {})
        typer.echo(
            f"  {name}: {got.get('rows', 0)} rows, {_size(got.get('gathered_bytes', 0))} "
            f"({_size(got.get('bytes', 0))} over the network) <- {fragment}"
        )
        for note in (pushdown.get(name) or {}).get("notes", []):
            typer.echo(f"    note: {note}")
    if moved:
        typer.echo(
            f"into the coordinator: {moved.get('rows', 0)} rows, "
            f"{_size(moved.get('gathered_bytes', 0))} ({_size(moved.get('bytes', 0))} over the "
            "network)"
        )


def _platform_type_names(result: pa.Table) -> pa.Table:
    """DESCRIBE's ``column_type`` as ``platform_core`` names types (the node sends Arrow's)."""
    import pyarrow as pa  # here, not at import: `lake --help` does not load pyarrow

    from platform_core import parse_type

    def name(text: str | None) -> str | None:
        if text is None:
            return None
        try:
            return str(parse_type(text))
        except PlatformError:
            return text

    i = result.schema.get_field_index("column_type")
    if i < 0:
        return result
    names = [name(v) for v in result.column(i).to_pylist()]
    return result.set_column(i, "column_type", pa.array(names, pa.string()))


@cli.command()
def query(
    sql: Annotated[str, typer.Argument(help="One SELECT, SHOW TABLES, DESCRIBE or EXPLAIN.")],
    node: Annotated[str | None, NODE] = None,
    token: Annotated[str | None, TOKEN] = None,
    as_json: Annotated[bool, JSON] = False,
    as_csv: Annotated[bool, CSV] = False,
) -> None:
    """Run a read-only query and print the result: a table, or --json / --csv.

    EXPLAIN of a query that runs across nodes prints, after its rows, what each dataset's
    fragment asked the nodes for (columns and filter, and why not more) and what reached the
    coordinator.
    """
    if _EXPLAIN.match(sql):
        fmt, answer = _fetch(node, token, as_json, as_csv, lambda client: client.query(sql))
        from platform_core.cli.output import Column

        cols = [Column(c["name"], c["type"]) for c in answer["columns"]]
        print_rows(cols, answer["rows"], fmt)
        if fmt == OutputFormat.TABLE and answer.get("plan"):
            _print_plan(answer["plan"])
        return
    fmt, result = _fetch(node, token, as_json, as_csv, lambda client: client.query_arrow(sql))
    if _DESCRIBE.match(sql):
        result = _platform_type_names(result)
    print_table(result, fmt)


@cli.command()
def backup(
    target: Annotated[
        str,
        typer.Argument(
            help="New or empty directory to write (with --node: a name under the node's "
            "LAKE_BACKUP_DIR)."
        ),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="The node's data directory (default: LAKE_DATA_DIR, else the node on --home)."
        ),
    ] = None,
    home: Annotated[Path | None, typer.Option(help="Platform home (PLATFORM_HOME).")] = None,
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Every kept version, not only the live ones.")
    ] = False,
    node: Annotated[
        str | None,
        typer.Option("--node", "--url", help="Ask this running node (admin) to back itself up."),
    ] = None,
    token: Annotated[str | None, TOKEN] = None,
    as_json: Annotated[bool, JSON] = False,
) -> None:
    """Back up a node's datasets (manifests and every chunk, each verified) into TARGET.

    Works while the node runs. Without --node it reads the data directory on this machine;
    with --node the node writes the backup itself (and reads a corrupt or missing chunk from
    a replica).
    """
    from .node import _node_id
    from .storage.backup import open_source, take_backup

    with expected_errors(OSError):
        if node is not None:
            with _client(node, token) as client:
                report = client.backup(target, all_versions=all_versions)
        else:
            settings = lake_settings(None, **({"home": home} if home else {}))
            if (
                data_dir is None
                and settings.data_dir is None
                and not (Path(settings.home) / "lake" / "node-id").exists()
            ):
                fail(BadInputError(f"no lake node on {settings.home}: give --data-dir or --home"))
            node_id = settings.node_id or (
                data_dir.name if data_dir is not None else _node_id(settings)
            )
            source = data_dir or settings.node_dir(node_id)
            report = take_backup(
                open_source(source), Path(target), node_id=node_id, all_versions=all_versions
            ).to_dict()
    if as_json:
        typer.echo(json.dumps(report))
        return
    versions = sum(len(v) for v in report["datasets"].values())
    typer.echo(
        f"backed up {len(report['datasets'])} datasets ({versions} versions, "
        f"{report['chunks']} chunks, {_size(report['bytes'])}) to {report['target']}"
    )
    for sha in report["repaired"]:
        typer.echo(f"chunk {sha} was bad or missing here: copied from a replica", err=True)


@cli.command()
def restore(
    backup: Annotated[Path, typer.Argument(help="A directory `lake backup` wrote.")],
    data_dir: Annotated[
        Path, typer.Option(help="The data directory of a node that is not running.")
    ],
    merge: Annotated[
        bool,
        typer.Option(help="Restore into a directory holding data: keep its newer versions."),
    ] = False,
    as_json: Annotated[bool, JSON] = False,
) -> None:
    """Verify BACKUP whole, then install it as a node's data (the node stopped).

    Start a node on it with LAKE_DATA_DIR=DIR.
    """
    from .storage.restore import restore_backup

    with expected_errors(OSError):
        report = restore_backup(backup, data_dir, merge=merge).to_dict()
    if as_json:
        typer.echo(json.dumps(report))
        return
    versions = sum(len(v) for v in report["installed"].values())
    typer.echo(
        f"restored {len(report['installed'])} datasets ({versions} versions, "
        f"{report['chunks']} new chunks) into {report['data_dir']}"
    )
    for name, why in sorted(report["kept"].items()):
        typer.echo(f"{name}: {why}")


def main() -> None:
    bound_arenas_when_serving(["node"])
    cli()
