"""Fixtures: unique segment names, cleanup, and the worker script run in real processes."""

from __future__ import annotations

import importlib.util
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import strand

HERE = Path(__file__).parent
WORKER = HERE / "_workers.py"
_spec = importlib.util.spec_from_file_location("strand_test_workers", WORKER)
assert _spec
assert _spec.loader
workers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(workers)

PREFIX = f"t{os.getpid()}-"
_counter = itertools.count()


@pytest.fixture
def name() -> Iterator[str]:
    """A fresh segment name; whatever segment has it is unlinked after the test."""
    value = f"{PREFIX}{next(_counter)}"
    yield value
    path = Path(strand.segment.SHM_DIR) / (strand.segment.PREFIX + value)
    path.unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def no_segment_left_behind() -> Iterator[None]:
    """The whole run must leave /dev/shm as it found it."""
    yield
    left = [n for n in strand.list_segments() if n.startswith(PREFIX)]
    for n in left:
        (Path(strand.segment.SHM_DIR) / (strand.segment.PREFIX + n)).unlink(missing_ok=True)
    assert not left, f"segments left in /dev/shm: {left}"


@pytest.fixture(scope="session")
def w() -> Any:
    """The worker module (_workers.py): data builders and process helpers."""
    return workers
