"""Figures the cluster suites measure, kept as JSON under `.reports/figures/` for the README.

Each suite calls :func:`record` with what it measured; `scripts/cluster_figures.py` renders
every file there into the README's table. One file per suite, rewritten whole (a temp file
renamed into place), so a run stopped midway leaves the previous file or the new one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FIGURES_DIR_ENV", "figures_dir", "long_mode", "mode", "record"]

ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR_ENV = "PLATFORM_FIGURES_DIR"
"""Where the figure files go instead of `<repo>/.reports/figures` (the tests of the renderer)."""
RUN = f"{os.getpid()}-{time.time_ns()}"
"""This test process: a figure recorded twice in one run keeps the worse value (``keep``)."""
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def figures_dir() -> Path:
    return Path(os.environ.get(FIGURES_DIR_ENV) or ROOT / ".reports" / "figures")


def long_mode() -> bool:
    """``PLATFORM_TESTS_LONG=1``: the suites run at full size (`nox -s soak`, `nox -s chaos`)."""
    return os.environ.get("PLATFORM_TESTS_LONG") == "1"


def mode() -> str:
    return "full" if long_mode() else "bounded"


def record(
    suite: str,
    key: str,
    label: str,
    value: float | str,
    *,
    unit: str,
    target: str,
    met: bool | None = None,
    keep: str = "last",
) -> Path:
    """Store one measured figure of ``suite`` (``keep="max"``: the largest of this run's values;
    a text ``value`` such as "12 / 118 / 9" is shown as it is).

    ``label`` is the README's wording, ``target`` the goal as text ("<= 30 s"), ``met``
    whether this value reaches it (None: no pass/fail, reported only).
    """
    for what, name in (("suite", suite), ("figure key", key)):
        if not _NAME.fullmatch(name):
            raise ValueError(f"bad {what} {name!r}: use lowercase letters, digits, - and _")
    if keep not in ("last", "max"):
        raise ValueError(f"keep must be 'last' or 'max', not {keep!r}")
    directory = figures_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{suite}.json"
    data: dict[str, Any] = {"suite": suite, "figures": {}}
    if path.exists():
        data = json.loads(path.read_text())
    old = data["figures"].get(key)
    if keep == "max" and isinstance(value, str):
        raise ValueError("keep='max' needs a number")
    if (
        keep == "max"
        and not isinstance(value, str)
        and old is not None
        and old.get("run") == RUN
        and isinstance(old["value"], int | float)
        and old["value"] >= value
    ):
        return path
    data["figures"][key] = {
        "label": label,
        "value": value,
        "unit": unit,
        "target": target,
        "met": met,
        "mode": mode(),
        "run_date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "run": RUN,
    }
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{suite}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
