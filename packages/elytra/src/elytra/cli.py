"""The ``elytra`` command (also ``platform elytra``): run a pipeline file, list and cancel jobs.

``elytra run pipeline.yaml`` runs here (embedded, on ``PLATFORM_HOME``) unless ``--url`` names
a running platform, which then runs it as a job (datasets only). The file is the JSON form of
``elytra.spec`` in YAML (or JSON): a ``source`` and ``steps``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml

from platform_core import PlatformError, auth

__all__ = ["cli", "main"]

cli = typer.Typer(help="Elytra: pipelines over lake datasets, run as jobs.", no_args_is_help=True)

URL = typer.Option(help="A running platform's URL (default: run embedded here).")
TOKEN = typer.Option(help="Token for --url (default: PLATFORM_TOKEN).")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _client(url: str, token: str | None) -> httpx.Client:
    found = auth.client_token(token)
    if found is None:
        _fail("give --token or set PLATFORM_TOKEN (see `platform token`)")
    return httpx.Client(
        base_url=url.rstrip("/"), headers={"authorization": f"Bearer {found}"}, timeout=60
    )


def _check(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        try:
            message = r.json().get("error", r.text)
        except ValueError:
            message = r.text
        _fail(f"{r.status_code}: {message}", 1)
    return r.json()


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"cannot read {path}: {exc}")
    if not isinstance(doc, dict):
        _fail(f"{path}: a pipeline file is a mapping with 'source' and 'steps'")
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
) -> None:
    """Run a pipeline and print its first rows (or write them with --output)."""
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
                _fail(
                    f"job {job['id']} {job['state']}: {(job.get('error') or {}).get('message')}", 1
                )
            rows = _check(c.get(f"/api/jobs/{job['id']}/result", params={"limit": limit}))
            typer.echo(json.dumps(rows["rows"], default=str))
        return
    from .session import connect
    from .spec import build

    try:
        with connect(backend=backend) as s:
            p = build(doc, s, files=True)
            if output is not None:
                done = p.write(output)
                typer.echo(f"wrote {done['rows']} rows to {done['path']}")
            else:
                table = p.limit(limit).collect()
                typer.echo(table.to_string(preview_cols=0))
    except PlatformError as exc:
        _fail(exc.message)


@cli.command()
def jobs(
    url: Annotated[str, typer.Option(help="The platform's URL.")] = "http://127.0.0.1:8080",
    token: Annotated[str | None, TOKEN] = None,
) -> None:
    """List your jobs on a running platform (an admin sees all)."""
    with _client(url, token) as c:
        for job in _check(c.get("/api/jobs")):
            t = job["tasks"]
            typer.echo(
                f"{job['id']}  {job['state']:<9}  tasks {t['done']}/{t['total']}  {job['owner']}"
            )


@cli.command()
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    url: Annotated[str, typer.Option(help="The platform's URL.")] = "http://127.0.0.1:8080",
    token: Annotated[str | None, TOKEN] = None,
) -> None:
    """Cancel a job on a running platform."""
    with _client(url, token) as c:
        job = _check(c.post(f"/api/jobs/{job_id}/cancel"))
        typer.echo(f"{job['id']} {job['state']}")


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
