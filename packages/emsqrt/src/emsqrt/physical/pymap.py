"""A user's Python function over each batch, its output checked against the declared schema."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Generator
from typing import Any

import pyarrow as pa

from .. import plan as lp
from ..context import ExecContext
from ..errors import EmsqrtError
from .base import PhysicalOp

__all__ = ["PyMapOp", "UserFunctionError"]


class UserFunctionError(EmsqrtError):
    """The user's function raised, or returned what its declared schema does not hold."""


class PyMapOp(PhysicalOp):
    """Streams: each input batch through the function, one output batch per input batch."""

    name = "pymap"

    def __init__(
        self, ctx: ExecContext, node: lp.PyMap, child: PhysicalOp, schema: pa.Schema
    ) -> None:
        super().__init__(ctx, [child], schema)
        self.node = node
        self._fn: Callable[..., Any] | None = None

    def _call(self, batch: pa.RecordBatch) -> pa.Table:
        if self._fn is None:
            self._fn = pickle.loads(self.node.fn)
        fn, mode = self._fn, self.node.mode
        try:
            if mode == "batches":
                out = fn(batch)
            elif mode == "rows":
                out = [fn(row) for row in batch.to_pylist()]
            else:
                out = [r for row in batch.to_pylist() for r in fn(row)]
        except Exception as exc:
            raise UserFunctionError(f"{self.node.name} raised {type(exc).__name__}: {exc}") from exc
        return _as_table(out, self.schema, self.node.name)

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        for batch in self.children[0].batches():
            yield from self._call(batch).to_batches()


def _as_table(out: Any, schema: pa.Schema, name: str) -> pa.Table:
    try:
        if isinstance(out, pa.Table):
            table = out
        elif isinstance(out, pa.RecordBatch):
            table = pa.Table.from_batches([out])
        elif isinstance(out, list):
            table = pa.Table.from_pylist(out, schema=schema)
        elif isinstance(out, dict):
            table = pa.table(out)
        else:
            raise TypeError(f"returned {type(out).__name__}")
        if table.schema.names != schema.names:
            raise TypeError(f"returned columns {table.schema.names}, declared {schema.names}")
        return table if table.schema.equals(schema) else table.cast(schema)
    except (TypeError, pa.ArrowException) as exc:
        raise UserFunctionError(
            f"{name}: its output does not match the declared schema ({exc}); return a "
            "RecordBatch, Table or dict with the columns of `schema=`"
        ) from None
