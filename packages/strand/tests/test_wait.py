"""``wait_for_commit`` when the stream ends while the reader is between its two loads."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

import strand
from strand.layout import CTRL

SCHEMA = pa.schema([pa.field("x", pa.int64())])
FIVE = pa.record_batch({"x": list(range(5))}, schema=SCHEMA)


class _WriterRunsBetweenLoads:
    """The reader's atomics, except that right after its first load of the commit count the
    writer commits ``FIVE`` more records and ends the stream (``finish``): the interleaving
    a reader preempted between loading the count and loading the status sees."""

    def __init__(self, real: Any, commit_word: int, writer: strand.StrandWriter, finish: str):
        self._real = real
        self._commit_word = commit_word
        self._writer = writer
        self._finish = finish
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def load_u64(self, offset: int) -> int:
        value: int = self._real.load_u64(offset)
        if offset == self._commit_word and not self.fired:
            self.fired = True
            self._writer.write_record_batch(FIVE)
            getattr(self._writer, self._finish)()
        return value


@pytest.mark.parametrize("finish", ["finalize", "abort"])
def test_the_count_returned_at_the_end_of_the_stream_is_the_final_one(
    name: str, finish: str
) -> None:
    seg = strand.create_strand(name, strand.compute_strand_map(SCHEMA, 1024, 1 << 16))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(FIVE)
    ring = view._ring
    real = ring.atomic
    fake = _WriterRunsBetweenLoads(real, ring.ctrl + CTRL.COMMIT_SEQ, writer, finish)
    ring.atomic = fake
    try:
        assert view.wait_for_commit(5, timeout=1.0) == 10  # not 5: no record is lost
    finally:
        ring.atomic = real
    assert fake.fired
    writer.close()
    view.close()
    seg.unlink()
    seg.close(timeout=2)
