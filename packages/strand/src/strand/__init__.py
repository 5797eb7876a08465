"""Strand: zero-copy record streaming between processes over shared memory.

A producer writes Arrow record batches into a ring in a named shared-memory segment;
consumers in other processes read them as zero-copy Arrow batches or record by record,
with backpressure, futex wake-ups, abort, consumer liveness and a checksummed header.
"""

# platform_core first (it picks Arrow's memory pool before Arrow loads), then Arrow and NumPy
# before strand's own modules: imported after them, NumPy's typing modules took about 35 ms
# longer (`import strand` 1.40x `import pyarrow, numpy` instead of 1.20x, measured by the
# `wheels` session's method; issue 32).
# isort: off
import platform_core  # noqa: F401
import pyarrow  # noqa: F401
import numpy  # noqa: F401

# isort: on

from strand.api import create_strand
from strand.cursor import RecordCursor
from strand.errors import (
    StrandAbortError,
    StrandBusyError,
    StrandConfigError,
    StrandError,
    StrandHeaderError,
    StrandNotFoundError,
    StrandOrderError,
    StrandSpaceError,
    StrandStateError,
    StrandTimeoutError,
    StrandValueError,
)
from strand.layout import StrandMap, compute_strand_map, init_strand_header, read_strand_header
from strand.schema import (
    FLAG_NULLABLE,
    FLAG_SORTED_ASC,
    FLAG_SORTED_DESC,
    StrandField,
    StrandSchema,
    fnv1a64,
)
from strand.segment import Segment, cleanup_dead, list_segments
from strand.sync import HAVE_FUTEX
from strand.view import StrandView
from strand.writer import ClaimedColumn, HeapClaim, SlotClaim, StrandWriter

__version__ = "0.2.0"

__all__ = [
    "FLAG_NULLABLE",
    "FLAG_SORTED_ASC",
    "FLAG_SORTED_DESC",
    "HAVE_FUTEX",
    "ClaimedColumn",
    "HeapClaim",
    "RecordCursor",
    "Segment",
    "SlotClaim",
    "StrandAbortError",
    "StrandBusyError",
    "StrandConfigError",
    "StrandError",
    "StrandField",
    "StrandHeaderError",
    "StrandMap",
    "StrandNotFoundError",
    "StrandOrderError",
    "StrandSchema",
    "StrandSpaceError",
    "StrandStateError",
    "StrandTimeoutError",
    "StrandValueError",
    "StrandView",
    "StrandWriter",
    "cleanup_dead",
    "compute_strand_map",
    "create_strand",
    "fnv1a64",
    "init_strand_header",
    "list_segments",
    "read_strand_header",
]
