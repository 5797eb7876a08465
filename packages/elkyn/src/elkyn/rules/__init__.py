"""Security rules with Firebase's semantics: ``.read``, ``.write``, ``.validate``, ``.indexOn``.

- ``.read``/``.write`` grants cascade: access at a path is allowed if a rule at that path or any
  ancestor allows it; a deeper rule cannot take it back, and rules are not filters (reading
  ``/`` needs a grant at ``/``).
- ``.validate`` never cascades; every ``.validate`` at a location whose new data is not null
  must pass: the written location, its ancestors and every location inside the new data.
- ``$wildcards`` match one key and bind it as a string variable; default deny.
Each rule is parsed once when the document is loaded; a rule that fails to parse is refused
with its path and position.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidDataError
from ..paths import Path, check_key
from .evaluator import Context, EvalError, Reader, Snapshot, Tree, evaluate
from .parser import Node, RuleSyntaxError, parse_expression

__all__ = ["RuleNode", "Rules", "query_variables"]

_KINDS = (".read", ".write", ".validate")
MAX_RULES_BYTES = 256 * 1024


@dataclass
class RuleNode:
    """The rules at one level of the tree."""

    read: Node | None = None
    write: Node | None = None
    validate: Node | None = None
    index_on: tuple[str, ...] = ()
    children: dict[str, RuleNode] = field(default_factory=dict)
    wildcard: tuple[str, RuleNode] | None = None
    sealed: bool = False
    """A reserved subtree (``/jobs``): grants above it do not reach into it."""

    def child(self, key: str) -> tuple[RuleNode, str | None] | None:
        """The rule node for ``key`` and the wildcard variable it binds, if any."""
        found = self.children.get(key)
        if found is not None:
            return found, None
        if self.wildcard is not None:
            return self.wildcard[1], self.wildcard[0]
        return None


def _compile_rule(value: Any, where: str) -> Node:
    if isinstance(value, bool):
        return Node("lit", (value,), 0)
    if not isinstance(value, str):
        raise InvalidDataError(
            f"rules: {where} must be a boolean or a string expression", rule=where
        )
    try:
        return parse_expression(value)
    except RuleSyntaxError as exc:
        raise InvalidDataError(
            f"rules: {where}: {exc.message} at position {exc.pos + 1}: "
            f"{value[: exc.pos]}\u2038{value[exc.pos :]}",
            rule=where,
            offset=exc.pos,
        ) from None


def _compile(doc: Any, where: str, variables: frozenset[str]) -> RuleNode:
    if not isinstance(doc, Mapping):
        raise InvalidDataError(f"rules: {where} must be an object of rules", rule=where)
    node = RuleNode()
    for key, value in doc.items():
        at = f"{where}/{key}"
        if key in _KINDS:
            setattr(node, key[1:], _compile_rule(value, at))
            _check_vars(getattr(node, key[1:]), variables, at)
        elif key == ".indexOn":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise InvalidDataError(
                    f"rules: {at} must be a string or a list of strings", rule=at
                )
            node.index_on = tuple(names)
        elif key.startswith("."):
            raise InvalidDataError(
                f"rules: {at}: unknown rule {key!r} (known: .read .write .validate .indexOn)",
                rule=at,
            )
        elif key.startswith("$"):
            name = key
            _check_rule_key(name[1:] or "?", f" (wildcard {at})", at)
            if node.wildcard is not None:
                raise InvalidDataError(
                    f"rules: {where} has two wildcards ({node.wildcard[0]} and {key}); "
                    "use one per level",
                    rule=at,
                )
            node.wildcard = (name, _compile(value, at, variables | {name}))
        else:
            _check_rule_key(key, f" in rules at {where}", at)
            node.children[key] = _compile(value, at, variables)
    return node


def _check_rule_key(key: str, where: str, at: str) -> None:
    """``check_key``, its error naming the rule (``details.rule``) so it can be located."""
    try:
        check_key(key, where)
    except InvalidDataError as exc:
        raise InvalidDataError(exc.message, rule=at) from None


def _check_vars(node: Node | None, variables: frozenset[str], where: str) -> None:
    if node is None:
        return
    if node.op == "name" and node.args[0].startswith("$") and node.args[0] not in variables:
        raise InvalidDataError(
            f"rules: {where}: unknown variable {node.args[0]} at position {node.pos + 1}",
            rule=where,
            offset=node.pos,
        )
    for arg in node.args:
        if isinstance(arg, Node):
            _check_vars(arg, variables, where)
        elif isinstance(arg, tuple):
            for a in arg:
                if isinstance(a, Node):
                    _check_vars(a, variables, where)


class Rules:
    """A parsed rules document, ready to answer read and write checks."""

    def __init__(
        self, source: dict[str, Any], root: RuleNode, sealed: frozenset[str] = frozenset()
    ) -> None:
        self.source = source
        self.root = root
        self.sealed = sealed
        """Top-level keys whose rules the platform owns (see :meth:`parse`)."""

    @classmethod
    def parse(cls, document: Any, reserved: Mapping[str, Any] | None = None) -> Rules:
        """Parse ``{"rules": {...}}``; raises ``InvalidDataError`` naming the bad rule.

        ``reserved`` maps top-level keys (``jobs``) to rules the platform owns: they replace
        whatever the document says there, and no grant above them reaches into them (a root
        ``.read: true`` does not open ``/jobs``; reading or replacing ``/`` then needs access
        to each reserved subtree too), so a user's rules cannot loosen them.
        """
        if not isinstance(document, Mapping) or set(document) != {"rules"}:
            raise InvalidDataError('a rules document is an object with one key, "rules"')
        if len(json.dumps(document)) > MAX_RULES_BYTES:
            raise InvalidDataError(f"rules document is larger than {MAX_RULES_BYTES} bytes")
        body = document["rules"]
        if reserved and isinstance(body, Mapping):
            body = {**body, **copy.deepcopy(dict(reserved))}
        root = _compile(body, "rules", frozenset())
        for key in reserved or ():
            root.children[key].sealed = True
        return cls(copy.deepcopy({"rules": body}), root, frozenset(reserved or ()))

    @classmethod
    def default(cls) -> Rules:
        """Deny everything to everyone but the admin (a new locked database)."""
        return cls.parse({"rules": {".read": False, ".write": False}})

    def _walk(self, path: Path) -> list[tuple[int, RuleNode, dict[str, str]]]:
        """Rule nodes along ``path`` from the root: (depth, node, variables bound so far)."""
        variables: dict[str, str] = {}
        out: list[tuple[int, RuleNode, dict[str, str]]] = [(0, self.root, variables)]
        node = self.root
        for depth, key in enumerate(path, start=1):
            found = node.child(key)
            if found is None:
                break
            node, var = found
            if var is not None:
                variables = {**variables, var: key}
            if node.sealed:
                out = []  # grants above a reserved subtree do not reach into it
            out.append((depth, node, variables))
        return out

    def read_depends_on_state(self, path: Path) -> bool:
        """Whether a ``.read`` on the way to ``path`` reads data or the clock.

        If none does (``true``, ``auth != null``, ``$uid === auth.uid`` ...), read access to
        ``path`` changes only with the rules or the token, so a stream need not re-check it
        on every change.
        """
        return any(
            node.read is not None and _uses(node.read, {"data", "root", "now"})
            for _, node, _ in self._walk(path)
        )

    def index_on(self, path: Path) -> tuple[str, ...]:
        walked = self._walk(path)
        depth, node, _ = walked[-1]
        return node.index_on if depth == len(path) else ()

    def can_read(
        self,
        auth: Mapping[str, Any] | None,
        path: Path,
        reader: Reader,
        now: int | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether ``auth`` may read ``path``: a ``.read`` at the path or above is true.

        ``query`` is what the rules see as ``query`` (see :func:`query_variables`).
        """
        now = _now() if now is None else now
        tree = Tree(reader)
        root = Snapshot(tree, ())
        qvars = query if query is not None else query_variables(None)
        if not path and any(not self.can_read(auth, (k,), reader, now, query) for k in self.sealed):
            return False  # reading / would read the reserved subtrees too
        for depth, node, variables in self._walk(path):
            if node.read is None:
                continue
            ctx = Context(auth, now, root, Snapshot(tree, path[:depth]), None, variables, qvars)
            if _true(node.read, ctx):
                return True
        return False

    def can_write(
        self,
        auth: Mapping[str, Any] | None,
        writes: list[tuple[Path, Any]],
        reader: Reader,
        now: int | None = None,
    ) -> bool:
        """Whether ``auth`` may make all ``writes`` (stored-form values, ``None`` deletes)."""
        now = _now() if now is None else now
        old = Tree(reader)
        new = Tree(reader, tuple(writes))
        root = Snapshot(old, ())
        for path, value in writes:
            if not path and self.sealed:
                return False  # replacing / would replace the reserved subtrees
            walked = self._walk(path)
            granted = False
            for depth, node, variables in walked:
                if node.write is None:
                    continue
                at = path[:depth]
                ctx = Context(auth, now, root, Snapshot(old, at), Snapshot(new, at), variables)
                if _true(node.write, ctx):
                    granted = True
                    break
            if not granted:
                return False
            for depth, node, variables in walked:
                if depth == len(path):
                    break  # the written location and below: checked from the new value
                if not self._valid(node, path[:depth], variables, auth, now, root, old, new):
                    return False
            if len(walked) == len(path) + 1 and value is not None:
                depth, node, variables = walked[-1]
                if not self._valid_tree(node, path, value, variables, auth, now, root, old, new):
                    return False
        return True

    def _valid(
        self,
        node: RuleNode,
        at: Path,
        variables: Mapping[str, str],
        auth: Mapping[str, Any] | None,
        now: int,
        root: Snapshot,
        old: Tree,
        new: Tree,
    ) -> bool:
        if node.validate is None or new.value(at) is None:
            return True
        ctx = Context(auth, now, root, Snapshot(old, at), Snapshot(new, at), variables)
        return _true(node.validate, ctx)

    def _valid_tree(
        self,
        node: RuleNode,
        at: Path,
        value: Any,
        variables: Mapping[str, str],
        auth: Mapping[str, Any] | None,
        now: int,
        root: Snapshot,
        old: Tree,
        new: Tree,
    ) -> bool:
        if not self._valid(node, at, variables, auth, now, root, old, new):
            return False
        if isinstance(value, dict):
            for key, child in value.items():
                found = node.child(key)
                if found is None:
                    continue
                child_node, var = found
                child_vars = {**variables, var: key} if var is not None else variables
                if not self._valid_tree(
                    child_node, (*at, key), child, child_vars, auth, now, root, old, new
                ):
                    return False
        return True


def query_variables(query: Any) -> dict[str, Any]:
    """Firebase's ``query`` rule variable for a read (all null/false for a plain read)."""
    out: dict[str, Any] = {
        "orderByKey": False,
        "orderByValue": False,
        "orderByPriority": False,
        "orderByChild": None,
        "startAt": None,
        "endAt": None,
        "equalTo": None,
        "limitToFirst": None,
        "limitToLast": None,
    }
    if query is None:
        return out
    if query.order_by == "$key":
        out["orderByKey"] = True
    elif query.order_by == "$value":
        out["orderByValue"] = True
    else:
        out["orderByChild"] = query.order_by
    for attr, name in (("start_at", "startAt"), ("end_at", "endAt"), ("equal_to", "equalTo")):
        if getattr(query, "has_" + attr):
            out[name] = getattr(query, attr)
    out["limitToFirst"] = query.limit_to_first
    out["limitToLast"] = query.limit_to_last
    return out


def _uses(node: Node, names: set[str]) -> bool:
    if node.op == "name" and node.args[0] in names:
        return True
    for arg in node.args:
        if isinstance(arg, Node) and _uses(arg, names):
            return True
        if isinstance(arg, tuple) and any(isinstance(a, Node) and _uses(a, names) for a in arg):
            return True
    return False


def _true(node: Node, ctx: Context) -> bool:
    try:
        return evaluate(node, ctx) is True
    except EvalError:
        return False
    except (RecursionError, OverflowError, TypeError, ValueError):
        return False


def _now() -> int:
    return time.time_ns() // 1_000_000
