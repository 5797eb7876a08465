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

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import PipelineError

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .session import Session

__all__ = ["MAX_DEPTH", "MAX_STEPS", "PipelineSpec", "SourceSpec", "build"]

MAX_STEPS = 100
MAX_DEPTH = 8
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
    "top_k": {"by"},
    "distinct": set(),
    "join": {"on", "left_on", "right_on", "how"},
    "union": set(),
}


class SourceSpec(BaseModel):
    """A lake dataset (and version); files only where local paths are allowed."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, description="A lake dataset's name.")
    version: int | None = Field(None, ge=1, description="A version (default: the head).")
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
    spec: PipelineSpec | dict[str, Any], session: Session, *, files: bool = False, depth: int = 0
) -> Pipeline:
    """The pipeline ``spec`` describes; ``files`` allows local file sources (the CLI)."""
    if depth > MAX_DEPTH:
        raise PipelineError(f"pipelines nest at most {MAX_DEPTH} deep (join/union inside join)")
    if not isinstance(spec, PipelineSpec):
        try:
            spec = PipelineSpec.model_validate(spec)
        except ValueError as exc:
            raise PipelineError(f"not a pipeline: {exc}") from None
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
        p = session.read_csv(src.csv)
    elif src.parquet is not None:
        p = session.read_parquet(src.parquet)
    else:
        assert src.json_lines is not None
        p = session.read_json(src.json_lines)
    for i, step in enumerate(spec.steps):
        p = _step(p, step, i, session, files, depth)
    return p


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PipelineError(f"{where} takes a string or a list of strings, got {value!r}")
    return value


def _step(
    p: Pipeline, step: dict[str, Any], i: int, session: Session, files: bool, depth: int
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
        return p.top_k(arg, *_strings(step.get("by", []), where))
    if op == "distinct":
        return p.distinct()
    if op == "join":
        other = build(arg, session, files=files, depth=depth + 1)
        return p.join(
            other,
            step.get("on"),
            left_on=step.get("left_on"),
            right_on=step.get("right_on"),
            how=step.get("how", "inner"),
        )
    if not isinstance(arg, list) or not arg:
        raise PipelineError(f"{where} takes a list of pipelines")
    return p.union(*(build(a, session, files=files, depth=depth + 1) for a in arg))
