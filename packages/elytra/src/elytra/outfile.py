"""A pipeline's result written to a file the user named (``Pipeline.write("out.parquet")``).

Below both drivers (``elytra.driver`` on this machine, ``elytra.remote`` on a platform), which
write a collected table the same way; ``elytra.driver.write_table`` stays importable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from .errors import PipelineError

__all__ = ["write_table"]


def write_table(table: pa.Table, path: str, format: str | None) -> dict[str, Any]:
    """Write ``table`` to a Parquet or CSV file atomically (a temporary file, then rename)."""
    fmt = (format or Path(path).suffix.lstrip(".") or "parquet").lower()
    if fmt not in ("parquet", "csv"):
        raise PipelineError(f"write: format is parquet or csv, not {fmt!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        if fmt == "parquet":
            pq.write_table(table, tmp)
        else:
            pcsv.write_csv(table, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"path": str(target), "format": fmt, "rows": table.num_rows}
