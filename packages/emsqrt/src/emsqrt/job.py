"""The job YAML's models: what ``emsqrt run`` accepts, checked before anything runs.

Every mapping forbids keys it does not know (a misspelled key is named with the closest
allowed one); a step is a mapping with exactly one key, the operator. Short forms are kept:
``filter: "a > 1"``, ``project: [a, b]``, ``sort: [a]``, ``sink: out.csv`` (the operator's
main key), and a single name where a list of names is expected. :func:`job_schema` is the
published JSON Schema (``emsqrt schema``, ``emsqrt-job.schema.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from platform_core import PlatformError, parse_type
from platform_core._suggest import did_you_mean

__all__ = ["OPERATORS", "Job", "Step", "job_schema", "job_schema_text"]

FileFormat = Literal["csv", "jsonl", "parquet"]
JoinType = Literal["inner", "left", "right", "full", "semi", "anti"]


def _listify(value: Any) -> Any:
    """One name where a list of names is expected: ``on: uid`` is ``on: [uid]``."""
    return [value] if isinstance(value, str) else value


Names = Annotated[list[str], BeforeValidator(_listify, json_schema_input_type=list[str] | str)]


class _Keys(BaseModel):
    """A mapping of the job file: unknown keys are refused, naming the closest allowed key."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)
    #: The key a non-mapping value stands for (``filter: "a > 1"`` is ``filter: {expr: ...}``).
    short: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            if cls.short is None:
                raise PydanticCustomError(
                    "not_a_mapping",
                    "expected a mapping with keys {allowed}, got {got}",
                    {"allowed": ", ".join(cls.allowed()), "got": _kind(value)},
                )
            return {cls.short: value}
        allowed = cls.allowed()
        for key in value:
            if key not in allowed:
                raise _unknown("key", key, allowed)
        return value

    @classmethod
    def allowed(cls) -> list[str]:
        return [f.alias or name for name, f in cls.model_fields.items()]


def _unknown(what: str, key: Any, allowed: Sequence[str]) -> PydanticCustomError:
    """``unknown key "onn"; did you mean "on"? (allowed: ...)``, its key in ``ctx``."""
    return PydanticCustomError(
        f"unknown_{what}",
        f'unknown {what} "{{key}}"{{hint}} (allowed: {{allowed}})',
        {"key": str(key), "hint": did_you_mean(str(key), allowed), "allowed": ", ".join(allowed)},
    )


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


class SchemaField(_Keys):
    """One column of a scan's schema: ``{name: uid, type: Utf8, nullable: false}``."""

    name: str
    type: str = Field(description="a platform type (i64, utf8, f64, ...) or an Arrow name")
    nullable: bool = True

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        try:
            parse_type(value)
        except PlatformError as exc:
            raise ValueError(exc.message) from None
        return value


class ScanArgs(_Keys):
    """Read a CSV, JSONL or Parquet file (relative to the job file's directory)."""

    short: ClassVar[str | None] = "source"
    source: str
    schema_: list[SchemaField] | None = Field(None, alias="schema")
    format: FileFormat | None = Field(None, description="default: from the file's extension")
    delimiter: str = Field(",", min_length=1, max_length=1)


class FilterArgs(_Keys):
    """Keep the rows where ``expr`` is true."""

    short: ClassVar[str | None] = "expr"
    expr: str


Columns = dict[str, str] | Names


class MapArgs(_Keys):
    """Add or replace columns: ``{name: expr}``, or ``["expr AS name", "old AS new"]``."""

    short: ClassVar[str | None] = "columns"
    columns: Columns | None = None
    expr: Columns | None = Field(None, description="the same as columns")

    @model_validator(mode="after")
    def _one(self) -> MapArgs:
        if (self.columns is None) == (self.expr is None):
            raise PydanticCustomError("map_columns", "map needs columns (or expr), not both")
        return self


class ProjectArgs(_Keys):
    """Keep columns: ``a`` or ``a AS b``."""

    short: ClassVar[str | None] = "columns"
    columns: Names


class AggregateArgs(_Keys):
    """Group by ``group_by`` and compute ``aggs`` (``SUM(amount)``, ``COUNT(*) AS n``)."""

    group_by: Names = Field(default_factory=list)
    aggs: Names = Field(min_length=1)


class SortKey(_Keys):
    """A sort key as a mapping (``"a DESC NULLS FIRST"`` as a string says the same)."""

    column: str
    descending: bool = False
    nulls_first: bool = False


def _listify_keys(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


class SortArgs(_Keys):
    """Sort by keys: ``a``, ``a DESC``, ``a DESC NULLS FIRST`` or a mapping."""

    short: ClassVar[str | None] = "by"
    by: Annotated[
        list[str | SortKey],
        BeforeValidator(_listify_keys, json_schema_input_type=list[str | SortKey] | str),
        Field(min_length=1),
    ]


class LimitArgs(_Keys):
    """Keep ``n`` rows after skipping ``offset``."""

    short: ClassVar[str | None] = "n"
    n: int = Field(ge=0)
    offset: int = Field(0, ge=0)


class JoinArgs(_Keys):
    """Join with the pipeline of ``right`` on ``on`` (or ``left_on`` and ``right_on``)."""

    right: list[Step] = Field(min_length=1)
    on: Names | None = None
    left_on: Names | None = None
    right_on: Names | None = None
    how: JoinType = "inner"

    @model_validator(mode="after")
    def _keys(self) -> JoinArgs:
        if self.on is None and (self.left_on is None or self.right_on is None):
            raise PydanticCustomError("join_keys", "a join needs on, or left_on and right_on")
        return self


class UnionArgs(_Keys):
    """Append the rows of other pipelines (same columns)."""

    short: ClassVar[str | None] = "inputs"
    inputs: list[Annotated[list[Step], Field(min_length=1)]] = Field(min_length=1)


class SinkArgs(_Keys):
    """Write the result to a file, atomically."""

    short: ClassVar[str | None] = "destination"
    destination: str
    format: FileFormat | None = Field(None, description="default: from the file's extension")


_ARGS: dict[str, type[_Keys]] = {
    "scan": ScanArgs,
    "filter": FilterArgs,
    "map": MapArgs,
    "project": ProjectArgs,
    "aggregate": AggregateArgs,
    "sort": SortArgs,
    "limit": LimitArgs,
    "join": JoinArgs,
    "union": UnionArgs,
    "sink": SinkArgs,
}
#: The operators, in the order the docs list them.
OPERATORS = tuple(_ARGS)


class Step(BaseModel):
    """One step: a mapping with exactly one key, the operator."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"minProperties": 1, "maxProperties": 1}
    )

    scan: ScanArgs | SkipJsonSchema[None] = None
    filter: FilterArgs | SkipJsonSchema[None] = None
    map: MapArgs | SkipJsonSchema[None] = None
    project: ProjectArgs | SkipJsonSchema[None] = None
    aggregate: AggregateArgs | SkipJsonSchema[None] = None
    sort: SortArgs | SkipJsonSchema[None] = None
    limit: LimitArgs | SkipJsonSchema[None] = None
    join: JoinArgs | SkipJsonSchema[None] = None
    union: UnionArgs | SkipJsonSchema[None] = None
    sink: SinkArgs | SkipJsonSchema[None] = None

    @model_validator(mode="before")
    @classmethod
    def _one_operator(cls, value: Any) -> Any:
        if not isinstance(value, dict) or len(value) != 1:
            raise PydanticCustomError(
                "not_a_step",
                "a step is a mapping with one key, the operator ({known}), got {got}",
                {"known": ", ".join(OPERATORS), "got": _kind(value)},
            )
        ((op, args),) = value.items()
        if op not in _ARGS:
            raise _unknown("step", op, OPERATORS)
        return {op: {} if args is None else args}

    @property
    def op(self) -> str:
        """The operator's name."""
        return next(name for name in OPERATORS if getattr(self, name) is not None)

    @property
    def args(self) -> _Keys:
        """The operator's arguments."""
        value = getattr(self, self.op)
        assert isinstance(value, _Keys)
        return value


class Job(_Keys):
    """A job file: ``steps``, run in order; the first is a scan."""

    steps: list[Step] = Field(min_length=1)


JoinArgs.model_rebuild()
UnionArgs.model_rebuild()
Job.model_rebuild()

_DOCUMENT: TypeAdapter[Any] = TypeAdapter(Job | Annotated[list[Step], Field(min_length=1)])


def job_schema() -> dict[str, Any]:
    """The JSON Schema of a job file (a mapping with ``steps``, or a bare list of steps)."""
    schema = _DOCUMENT.json_schema()
    defs = schema["$defs"]
    steps = defs["Step"]["properties"]
    for op, model in _ARGS.items():  # the short forms: filter: "a > 1" for filter: {expr: ...}
        if model.short is not None:
            short = dict(defs[model.__name__]["properties"][model.short])
            for key in ("title", "description", "default"):
                short.pop(key, None)
            steps[op] = {"anyOf": [steps[op], short]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "emsqrt-job.schema.json",
        "title": "emsqrt job",
        "description": "A pipeline for `emsqrt run`: steps run in order, the first a scan.",
        **schema,
    }


def job_schema_text() -> str:
    """:func:`job_schema` as the committed file holds it (2-space JSON, one final newline)."""
    return json.dumps(job_schema(), indent=2) + "\n"
