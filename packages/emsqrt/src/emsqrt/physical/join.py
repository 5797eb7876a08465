"""Equi-joins: in memory when the build (right) side fits, else a grace hash join.

The right side is collected under reservation (five times its bytes: Acero copies the whole
build side into its hash table, apache/arrow#31769; 4x peaked 12% over a 32 MB cap, measured). If it fits, left batches are probed against it in
groups sized to the budget with Acero's ``Table.join``. If not, both sides are hash-partitioned
to disk on their keys and each pair of partitions is joined the same way; a right partition
still too big is partitioned again on the next hash bits (skew), up to ``max_depth`` levels.

RIGHT and FULL joins cannot be probed group by group with Acero's own types (each group would
emit the unmatched right rows again): they carry a row id on the right, mark the matched ids
(a numpy bit per right row) and emit the unmatched right rows once at the end.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_core import hash_columns

from .. import plan as lp
from ..context import ExecContext
from ..errors import CapTooSmallError
from ..joinkeys import join_key_type, right_output_names
from ..spill import SpillFile
from .base import PhysicalOp
from .floatkeys import canonical_key
from .partition import Partitioner, sliced

__all__ = ["JoinOp", "join_key_type"]

_ACERO = {
    "inner": "inner",
    "left": "left outer",
    "right": "inner",
    "full": "left outer",
    "semi": "left semi",
    "anti": "left anti",
}
_RID = "__emsqrt_rid"
_LID = "__emsqrt_lid"
_BUILD_FACTOR = 5  # see the module docstring
# Per probe byte: the probe group, Acero's working memory and the join's output (about the
# probe's size again when keys match about once), measured against the pool.
_PROBE_FACTOR = 5


class JoinOp(PhysicalOp):
    name = "join"

    def __init__(
        self,
        ctx: ExecContext,
        node: lp.Join,
        left: PhysicalOp,
        right: PhysicalOp,
        schema: pa.Schema,
    ) -> None:
        super().__init__(ctx, [left, right], schema)
        self.node = node
        self.lkeys = list(node.left_keys)
        self.rkeys = list(node.left_keys)  # right keys are renamed to the left's names
        self.renames = dict(right_output_names(node, left.schema, right.schema))
        self.key_types = [
            join_key_type(left.schema.field(lk).type, right.schema.field(rk).type)
            for lk, rk in zip(node.left_keys, node.right_keys, strict=True)
        ]
        self.bits = max(1, min(6, (ctx.max_partitions - 1).bit_length()))
        self.detail = f"{node.how} on {', '.join(node.left_keys)}"

    @property
    def _probe_room(self) -> int:
        """Room left beside the build side for probe groups and their join output: at most
        half of this join's share. Batches are sized from the whole cap, so where several
        operators split it, ten batches were more than the share, and every build side
        however small went to disk partition by partition (TPC-H q20's merge: 53 s, not
        0.3 s); the probe sizes its groups to what is free and needs a few batches."""
        return min(2 * _PROBE_FACTOR * self.ctx.batch_bytes, int(self.mem.cap_bytes) // 2)

    # ------------------------------------------------------------------ shaping
    def _left(self, batch: pa.RecordBatch | pa.Table) -> pa.Table:
        t = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        for k, typ in zip(self.lkeys, self.key_types, strict=True):
            if t.schema.field(k).type != typ or pa.types.is_floating(typ):
                key = canonical_key(pc.cast(t.column(k), typ))
                t = t.set_column(t.schema.get_field_index(k), k, key)
        return t

    def _right(self, batch: pa.RecordBatch) -> pa.Table:
        """Right keys under the left's names and types, other columns under output names."""
        node = self.node
        cols, names = [], []
        for lk, rk, typ in zip(node.left_keys, node.right_keys, self.key_types, strict=True):
            cols.append(canonical_key(pc.cast(batch.column(rk), typ)))
            names.append(lk)
        if node.how not in ("semi", "anti"):
            for old, new in self.renames.items():
                cols.append(batch.column(old))
                names.append(new)
        return pa.Table.from_arrays(cols, names=names)

    # ------------------------------------------------------------------ driver
    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        left, right = self.children
        ctx = self.ctx
        guard = self.mem.try_acquire(0, self.label)
        assert guard is not None
        held: list[pa.Table] = []
        nulls: list[pa.Table] = []
        rights = self._drop_null_keys((self._right(b) for b in right.batches()), "right", nulls)
        partitioner: Partitioner | None = None
        try:
            for t in rights:
                ctx.check_cancel()
                if guard.try_grow(_BUILD_FACTOR * t.nbytes, self._probe_room):
                    held.append(t)
                    self.note_peak(guard.nbytes)
                    continue
                guard.resize(0)  # the held tables move into the partitioner's reservation
                partitioner = Partitioner(
                    ctx, self.mem, self.label + "-R", self.lkeys, 0, self.bits
                )
                for h in held:
                    partitioner.add(h)
                held = []
                partitioner.add(t)
                for rest in rights:
                    partitioner.add(rest)
                break
            for t in nulls:
                yield from self._pad(t)
            nulls.clear()
            if partitioner is None:
                build = self._build_table(held)
                lefts = self._drop_null_keys((self._left(b) for b in left.batches()), "left", nulls)
                yield from self._probe(lefts, build)
                for t in nulls:
                    yield from self._pad(t)
                return
            rfiles = partitioner.finish()
            self.stats.spilled_bytes += partitioner.spilled_bytes
        finally:
            guard.release()
        lpart = Partitioner(ctx, self.mem, self.label + "-L", self.lkeys, 0, self.bits)
        for t in self._drop_null_keys((self._left(b) for b in left.batches()), "left", nulls):
            lpart.add(t)
            for n in nulls:
                yield from self._pad(n)
            nulls.clear()
        for n in nulls:  # set aside by the last batches, after the loop's last turn
            yield from self._pad(n)
        nulls.clear()
        lfiles = lpart.finish()
        self.stats.spilled_bytes += lpart.spilled_bytes
        self.stats.repartition_depth = max(self.stats.repartition_depth, 1)
        yield from self._join_partitions(lpart, lfiles, partitioner, rfiles, 1)

    def _join_partitions(
        self,
        lpart: Partitioner,
        lfiles: list[SpillFile],
        rpart: Partitioner,
        rfiles: list[SpillFile],
        level: int,
    ) -> Iterator[pa.RecordBatch]:
        self.stats.partitions += len(rfiles)
        self.stats.spill_files += len(rfiles) + len(lfiles)
        lmap = {id(f): f for f in lfiles}
        by_index_l = {i: f for i, f in enumerate(lpart.files) if id(f) in lmap}
        by_index_r = {i: f for i, f in enumerate(rpart.files) if f.segments}
        for i in sorted(set(by_index_l) | set(by_index_r)):
            lf, rf = by_index_l.get(i), by_index_r.get(i)
            yield from self._join_pair(lf, rf, level)
            for f in (lf, rf):
                if f is not None:
                    f.delete()

    def _join_pair(
        self, lf: SpillFile | None, rf: SpillFile | None, level: int
    ) -> Iterator[pa.RecordBatch]:
        how = self.node.how
        if lf is None and how not in ("right", "full"):
            return
        if rf is None and how in ("inner", "semi", "right"):
            return
        ctx = self.ctx
        if rf is None:
            # an empty build side holds nothing: the left rows pass through the probe one batch
            # at a time (left, anti and full joins keep them), so no memory is asked for; a
            # budget too full for even the probe's room used to fall through to an assert
            lefts = (pa.Table.from_batches([b]) for b in lf) if lf is not None else iter(())
            yield from self._probe(lefts, self._build_table([]))
            return
        need = _BUILD_FACTOR * rf.arrow_bytes
        guard = self.mem.try_acquire(need, self.label, self._probe_room)
        if guard is not None:
            try:
                self.note_peak(guard.nbytes)
                held = [pa.Table.from_batches([b]) for b in rf]
                build = self._build_table(held)
                lefts = (pa.Table.from_batches([b]) for b in lf) if lf is not None else iter(())
                yield from self._probe(lefts, build)
            finally:
                guard.release()
            return
        if level >= ctx.max_depth or self._single_key(rf):
            # Hashing cannot split one key: join block by block instead.
            yield from self._block_join(lf, rf)
            return
        self.stats.repartition_depth = max(self.stats.repartition_depth, level + 1)
        rpart = Partitioner(ctx, self.mem, self.label + "-R", self.lkeys, level, self.bits)
        for b in rf:
            rpart.add(pa.Table.from_batches([b]))
        rfiles = rpart.finish()
        lpart = Partitioner(ctx, self.mem, self.label + "-L", self.lkeys, level, self.bits)
        if lf is not None:
            for b in lf:
                lpart.add(pa.Table.from_batches([b]))
        lfiles = lpart.finish()
        self.stats.spilled_bytes += rpart.spilled_bytes + lpart.spilled_bytes
        yield from self._join_partitions(lpart, lfiles, rpart, rfiles, level + 1)

    # ------------------------------------------------------------------ skew
    def _single_key(self, rf: SpillFile) -> bool:
        """Whether every row of the partition has the same key (one read pass)."""
        first: int | None = None
        for b in rf:
            h = hash_columns(b, self.lkeys).to_numpy()
            lo, hi = int(h.min()), int(h.max())
            if lo != hi or (first is not None and lo != first):
                return False
            first = lo
        return True

    def _block_join(self, lf: SpillFile | None, rf: SpillFile) -> Iterator[pa.RecordBatch]:
        """A partition whose build side holds one key with more rows than the share: build
        chunks that fit, each probed by the whole left partition (re-read per chunk), with a
        bit per left and right row recording matches for the outer, semi and anti joins."""
        how, ctx = self.node.how, self.ctx
        self.stats.skew_blocks += 1
        nl = lf.rows if lf is not None else 0
        bits = self.mem.acquire(nl + rf.rows, self.label + "-bits", "for match bits ")
        matched_l = np.zeros(nl, dtype=bool)
        matched_r = np.zeros(rf.rows, dtype=bool)
        emit_pairs = how in ("inner", "left", "right", "full")
        try:
            chunk_limit = max(ctx.batch_bytes, self.mem.available // (2 * _BUILD_FACTOR))
            r_off = 0
            for chunk in _chunks(rf, chunk_limit, extra_row_bytes=8):  # + _RID
                build = chunk.append_column(
                    _RID, pa.array(np.arange(r_off, r_off + chunk.num_rows, dtype=np.int64))
                )
                r_off += chunk.num_rows
                guard = self.mem.acquire(
                    _BUILD_FACTOR * build.nbytes, self.label, "for a build block "
                )
                try:
                    dup = int(
                        pc.max(
                            build.group_by(self.lkeys)
                            .aggregate([([], "count_all")])
                            .column("count_all")
                        ).as_py()
                        or 1
                    )
                    # Left rows per probe so one call's output (dup rows per left row) stays
                    # near a few batches.
                    row_bytes = max(1, 2 * build.nbytes // max(build.num_rows, 1))
                    rows = max(1, (4 * ctx.batch_bytes) // (dup * row_bytes))
                    l_off = 0
                    for left in (pa.Table.from_batches([b]) for b in (lf or [])):
                        ids = pa.array(np.arange(l_off, l_off + left.num_rows, dtype=np.int64))
                        left = left.append_column(_LID, ids)
                        l_off += left.num_rows
                        for start in range(0, left.num_rows, rows):
                            ctx.check_cancel()
                            out = left.slice(start, rows).join(
                                build,
                                keys=self.lkeys,
                                join_type="inner",
                                coalesce_keys=True,
                                use_threads=False,
                            )
                            if out.num_rows == 0:
                                continue
                            matched_l[out.column(_LID).to_numpy()] = True
                            matched_r[out.column(_RID).to_numpy()] = True
                            if emit_pairs:
                                out = out.drop_columns([_LID, _RID]).select(self.schema.names)
                                yield from out.to_batches(max_chunksize=_rows(out, ctx))
                finally:
                    guard.release()
            if lf is not None and how in ("left", "full", "anti", "semi"):
                keep_matched = how == "semi"
                l_off = 0
                for b in lf:
                    mask = matched_l[l_off : l_off + b.num_rows]
                    l_off += b.num_rows
                    rows_ = pa.Table.from_batches([b]).filter(
                        pa.array(mask if keep_matched else ~mask)
                    )
                    if rows_.num_rows:
                        yield from self._pad(rows_)
            if how in ("right", "full"):
                r_off = 0
                for b in rf:
                    mask = ~matched_r[r_off : r_off + b.num_rows]
                    r_off += b.num_rows
                    rows_ = pa.Table.from_batches([b]).filter(pa.array(mask))
                    if rows_.num_rows:
                        yield from self._pad(rows_)
        finally:
            bits.release()

    # ------------------------------------------------------------------ in memory
    def _build_table(self, held: list[pa.Table]) -> pa.Table:
        schema = self._right(pa.RecordBatch.from_pylist([], schema=self.children[1].schema)).schema
        table = pa.concat_tables(held) if held else schema.empty_table()
        if self.node.how in ("right", "full"):
            table = table.append_column(_RID, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        return table

    def _probe(self, lefts: Iterable[pa.Table], build: pa.Table) -> Iterator[pa.RecordBatch]:
        ctx, how = self.ctx, self.node.how
        matched = np.zeros(build.num_rows, dtype=bool) if how in ("right", "full") else None
        group: list[pa.Table] = []
        gbytes = 0
        fanout = self._fanout(build)
        factor = _PROBE_FACTOR + 1.5 * fanout
        limit = max(ctx.batch_bytes // 2, int(self.mem.available // (factor + 1)))
        # A probe slice is sized so that its output, not only its input, fits.
        piece = max(1, min(ctx.batch_bytes // 2, int(ctx.batch_bytes / fanout)))
        guard = self.mem.try_acquire(0, self.label + "-probe")
        assert guard is not None
        try:
            for t in sliced(lefts, piece):
                ctx.check_cancel()
                need = int(factor * t.nbytes)
                room = 2 * ctx.batch_bytes  # for the output batches downstream
                if group and (gbytes + t.nbytes > limit or need + room > self.mem.available):
                    yield from self._join_group(pa.concat_tables(group), build, matched)
                    group, gbytes = [], 0
                    guard.resize(0)
                if not guard.try_grow(need, room):
                    raise CapTooSmallError(
                        f"join: cannot hold a {t.nbytes}-byte probe batch and its output "
                        f"(up to {fanout:.0f} times its bytes) beside the build side "
                        f"({self.mem!r}, {self.mem.parent!r}); "
                        f"raise the cap to at least {ctx.smallest_cap(guard.nbytes + need, self.mem)} bytes"
                    )
                group.append(t)
                gbytes += t.nbytes
            if group:
                yield from self._join_group(pa.concat_tables(group), build, matched)
        finally:
            guard.release()
        if matched is not None and not matched.all():
            yield from self._unmatched_right(build, matched)

    def _fanout(self, build: pa.Table) -> float:
        """Output bytes per probe byte at worst: the most build rows one key holds, times an
        output row's width over a probe row's (a key repeated on the build side multiplies
        each matching probe row)."""
        if self.node.how in ("semi", "anti") or build.num_rows == 0:
            return 1.0
        counts = build.group_by(self.lkeys, use_threads=False).aggregate([([], "count_all")])
        most = int(pc.max(counts.column("count_all")).as_py() or 1)
        if most <= 1:
            return 1.0
        left = self.children[0].schema
        probe_row = max(1, sum(_width(f.type) for f in left))
        build_row = build.nbytes / build.num_rows
        return float(max(1.0, most * (probe_row + build_row) / probe_row))

    def _join_group(
        self, left: pa.Table, build: pa.Table, matched: np.ndarray | None
    ) -> Iterator[pa.RecordBatch]:
        how = self.node.how
        out = left.join(
            build,
            keys=self.lkeys,
            join_type=_ACERO[how],
            coalesce_keys=True,
            use_threads=False,
        )
        if matched is not None:
            rid = out.column(_RID)
            valid = pc.drop_null(rid).to_numpy()
            matched[valid] = True
            out = out.drop_columns([_RID])
        yield from out.select(self.schema.names).to_batches(max_chunksize=_rows(out, self.ctx))

    def _drop_null_keys(
        self, tables: Iterator[pa.Table], side: str, out: list[pa.Table]
    ) -> Iterator[pa.Table]:
        """Rows with a NULL key never match: they are set aside (into ``out``) when the join
        type emits unmatched rows of this side, else dropped; the rest pass on."""
        keep = self.node.how in (("right", "full") if side == "right" else ("left", "full", "anti"))
        for t in tables:
            mask = None
            for k in self.lkeys:
                isnull = pc.is_null(t.column(k))
                mask = isnull if mask is None else pc.or_(mask, isnull)
            if mask is None or not pc.any(mask).as_py():
                yield t
                continue
            if keep:
                out.append(t.filter(mask))
            rest = t.filter(pc.invert(mask))
            if rest.num_rows:
                yield rest

    def _unmatched_right(self, build: pa.Table, matched: np.ndarray) -> Iterator[pa.RecordBatch]:
        yield from self._pad(build.filter(pa.array(~matched)))

    def _pad(self, rows: pa.Table) -> Iterator[pa.RecordBatch]:
        """Rows of one side under the output schema, the other side's columns NULL."""
        cols = []
        for field in self.schema:
            if field.name in rows.column_names:
                cols.append(pc.cast(rows.column(field.name), field.type))
            else:
                cols.append(pa.nulls(rows.num_rows, field.type))
        out = pa.Table.from_arrays(cols, schema=self.schema)
        yield from out.to_batches(max_chunksize=_rows(out, self.ctx))


def _chunks(f: SpillFile, limit: int, extra_row_bytes: int = 0) -> Iterator[pa.Table]:
    """The file's segments grouped into tables of about ``limit`` bytes, counting
    ``extra_row_bytes`` per row for columns the caller adds (a block's 8-byte row id is three
    times an int32 key, so leaving it out lets a narrow-keyed block overrun its share)."""
    held: list[pa.RecordBatch] = []
    size = 0
    row_bytes = max(1, f.arrow_bytes // max(f.rows, 1))
    piece_limit = max(1, (limit // 2) * row_bytes // (row_bytes + extra_row_bytes))
    pieces = (p for seg in f for p in sliced([pa.Table.from_batches([seg])], piece_limit))
    for piece in pieces:
        b = piece.combine_chunks().to_batches()[0] if piece.num_rows else None
        if b is None:
            continue
        nbytes = b.nbytes + extra_row_bytes * b.num_rows
        if held and size + nbytes > limit:
            yield pa.Table.from_batches(held)
            held, size = [], 0
        held.append(b)
        size += nbytes
    if held:
        yield pa.Table.from_batches(held)


def _rows(table: pa.Table, ctx: ExecContext) -> int:
    return max(1, int(table.num_rows * ctx.batch_bytes / max(table.nbytes, 1)))


def _width(t: pa.DataType) -> int:
    """Bytes of one value, a guess of 16 for variable-width types."""
    try:
        return max(1, int(t.bit_width) // 8)
    except ValueError:
        return 16
