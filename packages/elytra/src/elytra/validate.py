"""``POST /api/jobs/validate``: parse, check and plan a pipeline's JSON form without running it.

The playground's pipeline builder calls it as the user types: it answers the canonical JSON
form (what ``POST /api/jobs`` takes), the same pipeline as Python-fluent text, the output
schema and the plan (stages and tasks) -- or a 400 whose ``details`` say where the mistake
is: ``step`` (its index; ``None`` for the source), ``field`` (``filter``,
``with_columns.<name>``, ``agg.<k>``, ``group_by.<k>``, ``sort.<k>``, ``by.<k>``, ...), and, when an
expression is at fault, ``start``/``end`` offsets of the wrong part in that field's text
(UTF-16 code units, as a browser's strings count them).

Cheap by construction: building a pipeline looks up the dataset's head in the catalog and
plans its chunks (metadata only), never reads data. Bounded like submit: the gateway's body
limit, and ``spec``'s steps, sources and nesting. Any signed-in user may validate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from emsqrt.planning import split_alias
from platform_core import PlatformError, Schema, UnauthorizedError
from platform_core.auth import Claims
from platform_core.expr import ExpressionError, check, parse

from .errors import PipelineError
from .pipeline import Pipeline
from .session import Session
from .spec import PipelineSpec, _check_size, _step, build

__all__ = ["ValidateRequest", "locate", "make_validate_router", "validate"]


class ValidateRequest(BaseModel):
    pipeline: PipelineSpec


class ColumnModel(BaseModel):
    name: str
    type: str


class ValidateResponse(BaseModel):
    text: str
    """The canonical JSON form, pretty-printed (what ``POST /api/jobs`` takes as ``pipeline``)."""
    python: str
    """The same pipeline in the fluent Python API (``elytra.connect(url, token=...)``)."""
    logical: str
    """The logical plan, one operator a line."""
    plan: str
    """The physical plan: stages, their tasks, the merge (``Pipeline.explain()``)."""
    output_schema: list[ColumnModel] = Field(alias="schema")
    """The output columns and their Arrow types."""

    model_config = ConfigDict(populate_by_name=True)


def _caller(request: Request) -> Claims:
    claims = getattr(request.state, "claims", None)
    if not isinstance(claims, Claims):
        raise UnauthorizedError("this route needs a token: send 'Authorization: Bearer <token>'")
    return claims


def make_validate_router(session: Callable[[], Session]) -> APIRouter:
    """The route, in a router of its own (mounted under ``/api/jobs`` by ``api.make_router``)."""
    router = APIRouter(tags=["jobs"])

    @router.post(
        "/validate",
        summary="Check and plan a pipeline without running it",
        response_model=ValidateResponse,
    )
    def validate_route(
        body: ValidateRequest, who: Annotated[Claims, Depends(_caller)]
    ) -> dict[str, Any]:
        return validate(body.pipeline, session())

    return router


def validate(spec: PipelineSpec, session: Session) -> dict[str, Any]:
    """Build ``spec`` step by step (so a failure knows its step) and describe the result."""
    _check_size(spec)
    try:
        p = build(PipelineSpec(source=spec.source, steps=[]), session)
    except PlatformError as exc:
        raise PipelineError(exc.message, step=None, field="source") from None
    for i, step in enumerate(spec.steps):
        try:
            p = _step(p, step, i, session, False, 0)
        except PlatformError as exc:
            raise PipelineError(exc.message, step=i, **locate(step, p)) from None
    canonical = p.to_spec()
    return {
        "text": json.dumps(canonical, indent=2),
        "python": fluent(canonical),
        "logical": _logical(p),
        "plan": p.explain(),
        "output_schema": [{"name": f.name, "type": str(f.type)} for f in p.schema],
    }


def _logical(p: Pipeline) -> str:
    from .explain import describe

    return describe(p.node)


# --- where a step's mistake is ----------------------------------------------------------------


def _texts(step: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The step's expressions: (field, text, aggregates allowed)."""
    out: list[tuple[str, str, bool]] = []
    if isinstance(step.get("filter"), str):
        out.append(("filter", step["filter"], False))
    cols = step.get("with_columns")
    if isinstance(cols, dict):
        out += [(f"with_columns.{n}", t, False) for n, t in cols.items() if isinstance(t, str)]
    aggs = step.get("agg")
    if isinstance(aggs, str):
        aggs = [aggs]
    if isinstance(aggs, list):
        out += [(f"agg.{k}", t, True) for k, t in enumerate(aggs) if isinstance(t, str)]
    return out


def _names(step: dict[str, Any]) -> list[tuple[str, str]]:
    """The step's column names: (field, name)."""
    out: list[tuple[str, str]] = []
    for key in ("group_by", "sort", "select", "drop", "by", "per"):
        v = step.get(key)
        v = [v] if isinstance(v, str) else v
        if isinstance(v, list):
            for k, name in enumerate(v):
                if isinstance(name, str) and name.split():
                    word = name.split()[0] if key in ("sort", "by") else name
                    out.append((f"{key}.{k}", word.strip('"')))
    return out


def _utf16(text: str, offset: int) -> int:
    return len(text[:offset].encode("utf-16-le")) // 2


def locate(step: dict[str, Any], before: Pipeline) -> dict[str, Any]:
    """Which field of ``step`` is wrong and, for an expression, where: re-parse and re-check
    each of its expressions against the schema the step sees (``before``'s output)."""
    try:
        schema = Schema.from_arrow(before.schema)
    except PlatformError:
        return {}
    for where, text, aggregates in _texts(step):
        expr_text = text
        if aggregates:
            expr_text = split_alias(text)[0]
        try:
            check(parse(expr_text), schema, aggregates=aggregates)
        except ExpressionError as exc:
            start, end = _span(expr_text, exc)
            return {
                "field": where,
                "start": _utf16(text, start),
                "end": _utf16(text, end),
                "reason": exc.reason,
            }
        except PlatformError as exc:
            return {
                "field": where,
                "start": 0,
                "end": _utf16(text, len(text)),
                "reason": exc.message,
            }
    names = set(schema.names)
    for where, name in _names(step):
        if name not in names:
            return {"field": where, "start": 0, "end": _utf16(name, len(name))}
    return {}


_TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\w+|[^\s\w]")


def _span(text: str, exc: ExpressionError) -> tuple[int, int]:
    """Offsets of the wrong part: the parser's position, else the fragment the checker quotes
    (``... in "amount > 'x'"``) or the unknown column it names, found in ``text`` ignoring
    spacing, case and quoting; else the whole text."""
    if exc.position is not None:
        return exc.position, min(len(text), exc.position + 1)
    reason = exc.reason
    fragment = re.search(r' in "(.*)"$', reason, re.DOTALL)
    column = re.match(r'column "([^"]+)" not found', reason)
    if fragment:
        found = _find(text, fragment.group(1))
        if found:
            return found
    if column:
        m = re.search(rf'"?\b{re.escape(column.group(1))}\b"?', text)
        if m:
            return m.start(), m.end()
    return 0, len(text)


def _find(text: str, fragment: str) -> tuple[int, int] | None:
    tokens = _TOKEN.findall(fragment)
    if not tokens:
        return None
    parts = []
    for tok in tokens:
        word = tok.strip('"')
        if tok.startswith('"') or re.fullmatch(r"\w+", tok):
            parts.append(rf'"?{re.escape(word)}"?')  # a name, quoted or not
        else:
            parts.append(re.escape(tok))
    m = re.search(r"\s*".join(parts), text, re.IGNORECASE)
    return (m.start(), m.end()) if m else None


# --- the fluent form ------------------------------------------------------------------------


def _py(value: Any) -> str:
    """A Python literal (repr: single quotes, so SQL's double-quoted names read cleanly)."""
    return repr(value)


def fluent(spec: dict[str, Any], indent: str = "    ") -> str:
    """``spec`` as the fluent API writes it: ``s.dataset("sales").filter("...")...``."""
    src = spec["source"]
    version = f", {src['version']}" if src.get("version") else ""
    lines = [f"s.dataset({_py(src.get('dataset'))}{version})"]
    for step in spec["steps"]:
        lines.append(indent + _fluent_step(step, indent))
    return "(\n" + indent + ("\n" + indent).join(lines) + "\n)"


def _args(values: Any) -> str:
    values = [values] if isinstance(values, str) else list(values)
    return ", ".join(_py(v) for v in values)


def _fluent_step(step: dict[str, Any], indent: str) -> str:
    if "group_by" in step:
        return f".group_by({_args(step['group_by'])}).agg({_args(step.get('agg', []))})"
    if "with_columns" in step:
        cols = step["with_columns"]
        if all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in cols):
            return ".with_columns(" + ", ".join(f"{n}={_py(t)}" for n, t in cols.items()) + ")"
        return f".with_columns(**{_py(cols)})"
    if "rename" in step:
        return f".rename({_py(step['rename'])})"
    if "limit" in step:
        offset = f", {step['offset']}" if step.get("offset") else ""
        return f".limit({step['limit']}{offset})"
    if "top_k" in step:
        per = f", per={_py(step['per'])}" if step.get("per") else ""
        return f".top_k({step['top_k']}, {_args(step.get('by', []))}{per})"
    if "distinct" in step:
        return ".distinct()"
    if "join" in step:
        inner = fluent(step["join"], indent + "    ").replace("\n", "\n" + indent)
        keys = []
        if step.get("on") is not None:
            keys.append(_py(step["on"]))
        for k in ("left_on", "right_on"):
            if step.get(k) is not None:
                keys.append(f"{k}={_py(step[k])}")
        how = step.get("how", "inner")
        return f".join({inner}, {', '.join(keys)}, how={_py(how)})"
    if "union" in step:
        inner = ", ".join(fluent(u, indent + "    ") for u in step["union"])
        return f".union({inner})"
    for op in ("filter", "select", "drop", "agg", "sort"):
        if op in step:
            return f".{op}({_args(step[op])})"
    return f"# {_py(step)}"
