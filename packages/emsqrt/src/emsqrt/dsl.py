"""The YAML pipeline language (the source document's DSL), compiled to a :class:`Pipeline`.

```yaml
steps:
  - scan: {source: data/logs.csv, schema: [{name: uid, type: Utf8}, ...]}
  - filter: {expr: "amount > 1000"}
  - map: {columns: {big: "amount * 2"}}          # or ["amount * 2 AS big"]
  - project: {columns: [uid, "amount AS a"]}
  - aggregate: {group_by: [uid], aggs: ["COUNT(*)", "SUM(amount)"]}
  - sort: {by: [uid, "amount DESC"]}
  - limit: {n: 10}
  - join: {right: [ ...steps... ], on: [uid], how: left}
  - sink: {destination: results/summary.csv, format: csv}
```

The document is checked against :mod:`emsqrt.job`'s models first. Relative paths are read
relative to the pipeline file's directory. Every error names the user's own key path
(``steps[2].join.on``, indexes from 0) and, for a file, its line.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from platform_core import PlatformError

from .api import Pipeline
from .builder import split_alias as _split_alias
from .errors import PlanError
from .job import (
    AggregateArgs,
    FilterArgs,
    Job,
    JoinArgs,
    LimitArgs,
    MapArgs,
    ProjectArgs,
    ScanArgs,
    SinkArgs,
    SortArgs,
    Step,
    UnionArgs,
)

__all__ = ["compile_pipeline", "load_pipeline"]

Loc = tuple[str | int, ...]
#: The line (1-based) of a key path in the file, or None (not a file, or no such node).
Locate = Callable[[Loc], int | None]


def _path(base: Path | None, p: str) -> str:
    p = str(p).removeprefix("file://")
    if base is None or Path(p).is_absolute():
        return p
    return str(base / p)


def _where(loc: Loc) -> str:
    """``("steps", 2, "join", "on")`` -> ``steps[2].join.on``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Doc:
    """The parsed document, where it came from, and how to word an error about a place in it."""

    def __init__(self, data: Any, file: Path | None = None, locate: Locate | None = None):
        self.bare = isinstance(data, list)  # a bare list of steps: paths start at [i]
        self.data = data
        self.file = file
        self.locate = locate

    def error(self, loc: Loc, message: str) -> str:
        shown = loc[1:] if self.bare and loc[:1] == ("steps",) else loc
        head = _where(shown)
        line = self.locate(shown) if self.locate is not None else None
        parts = [f"{head}: "] if shown else []
        if self.file is not None:
            parts.insert(0, f"{self.file}, line {line}: " if line is not None else f"{self.file}: ")
        return "".join(parts) + message


def _user_loc(data: Any, loc: Sequence[str | int]) -> Loc:
    """The part of a pydantic location the user wrote: model names and keys that short forms
    stand for (``filter: "a > 1"`` is validated as ``{expr: ...}``) are dropped."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_map = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_map or in_list:
            node = node[part]
            out.append(part)
    return tuple(out)


def _validation_message(doc: _Doc, wrapped: Any, exc: ValidationError) -> str:
    """One line for the most specific of pydantic's errors, at the user's key path."""
    best: tuple[Loc, str] | None = None
    for e in exc.errors(include_url=False):
        if e["type"] == "none_required":  # the None member of an optional step field
            continue
        loc = _user_loc(wrapped, e["loc"])
        ctx = e.get("ctx") or {}
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] in ("unknown_key", "unknown_step"):
            loc = (*loc, str(ctx["key"]))
        elif e["type"] == "missing":
            msg = f'"{e["loc"][-1]}" is required'
        elif not e["type"].startswith(("not_a_", "map_", "join_")):
            got = repr(e["input"])
            msg = f"{msg} (got {got if len(got) <= 40 else got[:37] + '...'})"
        if best is None or len(loc) > len(best[0]):
            best = (loc, msg)
    assert best is not None
    return doc.error(*best)


def _validate(doc: _Doc) -> Job:
    data = doc.data
    wrapped = {"steps": data} if doc.bare else data
    if not isinstance(wrapped, dict):
        raise PlanError(
            doc.error(
                (),
                f"a pipeline is a mapping with 'steps' (or a list of steps), got "
                f"{'nothing' if data is None else type(data).__name__}",
            )
        )
    try:
        return Job.model_validate(wrapped)
    except ValidationError as exc:
        raise PlanError(_validation_message(doc, wrapped, exc)) from None


def compile_pipeline(doc: Any, base: Path | None = None) -> Pipeline:
    """A pipeline from the parsed YAML (``{"steps": [...]}`` or a bare list of steps)."""
    return _compile(_Doc(doc), base)


def _compile(doc: _Doc, base: Path | None) -> Pipeline:
    return _steps(_validate(doc).steps, ("steps",), doc, base)


def _steps(steps: list[Step], at: Loc, doc: _Doc, base: Path | None) -> Pipeline:
    pipe: Pipeline | None = None
    for i, step in enumerate(steps):
        loc = (*at, i, step.op)
        try:
            pipe = _apply(pipe, step, loc, doc, base)
        except PlatformError as exc:
            if getattr(exc, "_located", False):  # a nested step's error, already placed
                raise
            located = copy.copy(exc)
            located.message = doc.error(loc, _unprefixed(exc.message, step.op))
            located.args = (located.message,)
            setattr(located, "_located", True)  # noqa: B010 - a private mark, not a field
            raise located from None
    assert pipe is not None
    return pipe


_BUILDER_NAMES = {
    "aggregate": ("agg", "group_by"),
    "map": ("with_columns",),
    "project": ("select",),
}
"""The builder's name for a YAML step, which its errors start with (``emsqrt.builder``)."""


def _unprefixed(message: str, op: str) -> str:
    """A step's error without the step's name, which the key path already says."""
    for name in (op, *_BUILDER_NAMES.get(op, ())):
        if message.startswith(f"{name}: "):
            return message.removeprefix(f"{name}: ")
    return message


def _apply(pipe: Pipeline | None, step: Step, loc: Loc, doc: _Doc, base: Path | None) -> Pipeline:
    a = step.args
    if isinstance(a, ScanArgs):
        schema = None if a.schema_ is None else [f.model_dump() for f in a.schema_]
        return Pipeline.scan(_path(base, a.source), a.format, schema, a.delimiter)
    if pipe is None:
        raise PlanError(f"the first step must be a scan, not {step.op}")
    if isinstance(a, FilterArgs):
        return pipe.filter(a.expr)
    if isinstance(a, MapArgs):
        return _map(pipe, a.columns if a.columns is not None else a.expr)
    if isinstance(a, ProjectArgs):
        return pipe.select(*a.columns)
    if isinstance(a, AggregateArgs):
        return pipe.aggregate(a.group_by, a.aggs)
    if isinstance(a, SortArgs):
        return pipe.sort([k if isinstance(k, str) else k.model_dump() for k in a.by])
    if isinstance(a, LimitArgs):
        return pipe.limit(a.n, a.offset)
    if isinstance(a, JoinArgs):
        right = _steps(a.right, (*loc, "right"), doc, base)
        return pipe.join(right, on=a.on, left_on=a.left_on, right_on=a.right_on, how=a.how)
    if isinstance(a, UnionArgs):
        others = [_steps(s, (*loc, "inputs", j), doc, base) for j, s in enumerate(a.inputs)]
        return pipe.union(*others)
    assert isinstance(a, SinkArgs)
    return pipe.sink(_path(base, a.destination), a.format)


def _map(pipe: Pipeline, cols: dict[str, str] | list[str] | None) -> Pipeline:
    if isinstance(cols, dict):
        return pipe.map(**cols)
    out = pipe
    for text in cols or []:
        src, alias = _split_alias(text)
        if alias is None:
            raise PlanError(f"map entries are 'expr AS name' or a name: expr mapping, got {text!r}")
        if src.strip().strip('"') in out.schema.names and src.strip().isidentifier():
            # "old AS new": a rename, as in the source document's map step.
            names = out.schema.names
            out = out.select(*[(alias, n) if n == src.strip() else (n, n) for n in names])
        else:
            out = out.map(**{alias: src})
    return out


def _locator(node: yaml.Node | None) -> Locate:
    """Lines of key paths in a composed YAML document (a key's own line for its last part)."""

    def locate(loc: Loc) -> int | None:
        cur, line = node, None
        for part in loc:
            if isinstance(cur, yaml.MappingNode):
                for key, value in cur.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        cur, line = value, key.start_mark.line + 1
                        break
                else:
                    return line
            elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(cur.value):
                    return line
                cur = cur.value[part]
                line = cur.start_mark.line + 1
            else:
                return line
        return line if line is not None or cur is None else cur.start_mark.line + 1

    return locate


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as booleans, so a
    join's ``on: [uid]`` arrived as the key ``True``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_pipeline(path: str | Path) -> Pipeline:
    """Read, check and compile a pipeline file; every error is a ``PlanError`` with the file,
    line and key path."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PlanError(f"cannot read pipeline file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PlanError(f"pipeline file {p} is not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise PlanError(f"{p}{at}: not valid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise PlanError(f"{p}: not valid YAML: {exc}") from None
    return _compile(_Doc(data, p, _locator(node)), p.resolve().parent)
