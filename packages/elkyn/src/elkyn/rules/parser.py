"""The rule expression language: a tokenizer and a Pratt parser to a small AST, never ``eval``.

Grammar (Firebase's JavaScript subset): literals (numbers, 'single' or "double" strings,
``true false null``, ``/regex/flags`` as a ``matches`` argument), names (``auth root data newData
now`` and ``$variables``), member access ``a.b``, index ``a['b']``, calls ``a.b(x)``, list
literals ``['a', 'b']`` (for ``hasChildren``), unary ``! -``, ``* / %``, ``+ -``,
``< <= > >=``, ``== === != !==``, ``&&``, ``||`` and ``c ? a : b``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Node", "RuleSyntaxError", "parse_expression"]

MAX_LENGTH = 4096


class RuleSyntaxError(Exception):
    """A rule expression does not parse; ``pos`` is the 0-based offset in the text."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass(frozen=True)
class Node:
    """An AST node: ``op`` names it, ``args`` are child nodes or literal values."""

    op: str
    args: tuple[Any, ...]
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>===|!==|==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "/": "/"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int
    value: Any = None


def _unescape(body: str, pos: int) -> str:
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise RuleSyntaxError(f"unknown escape \\{nxt} in string", pos + i)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _regex_allowed(prev: _Tok | None) -> bool:
    """A ``/`` starts a regex where a value is expected (after ``(``, ``,`` or an operator)."""
    return prev is None or (prev.kind == "op" and prev.text not in (")", "]"))


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        prev = toks[-1] if toks else None
        if text[i] == "/" and _regex_allowed(prev):
            j = i + 1
            in_class = False
            while j < len(text):
                c = text[j]
                if c == "\\":
                    j += 2
                    continue
                if c == "[":
                    in_class = True
                elif c == "]":
                    in_class = False
                elif c == "/" and not in_class:
                    break
                j += 1
            if j >= len(text):
                raise RuleSyntaxError("unterminated regular expression", i)
            body = text[i + 1 : j]
            k = j + 1
            while k < len(text) and text[k].isalpha():
                k += 1
            flags = text[j + 1 : k]
            if flags not in ("", "i"):
                raise RuleSyntaxError(f"regular expression flags {flags!r} (only 'i')", j + 1)
            try:
                compiled = re.compile(body, re.IGNORECASE if flags else 0)
            except re.error as exc:
                raise RuleSyntaxError(f"bad regular expression: {exc}", i) from None
            toks.append(_Tok("regex", text[i:k], i, compiled))
            i = k
            continue
        m = _TOKEN.match(text, i)
        if m is None:
            raise RuleSyntaxError(f"unexpected character {text[i]!r}", i)
        kind = m.lastgroup or ""
        if kind != "ws":
            tok_text = m.group()
            value: Any = None
            if kind == "num":
                value = float(tok_text) if any(c in tok_text for c in ".eE") else int(tok_text)
            elif kind == "str":
                value = _unescape(tok_text[1:-1], i + 1)
            toks.append(_Tok(kind, tok_text, i, value))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


_BINARY = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "===": 3,
    "!=": 3,
    "!==": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}
_NAMES = {"auth", "root", "data", "newData", "now", "query"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        tok = self.take()
        if tok.text != text or tok.kind not in ("op",):
            raise RuleSyntaxError(
                f"expected {text!r}, found {tok.text or 'end of rule'!r}", tok.pos
            )
        return tok

    def expression(self) -> Node:
        cond = self.binary(1)
        tok = self.peek()
        if tok.kind == "op" and tok.text == "?":
            self.take()
            yes = self.expression()
            self.expect(":")
            no = self.expression()
            return Node("?:", (cond, yes, no), tok.pos)
        return cond

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        while True:
            tok = self.peek()
            prec = _BINARY.get(tok.text) if tok.kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.take()
            right = self.binary(prec + 1)
            left = Node(tok.text, (left, right), tok.pos)

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("!", "-"):
            self.take()
            return Node("neg" if tok.text == "-" else "!", (self.unary(),), tok.pos)
        return self.postfix(self.primary())

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind in ("num", "str"):
            return Node("lit", (tok.value,), tok.pos)
        if tok.kind == "regex":
            return Node("regex", (tok.value,), tok.pos)
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                return Node("lit", (tok.text == "true",), tok.pos)
            if tok.text == "null":
                return Node("lit", (None,), tok.pos)
            if tok.text.startswith("$") or tok.text in _NAMES:
                return Node("name", (tok.text,), tok.pos)
            raise RuleSyntaxError(f"unknown variable {tok.text!r}", tok.pos)
        if tok.kind == "op" and tok.text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if tok.kind == "op" and tok.text == "[":
            items: list[Node] = []
            if not (self.peek().kind == "op" and self.peek().text == "]"):
                items.append(self.expression())
                while self.peek().kind == "op" and self.peek().text == ",":
                    self.take()
                    items.append(self.expression())
            self.expect("]")
            return Node("list", tuple(items), tok.pos)
        raise RuleSyntaxError(f"unexpected {tok.text or 'end of rule'!r}", tok.pos)

    def postfix(self, node: Node) -> Node:
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.text == ".":
                self.take()
                name = self.take()
                if name.kind != "name" or name.text.startswith("$"):
                    raise RuleSyntaxError("expected a property name after '.'", name.pos)
                node = Node("member", (node, name.text), name.pos)
            elif tok.kind == "op" and tok.text == "[":
                self.take()
                index = self.expression()
                self.expect("]")
                node = Node("index", (node, index), tok.pos)
            elif tok.kind == "op" and tok.text == "(":
                self.take()
                args: list[Node] = []
                if not (self.peek().kind == "op" and self.peek().text == ")"):
                    args.append(self.expression())
                    while self.peek().kind == "op" and self.peek().text == ",":
                        self.take()
                        args.append(self.expression())
                self.expect(")")
                if node.op != "member":
                    raise RuleSyntaxError("only methods can be called", tok.pos)
                node = Node("call", (node.args[0], node.args[1], tuple(args)), tok.pos)
            else:
                return node


def parse_expression(text: str) -> Node:
    """Parse one rule expression; raises ``RuleSyntaxError`` with the offending position."""
    if len(text) > MAX_LENGTH:
        raise RuleSyntaxError(f"rule is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    parser = _Parser(text)
    node = parser.expression()
    tok = parser.peek()
    if tok.kind != "end":
        raise RuleSyntaxError(f"unexpected {tok.text!r} after the expression", tok.pos)
    return node
