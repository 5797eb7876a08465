"""Plans to JSON and back (elytra ships plans to workers), and the stable plan hash.

Each node is ``{"op": "<name>", ...fields}``; expressions use ``platform_core.expr``'s JSON
form and schemas ``platform_core.Schema``'s. Unknown operators and fields are refused.
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from typing import Any

from platform_core import Schema, canonical_json, stable_hash
from platform_core.expr import Aggregate as AggExpr
from platform_core.expr import Expr, from_dict, to_dict

from . import plan as lp
from .errors import PlanError

__all__ = ["plan_from_dict", "plan_from_json", "plan_hash", "plan_to_dict", "plan_to_json"]

_OPS: dict[str, type[lp.Node]] = {
    "scan": lp.Scan,
    "input": lp.Input,
    "filter": lp.Filter,
    "project": lp.Project,
    "map": lp.Map,
    "sort": lp.Sort,
    "aggregate": lp.Aggregate,
    "join": lp.Join,
    "limit": lp.Limit,
    "topk": lp.TopK,
    "union": lp.Union,
    "sink": lp.Sink,
    "pymap": lp.PyMap,
}
_NAMES = {cls: name for name, cls in _OPS.items()}


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"pickle": base64.b64encode(value).decode()}
    if isinstance(value, lp.Node):
        return plan_to_dict(value)
    if isinstance(value, Expr):
        return to_dict(value)
    if isinstance(value, Schema):
        return value.to_dict()
    if isinstance(value, lp.SortKey):
        return {
            "column": value.column,
            "descending": value.descending,
            "nulls_first": value.nulls_first,
        }
    if isinstance(value, lp.AggSpec):
        return {"name": value.name, "agg": to_dict(value.agg)}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def plan_to_dict(node: lp.Node) -> dict[str, Any]:
    """The plan as plain JSON-able values."""
    out: dict[str, Any] = {"op": _NAMES[type(node)]}
    for f in fields(node):
        value = getattr(node, f.name)
        if f.name == "row_groups" and value is None:
            continue  # a whole file: the JSON (and every plan hash) as before row groups
        out[f.name] = _encode(value)
    return out


def plan_to_json(node: lp.Node) -> str:
    """Canonical JSON text of the plan (sorted keys, no whitespace)."""
    return canonical_json(plan_to_dict(node))


def plan_hash(node: lp.Node, config: dict[str, Any] | None = None) -> str:
    """SHA-256 of the plan's canonical JSON and the config that affects its output."""
    return stable_hash({"plan": plan_to_dict(node), "config": config or {}})


def _expr(value: Any, where: str) -> Expr:
    try:
        return from_dict(value)
    except Exception as exc:
        raise PlanError(f"{where}: not an expression: {exc}") from exc


def _decode_field(op: str, name: str, value: Any, trusted: bool = False) -> Any:
    where = f"{op}.{name}"
    if name in ("input", "left", "right"):
        return plan_from_dict(value, trusted=trusted)
    if name == "inputs":
        return tuple(plan_from_dict(v, trusted=trusted) for v in value)
    if name in ("schema", "state_of"):
        return None if value is None else Schema.from_dict(value)
    if name == "predicate":
        return None if value is None else _expr(value, where)
    if name == "keys":
        return tuple(lp.SortKey(**k) for k in value)
    if name == "aggregates":
        out = []
        for a in value:
            agg = _expr(a["agg"], where)
            if not isinstance(agg, AggExpr):
                raise PlanError(f"{where}: {a['name']!r} is not an aggregate")
            out.append(lp.AggSpec(a["name"], agg))
        return tuple(out)
    if op == "map" and name == "columns":
        return tuple((n, _expr(e, where)) for n, e in value)
    if op == "project" and name == "columns":
        return tuple((o, i) for o, i in value)
    if op == "pymap" and name == "fn":
        return base64.b64decode(value["pickle"], validate=True)
    if isinstance(value, list):
        return tuple(value)
    return value


def plan_from_dict(data: Any, *, trusted: bool = False) -> lp.Node:
    """A plan from ``plan_to_dict``'s output; unknown operators or fields raise ``PlanError``.

    Python functions (``pymap``) are refused unless ``trusted``: decoding one runs code.
    """
    if not isinstance(data, dict) or "op" not in data:
        raise PlanError(f"a plan node must be an object with an 'op', got {str(data)[:80]}")
    op = data["op"]
    if op == "pymap" and not trusted:
        raise PlanError(
            "this plan holds a Python function (pymap); such plans run only where they were "
            "made, never from JSON sent by someone else"
        )
    cls = _OPS.get(op)
    if cls is None:
        raise PlanError(f"unknown plan operator {op!r} (known: {', '.join(sorted(_OPS))})")
    known = {f.name for f in fields(cls)}
    extra = sorted(set(data) - known - {"op"})
    if extra:
        raise PlanError(f"{op}: unknown fields {extra} (known: {sorted(known)})")
    try:
        kwargs = {k: _decode_field(op, k, v, trusted) for k, v in data.items() if k != "op"}
        return cls(**kwargs)
    except PlanError:
        raise
    except (TypeError, KeyError, ValueError) as exc:
        raise PlanError(f"{op}: malformed node: {exc}") from exc


def plan_from_json(text: str, *, trusted: bool = False) -> lp.Node:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"plan JSON is malformed: {exc}") from exc
    return plan_from_dict(data, trusted=trusted)
