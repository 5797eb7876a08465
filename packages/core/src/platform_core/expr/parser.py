"""Parse expression text into the typed AST, with DuckDB's precedence and a caret on errors.

sqlglot's DuckDB tokenizer reads the text (quoting, escapes, numbers, comments); a small
precedence-climbing parser over those tokens builds ``nodes`` directly. The grammar is a
whitelist: anything it does not name (subqueries, other functions, parameters, ``;``, window
functions, ...) is an ``ExpressionError`` quoting the text with a caret under the offending
token. No sqlglot type leaves this module and nothing is ever ``eval``ed.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any, Final, cast

from platform_core._extras import require
from platform_core._suggest import did_you_mean
from platform_core.errors import BadInputError
from platform_core.types import (
    BOOL8,
    BYTES,
    DATE,
    F32,
    F32_ARRAY,
    F64,
    I32,
    I32_ARRAY,
    I64,
    JSON,
    U8,
    U16,
    U32,
    UTF8,
    FieldType,
    decimal,
    parse_type,
    timestamp,
)

from .errors import ExpressionError
from .functions import AGGREGATE_FUNCTIONS, SCALAR_FUNCTIONS
from .nodes import (
    AGGREGATE_ALIASES,
    AGGREGATES,
    FUNCTIONS,
    Aggregate,
    Between,
    Binary,
    BinaryOp,
    Call,
    Case,
    Cast,
    Column,
    Expr,
    InList,
    IsNull,
    Like,
    Literal,
    Unary,
)
from .serde import MAX_DEPTH, depth

__all__ = ["FUNCTION_ALIASES", "FUNCTION_ARITY", "MAX_TEXT_LENGTH", "parse", "parse_cast_type"]

MAX_TEXT_LENGTH: Final = 64 * 1024
"""Longer text is refused before tokenizing: expressions are small, this bounds the work."""

#: (minimum, maximum) argument count of each scalar function (None = any number), read from
#: the one registry the checker and the evaluator use.
FUNCTION_ARITY: Final[dict[str, tuple[int, int | None]]] = {
    name: (SCALAR_FUNCTIONS[name].min_args, SCALAR_FUNCTIONS[name].max_args) for name in FUNCTIONS
}
#: Other spellings DuckDB accepts for a supported function; the AST holds the canonical name.
FUNCTION_ALIASES: Final = {"substring": "substr", "ceiling": "ceil"}

_SIGNATURES: Final = {
    "corr": "corr(y, x)",
    "quantile_cont": "quantile_cont(x, q)",
    "quantile_disc": "quantile_disc(x, q)",
    "arg_min": "arg_min(arg, val)",
    "arg_max": "arg_max(arg, val)",
    "substr": "substr(string, start[, length])",
    "round": "round(x[, decimals])",
    "nullif": "nullif(a, b)",
    "coalesce": "coalesce(x, ...)",
    "greatest": "greatest(x, ...)",
    "least": "least(x, ...)",
}

# Binding powers, lowest first, as in DuckDB's (PostgreSQL's) grammar.
_OR, _AND, _NOT, _IS, _CMP, _RANGE, _CONCAT, _ADD, _MUL, _UNARY, _CAST = range(1, 12)

_COMPARISON_OPS: Final[dict[str, BinaryOp]] = {
    **{"=": "=", "==": "=", "<>": "<>", "!=": "<>"},
    **{"<": "<", "<=": "<=", ">": ">", ">=": ">="},
}
_ARITH_POWER: Final[dict[BinaryOp, int]] = {
    **{"||": _CONCAT, "+": _ADD, "-": _ADD},
    **{"*": _MUL, "/": _MUL, "%": _MUL},
}
_RANGE_WORDS: Final = frozenset({"IN", "BETWEEN", "LIKE", "ILIKE"})

# DuckDB's reserved and type_function keywords (duckdb_keywords()): not column names unless
# double-quoted. BETWEEN is added because it is an operator here.
_RESERVED: Final = frozenset(
    """
    all analyse analyze and anti any array as asc asof asymmetric at authorization between
    binary both by case cast check collate collation column columns concurrently constraint
    create cross default deferrable desc describe distinct do else end except false fetch for
    foreign freeze from full generated glob group having ilike in initially inner intersect
    into is isnull join lambda lateral leading left like limit map natural not notnull null
    offset on only or order outer overlaps pivot pivot_longer pivot_wider placing positional
    primary qualify references returning right select semi show similar some struct summarize
    symmetric table tablesample then to trailing true try_cast tuple union unique unpack
    unpivot using variadic verbose when where window with
    """.split()  # noqa: SIM905 (a word list reads better than 111 quoted strings)
)

_DATE_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIMESTAMP_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[ T]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?)?"
)
_DIGITS_RE: Final = re.compile(r"[0-9]+")
_WORD_RE: Final = re.compile(r"[^\W\d]\w*")
_WORDS_RE: Final = re.compile(r"[^\W\d]\w*(?:\s+[^\W\d]\w*)*")


@dataclass(frozen=True, slots=True)
class _Tok:
    """One token: kind is word, ident (double-quoted), string, number, op, bad or end."""

    kind: str
    text: str
    start: int
    end: int  # exclusive

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def parse(text: str) -> Expr:
    """Parse one expression (see the package README for the grammar) into its AST."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression is text, got {type(text).__name__} {text!r}")
    if len(text) > MAX_TEXT_LENGTH:
        raise ExpressionError(
            f"expression text is {len(text)} characters long; at most {MAX_TEXT_LENGTH} "
            "are allowed (use IN lists or several expressions instead of one huge one)"
        )
    tokens = _tokenize(text)
    if tokens[0].kind == "end":
        raise ExpressionError(
            "empty expression: write a column, a literal or a formula such as amount > 10"
        )
    parser = _Parser(text, tokens)
    try:
        expr = parser.parse_all()
    except RecursionError:
        raise ExpressionError(
            f"expression nests too deeply (at most {MAX_DEPTH} levels)", text=text
        ) from None
    levels = depth(expr)
    if levels > MAX_DEPTH:
        raise ExpressionError(
            f"expression nests {levels} levels deep; at most {MAX_DEPTH} are allowed "
            "(long AND/OR chains nest one level per term; use IN for long lists)",
            text=text,
        )
    return expr


def parse_cast_type(text: str) -> FieldType:
    """The field type for a CAST target: a DuckDB type name or the platform's canonical name."""
    tokens = _tokenize(text)
    parser = _Parser(text, tokens)
    result = parser.type_name()
    parser.expect_end()
    return result


# --- tokens ------------------------------------------------------------------------------


@functools.cache
def _duckdb_tokenizer() -> Any:
    """sqlglot's DuckDB dialect, imported on first use (it is slow to import; and optional:
    the ``platform-core[parse]`` extra)."""
    duckdb = require("sqlglot.dialects.duckdb", what="parsing expression text", extra="parse")
    return duckdb.DuckDB()


def _tokenize(text: str) -> list[_Tok]:
    """Our tokens from sqlglot's: classified by their source text, never by sqlglot types."""
    tokenizer = _duckdb_tokenizer()  # first: without sqlglot, the error says how to install it
    from sqlglot.errors import TokenError

    try:
        raw = tokenizer.tokenize(text)
    except TokenError:
        message, position = _lex_problem(text)
        raise ExpressionError(message, text=text, position=position) from None
    out: list[_Tok] = []
    for token in raw:
        start, end = token.start, token.end + 1
        source = text[start:end]
        kind = token.token_type.name
        if kind == "STRING" and source.startswith("'"):
            out.append(_Tok("string", token.text, start, end))
        elif kind == "IDENTIFIER" and source.startswith('"'):
            out.append(_Tok("ident", token.text, start, end))
        elif kind == "NUMBER" and source[:1] in "0123456789":
            out.append(_Tok("number", token.text, start, end))
        elif _WORDS_RE.fullmatch(source):
            # sqlglot joins some keyword pairs (DOUBLE PRECISION, ORDER BY): split them again.
            for m in _WORD_RE.finditer(source):
                out.append(_Tok("word", m.group(), start + m.start(), start + m.end()))
        elif "STRING" in kind:
            out.append(_Tok("bad", _bad_string(source), start, end))
        elif kind in ("PARAMETER", "PLACEHOLDER"):
            out.append(
                _Tok("bad", "parameters are not supported; write the value itself", start, end)
            )
        else:
            out.append(_Tok("op", source, start, end))
    out.append(_Tok("end", "", len(text), len(text)))
    return out


def _bad_string(source: str) -> str:
    if source[:1] in "eE":
        return "E'...' escape strings are not supported; write '...' (a quote is written '')"
    return f"{source[:2]}... strings are not supported; write '...' (a quote is written '')"


def _lex_problem(text: str) -> tuple[str, int | None]:
    """Where the tokenizer gave up: an unterminated string, quoted name or comment."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                return "unterminated comment: /* needs a closing */", i
            i = close + 2
        elif c in "'\"":
            j = i + 1
            while True:
                j = text.find(c, j)
                if j < 0:
                    what = "string" if c == "'" else "quoted name"
                    return (
                        f"unterminated {what}: {c} needs a closing {c} (write {c}{c} for a {c} inside)",
                        i,
                    )
                if text.startswith(c, j + 1):
                    j += 2
                    continue
                break
            i = j + 1
        else:
            i += 1
    return "the text cannot be read as an expression", None


# --- types -------------------------------------------------------------------------------

_DUCKDB_TYPES: Final[dict[str, FieldType]] = {
    **dict.fromkeys(["INTEGER", "INT", "INT4", "INT32", "SIGNED", "INTEGRAL"], I32),
    **dict.fromkeys(["BIGINT", "INT8", "INT64", "LONG"], I64),
    **dict.fromkeys(["DOUBLE", "FLOAT8", "DOUBLE PRECISION"], F64),
    **dict.fromkeys(["FLOAT", "FLOAT4", "REAL"], F32),
    **dict.fromkeys(["VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "NVARCHAR"], UTF8),
    "CHARACTER VARYING": UTF8,
    **dict.fromkeys(["BOOLEAN", "BOOL", "LOGICAL"], BOOL8),
    "DATE": DATE,
    **dict.fromkeys(["TIMESTAMP", "DATETIME", "TIMESTAMP_US"], timestamp()),
    "TIMESTAMP WITHOUT TIME ZONE": timestamp(),
    **dict.fromkeys(["TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"], timestamp("UTC")),
    **dict.fromkeys(["BLOB", "BYTEA", "BINARY", "VARBINARY"], BYTES),
    **dict.fromkeys(["UTINYINT", "UINT8"], U8),
    **dict.fromkeys(["USMALLINT", "UINT16"], U16),
    **dict.fromkeys(["UINTEGER", "UINT32"], U32),
    "JSON": JSON,
}
_DECIMAL_NAMES: Final = frozenset({"DECIMAL", "DEC", "NUMERIC"})
_MULTI_WORD_TYPES: Final = (
    ("DOUBLE", "PRECISION"),
    ("CHARACTER", "VARYING"),
    ("TIMESTAMP", "WITH", "TIME", "ZONE"),
    ("TIMESTAMP", "WITHOUT", "TIME", "ZONE"),
)
_INTEGER_ADVICE: Final = "narrower integers are not platform types; cast to INTEGER (i32)"
_UNSUPPORTED_TYPES: Final = {
    **dict.fromkeys(["TINYINT", "INT1", "SMALLINT", "INT2", "INT16", "SHORT"], _INTEGER_ADVICE),
    **dict.fromkeys(
        ["UBIGINT", "UINT64"], "values above 2**63-1 do not fit; cast to BIGINT or DECIMAL(20, 0)"
    ),
    **dict.fromkeys(["HUGEINT", "INT128", "UHUGEINT", "UINT128"], "cast to DECIMAL(38, 0)"),
    **dict.fromkeys(
        ["TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMPTZ_NS"],
        "timestamps are microseconds; cast to TIMESTAMP or TIMESTAMPTZ",
    ),
    **dict.fromkeys(["TIME", "TIMETZ", "TIME_NS", "INTERVAL"], "cast to VARCHAR or BIGINT"),
    **dict.fromkeys(["UUID", "GUID"], "cast to VARCHAR"),
}
_TYPE_NAMES_TEXT: Final = (
    "INTEGER, BIGINT, DOUBLE, FLOAT/REAL, VARCHAR/TEXT, BOOLEAN, DATE, TIMESTAMP, TIMESTAMPTZ, "
    "DECIMAL(p, s), UTINYINT, USMALLINT, UINTEGER, BLOB, JSON, INTEGER[], FLOAT[], or the "
    "platform's names (i32, i64, f64, utf8, timestamp[us, UTC], decimal(p, s), ...)"
)
_TYPE_RE: Final = re.compile(
    r"(?P<name>[^\W\d]\w*(?: [^\W\d]\w*)*) ?(?:\((?P<params>[^()]*)\))? ?(?P<array>\[ ?\])?"
)


def _resolve_type(source: str) -> FieldType:
    """DuckDB's type names first (INT8 is BIGINT, as in DuckDB), then the platform's names."""
    squashed = " ".join(source.split())
    m = _TYPE_RE.fullmatch(squashed)
    if m is not None:
        name, params, array = m["name"].upper(), m["params"], m["array"] is not None
        if name in _UNSUPPORTED_TYPES:
            raise BadInputError(f"type {name} is not supported: {_UNSUPPORTED_TYPES[name]}")
        if name in _DECIMAL_NAMES and not array:
            return _decimal_type(name, params)
        if name in _DUCKDB_TYPES:
            base = _DUCKDB_TYPES[name]
            if params is not None:
                raise BadInputError(f"type {name} takes no parameters here; write {name}")
            if not array:
                return base
            if base == I32:
                return I32_ARRAY
            if base == F32:
                return F32_ARRAY
            raise BadInputError(
                f"{name}[] is not supported: lists hold INTEGER (INTEGER[]) or FLOAT (FLOAT[])"
            )
    try:
        core = parse_type(source)
    except BadInputError:
        core = None
    if core is not None and _squash(str(core)) == _squash(source):
        return core
    names = [*_DUCKDB_TYPES, *_DECIMAL_NAMES, *_UNSUPPORTED_TYPES, "i32", "i64", "f64", "utf8"]
    raise BadInputError(
        f'unknown type "{squashed}"{did_you_mean(squashed, names)} (types: {_TYPE_NAMES_TEXT})'
    )


def _squash(text: str) -> str:
    return "".join(text.split()).lower()


def _decimal_type(name: str, params: str | None) -> FieldType:
    if params is None:
        return decimal(18, 3)  # DuckDB's default for a bare DECIMAL
    parts = [p.strip() for p in params.split(",")]
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        raise BadInputError(
            f"{name}({params}) needs one or two integers: DECIMAL(precision, scale)"
        )
    return decimal(int(parts[0]), int(parts[1]) if len(parts) == 2 else 0)


# --- the parser --------------------------------------------------------------------------


class _Parser:
    """Precedence climbing over the token list; every error carries the token's position."""

    def __init__(self, text: str, tokens: list[_Tok]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.nesting = 0

    # helpers ---------------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> _Tok:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Tok:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def error(self, message: str, position: int | None) -> ExpressionError:
        return ExpressionError(message, text=self.text, position=position)

    def where(self, tok: _Tok) -> str:
        """Where a token is, for people: ``column 7`` or ``line 2, column 3`` (1-based)."""
        line = self.text.count("\n", 0, tok.start) + 1
        column = tok.start - (self.text.rfind("\n", 0, tok.start) + 1) + 1
        return f"column {column}" if line == 1 else f"line {line}, column {column}"

    def is_op(self, text: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "op" and tok.text == text

    def is_word(self, word: str, ahead: int = 0) -> bool:
        return self.peek(ahead).upper == word

    def expect_op(self, text: str, context: str) -> _Tok:
        if not self.is_op(text):
            raise self.error(
                f"expected {text} {context}, found {_describe(self.peek())}", self.peek().start
            )
        return self.advance()

    def expect_word(self, word: str, context: str) -> _Tok:
        if not self.is_word(word):
            raise self.error(
                f"expected {word} {context}, found {_describe(self.peek())}", self.peek().start
            )
        return self.advance()

    def expect_end(self) -> None:
        tok = self.peek()
        if tok.kind == "end":
            return
        if tok.kind == "op" and tok.text == ";":
            message = "only one expression is allowed: remove the ';' and anything after it"
        elif tok.kind == "op" and tok.text == ")":
            message = "unbalanced parentheses: this ) has no matching ("
        elif tok.upper in ("OVER", "FILTER", "WITHIN"):
            message = f"window functions and {tok.upper} clauses are not supported"
        elif tok.upper == "AS":
            message = (
                "aliases (AS name) are not supported in an expression; name it where it is used"
            )
        elif tok.upper == "NOT":
            message = "expected IN, BETWEEN, LIKE or ILIKE after NOT"
        else:
            message = f"unexpected {_describe(tok)} after a complete expression"
        raise self.error(message, tok.start)

    # grammar -----------------------------------------------------------------------------
    def parse_all(self) -> Expr:
        expr = self.expr(0)
        self.expect_end()
        return expr

    def expr(self, min_power: int) -> Expr:
        """An expression whose operators all bind tighter than ``min_power``."""
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(
                f"expression nests too deeply (at most {MAX_DEPTH} levels)", self.peek().start
            )
        left = self.prefix()
        last: str | None = None  # the non-associative operator that built ``left``, if any
        while True:
            tok = self.peek()
            power, kind = self.infix_power()
            if power <= min_power:
                break
            if kind == last == "compare":  # DuckDB refuses a < b < c too
                raise self.error(
                    "chained comparisons are not supported: combine them with AND "
                    "(a < b AND b < c), or parenthesise one side",
                    tok.start,
                )
            if kind in ("like", "between") and last in ("like", "between"):
                raise self.error(
                    f"{tok.text.upper()} cannot follow LIKE or BETWEEN directly; parenthesise one side",
                    tok.start,
                )
            left = self.infix(left, kind, power)
            last = kind
        self.nesting -= 1
        return left

    def infix_power(self) -> tuple[int, str]:
        """The binding power and kind of the operator at the cursor (0 if none)."""
        tok = self.peek()
        if tok.kind == "op":
            if tok.text in _COMPARISON_OPS:
                return _CMP, "compare"
            if tok.text in _ARITH_POWER:
                return _ARITH_POWER[tok.text], "binary"
            if tok.text == "::":
                return _CAST, "cast"
            return 0, ""
        word = tok.upper
        if word == "OR":
            return _OR, "or"
        if word == "AND":
            return _AND, "and"
        if word == "IS":
            return _IS, "is"
        if word == "NOT":
            following = self.peek(1).upper
            if following not in _RANGE_WORDS:
                return 0, ""
            word = following
        if word == "IN":
            return _RANGE, "in"
        if word in ("LIKE", "ILIKE"):
            return _RANGE, "like"
        if word == "BETWEEN":
            return _RANGE, "between"
        return 0, ""

    def infix(self, left: Expr, kind: str, power: int) -> Expr:
        tok = self.advance()
        if kind in ("compare", "binary"):
            op = _COMPARISON_OPS.get(tok.text) or cast(BinaryOp, tok.text)
            return Binary(op, left, self.expr(power))
        if kind in ("and", "or"):
            return Binary(cast(BinaryOp, kind), left, self.expr(power))
        if kind == "cast":
            return Cast(left, self.type_name())
        if kind == "is":
            negated = self.is_word("NOT")
            if negated:
                self.advance()
            if not self.is_word("NULL"):
                raise self.error(
                    f"only IS NULL and IS NOT NULL are supported, found {_describe(self.peek())}",
                    self.peek().start,
                )
            self.advance()
            return IsNull(left, negated=negated)
        negated = tok.upper == "NOT"
        if negated:
            tok = self.advance()
        if kind == "in":
            return InList(left, self.in_items(), negated=negated)
        if kind == "between":
            low = self.expr(_RANGE)
            self.expect_word("AND", "between the bounds of BETWEEN")
            return Between(left, low, self.expr(_RANGE), negated=negated)
        pattern = self.expr(_RANGE)
        return Like(
            left,
            pattern,
            self.escape(),
            negated=negated,
            case_insensitive=tok.upper == "ILIKE",
        )

    def in_items(self) -> tuple[Expr, ...]:
        opening = self.expect_op("(", "after IN: write x IN (a, b, ...)")
        if self.peek().upper in ("SELECT", "WITH", "FROM"):
            raise self.error("subqueries are not supported; list the values", self.peek().start)
        if self.is_op(")"):
            raise self.error("IN needs at least one value: x IN (a, b, ...)", self.peek().start)
        items = self.expr_list(f"in the IN list opened at {self.where(opening)}")
        return tuple(items)

    def escape(self) -> str | None:
        if not self.is_word("ESCAPE"):
            return None
        self.advance()
        tok = self.peek()
        if tok.kind != "string":
            raise self.error(
                f"ESCAPE takes a one-character string such as '!', found {_describe(tok)}",
                tok.start,
            )
        if len(tok.text) != 1:
            raise self.error(
                f"ESCAPE takes exactly one character, got {len(tok.text)}: {tok.text!r}", tok.start
            )
        self.advance()
        return tok.text

    def expr_list(self, context: str) -> list[Expr]:
        """``a, b, ...)``: comma-separated expressions and the closing parenthesis."""
        items = [self.expr(0)]
        while True:
            if self.is_op(","):
                self.advance()
                items.append(self.expr(0))
            elif self.is_op(")"):
                self.advance()
                return items
            else:
                tok = self.peek()
                raise self.error(f"expected , or ) {context}, found {_describe(tok)}", tok.start)

    def prefix(self) -> Expr:
        tok = self.peek()
        if tok.kind == "number" or self.is_fraction():
            return self.number(negative=False)
        if tok.kind == "string":
            self.advance()
            return Literal(tok.text, UTF8)
        if tok.kind == "ident":
            self.advance()
            if tok.text == "":
                raise self.error('a column name cannot be empty ("")', tok.start)
            self.no_qualifier(tok)
            return Column(tok.text)
        if tok.kind == "word":
            return self.word()
        if tok.kind == "bad":
            raise self.error(tok.text, tok.start)
        if tok.kind == "end":
            raise self.error("expected an expression, found the end of the text", tok.start)
        if tok.text == "(":
            return self.parenthesised()
        if tok.text == "-":
            self.advance()
            width = 1 if self.peek().kind == "number" else 2 if self.is_fraction() else 0
            if width and not self.is_op("::", width):  # -2::INT is -(2::INT), as in DuckDB
                return self.number(negative=True)
            return Unary("neg", self.expr(_UNARY))
        if tok.text == "+":
            raise self.error("unary + is not supported; drop it", tok.start)
        if tok.text == "*":
            raise self.error("* is only allowed as count(*)", tok.start)
        if tok.text == ")":
            raise self.error("expected an expression, found )", tok.start)
        raise self.error(f"unexpected {_describe(tok)}", tok.start)

    def parenthesised(self) -> Expr:
        opening = self.advance()
        if self.peek().upper in ("SELECT", "WITH", "FROM", "VALUES"):
            raise self.error("subqueries are not supported in an expression", self.peek().start)
        inner = self.expr(0)
        if not self.is_op(")"):
            tok = self.peek()
            raise self.error(
                f"expected ) to close the ( at {self.where(opening)}, found {_describe(tok)}",
                tok.start,
            )
        self.advance()
        return inner

    def is_fraction(self) -> bool:
        """``.5``: sqlglot reads a dot and a number; DuckDB reads one number."""
        dot, digits = self.peek(), self.peek(1)
        return (
            dot.kind == "op"
            and dot.text == "."
            and digits.kind == "number"
            and digits.start == dot.end
            and _DIGITS_RE.match(digits.text) is not None
        )

    def number(self, *, negative: bool) -> Literal:
        """A numeric literal (after a unary minus when ``negative``: -2147483648 is an i32)."""
        first = self.advance()
        text = first.text
        if first.kind == "op":  # the dot of .5
            text = "." + self.advance().text
        sign = "-" if negative else ""
        if _DIGITS_RE.fullmatch(text):
            digits = text.lstrip("0") or "0"
            if len(digits) <= 19:
                value = int(sign + digits)
                if -(2**31) <= value < 2**31:
                    return Literal(value, I32)
                if -(2**63) <= value < 2**63:
                    return Literal(value, I64)
            raise self.error(
                f"integer literal {sign}{text} does not fit in 64 bits (BIGINT); "
                "write it as a float (1e20) or a string",
                first.start,
            )
        try:
            return Literal(float(sign + text), F64)
        except ValueError:
            raise self.error(f"malformed number {text!r}", first.start) from None

    def no_qualifier(self, tok: _Tok) -> None:
        if self.is_op("."):
            raise self.error(
                "qualified names (table.column) are not supported; if the column's name "
                'contains a dot, double-quote all of it: "a.b"',
                self.peek().start,
            )

    def word(self) -> Expr:
        tok = self.advance()
        word = tok.upper
        if word in ("TRUE", "FALSE"):
            return Literal(word == "TRUE", BOOL8)
        if word == "NULL":
            return Literal(None, None)
        if word == "NOT":
            return Unary("not", self.expr(_NOT))
        if word == "CASE":
            return self.case()
        if word == "CAST":
            opening = self.expect_op("(", "after CAST: write CAST(x AS type)")
            operand = self.expr(0)
            self.expect_word("AS", "in CAST(x AS type)")
            to = self.type_name()
            self.expect_op(")", f"to close the CAST( at {self.where(opening)}")
            return Cast(operand, to)
        if self.is_op("("):
            return self.call(tok)
        if self.peek().kind == "string":
            if word in ("DATE", "TIMESTAMP"):
                return self.typed_literal(word)
            raise self.error(
                f"typed literals other than DATE '...' and TIMESTAMP '...' are not supported "
                f"({tok.text} '...'); use CAST('...' AS type) with a supported type",
                tok.start,
            )
        if word in ("SELECT", "WITH", "VALUES"):
            raise self.error(
                "subqueries and statements are not supported in an expression", tok.start
            )
        if tok.text.lower() in _RESERVED:
            raise self.error(
                f'{tok.text} is a reserved word here; to use it as a column name, double-quote it: "{tok.text}"',
                tok.start,
            )
        self.no_qualifier(tok)
        return Column(tok.text)

    def typed_literal(self, word: str) -> Literal:
        tok = self.advance()
        if word == "DATE":
            m = _DATE_RE.fullmatch(tok.text)
            try:
                if m is None:
                    raise ValueError("not YYYY-MM-DD")
                return Literal(dt.date(*map(int, m.groups())), DATE)
            except ValueError as e:
                raise self.error(
                    f"malformed date {tok.text!r} ({e}): write DATE 'YYYY-MM-DD'", tok.start
                ) from None
        m = _TIMESTAMP_RE.fullmatch(tok.text)
        try:
            if m is None:
                raise ValueError("not YYYY-MM-DD HH:MM:SS[.ffffff]")
            year, month, day, hour, minute, second, fraction = m.groups()
            value = dt.datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                int((fraction or "0").ljust(6, "0")),
            )
        except ValueError as e:
            raise self.error(
                f"malformed timestamp {tok.text!r} ({e}): write TIMESTAMP "
                "'YYYY-MM-DD HH:MM:SS[.ffffff]' (naive, up to microseconds, no time zone)",
                tok.start,
            ) from None
        return Literal(value, timestamp())

    def case(self) -> Case:
        if self.is_word("END") or self.is_word("ELSE"):
            raise self.error("CASE needs at least one WHEN ... THEN ...", self.peek().start)
        operand = None if self.is_word("WHEN") else self.expr(0)
        whens: list[tuple[Expr, Expr]] = []
        while self.is_word("WHEN"):
            self.advance()
            condition = self.expr(0)
            self.expect_word("THEN", "after the WHEN condition")
            value = self.expr(0)
            whens.append((condition if operand is None else Binary("=", operand, condition), value))
        if not whens:
            raise self.error(
                f"CASE needs at least one WHEN ... THEN ..., found {_describe(self.peek())}",
                self.peek().start,
            )
        otherwise = None
        if self.is_word("ELSE"):
            self.advance()
            otherwise = self.expr(0)
        self.expect_word("END", "to close CASE")
        return Case(tuple(whens), otherwise)

    def type_name(self) -> FieldType:
        """A CAST target: ``NAME [WORDS] [(params)] [[...]]`` read from the source text."""
        first = self.peek()
        if first.kind != "word":
            raise self.error(f"expected a type name, found {_describe(first)}", first.start)
        words = [self.advance().upper]
        while self.peek().kind == "word" and any(
            m[: len(words) + 1] == (*words, self.peek().upper) for m in _MULTI_WORD_TYPES
        ):
            words.append(self.advance().upper)
        last = self.tokens[self.i - 1]
        for opening, closing in (("(", ")"), ("[", "]")):
            if self.is_op(opening):
                last = self.balanced(opening, closing)
        source = self.text[first.start : last.end]
        try:
            return _resolve_type(source)
        except BadInputError as e:
            raise self.error(e.message, first.start) from None

    def balanced(self, opening: str, closing: str) -> _Tok:
        """Skip from ``opening`` to its matching ``closing``; return the closing token."""
        start = self.advance()
        level = 1
        while True:
            tok = self.advance()
            if tok.kind == "end":
                raise self.error(f"expected {closing} to close the {opening}", start.start)
            if tok.kind == "op" and tok.text == opening:
                level += 1
            elif tok.kind == "op" and tok.text == closing:
                level -= 1
                if level == 0:
                    return tok

    def call(self, name_tok: _Tok) -> Expr:
        name = name_tok.text.lower()
        self.advance()  # (
        if name in AGGREGATES or name in AGGREGATE_ALIASES:
            return self.aggregate(AGGREGATE_ALIASES.get(name, name), name_tok)
        canonical = FUNCTION_ALIASES.get(name, name)
        if canonical not in FUNCTION_ARITY:
            known = [*FUNCTIONS, *AGGREGATES, *AGGREGATE_ALIASES]
            raise self.error(
                f'unknown function "{name_tok.text}"{did_you_mean(name, known)} '
                f"(functions: {', '.join(FUNCTIONS)}; aggregates: {', '.join(AGGREGATES)})",
                name_tok.start,
            )
        if self.is_word("DISTINCT") or self.is_word("ALL"):
            raise self.error(
                f"{self.peek().upper} is only allowed in count(DISTINCT x)", self.peek().start
            )
        if self.is_op("*"):
            raise self.error("* is only allowed as count(*)", self.peek().start)
        args: tuple[Expr, ...] = ()
        if self.is_op(")"):
            self.advance()
        else:
            args = tuple(self.expr_list(f"in the arguments of {name}("))
        low, high = FUNCTION_ARITY[canonical]
        if not low <= len(args) <= (len(args) if high is None else high):
            expected = (
                f"{low}"
                if low == high
                else f"at least {low}"
                if high is None
                else f"{low} or {high}"
            )
            plural = "" if expected == "1" else "s"
            signature = _SIGNATURES.get(canonical, f"{canonical}(x)")
            raise self.error(
                f"{name} takes {expected} argument{plural} ({signature}), got {len(args)}",
                name_tok.start,
            )
        self.no_window(name)
        return Call(canonical, args)

    def aggregate(self, name: str, name_tok: _Tok) -> Aggregate:
        if self.is_op("*"):
            star = self.advance()
            if name != "count":
                raise self.error(f"{name}(*) is not allowed; only count(*) takes *", star.start)
            self.expect_op(")", "after count(*")
            self.no_window(name)
            return Aggregate("count", None)
        distinct = False
        if self.is_word("DISTINCT"):
            tok = self.advance()
            if name != "count":
                raise self.error(
                    f"DISTINCT is only supported in count(DISTINCT x), not in {name}", tok.start
                )
            distinct = True
        arity = AGGREGATE_FUNCTIONS[name].max_args
        wanted = "one argument" if arity == 1 else f"{arity} arguments ({_SIGNATURES[name]})"
        if self.is_op(")"):
            raise self.error(
                f"{name_tok.text.lower()} takes {wanted}{' or *' if name == 'count' else ''}, "
                "got none",
                name_tok.start,
            )
        args = self.expr_list(f"in the arguments of {name}(")
        if len(args) != arity:
            raise self.error(
                f"{name_tok.text.lower()} takes {wanted}, got {len(args)}", name_tok.start
            )
        self.no_window(name)
        return Aggregate(name, args[0], distinct, tuple(args[1:]))

    def no_window(self, name: str) -> None:
        tok = self.peek()
        if tok.upper in ("OVER", "FILTER", "WITHIN"):
            raise self.error(
                f"window functions and {tok.upper} clauses are not supported ({name}(...) {tok.upper})",
                tok.start,
            )


def _describe(tok: _Tok) -> str:
    """A token as error messages name it."""
    if tok.kind == "end":
        return "the end of the text"
    if tok.kind == "string":
        return f"the string '{tok.text}'"
    if tok.kind == "ident":
        return f'the name "{tok.text}"'
    return f'"{tok.text}"'
