"""``emsqrt run JOB.yaml``: run a YAML pipeline under a memory cap, with a progress bar.

``emsqrt plan`` prints the logical plan as JSON, ``emsqrt schema`` the job file's JSON Schema.
Every expected failure (missing file, bad YAML, unknown key or step, bad expression, a cap
without a unit) is one ``error:`` line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from platform_core import MemCap, PlatformError
from platform_core.cli import new_app

from .budget import format_bytes
from .output import Format, fail, print_result

if TYPE_CHECKING:  # rich loads when something is printed, not for `emsqrt --help`
    from rich.console import Console

    from .api import Pipeline
    from .engine import RunResult

app = new_app(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="EM-√: memory-capped pipelines",
)


class _Consoles:
    """stdout's and stderr's rich consoles, made on first use."""

    @functools.cached_property
    def out(self) -> Console:
        from rich.console import Console

        return Console()

    @functools.cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True)


_consoles = _Consoles()

MEM_CAP_HELP = (
    "Memory cap, a number with a unit: KB, MB, GB are powers of 1000 (64MB = 64,000,000 "
    "bytes), KiB, MiB, GiB powers of 1024 (64MiB = 67,108,864 bytes); case-insensitive, "
    "'64 MiB' too. A bare number is refused. Default: EMSQRT_MEM_CAP_BYTES, else 512MiB."
)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        _consoles.out.print(f"emsqrt {__version__}")
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
    pipeline: Annotated[Path, typer.Argument(help="The job YAML file (see `emsqrt schema`).")],
    mem_cap: Annotated[str | None, typer.Option("--mem-cap", help=MEM_CAP_HELP)] = None,
    spill_dir: Annotated[
        Path | None, typer.Option("--spill-dir", help="Spill directory (EMSQRT_SPILL_DIR).")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Print the plan tree with estimates and actuals.")
    ] = False,
    manifest: Annotated[
        Path | None, typer.Option("--manifest", help="Write the run manifest (JSON) here.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every result row as JSON (columns, rows).")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print every result row as CSV.")] = False,
) -> None:
    """Run PIPELINE under the memory cap and print its result (a sink's file is written
    atomically); a table by default, --json or --csv for every row."""
    import pyarrow as pa  # here, not at import: --help and argument errors do not need it

    from .dsl import load_pipeline

    err = _consoles.err
    if as_json and as_csv:
        fail(err, "--json and --csv are exclusive; choose one")
    fmt: Format = "json" if as_json else "csv" if as_csv else "table"
    logging.basicConfig(level=logging.WARNING)
    try:
        cap = None if mem_cap is None else MemCap(mem_cap, what="--mem-cap")
        pipe = load_pipeline(pipeline)
        _refuse_csv_of_a_sink(pipe, pipeline, fmt)
        result = _run_with_progress(pipe, cap, spill_dir)
        if manifest is not None:
            _write_atomic(manifest, result.manifest.to_json())
        if fmt != "table":
            _print_rows(result, fmt)
            return
    except PlatformError as exc:
        fail(err, exc.message)
    except (OSError, pa.ArrowException) as exc:
        fail(err, str(exc))
    _print_summary(result, explain)


def _refuse_csv_of_a_sink(pipe: Pipeline, path: Path, fmt: Format) -> None:
    """A pipeline ending in a sink has no rows to print as CSV: say so before running it."""
    from .plan import Sink

    if fmt == "csv" and isinstance(pipe.node, Sink):
        fail(
            _consoles.err,
            f"{path} ends in a sink (it writes {pipe.node.path}), so there are no "
            "rows to print as CSV; drop the sink step, or run without --csv",
        )


def _run_with_progress(pipe: Pipeline, cap: MemCap | None, spill_dir: Path | None) -> RunResult:
    """Run ``pipe`` with a spinner on stderr (when it is a terminal) counting rows read."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    err = _consoles.err
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("running", total=None)
        rows = {"n": 0}

        def progress(label: str, n: int) -> None:
            rows["n"] += n
            bar.update(task, description=f"{label}: {rows['n']:,} rows read")

        return pipe.run(cap, spill_dir=spill_dir, progress=progress)


def _print_rows(result: RunResult, fmt: Format) -> None:
    """--json or --csv: every result row, or a sink's outputs and row count."""
    out = _consoles.out
    if result.table is not None:
        print_result(result.table, fmt, out)
    else:
        m = result.manifest
        out.file.write(json.dumps({"outputs": m.outputs, "row_count": m.rows_out}) + "\n")


def _print_summary(result: RunResult, explain: bool) -> None:
    """The table view: the plan (--explain), rows, time, memory and spill, outputs, rows."""
    from .explain import rows_text

    out, m = _consoles.out, result.manifest
    if explain:
        out.print(result.explain(), highlight=False, markup=False, soft_wrap=True)
    mem = m.memory
    rss = mem["rss_peak_above_baseline_bytes"]
    out.print(
        f"{rows_text(m.rows_out)} in {m.seconds:.2f} s; cap {format_bytes(mem['cap_bytes'])}, "
        f"reserved peak {format_bytes(mem['reserved_peak_bytes'])}, Arrow peak "
        f"{format_bytes(mem['arrow_pool_peak_bytes'])}, RSS above baseline "
        f"{'n/a' if rss is None else format_bytes(rss)}; spilled "
        f"{format_bytes(m.spill['bytes_written'])}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for o in m.outputs:
        out.print(
            f"wrote {o['path']} ({rows_text(o['rows'])}, sha256 {o['sha256'][:16]}...)",
            highlight=False,
            markup=False,
        )
    if result.table is not None:
        print_result(result.table, "table", out)


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
def plan_cmd(pipeline: Annotated[Path, typer.Argument(help="The job YAML file.")]) -> None:
    """Print the pipeline's logical plan as JSON (what elytra ships to workers)."""
    from .dsl import load_pipeline
    from .plan_json import plan_to_dict

    try:
        text = json.dumps(plan_to_dict(load_pipeline(pipeline).node), indent=2)
    except PlatformError as exc:
        fail(_consoles.err, exc.message)
    _consoles.out.file.write(text + "\n")


@app.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of job files (also packages/emsqrt/emsqrt-job.schema.json)."""
    from .job import job_schema_text

    _consoles.out.file.write(job_schema_text())


def main() -> None:
    from .signals import sigterm_raises

    with sigterm_raises():
        app()
