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

Relative paths are read relative to the pipeline file's directory. Unknown steps and keys are
errors naming the step and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .api import Pipeline
from .errors import PlanError

__all__ = ["compile_pipeline", "load_pipeline"]

_KEYS: dict[str, set[str]] = {
    "scan": {"source", "schema", "format", "delimiter"},
    "filter": {"expr"},
    "map": {"columns", "expr"},
    "project": {"columns"},
    "aggregate": {"group_by", "aggs"},
    "sort": {"by"},
    "limit": {"n", "offset"},
    "join": {"right", "on", "left_on", "right_on", "how"},
    "union": {"inputs"},
    "sink": {"destination", "format"},
}


def _path(base: Path | None, p: str) -> str:
    p = str(p).removeprefix("file://")
    if base is None or Path(p).is_absolute():
        return p
    return str(base / p)


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def compile_pipeline(doc: Any, base: Path | None = None) -> Pipeline:
    """A pipeline from the parsed YAML (``{"steps": [...]}`` or a bare list of steps)."""
    steps = doc.get("steps") if isinstance(doc, dict) else doc
    if not isinstance(steps, list) or not steps:
        raise PlanError("a pipeline needs a non-empty 'steps' list")
    pipe: Pipeline | None = None
    for i, step in enumerate(steps, 1):
        if not isinstance(step, dict) or len(step) != 1:
            raise PlanError(
                f"step {i}: each step is a mapping with one key (the operator), got {step!r}"
            )
        ((op, args),) = step.items()
        if op not in _KEYS:
            raise PlanError(f"step {i}: unknown step {op!r} (known: {', '.join(_KEYS)})")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            args = {"expr": args} if op == "filter" else {"columns": args}
        extra = sorted(set(args) - _KEYS[op])
        if extra:
            raise PlanError(f"step {i} ({op}): unknown keys {extra} (allowed: {sorted(_KEYS[op])})")
        where = f"step {i} ({op})"
        try:
            pipe = _apply(pipe, op, args, base, where)
        except PlanError as exc:
            if exc.message.startswith("step "):
                raise
            raise PlanError(f"{where}: {exc.message}") from exc
    assert pipe is not None
    return pipe


def _apply(
    pipe: Pipeline | None, op: str, a: dict[str, Any], base: Path | None, where: str
) -> Pipeline:
    if op == "scan":
        if "source" not in a:
            raise PlanError("scan needs a source")
        return Pipeline.scan(
            _path(base, a["source"]), a.get("format"), a.get("schema"), a.get("delimiter", ",")
        )
    if pipe is None:
        raise PlanError("the first step must be a scan")
    if op == "filter":
        return pipe.filter(str(a["expr"]))
    if op == "map":
        cols = a.get("columns", a.get("expr"))
        if isinstance(cols, dict):
            return pipe.map(**{str(k): str(v) for k, v in cols.items()})
        out = pipe
        for text in _as_list(cols):
            from .api import _split_alias

            src, alias = _split_alias(str(text))
            if alias is None:
                raise PlanError(
                    f"map entries are 'expr AS name' or a name: expr mapping, got {text!r}"
                )
            if src.strip().strip('"') in out._schema().names and src.strip().isidentifier():
                # "old AS new": a rename, as in the source document's map step.
                names = out._schema().names
                out = out.select(*[(alias, n) if n == src.strip() else (n, n) for n in names])
            else:
                out = out.map(**{alias: src})
        return out
    if op == "project":
        return pipe.select(*[str(c) for c in _as_list(a["columns"])])
    if op == "aggregate":
        return pipe.aggregate(
            [str(g) for g in _as_list(a.get("group_by", []))], [str(x) for x in _as_list(a["aggs"])]
        )
    if op == "sort":
        return pipe.sort(_as_list(a["by"]))
    if op == "limit":
        return pipe.limit(int(a["n"]), int(a.get("offset", 0)))
    if op == "join":
        right = compile_pipeline({"steps": a["right"]}, base)
        return pipe.join(
            right,
            on=_as_list(a["on"]) if "on" in a else None,
            left_on=_as_list(a["left_on"]) if "left_on" in a else None,
            right_on=_as_list(a["right_on"]) if "right_on" in a else None,
            how=str(a.get("how", "inner")),
        )
    if op == "union":
        return pipe.union(*[compile_pipeline({"steps": s}, base) for s in a["inputs"]])
    if op == "sink":
        return pipe.sink(_path(base, a["destination"]), a.get("format"))
    raise PlanError(f"{where}: unhandled step")  # pragma: no cover - _KEYS covers every op


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and compile a pipeline file; YAML errors become ``PlanError`` with the line."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise PlanError(f"cannot read pipeline file {p}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PlanError(f"pipeline file {p} is not valid YAML: {exc}") from exc
    return compile_pipeline(doc, p.resolve().parent)
