"""`platform demo-data`: seeded, reproducible sample tables, written by the installed command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from platform_gateway.demo import PRODUCTS, demo_tables

PLATFORM = Path(sys.executable).parent / "platform"


def test_the_same_seed_gives_the_same_tables_and_another_seed_others() -> None:
    a, b, c = demo_tables(200, seed=1), demo_tables(200, seed=1), demo_tables(200, seed=2)
    assert a["sales"].equals(b["sales"])
    assert a["customers"].equals(b["customers"])
    assert not a["sales"].equals(c["sales"])
    sales, customers = a["sales"], a["customers"]
    assert (sales.num_rows, customers.num_rows) == (200, 20)
    assert set(sales["product"].to_pylist()) <= set(PRODUCTS)
    ids = set(customers["customer_id"].to_pylist())
    assert set(sales["customer_id"].to_pylist()) <= ids  # every sale joins a customer


def test_the_command_writes_csv_and_parquet_that_agree(tmp_path: Path) -> None:
    out = tmp_path / "data"
    done = subprocess.run(
        [str(PLATFORM), "demo-data", "--rows", "30", "--seed", "3", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["customers.csv", "customers.parquet", "sales.csv", "sales.parquet"]
    assert f"wrote {out / 'sales.parquet'}" in done.stdout
    parquet = pq.read_table(out / "sales.parquet")
    assert parquet.equals(demo_tables(30, seed=3)["sales"])
    csv = pcsv.read_csv(out / "sales.csv")
    assert csv["order_id"].to_pylist() == parquet["order_id"].to_pylist()


def test_a_bad_row_count_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(PLATFORM), "demo-data", "--rows", "0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--rows" in done.stderr
