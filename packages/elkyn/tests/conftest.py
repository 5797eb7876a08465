from __future__ import annotations

from collections.abc import Iterator

import pytest

from elkyn import Store


@pytest.fixture
def memory_store() -> Iterator[Store]:
    with Store(memory=True) as db:
        yield db
