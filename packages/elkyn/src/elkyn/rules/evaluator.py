"""Evaluating a parsed rule: snapshots (``data``, ``newData``, ``root``), strings and operators.

Firebase's semantics: a rule allows only when it evaluates to exactly ``true``; an error while
evaluating (a method on null, ``auth.uid`` when signed out, a type mismatch) makes it false.
Equality is strict (no type coercion); ``&&``, ``||``, ``!`` and ``?:`` take booleans.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..paths import Path, is_prefix
from .parser import Node

__all__ = ["Context", "EvalError", "Snapshot", "evaluate"]

Reader = Callable[[Path], Any]


class EvalError(Exception):
    """The rule could not be evaluated; it counts as false."""


def _extract(value: Any, rel: Path) -> Any:
    for key in rel:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _set_in(base: Any, rel: Path, value: Any) -> Any:
    """``base`` with ``value`` written at ``rel`` (copying, pruning empty objects)."""
    if not rel:
        return value
    if value is None and not isinstance(base, dict):
        return base  # deleting below a leaf (or nothing) changes nothing
    out = dict(base) if isinstance(base, dict) else {}
    child = _set_in(out.get(rel[0]), rel[1:], value)
    if child is None:
        out.pop(rel[0], None)
    else:
        out[rel[0]] = child
    return out or None


@dataclass
class Tree:
    """The database as a rule sees it: the stored tree, with pending writes laid over it."""

    reader: Reader
    overlay: tuple[tuple[Path, Any], ...] = ()
    _cache: dict[Path, Any] = field(default_factory=dict)

    def value(self, path: Path) -> Any:
        if path in self._cache:
            return self._cache[path]
        covered = False
        value: Any = None
        for at, new in self.overlay:
            if is_prefix(at, path):
                value, covered = _extract(new, path[len(at) :]), True
        if not covered:
            value = self.reader(path)
        for at, new in self.overlay:
            if len(at) > len(path) and is_prefix(path, at):
                value = _set_in(value, at[len(path) :], new)
        self._cache[path] = value
        return value


@dataclass(frozen=True)
class Snapshot:
    """A location in a ``Tree``: what ``data``, ``newData`` and ``root`` are."""

    tree: Tree
    path: Path

    def val(self) -> Any:
        return self.tree.value(self.path)


@dataclass(frozen=True)
class Context:
    """The variables a rule sees at one location."""

    auth: Mapping[str, Any] | None
    now: int
    root: Snapshot
    data: Snapshot
    new_data: Snapshot | None
    variables: Mapping[str, str]
    query: Mapping[str, Any] | None = None
    """The read's query (``query.orderByChild``, ``query.limitToFirst``, ...); reads only."""


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise EvalError(f"expected a boolean, got {v!r}")
    return v


def _strict_eq(a: Any, b: Any) -> bool:
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, Snapshot):
        raise EvalError("compare snapshot values with .val()")
    return bool(a == b)


def _child_path(arg: Any) -> Path:
    if not isinstance(arg, str) or not arg:
        raise EvalError("child() needs a non-empty path string")
    keys = tuple(k for k in arg.split("/") if k)
    if not keys:
        raise EvalError("child() needs a non-empty path string")
    return keys


def _snapshot_method(snap: Snapshot, name: str, args: list[Any]) -> Any:
    if name == "val" and not args:
        return snap.val()
    if name == "child" and len(args) == 1:
        return Snapshot(snap.tree, snap.path + _child_path(args[0]))
    if name == "parent" and not args:
        if not snap.path:
            raise EvalError("the root has no parent")
        return Snapshot(snap.tree, snap.path[:-1])
    if name == "exists" and not args:
        return snap.val() is not None
    if name == "hasChild" and len(args) == 1:
        return Snapshot(snap.tree, snap.path + _child_path(args[0])).val() is not None
    if name == "hasChildren" and len(args) <= 1:
        value = snap.val()
        if not args:
            return isinstance(value, dict) and bool(value)
        if not isinstance(args[0], list):
            raise EvalError("hasChildren() takes a list of child names")
        return all(
            Snapshot(snap.tree, snap.path + _child_path(a)).val() is not None for a in args[0]
        )
    if name == "isString" and not args:
        return isinstance(snap.val(), str)
    if name == "isNumber" and not args:
        return _is_num(snap.val())
    if name == "isBoolean" and not args:
        return isinstance(snap.val(), bool)
    if name == "getPriority" and not args:
        return None
    raise EvalError(f"snapshots have no method {name}() with {len(args)} arguments")


def _string_method(s: str, name: str, args: list[Any]) -> Any:
    if name in ("contains", "beginsWith", "endsWith") and len(args) == 1:
        if not isinstance(args[0], str):
            raise EvalError(f"{name}() needs a string")
        if name == "contains":
            return args[0] in s
        return s.startswith(args[0]) if name == "beginsWith" else s.endswith(args[0])
    if name == "matches" and len(args) == 1:
        if not isinstance(args[0], re.Pattern):
            raise EvalError("matches() needs a regular expression literal")
        return args[0].search(s) is not None
    if name == "toLowerCase" and not args:
        return s.lower()
    if name == "toUpperCase" and not args:
        return s.upper()
    if name == "replace" and len(args) == 2:
        if not (isinstance(args[0], str) and isinstance(args[1], str)):
            raise EvalError("replace() needs two strings")
        return s.replace(args[0], args[1])
    raise EvalError(f"strings have no method {name}() with {len(args)} arguments")


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and (isinstance(a, str) or isinstance(b, str)):
        if isinstance(a, (str, int, float)) and isinstance(b, (str, int, float)):
            return _js_str(a) + _js_str(b)
        raise EvalError("+ needs strings or numbers")
    if not (_is_num(a) and _is_num(b)):
        raise EvalError(f"{op} needs numbers, got {a!r} and {b!r}")
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise EvalError("division by zero")
    if op == "/":
        return a / b
    return a - b * int(a / b)  # JavaScript's % keeps the dividend's sign


def _js_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def evaluate(node: Node, ctx: Context) -> Any:
    """The value of ``node`` in ``ctx``; raises ``EvalError`` when it cannot be evaluated."""
    op, args = node.op, node.args
    if op == "lit" or op == "regex":
        return args[0]
    if op == "name":
        name = args[0]
        if name.startswith("$"):
            if name not in ctx.variables:
                raise EvalError(f"unknown variable {name}")
            return ctx.variables[name]
        if name == "auth":
            return ctx.auth
        if name == "now":
            return ctx.now
        if name == "root":
            return ctx.root
        if name == "data":
            return ctx.data
        if name == "newData":
            if ctx.new_data is None:
                raise EvalError("newData is only defined in .write and .validate rules")
            return ctx.new_data
        if name == "query":
            if ctx.query is None:
                raise EvalError("query is only defined in .read rules")
            return ctx.query
        raise EvalError(f"{name} is not available here")
    if op == "list":
        return [evaluate(a, ctx) for a in args]
    if op == "!":
        return not _bool(evaluate(args[0], ctx))
    if op == "neg":
        v = evaluate(args[0], ctx)
        if not _is_num(v):
            raise EvalError("unary - needs a number")
        return -v
    if op == "&&":
        return _bool(evaluate(args[0], ctx)) and _bool(evaluate(args[1], ctx))
    if op == "||":
        return _bool(evaluate(args[0], ctx)) or _bool(evaluate(args[1], ctx))
    if op == "?:":
        branch = args[1] if _bool(evaluate(args[0], ctx)) else args[2]
        return evaluate(branch, ctx)
    if op in ("==", "===", "!=", "!=="):
        eq = _strict_eq(evaluate(args[0], ctx), evaluate(args[1], ctx))
        return eq if op in ("==", "===") else not eq
    if op in ("<", "<=", ">", ">="):
        a, b = evaluate(args[0], ctx), evaluate(args[1], ctx)
        if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
            raise EvalError(f"{op} compares two numbers or two strings")
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        return a > b if op == ">" else a >= b
    if op in ("+", "-", "*", "/", "%"):
        return _arith(op, evaluate(args[0], ctx), evaluate(args[1], ctx))
    if op == "member":
        target, name = evaluate(args[0], ctx), args[1]
        if isinstance(target, str) and name == "length":
            return len(target)
        if isinstance(target, Mapping):
            return target.get(name)
        raise EvalError(f"cannot read .{name} of {type(target).__name__}")
    if op == "index":
        target, key = evaluate(args[0], ctx), evaluate(args[1], ctx)
        if isinstance(target, Mapping) and isinstance(key, str):
            return target.get(key)
        raise EvalError("only objects can be indexed, with a string")
    if op == "call":
        target = evaluate(args[0], ctx)
        name = args[1]
        call_args = [evaluate(a, ctx) for a in args[2]]
        if isinstance(target, Snapshot):
            return _snapshot_method(target, name, call_args)
        if isinstance(target, str):
            return _string_method(target, name, call_args)
        raise EvalError(f"cannot call {name}() on {type(target).__name__}")
    raise EvalError(f"unknown operation {op}")
