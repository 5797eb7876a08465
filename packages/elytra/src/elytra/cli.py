"""The ``elytra`` command (also ``platform elytra``): run a pipeline file, list and cancel jobs,
read (or save, or delete) a job's stored result.

``elytra run pipeline.yaml`` runs here (embedded, on ``PLATFORM_HOME``) unless ``--url`` names
a running platform, which then runs it as a job (datasets only). The file is the JSON form of
``elytra.spec`` in YAML (or JSON): a ``source`` and ``steps``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from platform_core import BadInputError, PlatformError, errors, is_valid_id
from platform_core.cli import (
    AS_CSV,
    AS_JSON,
    TOKEN_OPTION,
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

if TYPE_CHECKING:  # httpx and pyarrow load when a command talks to a platform, not for --help
    import httpx
    import pyarrow as pa

__all__ = ["cli", "main"]

cli = new_app(help="Elytra: pipelines over lake datasets, run as jobs.", no_args_is_help=True)

URL = typer.Option(help="A running platform's URL (default: run embedded here).")
PLATFORM_URL = typer.Option(
    "--url", help="The platform's URL (default: the one `platform up` runs, else :8080)."
)
TOKEN = TOKEN_OPTION
JSON, CSV = AS_JSON, AS_CSV


@cli.callback()
def _main(
    version: Annotated[bool, version_option(elytra="platform-elytra")] = False,
) -> None:
    """Elytra command line."""


def _client(url: str | None, token: str | None) -> httpx.Client:
    base = (url or default_url()).rstrip("/")
    with expected_errors():
        found = resolve_token(base, token)
    if found is None:
        fail(f"no token for {base}: give --token, set PLATFORM_TOKEN or run `platform login`", 3)
    from platform_core.http import CONNECT_RETRIES, http_client

    # PLATFORM_TLS_CA, else the system trust; retries: the platform may be starting
    return http_client(base_url=base, token=found, timeout=60, retries=CONNECT_RETRIES)


def _check(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        try:
            body = r.json()
            message, kind = body.get("error", r.text), body.get("type", "internal")
        except (ValueError, AttributeError):
            message, kind = r.text, "internal"
        _fail_kind(f"{message} (HTTP {r.status_code})", kind)
    return r.json()


def _fail_kind(message: str, kind: str) -> NoReturn:
    """Fail with the exit code of the error kind a server answered with."""
    known = {cls.kind: cls for cls in errors.PlatformError.__subclasses__()}
    fail(known.get(kind, PlatformError)(message))


def _load(path: Path) -> dict[str, Any]:
    import yaml  # here: a tenth of a second that --help does not need

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        fail(f"cannot read {path}: {exc}", 2)
    if not isinstance(doc, dict):
        fail(f"{path}: a pipeline file is a mapping with 'source' and 'steps'", 2)
    out: dict[str, Any] = doc
    return out


@cli.command()
def run(
    file: Annotated[Path, typer.Argument(help="Pipeline file (YAML or JSON).", exists=True)],
    url: Annotated[str | None, URL] = None,
    token: Annotated[str | None, TOKEN] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the rows to a .parquet or .csv file.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
    backend: Annotated[str | None, typer.Option(help="inline, local or ray (embedded).")] = None,
    as_json: Annotated[bool, JSON] = False,
    as_csv: Annotated[bool, CSV] = False,
) -> None:
    """Run a pipeline and print its first rows (or write them with --output)."""
    with expected_errors():
        fmt = output_format(as_json, as_csv)
    doc = _load(file)
    if url is not None:
        with _client(url, token) as c:
            job = _check(c.post("/api/jobs", json={"pipeline": doc}))
            typer.echo(f"job {job['id']} submitted")
            while job["state"] not in ("succeeded", "failed", "cancelled"):
                import time

                time.sleep(0.5)
                job = _check(c.get(f"/api/jobs/{job['id']}"))
            if job["state"] != "succeeded":
                error = job.get("error") or {}
                _fail_kind(
                    f"job {job['id']} {job['state']}: {error.get('message')}",
                    str(error.get("type", "internal")),
                )
            params: dict[str, Any] = {"limit": limit, "format": "arrow"}
            r = c.get(f"/api/jobs/{job['id']}/result", params=params)
            if r.status_code >= 400:
                _check(r)
            print_table(_arrow_table(r.content), fmt)
        return
    from .session import connect
    from .spec import build

    with expected_errors(), connect(backend=backend) as s:
        p = build(doc, s, files=file.parent)  # local paths beside the file
        if output is not None:
            done = p.write(output)
            typer.echo(f"wrote {done['rows']} rows to {done['path']}")
        else:
            print_table(p.limit(limit).collect(), fmt)


@cli.command()
def jobs(
    url: Annotated[str | None, PLATFORM_URL] = None,
    token: Annotated[str | None, TOKEN] = None,
    as_json: Annotated[bool, JSON] = False,
    as_csv: Annotated[bool, CSV] = False,
) -> None:
    """List your jobs on a running platform (an admin sees all)."""
    with expected_errors():
        fmt = output_format(as_json, as_csv)
    with _client(url, token) as c:
        found = _check(c.get("/api/jobs"))
    rows = [
        [j["id"], j["state"], j["tasks"]["done"], j["tasks"]["total"], j["owner"]] for j in found
    ]
    print_rows(["id", "state", "tasks_done", "tasks_total", "owner"], rows, fmt)


@cli.command()
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    url: Annotated[str | None, PLATFORM_URL] = None,
    token: Annotated[str | None, TOKEN] = None,
) -> None:
    """Cancel a job on a running platform."""
    if not is_valid_id(job_id):  # pasted into the URL path: '../x' would name another route
        fail(BadInputError(f"{job_id!r} is not a job id (26 characters, as `elytra jobs` shows)"))
    with _client(url, token) as c:
        job = _check(c.post(f"/api/jobs/{job_id}/cancel"))
        typer.echo(f"{job['id']} {job['state']}")


@cli.command()
def result(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    url: Annotated[str | None, PLATFORM_URL] = None,
    token: Annotated[str | None, TOKEN] = None,
    offset: Annotated[int, typer.Option(min=0, help="The first row.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Rows to print.")] = 20,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Save every row from --offset to a .arrows (Arrow IPC stream), .csv or .parquet file."
        ),
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Delete the stored result.")] = False,
    as_json: Annotated[bool, JSON] = False,
    as_csv: Annotated[bool, CSV] = False,
) -> None:
    """Print a page of a finished job's stored result, or save all of it (streamed, never
    held whole), or delete it."""
    with expected_errors():
        fmt = output_format(as_json, as_csv)
    if not is_valid_id(job_id):
        fail(BadInputError(f"{job_id!r} is not a job id (26 characters, as `elytra jobs` shows)"))
    path = f"/api/jobs/{job_id}/result"
    with _client(url, token) as c:
        if delete:
            r = c.delete(path)
            if r.status_code >= 400:
                _check(r)
            typer.echo(f"deleted the result of {job_id}")
            return
        if output is None:
            params: dict[str, Any] = {"format": "arrow", "offset": offset, "limit": limit}
            r = c.get(path, params=params)
            if r.status_code >= 400:
                _check(r)
            print_table(_arrow_table(r.content), fmt)
            return
        rows = _save(c, path, offset, output)
        typer.echo(f"wrote {rows} rows to {output}")


def _arrow_table(content: bytes) -> pa.Table:
    """An Arrow IPC stream's table (pyarrow loads here, not for ``elytra --help``)."""
    import pyarrow as pa

    return pa.ipc.open_stream(content).read_all()


def _save(c: httpx.Client, path: str, offset: int, output: Path) -> int:
    """Stream the result into ``output`` (its suffix names the format); its row count."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .remote import _StreamFile

    kind = output.suffix.lower().lstrip(".")
    if kind not in ("arrows", "csv", "parquet"):
        fail(BadInputError(f"--output {output}: name a .arrows, .csv or .parquet file"), 2)
    tmp = output.with_name(f".{output.name}.part")
    fmt = "csv" if kind == "csv" else "arrow"
    try:
        with c.stream("GET", path, params={"format": fmt, "offset": offset}) as r:
            if r.status_code >= 400:
                r.read()
                _check(r)
            total = int(r.headers.get("x-total-rows", "0"))
            if kind != "parquet":
                with tmp.open("wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        f.write(chunk)
            else:
                reader = pa.ipc.open_stream(_StreamFile(r.iter_bytes(1 << 20)))
                with pq.ParquetWriter(tmp, reader.schema) as w:
                    for batch in reader:
                        w.write_batch(batch)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return max(total - offset, 0)


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
