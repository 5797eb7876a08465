from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def spill_dir(tmp_path: Path) -> Iterator[Path]:
    """A spill root that every run must leave exactly as it found it (empty)."""
    d = tmp_path / "spill"
    d.mkdir()
    yield d
    assert list(d.iterdir()) == [], f"spill directory not cleaned: {list(d.iterdir())}"
