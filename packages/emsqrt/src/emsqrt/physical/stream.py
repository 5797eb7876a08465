"""Streaming operators: one batch in, one batch out, nothing held between batches."""

from __future__ import annotations

from collections.abc import Generator

import pyarrow as pa

from platform_core.expr import evaluate

from .. import plan as lp
from ..context import ExecContext
from .base import PhysicalOp
from .scan import apply_predicate

__all__ = ["FilterOp", "LimitOp", "MapOp", "ProjectOp", "UnionOp"]


class FilterOp(PhysicalOp):
    name = "filter"

    def __init__(self, ctx: ExecContext, node: lp.Filter, child: PhysicalOp) -> None:
        super().__init__(ctx, [child], child.schema)
        self.node = node

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        for batch in self.children[0].batches():
            yield apply_predicate(batch, self.node.predicate)


class ProjectOp(PhysicalOp):
    name = "project"

    def __init__(
        self, ctx: ExecContext, node: lp.Project, child: PhysicalOp, schema: pa.Schema
    ) -> None:
        super().__init__(ctx, [child], schema)
        self.node = node

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        names = [o for o, _ in self.node.columns]
        for batch in self.children[0].batches():
            cols = [batch.column(i) for _, i in self.node.columns]
            yield pa.RecordBatch.from_arrays(cols, names=names)


class MapOp(PhysicalOp):
    name = "map"

    def __init__(
        self, ctx: ExecContext, node: lp.Map, child: PhysicalOp, schema: pa.Schema
    ) -> None:
        super().__init__(ctx, [child], schema)
        self.node = node

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        for batch in self.children[0].batches():
            for name, expr in self.node.columns:
                value = evaluate(expr, batch)
                idx = batch.schema.get_field_index(name)
                field = pa.field(name, value.type)
                if idx >= 0:
                    batch = batch.set_column(idx, field, value)
                else:
                    batch = batch.append_column(field, value)
            yield batch


class LimitOp(PhysicalOp):
    """Skip ``offset`` rows, pass ``n``, then stop pulling from the child."""

    name = "limit"

    def __init__(self, ctx: ExecContext, node: lp.Limit, child: PhysicalOp) -> None:
        super().__init__(ctx, [child], child.schema)
        self.node = node

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        skip, left = self.node.offset, self.node.n
        if left == 0:
            return
        for batch in self.children[0].batches():
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            batch = batch.slice(skip)
            skip = 0
            if batch.num_rows >= left:
                yield batch.slice(0, left)
                return
            left -= batch.num_rows
            yield batch


class UnionOp(PhysicalOp):
    """UNION ALL: each input in turn, cast to the unified schema."""

    name = "union"

    def __init__(self, ctx: ExecContext, children: list[PhysicalOp], schema: pa.Schema) -> None:
        super().__init__(ctx, children, schema)

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        for child in self.children:
            for batch in child.batches():
                yield batch.cast(self.schema) if batch.schema != self.schema else batch
