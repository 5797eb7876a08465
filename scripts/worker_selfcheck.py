"""Write the /worker page's bundled self-check (apps/playground/lib/worker/selfcheck.json).

    .venv/bin/python scripts/worker_selfcheck.py [--count N] [--seed N]

A handful of shared test vectors (platform_core.expr.vectors, drawn as scripts/expr_vectors.py
draws them) and one small browser task with what the Python reference worker answers for it
(elytra.browser.evaluate_steps: a filter, a computed column, emsqrt's partial aggregate). The
page runs both before it lends a tab; the full vectors run at /worker/conformance/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from elytra.browser.evaluate import evaluate_steps
from elytra.browser.tasks import schema_to_b64
from emsqrt import plan as lp
from emsqrt.physical.aggregate import state_schema
from platform_core import Schema
from platform_core.expr import evaluate, parse
from platform_core.expr.serde import from_dict, to_dict

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "apps/playground/lib/worker/selfcheck.json"


def sample_task() -> dict[str, Any]:
    rows = pa.table({"x": [0.5, 1.5, 2.0, 3.25, -1.0, 7.0], "g": [1.0, 2.0, 1.0, 2.0, 1.0, 3.0]})
    aggs = [
        {"name": "n", "agg": to_dict(parse("count(*)"))},
        {"name": "s", "agg": to_dict(parse("sum(y)"))},
        {"name": "hi", "agg": to_dict(parse("max(y)"))},
        {"name": "m", "agg": to_dict(parse("avg(g)"))},
    ]
    steps: list[dict[str, Any]] = [
        {"op": "filter", "expr": to_dict(parse("x > 1"))},
        {"op": "map", "columns": [["y", to_dict(parse("x * 2 + g"))]]},
        {"op": "partial_aggregate", "group_by": [], "aggregates": aggs},
    ]
    # the expected schema: what the reference worker gives, which is emsqrt's state schema
    out = evaluate_steps(steps, rows, _schema(steps, rows))
    return {
        "steps": steps,
        "schema": schema_to_b64(out.schema),
        "input": {k: rows[k].to_pylist() for k in rows.column_names},
        "expected": [
            {
                k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                for k, v in r.items()
            }
            for r in out.to_pylist()
        ],
    }


def _schema(steps: list[dict[str, Any]], rows: pa.Table) -> pa.Schema:
    """emsqrt's partial-state schema of the aggregate step over the rows the steps before give."""
    table = rows.filter(evaluate(from_dict(steps[0]["expr"]), rows))
    for name, expr in steps[1]["columns"]:
        table = table.append_column(name, evaluate(from_dict(expr), table))
    specs = tuple(lp.AggSpec(a["name"], from_dict(a["agg"])) for a in steps[2]["aggregates"])
    node = lp.Aggregate(lp.Input("rows", Schema.from_arrow(table.schema)), (), specs, "partial")
    return state_schema(node, table.schema)


def main() -> None:
    spec = importlib.util.spec_from_file_location(
        "_expr_vectors", ROOT / "packages/core/tests/expr_vectors.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=module.DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=60)
    args = parser.parse_args()
    vectors = module.generate(args.seed, args.count)
    OUT.write_text(json.dumps({"vectors": vectors, "task": sample_task()}, separators=(",", ":")))
    print(f"wrote {len(vectors)} vectors and a sample task to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
