"""External sort and top-k.

Sort accumulates batches while the budget grants them (reserving each batch's bytes plus 24
bytes per row for the sort permutation and its scratch); when refused it sorts what it holds into a run and
spills it as segments of about one batch. If everything fit, it sorts in memory and nothing
touches the disk. Otherwise runs are merged with fan-in ``F`` bounded by the budget (each open
run costs about three segments), ``F`` runs at a time into longer runs until at most ``F``
remain (each such level is a merge pass), then a last pass streams the output.

The merge is vectorised: each step takes the smallest of the runs' last buffered rows as a
bound, cuts every run's buffer at the bound with a binary search (a few row comparisons per
run), and sorts only the rows cut (``sort_indices`` + ``take``), so every row is sorted once per
pass and no Python runs per row. A run whose buffer is used up loads its next segment.
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import plan as lp
from ..budget import Guard
from ..context import ExecContext
from ..errors import CapTooSmallError
from ..spill import SpillFile
from .base import PhysicalOp
from .gather import gather, release_memory
from .sortkeys import SortSpec

__all__ = ["SortOp", "TopKOp", "TopKPerGroupOp", "external_sort"]

# Bytes per row that sort_indices needs: the permutation and the chunk merge's scratch
# (8 alone undercounted: a 3.3 MB run peaked 1.6 MB above its reservation, measured).
_INDEX_BYTES = 24


def _rows_per(table: pa.Table, target_bytes: int) -> int:
    """Rows of ``table`` in about ``target_bytes`` (at least one)."""
    return max(1, int(table.num_rows * target_bytes / max(table.nbytes, 1)))


def _slices(table: pa.Table, target_bytes: int) -> Iterator[pa.Table]:
    if table.num_rows == 0:
        return
    rows = _rows_per(table, target_bytes)
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


def _too_small(op: PhysicalOp, need: int, what: str, eventual: int = 0) -> CapTooSmallError:
    """``eventual``: what the operator will need once its state is complete (the cap named
    is sized to that, not only to this step)."""
    budget = op.mem
    smallest = op.ctx.smallest_cap(max(need, eventual), budget)
    return CapTooSmallError(
        f"{op.name}: cannot hold {what} ({need} bytes) with {budget.available} of the "
        f"{budget.cap_bytes}-byte share free; raise the cap to at least "
        f"{smallest} bytes",
        cap_bytes=budget.cap_bytes,
        needed_bytes=smallest,
    )


def external_sort(
    op: PhysicalOp, spec: SortSpec, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.Table]:
    """Sorted augmented tables of about one batch each, spilling and merging as needed."""
    ctx, stats = op.ctx, op.stats
    guard = op.mem.try_acquire(0, op.label)
    assert guard is not None
    acc: list[pa.Table] = []
    runs: list[SpillFile] = []
    try:
        for batch in batches:
            ctx.check_cancel()
            t = spec.augment(pa.Table.from_batches([batch]))
            need = t.nbytes + _INDEX_BYTES * t.num_rows
            if not guard.try_grow(need, 2 * ctx.batch_bytes):
                if acc:
                    runs.append(_write_run(op, spec, acc, guard))
                    acc = []
                    guard.resize(0)
                if not guard.try_grow(need, 2 * ctx.batch_bytes):
                    raise _too_small(op, need + ctx.batch_bytes, "one batch and its sort indices")
            acc.append(t)
            op.note_peak(guard.nbytes)
        if not runs:
            if not acc:
                return
            table = pa.concat_tables(acc)
            acc = []
            idx = spec.indices(table)
            # Batches of about batch_bytes of the rows (not of the 8-byte indices, which
            # made each batch row-width / 8 times too big for the head-room left to it).
            rows = _rows_per(table, ctx.batch_bytes)
            for start in range(0, table.num_rows, rows):
                yield gather(table, idx.slice(start, rows))
            return
        if acc:
            runs.append(_write_run(op, spec, acc, guard))
            acc = []
        guard.resize(0)
        stats.runs = len(runs)
        yield from _merge_all(op, spec, runs, guard)
    finally:
        guard.release()


def _write_run(op: PhysicalOp, spec: SortSpec, acc: list[pa.Table], guard: Guard) -> SpillFile:
    ctx = op.ctx
    table = pa.concat_tables(acc)
    seg = ctx.batch_bytes
    if not guard.try_grow(2 * seg):
        # The head-room the accumulation kept free can be held by the batch in flight from
        # below (a scan decoding its next row group): write the run in smaller segments, in
        # what is free, rather than fail at a cap above one that works (found from outside:
        # a sort of 20 KB rows passed at 11 and 14 MiB, failed at 12, 13 and 20 MiB).
        row = -(-table.nbytes // max(table.num_rows, 1))
        seg = min(seg, op.mem.available // 2)
        if seg < row or not guard.try_grow(2 * seg):
            raise _too_small(op, 2 * max(seg, row), "a sorted run while writing it")
    idx = spec.indices(table)
    run = ctx.spill.create(f"{op.name}-run")
    rows = _rows_per(table, seg)
    for start in range(0, table.num_rows, rows):
        run.append(gather(table, idx.slice(start, rows)))
    op.stats.spilled_bytes += run.arrow_bytes
    op.stats.spill_files += 1
    op.note_peak(guard.nbytes)
    del table, idx, acc[:]
    release_memory()
    return run


def _merge_all(
    op: PhysicalOp, spec: SortSpec, runs: list[SpillFile], guard: Guard
) -> Iterator[pa.Table]:
    ctx = op.ctx
    seg = max(r.max_segment_bytes for r in runs)
    seg_rows = max(max((s.rows for s in r.segments), default=1) for r in runs)
    per_run = 3 * seg + _INDEX_BYTES * seg_rows
    free = op.mem.available
    fan_in = min(free // max(per_run, 1), ctx.max_fan_in)
    if fan_in < 2:
        raise _too_small(op, 2 * per_run, "two spilled runs to merge")
    passes = 0
    while len(runs) > fan_in:
        passes += 1
        merged: list[SpillFile] = []
        for start in range(0, len(runs), fan_in):
            group = runs[start : start + fan_in]
            if len(group) == 1:
                merged.append(group[0])
                continue
            out = ctx.spill.create(f"{op.name}-pass{passes}")
            for table in _merge(op, spec, group, guard, per_run):
                out.append(table)  # each merge step and each append check the cancel
            op.stats.spilled_bytes += out.arrow_bytes
            op.stats.spill_files += 1
            for r in group:
                r.delete()
            merged.append(out)
        runs = merged
    op.stats.merge_passes = passes + 1
    yield from _merge(op, spec, runs, guard, per_run)


def _merge(
    op: PhysicalOp, spec: SortSpec, group: list[SpillFile], guard: Guard, per_run: int
) -> Iterator[pa.Table]:
    """k-way merge of sorted runs, each read one segment at a time."""
    if not guard.resize(per_run * len(group)):
        raise _too_small(op, per_run * len(group), f"{len(group)} runs' merge buffers")
    op.note_peak(guard.nbytes)
    k = len(group)
    bufs: list[pa.Table | None] = [None] * k
    nexts = [0] * k
    key = functools.cmp_to_key(spec.compare)

    def load(r: int) -> None:
        while nexts[r] < len(group[r].segments):
            batch = group[r].read(nexts[r])
            nexts[r] += 1
            if batch.num_rows:
                bufs[r] = pa.Table.from_batches([batch])
                return
        bufs[r] = None

    for r in range(k):
        load(r)
    seg = op.ctx.batch_bytes
    steps = 0
    while True:
        op.ctx.check_cancel()
        steps += 1
        if steps % 32 == 0:
            release_memory()
        live = [r for r in range(k) if bufs[r] is not None]
        if not live:
            break
        bounded = [r for r in live if nexts[r] < len(group[r].segments)]
        parts: list[pa.Table] = []
        if bounded:
            lasts = {r: spec.row(bufs[r], bufs[r].num_rows - 1) for r in bounded}  # type: ignore[union-attr]
            bound = min(lasts.values(), key=key)
            for r in live:
                buf = bufs[r]
                assert buf is not None
                n = spec.count_le(buf, bound)
                if n:
                    parts.append(buf.slice(0, n))
                    rest = buf.slice(n)
                    bufs[r] = rest
                if bufs[r].num_rows == 0:  # type: ignore[union-attr]
                    load(r)
        else:
            parts = [b for b in bufs if b is not None]
            bufs = [None] * k
        if not parts:
            continue
        if len(parts) == 1:
            yield from _slices(parts[0], seg)
            continue
        table = pa.concat_tables(parts)
        idx = spec.indices(table)
        rows = _rows_per(table, seg)
        for start in range(0, table.num_rows, rows):
            yield gather(table, idx.slice(start, rows))
    guard.resize(0)


class SortOp(PhysicalOp):
    name = "sort"

    def __init__(self, ctx: ExecContext, node: lp.Sort, child: PhysicalOp) -> None:
        super().__init__(ctx, [child], child.schema)
        self.spec = SortSpec(node.keys, child.schema)
        self.detail = ", ".join(
            f"{k.column} {'desc' if k.descending else 'asc'}"
            f"{' nulls first' if k.nulls_first else ''}"
            for k in node.keys
        )

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        for table in external_sort(self, self.spec, self.children[0].batches()):
            yield from self.spec.strip(table).to_batches()


class TopKOp(PhysicalOp):
    """Keeps the best ``n`` rows seen so far (reserved); refuses ``n`` rows that cannot fit."""

    name = "topk"

    def __init__(self, ctx: ExecContext, node: lp.TopK, child: PhysicalOp) -> None:
        super().__init__(ctx, [child], child.schema)
        self.node = node
        self.spec = SortSpec(node.keys, child.schema)
        self.detail = f"n={node.n}"

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        n = self.node.n
        if n == 0:
            return
        guard = self.mem.try_acquire(0, self.label)
        assert guard is not None
        try:
            top: pa.Table | None = None
            for batch in self.children[0].batches():
                t = self.spec.augment(pa.Table.from_batches([batch]))
                if top is not None:
                    t = pa.concat_tables([top, t])
                need = 2 * t.nbytes + _INDEX_BYTES * t.num_rows
                if not guard.resize(need):
                    # The kept rows grow to n: size the suggestion to n rows plus a batch.
                    row = t.nbytes / max(t.num_rows, 1)
                    full = int((2 * row + _INDEX_BYTES) * (n + 2 * batch.num_rows))
                    raise _too_small(self, need, f"the top {n} rows", full)
                self.note_peak(guard.nbytes)
                idx = self.spec.indices(t)
                top = gather(t, idx.slice(0, n))
                guard.resize(top.nbytes)
            if top is not None:
                for part in _slices(self.spec.strip(top), self.ctx.batch_bytes):
                    yield from part.to_batches()
        finally:
            guard.release()


def _same_as_previous(table: pa.Table, columns: tuple[str, ...]) -> np.ndarray:
    """For rows 1.., whether the row's ``columns`` equal the previous row's as SQL groups
    them (NULL with NULL, NaN with NaN, -0.0 with 0.0)."""
    same = np.ones(max(table.num_rows - 1, 0), dtype=bool)
    if table.num_rows < 2:
        return same
    for name in columns:
        col = table.column(name).combine_chunks()
        a, b = col.slice(1), col.slice(0, len(col) - 1)
        eq = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        eq = pc.or_(eq, both_null)
        if pa.types.is_floating(col.type):
            eq = pc.or_(eq, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
        same &= np.asarray(eq.to_numpy(zero_copy_only=False), dtype=bool)
    return same


class TopKPerGroupOp(PhysicalOp):
    """The first ``n`` rows of each ``per`` group: an external sort by (``per``, keys), then
    each sorted batch keeps the rows whose rank within their group is below ``n`` (ranks
    carried from one batch to the next). Memory is the sort's: bounded, spilling."""

    name = "topk-per-group"

    def __init__(self, ctx: ExecContext, node: lp.TopK, child: PhysicalOp) -> None:
        super().__init__(ctx, [child], child.schema)
        self.node = node
        # The groups first, so that each is one run of the sorted rows; a key that is also a
        # ``per`` column is one value within its group and orders nothing there. (It was
        # the group key left out instead: a group split into runs when another key came
        # first, and each run kept its own n rows.)
        group = [lp.SortKey(c) for c in node.per]
        keys = [k for k in node.keys if k.column not in node.per]
        self.spec = SortSpec([*group, *keys], child.schema)
        self.detail = f"n={node.n} per {', '.join(node.per)}"

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        n, per = self.node.n, self.node.per
        if n == 0:
            return
        last: pa.Table | None = None  # the previous batch's last row
        carried = 0  # rows of that row's group already seen
        for table in external_sort(self, self.spec, self.children[0].batches()):
            table = self.spec.strip(table)
            if not table.num_rows:
                continue
            head = table if last is None else pa.concat_tables([last, table.select(per)])
            same = _same_as_previous(head.select(per), per)
            if last is None:
                starts = np.r_[True, ~same]
                continues = False
            else:
                starts = ~same
                continues = not starts[0]
                starts[0] = True
            pos = np.arange(table.num_rows)
            rank = pos - np.maximum.accumulate(np.where(starts, pos, 0))
            first_run = np.cumsum(starts) == 1
            if continues:
                rank = np.where(first_run, rank + carried, rank)
            keep = rank < n
            tail_rank = int(rank[-1])
            carried = tail_rank + 1
            last = table.select(per).slice(table.num_rows - 1)
            if keep.all():
                yield from table.to_batches()
            elif keep.any():
                yield from table.filter(pa.array(keep)).to_batches()
