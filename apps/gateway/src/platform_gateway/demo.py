"""``platform demo-data``: seeded sample data (customers and their sales) for the walkthrough.

The same seed gives the same files byte for byte, so the README's outputs stay true. The
tables are written as CSV and Parquet; ``--upload`` also loads them into the lake of a
running platform as the datasets ``customers`` and ``sales``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from platform_core import PlatformError
from platform_core.cli import TOKEN_OPTION, default_url, exit_code, normalize_url, resolve_token

if TYPE_CHECKING:  # NumPy and pyarrow load when the data is made, not for `platform --help`
    import pyarrow as pa

__all__ = ["COUNTRIES", "PRODUCTS", "demo_tables", "register", "write_demo_data"]

COUNTRIES = ("DE", "FR", "JP", "KE", "US")
PRODUCTS = ("apple", "banana", "cherry", "dates", "elderberry")
_PRICES = (0.5, 0.25, 4.0, 6.5, 9.0)
_EPOCH = "2026-01-01T00:00:00"


def demo_tables(rows: int = 1000, seed: int = 7) -> dict[str, pa.Table]:
    """``customers`` (rows/10, at least 1) and ``sales`` (``rows``), drawn from ``seed``."""
    if rows < 1:
        raise ValueError(f"--rows must be at least 1, not {rows}")
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n_customers = max(1, rows // 10)
    customer_ids = np.arange(1, n_customers + 1, dtype=np.int64)
    customers = pa.table(
        {
            "customer_id": customer_ids,
            "name": [f"customer-{i:05d}" for i in customer_ids],
            "country": pa.array(rng.choice(COUNTRIES, n_customers)).cast(pa.string()),
        }
    )
    product = rng.integers(0, len(PRODUCTS), rows)
    seconds = np.sort(rng.integers(0, 90 * 86400, rows))
    sales = pa.table(
        {
            "order_id": np.arange(1, rows + 1, dtype=np.int64),
            "customer_id": rng.integers(1, n_customers + 1, rows, dtype=np.int64),
            "product": pa.array(np.asarray(PRODUCTS)[product]).cast(pa.string()),
            "quantity": rng.integers(1, 10, rows, dtype=np.int64),
            "price": np.asarray(_PRICES)[product],
            "ts": pa.array(
                np.datetime64(_EPOCH, "s") + seconds.astype("timedelta64[s]"), pa.timestamp("ms")
            ),
        }
    )
    return {"customers": customers, "sales": sales}


def write_demo_data(out: Path, rows: int = 1000, seed: int = 7) -> list[Path]:
    """Write each table as ``<name>.csv`` and ``<name>.parquet`` under ``out``; the paths."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, table in demo_tables(rows, seed).items():
        csv_path, parquet_path = out / f"{name}.csv", out / f"{name}.parquet"
        pcsv.write_csv(table, csv_path)
        pq.write_table(table, parquet_path)
        written += [csv_path, parquet_path]
    return written


def _upload(files: list[Path], url: str, token: str | None) -> list[str]:
    try:
        from lake import Client
    except ImportError:
        raise PlatformError(
            "--upload needs the lake client (the platform-lake package): install it, or "
            "upload the files with `lake upload`"
        ) from None
    lines: list[str] = []
    with Client(url, resolve_token(url, token)) as client:
        for path in files:
            if path.suffix == ".parquet":
                status: dict[str, Any] = client.upload(path, path.stem)
                lines.append(
                    f"uploaded {path.stem}: version {status['version']}, {status['rows']} rows"
                )
    return lines


def register(cli: typer.Typer) -> None:
    """Add ``platform demo-data`` to ``cli``."""

    @cli.command("demo-data")
    def demo_data(
        rows: Annotated[
            int, typer.Option(min=1, help="Rows of sales (customers: a tenth).")
        ] = 1000,
        seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same files.")] = 7,
        out: Annotated[Path, typer.Option(help="Directory to write the files to.")] = Path(
            "demo-data"
        ),
        upload: Annotated[
            bool, typer.Option("--upload", help="Also upload them as lake datasets.")
        ] = False,
        url: Annotated[
            str | None,
            typer.Option(
                help="The platform to upload to (default: the one `platform up` runs, else :8080)."
            ),
        ] = None,
        token: Annotated[str | None, TOKEN_OPTION] = None,
    ) -> None:
        """Write sample data (customers, sales) as CSV and Parquet; --upload loads the lake."""
        try:
            files = write_demo_data(out, rows, seed)
        except (OSError, ValueError) as exc:
            typer.echo(f"error: cannot write the demo data to {out}: {exc}", err=True)
            raise typer.Exit(2) from None
        for path in files:
            typer.echo(f"wrote {path}")
        if upload:
            try:
                url = normalize_url(url) if url else default_url()
                for line in _upload(files, url, token):
                    typer.echo(line)
            except PlatformError as exc:
                typer.echo(f"error: upload to {url or 'the platform'} failed: {exc}", err=True)
                raise typer.Exit(exit_code(exc)) from None
