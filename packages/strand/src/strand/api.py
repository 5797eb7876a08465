"""Creating a strand: plan it, create its segment and write its header in one call."""

from __future__ import annotations

import contextlib

from strand.layout import StrandMap, init_strand_header
from strand.segment import Segment, owner_identity

__all__ = ["create_strand"]


def create_strand(name: str, smap: StrandMap) -> Segment:
    """Create segment ``name`` sized for ``smap`` and initialise its header.

    The calling process is recorded as the owner: it unlinks the segment when done
    (``segment.unlink()``), and ``cleanup_dead()`` removes it if the process dies first.
    """
    segment = Segment.create(name, smap.total_bytes)
    try:
        pid, start = owner_identity()
        init_strand_header(segment.buf, smap, owner_pid=pid, owner_start=start)
    except BaseException:
        segment.unlink()
        with contextlib.suppress(Exception):
            segment.close()
        raise
    return segment
