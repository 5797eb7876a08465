"""The pure-JSON form of a pipeline: what ``POST /api/jobs`` and ``elytra run`` accept.

    {"source": {"dataset": "sales"},
     "steps": [{"filter": "amount > 1000"},
               {"group_by": ["uid"], "agg": ["sum(amount) AS total"]},
               {"top_k": 10, "by": ["total DESC"]}]}

Sources are lake datasets only (``{"dataset": name, "version": n}``; ``elytra run`` also
accepts ``{"csv" | "parquet" | "json": path}`` for local files): a plan sent to the platform
never names a server path. Steps hold expressions as text, never code. One step is one of:
``filter``, ``select``, ``with_columns``, ``drop``, ``rename``, ``group_by`` + ``agg``,
``agg``, ``sort``, ``limit`` (+ ``offset``), ``top_k`` + ``by``, ``distinct``, ``join`` (a
nested pipeline, with ``on`` or ``left_on``/``right_on``, and ``how``), ``union`` (a list).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import PipelineError

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .session import Session

__all__ = ["MAX_DEPTH", "MAX_SOURCES", "MAX_STEPS", "PipelineSpec", "SourceSpec", "build"]

MAX_STEPS = 100
"""Steps of a pipeline, counting those of the pipelines joined or unioned into it."""
MAX_DEPTH = 8
MAX_SOURCES = 32
"""Sources of a pipeline (itself and every pipeline joined or unioned into it)."""
_STEP_KEYS = {
    "filter": set(),
    "select": set(),
    "with_columns": set(),
    "drop": set(),
    "rename": set(),
    "group_by": {"agg"},
    "agg": set(),
    "sort": set(),
    "limit": {"offset"},
    "top_k": {"by", "per"},
    "distinct": set(),
    "join": {"on", "left_on", "right_on", "how"},
    "union": set(),
}


class SourceSpec(BaseModel):
    """A lake dataset (and version); files only where local paths are allowed."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, description="A lake dataset's name.")
    version: int | None = Field(
        None, ge=1, strict=True, description="A version (default: the head)."
    )
    csv: str | None = Field(None, description="Local CSV path or glob (elytra run only).")
    parquet: str | None = Field(None, description="Local Parquet path or glob (elytra run only).")
    json_lines: str | None = Field(
        None, alias="json", description="Local JSON-lines path or glob (elytra run only)."
    )


class PipelineSpec(BaseModel):
    """A source and its steps, each step one operation (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    source: SourceSpec
    steps: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_STEPS)


def build(
    spec: PipelineSpec | dict[str, Any],
    session: Session,
    *,
    files: bool | Path = False,
    depth: int = 0,
) -> Pipeline:
    """The pipeline ``spec`` describes; ``files`` allows local file sources (the CLI).

    ``files`` a directory (the pipeline file's): a relative local path is read from there
    when something matches there, else from the current directory, so
    ``elytra run examples/pipeline.yaml`` finds the ``sales.csv`` beside it.
    """
    if depth == 0:
        _check_size(spec)
    if depth > MAX_DEPTH:
        raise PipelineError(f"pipelines nest at most {MAX_DEPTH} deep (join/union inside join)")
    if not isinstance(spec, PipelineSpec):
        try:
            spec = PipelineSpec.model_validate(spec)
        except ValidationError as exc:
            raise PipelineError(f"not a pipeline: {_problems(exc)}") from None
    src = spec.source
    given = [k for k in ("dataset", "csv", "parquet", "json_lines") if getattr(src, k)]
    if len(given) != 1:
        raise PipelineError("a source names one dataset (or, locally, one csv/parquet/json path)")
    if src.dataset is not None:
        p = session.dataset(src.dataset, src.version)
    elif not files:
        raise PipelineError(
            "a pipeline sent to the platform reads lake datasets only, not server paths; "
            "upload the file as a dataset first"
        )
    elif src.csv is not None:
        p = session.read_csv(_local(src.csv, files))
    elif src.parquet is not None:
        p = session.read_parquet(_local(src.parquet, files))
    else:
        assert src.json_lines is not None
        p = session.read_json(_local(src.json_lines, files))
    for i, step in enumerate(spec.steps):
        p = _step(p, step, i, session, files, depth)
    return p


def _problems(exc: ValidationError) -> str:
    """Pydantic's findings in one line: ``source.dataset: Input should be a valid string``."""
    found = [
        f"{'.'.join(str(p) for p in e['loc']) or 'the pipeline'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    ]
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    return "; ".join(found[:5]) + more


def _check_size(spec: PipelineSpec | dict[str, Any]) -> None:
    """Bound the whole tree (a union of many pipelines is one step) before anything in it is
    looked up or planned: ``MAX_STEPS`` steps and ``MAX_SOURCES`` sources in all."""
    sources = steps = 0
    todo: list[tuple[Any, int]] = [(spec, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise PipelineError(f"pipelines nest at most {MAX_DEPTH} deep (join/union inside join)")
        node_steps = node.steps if isinstance(node, PipelineSpec) else None
        if isinstance(node, dict):
            node_steps = node.get("steps", [])
        if node_steps is None:
            continue  # not a pipeline: build() says why
        sources += 1
        steps += len(node_steps) if isinstance(node_steps, list) else 0
        if sources > MAX_SOURCES or steps > MAX_STEPS:
            raise PipelineError(
                f"a pipeline holds at most {MAX_STEPS} steps and {MAX_SOURCES} sources, counting "
                "the pipelines joined or unioned into it; write an intermediate dataset first"
            )
        for step in node_steps if isinstance(node_steps, list) else ():
            if not isinstance(step, dict):
                continue
            inner = step.get("join")
            todo += [(inner, depth + 1)] if inner is not None else []
            union = step.get("union")
            todo += [(u, depth + 1) for u in union] if isinstance(union, list) else []


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PipelineError(f"{where} takes a string or a list of strings, got {value!r}")
    return value


def _local(path: str, files: bool | Path) -> str:
    """A local source's path: relative to the pipeline file's directory (``files``) when
    something matches there, else as written (the current directory, as before)."""
    if isinstance(files, Path) and not os.path.isabs(path):
        beside = str(files / path)
        if glob.glob(glob.escape(beside) if not glob.has_magic(path) else beside):
            return beside
    return path


def _step(
    p: Pipeline, step: dict[str, Any], i: int, session: Session, files: bool | Path, depth: int
) -> Pipeline:
    ops = [k for k in step if k in _STEP_KEYS and not (k == "agg" and "group_by" in step)]
    if len(ops) != 1:
        raise PipelineError(
            f"step {i}: give exactly one operation of {', '.join(sorted(_STEP_KEYS))}; got "
            f"{sorted(step)}"
        )
    op = ops[0]
    extra = set(step) - {op} - _STEP_KEYS[op]
    if extra:
        raise PipelineError(f"step {i} ({op}): unknown keys {sorted(extra)}")
    arg = step[op]
    where = f"step {i} ({op})"
    if op == "filter":
        if not isinstance(arg, str):
            raise PipelineError(f"{where} takes an expression string")
        return p.filter(arg)
    if op == "select":
        return p.select(*_strings(arg, where))
    if op == "with_columns" or op == "rename":
        if not isinstance(arg, dict) or not all(isinstance(v, str) for v in arg.values()):
            raise PipelineError(f"{where} takes an object of name: string")
        return p.with_columns(**arg) if op == "with_columns" else p.rename(arg)
    if op == "drop":
        return p.drop(*_strings(arg, where))
    if op == "group_by":
        return p.group_by(*_strings(arg, where)).agg(*_strings(step.get("agg", []), where))
    if op == "agg":
        return p.agg(*_strings(arg, where))
    if op == "sort":
        return p.sort(*_strings(arg, where))
    if op == "limit":
        return p.limit(arg, step.get("offset", 0))
    if op == "top_k":
        return p.top_k(
            arg, *_strings(step.get("by", []), where), per=_strings(step.get("per", []), where)
        )
    if op == "distinct":
        return p.distinct()
    if op == "join":
        try:
            other = build(arg, session, files=files, depth=depth + 1)
        except PipelineError as exc:
            raise PipelineError(f"{where}: {exc.message}") from None
        return p.join(
            other,
            step.get("on"),
            left_on=step.get("left_on"),
            right_on=step.get("right_on"),
            how=step.get("how", "inner"),
        )
    if not isinstance(arg, list) or not arg:
        raise PipelineError(f"{where} takes a list of pipelines")
    others = []
    for k, a in enumerate(arg):
        try:
            others.append(build(a, session, files=files, depth=depth + 1))
        except PipelineError as exc:
            raise PipelineError(f"{where}, pipeline {k}: {exc.message}") from None
    return p.union(*others)
