"""The /worker page's engine (lib/worker/engine.ts) agrees with elytra's reference on hostile
input (a break-test from outside): hostile rows and
hostile steps through `window.elytraWorker.run` in headless Chromium, against elytra's Python
reference (the same steps over the same rows, compared as the backend compares a verified
result). A difference gets an honest tab banned, or, when its result is not re-run, a wrong
answer into a job.
"""

from __future__ import annotations

import base64
from typing import Any

import pyarrow as pa
import pytest
from playwright.sync_api import Page

from elytra.browser import evaluate_steps

pytestmark = pytest.mark.timeout(240)


def _e(text: str) -> Any:
    from platform_core.expr import parse
    from platform_core.expr.serde import to_dict

    return to_dict(parse(text))


def _aggs(*texts: str) -> list[dict[str, Any]]:
    return [{"name": f"c{i}", "agg": _e(t)} for i, t in enumerate(texts)]


def _chunk(rows: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode()


def _worker_page(page: Page) -> Page:
    page.goto("/worker/")
    page.wait_for_function("window.elytraWorker !== undefined")
    return page


def _same(page: Page, steps: list[dict[str, Any]], rows: pa.Table) -> None:
    from elytra.browser.compare import same_result
    from elytra.browser.tasks import schema_to_b64

    want = evaluate_steps(steps, rows, None)
    got_b64 = page.evaluate(
        "([steps, schema, chunk]) => window.elytraWorker.run(steps, schema, chunk)",
        [steps, schema_to_b64(want.schema), _chunk(rows)],
    )
    got = pa.ipc.open_stream(base64.b64decode(got_b64)).read_all()
    assert got.schema == want.schema, steps
    assert same_result(got, want) is None, (steps, got.to_pylist(), want.to_pylist())


def test_group_keys_holding_the_separator_are_not_merged(page: Page) -> None:
    """Two different (a, b) keys whose texts join to the same string must stay two groups."""
    rows = pa.table(
        {
            "a": ["p\u0001sq", "p", "x", "x"],
            "b": ["r", "q\u0001sr", None, "N"],
            "v": pa.array([1, 2, 3, 4], pa.int64()),
        }
    )
    page = _worker_page(page)
    _same(
        page,
        [{"op": "partial_aggregate", "group_by": ["a", "b"], "aggregates": _aggs("sum(v)")}],
        rows,
    )


def test_extremes_nulls_and_astral_text_agree_with_the_reference(page: Page) -> None:
    big, small = 2**63 - 1, -(2**63)
    rows = pa.table(
        {
            "g": pa.array([1, 1, 2, 2, 3, 3, None, None], pa.int32()),
            "i": pa.array([big, big, small, small, None, None, big, small], pa.int64()),
            "f": [float("nan"), -0.0, None, None, 0.0, float("nan"), 1.5e300, 1.5e300],
            "s": ["\ufffd", "\U0001f600", "\ue000", "a", None, None, "\U00010000", "\uffff"],
            "b": [True, None, False, True, None, None, True, True],  # sum(b): 128-bit, as ints
        }
    )
    page = _worker_page(page)
    cases: list[list[dict[str, Any]]] = [
        [
            {
                "op": "partial_aggregate",
                "group_by": ["g"],
                "aggregates": _aggs(
                    "sum(i)",
                    "min(i)",
                    "max(i)",
                    "avg(i)",
                    "count(i)",
                    "sum(f)",
                    "max(f)",
                    "sum(b)",
                ),
            }
        ],
        [
            {
                "op": "partial_aggregate",
                "group_by": ["s"],
                "aggregates": _aggs("count(*)", "min(f)", "max(f)"),
            }
        ],
        [{"op": "partial_aggregate", "group_by": [], "aggregates": _aggs("min(s)", "max(s)")}],
        [{"op": "partial_aggregate", "group_by": ["f"], "aggregates": _aggs("count(*)")}],
        [
            {
                "op": "top_k",
                "keys": [{"column": "s", "descending": True, "nulls_first": False}],
                "n": 5,
            }
        ],
        [{"op": "limit", "n": 10, "offset": 100}],
        [{"op": "limit", "n": 2**40, "offset": 3}],
        [
            {
                "op": "top_k",
                "keys": [{"column": "i", "descending": False, "nulls_first": True}],
                "n": 2**40,
            }
        ],
    ]
    for steps in cases:
        _same(page, steps, rows)
    empty = rows.slice(0, 0)
    for steps in cases[:3]:
        _same(page, steps, empty)


def test_hostile_steps_fail_fast_and_run_nothing(page: Page) -> None:
    """Unknown ops, unknown functions, a deeply nested expression and script-like names: each
    an error out of the engine (what the tab answers as `error`), quickly, and no script runs."""
    rows = pa.table({"x": pa.array([1, 2, 3], pa.int64())})
    page = _worker_page(page)
    chunk = _chunk(rows)
    from elytra.browser.tasks import schema_to_b64

    schema = schema_to_b64(rows.schema)
    hostile: list[list[Any]] = [
        [{"op": "eval", "code": "window.pwned = 1"}],
        [{"op": "filter", "expr": {"kind": "call", "name": "eval", "args": []}}],
        [{"op": "filter", "expr": "DEEP"}],
        [{"op": "project", "columns": [["<img src=x onerror=window.pwned=1>", "nope"]]}],
        [{"op": "map", "columns": [["__proto__", {"kind": "column", "name": "constructor"}]]}],
        [{"op": "filter", "expr": {"kind": "column", "name": "__proto__"}}],
        [{"op": "partial_aggregate", "group_by": ["toString"], "aggregates": []}],
    ]
    for steps in hostile:
        outcome = page.evaluate(
            """([steps, schema, chunk]) => {
                if (steps[0].expr === "DEEP") {
                    let deep = { kind: "column", name: "x" };
                    for (let i = 0; i < 200000; i++) deep = { kind: "unary", op: "-", operand: deep };
                    steps = [{ op: "filter", expr: deep }];
                }
                const t0 = performance.now();
                try { window.elytraWorker.run(steps, schema, chunk); return "ran"; }
                catch (e) { return `error in ${Math.round(performance.now() - t0)} ms: ${e}`; }
            }""",
            [steps, schema, chunk],
        )
        assert outcome.startswith("error"), (steps, outcome)
    assert page.evaluate("window.pwned") is None
