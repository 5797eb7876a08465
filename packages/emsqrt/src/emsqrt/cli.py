"""``emsqrt run PIPELINE.yaml``: run a YAML pipeline under a memory cap, with a progress bar."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from platform_core import PlatformError

from .api import parse_size
from .budget import format_bytes

app = typer.Typer(add_completion=False, no_args_is_help=True, help="EM-√: memory-capped pipelines")
err = Console(stderr=True)
out = Console()


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"emsqrt {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Run pipelines that never reserve more memory than the cap, spilling to disk instead."""


@app.command("run")
def run_cmd(
    pipeline: Annotated[Path, typer.Argument(help="The pipeline YAML file.")],
    mem_cap: Annotated[
        str | None, typer.Option("--mem-cap", help="Memory cap, e.g. 64MB (EMSQRT_MEM_CAP_BYTES).")
    ] = None,
    spill_dir: Annotated[
        Path | None, typer.Option("--spill-dir", help="Spill directory (EMSQRT_SPILL_DIR).")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Print the plan tree with estimates and actuals.")
    ] = False,
    manifest: Annotated[
        Path | None, typer.Option("--manifest", help="Write the run manifest (JSON) here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Run PIPELINE under the memory cap; the sink's file is written atomically."""
    from .dsl import load_pipeline

    logging.basicConfig(level=logging.WARNING)
    try:
        pipe = load_pipeline(pipeline)
        cap = None if mem_cap is None else parse_size(mem_cap)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json or not err.is_terminal,
        ) as bar:
            task = bar.add_task("running", total=None)
            rows = {"n": 0}

            def progress(label: str, n: int) -> None:
                rows["n"] += n
                bar.update(task, description=f"{label}: {rows['n']:,} rows read")

            result = pipe.run(cap, spill_dir=spill_dir, progress=progress)
    except PlatformError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    m = result.manifest
    if manifest is not None:
        _write_atomic(manifest, m.to_json())
    if as_json:
        out.print_json(m.to_json())
        return
    if explain:
        out.print(result.explain(), highlight=False, markup=False, soft_wrap=True)
    mem = m.memory
    rss = mem["rss_peak_above_baseline_bytes"]
    out.print(
        f"{m.rows_out:,} rows in {m.seconds:.2f} s; cap {format_bytes(mem['cap_bytes'])}, "
        f"reserved peak {format_bytes(mem['reserved_peak_bytes'])}, Arrow peak "
        f"{format_bytes(mem['arrow_pool_peak_bytes'])}, RSS above baseline "
        f"{'n/a' if rss is None else format_bytes(rss)}; spilled "
        f"{format_bytes(m.spill['bytes_written'])}",
        highlight=False,
    )
    for o in m.outputs:
        out.print(f"wrote {o['path']} ({o['rows']:,} rows, sha256 {o['sha256'][:16]}...)")
    if result.table is not None:
        out.print(str(result.table.slice(0, 20)), highlight=False)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@app.command("plan")
def plan_cmd(pipeline: Annotated[Path, typer.Argument(help="The pipeline YAML file.")]) -> None:
    """Print the pipeline's logical plan as JSON (what elytra ships to workers)."""
    from .dsl import load_pipeline
    from .plan_json import plan_to_dict

    try:
        out.print_json(json.dumps(plan_to_dict(load_pipeline(pipeline).node)))
    except PlatformError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def main() -> None:
    from .signals import sigterm_raises

    with sigterm_raises():
        app()
